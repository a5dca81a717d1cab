//! Conformance suites for the ports a plugin author implements besides the store: rate
//! sources, payment-request generators, address sources, clocks and id sources.
//!
//! Each suite is a list of public check functions (`check_…`), a `run_…` function that runs
//! them all, and a macro that expands to one `#[test]` per check, so a failing port shows
//! every check it fails at once rather than the first. Every check takes a *subject*: the
//! implementation under test plus what it promises (the pairs a rate source knows and how
//! old its rates may be, the payment methods a generator serves). A check panics like a test
//! assertion, naming itself and what is wrong.
//!
//! | port | subject | macro |
//! |---|---|---|
//! | [`RateSource`] | [`RateSubject`] | [`rate_source_tests!`](crate::rate_source_tests) |
//! | [`PaymentRequestGenerator`] | [`GeneratorSubject`] | [`request_generator_tests!`](crate::request_generator_tests) |
//! | [`AddressSource`] | [`AddressSubject`] | [`address_source_tests!`](crate::address_source_tests) |
//! | [`Clock`] | the clock | [`clock_tests!`](crate::clock_tests) |
//! | [`IdSource`] | the id source | [`id_source_tests!`](crate::id_source_tests) |
//!
//! The Lightning backend port of the rails gets its suite here when it lands.
//!
//! ```
//! use bitcoin_checkout::rates::FixedRates;
//! use bitcoin_checkout::testkit::ports::RateSubject;
//! use bitcoin_checkout::{Currency, TargetCurrency};
//! use rust_decimal::Decimal;
//! use time::{Duration, OffsetDateTime};
//!
//! fn subject() -> RateSubject<FixedRates> {
//!     let usd = Currency::from_code("USD").unwrap();
//!     let source = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_100));
//!     // A reference near today's price: the suite checks the source's answer against it
//!     // within a factor of 2 either way, which catches inverted and BTC-for-sats units.
//!     RateSubject::new(source, OffsetDateTime::now_utc(), Duration::minutes(10))
//!         .knows(usd, TargetCurrency::Sats, Decimal::from(1_000))
//! }
//!
//! // In a test module: one #[test] per check.
//! // bitcoin_checkout::rate_source_tests!(subject());
//! bitcoin_checkout::testkit::ports::run_rate_source(&subject());
//! ```
//!
//! [`RateSource`]: crate::rates::RateSource
//! [`PaymentRequestGenerator`]: crate::request::PaymentRequestGenerator
//! [`AddressSource`]: crate::request::AddressSource
//! [`Clock`]: crate::clock::Clock
//! [`IdSource`]: crate::clock::IdSource

mod addresses;
mod clocks;
mod rates;
mod requests;

pub use addresses::{
    AddressSubject, check_address_unique_across_restarts, check_address_unique_across_sessions,
    check_address_unique_across_threads, run_address_source,
};
pub use clocks::{
    check_clock_is_monotone, check_clock_is_utc, check_ids_carry_their_time,
    check_ids_sort_by_time, check_ids_sort_in_minting_order, check_ids_unique_across_threads,
    run_clock, run_id_source,
};
pub use rates::{
    RateSubject, check_rate_answers_the_pair_asked, check_rate_is_fresh,
    check_rate_not_dated_ahead, check_rate_units_match_the_reference,
    check_rate_unknown_pair_is_an_error, run_rate_source,
};
pub use requests::{
    GeneratorSubject, check_request_address_kept_on_requote, check_request_addresses_unique,
    check_request_exact_amount, check_request_expires_with_the_quote,
    check_request_hashes_unique_across_sessions, check_request_hashes_unique_across_threads,
    check_request_is_complete, run_request_generator,
};

/// Expands to one `#[test]` per listed check of a suite module, each calling it on a fresh
/// subject.
#[doc(hidden)]
#[macro_export]
macro_rules! __port_tests {
    ($subject:expr; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::testkit::ports::$check(&$subject);
            }
        )+
    };
}

