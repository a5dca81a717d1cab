//! A test kit for users of the crate (feature `testkit`).
//!
//! * [`conformance`]: the store conformance suite every [`Store`](crate::store::Store)
//!   implementation should pass.
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
//!
//! # Testing your integration with proptest
//!
//! Add `bitcoin-checkout` with the `testkit` feature and `proptest` (version 1) to your
//! dev-dependencies. [`strategies::scenario`] generates a session, a first quote and a
//! sequence of commands; [`Scenario::run`] plays it on a [`CheckoutSession`] (or, with
//! [`Scenario::run_with`], on your own [`Integration`]) and the model, and fails with a
//! [`Failure`] naming the step, the field and both values. `?` turns it into a proptest
//! failure, which proptest then shrinks to a minimal sequence.
//!
//! ```
//! use bitcoin_checkout::testkit::strategies::{self, Harness};
//! use bitcoin_checkout::testkit::model::{Rate, SessionSpec};
//! use bitcoin_checkout::{CheckoutSession, Currency};
//! use proptest::prelude::*;
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
//!         let spec = SessionSpec::new(4999, Currency::Fiat(iso_currency::Currency::USD));
//!         let mut harness = Harness::new(&spec)?.auto_quote(vec![Rate::new(1150, 0)?]);
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

pub use model::{Mismatch, ReferenceSession};
pub use observed::{CommitObserver, ObservedStore};
pub use strategies::{Command, Failure, Harness, Integration, Scenario};
