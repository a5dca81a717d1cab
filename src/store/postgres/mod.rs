//! The PostgreSQL store (feature `postgres`): for many application servers sharing one
//! database.
//!
//! # Design
//!
//! The [`Store`] port is synchronous, tokio-postgres is asynchronous. A [`PostgresStore`]
//! owns a dedicated background thread running a current-thread tokio runtime with a small
//! deadpool-postgres pool of connections (4 by default; each keeps its prepared
//! statements), plain or TLS (rustls). Each `Store` call turns its arguments into owned
//! rows, sends a request to that thread over a channel and blocks on a reply channel. The
//! caller never touches the runtime, so the store works from plain threads, from
//! `spawn_blocking` threads and even (though it blocks a worker) from inside an async task,
//! without "runtime within runtime" panics. JSON is written and parsed on the caller's
//! thread; the background thread only does I/O.
//!
//! # Schema (migration 1)
//!
//! The rows are those of the crate's one row mapping ([`rows`](crate::store::rows)), which
//! also decodes them with the same integrity checks as the SQLite store.
//!
//! * `sessions (id TEXT COLLATE "C" PRIMARY KEY, created BIGINT, status TEXT, version BIGINT,
//!   wake_at BIGINT NULL, head TEXT)`: times are Unix milliseconds; `head` is the session
//!   row's head ([`SessionRow::head`](crate::store::rows::SessionRow::head)) kept as TEXT
//!   (JSONB would re-format its numbers). Ids
//!   compare bytewise (`COLLATE "C"`), as [`SessionId`]s do, so listings and `due` order
//!   ties exactly like the in-memory store.
//! * `payments (session_id, id, body TEXT)`: one payment JSON per quote; a commit writes
//!   only the payments its change names ([`Commit::payments`]), so its cost does not grow
//!   with the session's history.
//! * `transfers (session_id, key, body TEXT)`: one serde JSON row per transfer.
//! * `transfer_keys (key PRIMARY KEY, session_id)`, `payment_hashes (hash PRIMARY KEY,
//!   session_id)`, `addresses (address PRIMARY KEY, session_id)`: the lookup indexes. As in
//!   the in-memory store, a transfer belongs to one session (claiming another session's is
//!   refused) and the first session to claim an invoice hash or an address keeps it.
//! * `events (seq BIGINT PRIMARY KEY, id, session_id, created, body TEXT)`: the outbox;
//!   `body` is [`Event::to_json`]; `seq` is assigned in commit order (see the commit code).
//! * `idempotency (key PRIMARY KEY, request, session_id, created)`: claimed before the
//!   session is created (`created` in milliseconds since migration 4, as in SQLite).
//! * `schema_migrations (version PRIMARY KEY, applied_at)`.
//!
//! Migration 2 adds `address_index (descriptor PRIMARY KEY, next)` (the derivation indexes
//! of [`AddressIndex`](crate::request::AddressIndex)). Migration 3 adds:
//!
//! * `links (id PRIMARY KEY, version, body TEXT)`: the [`Link`] as JSON, compare-and-swapped
//!   on `version` by [`LinkStore::commit_link`];
//! * `sessions.link_id` (NULL or the link that opened the session, written by every commit,
//!   indexed for [`LinkStore::link_sessions`]); `events.session_id` becomes nullable (link
//!   events belong to no session);
//! * `endpoints (id PRIMARY KEY, body TEXT)`: `Endpoint::to_stored_json()`, which **holds
//!   the webhook signing secret**: protect the database and its backups accordingly;
//!   `delivery_cursors (endpoint PRIMARY KEY, cursor)` and `deliveries (endpoint, seq,
//!   status, next_attempt_at NULL, body TEXT)`: the webhook delivery log (feature
//!   `webhooks`).
//!
//! Migration 4 drops `idempotency.created_nanos` (times are kept to the millisecond, as in
//! every store).
//!
//! Migrations 5 to 7 add the listing filters (`sessions.source_id`, `metadata` with
//! `session_metadata` rows, `review`) and `resume_points`. Migration 8 adds the reads of the
//! HTTP API: the indexes `payments_by_id` ([`Store::find_by_payment`]) and `events_by_id`
//! ([`Store::event`]), `sessions.livemode` (the listing's mode filter, filled from the
//! heads) and `links.created`, `kind` and `livemode` with their indexes (the link listing,
//! [`LinkStore::list_links`](super::LinkStore::list_links), filled from the bodies and
//! ids); each is written with its new row and never changes.
//!
//! Migrations run in one transaction under `pg_advisory_xact_lock`, so servers starting
//! together migrate once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::event_rows::FetchedEvent;
use super::list_sql::{Dialect, list_statement};
use super::rows::{self, CommitRows, IdempotencyRow};
use super::{
    Commit, Corruption, IdempotencyRecord, ListQuery, Page, Reload, Store, StoreError, StoredEvent,
};
use crate::hash::PaymentHash;
use crate::id::{EventId, PaymentId, SessionId};
use crate::json::millis::to_millis as millis;
use crate::session::CheckoutSession;
use crate::transfer::TransferKey;
pub use builder::PostgresStoreBuilder;
use commit::PgCommit;
use ops::{Job, Lookup, Op, Out, SessionRows};
pub use tls::SslMode;

