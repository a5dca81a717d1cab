//! The PostgreSQL store (feature `postgres`): for many application servers sharing one
//! database.
//!
//! # Design
//!
//! The [`Store`] port is synchronous, tokio-postgres is asynchronous. A [`PostgresStore`]
//! owns a dedicated background thread running a current-thread tokio runtime with a small
//! pool of connections (4 by default). Each `Store` call turns its arguments into owned
//! rows, sends a request to that thread over a channel and blocks on a reply channel. The
//! caller never touches the runtime, so the store works from plain threads, from
//! `spawn_blocking` threads and even (though it blocks a worker) from inside an async task,
//! without "runtime within runtime" panics. JSON is written and parsed on the caller's
//! thread; the background thread only does I/O.
//!
//! # Schema (migration 1)
//!
//! * `sessions (id TEXT COLLATE "C" PRIMARY KEY, created BIGINT, status TEXT, version BIGINT,
//!   wake_at BIGINT NULL, head TEXT)`: times are Unix milliseconds; `head` is
//!   [`CheckoutSession::storage_json`] kept as TEXT (JSONB would re-format its numbers). Ids
//!   compare bytewise (`COLLATE "C"`), as [`SessionId`]s do, so listings and `due` order
//!   ties exactly like the in-memory store.
//! * `payments (session_id, id, body TEXT)`: one [`CheckoutSession::payment_json`] per
//!   quote; a commit writes only the payments its change touched
//!   ([`CheckoutSession::changed_payments`]), so its cost does not grow with the session's
//!   history. Sessions are rebuilt with [`CheckoutSession::from_storage`].
//! * `transfers (session_id, key, body TEXT)`: one serde JSON row per transfer.
//! * `transfer_keys (key PRIMARY KEY, session_id)`, `payment_hashes (hash PRIMARY KEY,
//!   session_id)`, `addresses (address PRIMARY KEY, session_id)`: the lookup indexes. As in
//!   the in-memory store, a transfer belongs to one session (claiming another session's is
//!   refused) and the first session to claim an invoice hash or an address keeps it.
//! * `events (seq BIGINT PRIMARY KEY, id, session_id, created, body TEXT)`: the outbox;
//!   `body` is [`Event::to_json`]; `seq` is assigned in commit order (see the commit code).
//! * `idempotency (key PRIMARY KEY, request, session_id, created, created_nanos)`: the time
//!   kept to the nanosecond.
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
//! Migrations run in one transaction under `pg_advisory_xact_lock`, so servers starting
//! together migrate once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::{
    Commit, IdempotencyRecord, LinkCommit, LinkStore, ListQuery, Page, Store, StoreError,
    StoredEvent,
};
use crate::event::Event;
use crate::id::SessionId;
use crate::link::{Link, LinkId};
use crate::request::PaymentHash;
use crate::session::CheckoutSession;
use crate::transfer::{Transfer, TransferKey};

#[cfg(feature = "webhooks")]
mod webhooks;

/// The schema migrations, in order. Never edit a released one: append a new version.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    created BIGINT NOT NULL,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    wake_at BIGINT,
    head TEXT NOT NULL
);
CREATE INDEX sessions_by_created ON sessions (created, id);
CREATE INDEX sessions_by_status ON sessions (status, created, id);
CREATE INDEX sessions_by_wake_at ON sessions (wake_at, id) WHERE wake_at IS NOT NULL;
CREATE TABLE payments (
    session_id TEXT COLLATE "C" NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, id)
);
CREATE TABLE transfers (
    session_id TEXT COLLATE "C" NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, key)
);
CREATE TABLE transfer_keys (
    key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
);
CREATE TABLE payment_hashes (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
);
CREATE TABLE addresses (
    address TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
);
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_by_session ON events (session_id, seq);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created BIGINT NOT NULL,
    created_nanos INTEGER NOT NULL
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE address_index (
    descriptor TEXT PRIMARY KEY,
    next BIGINT NOT NULL CHECK (next >= 0)
);
"#,
    ),
    (
        3,
        r#"
CREATE TABLE links (
    id TEXT COLLATE "C" PRIMARY KEY,
    version BIGINT NOT NULL CHECK (version >= 0),
    body TEXT NOT NULL
);
ALTER TABLE sessions ADD COLUMN link_id TEXT COLLATE "C" NULL;
UPDATE sessions SET link_id = head::json ->> 'link'
    WHERE json_typeof(head::json -> 'link') = 'string';
CREATE INDEX sessions_by_link ON sessions (link_id, created, id) WHERE link_id IS NOT NULL;
-- Link events are filed under no session.
ALTER TABLE events ALTER COLUMN session_id DROP NOT NULL;
-- `body` is `Endpoint::to_stored_json()`: it CONTAINS THE ENDPOINT'S SIGNING SECRET in
-- clear (`whsec_...`). Protect the database and its backups like the secret itself.
CREATE TABLE endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE delivery_cursors (
    endpoint TEXT COLLATE "C" PRIMARY KEY,
    cursor BIGINT NOT NULL CHECK (cursor >= 0)
);
CREATE TABLE deliveries (
    endpoint TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL CHECK (seq >= 0),
    status TEXT NOT NULL,
    next_attempt_at BIGINT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (endpoint, seq)
);
CREATE INDEX deliveries_by_status ON deliveries (status, endpoint, seq);
"#,
    ),
];

/// Advisory-lock namespaces (high 32 bits of the lock key; the low 32 bits hash the schema,
/// so stores in different schemas of one database do not wait for each other).
const LOCK_MIGRATE: u32 = 0x6263_6d67;
const LOCK_OUTBOX: u32 = 0x6263_6f62;

