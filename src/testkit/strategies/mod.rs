//! Proptest strategies for session parameters, rates, transfer reports and whole command
//! sequences, and the [`Harness`] that applies a sequence to an integration and to the
//! [reference model](super::model) side by side.
//!
//! # Strategies
//!
//! | strategy | generates |
//! |---|---|
//! | [`session_spec`], [`session_params`] | valid sessions across currencies (USD, EUR, JPY, KWD, BTC, SATS), target currencies, tolerances, confirmation policies, method sets and ttls |
//! | [`rate`], [`rate_for`] | exchange rates (any fiat-like rate, or one that fits a session's currencies) |
//! | [`amount`] | how much a command pays relative to a quote (exact, partial, over, one msat less, tiny, just the threshold) |
//! | [`transfer_report`] | Lightning and on-chain reports around a quote's target |
//! | [`update`] | updates from the [`UpdateSpec`] menu, refused ones included |
//! | [`command`], [`command_sequence`], [`commands_for`] | [`Command`]s: quotes, payments, confirmations, reversals, duplicates, time passing (past expiries too), updates, deactivation and deliberately bad commands |
//! | [`scenario`] | a session, a sequence of commands for it and whether to re-quote automatically |
//! | [`reorderings`] | the same items in several orders |
//!
//! # The harness
//!
//! A [`Harness`] owns an [`Integration`] (a [`CheckoutSession`] by default, or your wrapper
//! around it) and a [`ReferenceSession`]. Each [`Command`] is turned into the core's inputs
//! (rates, payment requests, transfer reports, updates, times) and applied to both; after
//! every step the harness checks that
//!
//! * both returned the same events or the same error, a refused command left the session
//!   unchanged and a no-op returned no events;
//! * every field agrees with the model ([`ReferenceSession::check_against_at`]);
//! * the session's own invariants hold ([`check_invariants`](super::model::check_invariants);
//!   the JSON round-trips after every step that changed the session);
//! * terminal statuses never change, the session is paid iff its counted funds reached the
//!   threshold while it was active, and the events so far add up (one `created`, one `paid`
//!   iff paid, one `payment.created` per quote, one `transfer_received` per transfer, …).
//!
//! The first violation is returned as a [`Failure`] naming the step, the command, the field
//! and both values, with the history of the run; it is a [`std::error::Error`], so `?` turns
//! it into a proptest [`proptest::test_runner::TestCaseError`] in `proptest!` bodies.
//!
//! ```
//! use bitcoin_checkout::testkit::model::{RateSpec, SessionSpec};
//! use bitcoin_checkout::testkit::strategies::{Amount, Command, Harness, Pick};
//! use bitcoin_checkout::{Currency, SessionStatus};
//!
//! let spec = SessionSpec::new(2500, Currency::from_code("USD")?);
//! let mut harness = Harness::new(&spec)?;
//! harness.run(&[
//!     Command::IssueQuote(RateSpec::new(1000, 0)?),
//!     Command::PayLightning { quote: Pick(0), amount: Amount::Exact },
//!     Command::Duplicate { report: Pick(0) },
//! ])?;
//! assert_eq!(harness.model().status(), SessionStatus::Paid);
//! assert_eq!(harness.session().status(), SessionStatus::Paid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod apply;
mod commands;
mod failure;
mod fixtures;
mod harness;
mod integration;
mod sessions;

pub(crate) use apply::{known_report, msats_for};
pub use commands::{
    Amount, ClockCommand, Command, Pick, Scenario, amount, command, command_sequence, commands_for,
    reorderings, scenario, transfer_report, update,
};
pub use failure::{Failure, Outcome};
pub use fixtures::{
    ADDRESS, SESSION_ID, WRONG_ADDRESS, invoice_hash, payment_id, request_for, start_time, txid,
};
pub use harness::{Harness, run};
pub use integration::Integration;
pub use sessions::{
    amount_minor_for, confirmation_policy, currency, rate, rate_for, session_params, session_spec,
    tolerance_hundredths,
};

#[cfg(doc)]
use crate::session::CheckoutSession;
#[cfg(doc)]
use crate::testkit::model::{ReferenceSession, UpdateSpec};