mod builder;
mod commit;
mod conninfo;
mod links;
mod ops;
mod pool;
mod resume;
mod schema;
mod sql;
mod tls;
pub(super) use sql::SESSION_COLUMNS;
#[cfg(feature = "webhooks")]
mod webhooks;

/// Advisory-lock namespaces (high 32 bits of the lock key; the low 32 bits hash the schema,
/// so stores in different schemas of one database do not wait for each other).
const LOCK_MIGRATE: u32 = 0x6263_6d67;
const LOCK_OUTBOX: u32 = 0x6263_6f62;

/// A store in a PostgreSQL database (feature `postgres`), shared safely by any number of
/// processes: commits are compare-and-swap transactions and the outbox is ordered across
/// all of them.
///
/// ```no_run
/// use bitcoin_checkout::store::{PostgresStore, Store};
///
/// let store = PostgresStore::connect("host=127.0.0.1 user=shop dbname=shop")?;
/// let first_page = store.events_after(None, 100)?;
/// # Ok::<(), bitcoin_checkout::store::StoreError>(())
/// ```
///
/// Lost connections are replaced on the next call; calls that fail because of them return
/// a retryable [`StoreError::Backend`] (the service retries those). After
/// [`close`](Self::close), or once dropped, every call returns [`StoreError::Closed`].
/// Neither `Debug` nor any error shows the password.
///
/// # Pool
///
/// A deadpool-postgres pool of at most [`pool_size`](PostgresStoreBuilder::pool_size)
/// connections (4 by default), opened as calls need them. A connection whose socket ended
/// or that broke during a call is dropped, never handed out again. An idle connection is
/// checked with a round trip before reuse when it sat unused for 10 s or more, or when
/// another connection broke since its last use (after a server restart its siblings are
/// dead too); one in steady use is not checked. A call that finds every connection busy
/// waits at most [`pool_timeout`](PostgresStoreBuilder::pool_timeout) (10 s by default),
/// then fails with a retryable [`StoreError::Backend`]. [`pool_status`](Self::pool_status)
/// tells how many are open, idle and awaited.
///
/// # TLS
///
/// The connection string's `sslmode` (libpq's names) and `sslrootcert` (a PEM file, or
/// `system`) are honoured, in both the `key=value` and the URL form; rustls does the TLS,
/// with the ring provider:
///
/// | `sslmode` | TLS | the server's certificate |
/// | --- | --- | --- |
/// | `disable` (the default when neither the string nor the builder asks for TLS) | never | – |
/// | `allow`, `prefer` | if the server offers it (both try TLS first) | its chain checked only when a root is given |
/// | `require` | always | its chain checked only when a root is given (as libpq does) |
/// | `verify-ca` | always | its chain checked |
/// | `verify-full` | always | its chain and the host name checked |
///
/// The roots are the `sslrootcert` file or [`tls_root_pem`](PostgresStoreBuilder::tls_root_pem),
/// else Mozilla's roots compiled into the crate (`webpki-roots`, also what
/// `sslrootcert=system` means; it needs `verify-full`, as in libpq). Roots given (in the
/// string or the builder) or a rustls configuration of the application's own
/// ([`tls_config`](PostgresStoreBuilder::tls_config)) without a mode mean `verify-full`.
/// An unknown mode, a client-certificate key (`sslcert`, `sslkey`, …) or an unreadable
/// root file is refused when connecting; a certificate that fails verification gives a
/// non-retryable [`StoreError::Backend`] that says so.
///
/// ```no_run
/// use bitcoin_checkout::store::{PostgresStore, SslMode};
///
/// let store = PostgresStore::connect(
///     "host=db.internal user=shop dbname=shop sslmode=verify-full sslrootcert=/etc/shop/db-ca.pem",
/// )?;
/// assert_eq!(store.ssl_mode(), SslMode::VerifyFull);
/// # Ok::<(), bitcoin_checkout::store::StoreError>(())
/// ```
///
/// # Timeouts
///
/// Each connection starts with `statement_timeout` = 30 s
/// ([`statement_timeout`](PostgresStoreBuilder::statement_timeout)): a call stuck on a lock
/// or a slow plan fails with a retryable [`StoreError::Backend`] instead of holding a
/// thread forever (migrations run without it). And with
/// `idle_in_transaction_session_timeout` = 60 s
/// ([`idle_in_transaction_timeout`](PostgresStoreBuilder::idle_in_transaction_timeout)):
/// a server that stops in the middle of a commit (a paused VM, a lost network) would
/// otherwise hold the outbox lock, and with it every other server's commits, until TCP
/// gives up, which can take hours. See ADR 19 for the choices and the measured ceiling of
/// the outbox lock.
pub struct PostgresStore {
    requests: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    /// What `Debug` shows: where, never the password.
    target: String,
    pool_size: usize,
    ssl_mode: SslMode,
    /// The background thread's pool, for [`pool_status`](Self::pool_status) only.
    pool: deadpool_postgres::Pool,
}