/// How long to wait for a connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
/// Connections are made without TLS (`NoTls`): reach the server over a local socket, a
/// private network or a TLS tunnel. Lost connections are replaced on the next call; calls
/// that fail because of them return a retryable [`StoreError::Backend`] (the service
/// retries those). After [`close`](Self::close), or once dropped, every call returns
/// [`StoreError::Closed`].
pub struct PostgresStore {
    requests: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    /// What `Debug` shows: where, never the password.
    target: String,
    pool_size: usize,
}

impl PostgresStore {
    /// The number of connections a store keeps by default.
    pub const DEFAULT_POOL_SIZE: usize = 4;

    /// Connects with [`DEFAULT_POOL_SIZE`](Self::DEFAULT_POOL_SIZE) connections and migrates
    /// the schema. `conn_str` is a libpq-style `key=value` string or a `postgres://` URL.
    pub fn connect(conn_str: &str) -> Result<Self, StoreError> {
        Self::start(conn_str, None, Self::DEFAULT_POOL_SIZE)
    }

    /// Connects with at most `pool_size` connections (at least 1) and migrates the schema.
    pub fn connect_with_pool_size(conn_str: &str, pool_size: usize) -> Result<Self, StoreError> {
        Self::start(conn_str, None, pool_size)
    }

    /// Connects with its tables in `schema` (created if missing; letters, digits and `_`,
    /// at most 63 bytes), e.g. one schema per tenant or per test, and migrates it.
    pub fn connect_in_schema(
        conn_str: &str,
        schema: &str,
        pool_size: usize,
    ) -> Result<Self, StoreError> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && !schema.starts_with(|c: char| c.is_ascii_digit())
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(fatal(format!(
                "invalid schema name {:?}: use letters, digits and '_'",
                crate::money::truncate_for_error(schema)
            )));
        }
        Self::start(conn_str, Some(schema.to_owned()), pool_size)
    }

    fn start(conn_str: &str, schema: Option<String>, pool_size: usize) -> Result<Self, StoreError> {
        // The parser's messages may quote pieces of a malformed string (which could hold a
        // password), so none of its text is passed on.
        let mut config = Config::from_str(conn_str).map_err(|_| {
            fatal(
                "invalid connection string (details withheld: it may contain a password)"
                    .to_owned(),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let pool_size = pool_size.max(1);
        let target = describe(&config, schema.as_deref());
        let shared = Arc::new(Shared {
            lock_suffix: fnv1a(schema.as_deref().unwrap_or("")),
            search_path: schema
                .as_deref()
                .map(|s| format!("SET search_path TO {}", quote_ident(s))),
            schema,
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(pool_size),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        let worker = std::thread::Builder::new()
            .name("bitcoin-checkout-pg".into())
            .spawn(move || worker(shared, rx, ready_tx))
            .map_err(|e| fatal(format!("cannot start the store's thread: {e}")))?;
        let store = Self {
            requests: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            closed: AtomicBool::new(false),
            target,
            pool_size,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(fatal(
                    "the store's thread stopped while starting".to_owned(),
                ));
            }
        }
        store.migrate()?;
        Ok(store)
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
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

/// Where the store connects, without credentials.
fn describe(config: &Config, schema: Option<&str>) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let mut s = format!(
        "host={} port={} user={} dbname={}",
        hosts.join(","),
        ports.join(","),
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    );
    if let Some(schema) = schema {
        s.push_str(&format!(" schema={schema}"));
    }
    s
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
    StoreError::Corrupt(format!("{what}: {e}"))
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

/// Unix milliseconds, rounded down.
fn millis(t: OffsetDateTime) -> i64 {
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// The nanoseconds beyond [`millis`].
fn sub_millis(t: OffsetDateTime) -> i32 {
    i32::try_from(t.unix_timestamp_nanos().rem_euclid(1_000_000)).unwrap_or(0)
}

fn from_millis(ms: i64, nanos: i32) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000 + i128::from(nanos))
        .map_err(|e| corrupt("stored time", e))
}

fn to_i64(n: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| fatal(format!("{what} {n} is out of range")))
}

fn clamp_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn parse_id(s: &str) -> Result<SessionId, StoreError> {
    s.parse().map_err(|e| corrupt("stored session id", e))
}

fn parse_session(rows: SessionRows) -> Result<CheckoutSession, StoreError> {
    let transfers = rows
        .transfers
        .iter()
        .map(|b| serde_json::from_str::<Transfer>(b).map_err(|e| corrupt("stored transfer", e)))
        .collect::<Result<Vec<_>, _>>()?;
    CheckoutSession::from_storage(&rows.head, &rows.payments, transfers)
        .map_err(|e| corrupt("stored session", e))
}

fn parse_events(rows: Vec<(i64, String)>) -> Result<Vec<StoredEvent>, StoreError> {
    rows.into_iter()
        .map(|(seq, body)| {
            Ok(StoredEvent {
                seq: u64::try_from(seq).map_err(|e| corrupt("stored event sequence", e))?,
                event: Event::from_json(&body).map_err(|e| corrupt("stored event", e))?,
            })
        })
        .collect()
}

impl Store for PostgresStore {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        match self.call(Op::Load(id.to_string()))? {
            Out::Session(row) => row.map(parse_session).transpose(),
            _ => Err(unexpected()),
        }
    }

    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let rows = CommitRows::new(commit)?;
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

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.page_size();
        let (cursor, newer) = match (query.ending_before, query.starting_after) {
            (Some(before), _) => (Some(before.to_string()), true),
            (None, Some(after)) => (Some(after.to_string()), false),
            (None, None) => (None, false),
        };
        let op = Op::List {
            status: query.status.map(|s| s.as_str()),
            cursor,
            newer,
            // One more than asked tells whether there is more.
            fetch: clamp_i64(limit + 1),
        };
        let Out::Sessions(rows) = self.call(op)? else {
            return Err(unexpected());
        };
        let has_more = rows.len() > limit;
        let mut data = rows
            .into_iter()
            .take(limit)
            .map(parse_session)
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
            Out::Ids(ids) => ids.iter().map(|s| parse_id(s)).collect(),
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
            Out::Events(rows) => parse_events(rows),
            _ => Err(unexpected()),
        }
    }

    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        match self.call(Op::SessionEvents(id.to_string()))? {
            Out::Events(rows) => parse_events(rows),
            _ => Err(unexpected()),
        }
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let Out::Idempotency(row) = self.call(Op::Idempotency(key.to_owned()))? else {
            return Err(unexpected());
        };
        row.map(|r| {
            Ok(IdempotencyRecord {
                key: r.key,
                request: r.request,
                session_id: parse_id(&r.session_id)?,
                created: from_millis(r.created, r.created_nanos)?,
            })
        })
        .transpose()
    }
}

