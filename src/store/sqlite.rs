//! The SQLite store (feature `sqlite`); see [`SqliteStore`].

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, ffi, params,
};
use time::OffsetDateTime;

use super::{Commit, IdempotencyRecord, ListQuery, Page, Store, StoreError, StoredEvent};
use crate::event::Event;
use crate::id::SessionId;
use crate::json::millis::{from_millis, to_millis};
use crate::request::PaymentHash;
use crate::session::CheckoutSession;
use crate::transfer::{Transfer, TransferKey};

mod address_index;
mod links;
#[cfg(feature = "webhooks")]
mod webhooks;

/// How long a writer waits for another connection's write transaction by default.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A step of a migration run in Rust after its script, in the migration's transaction.
type Fill = fn(&Transaction<'_>) -> Result<(), StoreError>;

/// The schema migrations, in order: migration `i` (its script, then its fill if any) brings
/// `user_version` from `i` to `i + 1`. Never edit a migration once released: databases
/// created with it must upgrade; add one.
const MIGRATIONS: &[(&str, Option<Fill>)] = &[
    // 1: sessions, transfers, lookups, the outbox and idempotency records.
    (
        r#"
CREATE TABLE sessions (
    id      TEXT    NOT NULL PRIMARY KEY,
    created INTEGER NOT NULL,
    status  TEXT    NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 0),
    wake_at INTEGER,
    head    TEXT    NOT NULL
) STRICT;
CREATE INDEX sessions_by_created ON sessions (created, id);
CREATE INDEX sessions_by_status ON sessions (status, created, id);
CREATE INDEX sessions_by_wake ON sessions (wake_at, id) WHERE wake_at IS NOT NULL;

CREATE TABLE transfers (
    key        TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL,
    body       TEXT NOT NULL
) STRICT;
CREATE INDEX transfers_by_session ON transfers (session_id);

CREATE TABLE payment_hashes (
    hash       TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL
) STRICT;

CREATE TABLE addresses (
    address    TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL
) STRICT;

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL,
    session_id TEXT,
    created    INTEGER NOT NULL,
    event_type TEXT    NOT NULL,
    body       TEXT    NOT NULL
) STRICT;
CREATE INDEX events_by_session ON events (session_id, seq);

CREATE TABLE idempotency (
    key        TEXT    NOT NULL PRIMARY KEY,
    request    TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    created    INTEGER NOT NULL
) STRICT;
"#,
        None,
    ),
    // 2: links, the link that opened each session, webhook delivery and derivation indexes.
    (
        r#"
CREATE TABLE links (
    id      TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL CHECK (version >= 0),
    body    TEXT    NOT NULL
) STRICT;

ALTER TABLE sessions ADD COLUMN link_id TEXT;
UPDATE sessions SET link_id = json_extract(head, '$.link')
    WHERE json_valid(head) AND json_type(head, '$.link') = 'text';
CREATE INDEX sessions_by_link ON sessions (link_id, created, id) WHERE link_id IS NOT NULL;

-- `body` is `Endpoint::to_stored_json()`: it CONTAINS THE ENDPOINT'S SIGNING SECRET in
-- clear (`whsec_...`). Protect the database file and its backups like the secret itself.
CREATE TABLE endpoints (
    id   TEXT NOT NULL PRIMARY KEY,
    body TEXT NOT NULL
) STRICT;

CREATE TABLE delivery_cursors (
    endpoint TEXT    NOT NULL PRIMARY KEY,
    cursor   INTEGER NOT NULL CHECK (cursor >= 0)
) STRICT;

CREATE TABLE deliveries (
    endpoint        TEXT    NOT NULL,
    seq             INTEGER NOT NULL CHECK (seq >= 0),
    status          TEXT    NOT NULL,
    next_attempt_at INTEGER,
    body            TEXT    NOT NULL,
    PRIMARY KEY (endpoint, seq)
) STRICT;
CREATE INDEX deliveries_by_status ON deliveries (status, endpoint, seq);

CREATE TABLE address_index (
    descriptor TEXT    NOT NULL PRIMARY KEY,
    next       INTEGER NOT NULL CHECK (next >= 0)
) STRICT;
"#,
        None,
    ),
    // 3: payments as rows of their own; each session's head loses its payments.
    (
        r#"
CREATE TABLE payments (
    session_id TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (session_id, id)
) STRICT;
"#,
        Some(split_payments),
    ),
];