/// A [`PostgresStore`]'s pool at one moment ([`PostgresStore::pool_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// The most connections the pool may open (0 once the store is closed).
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections idle in the pool.
    pub available: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

impl PostgresStore {
    /// The number of connections a store keeps by default.
    pub const DEFAULT_POOL_SIZE: usize = 4;

    /// The default [`PostgresStoreBuilder::statement_timeout`]: 30 s.
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

    /// The default [`PostgresStoreBuilder::idle_in_transaction_timeout`]: 60 s.
    pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

    /// The default [`PostgresStoreBuilder::pool_timeout`]: 10 s.
    pub const DEFAULT_POOL_TIMEOUT: Duration = Duration::from_secs(10);

    /// Connects with [`DEFAULT_POOL_SIZE`](Self::DEFAULT_POOL_SIZE) connections and migrates
    /// the schema. `conn_str` is a libpq-style `key=value` string or a `postgres://` URL.
    pub fn connect(conn_str: &str) -> Result<Self, StoreError> {
        Self::builder(conn_str).connect()
    }

    /// Connects with at most `pool_size` connections (at least 1) and migrates the schema.
    pub fn connect_with_pool_size(conn_str: &str, pool_size: usize) -> Result<Self, StoreError> {
        Self::builder(conn_str).pool_size(pool_size).connect()
    }

    /// Connects with its tables in `schema` (created if missing; letters, digits and `_`,
    /// at most 63 bytes), e.g. one schema per tenant or per test, and migrates it.
    pub fn connect_in_schema(
        conn_str: &str,
        schema: &str,
        pool_size: usize,
    ) -> Result<Self, StoreError> {
        Self::builder(conn_str)
            .schema(schema)
            .pool_size(pool_size)
            .connect()
    }

    /// A builder for the other options: TLS roots or a rustls configuration, timeouts,
    /// schema and pool size.
    ///
    /// ```no_run
    /// use bitcoin_checkout::store::PostgresStore;
    ///
    /// let store = PostgresStore::builder(
    ///     "postgres://shop@db.internal/shop?sslmode=verify-full&sslrootcert=/etc/shop/db-ca.pem",
    /// )
    /// .pool_size(8)
    /// .connect()?;
    /// # Ok::<(), bitcoin_checkout::store::StoreError>(())
    /// ```
    pub fn builder(conn_str: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder::new(conn_str.into())
    }