impl PostgresStore {
    fn find(&self, lookup: Lookup, key: String) -> Result<Option<SessionId>, StoreError> {
        match self.call(Op::Find(lookup, key))? {
            Out::Id(id) => id.as_deref().map(parse_id).transpose(),
            _ => Err(unexpected()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Requests to the background thread.

type Reply = std_mpsc::SyncSender<Result<Out, StoreError>>;
type Job = (Op, Reply);

#[derive(Debug, Clone, Copy)]
enum Lookup {
    Transfer,
    PaymentHash,
    Address,
}

enum Op {
    Migrate,
    Load(String),
    Commit(Box<CommitRows>),
    Find(Lookup, String),
    List {
        status: Option<&'static str>,
        cursor: Option<String>,
        newer: bool,
        fetch: i64,
    },
    Due {
        now: i64,
        limit: i64,
    },
    EventsAfter {
        after: i64,
        limit: i64,
    },
    SessionEvents(String),
    Idempotency(String),
    /// Reserve the next derivation index of a descriptor.
    ReserveIndex(String),
    LoadLink(String),
    LinkSessions(String),
    CommitLink(Box<LinkCommitRows>),
    #[cfg(feature = "webhooks")]
    Webhook(webhooks::WebhookOp),
}

/// What a commit transaction applies.
enum Work<'a> {
    Session(&'a CommitRows),
    Link(&'a LinkCommitRows),
}

impl Op {
    /// Whether running it again after a lost connection cannot do anything twice.
    fn is_read(&self) -> bool {
        match self {
            Op::Commit(_) | Op::CommitLink(_) | Op::Migrate => false,
            #[cfg(feature = "webhooks")]
            Op::Webhook(op) => op.is_read(),
            _ => true,
        }
    }
}

enum Out {
    Unit,
    /// A session's rows.
    Session(Option<SessionRows>),
    Sessions(Vec<SessionRows>),
    Id(Option<String>),
    Ids(Vec<String>),
    Events(Vec<(i64, String)>),
    Idempotency(Option<IdempotencyRow>),
    Index(i64),
    /// A link's version and body.
    Link(Option<(i64, String)>),
    #[cfg(feature = "webhooks")]
    Webhook(webhooks::WebhookOut),
}

/// A session as stored: its own row, its payments' and its transfers' bodies.
struct SessionRows {
    head: String,
    payments: Vec<String>,
    transfers: Vec<String>,
}

struct IdempotencyRow {
    key: String,
    request: String,
    session_id: String,
    created: i64,
    created_nanos: i32,
}

/// A commit turned into column values (on the caller's thread).
struct CommitRows {
    id: String,
    expected_version: Option<i64>,
    version: i64,
    created: i64,
    status: &'static str,
    wake_at: Option<i64>,
    head: String,
    /// The link that opened the session, if any.
    link_id: Option<String>,
    /// The payments to write: all of a new session's, else those the change touched.
    payment_ids: Vec<String>,
    payment_bodies: Vec<String>,
    /// The keys the commit claims for the session (`changed_transfers`, deduplicated).
    claimed_keys: Vec<String>,
    /// A new session's other transfer keys (indexed without the ownership check, as the
    /// in-memory store does).
    other_keys: Vec<String>,
    /// The transfers to write: all of a new session's, else the changed ones.
    transfer_body_keys: Vec<String>,
    transfer_bodies: Vec<String>,
    /// The invoice hashes of the payments written.
    hashes: Vec<String>,
    address: Option<String>,
    events: EventRows,
    idempotency: Option<IdempotencyRow>,
}

/// Outbox events turned into column values.
struct EventRows {
    ids: Vec<String>,
    created: Vec<i64>,
    bodies: Vec<String>,
}

impl EventRows {
    fn new(events: &[Event]) -> Self {
        Self {
            ids: events.iter().map(|e| e.id.to_string()).collect(),
            created: events.iter().map(|e| millis(e.created)).collect(),
            bodies: events.iter().map(Event::to_json).collect(),
        }
    }
}

/// A link commit turned into column values (on the caller's thread).
struct LinkCommitRows {
    id: String,
    /// `None` inserts the link; `Some(None)`: an expected version no stored link can have.
    expected_version: Option<Option<i64>>,
    version: i64,
    body: String,
    events: EventRows,
    sessions: Vec<CommitRows>,
}

impl LinkCommitRows {
    fn new(c: &LinkCommit) -> Result<Self, StoreError> {
        let link = &c.link;
        let id = link.id().to_string();
        let body = serde_json::to_string(link)
            .map_err(|e| fatal(format!("cannot write link {id}: {e}")))?;
        Ok(Self {
            expected_version: c.expected_version.map(|v| i64::try_from(v).ok()),
            version: to_i64(link.version(), "link version")?,
            body,
            events: EventRows::new(&c.events),
            sessions: c
                .sessions
                .iter()
                .map(CommitRows::new)
                .collect::<Result<_, _>>()?,
            id,
        })
    }
}

impl CommitRows {
    fn new(c: &Commit) -> Result<Self, StoreError> {
        let s = &c.session;
        let inserting = c.expected_version.is_none();
        let claimed: BTreeSet<TransferKey> = c.changed_transfers.iter().copied().collect();
        let mut written: BTreeSet<TransferKey> = claimed.clone();
        if inserting {
            written.extend(s.transfers().map(|t| t.key));
        }
        let mut bodies = BTreeMap::new();
        for key in &written {
            if let Some(t) = s.transfer(key) {
                let body = serde_json::to_string(t)
                    .map_err(|e| fatal(format!("cannot write transfer {key}: {e}")))?;
                bodies.insert(key.to_string(), body);
            }
        }
        let (transfer_body_keys, transfer_bodies) = bodies.into_iter().unzip();
        // Payments are rows of their own, so a commit writes only what its change touched
        // and its cost does not grow with the session's history.
        let payments: Vec<_> = if inserting {
            s.payments().iter().map(|p| &**p).collect()
        } else {
            s.changed_payments().collect()
        };
        let mut payment_ids = Vec::with_capacity(payments.len());
        let mut payment_bodies = Vec::with_capacity(payments.len());
        for p in &payments {
            let body = s
                .payment_json(p.id())
                .ok_or_else(|| fatal(format!("cannot write payment {}", p.id())))?;
            payment_ids.push(p.id().to_string());
            payment_bodies.push(body);
        }
        let hashes: BTreeSet<String> = payments
            .iter()
            .filter_map(|p| p.request().lightning.as_ref())
            .map(|inv| inv.payment_hash.to_string())
            .collect();
        Ok(Self {
            id: s.id().to_string(),
            expected_version: c
                .expected_version
                .map(|v| to_i64(v, "version"))
                .transpose()?,
            version: to_i64(s.version(), "version")?,
            created: millis(s.created()),
            status: s.status().as_str(),
            wake_at: s.wake_at().map(millis),
            head: s.storage_json(),
            link_id: s.link().map(|l| l.to_string()),
            payment_ids,
            payment_bodies,
            claimed_keys: claimed.iter().map(ToString::to_string).collect(),
            other_keys: written
                .difference(&claimed)
                .map(ToString::to_string)
                .collect(),
            transfer_body_keys,
            transfer_bodies,
            hashes: hashes.into_iter().collect(),
            address: s.onchain_address().map(str::to_owned),
            events: EventRows::new(&c.events),
            idempotency: c.idempotency.as_ref().map(|r| IdempotencyRow {
                key: r.key.clone(),
                request: r.request.clone(),
                session_id: r.session_id.to_string(),
                created: millis(r.created),
                created_nanos: sub_millis(r.created),
            }),
        })
    }
}

// ---------------------------------------------------------------------------------------
// The background thread and its connection pool.

struct Shared {
    config: Config,
    /// The store's own schema, if any.
    schema: Option<String>,
    /// `SET search_path …` for a store in its own schema.
    search_path: Option<String>,
    lock_suffix: u32,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

fn worker(
    shared: Arc<Shared>,
    mut requests: mpsc::UnboundedReceiver<Job>,
    ready: std_mpsc::SyncSender<Result<(), StoreError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(fatal(format!("cannot start a tokio runtime: {e}"))));
            return;
        }
    };
    runtime.block_on(async move {
        // Fail fast on a wrong address or credentials: make the first connection now.
        match shared.connect().await {
            Ok(conn) => {
                lock(&shared.idle).push(conn);
                let _ = ready.send(Ok(()));
            }
            Err(e) => {
                let _ = ready.send(Err(Failure::Pg(e, false).into_store_error()));
                return;
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        while let Some((op, reply)) = requests.recv().await {
            let shared = Arc::clone(&shared);
            tasks.spawn(async move {
                let _ = reply.send(shared.run(op).await);
            });
            while tasks.try_join_next().is_some() {}
        }
        // Closed: answer the calls in flight, then drop the connections.
        while tasks.join_next().await.is_some() {}
        lock(&shared.idle).clear();
    });
}

/// Why an operation failed, before it becomes a [`StoreError`].
enum Failure {
    Conflict,
    /// A driver or server error; `true` when it happened while committing (the outcome of
    /// the transaction is then unknown).
    Pg(tokio_postgres::Error, bool),
    Store(StoreError),
}

impl Failure {
    /// The connection is unusable (closed, broken, or the server is going away).
    fn breaks_connection(&self) -> bool {
        match self {
            Failure::Pg(e, _) => match e.code() {
                Some(code) => is_connection_state(code),
                None => is_connection_error(e),
            },
            Failure::Conflict | Failure::Store(_) => false,
        }
    }

    /// Running the operation again on a new connection cannot apply it twice.
    fn safe_to_rerun(&self, op: &Op) -> bool {
        match self {
            Failure::Pg(_, committing) => self.breaks_connection() && (op.is_read() || !committing),
            _ => false,
        }
    }

    fn into_store_error(self) -> StoreError {
        match self {
            Failure::Conflict => StoreError::Conflict,
            Failure::Store(e) => e,
            Failure::Pg(e, _) => map_pg_error(&e),
        }
    }
}

fn is_connection_state(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("57P") // admin/crash shutdown (pg_terminate_backend), cannot connect now, …
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
}

fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("timeout")
}

fn map_pg_error(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict;
        }
        let c = code.code();
        let retryable = c.starts_with("40") // serialization failure, deadlock
            || (is_connection_state(code) && *code != SqlState::DATABASE_DROPPED)
            || c.starts_with("53") // insufficient resources (too many connections, …)
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED;
        // The server's message names the problem; its `detail` may quote data, so it is left out.
        return StoreError::Backend {
            message: format!("postgres: {} {}: {}", db.severity(), c, db.message()),
            retryable,
        };
    }
    let retryable = is_connection_error(e);
    let mut message = format!("postgres: {e}");
    if let Some(io) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>())
    {
        message.push_str(&format!(": {io}"));
    }
    StoreError::Backend { message, retryable }
}

struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Set when the connection is in an unknown state (a failed rollback).
    poisoned: bool,
}

