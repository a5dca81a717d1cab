//! The SQLite store (feature `sqlite`); see [`SqliteStore`].

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, ffi};

use super::{Corruption, StoreError};
use schema::{MIGRATIONS, migrate};

mod address_index;
mod commit;
mod event_lists;
mod links;
mod object_cache;
mod older_objects;
mod outbox;
mod outbox_seq;
mod packed;
mod reads;
mod resume;
mod schema;
mod transfer_lists;
#[cfg(feature = "webhooks")]
mod webhooks;

/// How long a writer waits for another connection's write transaction by default.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection. The store has about 50 statements of its own
/// plus one per listing filter combination; with rusqlite's default of 16 a lifecycle
/// evicted and parsed its statements again on every commit (a tenth of its instructions).
const STATEMENT_CACHE: usize = 256;

/// A [`Store`](super::Store) in an SQLite database file (or in memory), shared safely by several
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
/// Each `SqliteStore` owns one connection behind a mutex for its writes, so one instance can
/// be shared between threads (`Send + Sync`; wrap it in an `Arc`), and, on a file in WAL
/// mode, a second, read-only one that a read takes when a write holds the first: a read
/// then never waits for a write (of this store or any other), so the store says its reads
/// never block
/// ([`Store::reads_never_block`](super::Store::reads_never_block)) and the async layers
/// answer them on the executor's thread. Several instances, in one process
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
/// | `sessions` | `id` TEXT PK, `created` INTEGER (Unix ms), `status` TEXT, `version` INTEGER, `wake_at` INTEGER NULL (Unix ms), `head` BLOB ([`SessionRow::head`](super::rows::SessionRow::head), JSON without payments and transfers, packed: see below), `link_id` TEXT NULL, `source_id` TEXT NULL, `metadata` TEXT NULL, `review` INTEGER, `livemode` INTEGER (0 or 1) |
/// | `payments` | (`session_id` TEXT, `id` TEXT) PK (`WITHOUT ROWID`), `body` BLOB ([`CheckoutSession::payment_json`](crate::session::CheckoutSession::payment_json), packed) |
/// | `transfers` | `key` TEXT PK, `session_id` TEXT, `body` TEXT (JSON) |
/// | `payment_hashes` | `hash` TEXT PK, `session_id` TEXT |
/// | `addresses` | `address` TEXT PK, `session_id` TEXT |
/// | `events` | `seq` INTEGER PK (the row id; never handed out twice, see ADR 29), `id` BLOB (the event id's 16 UUID bytes), `session_id` BLOB NULL (likewise), `created` INTEGER, `event_type` TEXT, `body` TEXT (JSON), `carrier` BLOB NULL, `part` BLOB NULL, `object_version` INTEGER NULL |
/// | `idempotency` | `key` TEXT PK, `request` TEXT, `session_id` TEXT, `created` INTEGER |
/// | `links` | `id` TEXT PK, `version` INTEGER, `body` TEXT (the [`Link`](crate::link::Link) as JSON), `created` INTEGER (Unix ms), `kind` TEXT (`checkout` or `payment`), `livemode` INTEGER (0 or 1) |
/// | `endpoints` | `id` TEXT PK, `body` TEXT (`Endpoint::to_stored_json()`, **secret included**) |
/// | `delivery_cursors` | `endpoint` TEXT PK, `cursor` INTEGER |
/// | `deliveries` | (`endpoint` TEXT, `seq` INTEGER) PK, `status` TEXT, `next_attempt_at` INTEGER NULL (Unix ms), `body` TEXT (JSON) |
/// | `address_index` | `descriptor` TEXT PK, `next` INTEGER |
///
/// Schema version 2 added `links`, the webhook tables, `address_index` and the
/// `sessions.link_id` column (NULL or the id of the link that opened the session, written
/// by every commit, indexed for [`link_sessions`](super::LinkStore::link_sessions)).
/// Schema version 3 added `payments`: each session's payments moved out of its `head`
/// into rows of their own (the upgrade rewrites every stored session). Versions 4 to 6
/// added the listing filters (`sessions.source_id`, `metadata` with `session_metadata`
/// rows, `review`) and `resume_points`. Version 7 added the reads of the HTTP API: the
/// indexes `payments_by_id` ([`find_by_payment`](super::Store::find_by_payment)) and
/// `events_by_id` ([`event`](super::Store::event)), `sessions.livemode` (the listing's
/// mode filter) and the `links` listing columns `created`, `kind` and `livemode` with their
/// indexes ([`list_links`](super::LinkStore::list_links)), filled from the stored heads,
/// bodies and ids; each is written with its new row and never changes. Versions 8 to 10
/// added thin events' `carrier` and `part` (ADR 17), `held_transfers` and the idempotency
/// records' age index; version 11 rebuilt `payment_hashes`, `addresses` and `transfers` as
/// `WITHOUT ROWID` tables (ADR 21); version 12 added `events.object_version`,
/// `sessions.object_payments` and `session_objects`: events name their object by the
/// session's version, the live rows keep the latest and deltas the older ones (ADR 22);
/// version 13 rebuilt `events` with its ids (event, session, carrier, part) as 16 bytes
/// instead of text (ADR 24); version 14 packed the live rows (ADR 25): `sessions.head` and
/// `payments.body` hold their JSON as a format byte (1) and a zstd frame compressed against
/// a fixed dictionary for their kind of row (a sample head or payment: the field names and
/// common values), so a session's rows take about a quarter of their text's bytes and read
/// back byte for byte; `payments` became `WITHOUT ROWID`; version 15 rebuilt `events`
/// without AUTOINCREMENT (ADR 29: the same numbers, since the newest event is never
/// deleted, without rewriting `sqlite_sequence` in every commit); version 16 lists a
/// session's event numbers in its own row (`sessions.event_seqs`, past 64 of them in
/// `session_events_beyond`) instead of the index `events_by_session`, which cost every
/// commit a page of the write-ahead log (ADR 32); version 17 keeps the older object a
/// commit moves past in its first event row (`events.older_version`, `older_base`,
/// `older_body`) instead of a `session_objects` row, which cost another page (ADR 33);
/// version 18 lists a session's transfer keys in its own row (`sessions.transfer_keys`,
/// past 20 of them in `session_transfers_beyond`) instead of the index
/// `transfers_by_session` (ADR 34).
///
/// Besides [`Store`](super::Store), the store implements [`LinkStore`](super::LinkStore) (a link
/// commit, its events and its sessions' commits are one transaction),
/// [`AddressIndex`](crate::request::AddressIndex) (one `UPSERT … RETURNING` per
/// reservation: no index is handed out twice, across threads, processes and restarts) and,
/// with the `webhooks` feature, `DeliveryStore`, so a webhook dispatcher resumes where it
/// stopped after a restart. The `endpoints` table holds webhook signing secrets: protect
/// the file (and its backups) accordingly.
///
/// The rows are those of the crate's one row mapping ([`rows`](super::rows)): a session is
/// stored as its head plus one row per payment and one per transfer, a commit writes only
/// the payments and transfers it names ([`Commit::payments`](super::Commit::payments),
/// [`Commit::transfers`](super::Commit::transfers)), so recording a transfer costs the same
/// however many payments and transfers the session already has, and sessions are read back
/// through [`rows::decode_session`](super::rows::decode_session) with its integrity checks.
/// Times are kept in milliseconds, the precision of the JSON forms.
///
/// A store keeps in memory the event object its own last commit left for up to 256
/// sessions (about 1.5 MB), so that the session's next commit need not read it back; it
/// is used only while the row is at that version, so stores sharing a file stay exact
/// (ADR 30).
///
/// Events are filed under the session whose commit carried them (its
/// [`session_events`](super::Store::session_events)). A transfer belongs to one session: a commit
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
    /// The read-only connection a read takes when a write holds `conn`, on a file in WAL
    /// mode; `None` inside once closed. Without it (in memory, or a rollback journal,
    /// where readers wait for writers) reads wait for `conn`.
    reader: Option<Mutex<Option<Connection>>>,
    /// The objects this store's commits left in the live rows (ADR 30).
    objects: object_cache::ObjectCache,
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
                .and_then(|conn| Self::setup(conn, Some(path)));
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
        Self::setup(conn, None)
    }

    fn setup(mut conn: Connection, file: Option<&Path>) -> Result<Self, StoreError> {
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(backend)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let mut wal = false;
        if file.is_some() {
            // Returns the mode in force; a file system without shared memory keeps the
            // rollback journal, which still works (with less concurrency).
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(backend)?;
            wal = mode.eq_ignore_ascii_case("wal");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        migrate(&mut conn)?;
        // Opened once the schema is in place. In WAL mode a reader works on the snapshot
        // its transaction starts from and never takes a lock a writer holds.
        let reader = match file {
            Some(path) if wal => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let reader = Connection::open_with_flags(path, flags).map_err(backend)?;
                reader.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(backend)?;
                reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Some(Mutex::new(Some(reader)))
            }
            _ => None,
        };
        Ok(Self {
            conn: Mutex::new(Some(conn)),
            reader,
            objects: object_cache::ObjectCache::default(),
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
        if let Some(reader) = &self.reader {
            let mut guard = reader.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = guard.as_mut().ok_or(StoreError::Closed)?;
            conn.busy_timeout(timeout).map_err(backend)?;
        }
        Ok(self)
    }

    /// The schema version of the open database (the number of migrations applied).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.with_conn(|conn| {
            let v: i64 = conn
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(backend)?;
            u32::try_from(v).map_err(|_| Corruption::undecodable("schema version", v).into())
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
        let reader = self
            .reader
            .as_ref()
            .and_then(|r| r.lock().unwrap_or_else(PoisonError::into_inner).take());
        let closed = conn.close().map_err(|(_conn, e)| backend(e));
        match reader.map(Connection::close) {
            Some(Err((_conn, e))) if closed.is_ok() => Err(backend(e)),
            _ => closed,
        }
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

    /// Runs `f` for a read: on the writes' connection when no write holds it (its page
    /// cache is the one its commits keep warm: a second connection would re-read every
    /// page a commit changed), else on the reads' own connection, so a read never waits
    /// for a write. Without a reads' connection, on the writes' one.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(reader) = &self.reader else {
            return self.with_conn(f);
        };
        let mut guard = match self.conn.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => reader.lock().unwrap_or_else(PoisonError::into_inner),
        };
        let conn = guard.as_mut().ok_or(StoreError::Closed)?;
        f(conn)
    }

    /// Runs `f` in a read transaction (see `with_reader`): everything it reads comes
    /// from one snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_reader(|conn| in_transaction(conn, "BEGIN", f))
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits it; on any error the
    /// transaction is rolled back and nothing of it is written.
    fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self.lock();
        let conn = guard.as_mut().ok_or(StoreError::Closed)?;
        in_transaction(conn, "BEGIN IMMEDIATE", f)
    }
}