    /// Brings the schema to the newest version this crate knows (run by the `connect`
    /// functions; running it again is harmless). Fails if the database was migrated by a
    /// newer version of the crate.
    pub fn migrate(&self) -> Result<(), StoreError> {
        match self.call(Op::Migrate)? {
            Out::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Closes the store: waits for the calls in flight, closes the connections; every later
    /// call fails with [`StoreError::Closed`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        drop(lock(&self.requests).take());
        if let Some(worker) = lock(&self.worker).take() {
            // The worker only ends after the calls already sent have been answered.
            let _ = worker.join();
        }
    }

    /// How many connections the store may open.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// The TLS mode the store's connections use.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The pool's state now: connections open, idle, and calls waiting for one.
    ///
    /// ```no_run
    /// # let store = bitcoin_checkout::store::PostgresStore::connect("host=127.0.0.1")?;
    /// let status = store.pool_status();
    /// assert!(status.available <= status.size && status.size <= status.max_size);
    /// # Ok::<(), bitcoin_checkout::store::StoreError>(())
    /// ```
    pub fn pool_status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }

    fn call(&self, op: Op) -> Result<Out, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let (reply_tx, reply_rx) = std_mpsc::sync_channel(1);
        {
            let requests = lock(&self.requests);
            let sender = requests.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send((op, reply_tx))
                .map_err(|_| StoreError::Closed)?;
        }
        reply_rx.recv().unwrap_or_else(|_| {
            Err(if self.closed.load(Ordering::SeqCst) {
                StoreError::Closed
            } else {
                fatal("the store's thread stopped".to_owned())
            })
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("pool_size", &self.pool_size)
            .field("ssl_mode", &self.ssl_mode)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn fatal(message: String) -> StoreError {
    StoreError::Backend {
        message: format!("postgres: {message}"),
        retryable: false,
    }
}

fn unexpected() -> StoreError {
    fatal("internal error: unexpected reply from the store's thread".to_owned())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    Corruption::undecodable(what, e).into()
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn lock_key(namespace: u32, suffix: u32) -> i64 {
    i64::from_be_bytes(((u64::from(namespace) << 32) | u64::from(suffix)).to_be_bytes())
}

fn to_i64(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| fatal(format!("{what} {n} is out of range")))
}

fn clamp_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store for PostgresStore {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        match self.call(Op::Load(id.to_string()))? {
            Out::Session(row) => row.map(SessionRows::decode).transpose(),
            _ => Err(unexpected()),
        }
    }

    fn load_if_changed(&self, id: SessionId, version: u64) -> Result<Reload, StoreError> {
        // Two statements, not one transaction: the version read alone is one snapshot,
        // and a load after it reads a later one (as a load of its own would).
        let Out::Version(stored) = self.call(Op::Version(id.to_string()))? else {
            return Err(unexpected());
        };
        super::reload_by_version(stored, version, || self.load(id))
    }

    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let rows = PgCommit::new(CommitRows::new(commit)?);
        match self.call(Op::Commit(Box::new(rows)))? {
            Out::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
        self.find(Lookup::Transfer, key.to_string())
    }

    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        self.find(Lookup::PaymentHash, hash.to_string())
    }

    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        self.find(Lookup::Address, address.to_owned())
    }