/// A [`Store`] in an SQLite database file (or in memory), shared safely by several
/// threads and processes.
///
/// # Durability
///
/// The database runs in WAL mode with `synchronous=NORMAL`: a committed transaction
/// survives a crash of the process, but the last few transactions may be lost if the
/// machine loses power or the operating system crashes before the WAL is synced (the
/// database itself never becomes corrupt). Call [`SqliteStore::with_synchronous_full`] to
/// sync the WAL on every commit instead, at the cost of one `fsync` per commit.
///
/// # Concurrency
///
/// Each `SqliteStore` owns one connection behind a mutex, so one instance can be shared
/// between threads (`Send + Sync`; wrap it in an `Arc`). Several instances, in one process
/// or in several, may open the same file: every commit is one `BEGIN IMMEDIATE`
/// transaction whose compare-and-swap on the session's version decides which concurrent
/// change wins, and a busy timeout (5 s by default) makes writers wait for each other. A
/// writer that still finds the database locked gets a retryable
/// [`StoreError::Backend`]. Reads run in a read transaction, so a session and its
/// transfers are always read from one snapshot.
///
/// # Schema
///
/// `STRICT` tables, versioned with `PRAGMA user_version`; opening a database applies the
/// migrations it lacks in one transaction (and refuses a database from a newer version of
/// this crate):
///
/// | table | columns |
/// | --- | --- |
/// | `sessions` | `id` TEXT PK, `created` INTEGER (Unix ms), `status` TEXT, `version` INTEGER, `wake_at` INTEGER NULL (Unix ms), `head` TEXT ([`CheckoutSession::storage_json`]: JSON without payments and transfers), `link_id` TEXT NULL |
/// | `payments` | (`session_id` TEXT, `id` TEXT) PK, `body` TEXT ([`CheckoutSession::payment_json`]) |
/// | `transfers` | `key` TEXT PK, `session_id` TEXT, `body` TEXT (JSON) |
/// | `payment_hashes` | `hash` TEXT PK, `session_id` TEXT |
/// | `addresses` | `address` TEXT PK, `session_id` TEXT |
/// | `events` | `seq` INTEGER PK AUTOINCREMENT, `id` TEXT, `session_id` TEXT NULL, `created` INTEGER, `event_type` TEXT, `body` TEXT (JSON) |
/// | `idempotency` | `key` TEXT PK, `request` TEXT, `session_id` TEXT, `created` INTEGER |
/// | `links` | `id` TEXT PK, `version` INTEGER, `body` TEXT (the [`Link`](crate::link::Link) as JSON) |
/// | `endpoints` | `id` TEXT PK, `body` TEXT (`Endpoint::to_stored_json()`, **secret included**) |
/// | `delivery_cursors` | `endpoint` TEXT PK, `cursor` INTEGER |
/// | `deliveries` | (`endpoint` TEXT, `seq` INTEGER) PK, `status` TEXT, `next_attempt_at` INTEGER NULL (Unix ms), `body` TEXT (JSON) |
/// | `address_index` | `descriptor` TEXT PK, `next` INTEGER |
///
/// Schema version 2 added `links`, the webhook tables, `address_index` and the
/// `sessions.link_id` column (NULL or the id of the link that opened the session, written
/// by every commit, indexed for [`link_sessions`](super::LinkStore::link_sessions)).
/// Schema version 3 added `payments`: each session's payments moved out of its `head`
/// into rows of their own (the upgrade rewrites every stored session).
///
/// Besides [`Store`], the store implements [`LinkStore`](super::LinkStore) (a link
/// commit, its events and its sessions' commits are one transaction),
/// [`AddressIndex`](crate::request::AddressIndex) (one `UPSERT … RETURNING` per
/// reservation: no index is handed out twice, across threads, processes and restarts) and,
/// with the `webhooks` feature, `DeliveryStore`, so a webhook dispatcher resumes where it
/// stopped after a restart. The `endpoints` table holds webhook signing secrets: protect
/// the file (and its backups) accordingly.
///
/// A session is stored as its head JSON plus one row per payment and one per transfer, and
/// a commit writes only the payments ([`CheckoutSession::changed_payments`]) and transfers
/// it changed, so recording a transfer costs the same however many payments and transfers
/// the session already has; sessions are rebuilt with [`CheckoutSession::from_storage`]. Times are kept in milliseconds, the precision of the JSON forms.
/// Events are filed under the session whose commit carried them (its
/// [`session_events`](Store::session_events)). A transfer belongs to one session: a commit
/// that would record a transfer key already held by another session is refused with a
/// non-retryable [`StoreError::Backend`] (the same funds cannot count twice). Corrupt rows
/// are reported as [`StoreError::Corrupt`].
///
/// ```
/// use bitcoin_checkout::store::{SqliteStore, Store};
/// use bitcoin_checkout::SessionId;
///
/// let store = SqliteStore::open_in_memory()?;
/// assert_eq!(store.load(SessionId::generate())?, None);
/// // A file shared by several processes: SqliteStore::open("checkout.db")?
/// # Ok::<(), bitcoin_checkout::store::StoreError>(())
/// ```
pub struct SqliteStore {
    /// `None` once closed.
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, switches it to WAL mode with
    /// `synchronous=NORMAL` and a 5 s busy timeout, and applies missing migrations.
    ///
    /// Several stores, in this process or others, may open the same file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        // Opening races with other processes creating or migrating the same file; those
        // steps wait on the busy timeout, but switching the journal mode may still report
        // the file busy, so the whole setup is retried a few times.
        let mut attempt = 0;
        loop {
            let result = Connection::open(path)
                .map_err(backend)
                .and_then(|conn| Self::setup(conn, true));
            match result {
                Err(e) if e.is_retryable() && attempt < 50 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// A private in-memory database (for tests): gone when the store is dropped.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        Self::setup(conn, false)
    }

    fn setup(mut conn: Connection, file: bool) -> Result<Self, StoreError> {
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(backend)?;
        if file {
            // Returns the mode in force; a file system without shared memory keeps the
            // rollback journal, which still works (with less concurrency).
            let _mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(backend)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Syncs the WAL on every commit (`synchronous=FULL`): committed transactions then also
    /// survive a power loss or an operating-system crash, at the cost of an `fsync` per
    /// commit.
    pub fn with_synchronous_full(self) -> Result<Self, StoreError> {
        self.with_conn(|conn| {
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(backend)
        })?;
        Ok(self)
    }

    /// How long a writer waits for another connection's write transaction before failing
    /// with a retryable [`StoreError::Backend`] (5 s by default).
    pub fn with_busy_timeout(self, timeout: Duration) -> Result<Self, StoreError> {
        self.with_conn(|conn| conn.busy_timeout(timeout).map_err(backend))?;
        Ok(self)
    }

    /// The schema version of the open database (the number of migrations applied).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.with_conn(|conn| {
            let v: i64 = conn
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(backend)?;
            u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v}")))
        })
    }

    /// The schema version this build of the crate writes.
    pub const fn latest_schema_version() -> u32 {
        MIGRATIONS.len() as u32
    }

    /// Closes the connection. Every later call (including `close`) fails with
    /// [`StoreError::Closed`]; a failure to close cleanly is reported, and the store is
    /// closed all the same.
    pub fn close(&self) -> Result<(), StoreError> {
        let conn = self.lock().take().ok_or(StoreError::Closed)?;
        conn.close().map_err(|(_conn, e)| backend(e))
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic while the lock was held cannot leave a half-written commit: the open
        // transaction is rolled back when it is dropped during unwinding.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let conn = guard.as_mut().ok_or(StoreError::Closed)?;
        f(conn)
    }

    /// Runs `f` in a read transaction: everything it reads comes from one snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(backend)?;
            let out = f(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits it; on any error the
    /// transaction is rolled back and nothing of it is written.
    fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self.lock();
        let conn = guard.as_mut().ok_or(StoreError::Closed)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        // Dropping the transaction on an early return rolls it back.
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }
}

