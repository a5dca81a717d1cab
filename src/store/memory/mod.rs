//! The in-memory store: for tests, demos and single-process applications that keep
//! nothing across restarts.
//!
//! Sessions are kept in a compact binary form ([`codec`]) with their transfers beside it,
//! and the events of a session's creation without their payloads until the session first
//! changes ([`outbox`]); indexes point at sessions by a 32-bit slot number. A fresh session with
//! its quote, its two creation events and every index entry takes well under a kilobyte
//! (see `benches/memory.rs`); loading a session decodes it (about a microsecond).

mod codec;
mod id_index;
mod links;
mod listing;
mod outbox;
mod resume;
#[cfg(feature = "webhooks")]
mod webhooks;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use super::{
    Commit, IdempotencyRecord, ListQuery, Page, Reload, RoutingKey, Store, StoreError, StoredEvent,
};
use crate::id::{EventId, PaymentId, SessionId};
use crate::link::{Link, LinkId};
use crate::outbox::Event;
use crate::request::PaymentHash;
use crate::session::{CheckoutSession, SessionStatus};
use crate::transfer::TransferKey;
use outbox::{Classifier, Payload, Record};

/// One session: what listing and sweeping need in the clear, the rest encoded.
struct Slot {
    id: SessionId,
    version: u64,
    status: SessionStatus,
    /// Whether it has unresolved flags (the review-queue filter).
    review: bool,
    /// Live or test mode (the mode filter; set at creation, never changed).
    livemode: bool,
    created: OffsetDateTime,
    wake_at: Option<OffsetDateTime>,
    bytes: Box<[u8]>,
    /// Its payments, each encoded apart, in the session's order.
    payments: Vec<Box<[u8]>>,
    /// `None` while the session has no transfers (no empty map per session). The store's
    /// own copy: sharing the session's would make the service copy the whole map on its
    /// next change.
    transfers: Option<Box<codec::Transfers>>,
    /// Its events' positions in the outbox.
    events: Vec<u32>,
    /// Whether some of its events are kept without their payloads ([`Record::Current`]):
    /// only events of its creation commit can be, until its first change settles them.
    unsettled: bool,
}

#[derive(Default)]
struct Inner {
    closed: bool,
    slots: Vec<Slot>,
    ids: HashMap<SessionId, u32>,
    /// The listing order.
    by_created: BTreeSet<listing::Key>,
    /// The listing filters' indexes.
    filters: listing::FilterIndex,
    /// Every recorded transfer's session, held transfers included.
    transfers: HashMap<TransferKey, u32>,
    /// Each session's held transfers (beyond its transfer cap), oldest first: kept apart,
    /// never decoded into the session.
    held: HashMap<u32, Vec<crate::session::HeldTransfer>>,
    hashes: HashMap<PaymentHash, u32>,
    addresses: HashMap<Box<str>, u32>,
    /// Each payment id's session (the one with the smaller id, should two hold it).
    payment_ids: id_index::IdIndex,
    by_link: HashMap<LinkId, Vec<u32>>,
    events: Vec<Record>,
    /// Events below this position were pruned (`Store::prune_events`): reads start here.
    pruned_below: usize,
    /// Each event id's position in the outbox (the first, should two carry it).
    event_ids: id_index::IdIndex,
    idempotency: HashMap<String, IdempotencyRecord>,
    links: HashMap<LinkId, Link>,
    /// The link listing order.
    links_by_created: BTreeSet<(OffsetDateTime, LinkId)>,
    resume_points: HashMap<String, crate::backend::ResumePoint>,
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
    endpoints: std::collections::BTreeMap<crate::id::EndpointId, crate::webhook::Endpoint>,
    cursors: HashMap<crate::id::EndpointId, u64>,
    deliveries: std::collections::BTreeMap<(crate::id::EndpointId, u64), crate::webhook::Delivery>,
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

fn full() -> StoreError {
    StoreError::Backend {
        message: "the in-memory store holds 2^32 sessions or events".into(),
        retryable: false,
    }
}

impl Inner {
    fn slot_of(&self, id: SessionId) -> Option<&Slot> {
        self.ids.get(&id).and_then(|i| self.slots.get(*i as usize))
    }

    fn decode(&self, slot: u32) -> Result<CheckoutSession, StoreError> {
        let s = self.slots.get(slot as usize).ok_or_else(outbox::corrupt)?;
        Ok(codec::decode(
            &s.bytes,
            &s.payments,
            s.transfers.as_deref(),
        )?)
    }

    fn id_at(&self, slot: u32) -> Option<SessionId> {
        self.slots.get(slot as usize).map(|s| s.id)
    }

