//! The conformance suite can fail: stores that drop one changed payment, drop one changed
//! transfer, or skip the version check each fail it, and the in-memory store they wrap
//! passes it.

use std::panic::AssertUnwindSafe;

use bitcoin_checkout::store::{Commit, MemoryStore, Store, StoreError};
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
}

/// Commits `commit` to `inner` the way a store with `fault` would.
fn broken_commit(fault: Fault, inner: &MemoryStore, commit: &Commit) -> Result<(), StoreError> {
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
        _ => {}
    }
    inner.commit(&c)
}

/// The panic message of the suite run on stores with `fault`, if it failed.
fn failure_of(fault: Fault) -> Option<String> {
    // The suite reports its first violation by panicking, like a test assertion.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        conformance::run_all(|| {
            ObservedStore::new(MemoryStore::new())
                .intercept_commit(move |inner, commit| broken_commit(fault, inner, commit))
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