impl Shared {
    async fn connect(&self) -> Result<Conn, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; the client then
            // reports itself closed and is replaced.
            let _ = connection.await;
        });
        if let Some(sql) = &self.search_path {
            client.batch_execute(sql).await?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
            poisoned: false,
        })
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = lock(&self.idle);
        while let Some(conn) = idle.pop() {
            if !conn.client.is_closed() && !conn.poisoned {
                return Some(conn);
            }
        }
        None
    }

    async fn run(&self, op: Op) -> Result<Out, StoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let mut rerun = false;
        loop {
            // After a lost connection, do not trust the other idle ones: connect anew.
            let reused = if rerun { None } else { self.take_idle() };
            let mut conn = match reused {
                Some(conn) => conn,
                None => self
                    .connect()
                    .await
                    .map_err(|e| Failure::Pg(e, false).into_store_error())?,
            };
            let result = conn.execute(&op, self).await;
            let broken = match &result {
                Ok(_) => false,
                Err(f) => f.breaks_connection(),
            };
            if !broken && !conn.poisoned && !conn.client.is_closed() {
                lock(&self.idle).push(conn);
            }
            match result {
                Ok(out) => return Ok(out),
                Err(f) if !rerun && f.safe_to_rerun(&op) => rerun = true,
                Err(f) => return Err(f.into_store_error()),
            }
        }
    }
}