    /// Renders and keeps whole the events that still take their payload from the
    /// session's current state, before that state changes. Changes nothing a reader sees.
    fn settle(&mut self, id: SessionId) -> Result<(), StoreError> {
        let Some(&slot) = self.ids.get(&id) else {
            return Ok(());
        };
        // Only the events of a session's creation commit can be current, and only until
        // its first change: those are all its events then. They may be mixed with events
        // kept whole (one without a session, say), so every one is looked at.
        let entry = &self.slots[slot as usize];
        if !entry.unsettled {
            return Ok(());
        }
        let current: Vec<u32> = entry
            .events
            .iter()
            .copied()
            .filter(|pos| matches!(self.events.get(*pos as usize), Some(Record::Current { .. })))
            .collect();
        let session = self.decode(slot)?;
        for pos in current {
            let whole = outbox::render(&self.events[pos as usize], &session);
            self.events[pos as usize] = Record::Whole(Box::new(whole));
        }
        self.slots[slot as usize].unsettled = false;
        Ok(())
    }

    fn check(&self, commit: &Commit) -> Result<(), StoreError> {
        let id = commit.session.id();
        let stored = self.slot_of(id).map(|s| s.version);
        if stored != commit.expected_version {
            return Err(StoreError::Conflict);
        }
        // A transfer, an invoice hash and an address each belong to one session: a key
        // another session holds is refused, as the SQL stores refuse it. Check the same
        // keys `apply` indexes.
        let holder = |slot: Option<&u32>| slot.and_then(|s| self.id_at(*s)).filter(|h| *h != id);
        let taken = |key: RoutingKey, holder: SessionId| StoreError::KeyTaken { key, holder };
        for key in &commit.transfers {
            if let Some(h) = holder(self.transfers.get(key)) {
                return Err(taken(RoutingKey::Transfer(*key), h));
            }
        }
        // A held transfer is new by definition: its key recorded anywhere refuses it
        // (this session's own copy: the report raced another, a conflict to retry).
        if let Some(held) = &commit.held
            && let Some(slot) = self.transfers.get(&held.key)
        {
            return Err(match holder(Some(slot)) {
                Some(h) => taken(RoutingKey::Transfer(held.key), h),
                None => StoreError::Conflict,
            });
        }
        let s = &commit.session;
        for pid in &commit.payments {
            let payment = s.payments().iter().rfind(|p| p.id() == *pid);
            let invoice = payment.and_then(|p| p.request().lightning.as_ref());
            if let Some(inv) = invoice
                && let Some(h) = holder(self.hashes.get(&inv.payment_hash))
            {
                return Err(taken(RoutingKey::PaymentHash(inv.payment_hash), h));
            }
        }
        if let Some(addr) = s.onchain_address()
            && let Some(h) = holder(self.addresses.get(addr))
        {
            return Err(taken(RoutingKey::Address(addr.to_owned()), h));
        }
        if self.slots.len() >= u32::MAX as usize
            || self.events.len() + commit.events.len() > u32::MAX as usize
        {
            return Err(full());
        }
        Ok(())
    }

    fn push_whole(&mut self, e: &Event) -> u32 {
        self.push_record(e.id, Record::Whole(Box::new(e.clone())))
    }

    /// Appends an event (`id` is its id) to the outbox and indexes it; returns its position.
    fn push_record(&mut self, id: EventId, record: Record) -> u32 {
        // `check` keeps the outbox below 2^32 events.
        let pos = self.events.len() as u32;
        self.events.push(record);
        self.event_ids.insert(id.as_uuid().as_u128(), pos);
        pos
    }

    /// The position of the first event with this id.
    fn event_position(&self, id: EventId) -> Option<u32> {
        let holds = |pos: &u32| {
            let found = match self.events.get(*pos as usize) {
                Some(Record::Current { id, .. }) => *id,
                Some(Record::Whole(e)) => e.id,
                Some(Record::Pruned) | None => return false,
            };
            found == id
        };
        let uuid = id.as_uuid().as_u128();
        self.event_ids.candidates(uuid).filter(holds).min()
    }

    /// The session (with the smaller id, should two hold it: as the SQL stores' lookup
    /// picks it) with a payment of this id.
    fn payment_session(&self, payment: PaymentId) -> Option<SessionId> {
        let uuid = payment.as_uuid();
        let bytes = uuid.as_bytes();
        self.payment_ids
            .candidates(uuid.as_u128())
            .filter_map(|slot| self.slots.get(slot as usize))
            // `codec::encode_payment` writes each payment's id first.
            .filter(|s| s.payments.iter().any(|p| p.get(..16) == Some(&bytes[..])))
            .map(|s| s.id)
            .min()
    }