/// One `#[test]` per check of the rate-source suite, each on a fresh
/// [`RateSubject`](crate::testkit::ports::RateSubject) from the expression.
///
/// ```
/// mod my_rates {
///     use bitcoin_checkout::rates::FixedRates;
///     use bitcoin_checkout::testkit::ports::RateSubject;
///     use bitcoin_checkout::{Currency, TargetCurrency};
///
///     fn subject() -> RateSubject<FixedRates> {
///         let usd = Currency::from_code("USD").unwrap();
///         let source = FixedRates::new().with(usd, TargetCurrency::Sats, 1_000.into());
///         RateSubject::new(source, time::OffsetDateTime::now_utc(), time::Duration::minutes(5))
///             .knows(usd, TargetCurrency::Sats, 1_000.into())
///     }
///
///     bitcoin_checkout::rate_source_tests!(subject());
/// }
/// ```
#[macro_export]
macro_rules! rate_source_tests {
    ($subject:expr) => {
        $crate::__port_tests!($subject;
            check_rate_unknown_pair_is_an_error,
            check_rate_answers_the_pair_asked,
            check_rate_not_dated_ahead,
            check_rate_is_fresh,
            check_rate_units_match_the_reference,
        );
    };
}

/// One `#[test]` per check of the payment-request generator suite, each on a fresh
/// [`GeneratorSubject`](crate::testkit::ports::GeneratorSubject) from the expression.
///
/// ```
/// mod my_generator {
///     use bitcoin_checkout::request::TestRequestGenerator;
///     use bitcoin_checkout::testkit::ports::GeneratorSubject;
///
///     bitcoin_checkout::request_generator_tests!(GeneratorSubject::new(TestRequestGenerator));
/// }
/// ```
#[macro_export]
macro_rules! request_generator_tests {
    ($subject:expr) => {
        $crate::__port_tests!($subject;
            check_request_exact_amount,
            check_request_expires_with_the_quote,
            check_request_is_complete,
            check_request_hashes_unique_across_sessions,
            check_request_hashes_unique_across_threads,
            check_request_address_kept_on_requote,
            check_request_addresses_unique,
        );
    };
}

/// One `#[test]` per check of the address-source suite, each on a fresh
/// [`AddressSubject`](crate::testkit::ports::AddressSubject) from the expression.
#[macro_export]
macro_rules! address_source_tests {
    ($subject:expr) => {
        $crate::__port_tests!($subject;
            check_address_unique_across_sessions,
            check_address_unique_across_threads,
            check_address_unique_across_restarts,
        );
    };
}

/// One `#[test]` per check of the clock suite, each on a fresh clock from the expression.
///
/// ```
/// mod my_clock {
///     bitcoin_checkout::clock_tests!(bitcoin_checkout::clock::SystemClock);
/// }
/// ```
#[macro_export]
macro_rules! clock_tests {
    ($clock:expr) => {
        $crate::__port_tests!($clock; check_clock_is_monotone, check_clock_is_utc);
    };
}

/// One `#[test]` per check of the id-source suite, each on a fresh source from the
/// expression.
///
/// ```
/// mod my_ids {
///     bitcoin_checkout::id_source_tests!(bitcoin_checkout::clock::RandomIds::new());
/// }
/// ```
#[macro_export]
macro_rules! id_source_tests {
    ($ids:expr) => {
        $crate::__port_tests!($ids;
            check_ids_unique_across_threads,
            check_ids_carry_their_time,
            check_ids_sort_by_time,
            check_ids_sort_in_minting_order,
        );
    };
}

/// Fails the check `name` with `what`.
#[track_caller]
fn fail(name: &str, what: impl std::fmt::Display) -> ! {
    panic!("{name}: {what}")
}

/// Runs `f` on `threads` threads at once and collects what each returned.
fn on_threads<T: Send>(threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (f, barrier) = (&f, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}
