//! The in-memory store: for tests, demos and single-process applications that keep
//! nothing across restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use super::{
    Commit, IdempotencyRecord, LinkCommit, LinkStore, ListQuery, Page, Store, StoreError,
    StoredEvent,
};
use crate::event::Event;
use crate::id::SessionId;
use crate::link::{Link, LinkId};
use crate::request::PaymentHash;
use crate::session::CheckoutSession;
use crate::transfer::TransferKey;

#[derive(Default)]
struct Inner {
    closed: bool,
    sessions: HashMap<SessionId, CheckoutSession>,
    /// (created, id) → id: the listing order.
    by_created: BTreeMap<(OffsetDateTime, SessionId), SessionId>,
    transfers: HashMap<TransferKey, SessionId>,
    hashes: HashMap<PaymentHash, SessionId>,
    addresses: HashMap<String, SessionId>,
    events: Vec<StoredEvent>,
    events_by_session: HashMap<SessionId, Vec<usize>>,
    idempotency: HashMap<String, IdempotencyRecord>,
    links: HashMap<LinkId, Link>,
}

/// Keeps everything in one mutex-guarded map. `Send + Sync`; clone an `Arc` of it to share.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    #[cfg(feature = "webhooks")]
    webhooks: Mutex<WebhookInner>,
}

#[cfg(feature = "webhooks")]
#[derive(Default)]
struct WebhookInner {
    endpoints: BTreeMap<crate::id::EndpointId, crate::webhook::Endpoint>,
    cursors: HashMap<crate::id::EndpointId, u64>,
    deliveries: BTreeMap<(crate::id::EndpointId, u64), crate::webhook::Delivery>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Closes the store: every later call fails with [`StoreError::Closed`].
    pub fn close(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.closed = true;
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        // A panic while holding the lock cannot leave a half-applied commit (commits are
        // applied after all checks), so the data is still consistent.
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.closed {
            return Err(StoreError::Closed);
        }
        Ok(inner)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl Inner {
    fn check(&self, commit: &Commit) -> Result<(), StoreError> {
        let stored = self
            .sessions
            .get(&commit.session.id())
            .map(CheckoutSession::version);
        if stored != commit.expected_version {
            return Err(StoreError::Conflict);
        }
        let id = commit.session.id();
        // A transfer belongs to one session: the same outpoint or payment hash claimed by
        // another session is refused, as the SQL stores' primary keys refuse it. Check the
        // same keys `apply` indexes.
        if Self::indexed_keys(commit)
            .iter()
            .any(|k| self.transfers.get(k).is_some_and(|owner| *owner != id))
        {
            return Err(StoreError::Backend {
                message: "transfer already recorded on another session".into(),
                retryable: false,
            });
        }
        if let Some(rec) = &commit.idempotency
            && self.idempotency.contains_key(&rec.key)
        {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// A new session is indexed whole; a change only by the transfers it touched.
    fn indexed_keys(commit: &Commit) -> Vec<TransferKey> {
        if commit.expected_version.is_none() {
            commit.session.transfers().map(|t| t.key).collect()
        } else {
            commit.changed_transfers.clone()
        }
    }

    fn push_event(&mut self, e: &Event, session: Option<SessionId>) {
        let index = self.events.len();
        self.events.push(StoredEvent {
            seq: index as u64 + 1,
            event: e.clone(),
        });
        if let Some(id) = session {
            self.events_by_session.entry(id).or_default().push(index);
        }
    }

    fn apply(&mut self, commit: &Commit) {
        let s = &commit.session;
        let id = s.id();
        if let Some(rec) = &commit.idempotency {
            self.idempotency.insert(rec.key.clone(), rec.clone());
        }
        self.by_created.insert((s.created(), id), id);
        for key in Self::indexed_keys(commit) {
            self.transfers.insert(key, id);
        }
        // Like the SQL stores, the first session to claim a hash or address keeps it.
        for p in s.payments() {
            if let Some(inv) = &p.request().lightning {
                self.hashes.entry(inv.payment_hash).or_insert(id);
            }
        }
        if let Some(addr) = s.onchain_address() {
            self.addresses.entry(addr.to_owned()).or_insert(id);
        }
        for e in &commit.events {
            self.push_event(e, Some(id));
        }
        self.sessions.insert(id, s.clone());
    }
}

impl Store for MemoryStore {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        Ok(self.lock()?.sessions.get(&id).cloned())
    }

    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.check(commit)?;
        inner.apply(commit);
        Ok(())
    }

    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
        Ok(self.lock()?.transfers.get(key).copied())
    }

    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        Ok(self.lock()?.hashes.get(hash).copied())
    }

    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        Ok(self.lock()?.addresses.get(address).copied())
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let inner = self.lock()?;
        let limit = query.page_size();
        let matches = |id: &SessionId| {
            inner
                .sessions
                .get(id)
                .filter(|s| query.status.is_none_or(|st| s.status() == st))
        };
        let cursor_key = |id: &SessionId| inner.sessions.get(id).map(|s| (s.created(), *id));
        let mut data = Vec::new();
        let has_more;
        if let Some(before) = query.ending_before {
            // The page just newer than `before`: walk upwards, then reverse to newest first.
            let Some(key) = cursor_key(&before) else {
                return Ok(Page {
                    data,
                    has_more: false,
                });
            };
            let mut newer = inner
                .by_created
                .range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
                .filter_map(|(_, id)| matches(id));
            data.extend(newer.by_ref().take(limit).cloned());
            has_more = newer.next().is_some();
            data.reverse();
        } else {
            let upper = match query.starting_after {
                Some(after) => match cursor_key(&after) {
                    Some(key) => std::ops::Bound::Excluded(key),
                    None => {
                        return Ok(Page {
                            data,
                            has_more: false,
                        });
                    }
                },
                None => std::ops::Bound::Unbounded,
            };
            let mut older = inner
                .by_created
                .range((std::ops::Bound::Unbounded, upper))
                .rev()
                .filter_map(|(_, id)| matches(id));
            data.extend(older.by_ref().take(limit).cloned());
            has_more = older.next().is_some();
        }
        Ok(Page { data, has_more })
    }

    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        let inner = self.lock()?;
        let mut due: Vec<(OffsetDateTime, SessionId)> = inner
            .sessions
            .values()
            .filter_map(|s| s.wake_at().filter(|w| *w <= now).map(|w| (w, s.id())))
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock()?;
        let start = usize::try_from(after.unwrap_or(0)).unwrap_or(usize::MAX);
        Ok(inner
            .events
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock()?;
        let indexes = inner
            .events_by_session
            .get(&id)
            .cloned()
            .unwrap_or_default();
        Ok(indexes
            .into_iter()
            .filter_map(|i| inner.events.get(i).cloned())
            .collect())
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.lock()?.idempotency.get(key).cloned())
    }
}

