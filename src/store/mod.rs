//! The store port: where sessions, their transfers and their events live.
//!
//! A store does not know the rules of a session; it keeps what the service commits:
//!
//! * **Atomic commits with compare-and-swap.** [`Store::commit`] writes a session's new
//!   state, exactly the payments and transfers its change names ([`Commit::payments`],
//!   [`Commit::transfers`]) and the events the change caused (the outbox) in one
//!   transaction, and only if the stored version is still [`Commit::expected_version`].
//!   Otherwise nothing is written and [`StoreError::Conflict`] is returned; the service
//!   reloads and retries. [`rows`] maps a commit to rows and rows back to a session, with
//!   the integrity checks every store makes, for stores that keep rows.
//! * **Idempotency claims.** [`Store::claim_idempotency`] inserts a key's record before the
//!   session it names is created, so of concurrent creates with one key exactly one makes
//!   the session (and its invoice and address).
//! * **Lookups** by session id, by transfer key, by invoice payment hash, by on-chain
//!   address and by payment (quote) id, so a report of funds finds its session.
//! * **Listing** newest first with cursor pagination, filtered by status, `source_id`, a
//!   metadata key and value, a creation time range and live or test mode ([`ListQuery`]);
//!   a query with both cursors or a limit out of range is refused
//!   ([`StoreError::InvalidQuery`]), and the `source_id` and metadata filters are answered
//!   from an index, not a scan. Link stores list links the same way ([`LinkListQuery`]).
//! * **The outbox**: every committed event gets a store-wide sequence number; events are
//!   read back in that order after a cursor. A reader that has seen sequence `n` never
//!   later finds an event below `n` appear (stores must serialise the assignment of
//!   sequence numbers with the commit that makes them visible). Sequence numbers are
//!   above 0 and strictly increase in commit order, but **may have gaps**: a store may
//!   draw them from a database sequence that a rolled-back transaction consumed. A gap
//!   never means a lost event; readers use `seq` only as a cursor, never to count events.
//!   Every committed event is returned exactly once to a reader that pages with
//!   [`Store::events_after`], and an event's number never changes once it is visible.
//!   The outbox is also read newest first ([`Store::events_before`]) and one event at a
//!   time by its id ([`Store::event`]), from an index.
//!
//! Stores are synchronous and `Send + Sync`; the async facade of the service runs them on
//! blocking threads (see `docs/adr/0002-sync-ports-async-facade.md`).

mod event_rows;
mod link_query;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod list_sql;
mod live_object;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
mod resume;
pub mod rows;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use link_query::{LinkKind, LinkListQuery, LinkPage};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PoolStatus, PostgresStore, PostgresStoreBuilder, SslMode};
pub use query::{DEFAULT_LIST_LIMIT, ListQuery, ListQueryError, MAX_LIST_LIMIT};
pub use resume::ResumeStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use time::OffsetDateTime;

use crate::hash::PaymentHash;
use crate::id::{EventId, LinkId, PaymentId, SessionId};
use crate::link::Link;
use crate::outbox::Event;
use crate::session::{CheckoutSession, HeldTransfer, SessionChange};
use crate::transfer::TransferKey;

/// What went wrong in a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stored version was not the expected one (or the session or idempotency key
    /// already exists on insert). Nothing was written; reload and retry.
    #[error("concurrent change: the stored version is not the one expected")]
    Conflict,
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// The backend failed; `retryable` says whether the same call may succeed later
    /// (connection lost, serialization failure, server restart).
    #[error("store backend error: {message}")]
    Backend {
        /// What the backend said (never contains credentials).
        message: String,
        /// Whether retrying may help.
        retryable: bool,
    },
    /// Stored data could not be read back as what it claims to be.
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] Corruption),
    /// The commit gave its session a payment hash or an on-chain address another session
    /// already holds (or records a transfer another session holds). Nothing was written:
    /// the session that claimed the key first keeps it, and funds sent to it are credited
    /// there, never to the newcomer. A payment-request generator that repeats itself
    /// causes this; it is not retryable.
    #[error("{key} already belongs to session {holder}")]
    KeyTaken {
        /// The key.
        key: RoutingKey,
        /// The session that holds it.
        holder: SessionId,
    },
    /// A listing asked for something no page can be (both cursors, a limit out of range).
    #[error("invalid list query: {0}")]
    InvalidQuery(#[from] ListQueryError),
}

