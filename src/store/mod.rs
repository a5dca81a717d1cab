//! The store port: where sessions, their transfers and their events live.
//!
//! A store does not know the rules of a session; it keeps what the service commits:
//!
//! * **Atomic commits with compare-and-swap.** [`Store::commit`] writes a session's new
//!   state, its changed transfers, the events the change caused (the outbox) and an optional
//!   idempotency record in one transaction, and only if the stored version is still
//!   [`Commit::expected_version`]. Otherwise nothing is written and
//!   [`StoreError::Conflict`] is returned; the service reloads and retries.
//! * **Lookups** by session id, by transfer key, by invoice payment hash and by on-chain
//!   address, so a report of funds finds its session.
//! * **Listing** newest first with a status filter and cursor pagination.
//! * **The outbox**: every committed event gets a store-wide sequence number; events are
//!   read back in that order after a cursor. A reader that has seen sequence `n` never
//!   later finds an event below `n` appear (stores must serialise the assignment of
//!   sequence numbers with the commit that makes them visible).
//!
//! Stores are synchronous and `Send + Sync`; the async facade of the service runs them on
//! blocking threads (see `docs/adr/0002-sync-ports-async-facade.md`).

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use time::OffsetDateTime;

use crate::event::Event;
use crate::id::SessionId;
use crate::request::PaymentHash;
use crate::session::{CheckoutSession, SessionStatus};
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
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict => true,
            Self::Backend { retryable, .. } => *retryable,
            Self::Closed | Self::Corrupt(_) => false,
        }
    }
}

/// An idempotency record: the key a client sent with a create, the request it stood for
/// and the session it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The client's key (at most 255 characters).
    pub key: String,
    /// The request's canonical JSON: the same key with another request is refused.
    pub request: String,
    /// The session the request created.
    pub session_id: SessionId,
    /// When it was first used.
    pub created: OffsetDateTime,
}

/// One atomic change: a session's new state with what changed and what it caused.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The session after the change (its `version` is above `expected_version`: one command
    /// and the re-quote it triggers may each count a change).
    pub session: CheckoutSession,
    /// The version the change was computed from; `None` inserts a new session (which must
    /// not exist yet).
    pub expected_version: Option<u64>,
    /// Keys of the transfers inserted or updated by the change; the others are unchanged.
    pub changed_transfers: Vec<TransferKey>,
    /// The events the change caused, in order.
    pub events: Vec<Event>,
    /// An idempotency record to insert with the session (creation only); its key must not
    /// exist yet.
    pub idempotency: Option<IdempotencyRecord>,
}

/// Which sessions to list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Only sessions with this status.
    pub status: Option<SessionStatus>,
    /// At most this many (1 to 100; default 10).
    pub limit: Option<usize>,
    /// Sessions older than this one (the next page).
    pub starting_after: Option<SessionId>,
    /// Sessions newer than this one (the previous page).
    pub ending_before: Option<SessionId>,
}

impl ListQuery {
    /// The page size, clamped to 1..=100.
    pub fn page_size(&self) -> usize {
        self.limit.unwrap_or(10).clamp(1, 100)
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

    /// Applies a commit atomically, or returns [`StoreError::Conflict`] and writes nothing.
    fn commit(&self, commit: &Commit) -> Result<(), StoreError>;

    /// The session a transfer was recorded on.
    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError>;

    /// The session one of whose quotes has an invoice with this payment hash.
    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError>;

    /// The session that owns this on-chain address.
    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError>;

    /// Sessions newest first (by creation time, then id), filtered and paginated.
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

    /// Every event of one session, in order: its timeline.
    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError>;

    /// The idempotency record for a key.
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: Store + ?Sized> Store for $ty {
            fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
                (**self).load(id)
            }
            fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
                (**self).commit(commit)
            }
            fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
                (**self).find_by_transfer(key)
            }
            fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
                (**self).find_by_payment_hash(hash)
            }
            fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
                (**self).find_by_address(address)
            }
            fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
                (**self).list(query)
            }
            fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
                (**self).due(now, limit)
            }
            fn events_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
                (**self).events_after(after, limit)
            }
            fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
                (**self).session_events(id)
            }
            fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
                (**self).idempotency(key)
            }
        }
    )*};
}

forward_store!(std::sync::Arc<S>, &S, Box<S>);

/// One atomic change to a link and the sessions it concerns (opening a session, or
/// deactivating the link with its active sessions).
#[derive(Debug, Clone)]
pub struct LinkCommit {
    /// The link after the change.
    pub link: crate::link::Link,
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
    fn load_link(&self, id: crate::link::LinkId) -> Result<Option<crate::link::Link>, StoreError>;

    /// Applies a link commit atomically.
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError>;

    /// The sessions a link opened (those whose `link()` is `id`), oldest first.
    fn link_sessions(&self, id: crate::link::LinkId) -> Result<Vec<SessionId>, StoreError>;
}

impl<S: LinkStore + ?Sized> LinkStore for std::sync::Arc<S> {
    fn load_link(&self, id: crate::link::LinkId) -> Result<Option<crate::link::Link>, StoreError> {
        (**self).load_link(id)
    }
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        (**self).commit_link(commit)
    }
    fn link_sessions(&self, id: crate::link::LinkId) -> Result<Vec<SessionId>, StoreError> {
        (**self).link_sessions(id)
    }
}

impl<S: LinkStore + ?Sized> LinkStore for &S {
    fn load_link(&self, id: crate::link::LinkId) -> Result<Option<crate::link::Link>, StoreError> {
        (**self).load_link(id)
    }
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        (**self).commit_link(commit)
    }
    fn link_sessions(&self, id: crate::link::LinkId) -> Result<Vec<SessionId>, StoreError> {
        (**self).link_sessions(id)
    }
}
