//! The service against the reference model over the crate's stores (256 cases each; the
//! PostgreSQL run is in `postgres_store.rs`), and proof that the service harness finds a
//! store that drops transfers and a rate source that rounds, shrunk to a few commands.
#![cfg(feature = "testkit")]

use bitcoin_checkout::rates::{FixedRates, RateError, RateSource};
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{Commit, MemoryStore, Store, StoreError};
use bitcoin_checkout::testkit::ObservedStore;
use bitcoin_checkout::testkit::service::{self, ServiceHarness};
use bitcoin_checkout::{Currency, ExchangeRate, OffsetDateTime, TargetCurrency};

#[test]
fn the_service_over_the_memory_store_behaves_like_the_model() {
    service::check_store(MemoryStore::new, 256);
}

#[cfg(feature = "sqlite")]
#[test]
fn the_service_over_the_sqlite_store_behaves_like_the_model() {
    service::check_store(
        || bitcoin_checkout::store::SqliteStore::open_in_memory().expect("open"),
        256,
    );
}

/// Writes every commit of a stored session without its first transfer.
fn drops_transfers(inner: &MemoryStore, commit: &Commit) -> Result<(), StoreError> {
    let mut c = commit.clone();
    if c.expected_version.is_some() && !c.transfers.is_empty() {
        c.transfers.remove(0);
    }
    inner.commit(&c)
}

/// Checks that a counterexample was found, shrunk to at most 3 commands, and names the
/// problem (one of `fragments`).
fn assert_found(found: Result<(), service::Counterexample>, fragments: &[&str]) {
    let found = found.expect_err("the harness finds the bug");
    // The counterexample as a user would read it (shown with --nocapture).
    println!("{found}");
    let case = found.case.as_deref().expect("a shrunk case");
    assert!(
        case.commands.len() <= 3,
        "shrunk to {} commands: {found}",
        case.commands.len()
    );
    assert!(
        fragments.iter().any(|f| found.failure.contains(f)),
        "{found}"
    );
}

#[test]
fn a_store_that_drops_transfers_is_found_and_shrunk() {
    let found = service::find_counterexample(
        || ObservedStore::new(MemoryStore::new()).intercept_commit(drops_transfers),
        256,
    );
    assert_found(found, &["transfer", "received"]);
}

/// A rate source that rounds every rate to a whole number of target units.
struct Rounding(FixedRates);

impl RateSource for Rounding {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        let exact = self.0.rate(base, target, now)?;
        let rounded = exact.rate().round();
        Ok(ExchangeRate::new(
            base,
            target,
            rounded.max(rust_decimal::Decimal::ONE),
            "rounding",
            now,
        )?)
    }
}

#[test]
fn a_rate_source_that_rounds_is_found_and_shrunk() {
    let found = service::find_counterexample_with(256, |case| {
        let s = &case.spec;
        let exact = FixedRates::new().with(s.currency, s.target_currency, case.rate.to_decimal());
        ServiceHarness::new(
            s,
            case.rate,
            MemoryStore::new(),
            Rounding(exact),
            TestRequestGenerator,
        )?
        .run(&case.commands)
    });
    assert_found(found, &["rate", "target"]);
}