/// Applies the migrations the database lacks, in one write transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let current: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(backend)?;
    let latest = MIGRATIONS.len();
    let current = usize::try_from(current)
        .map_err(|_| StoreError::Corrupt(format!("schema version {current}")))?;
    if current > latest {
        return Err(StoreError::Backend {
            message: format!(
                "the database has schema version {current}, newer than this library's {latest}"
            ),
            retryable: false,
        });
    }
    for (index, (script, fill)) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(script).map_err(backend)?;
        if let Some(fill) = fill {
            fill(&tx)?;
        }
        tx.pragma_update(None, "user_version", index + 1)
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

/// Migration 3's fill: every session row's head (which listed all its payments) becomes
/// [`CheckoutSession::storage_json`] plus one `payments` row per payment. A row that does
/// not read back is reported as [`StoreError::Corrupt`] (and nothing is migrated).
fn split_payments(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let ids = tx
        .prepare("SELECT id FROM sessions ORDER BY id")
        .map_err(backend)?
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut read_head = tx
        .prepare("SELECT head FROM sessions WHERE id = ?1")
        .map_err(backend)?;
    let mut write_head = tx
        .prepare("UPDATE sessions SET head = ?2 WHERE id = ?1")
        .map_err(backend)?;
    let mut write_payment = tx
        .prepare("INSERT INTO payments (session_id, id, body) VALUES (?1, ?2, ?3)")
        .map_err(backend)?;
    for id in &ids {
        let head: String = read_head
            .query_row([id], |row| row.get(0))
            .map_err(backend)?;
        let transfers = read_transfers(tx, id)?;
        let session = CheckoutSession::from_parts(&head, transfers)
            .map_err(|e| StoreError::Corrupt(format!("session {id}: {e}")))?;
        if session.id().to_string() != *id {
            return Err(StoreError::Corrupt(format!(
                "session row {id} holds session {}",
                session.id()
            )));
        }
        write_head
            .execute(params![id, session.storage_json()])
            .map_err(backend)?;
        for p in session.payments() {
            let body = session.payment_json(p.id()).ok_or_else(|| {
                StoreError::Corrupt(format!("session {id}: payment {} not writable", p.id()))
            })?;
            write_payment
                .execute(params![id, p.id().to_string(), body])
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// Maps a SQLite error: busy and locked are retryable, damaged files are corrupt.
fn backend(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(err, _) => match err.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Backend {
                message: e.to_string(),
                retryable: true,
            },
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Backend {
                message: e.to_string(),
                retryable: false,
            },
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Backend {
            message: e.to_string(),
            retryable: false,
        },
    }
}

/// Whether the error is a PRIMARY KEY or UNIQUE violation.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == ErrorCode::ConstraintViolation
                && (err.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || err.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE)
    )
}

