//! The store conformance suite: every [`Store`] implementation should pass [`run_all`].
//!
//! Each check is also a public function (`check_…`), so a failing one can be run alone.
//! The checks drive sessions through the real core ([`CheckoutSession`] commands with
//! [`TestRequestGenerator`] requests) or through the [`Checkout`] service with a
//! [`ManualClock`], and panic like a test assertion, naming the check, on the first
//! violation of the contract in [`crate::store`].
//!
//! Every check takes the store by reference and works only with sessions, keys and
//! events it makes itself (fresh ids), so the checks may also share one store, one after
//! another, even a store that already holds data. They must not run concurrently on one
//! store with each other or with other writers: several of them check that nothing else
//! was written to the outbox or listing meanwhile. [`check_due`] uses creation times in
//! 1971 (before any real session) and deactivates its sessions when it is done.
//!
//! Stores with more than sessions have suites of their own, run the same way:
//! [`run_links`] for a [`LinkStore`] (checkout links and payment links),
//! `run_delivery` for a webhook `DeliveryStore` (feature `webhooks`) and
//! [`run_address_index`] for an [`AddressIndex`].
//!
//! # Running the suite for your own store
//!
//! In your crate's tests, with `bitcoin-checkout` as a dev-dependency with the `testkit`
//! feature (here with the in-memory store standing in for yours):
//!
//! ```
//! use bitcoin_checkout::store::MemoryStore;
//! use bitcoin_checkout::testkit::conformance;
//!
//! // #[test]
//! fn my_store_conforms() {
//!     // Every check, each on a fresh store from the closure...
//!     conformance::run_all(MemoryStore::new);
//!     // ...or one check alone, while fixing it.
//!     conformance::check_list(&MemoryStore::new());
//! }
//! # my_store_conforms();
//! ```

mod address_index;
mod concurrency;
#[cfg(feature = "webhooks")]
mod delivery;
mod filters;
mod fixtures;
mod links;
mod listing;
mod routing;
mod sessions;

pub use address_index::{
    check_address_index_sequence, check_address_index_threads, run_address_index,
};
pub use concurrency::{check_racing_commits, check_service_lifecycle};
#[cfg(feature = "webhooks")]
pub use delivery::*;
pub use filters::{
    check_list_by_created, check_list_by_metadata, check_list_by_source_id, check_list_refusals,
    check_list_with_unresolved_flags,
};
pub use links::{
    check_link_conflict_writes_nothing, check_link_events_in_outbox, check_link_round_trip,
    check_link_service, check_link_sessions_order, check_link_stale_session_writes_nothing,
    run_links,
};
pub use listing::{
    check_due, check_event_round_trip, check_events_after, check_list, check_session_events,
};
pub use routing::check_keys_stay_with_their_first_session;
pub use sessions::{
    check_idempotency, check_idempotency_race, check_insert_existing_conflict, check_load_missing,
    check_lookups, check_round_trip, check_stale_version_conflict, check_transfer_updated,
};

use crate::store::Store;
#[cfg(doc)]
use crate::{
    clock::ManualClock, request::AddressIndex, request::TestRequestGenerator, service::Checkout,
    session::CheckoutSession, store::LinkStore,
};

/// A check of the suite.
type Check<S> = fn(&S);

/// Every check, by name.
fn checks<S: Store>() -> Vec<(&'static str, Check<S>)> {
    vec![
        ("check_load_missing", check_load_missing::<S>),
        ("check_round_trip", check_round_trip::<S>),
        (
            "check_stale_version_conflict",
            check_stale_version_conflict::<S>,
        ),
        (
            "check_insert_existing_conflict",
            check_insert_existing_conflict::<S>,
        ),
        ("check_idempotency", check_idempotency::<S>),
        ("check_idempotency_race", check_idempotency_race::<S>),
        ("check_lookups", check_lookups::<S>),
        ("check_transfer_updated", check_transfer_updated::<S>),
        (
            "check_keys_stay_with_their_first_session",
            check_keys_stay_with_their_first_session::<S>,
        ),
        ("check_list", check_list::<S>),
        ("check_list_refusals", check_list_refusals::<S>),
        ("check_list_by_source_id", check_list_by_source_id::<S>),
        ("check_list_by_metadata", check_list_by_metadata::<S>),
        ("check_list_by_created", check_list_by_created::<S>),
        (
            "check_list_with_unresolved_flags",
            check_list_with_unresolved_flags::<S>,
        ),
        ("check_due", check_due::<S>),
        ("check_events_after", check_events_after::<S>),
        ("check_session_events", check_session_events::<S>),
        ("check_event_round_trip", check_event_round_trip::<S>),
        ("check_racing_commits", check_racing_commits::<S>),
        ("check_service_lifecycle", check_service_lifecycle::<S>),
    ]
}

/// Runs every conformance check, each on a fresh store from `fresh`, then all of them
/// again, one after another, on one more fresh store (so that each also holds with
/// the others' data around). Panics (like a test assertion) on the first violation,
/// naming the check.
pub fn run_all<S: Store>(fresh: impl FnMut() -> S) {
    run_checks(&checks::<S>(), fresh);
}

/// Runs each check on a fresh store, then all of them on one more.
fn run_checks<S>(all: &[(&'static str, Check<S>)], mut fresh: impl FnMut() -> S) {
    for (_name, check) in all {
        check(&fresh());
    }
    let shared = fresh();
    for (_name, check) in all {
        check(&shared);
    }
}