impl LinkStore for MemoryStore {
    fn load_link(&self, id: LinkId) -> Result<Option<Link>, StoreError> {
        Ok(self.lock()?.links.get(&id).cloned())
    }

    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let stored = inner.links.get(&commit.link.id()).map(Link::version);
        if stored != commit.expected_version {
            return Err(StoreError::Conflict);
        }
        for c in &commit.sessions {
            inner.check(c)?;
        }
        inner.links.insert(commit.link.id(), commit.link.clone());
        for e in &commit.events {
            inner.push_event(e, None);
        }
        for c in &commit.sessions {
            inner.apply(c);
        }
        Ok(())
    }

    fn link_sessions(&self, id: LinkId) -> Result<Vec<SessionId>, StoreError> {
        let inner = self.lock()?;
        let mut ids: Vec<(OffsetDateTime, SessionId)> = inner
            .sessions
            .values()
            .filter(|s| s.link() == Some(id))
            .map(|s| (s.created(), s.id()))
            .collect();
        ids.sort();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }
}

#[cfg(feature = "webhooks")]
impl MemoryStore {
    fn webhooks(&self) -> Result<MutexGuard<'_, WebhookInner>, StoreError> {
        // Closing applies to the whole store.
        drop(self.lock()?);
        Ok(self.webhooks.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(feature = "webhooks")]
impl crate::webhook::DeliveryStore for MemoryStore {
    fn save_endpoint(&self, endpoint: &crate::webhook::Endpoint) -> Result<(), StoreError> {
        self.webhooks()?
            .endpoints
            .insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    fn endpoints(&self) -> Result<Vec<crate::webhook::Endpoint>, StoreError> {
        Ok(self.webhooks()?.endpoints.values().cloned().collect())
    }

    fn cursor(&self, endpoint: crate::id::EndpointId) -> Result<u64, StoreError> {
        Ok(self
            .webhooks()?
            .cursors
            .get(&endpoint)
            .copied()
            .unwrap_or(0))
    }

    fn schedule(
        &self,
        endpoint: crate::id::EndpointId,
        cursor: u64,
        deliveries: &[crate::webhook::Delivery],
    ) -> Result<(), StoreError> {
        let mut w = self.webhooks()?;
        for d in deliveries {
            w.deliveries
                .entry((d.endpoint, d.seq))
                .or_insert_with(|| d.clone());
        }
        let c = w.cursors.entry(endpoint).or_insert(0);
        *c = (*c).max(cursor);
        Ok(())
    }

    fn pending(&self, limit: usize) -> Result<Vec<crate::webhook::Delivery>, StoreError> {
        Ok(self
            .webhooks()?
            .deliveries
            .values()
            .filter(|d| d.status == crate::webhook::DeliveryStatus::Pending)
            .take(limit)
            .cloned()
            .collect())
    }

    fn save_delivery(&self, delivery: &crate::webhook::Delivery) -> Result<(), StoreError> {
        self.webhooks()?
            .deliveries
            .insert((delivery.endpoint, delivery.seq), delivery.clone());
        Ok(())
    }

    fn delivery(
        &self,
        endpoint: crate::id::EndpointId,
        seq: u64,
    ) -> Result<Option<crate::webhook::Delivery>, StoreError> {
        Ok(self.webhooks()?.deliveries.get(&(endpoint, seq)).cloned())
    }

    fn deliveries(
        &self,
        endpoint: crate::id::EndpointId,
    ) -> Result<Vec<crate::webhook::Delivery>, StoreError> {
        Ok(self
            .webhooks()?
            .deliveries
            .range((endpoint, 0)..=(endpoint, u64::MAX))
            .map(|(_, d)| d.clone())
            .collect())
    }
}