/// An insert whose key may already exist: a duplicate is [`StoreError::Conflict`].
fn insert_or_conflict(result: rusqlite::Result<usize>) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
        Err(e) => Err(backend(e)),
    }
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Backend {
        message: format!("{what} {value} does not fit in SQLite's INTEGER"),
        retryable: false,
    })
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what} {value}")))
}

/// A row count or limit as SQLite's INTEGER (saturating: no table holds more rows).
fn limit_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn parse_id(text: &str) -> Result<SessionId, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("session id {text:?}: {e}")))
}

fn parse_time(ms: i64, what: &str) -> Result<OffsetDateTime, StoreError> {
    from_millis(ms).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn parse_event(seq: i64, body: &str) -> Result<StoredEvent, StoreError> {
    let seq = to_u64(seq, "event seq")?;
    let event =
        Event::from_json(body).map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?;
    Ok(StoredEvent { seq, event })
}

/// The transfer rows of a session, checked against their keys.
fn read_transfers(conn: &Connection, id: &str) -> Result<Vec<Transfer>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT key, body FROM transfers WHERE session_id = ?1")
        .map_err(backend)?;
    let rows = stmt
        .query_map([id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(backend)?;
    let mut transfers = Vec::new();
    for row in rows {
        let (key, body) = row.map_err(backend)?;
        let t: Transfer = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("transfer {key}: {e}")))?;
        if t.key.to_string() != key {
            return Err(StoreError::Corrupt(format!(
                "transfer row {key} holds transfer {}",
                t.key
            )));
        }
        transfers.push(t);
    }
    Ok(transfers)
}