/// Runs `f` between `begin` and `COMMIT` on `conn`, rolling back on any error (and on a
/// panic in `f`). Both statements come from the connection's statement cache: rusqlite's
/// `Transaction` parses `BEGIN` and `COMMIT` again on every use, which cost a lifecycle 2 %
/// of its instructions.
fn in_transaction<T, E: From<StoreError>>(
    conn: &Connection,
    begin: &str,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    /// Rolls the transaction back when dropped before [`Open::committed`].
    struct Open<'c> {
        conn: &'c Connection,
        committed: bool,
    }
    impl Open<'_> {
        fn committed(mut self) -> Result<(), StoreError> {
            run_cached(self.conn, "COMMIT")?;
            self.committed = true;
            Ok(())
        }
    }
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            // A rollback that fails leaves nothing to undo (SQLite has rolled back itself,
            // or the transaction never began): the next `BEGIN` says so if not.
            if !self.committed {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }
    run_cached(conn, begin)?;
    let open = Open {
        conn,
        committed: false,
    };
    let out = f(conn)?;
    open.committed()?;
    Ok(out)
}

/// Runs a statement without parameters or rows from the statement cache.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(backend)
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
                Corruption::undecodable("database file", &e).into()
            }
            _ => StoreError::Backend {
                message: e.to_string(),
                retryable: false,
            },
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(..) => Corruption::undecodable("column", &e).into(),
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
    u64::try_from(value).map_err(|_| {
        Corruption::undecodable(what.to_owned(), format!("negative value {value}")).into()
    })
}

/// A row count or limit as SQLite's INTEGER (saturating: no table holds more rows).
fn limit_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
