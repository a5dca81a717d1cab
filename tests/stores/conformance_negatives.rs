//! The conformance suite can fail: stores that drop one changed payment, drop one changed
//! transfer, skip the version check, lose every 50th transfer, reorder a commit's events,
//! renumber events between reads or let a later session take a payment hash each fail it,
//! with a message naming the check and the problem; the in-memory store they wrap passes.

use crate::common::panic_message;
use std::sync::atomic::{AtomicUsize, Ordering};

use bitcoin_checkout::SessionId;
use bitcoin_checkout::request::PaymentHash;
use bitcoin_checkout::store::{Commit, MemoryStore, RoutingKey, Store, StoreError, StoredEvent};
use bitcoin_checkout::testkit::{ObservedStore, conformance};

/// What a broken store does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Writes the commit without the last payment it names.
    DropsAChangedPayment,
    /// Writes the commit without the first transfer it names.
    DropsAChangedTransfer,
    /// Applies a commit whatever version is stored (no compare-and-swap).
    SkipsTheVersionCheck,
    /// Writes every transfer but each 50th (counted across all commits of one store).
    LosesEveryNthTransfer,
    /// Writes a commit's events in reverse order.
    ReordersEvents,
}

/// Commits `commit` to `inner` the way a store with `fault` would.
fn broken_commit(
    fault: Fault,
    inner: &MemoryStore,
    commit: &Commit,
    written: &AtomicUsize,
) -> Result<(), StoreError> {
    let mut c = commit.clone();
    match fault {
        // Only changes of stored sessions: an insert writes the whole session here.
        Fault::DropsAChangedPayment if c.expected_version.is_some() => {
            c.payments.pop();
        }
        Fault::DropsAChangedTransfer if c.expected_version.is_some() && !c.transfers.is_empty() => {
            c.transfers.remove(0);
        }
        Fault::SkipsTheVersionCheck => {
            if let Some(stored) = inner.load(c.session.id())? {
                c.expected_version = Some(stored.version());
            }
        }
        // Only changed transfers of stored sessions: the memory store keeps a new session
        // whole.
        Fault::LosesEveryNthTransfer if c.expected_version.is_some() => {
            c.transfers
                .retain(|_| !(written.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(50));
        }
        Fault::ReordersEvents => c.events.reverse(),
        _ => {}
    }
    inner.commit(&c)
}

/// The panic message of the suite run on stores with `fault`, if it failed.
fn failure_of(fault: Fault) -> Option<String> {
    // The suite reports its first violation by panicking, like a test assertion.
    panic_message(|| {
        conformance::run_all(|| {
            let written = AtomicUsize::new(0);
            ObservedStore::new(MemoryStore::new()).intercept_commit(move |inner, commit| {
                broken_commit(fault, inner, commit, &written)
            })
        })
    })
}

#[test]
fn the_wrapped_store_passes() {
    conformance::run_all(|| ObservedStore::new(MemoryStore::new()));
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
    assert!(
        message.contains("check_stale_version_conflict"),
        "{message}"
    );
}

#[test]
fn a_store_that_loses_every_50th_transfer_fails() {
    let message = failure_of(Fault::LosesEveryNthTransfer).expect("the suite must fail");
    assert!(message.starts_with("check_"), "names the check: {message}");
}

#[test]
fn the_volume_check_alone_catches_every_50th_transfer_lost() {
    let written = AtomicUsize::new(0);
    let store = ObservedStore::new(MemoryStore::new()).intercept_commit(move |inner, commit| {
        broken_commit(Fault::LosesEveryNthTransfer, inner, commit, &written)
    });
    let message =
        panic_message(|| conformance::check_volume(&store)).expect("check_volume must fail");
    // The first session that lost one: its paid amount counts one transfer less.
    assert!(
        message.starts_with("check_volume: session 1 of 120"),
        "{message}"
    );
    assert!(
        message.contains("amount_paid: got 29, want 30"),
        "names the field: {message}"
    );
}

#[test]
fn a_store_that_reorders_events_fails() {
    let message = failure_of(Fault::ReordersEvents).expect("the suite must fail");
    assert!(message.starts_with("check_"), "names the check: {message}");
    assert!(
        message.contains("first difference at"),
        "points at it: {message}"
    );
}

/// Renumbers the outbox on every read: each read adds 1,000 to every sequence number
/// (and takes it off the cursor), so an event's number changes between reads.
struct Renumbering {
    inner: MemoryStore,
    reads: AtomicUsize,
}

impl Store for Renumbering {
    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let shift = 1_000 * (self.reads.fetch_add(1, Ordering::Relaxed) as u64 % 3);
        let after = after.map(|a| a.saturating_sub(shift));
        let mut events = self.inner.events_after(after, limit)?;
        for e in &mut events {
            e.seq += shift;
        }
        Ok(events)
    }

    bitcoin_checkout::forward_store!(inner:
        load, commit, find_by_transfer, find_by_payment_hash, find_by_address, find_by_payment,
        list, due, events_before, event, session_events, held_transfers, idempotency, claim_idempotency,
        release_idempotency, prune_idempotency, prune_events, prune_session_events);
}

#[test]
fn a_store_that_renumbers_events_fails() {
    let message = panic_message(|| {
        conformance::run_all(|| Renumbering {
            inner: MemoryStore::new(),
            reads: AtomicUsize::new(0),
        })
    })
    .expect("the suite must fail");
    assert!(message.starts_with("check_"), "names the check: {message}");
}

/// Lets a later session take a payment hash: when the memory store refuses a commit
/// because another session holds a key, this store drops the refusal, reports success
/// and routes the hash to the newcomer (as a store without a unique index would).
struct HashThief {
    inner: MemoryStore,
    stolen: std::sync::Mutex<Vec<(PaymentHash, SessionId)>>,
}

impl Store for HashThief {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        match self.inner.commit(commit) {
            Err(StoreError::KeyTaken {
                key: RoutingKey::PaymentHash(hash),
                ..
            }) => {
                self.stolen
                    .lock()
                    .unwrap()
                    .push((hash, commit.session.id()));
                Ok(())
            }
            other => other,
        }
    }

    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        let stolen = self.stolen.lock().unwrap();
        match stolen.iter().rev().find(|(h, _)| h == hash) {
            Some((_, thief)) => Ok(Some(*thief)),
            None => self.inner.find_by_payment_hash(hash),
        }
    }

    bitcoin_checkout::forward_store!(inner:
        load, find_by_transfer, find_by_address, find_by_payment, list, due, events_after,
        events_before, event, session_events, held_transfers, idempotency, claim_idempotency,
        release_idempotency, prune_idempotency, prune_events, prune_session_events);
}

#[test]
fn a_store_that_lets_a_later_session_take_a_hash_fails() {
    let store = HashThief {
        inner: MemoryStore::new(),
        stolen: Default::default(),
    };
    let message = panic_message(|| conformance::check_keys_stay_with_their_first_session(&store))
        .expect("the check must fail");
    assert!(
        message.starts_with("check_keys_stay_with_their_first_session"),
        "{message}"
    );
    assert!(
        message.contains("payment hash") || message.contains("KeyTaken"),
        "{message}"
    );
}
