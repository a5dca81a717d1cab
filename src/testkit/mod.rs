//! A test kit for users of the crate (feature `testkit`): what a plugin author and a
//! property-test user need to show their code does what the crate's own does.
//!
//! * [`conformance`]: the store suites every [`Store`](crate::store::Store),
//!   [`LinkStore`](crate::store::LinkStore), webhook delivery store and
//!   [`AddressIndex`](crate::request::AddressIndex) should pass, as `run_…` functions and as
//!   macros writing one `#[test]` per check ([`store_tests!`](crate::store_tests) and
//!   friends); [`forward_store!`](crate::forward_store) makes a wrapper store a few lines.
//! * [`ports`]: the suites for rate sources, payment-request generators, address sources,
//!   clocks and id sources, the same way.
//! * [`service`]: the [`ServiceHarness`], which drives the [`Checkout`](crate::Checkout)
//!   service over any store, rates and generator beside the model, and
//!   [`service::check_store`], the store author's property test in one line.
//! * [`model`]: a reference model of the checkout-session lifecycle ([`ReferenceSession`]),
//!   written from the specification with integer math only, that a harness compares an
//!   integration against after every step ([`ReferenceSession::check_against`] names the
//!   first field that differs), and the [invariants](model::check_invariants) every session
//!   has on its own.
//! * [`strategies`]: proptest strategies for valid session parameters, rates, transfer
//!   reports and whole command sequences (quotes, payments, duplicates, reorderings,
//!   confirmations, reversals, expiries, updates, deactivation and deliberately bad
//!   commands), and the [`Harness`] that runs a sequence on an [`Integration`] and the model
//!   side by side.
//! * [`diff`]: where two values first differ, for failure messages.
//!
//! The kit's inputs are printable plain values named `…Spec` ([`SessionSpec`],
//! [`RateSpec`], [`ReportSpec`], [`UpdateSpec`]); each becomes the crate's own type
//! (`SessionParams`, `ExchangeRate`, `TransferReport`, `SessionUpdate`) with one call. The
//! kit re-exports [`proptest`] and the currency types its examples use, so a test crate
//! needs only `bitcoin-checkout` with the `testkit` feature. `docs/testkit.md` walks
//! through an example for each kind of user.
//!
//! # Testing your integration with proptest
//!
//! Add `bitcoin-checkout` with the `testkit` feature to your dev-dependencies. [`strategies::scenario`] generates a session, a first quote and a
//! sequence of commands; [`Scenario::run`] plays it on a [`CheckoutSession`] (or, with
//! [`Scenario::run_with`], on your own [`Integration`]) and the model, and fails with a
//! [`Failure`] naming the step, the field and both values. `?` turns it into a proptest
//! failure, which proptest then shrinks to a minimal sequence.
//!
//! ```
//! use bitcoin_checkout::CheckoutSession;
//! use bitcoin_checkout::testkit::proptest::prelude::*;
//! use bitcoin_checkout::testkit::strategies::{self, Harness};
//! use bitcoin_checkout::testkit::{Currency, IsoCurrency, RateSpec, SessionSpec};
//!
//! proptest! {
//!     #![proptest_config(ProptestConfig::with_cases(16))]
//!
//!     // #[test]
//!     fn sessions_behave_like_the_model(scenario in strategies::scenario(1..=25)) {
//!         // Your integration here: `scenario.run_with(|id, params, now| MyWrapper::create(id, params, now))`.
//!         scenario.run_with(CheckoutSession::create)?;
//!     }
//!
//!     // #[test]
//!     fn a_usd_session_behaves_like_the_model(commands in strategies::command_sequence(1..=25)) {
//!         let spec = SessionSpec::new(4999, Currency::Fiat(IsoCurrency::USD));
//!         let mut harness = Harness::new(&spec)?.auto_quote(vec![RateSpec::new(1150, 0)?]);
//!         harness.run(&commands)?;
//!         // The harness is there for further checks of your own.
//!         prop_assert_eq!(harness.model().status(), harness.session().status());
//!     }
//! }
//! # sessions_behave_like_the_model();
//! # a_usd_session_behaves_like_the_model();
//! ```
//!
//! [`CheckoutSession`]: crate::CheckoutSession

// The kit's checks are test assertions: they panic, naming what failed, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod conformance;
pub mod diff;
pub mod model;
mod observed;
pub mod ports;
pub mod service;
pub mod strategies;

/// The examples of `docs/testkit.md`, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/testkit.md")]
pub struct TestkitGuide;

pub use model::{Mismatch, RateSpec, ReferenceSession, ReportSpec, SessionSpec, UpdateSpec};
pub use service::ServiceHarness;

/// The proptest the kit's strategies are written with (version 1), so a property test needs
/// no dependency of its own: `use bitcoin_checkout::testkit::proptest::prelude::*;`.
pub use proptest;

/// The currency types the kit's inputs and examples name, so tests need no `iso_currency`
/// or `rust_decimal` dependency of their own.
pub use crate::money::{Currency, TargetCurrency};
pub use iso_currency::Currency as IsoCurrency;
pub use observed::{CommitObserver, ObservedStore};
pub use rust_decimal::Decimal;
pub use strategies::{Command, Failure, Harness, Integration, Scenario};