    fn find_by_payment(&self, id: PaymentId) -> Result<Option<SessionId>, StoreError> {
        self.find(Lookup::Payment, id.to_string())
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let statement = list_statement(query, Dialect::Postgres)?;
        let (limit, newer) = (statement.limit, statement.newer);
        let op = Op::List {
            sql: statement.sql,
            params: statement.params,
        };
        let Out::Sessions(rows) = self.call(op)? else {
            return Err(unexpected());
        };
        // An unknown cursor joins no row: an empty page.
        let has_more = rows.len() > limit;
        let mut data = rows
            .into_iter()
            .take(limit)
            .map(SessionRows::decode)
            .collect::<Result<Vec<_>, _>>()?;
        if newer {
            // Fetched oldest first (the page just newer than the cursor): newest first.
            data.reverse();
        }
        Ok(Page { data, has_more })
    }

    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        // Wake times are whole milliseconds, so `wake_at <= now` is `wake_at <= floor(now)`.
        let op = Op::Due {
            now: millis(now),
            limit: clamp_i64(limit),
        };
        match self.call(op)? {
            Out::Ids(ids) => ids.iter().map(|s| rows::decode_session_id(s)).collect(),
            _ => Err(unexpected()),
        }
    }

    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let op = Op::EventsAfter {
            after: after.map_or(0, |a| i64::try_from(a).unwrap_or(i64::MAX)),
            limit: clamp_i64(limit),
        };
        match self.call(op)? {
            Out::Events(events) => decode_events(events),
            _ => Err(unexpected()),
        }
    }

    fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // A bound beyond i64 is above every sequence number: no bound.
        let op = Op::EventsBefore {
            before: before.and_then(|b| i64::try_from(b).ok()),
            limit: clamp_i64(limit),
        };
        match self.call(op)? {
            Out::Events(events) => decode_events(events),
            _ => Err(unexpected()),
        }
    }

    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        match self.call(Op::Event(id.to_string()))? {
            Out::Events(events) => Ok(decode_events(events)?.pop()),
            _ => Err(unexpected()),
        }
    }

    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        match self.call(Op::SessionEvents(id.to_string()))? {
            Out::Events(events) => decode_events(events),
            _ => Err(unexpected()),
        }
    }

    fn session_events_after(
        &self,
        id: SessionId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let after = i64::try_from(after.unwrap_or(0)).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self.call(Op::SessionEventsAfter(id.to_string(), after, limit))? {
            Out::Events(events) => decode_events(events),
            _ => Err(unexpected()),
        }
    }

    fn held_transfers(
        &self,
        id: SessionId,
        limit: usize,
    ) -> Result<Vec<crate::session::HeldTransfer>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self.call(Op::HeldTransfers(id.to_string(), limit))? {
            Out::Pairs(rows) => rows
                .iter()
                .map(|(key, body)| rows::held_from_row(key, body))
                .collect(),
            _ => Err(unexpected()),
        }
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let Out::Idempotency(row) = self.call(Op::Idempotency(key.to_owned()))? else {
            return Err(unexpected());
        };
        row.map(IdempotencyRow::decode).transpose()
    }

    fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let op = Op::ClaimIdempotency(IdempotencyRow::new(record));
        let Out::Idempotency(row) = self.call(op)? else {
            return Err(unexpected());
        };
        row.map(IdempotencyRow::decode).transpose()
    }

    fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        match self.call(Op::ReleaseIdempotency(IdempotencyRow::new(record)))? {
            Out::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn prune_events(&self, through: u64, limit: usize) -> Result<usize, StoreError> {
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self.call(Op::PruneEvents(through, limit))? {
            Out::Changed(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Err(unexpected()),
        }
    }

    fn prune_session_events(&self, id: SessionId, through: u64) -> Result<usize, StoreError> {
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        match self.call(Op::PruneSessionEvents(id.to_string(), through))? {
            Out::Changed(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Err(unexpected()),
        }
    }

    fn prune_idempotency(&self, before: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match self.call(Op::PruneIdempotency(millis(before), limit))? {
            Out::Changed(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Err(unexpected()),
        }
    }
}

impl PostgresStore {
    fn find(&self, lookup: Lookup, key: String) -> Result<Option<SessionId>, StoreError> {
        match self.call(Op::Find(lookup, key))? {
            Out::Id(id) => id.as_deref().map(rows::decode_session_id).transpose(),
            _ => Err(unexpected()),
        }
    }
}

fn decode_events(events: Vec<FetchedEvent>) -> Result<Vec<StoredEvent>, StoreError> {
    events.iter().map(FetchedEvent::decode).collect()
}

impl crate::request::AddressIndex for PostgresStore {
    fn reserve(&self, descriptor: &str) -> Result<u32, crate::request::RequestError> {
        let out = self
            .call(Op::ReserveIndex(descriptor.to_owned()))
            .map_err(super::index_backend)?;
        let Out::Index(index) = out else {
            return Err(super::index_backend(unexpected()));
        };
        u32::try_from(index)
            .ok()
            .filter(|i| *i < u32::MAX)
            .ok_or(crate::request::RequestError::IndexesExhausted)
    }

    fn reserved(&self, descriptor: &str) -> Result<Option<u32>, crate::request::RequestError> {
        let out = self
            .call(Op::ReservedIndex(descriptor.to_owned()))
            .map_err(super::index_backend)?;
        let Out::Reserved(next) = out else {
            return Err(super::index_backend(unexpected()));
        };
        Ok(next.and_then(|n| u32::try_from(n - 1).ok()))
    }
}