/// What every session read selects: its row, its payments and its transfers, in one
/// statement (one snapshot, so a transfer never arrives without its payment).
macro_rules! session_columns {
    () => {
        "SELECT s.head, \
         ARRAY(SELECT p.body FROM payments p WHERE p.session_id = s.id ORDER BY p.id), \
         ARRAY(SELECT t.body FROM transfers t WHERE t.session_id = s.id ORDER BY t.key) "
    };
}

const SQL_LOAD: &str = concat!(session_columns!(), "FROM sessions s WHERE s.id = $1");
const SQL_FIND_TRANSFER: &str = "SELECT session_id FROM transfer_keys WHERE key = $1";
const SQL_FIND_HASH: &str = "SELECT session_id FROM payment_hashes WHERE hash = $1";
const SQL_FIND_ADDRESS: &str = "SELECT session_id FROM addresses WHERE address = $1";
const SQL_DUE: &str = "SELECT id FROM sessions WHERE wake_at <= $1 ORDER BY wake_at, id LIMIT $2";
const SQL_EVENTS_AFTER: &str = "SELECT seq, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
const SQL_SESSION_EVENTS: &str = "SELECT seq, body FROM events WHERE session_id = $1 ORDER BY seq";
const SQL_RESERVE_INDEX: &str = "INSERT INTO address_index (descriptor, next) VALUES ($1, 1) \
     ON CONFLICT (descriptor) DO UPDATE SET next = address_index.next + 1 RETURNING next - 1";
const SQL_LOAD_LINK: &str = "SELECT version, body FROM links WHERE id = $1";
const SQL_LINK_SESSIONS: &str =
    "SELECT id FROM sessions WHERE link_id = $1 ORDER BY created ASC, id ASC";
const SQL_INSERT_LINK: &str =
    "INSERT INTO links (id, version, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";
const SQL_UPDATE_LINK: &str =
    "UPDATE links SET version = $3, body = $4 WHERE id = $1 AND version = $2";
const SQL_IDEMPOTENCY: &str =
    "SELECT key, request, session_id, created, created_nanos FROM idempotency WHERE key = $1";

/// The listing queries: [status filter][cursor: none, older than, newer than].
const SQL_LIST: [[&str; 3]; 2] = [
    [
        concat!(
            session_columns!(),
            "FROM sessions s ORDER BY s.created DESC, s.id DESC LIMIT $1"
        ),
        concat!(
            session_columns!(),
            "FROM sessions s, sessions c WHERE c.id = $2 AND (s.created, s.id) < (c.created, c.id) \
         ORDER BY s.created DESC, s.id DESC LIMIT $1"
        ),
        concat!(
            session_columns!(),
            "FROM sessions s, sessions c WHERE c.id = $2 AND (s.created, s.id) > (c.created, c.id) \
         ORDER BY s.created, s.id LIMIT $1"
        ),
    ],
    [
        concat!(
            session_columns!(),
            "FROM sessions s WHERE s.status = $2 ORDER BY s.created DESC, s.id DESC LIMIT $1"
        ),
        concat!(
            session_columns!(),
            "FROM sessions s, sessions c WHERE c.id = $2 AND s.status = $3 AND (s.created, s.id) < (c.created, c.id) \
         ORDER BY s.created DESC, s.id DESC LIMIT $1"
        ),
        concat!(
            session_columns!(),
            "FROM sessions s, sessions c WHERE c.id = $2 AND s.status = $3 AND (s.created, s.id) > (c.created, c.id) \
         ORDER BY s.created, s.id LIMIT $1"
        ),
    ],
];

const SQL_INSERT_SESSION: &str = "INSERT INTO sessions (id, created, status, version, wake_at, head, link_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING";
const SQL_UPDATE_SESSION: &str = "UPDATE sessions SET created = $2, status = $3, version = $4, wake_at = $5, head = $6, \
     link_id = $7 WHERE id = $1 AND version = $8";
const SQL_INSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency (key, request, session_id, created, created_nanos) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING";
const SQL_UPSERT_TRANSFERS: &str = "INSERT INTO transfers (session_id, key, body) \
     SELECT $1, u.key, u.body FROM unnest($2::text[], $3::text[]) AS u(key, body) \
     ON CONFLICT (session_id, key) DO UPDATE SET body = excluded.body";
