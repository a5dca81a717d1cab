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
//! Beyond single operations, [`check_volume`] writes and reads back thousands of
//! transfers and events across many sessions (a store losing one row in a thousand fails
//! it), [`check_events_after_under_writers`] polls the outbox while 4 threads commit, and
//! [`check_keys_stay_with_their_first_session`] checks who keeps a payment hash, an
//! address or a transfer when a second session claims it. The reads of an HTTP API have
//! checks of their own: [`check_find_by_payment`], [`check_event_by_id`],
//! [`check_events_before`], [`check_list_livemode`] and (links) [`check_list_links`]. Failures name the check and
//! the first differing field or index (see [`diff`](crate::testkit::diff)).
//!
//! Stores with more than sessions have suites of their own, run the same way:
//! [`run_links`] for a [`LinkStore`] (checkout links and payment links),
//! `run_delivery` for a webhook `DeliveryStore` (feature `webhooks`),
//! [`run_address_index`] for an [`AddressIndex`] and [`run_resume_store`] for a
//! [`ResumeStore`](crate::store::ResumeStore) (settlement listeners' resume points).
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
//!
//! Or let [`store_tests!`](crate::store_tests) write one `#[test]` per check, so every
//! failing check shows at once (and `cargo test check_volume` runs one):
//!
//! ```
//! mod my_store {
//!     bitcoin_checkout::store_tests!(bitcoin_checkout::store::MemoryStore::new());
//! }
//! ```

mod address_index;
mod concurrency;
#[cfg(feature = "webhooks")]
mod delivery;
mod filters;
mod fixtures;
mod held;
mod link_listing;
mod links;
mod listing;
mod reads;
mod resume;
mod routing;
mod sessions;
mod volume;

pub use address_index::{
    check_address_index_reserved, check_address_index_sequence, check_address_index_threads,
    run_address_index,
};
pub use concurrency::{check_racing_commits, check_service_lifecycle};
#[cfg(feature = "webhooks")]
pub use delivery::*;
pub use filters::{
    check_list_by_created, check_list_by_metadata, check_list_by_source_id, check_list_livemode,
    check_list_refusals, check_list_with_unresolved_flags,
};
pub use held::{
    check_held_transfers, check_idempotency_prune, check_prune_events, check_prune_session_events,
    check_session_events_paged,
};
pub use link_listing::check_list_links;
pub use links::{
    check_link_conflict_writes_nothing, check_link_events_in_outbox, check_link_round_trip,
    check_link_service, check_link_sessions_order, check_link_stale_session_writes_nothing,
    run_links,
};
pub use listing::{
    check_due, check_event_round_trip, check_events_after, check_list, check_session_events,
};
pub use reads::{
    check_event_by_id, check_events_before, check_find_by_payment, check_load_if_changed,
};
pub use resume::{
    check_resume_point_compare_and_swap, check_resume_point_races,
    check_resume_points_listed_and_deleted, run_resume_store,
};
pub use routing::check_keys_stay_with_their_first_session;
pub use sessions::{
    check_idempotency, check_idempotency_race, check_insert_existing_conflict, check_load_missing,
    check_lookups, check_round_trip, check_stale_version_conflict, check_transfer_updated,
};
pub use volume::{check_events_after_under_writers, check_volume};

use crate::store::Store;
#[cfg(doc)]
use crate::{
    clock::ManualClock, request::AddressIndex, request::TestRequestGenerator, service::Checkout,
    session::CheckoutSession, store::LinkStore,
};

/// A check of the suite.
type Check<S> = fn(&S);

/// The store checks, in the order [`run_all`] runs them: the one list behind
/// [`run_all`] and [`store_tests!`](crate::store_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_checks {
    ($expand:ident $arg:tt) => {
        $crate::__conformance! { $expand $arg;
            check_load_missing,
            check_round_trip,
            check_load_if_changed,
            check_stale_version_conflict,
            check_insert_existing_conflict,
            check_idempotency,
            check_idempotency_race,
            check_idempotency_prune,
            check_lookups,
            check_find_by_payment,
            check_transfer_updated,
            check_keys_stay_with_their_first_session,
            check_held_transfers,
            check_list,
            check_list_refusals,
            check_list_by_source_id,
            check_list_by_metadata,
            check_list_by_created,
            check_list_with_unresolved_flags,
            check_list_livemode,
            check_due,
            check_events_after,
            check_events_before,
            check_event_by_id,
            check_session_events,
            check_session_events_paged,
            check_prune_session_events,
            check_event_round_trip,
            check_racing_commits,
            check_events_after_under_writers,
            check_service_lifecycle,
            check_volume,
            check_prune_events,
        }
    };
}

