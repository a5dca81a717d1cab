//! The reference model against the [`Checkout`] service: a [`ServiceHarness`] that drives
//! the service over any store, rate source and payment-request generator, the
//! [`ServiceCommand`]s it runs, and [`check_store`], the ready-made property test a store
//! author runs in a few lines.
//!
//! Unlike the core [`Harness`](crate::testkit::Harness), which hands the core its quotes,
//! this one lets the service make them (ids from its id source, rates from its rate source,
//! requests from its generator) and checks each against the model, and it reads the
//! session back from the store after every step, past the service's cache: a store that
//! loses a transfer, reorders events or a rate source that rounds is caught at the first
//! step that shows it.
//!
//! # A store author's property test
//!
//! ```
//! use bitcoin_checkout::store::MemoryStore;
//! use bitcoin_checkout::testkit::service;
//!
//! // #[test]
//! fn my_store_behaves_like_the_model() {
//!     // Each case on a fresh store; 256 cases is what the crate's own stores run in CI.
//!     service::check_store(MemoryStore::new, 16);
//! }
//! # my_store_behaves_like_the_model();
//! ```
//!
//! # Your own rates or generator, with proptest
//!
//! ```
//! use bitcoin_checkout::rates::FixedRates;
//! use bitcoin_checkout::request::TestRequestGenerator;
//! use bitcoin_checkout::store::MemoryStore;
//! use bitcoin_checkout::testkit::service::{ServiceHarness, service_case};
//! use proptest::prelude::*;
//!
//! proptest! {
//!     #![proptest_config(ProptestConfig::with_cases(8))]
//!     // #[test]
//!     fn quotes_follow_the_model(case in service_case(0..=10)) {
//!         let s = &case.spec;
//!         let rates = FixedRates::new().with(s.currency, s.target_currency, case.rate.to_decimal());
//!         let mut harness =
//!             ServiceHarness::new(s, case.rate, MemoryStore::new(), rates, TestRequestGenerator)?;
//!         harness.run(&case.commands)?;
//!     }
//! }
//! # quotes_follow_the_model();
//! ```
//!
//! # Shrinking fast
//!
//! Counterexamples shrink best when the case is small and its parts independent:
//!
//! * generate lengths from 0 (`service_case(0..=12)`, not `1..=12`): proptest removes
//!   commands one by one and a bug needing one payment shrinks to one command;
//! * fix what the bug does not depend on: `ServiceHarness::with_store` with a fixed
//!   [`SessionSpec`](crate::testkit::model::SessionSpec) and rate while you chase a store
//!   bug, [`service_command`] sequences only;
//! * give the shrinker room: proptest's default of 1024 iterations can stop with a case
//!   still ten commands long; [`find_counterexample_with`] allows 16,384 (each a run of
//!   at most 12 commands, a few seconds in all on the in-memory store). Set
//!   `max_shrink_iters` in your `ProptestConfig` the same way;
//! * read the result: a [`ServiceCase`] prints as a numbered list of commands, and the
//!   [`Failure`] names the step, the field and both values, with
//!   the log of service calls before it.

mod commands;
mod harness;

pub use commands::{ServiceCase, ServiceCommand, service_case, service_command};
pub use harness::{ServiceHarness, run_case};

use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

#[cfg(doc)]
use crate::Checkout;
use crate::store::Store;
use crate::testkit::Failure;

/// Runs `cases` random [`ServiceCase`]s (up to 12 commands each), each on a fresh store from
/// `fresh`, and panics with the shrunk counterexample (a short list of commands) and the
/// failure if one differs from the model.
pub fn check_store<S: Store>(fresh: impl Fn() -> S, cases: u32) {
    if let Err(found) = find_counterexample(fresh, cases) {
        panic!("the service over this store differs from the model\n{found}");
    }
}

/// A case on which the service differed from the model, shrunk by proptest.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// The shrunk case (`None` if proptest gave up before finding one, e.g. too many
    /// rejected inputs).
    pub case: Option<Box<ServiceCase>>,
    /// What differed: the step, the field, both values and the log.
    pub failure: String,
}

impl std::fmt::Display for Counterexample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.case {
            Some(case) => write!(f, "  case: {case:?}{}", self.failure),
            None => write!(f, "  no case: {}", self.failure),
        }
    }
}

/// Like [`check_store`], but returns the shrunk counterexample instead of panicking (for
/// tests that expect a store to fail).
pub fn find_counterexample<S: Store>(
    fresh: impl Fn() -> S,
    cases: u32,
) -> Result<(), Counterexample> {
    find_counterexample_with(cases, |case| run_case(case, fresh()))
}

/// Runs `cases` random [`ServiceCase`]s through `run` (which builds a
/// [`ServiceHarness`] with your rates and generator and runs the case on it) and returns
/// the shrunk counterexample of the first failure.
pub fn find_counterexample_with(
    cases: u32,
    run: impl Fn(&ServiceCase) -> Result<(), Failure>,
) -> Result<(), Counterexample> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // Enough for a case's spec and commands to shrink fully (each try is one run).
        max_shrink_iters: 16_384,
        ..Config::default()
    });
    let result = runner.run(&service_case(0..=12), |case| {
        run(&case).map_err(|f| TestCaseError::fail(f.to_string()))
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, case)) => Err(Counterexample {
            case: Some(Box::new(case)),
            failure: reason.to_string(),
        }),
        Err(TestError::Abort(reason)) => Err(Counterexample {
            case: None,
            failure: reason.to_string(),
        }),
    }
}