const SQL_UPSERT_PAYMENTS: &str = "INSERT INTO payments (session_id, id, body) \
     SELECT $1, u.id, u.body FROM unnest($2::text[], $3::text[]) AS u(id, body) \
     ON CONFLICT (session_id, id) DO UPDATE SET body = excluded.body";
// A transfer belongs to one session. Claiming first (waiting for a concurrent claimer to
// finish) and then looking for another owner in a new statement (a new snapshot) makes the
// check hold between processes.
const SQL_CLAIM_TRANSFER_KEYS: &str = "INSERT INTO transfer_keys (key, session_id) \
     SELECT u.key, $1 FROM unnest($2::text[]) AS u(key) ON CONFLICT (key) DO NOTHING";
const SQL_FOREIGN_TRANSFER_KEY: &str =
    "SELECT key FROM transfer_keys WHERE key = ANY($2::text[]) AND session_id <> $1 LIMIT 1";
// A new session's transfers that its commit does not list as changed are indexed without
// the check, pointing at the new session (as the in-memory store does).
const SQL_INDEX_OTHER_KEYS: &str = "INSERT INTO transfer_keys (key, session_id) \
     SELECT u.key, $1 FROM unnest($2::text[]) AS u(key) \
     ON CONFLICT (key) DO UPDATE SET session_id = excluded.session_id \
     WHERE transfer_keys.session_id <> excluded.session_id";
// The first session to claim an invoice hash or an address keeps it.
const SQL_INDEX_HASHES: &str = "INSERT INTO payment_hashes (hash, session_id) \
     SELECT u.hash, $1 FROM unnest($2::text[]) AS u(hash) ON CONFLICT (hash) DO NOTHING";
const SQL_INDEX_ADDRESS: &str = "INSERT INTO addresses (address, session_id) VALUES ($2, $1) \
     ON CONFLICT (address) DO NOTHING";
