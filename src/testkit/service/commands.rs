//! What a [`ServiceHarness`](super::ServiceHarness) run is made of: [`ServiceCommand`]s, a
//! [`ServiceCase`] (a session, the rate its pair must be quoted at, and commands), and the
//! strategies that generate them.

use std::fmt;

use proptest::collection::{SizeRange, vec};
use proptest::prelude::*;

use crate::testkit::model::{RateSpec, ReferenceSession, SessionSpec, UpdateSpec};
use crate::testkit::strategies::{
    Amount, Pick, amount, rate_for, session_spec, start_time, update,
};

/// One step of a service run: a call of the [`Checkout`](crate::Checkout) service (or time
/// passing), as a customer, a chain watcher, a merchant or the sweep would make it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceCommand {
    /// [`Checkout::get`](crate::Checkout::get): what the hosted page does; quotes on demand.
    Fetch,
    /// [`Checkout::sweep`](crate::Checkout::sweep): expires what ran out, never quotes.
    Sweep,
    /// Pays the invoice of a quote (the last slot means the latest quote) through
    /// [`Checkout::record_transfer`](crate::Checkout::record_transfer).
    PayLightning {
        /// The quote.
        quote: Pick,
        /// How much, relative to that quote.
        amount: Amount,
    },
    /// Pays the session's address from a new transaction (skipped when the session takes
    /// no on-chain payments).
    PayOnchain {
        /// How much, relative to the quote the transfer will be attributed to.
        amount: Amount,
        /// Confirmations at first sight.
        confirmations: u32,
    },
    /// Reports a known on-chain transfer again with more confirmations.
    Confirm {
        /// The transfer.
        transfer: Pick,
        /// Confirmations added.
        more: u32,
    },
    /// Reports a known transfer reversed.
    Reverse {
        /// The transfer.
        transfer: Pick,
    },
    /// Replays an accepted report exactly: nothing may change.
    Duplicate {
        /// The report, among those accepted so far.
        report: Pick,
    },
    /// Lets time pass.
    AdvanceTime {
        /// Milliseconds.
        millis: u32,
    },
    /// Jumps one millisecond past the latest quote's expiry, if that is ahead.
    ToQuoteExpiry,
    /// [`Checkout::update`](crate::Checkout::update).
    Update(UpdateSpec),
    /// [`Checkout::deactivate`](crate::Checkout::deactivate).
    Deactivate,
}

impl fmt::Display for ServiceCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch => write!(f, "fetch"),
            Self::Sweep => write!(f, "sweep"),
            Self::PayLightning { quote, amount } => {
                write!(f, "pay quote #{} over lightning: {amount:?}", quote.0)
            }
            Self::PayOnchain {
                amount,
                confirmations,
            } => write!(f, "pay on-chain: {amount:?}, {confirmations} conf"),
            Self::Confirm { transfer, more } => {
                write!(f, "confirm transfer #{} +{more}", transfer.0)
            }
            Self::Reverse { transfer } => write!(f, "reverse transfer #{}", transfer.0),
            Self::Duplicate { report } => write!(f, "replay report #{}", report.0),
            Self::AdvanceTime { millis } => write!(f, "wait {millis} ms"),
            Self::ToQuoteExpiry => write!(f, "wait until the quote expired"),
            Self::Update(u) => write!(f, "update {u:?}"),
            Self::Deactivate => write!(f, "deactivate"),
        }
    }
}

/// A session, the rate the service's rate source must quote its pair at, and the commands
/// of a run. Its `Debug` form (what proptest prints for a counterexample) is a short
/// numbered list.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceCase {
    /// The session.
    pub spec: SessionSpec,
    /// The rate of the session's pair (target units per unit).
    pub rate: RateSpec,
    /// The commands, in order.
    pub commands: Vec<ServiceCommand>,
}

impl fmt::Debug for ServiceCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        let methods = match (s.lightning, s.onchain) {
            (true, true) => "lightning+onchain",
            (true, false) => "lightning",
            _ => "onchain",
        };
        write!(
            f,
            "\n  session: {} {} ({} minor units) -> {}, {methods}, tolerance {}/10000, ttl {} s{}, rate {}",
            s.amount(),
            s.currency.code(),
            s.amount_minor,
            s.target_currency.code(),
            s.tolerance_hundredths,
            s.ttl_secs,
            if s.expires_at.is_some() {
                ", expires"
            } else {
                ""
            },
            self.rate,
        )?;
        for (i, c) in self.commands.iter().enumerate() {
            write!(f, "\n  {}. {c}", i + 1)?;
        }
        writeln!(f)
    }
}

/// A small pick (0 to 7): it shrinks in a few steps and reads well in a counterexample.
fn pick() -> impl Strategy<Value = Pick> {
    (0u32..8).prop_map(Pick)
}

/// Any [`ServiceCommand`], payments most often.
pub fn service_command() -> BoxedStrategy<ServiceCommand> {
    prop_oneof![
        3 => Just(ServiceCommand::Fetch),
        2 => Just(ServiceCommand::Sweep),
        6 => (pick(), amount())
            .prop_map(|(quote, amount)| ServiceCommand::PayLightning { quote, amount }),
        4 => (amount(), 0u32..=3).prop_map(|(amount, confirmations)| {
            ServiceCommand::PayOnchain { amount, confirmations }
        }),
        3 => (pick(), 1u32..=3)
            .prop_map(|(transfer, more)| ServiceCommand::Confirm { transfer, more }),
        1 => pick().prop_map(|transfer| ServiceCommand::Reverse { transfer }),
        2 => pick().prop_map(|report| ServiceCommand::Duplicate { report }),
        3 => (1u32..=900_000).prop_map(|millis| ServiceCommand::AdvanceTime { millis }),
        2 => Just(ServiceCommand::ToQuoteExpiry),
        2 => update().prop_map(ServiceCommand::Update),
        1 => Just(ServiceCommand::Deactivate),
    ]
    .boxed()
}

/// A [`ServiceCase`]: a valid session ([`session_spec`]), a rate for its pair
/// ([`rate_for`]) and `len` commands. Keep `len` a range from 0 (`0..=12`) so proptest can
/// shrink a counterexample down to the few commands that matter.
pub fn service_case(len: impl Into<SizeRange>) -> impl Strategy<Value = ServiceCase> {
    // The commands do not depend on the session, so they shrink on their own.
    let session = session_spec()
        .prop_flat_map(|spec| (rate_for(spec.currency, spec.target_currency), Just(spec)));
    (session, vec(service_command(), len))
        .prop_map(|((rate, spec), commands)| ServiceCase {
            spec,
            rate,
            commands,
        })
        // The service creates a session with its first quote: a spec and rate whose quote the
        // core refuses (less than a sat) make no session to run commands on.
        .prop_filter("the first quote can be made", |case| {
            ReferenceSession::create(&case.spec, start_time())
                .is_ok_and(|(model, _)| model.next_quote(&case.rate, start_time()).is_ok())
        })
}