/// Rebuilds a session from its row, its payment rows and its transfer rows (in the
/// caller's snapshot).
fn assemble(
    conn: &Connection,
    id: &str,
    head: &str,
    version: i64,
) -> Result<CheckoutSession, StoreError> {
    let payments = conn
        .prepare_cached("SELECT body FROM payments WHERE session_id = ?1")
        .map_err(backend)?
        .query_map([id], |row| row.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let transfers = read_transfers(conn, id)?;
    let session = CheckoutSession::from_storage(head, &payments, transfers)
        .map_err(|e| StoreError::Corrupt(format!("session {id}: {e}")))?;
    if session.id().to_string() != id || Some(session.version()) != u64::try_from(version).ok() {
        return Err(StoreError::Corrupt(format!(
            "session row {id} (version {version}) holds session {} version {}",
            session.id(),
            session.version()
        )));
    }
    Ok(session)
}

fn load_in(conn: &Connection, id: &str) -> Result<Option<CheckoutSession>, StoreError> {
    let row = conn
        .prepare_cached("SELECT head, version FROM sessions WHERE id = ?1")
        .map_err(backend)?
        .query_row([id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .optional()
        .map_err(backend)?;
    match row {
        Some((head, version)) => assemble(conn, id, &head, version).map(Some),
        None => Ok(None),
    }
}

fn find_session(conn: &Connection, sql: &str, key: &str) -> Result<Option<SessionId>, StoreError> {
    let found = conn
        .prepare_cached(sql)
        .map_err(backend)?
        .query_row([key], |row| row.get::<_, String>(0))
        .optional()
        .map_err(backend)?;
    found.as_deref().map(parse_id).transpose()
}

/// A commit turned into column values, before the database is touched.
struct Prepared {
    id: String,
    created: i64,
    status: &'static str,
    version: i64,
    wake_at: Option<i64>,
    head: String,
    /// (id, body) of the payments the commit wrote.
    payments: Vec<(String, String)>,
    /// (key, body)
    transfers: Vec<(String, String)>,
    /// The invoice hashes of the payments written.
    hashes: Vec<String>,
    address: Option<String>,
    /// The link that opened the session, if any.
    link_id: Option<String>,
    events: Vec<EventRow>,
}

/// An event turned into column values.
struct EventRow {
    id: String,
    created: i64,
    event_type: String,
    body: String,
}

impl EventRow {
    fn new(e: &Event) -> Self {
        Self {
            id: e.id.to_string(),
            created: to_millis(e.created),
            event_type: e.event_type.as_str().to_owned(),
            body: e.to_json(),
        }
    }

    /// Appends the event to the outbox, filed under `session_id` (NULL for link events).
    fn insert(&self, tx: &Transaction<'_>, session_id: Option<&str>) -> Result<(), StoreError> {
        tx.prepare_cached(
            "INSERT INTO events (id, session_id, created, event_type, body)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                self.id,
                session_id,
                self.created,
                self.event_type,
                self.body
            ])
        })
        .map_err(backend)?;
        Ok(())
    }
}

impl Prepared {
    fn new(commit: &Commit) -> Result<Self, StoreError> {
        let s = &commit.session;
        let encode = |t: &Transfer| {
            serde_json::to_string(t).map_err(|e| StoreError::Backend {
                message: format!("transfer {}: {e}", t.key),
                retryable: false,
            })
        };
        // A new session has no stored transfers yet: write all it has. Otherwise only the
        // ones the commit changed (each key once).
        let keys: Vec<TransferKey> = match commit.expected_version {
            None => s.transfers().map(|t| t.key).collect(),
            Some(_) => {
                let mut keys = commit.changed_transfers.clone();
                keys.sort();
                keys.dedup();
                keys
            }
        };
        let mut transfers = Vec::with_capacity(keys.len());
        for key in keys {
            // A key the session does not hold names no transfer: nothing to store.
            if let Some(t) = s.transfer(&key) {
                transfers.push((key.to_string(), encode(t)?));
            }
        }
        // Payments are rows of their own: a new session writes all, a change only the ones
        // it touched, so a commit's cost does not grow with the session's history.
        let written: Vec<_> = match commit.expected_version {
            None => s.payments().iter().map(|p| &**p).collect(),
            Some(_) => s.changed_payments().collect(),
        };
        let mut payments = Vec::with_capacity(written.len());
        for p in &written {
            let body = s.payment_json(p.id()).ok_or_else(|| StoreError::Backend {
                message: format!("payment {}: cannot be written", p.id()),
                retryable: false,
            })?;
            payments.push((p.id().to_string(), body));
        }
        Ok(Self {
            id: s.id().to_string(),
            created: to_millis(s.created()),
            status: s.status().as_str(),
            version: to_i64(s.version(), "session version")?,
            wake_at: s.wake_at().map(to_millis),
            head: s.storage_json(),
            payments,
            transfers,
            hashes: written
                .iter()
                .filter_map(|p| p.request().lightning.as_ref())
                .map(|inv| inv.payment_hash.to_string())
                .collect(),
            address: s.onchain_address().map(str::to_owned),
            link_id: s.link().map(|l| l.to_string()),
            events: commit.events.iter().map(EventRow::new).collect(),
        })
    }