const SQL_ADVISORY_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const SQL_INSERT_EVENTS: &str = "INSERT INTO events (seq, id, session_id, created, body) \
     SELECT last.seq + u.n, u.id, $1::text, u.created, u.body \
     FROM unnest($2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS u(id, created, body, n), \
          (SELECT COALESCE(MAX(seq), 0) AS seq FROM events) AS last";

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Conn {
    async fn statement(&mut self, sql: &'static str) -> Result<Statement, Failure> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| Failure::Pg(e, false))?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    async fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, Failure> {
        let s = self.statement(sql).await?;
        self.client
            .query(&s, params)
            .await
            .map_err(|e| Failure::Pg(e, false))
    }

    async fn exec(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, Failure> {
        let s = self.statement(sql).await?;
        self.client
            .execute(&s, params)
            .await
            .map_err(|e| Failure::Pg(e, false))
    }

    async fn execute(&mut self, op: &Op, ctx: &Shared) -> Result<Out, Failure> {
        let pg = |e| Failure::Pg(e, false);
        match op {
            Op::Migrate => self.migrate(ctx).await.map(|()| Out::Unit),
            Op::Commit(rows) => self
                .transaction(Work::Session(rows), ctx.lock_suffix)
                .await
                .map(|()| Out::Unit),
            Op::CommitLink(rows) => self
                .transaction(Work::Link(rows), ctx.lock_suffix)
                .await
                .map(|()| Out::Unit),
            Op::LoadLink(id) => {
                let rows = self.query(SQL_LOAD_LINK, &[id]).await?;
                let row = rows
                    .into_iter()
                    .next()
                    .map(|r| {
                        Ok::<_, Failure>((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?))
                    })
                    .transpose()?;
                Ok(Out::Link(row))
            }
            Op::LinkSessions(id) => {
                let rows = self.query(SQL_LINK_SESSIONS, &[id]).await?;
                let ids = rows
                    .into_iter()
                    .map(|r| r.try_get(0).map_err(pg))
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(Out::Ids(ids))
            }
            #[cfg(feature = "webhooks")]
            Op::Webhook(op) => self.webhook(op).await,
            Op::Load(id) => {
                let rows = self.query(SQL_LOAD, &[id]).await?;
                let row = rows.into_iter().next();
                Ok(Out::Session(row.map(session_rows).transpose()?))
            }
            Op::Find(lookup, key) => {
                let sql = match lookup {
                    Lookup::Transfer => SQL_FIND_TRANSFER,
                    Lookup::PaymentHash => SQL_FIND_HASH,
                    Lookup::Address => SQL_FIND_ADDRESS,
                };
                let rows = self.query(sql, &[key]).await?;
                let id = rows
                    .into_iter()
                    .next()
                    .map(|r| r.try_get(0).map_err(pg))
                    .transpose()?;
                Ok(Out::Id(id))
            }
            Op::List {
                status,
                cursor,
                newer,
                fetch,
            } => {
                let which = match (cursor, newer) {
                    (None, _) => 0,
                    (Some(_), false) => 1,
                    (Some(_), true) => 2,
                };
                let sql = SQL_LIST[usize::from(status.is_some())][which];
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![fetch];
                if let Some(c) = cursor {
                    params.push(c);
                }
                if let Some(s) = status {
                    params.push(s);
                }
                let rows = self.query(sql, &params).await?;
                let sessions = rows
                    .into_iter()
                    .map(session_rows)
                    .collect::<Result<Vec<_>, Failure>>()?;
                Ok(Out::Sessions(sessions))
            }
            Op::Due { now, limit } => {
                let rows = self.query(SQL_DUE, &[now, limit]).await?;
                let ids = rows
                    .into_iter()
                    .map(|r| r.try_get(0).map_err(pg))
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(Out::Ids(ids))
            }
            Op::EventsAfter { after, limit } => {
                let rows = self.query(SQL_EVENTS_AFTER, &[after, limit]).await?;
                Ok(Out::Events(event_rows(rows)?))
            }
            Op::SessionEvents(id) => {
                let rows = self.query(SQL_SESSION_EVENTS, &[id]).await?;
                Ok(Out::Events(event_rows(rows)?))
            }
            Op::Idempotency(key) => {
                let rows = self.query(SQL_IDEMPOTENCY, &[key]).await?;
                let row = rows
                    .into_iter()
                    .next()
                    .map(|r| {
                        Ok::<_, Failure>(IdempotencyRow {
                            key: r.try_get(0).map_err(pg)?,
                            request: r.try_get(1).map_err(pg)?,
                            session_id: r.try_get(2).map_err(pg)?,
                            created: r.try_get(3).map_err(pg)?,
                            created_nanos: r.try_get(4).map_err(pg)?,
                        })
                    })
                    .transpose()?;
                Ok(Out::Idempotency(row))
            }
            Op::ReserveIndex(descriptor) => {
                // One statement, so the increment and its result are atomic; a rerun after a
                // lost connection can only skip an index, never hand one out twice.
                let rows = self.query(SQL_RESERVE_INDEX, &[descriptor]).await?;
                let next: i64 = match rows.first() {
                    Some(r) => r.try_get(0).map_err(pg)?,
                    None => return Err(Failure::Store(unexpected())),
                };
                Ok(Out::Index(next))
            }
        }
    }

    /// Applies a session commit or a link commit in one READ COMMITTED transaction: commits
    /// if every step succeeds, rolls back otherwise. The level is explicit because the
    /// outbox ordering below relies on each statement taking a fresh snapshot, whatever the
    /// database's default level is.
    async fn transaction(&mut self, work: Work<'_>, lock_suffix: u32) -> Result<(), Failure> {
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(|e| Failure::Pg(e, false))?;
        let body = match work {
            Work::Session(rows) => self.commit_body(rows, lock_suffix).await,
            Work::Link(rows) => self.commit_link_body(rows, lock_suffix).await,
        };
        match body {
            Ok(()) => self
                .client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| Failure::Pg(e, true)),
            Err(f) => {
                if self.client.batch_execute("ROLLBACK").await.is_err() {
                    self.poisoned = true;
                }
                Err(f)
            }
        }
    }

    /// A session commit (as [`Store::commit`] applies it) on an open transaction.
    async fn commit_body(&mut self, r: &CommitRows, lock_suffix: u32) -> Result<(), Failure> {
        self.apply_session(r).await?;
        self.insert_events(Some(&r.id), &r.events, lock_suffix)
            .await
    }

    /// A link commit on an open transaction: the link's compare-and-swap, then every
    /// session commit's rows exactly as [`commit_body`](Self::commit_body) writes them,
    /// then (last, see [`insert_events`](Self::insert_events)) the link's events and each
    /// session commit's events, in that order. Any conflict fails the whole transaction.
    async fn commit_link_body(
        &mut self,
        r: &LinkCommitRows,
        lock_suffix: u32,
    ) -> Result<(), Failure> {
        let written = match r.expected_version {
            None => {
                self.exec(SQL_INSERT_LINK, &[&r.id, &r.version, &r.body])
                    .await?
            }
            // No stored version exceeds i64::MAX, so such an expectation cannot hold.
            Some(None) => 0,
            Some(Some(expected)) => {
                self.exec(SQL_UPDATE_LINK, &[&r.id, &expected, &r.version, &r.body])
                    .await?
            }
        };
        if written == 0 {
            return Err(Failure::Conflict);
        }
        for s in &r.sessions {
            self.apply_session(s).await?;
        }
        self.insert_events(None, &r.events, lock_suffix).await?;
        for s in &r.sessions {
            self.insert_events(Some(&s.id), &s.events, lock_suffix)
                .await?;
        }
        Ok(())
    }

    /// Writes a session commit's rows (everything but its events) on an open transaction.
    async fn apply_session(&mut self, r: &CommitRows) -> Result<(), Failure> {
        // Compare-and-swap: the new row only if there is none, the update only if the stored
        // version is the expected one. Zero rows written: someone else won; roll back.
        let written = match r.expected_version {
            None => {
                self.exec(
                    SQL_INSERT_SESSION,
                    &[
                        &r.id, &r.created, &r.status, &r.version, &r.wake_at, &r.head, &r.link_id,
                    ],
                )
                .await?
            }
            Some(expected) => {
                self.exec(
                    SQL_UPDATE_SESSION,
                    &[
                        &r.id, &r.created, &r.status, &r.version, &r.wake_at, &r.head, &r.link_id,
                        &expected,
                    ],
                )
                .await?
            }
        };
        if written == 0 {
            return Err(Failure::Conflict);
        }
        // The checks in the in-memory store's order: version (above), transfer owners,
        // idempotency key.
        if !r.claimed_keys.is_empty() {
            self.exec(SQL_CLAIM_TRANSFER_KEYS, &[&r.id, &r.claimed_keys])
                .await?;
            let foreign = self
                .query(SQL_FOREIGN_TRANSFER_KEY, &[&r.id, &r.claimed_keys])
                .await?;
            if !foreign.is_empty() {
                return Err(Failure::Store(StoreError::Backend {
                    message: "transfer already recorded on another session".into(),
                    retryable: false,
                }));
            }
        }
        if let Some(i) = &r.idempotency {
            let n = self
                .exec(
                    SQL_INSERT_IDEMPOTENCY,
                    &[
                        &i.key,
                        &i.request,
                        &i.session_id,
                        &i.created,
                        &i.created_nanos,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(Failure::Conflict);
            }
        }
        if !r.other_keys.is_empty() {
            self.exec(SQL_INDEX_OTHER_KEYS, &[&r.id, &r.other_keys])
                .await?;
        }
        if !r.transfer_body_keys.is_empty() {
            self.exec(
                SQL_UPSERT_TRANSFERS,
                &[&r.id, &r.transfer_body_keys, &r.transfer_bodies],
            )
            .await?;
        }
        if !r.payment_ids.is_empty() {
            self.exec(
                SQL_UPSERT_PAYMENTS,
                &[&r.id, &r.payment_ids, &r.payment_bodies],
            )
            .await?;
        }
        if !r.hashes.is_empty() {
            self.exec(SQL_INDEX_HASHES, &[&r.id, &r.hashes]).await?;
        }
        if let Some(address) = &r.address {
            self.exec(SQL_INDEX_ADDRESS, &[&r.id, address]).await?;
        }
        Ok(())
    }

    /// Appends events to the outbox (filed under `session_id`, NULL for a link's events) on
    /// an open transaction. Callers write every row lock first and events last.
    async fn insert_events(
        &mut self,
        session_id: Option<&String>,
        e: &EventRows,
        lock_suffix: u32,
    ) -> Result<(), Failure> {
        if !e.ids.is_empty() {
            // The outbox contract: a reader that has seen seq n never later sees a seq below
            // n appear. A sequence (BIGSERIAL) does not give that: transaction A may draw 5,
            // B draw 6 and commit first; a reader then sees 6 and, later, 5. So the numbers
            // are assigned under a transaction-scoped advisory lock, taken last (after every
            // row lock of the transaction, so it cannot deadlock with them; a link commit
            // takes it once its sessions' rows are written) and held until COMMIT.
            // PostgreSQL makes a commit visible before it releases the transaction's locks,
            // and under READ COMMITTED the INSERT below takes its snapshot after the lock is
            // granted, so MAX(seq) sees every earlier outbox commit: numbers are handed out
            // in commit order, without gaps (a rolled-back transaction burns none).
            let key = lock_key(LOCK_OUTBOX, lock_suffix);
            self.exec(SQL_ADVISORY_LOCK, &[&key]).await?;
            self.exec(
                SQL_INSERT_EVENTS,
                &[&session_id, &e.ids, &e.created, &e.bodies],
            )
            .await?;
        }
        Ok(())
    }

    async fn migrate(&mut self, ctx: &Shared) -> Result<(), Failure> {
        let pg = |e| Failure::Pg(e, false);
        let key = lock_key(LOCK_MIGRATE, ctx.lock_suffix);
        let tx = self
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(pg)?;
        // Servers starting together wait here, then find the work done.
        tx.execute(SQL_ADVISORY_LOCK, &[&key]).await.map_err(pg)?;
        // `SET search_path` names the schema before it exists; create it under the lock.
        if let Some(schema) = &ctx.schema {
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(schema)
            ))
            .await
            .map_err(pg)?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(pg)?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if current > newest {
            return Err(Failure::Store(fatal(format!(
                "the database schema is at version {current}, newer than this crate's {newest}: upgrade the crate"
            ))));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).await.map_err(pg)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) \
                 VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
                &[version],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(|e| Failure::Pg(e, true))?;
        // Statements prepared before the tables existed (none today) would be stale.
        self.statements.clear();
        Ok(())
    }
}