/// A key that routes reported funds to exactly one session: each belongs to the first
/// session whose commit names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RoutingKey {
    /// A quote's Lightning invoice payment hash.
    PaymentHash(PaymentHash),
    /// A session's on-chain receive address.
    Address(String),
    /// A recorded transfer.
    Transfer(TransferKey),
}

impl std::fmt::Display for RoutingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PaymentHash(h) => write!(f, "payment hash {h}"),
            Self::Address(a) => write!(f, "address {a}"),
            Self::Transfer(k) => write!(f, "transfer {k}"),
        }
    }
}

/// What is wrong with a stored row: the same value in every store for the same damage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// The row's content cannot be decoded.
    #[error("{row} cannot be read: {reason}")]
    Undecodable {
        /// Which row (e.g. `session cs_…`, `transfer <key>`, `event 42`).
        row: String,
        /// What the decoder said.
        reason: String,
    },
    /// The row holds another object than its key names (a row copied or edited by hand).
    #[error("{row} holds {field} {found:?} where its key says {expected:?}")]
    Mismatch {
        /// Which row.
        row: String,
        /// Which field disagrees (`id`, `version`, `key`).
        field: &'static str,
        /// What the row's key says.
        expected: String,
        /// What the row holds.
        found: String,
    },
}

impl Corruption {
    /// A row whose content cannot be decoded.
    pub fn undecodable(row: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Undecodable {
            row: row.into(),
            reason: reason.to_string(),
        }
    }

    /// A row that holds another object than its key names.
    pub fn mismatch(
        row: impl Into<String>,
        field: &'static str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Self::Mismatch {
            row: row.into(),
            field,
            expected: expected.into(),
            found: found.into(),
        }
    }
}

impl StoreError {
    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict => true,
            Self::Backend { retryable, .. } => *retryable,
            Self::Closed | Self::Corrupt(_) | Self::KeyTaken { .. } | Self::InvalidQuery(_) => {
                false
            }
        }
    }
}

/// A store failure while reserving a derivation index, as the address port reports it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn index_backend(e: StoreError) -> crate::request::RequestError {
    crate::request::RequestError::Backend {
        message: e.to_string(),
        retryable: e.is_retryable(),
    }
}

/// The refusal of a commit that names `key` (as a SQL store keeps it: text), which the
/// session `holder` (its stored id) holds already.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn key_taken<K>(wrap: fn(K) -> RoutingKey, key: &str, holder: &str) -> StoreError
where
    K: std::str::FromStr,
    K::Err: std::fmt::Display,
{
    let key = match key.parse::<K>() {
        Ok(k) => wrap(k),
        Err(e) => return Corruption::undecodable(format!("lookup key {key}"), e).into(),
    };
    match holder.parse::<SessionId>() {
        Ok(holder) => StoreError::KeyTaken { key, holder },
        Err(e) => Corruption::undecodable(format!("the holder of {key}"), e).into(),
    }
}

/// An idempotency record: the key a client sent with a create, the request it stood for
/// and the session it creates. It is claimed before the session exists (see
/// [`Store::claim_idempotency`]); times are kept to the millisecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The client's key (at most 255 characters).
    pub key: String,
    /// The request's canonical JSON: the same key with another request is refused.
    pub request: String,
    /// The session the request creates.
    pub session_id: SessionId,
    /// When it was first used (whole milliseconds).
    pub created: OffsetDateTime,
}

/// One atomic change: a session's new state with what changed and what it caused.
///
/// A store writes the session's own row, the payments in [`payments`](Self::payments) and
/// the transfers in [`transfers`](Self::transfers), as they are in
/// [`session`](Self::session), and appends the events; every other payment and transfer
/// is unchanged. For a new session the lists name all of its payments and transfers.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The session after the change (its `version` is above `expected_version`: one command
    /// and the re-quote it triggers may each count a change).
    pub session: CheckoutSession,
    /// The version the change was computed from; `None` inserts a new session (which must
    /// not exist yet).
    pub expected_version: Option<u64>,
    /// The payments the change inserted or modified, each once.
    pub payments: Vec<PaymentId>,
    /// The transfers the change inserted or modified, each once.
    pub transfers: Vec<TransferKey>,
    /// The events the change caused, in order.
    pub events: Vec<Event>,
    /// A transfer beyond the session's transfer cap ([`SessionChange::held`]): written
    /// apart from the session (never loaded with it; read with
    /// [`Store::held_transfers`]), its key claimed like a transfer's. Its key recorded
    /// already refuses the commit: by another session with [`StoreError::KeyTaken`], by
    /// this one with [`StoreError::Conflict`] (a racing report of the same transfer).
    pub held: Option<HeldTransfer>,
}

