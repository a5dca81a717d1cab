//! The service's store calls, each in a `store` span and counted: the one way the service
//! reaches its store (`self.st().load(id)`), so no call escapes the traces and metrics.

use time::OffsetDateTime;
use tracing::debug_span;

use crate::hash::PaymentHash;
use crate::id::{LinkId, SessionId};
use crate::link::Link;
use crate::metrics::{Counter, Metrics};
use crate::session::CheckoutSession;
use crate::store::{
    Commit, IdempotencyRecord, LinkCommit, LinkStore, ListQuery, Page, Reload, Store, StoreError,
    StoredEvent,
};
use crate::transfer::TransferKey;

/// A borrowed store with the service's metrics.
pub(super) struct Observed<'a, S> {
    pub(super) store: &'a S,
    pub(super) metrics: &'a Metrics,
}

/// Enters the `checkout` span of a service operation; `session` fills its `session_id`
/// (or [`record_session`] later, once the operation knows it).
pub(super) fn operation(
    name: &'static str,
    session: Option<SessionId>,
) -> tracing::span::EnteredSpan {
    let span = tracing::info_span!(
        "checkout",
        operation = name,
        session_id = tracing::field::Empty
    );
    if let Some(id) = session {
        span.record("session_id", tracing::field::display(id));
    }
    span.entered()
}

/// Fills the `session_id` of an operation's span.
pub(super) fn record_session(span: &tracing::Span, id: SessionId) {
    span.record("session_id", tracing::field::display(id));
}

impl<S> Observed<'_, S> {
    /// Counts an accepted commit (one, whatever it holds) and what its session changes
    /// did (see [`Metrics::committed`]).
    fn count_commit<'c>(
        &self,
        result: &Result<(), StoreError>,
        sessions: impl IntoIterator<Item = &'c Commit>,
    ) {
        if result.is_ok() {
            self.metrics.add(Counter::commits, 1);
            for c in sessions {
                self.metrics
                    .committed(&c.events, c.expected_version.is_some());
            }
        }
    }

    /// Counts a failed call: a conflict, or a backend error.
    fn count<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Err(StoreError::Conflict) => self.metrics.add(Counter::conflicts, 1),
            Err(StoreError::Backend { .. }) => self.metrics.add(Counter::store_errors, 1),
            _ => {}
        }
        result
    }
}

impl<S: Store> Observed<'_, S> {
    pub(super) fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        let _span = debug_span!("store", call = "load", session_id = %id).entered();
        self.count(self.store.load(id))
    }

    pub(super) fn load_if_changed(
        &self,
        id: SessionId,
        version: u64,
    ) -> Result<Reload, StoreError> {
        let _span = debug_span!("store", call = "load_if_changed", session_id = %id).entered();
        self.count(self.store.load_if_changed(id, version))
    }

    /// Commits, and counts what the commit did (see [`Metrics::committed`]).
    pub(super) fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let id = commit.session.id();
        let _span = debug_span!("store", call = "commit", session_id = %id).entered();
        let result = self.count(self.store.commit(commit));
        self.count_commit(&result, [commit]);
        result
    }

    pub(super) fn find_by_transfer(
        &self,
        key: &TransferKey,
    ) -> Result<Option<SessionId>, StoreError> {
        let _span = debug_span!("store", call = "find_by_transfer").entered();
        self.count(self.store.find_by_transfer(key))
    }

    pub(super) fn find_by_payment_hash(
        &self,
        hash: &PaymentHash,
    ) -> Result<Option<SessionId>, StoreError> {
        let _span = debug_span!("store", call = "find_by_payment_hash").entered();
        self.count(self.store.find_by_payment_hash(hash))
    }

    pub(super) fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        let _span = debug_span!("store", call = "find_by_address").entered();
        self.count(self.store.find_by_address(address))
    }

    pub(super) fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let _span = debug_span!("store", call = "list").entered();
        self.count(self.store.list(query))
    }

    pub(super) fn due(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<SessionId>, StoreError> {
        let _span = debug_span!("store", call = "due").entered();
        self.count(self.store.due(now, limit))
    }

    pub(super) fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let _span = debug_span!("store", call = "events_after").entered();
        self.count(self.store.events_after(after, limit))
    }

    pub(super) fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        let _span = debug_span!("store", call = "session_events", session_id = %id).entered();
        self.count(self.store.session_events(id))
    }

    pub(super) fn session_events_after(
        &self,
        id: SessionId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let _span = debug_span!("store", call = "session_events_after", session_id = %id).entered();
        self.count(self.store.session_events_after(id, after, limit))
    }

    pub(super) fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let id = record.session_id;
        let _span = debug_span!("store", call = "claim_idempotency", session_id = %id).entered();
        self.count(self.store.claim_idempotency(record))
    }

    pub(super) fn held_transfers(
        &self,
        id: SessionId,
        limit: usize,
    ) -> Result<Vec<crate::session::HeldTransfer>, StoreError> {
        let _span = debug_span!("store", call = "held_transfers", session_id = %id).entered();
        self.count(self.store.held_transfers(id, limit))
    }

    pub(super) fn prune_session_events(
        &self,
        id: SessionId,
        through: u64,
    ) -> Result<usize, StoreError> {
        let _span = debug_span!("store", call = "prune_session_events", session_id = %id).entered();
        self.count(self.store.prune_session_events(id, through))
    }

    pub(super) fn prune_idempotency(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let _span = debug_span!("store", call = "prune_idempotency").entered();
        self.count(self.store.prune_idempotency(before, limit))
    }

    pub(super) fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        let id = record.session_id;
        let _span = debug_span!("store", call = "release_idempotency", session_id = %id).entered();
        self.count(self.store.release_idempotency(record))
    }
}

impl<S: LinkStore> Observed<'_, S> {
    pub(super) fn load_link(&self, id: LinkId) -> Result<Option<Link>, StoreError> {
        let _span = debug_span!("store", call = "load_link", link_id = %id).entered();
        self.count(self.store.load_link(id))
    }

    /// Commits a link change, and counts what it and its sessions' commits did.
    pub(super) fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        let id = commit.link.id();
        let _span = debug_span!("store", call = "commit_link", link_id = %id).entered();
        let result = self.count(self.store.commit_link(commit));
        if result.is_ok() {
            self.metrics
                .committed(&commit.events, commit.expected_version.is_some());
        }
        self.count_commit(&result, &commit.sessions);
        result
    }

    pub(super) fn link_sessions(&self, id: LinkId) -> Result<Vec<SessionId>, StoreError> {
        let _span = debug_span!("store", call = "link_sessions", link_id = %id).entered();
        self.count(self.store.link_sessions(id))
    }
}
