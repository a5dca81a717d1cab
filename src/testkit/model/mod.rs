//! A reference model of the checkout-session lifecycle, written from the specification.
//!
//! [`ReferenceSession`] is a second, deliberately simple implementation of what a
//! [`CheckoutSession`](crate::CheckoutSession) does: the same commands, the same events, the
//! same errors, with every amount computed by plain integer arithmetic straight from the
//! rounding rules of [`crate::money`] (no decimals, no running sums, nothing shared with the
//! core beyond its public value types). A harness applies each command to the integration under
//! test and to the model, then calls [`ReferenceSession::check_against`] (or
//! [`check_against_at`](ReferenceSession::check_against_at)), which names the first field
//! where they disagree.
//!
//! The model's inputs are plain values a test can generate and print. Their names end in
//! `Spec` and each becomes one of the crate's types with one call:
//!
//! * [`SessionSpec`]: the parameters of a session (amount in minor units, currency,
//!   tolerance in hundredths of a percent, confirmation policy, methods, ttl, …), turned into
//!   [`SessionParams`] by [`SessionSpec::params`];
//! * [`RateSpec`]: an exchange rate as an exact decimal fraction;
//! * [`ReportSpec`]: a transfer report, turned into a [`TransferReport`] by
//!   [`ReportSpec::to_transfer_report`];
//! * [`UpdateSpec`]: an update from a fixed menu, turned into a [`SessionUpdate`] by
//!   [`UpdateSpec::to_update`].
//!
//! [`check_invariants`] checks the properties that hold for any session on its own (totals
//! recomputed from the transfers, the rounding rules, no satoshi created or lost, `wake_at`,
//! JSON round-trips).
//!
//! # Example
//!
//! ```
//! use bitcoin_checkout::testkit::model::{RateSpec, ReportSpec, ReferenceSession, SessionSpec};
//! use bitcoin_checkout::testkit::strategies::{invoice_hash, payment_id, request_for};
//! use bitcoin_checkout::{CheckoutSession, Currency, SessionId};
//! use time::OffsetDateTime;
//!
//! let now = OffsetDateTime::from_unix_timestamp(1_767_225_600)?;
//! let mut spec = SessionSpec::new(2500, Currency::from_code("USD")?); // 25.00 USD
//! spec.onchain = false;
//!
//! // The model and the real session, created side by side.
//! let (mut model, _) = ReferenceSession::create(&spec, now)?;
//! let (mut session, _) = CheckoutSession::create(SessionId::generate(), spec.params(), now)?;
//!
//! // A quote at 1000 sats per dollar: 25,000 sats.
//! let rate = RateSpec::new(1000, 0)?;
//! let terms = session.next_quote(payment_id(1), rate.exchange_rate(spec.currency, spec.target_currency, now)?, now)?;
//! let request = request_for(&spec, &terms, 1);
//! let expected = model.issue_quote(payment_id(1), &rate, &request, now)?;
//! assert_eq!(session.issue_quote(terms, request, now)?.into_events(), expected);
//!
//! // The customer pays the invoice exactly.
//! let report = ReportSpec::Lightning { hash: invoice_hash(1), msats: 25_000_000, reversed: false };
//! let expected = model.record(&report, now)?;
//! assert_eq!(session.record_transfer(report.to_transfer_report(), now)?.into_events(), expected);
//!
//! // Every field agrees.
//! model.check_against_at(&session, now)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check;

pub(crate) use check::check_accounting;
pub use check::{Mismatch, check_invariants, check_round_trips};

mod inputs;
mod session;
mod state;
mod transitions;

pub use inputs::{RateSpec, ReportSpec, SUCCESS_MESSAGE, SUCCESS_URL, SessionSpec, UpdateSpec};
pub use state::{ExpectedQuote, ModelPayment, ReferenceSession};
pub(crate) use state::{mul_div_floor, unix_ms};

#[cfg(doc)]
use crate::session::{SessionParams, SessionUpdate};
#[cfg(doc)]
use crate::transfer::TransferReport;