impl Commit {
    /// The commit of `change`, made on `session` from `expected_version`, with its events
    /// wrapped as `events`.
    pub fn new(
        session: CheckoutSession,
        expected_version: Option<u64>,
        change: &SessionChange,
        events: Vec<Event>,
    ) -> Self {
        Self {
            session,
            expected_version,
            payments: change.payments().to_vec(),
            transfers: change.transfers().to_vec(),
            events,
            held: change.held().cloned(),
        }
    }
}

/// What [`Store::load_if_changed`] found.
// Returned and matched at once, never kept: boxing the session would only add an
// allocation (an `Option<CheckoutSession>`, as `load` returns, is as large).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The session is still at the version asked about.
    Unchanged,
    /// The session is at another version: here it is.
    Changed(CheckoutSession),
    /// No session has this id (any more).
    Gone,
}

/// [`Store::load_if_changed`] for a store that reads the stored version (`stored`, the
/// column as it holds it) apart from the session: unchanged at `version`, else `load`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn reload_by_version(
    stored: Option<i64>,
    version: u64,
    load: impl FnOnce() -> Result<Option<CheckoutSession>, StoreError>,
) -> Result<Reload, StoreError> {
    match stored {
        None => Ok(Reload::Gone),
        Some(v) if u64::try_from(v).is_ok_and(|v| v == version) => Ok(Reload::Unchanged),
        Some(_) => Ok(load()?.map_or(Reload::Gone, Reload::Changed)),
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The sessions on this page, newest first.
    pub data: Vec<CheckoutSession>,
    /// Whether more sessions lie beyond this page in the direction of travel.
    pub has_more: bool,
}

/// An event as stored in the outbox, with its store-wide sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Position in the outbox: strictly increasing in commit order.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// The persistence port. See the module docs for the contract; the `testkit` feature has
/// a conformance suite every implementation should pass.
pub trait Store: Send + Sync {
    /// The session with this id, with all its payments and transfers.
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError>;

    /// Session `id` as [`load`](Store::load) gives it, unless it is still at `version`:
    /// then [`Reload::Unchanged`], which a store may answer from the version alone (a
    /// session's content at a version never changes: every commit is a compare-and-swap
    /// on it). The default loads and compares.
    fn load_if_changed(&self, id: SessionId, version: u64) -> Result<Reload, StoreError> {
        Ok(match self.load(id)? {
            None => Reload::Gone,
            Some(s) if s.version() == version => Reload::Unchanged,
            Some(s) => Reload::Changed(s),
        })
    }

    /// Applies a commit atomically, or returns [`StoreError::Conflict`] and writes nothing.
    fn commit(&self, commit: &Commit) -> Result<(), StoreError>;

    /// The session a transfer was recorded on (as one of its transfers, or held apart).
    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError>;

    /// The session one of whose quotes has an invoice with this payment hash.
    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError>;

    /// The session that owns this on-chain address.
    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError>;

    /// The session one of whose payments (quotes) has this id: any of them, open, expired
    /// or paid, the first quote or one issued later (a re-quote after expiry or after a
    /// partial payment); `None` when no stored session has it. Payment ids are generated,
    /// so no two sessions share one; should two hold it, the one with the smaller id is
    /// returned. Answered from an index, not a scan.
    fn find_by_payment(&self, id: PaymentId) -> Result<Option<SessionId>, StoreError>;

    /// Sessions newest first (by creation time, then id), filtered and paginated: those
    /// for which [`ListQuery::matches`] holds, on the cursor's side of it. An unknown
    /// cursor gives an empty page; a query whose [`ListQuery::page_size`] is an error is
    /// refused with [`StoreError::InvalidQuery`].
    fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// Active sessions whose `wake_at` is at or before `now` (a quote to expire or to
    /// issue), oldest first, at most `limit`.
    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError>;

    /// Events with a sequence number above `after` (all when `None`), in order, at most
    /// `limit`.
    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Events with a sequence number below `before` (all when `None`), newest first
    /// (descending sequence numbers), at most `limit`: the outbox read backwards, for
    /// newest-first listings. `events_before(None, n)` is the last `n` events of
    /// [`events_after`](Self::events_after) in reverse, and a page continues below its
    /// last (smallest) sequence number, each event exactly once.
    fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The outbox event with this id, with its sequence number, as
    /// [`events_after`](Self::events_after) returns it; `None` when no committed event has
    /// it (event ids are generated, so none repeats; should one, the lowest sequence
    /// number is returned). Answered from an index, not a scan.
    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError>;

    /// Every event of one session, in order: its timeline.
    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError>;

    /// A page of a session's timeline: its events with a sequence number above `after`
    /// (from the first when `None`), in order, at most `limit`. Paging on from the last
    /// sequence number of a page returns each event once. The default reads the whole
    /// timeline and cuts the page out of it; the crate's stores answer from their index.
    fn session_events_after(
        &self,
        id: SessionId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let after = after.unwrap_or(0);
        Ok(self
            .session_events(id)?
            .into_iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .collect())
    }

    /// The transfers a session holds apart (beyond its transfer cap, see
    /// [`SessionLimits`](crate::session::SessionLimits)), oldest first, at most `limit`.
    fn held_transfers(&self, id: SessionId, limit: usize) -> Result<Vec<HeldTransfer>, StoreError>;

    /// Deletes up to `limit` outbox events with a sequence number at or below `through`,
    /// oldest first; returns how many it deleted. An event whose object a kept event
    /// needs (the carrier of a thin event above `through`, ADR 17) stays until that one
    /// goes, and the newest event always stays (so no sequence number is ever reused). What is kept never changes: the same sequence numbers, the same objects; the
    /// outbox simply starts later (readers already allow gaps). Call it with what every
    /// reader is done with: [`Dispatcher::delivered_through`](crate::webhook::Dispatcher::delivered_through)
    /// for webhooks, after copying the events elsewhere if they are to be archived.
    fn prune_events(&self, through: u64, limit: usize) -> Result<usize, StoreError>;

    /// Deletes the events of one session (its timeline) with a sequence number at or
    /// below `through`, with the same care as [`prune_events`](Self::prune_events) (a
    /// carrier a kept event needs and the newest event stay); returns how many. The
    /// session itself, its payments, transfers and routing keys stay: late funds still
    /// find it. Used to archive a finished session
    /// ([`Checkout::archive`](crate::Checkout::archive)).
    fn prune_session_events(&self, id: SessionId, through: u64) -> Result<usize, StoreError>;

    /// The idempotency record for a key.
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Inserts `record` unless a record with its key exists, atomically: of concurrent
    /// claims of one key exactly one inserts. Returns `None` when `record` was inserted,
    /// else the record that holds the key (which may name another request or session).
    fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Removes the claim `record` made, if the store still holds exactly it (same key,
    /// request and session); any other record of the key stays. The service calls it when
    /// the create that claimed the key failed before committing (no rate, generator down),
    /// so a retry with the key is not kept waiting for a session that will never appear.
    fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError>;

    /// Deletes up to `limit` idempotency records created before `before`, oldest first;
    /// returns how many it deleted. The service calls it with its idempotency window
    /// ([`Checkout::prune_idempotency`](crate::Checkout::prune_idempotency)): a key older
    /// than the window is forgotten. Answered from an index on the creation time.
    fn prune_idempotency(&self, before: OffsetDateTime, limit: usize) -> Result<usize, StoreError>;

    /// Whether every call returns without waiting for I/O, for another process or for a
    /// lock held across either: `true` lets async callers (the HTTP routers,
    /// `AsyncCheckout`) run calls on the executor's thread instead of a trip to tokio's
    /// blocking pool. The default, `false`, is always safe; say `true` only for an
    /// implementation that keeps everything in memory.
    fn never_blocks(&self) -> bool {
        false
    }

    /// Whether the reads ([`load`](Store::load), the `find_by_*` look-ups,
    /// [`list`](Store::list), [`due`](Store::due), the event reads and
    /// [`idempotency`](Store::idempotency)) return without waiting for the network, for
    /// another process or for a lock a writer holds: `true` lets async callers read on the
    /// executor's thread while writes still go to tokio's blocking pool. A read of a local
    /// file that the operating system has cached takes microseconds; one from the disk may
    /// wait for it, as any file read does. The default is
    /// [`never_blocks`](Store::never_blocks); the SQLite store on a file in WAL mode says
    /// `true` (a read that meets a write goes through a connection of its own, which
    /// writers never hold).
    fn reads_never_block(&self) -> bool {
        self.never_blocks()
    }
}

forward_port!(Store {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError>;
    fn load_if_changed(&self, id: SessionId, version: u64) -> Result<Reload, StoreError>;
    fn commit(&self, commit: &Commit) -> Result<(), StoreError>;
    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError>;
    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError>;
    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError>;
    fn find_by_payment(&self, id: PaymentId) -> Result<Option<SessionId>, StoreError>;
    fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;
    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError>;
    fn events_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    fn events_before(&self, before: Option<u64>, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError>;
    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError>;
    fn session_events_after(&self, id: SessionId, after: Option<u64>, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    fn held_transfers(&self, id: SessionId, limit: usize) -> Result<Vec<HeldTransfer>, StoreError>;
    fn prune_events(&self, through: u64, limit: usize) -> Result<usize, StoreError>;
    fn prune_session_events(&self, id: SessionId, through: u64) -> Result<usize, StoreError>;
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
    fn claim_idempotency(&self, record: &IdempotencyRecord) -> Result<Option<IdempotencyRecord>, StoreError>;
    fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError>;
    fn prune_idempotency(&self, before: OffsetDateTime, limit: usize) -> Result<usize, StoreError>;
    fn never_blocks(&self) -> bool;
    fn reads_never_block(&self) -> bool;
});

/// One atomic change to a link and the sessions it concerns (opening a session, or
/// deactivating the link with its active sessions).
#[derive(Debug, Clone)]
pub struct LinkCommit {
    /// The link after the change.
    pub link: Link,
    /// The version it was computed from; `None` inserts a new link.
    pub expected_version: Option<u64>,
    /// The link's own events.
    pub events: Vec<Event>,
    /// Session changes committed in the same transaction, each with its own
    /// compare-and-swap and events.
    pub sessions: Vec<Commit>,
}

/// Stores that also keep checkout links and payment links.
///
/// `commit_link` applies the link change and every session commit in it atomically: if the
/// link's or any session's version is not the expected one, nothing is written and the
/// result is [`StoreError::Conflict`].
pub trait LinkStore: Store {
    /// The link with this id.
    fn load_link(&self, id: LinkId) -> Result<Option<Link>, StoreError>;

    /// Applies a link commit atomically.
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError>;

    /// The sessions a link opened (those whose `link()` is `id`), oldest first.
    fn link_sessions(&self, id: LinkId) -> Result<Vec<SessionId>, StoreError>;

    /// Links newest first (by [`Link::created`], then id), filtered and paginated: those
    /// for which [`LinkListQuery::matches`] holds, on the cursor's side of it, each as
    /// [`load_link`](Self::load_link) returns it. An unknown cursor gives an empty page; a
    /// query whose [`LinkListQuery::page_size`] is an error is refused with
    /// [`StoreError::InvalidQuery`]. `has_more` says whether more matching links lie
    /// beyond the page in the direction of travel (older after `starting_after` or
    /// without a cursor, newer before `ending_before`).
    fn list_links(&self, query: &LinkListQuery) -> Result<LinkPage, StoreError>;
}

forward_port!(LinkStore {
    fn load_link(&self, id: LinkId) -> Result<Option<Link>, StoreError>;
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError>;
    fn link_sessions(&self, id: LinkId) -> Result<Vec<SessionId>, StoreError>;
    fn list_links(&self, query: &LinkListQuery) -> Result<LinkPage, StoreError>;
});