fn session_rows(r: tokio_postgres::Row) -> Result<SessionRows, Failure> {
    let pg = |e| Failure::Pg(e, false);
    Ok(SessionRows {
        head: r.try_get(0).map_err(pg)?,
        payments: r.try_get(1).map_err(pg)?,
        transfers: r.try_get(2).map_err(pg)?,
    })
}

fn event_rows(rows: Vec<tokio_postgres::Row>) -> Result<Vec<(i64, String)>, Failure> {
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(|e| Failure::Pg(e, false))?,
                r.try_get(1).map_err(|e| Failure::Pg(e, false))?,
            ))
        })
        .collect()
}

impl crate::request::AddressIndex for PostgresStore {
    fn reserve(&self, descriptor: &str) -> Result<u32, crate::Error> {
        let Out::Index(index) = self.call(Op::ReserveIndex(descriptor.to_owned()))? else {
            return Err(unexpected().into());
        };
        u32::try_from(index)
            .ok()
            .filter(|i| *i < u32::MAX)
            .ok_or(crate::Error::RequestMismatch(
                "derivation indexes exhausted",
            ))
    }
}

/// Reads a link row back, checking that it holds the link its key names.
fn decode_link(id: &str, version: i64, body: &str) -> Result<Link, StoreError> {
    let link: Link = serde_json::from_str(body).map_err(|e| corrupt(&format!("link {id}"), e))?;
    if link.id().to_string() != id || Some(link.version()) != u64::try_from(version).ok() {
        return Err(StoreError::Corrupt(format!(
            "link row {id} (version {version}) holds link {} version {}",
            link.id(),
            link.version()
        )));
    }
    Ok(link)
}

impl LinkStore for PostgresStore {
    fn load_link(&self, id: LinkId) -> Result<Option<Link>, StoreError> {
        let id = id.to_string();
        let Out::Link(row) = self.call(Op::LoadLink(id.clone()))? else {
            return Err(unexpected());
        };
        row.map(|(version, body)| decode_link(&id, version, &body))
            .transpose()
    }

    /// One READ COMMITTED transaction: the link's compare-and-swap (an insert when no
    /// version is expected, else an update of the expected version), every session commit
    /// exactly as [`Store::commit`] applies it, the link's events (filed under no session)
    /// and the sessions' events, numbered under the same outbox lock as every commit. Any
    /// conflict rolls all of it back.
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        let rows = LinkCommitRows::new(commit)?;
        match self.call(Op::CommitLink(Box::new(rows)))? {
            Out::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn link_sessions(&self, id: LinkId) -> Result<Vec<SessionId>, StoreError> {
        match self.call(Op::LinkSessions(id.to_string()))? {
            Out::Ids(ids) => ids.iter().map(|s| parse_id(s)).collect(),
            _ => Err(unexpected()),
        }
    }
}