/// The link-store checks: the one list behind [`run_links`] and
/// [`link_store_tests!`](crate::link_store_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __link_checks {
    ($expand:ident $arg:tt) => {
        $crate::__conformance! { $expand $arg;
            check_link_round_trip,
            check_link_conflict_writes_nothing,
            check_link_stale_session_writes_nothing,
            check_link_sessions_order,
            check_link_events_in_outbox,
            check_link_service,
            check_list_links,
        }
    };
}

/// The address-index checks: the one list behind [`run_address_index`] and
/// [`address_index_tests!`](crate::address_index_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __address_index_checks {
    ($expand:ident $arg:tt) => {
        $crate::__conformance! { $expand $arg;
            check_address_index_sequence,
            check_address_index_reserved,
            check_address_index_threads,
        }
    };
}

/// The resume-store checks: the one list behind [`run_resume_store`] and
/// [`resume_store_tests!`](crate::resume_store_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __resume_store_checks {
    ($expand:ident $arg:tt) => {
        $crate::__conformance! { $expand $arg;
            check_resume_point_compare_and_swap,
            check_resume_point_races,
            check_resume_points_listed_and_deleted,
        }
    };
}

/// Expands a check list: `list (T)` into a `Vec` of `(name, check)` for `T`, `tests
/// (fresh)` into one `#[test]` per check on a store made by `fresh`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance {
    (list ($ty:ty); $($check:ident),+ $(,)?) => {
        vec![$((stringify!($check), $crate::testkit::conformance::$check::<$ty> as fn(&$ty))),+]
    };
    (tests ($fresh:expr); $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                let store = $fresh;
                $crate::testkit::conformance::$check(&store);
            }
        )+
    };
}

/// One `#[test]` per store check, each on a fresh store from the expression, plus
/// `every_check_on_one_store` running them all on one (as [`run_all`] does last), so a
/// failing store shows every check it fails at once.
///
/// ```
/// mod my_store {
///     bitcoin_checkout::store_tests!(bitcoin_checkout::store::MemoryStore::new());
/// }
/// ```
#[macro_export]
macro_rules! store_tests {
    ($fresh:expr) => {
        $crate::__store_checks!(tests($fresh));

        #[test]
        fn every_check_on_one_store() {
            $crate::testkit::conformance::run_all_on(&$fresh);
        }
    };
}

/// One `#[test]` per link-store check (the contract of
/// [`LinkStore`](crate::store::LinkStore)), each on a fresh store from the expression. A
/// link store is a store: use [`store_tests!`](crate::store_tests) too (in another module).
///
/// ```
/// mod my_link_store {
///     bitcoin_checkout::link_store_tests!(bitcoin_checkout::store::MemoryStore::new());
/// }
/// ```
#[macro_export]
macro_rules! link_store_tests {
    ($fresh:expr) => {
        $crate::__link_checks!(tests($fresh));
    };
}

/// One `#[test]` per address-index check, each on a fresh index from the expression.
///
/// ```
/// mod my_index {
///     bitcoin_checkout::address_index_tests!(bitcoin_checkout::request::MemoryAddressIndex::new());
/// }
/// ```
#[macro_export]
macro_rules! address_index_tests {
    ($fresh:expr) => {
        $crate::__address_index_checks!(tests($fresh));
    };
}

/// One `#[test]` per resume-store check (the contract of
/// [`ResumeStore`](crate::store::ResumeStore)), each on a fresh store from the expression.
///
/// ```
/// mod my_resume_store {
///     bitcoin_checkout::resume_store_tests!(bitcoin_checkout::store::MemoryStore::new());
/// }
/// ```
#[macro_export]
macro_rules! resume_store_tests {
    ($fresh:expr) => {
        $crate::__resume_store_checks!(tests($fresh));
    };
}

/// Every check, by name.
fn checks<S: Store>() -> Vec<(&'static str, Check<S>)> {
    crate::__store_checks!(list(S))
}

/// Runs every store check on `store`, one after another (they share it; see the module
/// docs for what sharing allows).
pub fn run_all_on<S: Store>(store: &S) {
    for (_name, check) in checks::<S>() {
        check(store);
    }
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
