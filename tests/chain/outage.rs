//! The store fails while a pass records its views: the views wait, saved, and a watcher
//! started again (after a crash) records each exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bitcoin_checkout::backend::ResumePoint;
use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::onchain::DerivedAddresses;
use bitcoin_checkout::request::{Disabled, MemoryAddressIndex, RequestGenerator};
use bitcoin_checkout::store::{
    Commit, IdempotencyRecord, ListQuery, MemoryStore, Page, ResumeStore, Store, StoreError,
    StoredEvent,
};
use bitcoin_checkout::transfer::{ConfirmationPolicy, TransferKey};
use bitcoin_checkout::watch::{ChainWatcher, WatchConfig, WatchError};
use bitcoin_checkout::*;

use crate::chain::{Chain, pay};
use crate::common::{dec, t0, usd};
use crate::shop::{counted, deriver, feed};

/// A memory store whose commits fail (retryably) while `down` is set; its resume points
/// keep working, as a separate table of a database under load might.
struct Outage {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Outage {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::Backend {
                message: "the database is down (test)".into(),
                retryable: true,
            }),
            false => Ok(()),
        }
    }
}

impl Store for Outage {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        self.inner.load(id)
    }
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.check()?;
        self.inner.commit(commit)
    }
    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
        self.inner.find_by_transfer(key)
    }
    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        self.inner.find_by_payment_hash(hash)
    }
    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        self.inner.find_by_address(address)
    }
    fn find_by_payment(&self, id: PaymentId) -> Result<Option<SessionId>, StoreError> {
        self.inner.find_by_payment(id)
    }
    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.inner.list(query)
    }
    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        self.inner.due(now, limit)
    }
    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events_after(after, limit)
    }
    fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events_before(before, limit)
    }
    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.inner.event(id)
    }
    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.session_events(id)
    }
    fn held_transfers(
        &self,
        id: SessionId,
        limit: usize,
    ) -> Result<Vec<session::HeldTransfer>, StoreError> {
        self.inner.held_transfers(id, limit)
    }
    fn prune_idempotency(&self, before: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
        self.inner.prune_idempotency(before, limit)
    }
    fn prune_events(&self, through: u64, limit: usize) -> Result<usize, StoreError> {
        self.inner.prune_events(through, limit)
    }
    fn prune_session_events(&self, id: SessionId, through: u64) -> Result<usize, StoreError> {
        self.inner.prune_session_events(id, through)
    }
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency(key)
    }
    fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.claim_idempotency(record)
    }
    fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        self.inner.release_idempotency(record)
    }
}

impl ResumeStore for Outage {
    fn resume_point(&self, name: &str) -> Result<Option<ResumePoint>, StoreError> {
        self.inner.resume_point(name)
    }
    fn save_resume_point(
        &self,
        name: &str,
        expected: Option<&ResumePoint>,
        new: &ResumePoint,
    ) -> Result<(), StoreError> {
        self.inner.save_resume_point(name, expected, new)
    }
    fn resume_points(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ResumePoint)>, StoreError> {
        self.inner.resume_points(prefix, after, limit)
    }
    fn delete_resume_point(&self, name: &str, expected: &ResumePoint) -> Result<(), StoreError> {
        self.inner.delete_resume_point(name, expected)
    }
}

#[test]
fn views_wait_through_a_store_outage_and_a_crash_and_are_recorded_once() {
    let index = Arc::new(MemoryAddressIndex::new());
    let generator: RequestGenerator<Disabled, _> =
        RequestGenerator::new().onchain(DerivedAddresses::new(deriver(), Arc::clone(&index)));
    let store = Outage {
        inner: MemoryStore::new(),
        down: AtomicBool::new(false),
    };
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let shop = Checkout::new(store, rates, generator).with_clock(Arc::new(ManualClock::new(t0())));
    let params = SessionParams::new(dec("10"), usd())
        .payment_methods([PaymentMethod::Onchain])
        .confirmations(ConfirmationPolicy::One);
    let session = shop.create(params, None).expect("created");
    let address = session.onchain_address().expect("address").to_owned();

    let mut chain = Chain::new();
    chain.mine(vec![pay(&[chain.coin()], &[(&address, 10_000)], false)]);
    let mut watcher =
        ChainWatcher::load(shop.store(), deriver(), WatchConfig::default()).expect("loads");
    feed(&mut watcher, &chain);
    shop.store().down.store(true, Ordering::SeqCst);
    let err = watcher.sync(&shop, &*index).expect_err("the store is down");
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(err, WatchError::Service(_)), "{err}");
    assert_eq!(watcher.pending_views().count(), 1, "the view waits");
    assert!(
        shop.get(session.id())
            .expect("read")
            .transfers()
            .next()
            .is_none()
    );
    drop(watcher); // the process dies here

    shop.store().down.store(false, Ordering::SeqCst);
    let mut again =
        ChainWatcher::load(shop.store(), deriver(), WatchConfig::default()).expect("loads");
    assert_eq!(again.pending_views().count(), 1, "the saved state kept it");
    let pass = again.sync(&shop, &*index).expect("the store is back");
    assert_eq!(pass.recorded.len(), 1);
    let s = shop.get(session.id()).expect("read");
    assert_eq!(s.status(), SessionStatus::Paid);
    assert_eq!(s.transfers().count(), 1);
    assert_eq!(counted(&s), 10_000);
    assert!(
        again
            .sync(&shop, &*index)
            .expect("nothing new")
            .recorded
            .is_empty()
    );
}