    /// Applies a checked commit; the session's current events must have been settled.
    fn apply(&mut self, commit: &Commit) {
        let s = &commit.session;
        let id = s.id();
        let new = !self.ids.contains_key(&id);
        let slot = match self.ids.get(&id) {
            Some(&slot) => slot,
            None => {
                // `check` keeps the number of sessions below 2^32.
                let slot = self.slots.len() as u32;
                self.slots.push(Slot {
                    id,
                    version: 0,
                    status: s.status(),
                    review: s.has_unresolved_flags(),
                    livemode: s.livemode(),
                    created: s.created(),
                    wake_at: None,
                    bytes: Box::default(),
                    payments: Vec::new(),
                    transfers: None,
                    events: Vec::new(),
                    unsettled: false,
                });
                self.ids.insert(id, slot);
                self.by_created.insert((s.created(), id));
                if let Some(link) = s.link() {
                    self.by_link.entry(link).or_default().push(slot);
                }
                slot
            }
        };
        self.filters.update(slot, s, new);
        for key in &commit.transfers {
            self.transfers.insert(*key, slot);
        }
        if let Some(held) = &commit.held {
            self.transfers.insert(held.key, slot);
            self.held.entry(slot).or_default().push(held.clone());
        }
        // Like the SQL stores, the first session to claim a hash or address keeps it (hashes
        // are indexed below, as their payments are written).
        if let Some(addr) = s.onchain_address()
            && !self.addresses.contains_key(addr)
        {
            self.addresses.insert(addr.into(), slot);
        }
        // Only a new session's events are kept without payloads: they are most of the
        // outbox of a store full of fresh sessions, and settling them on the session's
        // first change decodes a session without transfers (cheap). Later events are kept
        // whole, so no change has to render the previous one's payloads again.
        let mut classifier = commit
            .expected_version
            .is_none()
            .then(|| Classifier::new(s, &commit.payments));
        let mut positions = Vec::with_capacity(commit.events.len());
        let mut unsettled = false;
        for e in &commit.events {
            let kept = classifier
                .as_mut()
                .map_or(Payload::Whole, |c| c.classify(e));
            let payment = match kept {
                Payload::Whole => {
                    positions.push(self.push_whole(e));
                    continue;
                }
                Payload::Session => None,
                Payload::Payment(p) => Some(p),
            };
            unsettled = true;
            let record = Record::Current {
                id: e.id,
                slot,
                created: e.created,
                event_type: e.event_type.clone(),
                payment,
            };
            positions.push(self.push_record(e.id, record));
        }
        let entry = &mut self.slots[slot as usize];
        entry.events.extend(positions);
        entry.unsettled |= unsettled;
        entry.version = s.version();
        entry.status = s.status();
        entry.review = s.has_unresolved_flags();
        entry.wake_at = s.wake_at();
        entry.bytes = codec::encode(s);
        // Payments are only ever appended: a change rewrites the ones it names and appends
        // the new ones (with any before them the stored list lacks, so it stays in order).
        let mut appended = Vec::new();
        for id in &commit.payments {
            let Some(i) = s.payments().iter().rposition(|p| p.id() == *id) else {
                continue;
            };
            let first_new = entry.payments.len();
            if i < first_new {
                entry.payments[i] = codec::encode_payment(s, &s.payments()[i]);
                continue;
            }
            for p in &s.payments()[first_new..=i] {
                entry.payments.push(codec::encode_payment(s, p));
                appended.push(p.id());
                // Each payment is appended once, so this indexes every hash once without
                // walking all of a session's payments on every commit. The first session
                // to claim a hash keeps it, as in the SQL stores.
                if let Some(inv) = &p.request().lightning {
                    self.hashes.entry(inv.payment_hash).or_insert(slot);
                }
            }
        }
        for key in &commit.transfers {
            if let Some(t) = s.transfer(key) {
                entry
                    .transfers
                    .get_or_insert_with(Box::default)
                    .insert(*key, t.clone());
            }
        }
        for payment in appended {
            self.payment_ids.insert(payment.as_uuid().as_u128(), slot);
        }
    }

    fn read_events(
        &self,
        positions: impl Iterator<Item = usize>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let decode = |slot| self.decode(slot);
        let mut reader = outbox::Reader::new(&decode);
        positions
            .filter(|pos| *pos >= self.pruned_below)
            .filter(|pos| !matches!(self.events.get(*pos), Some(Record::Pruned)))
            .filter_map(|pos| self.events.get(pos).map(|r| (pos, r)))
            .map(|(pos, r)| reader.read(pos, r))
            .collect()
    }
}

impl Store for MemoryStore {
    /// Everything is in memory, behind locks held only for the call.
    fn never_blocks(&self) -> bool {
        true
    }

    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        let inner = self.lock()?;
        match inner.ids.get(&id) {
            Some(&slot) => inner.decode(slot).map(Some),
            None => Ok(None),
        }
    }