    /// Applies the commit inside the caller's open write transaction: the compare-and-swap
    /// on the session's version, the idempotency record, the changed transfers, the lookup
    /// rows and the events. The one code path of [`Store::commit`] and of each session
    /// commit of a link commit. An error leaves the transaction to be rolled back.
    fn apply(&self, tx: &Transaction<'_>, commit: &Commit) -> Result<(), StoreError> {
        match commit.expected_version {
            None => insert_or_conflict(
                tx.prepare_cached(
                    "INSERT INTO sessions (id, created, status, version, wake_at, head, link_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        self.id,
                        self.created,
                        self.status,
                        self.version,
                        self.wake_at,
                        self.head,
                        self.link_id
                    ])
                }),
            )?,
            Some(expected) => {
                // No stored version exceeds i64::MAX, so such an expectation cannot hold.
                let Ok(expected) = i64::try_from(expected) else {
                    return Err(StoreError::Conflict);
                };
                let updated = tx
                    .prepare_cached(
                        "UPDATE sessions
                         SET status = ?3, version = ?4, wake_at = ?5, head = ?6, link_id = ?7
                         WHERE id = ?1 AND version = ?2",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            self.id,
                            expected,
                            self.status,
                            self.version,
                            self.wake_at,
                            self.head,
                            self.link_id
                        ])
                    })
                    .map_err(backend)?;
                if updated != 1 {
                    return Err(StoreError::Conflict);
                }
            }
        }
        if let Some(rec) = &commit.idempotency {
            insert_or_conflict(
                tx.prepare_cached(
                    "INSERT INTO idempotency (key, request, session_id, created)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        rec.key,
                        rec.request,
                        rec.session_id.to_string(),
                        to_millis(rec.created)
                    ])
                }),
            )?;
        }
        let mut payment = tx
            .prepare_cached(
                "INSERT INTO payments (session_id, id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (session_id, id) DO UPDATE SET body = excluded.body",
            )
            .map_err(backend)?;
        for (id, body) in &self.payments {
            payment
                .execute(params![self.id, id, body])
                .map_err(backend)?;
        }
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO transfers (key, session_id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET body = excluded.body
                 WHERE transfers.session_id = excluded.session_id",
            )
            .map_err(backend)?;
        for (key, body) in &self.transfers {
            let written = upsert
                .execute(params![key, self.id, body])
                .map_err(backend)?;
            if written == 0 {
                // The same funds cannot count on two sessions.
                return Err(StoreError::Backend {
                    message: format!("transfer {key} is already recorded on another session"),
                    retryable: false,
                });
            }
        }
        let mut hash = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO payment_hashes (hash, session_id) VALUES (?1, ?2)",
            )
            .map_err(backend)?;
        for h in &self.hashes {
            hash.execute(params![h, self.id]).map_err(backend)?;
        }
        if let Some(address) = &self.address {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO addresses (address, session_id) VALUES (?1, ?2)",
            )
            .and_then(|mut stmt| stmt.execute(params![address, self.id]))
            .map_err(backend)?;
        }
        for event in &self.events {
            // Filed under the committing session, like the reference store's timeline.
            event.insert(tx, Some(&self.id))?;
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        let id = id.to_string();
        self.read(|conn| load_in(conn, &id))
    }

    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let prepared = Prepared::new(commit)?;
        self.write(|tx| prepared.apply(tx, commit))
    }

    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
        let key = key.to_string();
        self.with_conn(|conn| {
            find_session(
                conn,
                "SELECT session_id FROM transfers WHERE key = ?1",
                &key,
            )
        })
    }

    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        let hash = hash.to_string();
        self.with_conn(|conn| {
            find_session(
                conn,
                "SELECT session_id FROM payment_hashes WHERE hash = ?1",
                &hash,
            )
        })
    }

    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        self.with_conn(|conn| {
            find_session(
                conn,
                "SELECT session_id FROM addresses WHERE address = ?1",
                address,
            )
        })
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.page_size();
        let status = query.status.map(|s| s.as_str());
        let fetch = limit_i64(limit.saturating_add(1));
        self.read(|conn| {
            // The cursor's position; an unknown cursor gives an empty page.
            let position = |cursor: SessionId| -> Result<Option<(i64, String)>, StoreError> {
                let id = cursor.to_string();
                let created = conn
                    .prepare_cached("SELECT created FROM sessions WHERE id = ?1")
                    .map_err(backend)?
                    .query_row([&id], |row| row.get::<_, i64>(0))
                    .optional()
                    .map_err(backend)?;
                Ok(created.map(|c| (c, id)))
            };
            // ?1, ?2: the cursor's (created, id); ?3: the status or NULL; ?4: the row count.
            const COLUMNS: &str = "SELECT id, head, version FROM sessions";
            const FILTER: &str = "(?3 IS NULL OR status = ?3)";
            let (sql, cursor, newer) = if let Some(before) = query.ending_before {
                let Some(pos) = position(before)? else {
                    return Ok(Page {
                        data: Vec::new(),
                        has_more: false,
                    });
                };
                let sql = format!(
                    "{COLUMNS} WHERE (created, id) > (?1, ?2) AND {FILTER}
                     ORDER BY created ASC, id ASC LIMIT ?4"
                );
                (sql, Some(pos), true)
            } else if let Some(after) = query.starting_after {
                let Some(pos) = position(after)? else {
                    return Ok(Page {
                        data: Vec::new(),
                        has_more: false,
                    });
                };
                let sql = format!(
                    "{COLUMNS} WHERE (created, id) < (?1, ?2) AND {FILTER}
                     ORDER BY created DESC, id DESC LIMIT ?4"
                );
                (sql, Some(pos), false)
            } else {
                let sql = format!(
                    "{COLUMNS} WHERE ?1 IS NULL AND ?2 IS NULL AND {FILTER}
                     ORDER BY created DESC, id DESC LIMIT ?4"
                );
                (sql, None, false)
            };
            let (c, i) = match &cursor {
                Some((created, id)) => (Some(*created), Some(id.as_str())),
                None => (None, None),
            };
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(params![c, i, status, fetch], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let has_more = rows.len() > limit;
            let mut data = rows
                .iter()
                .take(limit)
                .map(|(id, head, version)| assemble(conn, id, head, *version))
                .collect::<Result<Vec<_>, _>>()?;
            if newer {
                data.reverse();
            }
            Ok(Page { data, has_more })
        })
    }

    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        // Stored sessions carry millisecond times, so comparing in whole milliseconds is
        // exact: wake_at (ms) <= now iff wake_at <= floor(now).
        let now = to_millis(now);
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM sessions WHERE wake_at IS NOT NULL AND wake_at <= ?1
                     ORDER BY wake_at ASC, id ASC LIMIT ?2",
                )
                .map_err(backend)?;
            let ids = stmt
                .query_map(params![now, limit_i64(limit)], |row| {
                    row.get::<_, String>(0)
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            ids.iter().map(|id| parse_id(id)).collect()
        })
    }

    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // Sequence numbers are positive and fit in i64: a cursor beyond that has nothing after it.
        let Ok(after) = i64::try_from(after.unwrap_or(0)) else {
            return Ok(Vec::new());
        };
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq ASC LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after, limit_i64(limit)], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.iter()
                .map(|(seq, body)| parse_event(*seq, body))
                .collect()
        })
    }

    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        let id = id.to_string();
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, body FROM events WHERE session_id = ?1 ORDER BY seq ASC",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([&id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.iter()
                .map(|(seq, body)| parse_event(*seq, body))
                .collect()
        })
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.with_conn(|conn| {
            let row = conn
                .prepare_cached(
                    "SELECT request, session_id, created FROM idempotency WHERE key = ?1",
                )
                .map_err(backend)?
                .query_row([key], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .optional()
                .map_err(backend)?;
            let Some((request, session_id, created)) = row else {
                return Ok(None);
            };
            Ok(Some(IdempotencyRecord {
                key: key.to_owned(),
                request,
                session_id: parse_id(&session_id)?,
                created: parse_time(created, "idempotency record")?,
            }))
        })
    }
}
