//! The conformance suite can fail: stores that drop one changed payment, drop one changed
//! transfer, or skip the version check each fail it, and the in-memory store they wrap
//! passes it.

use std::panic::AssertUnwindSafe;

use bitcoin_checkout::store::{
    Commit, IdempotencyRecord, ListQuery, MemoryStore, Page, Store, StoreError, StoredEvent,
};
use bitcoin_checkout::testkit::conformance;
use bitcoin_checkout::{CheckoutSession, PaymentHash, SessionId, TransferKey};
use time::OffsetDateTime;

/// What a broken store does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Writes the commit without the last payment it names.
    DropsAChangedPayment,
    /// Writes the commit without the first transfer it names.
    DropsAChangedTransfer,
    /// Applies a commit whatever version is stored (no compare-and-swap).
    SkipsTheVersionCheck,
}

struct Broken {
    inner: MemoryStore,
    fault: Fault,
}

impl Store for Broken {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        self.inner.load(id)
    }
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let mut c = commit.clone();
        match self.fault {
            // Only changes of stored sessions: an insert writes the whole session here.
            Fault::DropsAChangedPayment if c.expected_version.is_some() => {
                c.payments.pop();
            }
            Fault::DropsAChangedTransfer if c.expected_version.is_some() && !c.transfers.is_empty() => {
                c.transfers.remove(0);
            }
            Fault::SkipsTheVersionCheck => {
                if let Some(stored) = self.inner.load(c.session.id())? {
                    c.expected_version = Some(stored.version());
                }
            }
            _ => {}
        }
        self.inner.commit(&c)
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
    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.inner.list(query)
    }
    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        self.inner.due(now, limit)
    }
    fn events_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events_after(after, limit)
    }
    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.session_events(id)
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

/// The panic message of the suite run on stores with `fault`, if it failed.
fn failure_of(fault: Fault) -> Option<String> {
    // The suite reports its first violation by panicking, like a test assertion.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        conformance::run_all(|| Broken {
            inner: MemoryStore::new(),
            fault,
        })
    }));
    std::panic::set_hook(hook);
    result.err().map(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

#[test]
fn the_wrapped_store_passes() {
    conformance::run_all(MemoryStore::new);
}

#[test]
fn a_store_that_drops_a_changed_payment_fails() {
    let message = failure_of(Fault::DropsAChangedPayment).expect("the suite must fail");
    assert!(message.starts_with("check_"), "names the check: {message}");
}

#[test]
fn a_store_that_drops_a_changed_transfer_fails() {
    let message = failure_of(Fault::DropsAChangedTransfer).expect("the suite must fail");
    assert!(message.starts_with("check_"), "names the check: {message}");
}

#[test]
fn a_store_that_skips_the_version_check_fails() {
    let message = failure_of(Fault::SkipsTheVersionCheck).expect("the suite must fail");
    assert!(message.contains("check_stale_version_conflict"), "{message}");
}