    fn load_if_changed(&self, id: SessionId, version: u64) -> Result<Reload, StoreError> {
        let inner = self.lock()?;
        let Some(&slot) = inner.ids.get(&id) else {
            return Ok(Reload::Gone);
        };
        if inner
            .slots
            .get(slot as usize)
            .is_some_and(|s| s.version == version)
        {
            return Ok(Reload::Unchanged);
        }
        inner.decode(slot).map(Reload::Changed)
    }

    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.settle(commit.session.id())?;
        inner.check(commit)?;
        inner.apply(commit);
        Ok(())
    }

    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.transfers.get(key).and_then(|s| inner.id_at(*s)))
    }

    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.hashes.get(hash).and_then(|s| inner.id_at(*s)))
    }

    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.addresses.get(address).and_then(|s| inner.id_at(*s)))
    }

    fn find_by_payment(&self, id: PaymentId) -> Result<Option<SessionId>, StoreError> {
        Ok(self.lock()?.payment_session(id))
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.lock()?.list(query)
    }

    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        let inner = self.lock()?;
        let mut due: Vec<(OffsetDateTime, SessionId)> = inner
            .slots
            .iter()
            .filter_map(|s| s.wake_at.filter(|w| *w <= now).map(|w| (w, s.id)))
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
        let start = usize::try_from(after.unwrap_or(0))
            .unwrap_or(usize::MAX)
            .max(inner.pruned_below);
        // A page holds `limit` events that are there: pruned ones in between are skipped.
        let positions: Vec<usize> = (start..inner.events.len())
            .filter(|p| !matches!(inner.events[*p], Record::Pruned))
            .take(limit)
            .collect();
        inner.read_events(positions.into_iter())
    }

    fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.lock()?.events_before(before, limit)
    }

    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.lock()?.event(id)
    }

    fn held_transfers(
        &self,
        id: SessionId,
        limit: usize,
    ) -> Result<Vec<crate::session::HeldTransfer>, StoreError> {
        let inner = self.lock()?;
        let held = inner
            .ids
            .get(&id)
            .and_then(|slot| inner.held.get(slot))
            .map(|all| all.iter().take(limit).cloned().collect())
            .unwrap_or_default();
        Ok(held)
    }

    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock()?;
        let positions = inner
            .slot_of(id)
            .map(|s| s.events.clone())
            .unwrap_or_default();
        inner.read_events(positions.into_iter().map(|p| p as usize))
    }

    fn session_events_after(
        &self,
        id: SessionId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock()?;
        let after = after.unwrap_or(0);
        let positions: Vec<usize> = inner
            .slot_of(id)
            .map(|s| {
                // Positions are in commit order: sequence number = position + 1.
                s.events
                    .iter()
                    .map(|p| *p as usize)
                    .filter(|p| *p as u64 + 1 > after)
                    .take(limit)
                    .collect()
            })
            .unwrap_or_default();
        inner.read_events(positions.into_iter())
    }

    fn prune_events(&self, through: u64, limit: usize) -> Result<usize, StoreError> {
        Ok(self.lock()?.prune_prefix(through, limit))
    }

    fn prune_session_events(&self, id: SessionId, through: u64) -> Result<usize, StoreError> {
        Ok(self.lock()?.prune_session(id, through))
    }

    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.lock()?.idempotency.get(key).cloned())
    }

    fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let mut inner = self.lock()?;
        if let Some(held) = inner.idempotency.get(&record.key) {
            return Ok(Some(held.clone()));
        }
        let mut record = record.clone();
        // Kept to the millisecond, as every store keeps it.
        record.created = crate::json::millis::truncate(record.created);
        inner.idempotency.insert(record.key.clone(), record);
        Ok(None)
    }

    fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let ours = inner.idempotency.get(&record.key).is_some_and(|held| {
            held.session_id == record.session_id && held.request == record.request
        });
        if ours {
            inner.idempotency.remove(&record.key);
        }
        Ok(())
    }

    fn prune_idempotency(&self, before: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let mut old: Vec<(OffsetDateTime, String)> = inner
            .idempotency
            .values()
            .filter(|r| r.created < before)
            .map(|r| (r.created, r.key.clone()))
            .collect();
        old.sort();
        old.truncate(limit);
        for (_, key) in &old {
            inner.idempotency.remove(key);
        }
        Ok(old.len())
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
