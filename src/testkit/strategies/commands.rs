//! Strategies for reports, updates and commands: [`Amount`], transfer reports, updates, the
//! [`Command`] menu, command sequences, reorderings and whole [`Scenario`]s.

use std::fmt;

use proptest::collection::{SizeRange, vec};
use proptest::prelude::*;
use proptest::strategy::Union;
use time::OffsetDateTime;

use super::failure::Failure;
#[cfg(doc)]
use super::fixtures::ADDRESS;
use super::fixtures::{invoice_hash, txid};
use super::harness::Harness;
use super::integration::Integration;
use super::sessions::{rate, rate_for, session_spec};
use crate::error::Error;
use crate::event::SessionEvent;
use crate::id::SessionId;
use crate::money::{MSATS_PER_SAT, Sats};
use crate::request::PaymentHash;
#[cfg(doc)]
use crate::session::CheckoutSession;
use crate::session::SessionParams;
use crate::testkit::model::{RateSpec, ReportSpec, SessionSpec, UpdateSpec};

/// How much a payment command pays, relative to the quote it pays (for on-chain payments the
/// msats are rounded up to whole sats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Amount {
    /// Exactly the quote's target.
    Exact,
    /// This many thousandths of the target (at least 1 msat).
    Partial {
        /// Thousandths of the target.
        permille: u16,
    },
    /// The target plus this many thousandths of it, plus 1 msat.
    Over {
        /// Thousandths of the target added.
        permille: u16,
    },
    /// One msat less than the target.
    OneLess,
    /// A few msats.
    Tiny {
        /// The msats.
        msats: u16,
    },
    /// Just enough to reach the session's threshold on this quote, or one msat less.
    Threshold {
        /// Pay one msat less than enough.
        short_by_one: bool,
    },
}

/// Every kind of [`Amount`], partial payments most often.
pub fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        2 => Just(Amount::Exact),
        6 => (1u16..1000).prop_map(|permille| Amount::Partial { permille }),
        1 => (1u16..=2000).prop_map(|permille| Amount::Over { permille }),
        1 => Just(Amount::OneLess),
        1 => (1u16..=2000).prop_map(|msats| Amount::Tiny { msats }),
        2 => any::<bool>().prop_map(|short_by_one| Amount::Threshold { short_by_one }),
    ]
}

/// Transfer reports around a quote whose target is `target`: Lightning payments to
/// `invoice` (if given) and on-chain outputs to `address` (if given), paying the target
/// exactly, part of it or more, with 0 to 6 confirmations, sometimes signalling RBF and
/// sometimes reversed. With neither an invoice nor an address, payments to an invoice
/// nobody issued.
///
/// ```
/// use bitcoin_checkout::testkit::strategies::{invoice_hash, transfer_report, ADDRESS};
/// use bitcoin_checkout::Sats;
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn reports_pay_something(
///         report in transfer_report(Some(invoice_hash(1)), Some(ADDRESS.into()), Sats::new(25_000)),
///     ) {
///         prop_assert!(report.msats() > 0 && report.msats() <= 50_000_000);
///     }
/// }
/// reports_pay_something();
/// ```
pub fn transfer_report(
    invoice: Option<PaymentHash>,
    address: Option<String>,
    target: Sats,
) -> BoxedStrategy<ReportSpec> {
    let target_msats = u128::from(target.get()) * u128::from(MSATS_PER_SAT);
    let msats = prop_oneof![2 => Just(1000u32), 6 => 1u32..1000, 2 => 1001u32..=2000].prop_map(
        move |permille| {
            let v = (target_msats * u128::from(permille) / 1000).max(1);
            u64::try_from(v).unwrap_or(u64::MAX)
        },
    );
    let mut arms: Vec<BoxedStrategy<ReportSpec>> = Vec::new();
    if let Some(hash) = invoice {
        arms.push(
            (msats.clone(), prop::bool::weighted(0.05))
                .prop_map(move |(msats, reversed)| ReportSpec::Lightning {
                    hash,
                    msats,
                    reversed,
                })
                .boxed(),
        );
    }
    if let Some(address) = address {
        arms.push(
            (
                msats.clone(),
                prop::sample::select(vec![0u32, 0, 1, 2, 3, 6]),
                prop::bool::weighted(0.2),
                0u32..3,
                any::<u32>(),
                prop::bool::weighted(0.05),
            )
                .prop_map(move |(msats, confirmations, rbf, vout, tx, reversed)| {
                    ReportSpec::Onchain {
                        txid: txid(tx),
                        vout,
                        address: address.clone(),
                        sats: msats.div_ceil(MSATS_PER_SAT).max(1),
                        confirmations,
                        rbf,
                        reversed,
                    }
                })
                .boxed(),
        );
    }
    if arms.is_empty() {
        arms.push(
            msats
                .prop_map(|msats| ReportSpec::Lightning {
                    hash: invoice_hash(999_999),
                    msats,
                    reversed: false,
                })
                .boxed(),
        );
    }
    Union::new(arms).boxed()
}

/// Every [`UpdateSpec`], refused ones included.
pub fn update() -> impl Strategy<Value = UpdateSpec> {
    prop_oneof![
        any::<u8>().prop_map(UpdateSpec::Description),
        Just(UpdateSpec::ClearDescription),
        (any::<u8>(), any::<u8>()).prop_map(|(key, value)| UpdateSpec::SetMetadata { key, value }),
        any::<u8>().prop_map(UpdateSpec::RemoveMetadata),
        Just(UpdateSpec::TooManyMetadataKeys),
        Just(UpdateSpec::SuccessUrl),
        Just(UpdateSpec::SuccessMessage),
        Just(UpdateSpec::SuccessUrlClearingMessage),
        Just(UpdateSpec::SuccessMessageClearingUrl),
        Just(UpdateSpec::SuccessUrlAndMessage),
        Just(UpdateSpec::ClearSuccess),
        Just(UpdateSpec::Nothing),
        Just(UpdateSpec::ChangeAmount),
    ]
}

/// Picks one of the items that exist when a command runs (quotes, transfers, accepted
/// reports): item `n % len`. `Pick(0)` is the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pick(pub u32);

impl Pick {
    /// The index picked among `len` items (0 when there are none).
    pub fn index(self, len: usize) -> usize {
        match len {
            0 => 0,
            _ => usize::try_from(self.0).unwrap_or(0) % len,
        }
    }
}

impl Arbitrary for Pick {
    type Parameters = ();
    type Strategy = proptest::strategy::Map<proptest::num::u32::Any, fn(u32) -> Pick>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        any::<u32>().prop_map(Pick)
    }
}

/// A command refused because the time given is before the session's last change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClockCommand {
    /// A transfer report.
    Record,
    /// A deactivation.
    Deactivate,
    /// An update.
    Update,
    /// Expiring quotes.
    Expire,
    /// Computing a quote.
    Quote,
}

/// One step of a run. The harness turns it into the core's inputs at the run's current time
/// and applies it to the integration and the model.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Computes and issues the next quote at this rate (as payment `n`, with invoice
    /// [`invoice_hash`]`(n)` and address [`ADDRESS`]); refused when no quote may be issued.
    IssueQuote(RateSpec),
    /// Pays the Lightning invoice of a quote (one slot more than there are quotes: the last
    /// slot also means the latest).
    PayLightning {
        /// The quote.
        quote: Pick,
        /// How much.
        amount: Amount,
    },
    /// Pays the session's address from a new transaction; the amount is relative to the
    /// quote the transfer will be attributed to.
    PayOnchain {
        /// How much.
        amount: Amount,
        /// Confirmations at first sight.
        confirmations: u32,
        /// Whether the transaction signals replace-by-fee.
        rbf: bool,
        /// The output index.
        vout: u32,
        /// Whether it is reported reversed at first sight.
        reversed: bool,
    },
    /// Reports a known on-chain transfer again with more confirmations.
    Confirm {
        /// The transfer.
        transfer: Pick,
        /// Confirmations added.
        more: u32,
    },
    /// Reports a known transfer again with one confirmation less (changes nothing).
    ReportFewerConfirmations {
        /// The transfer.
        transfer: Pick,
    },
    /// Reports a known transfer reversed.
    Reverse {
        /// The transfer.
        transfer: Pick,
    },
    /// Replays an accepted report exactly (changes nothing, returns no events).
    Duplicate {
        /// The report, among those accepted so far.
        report: Pick,
    },
    /// Records exactly this report.
    Report(ReportSpec),
    /// Lets time pass.
    AdvanceTime {
        /// Milliseconds.
        millis: u32,
    },
    /// Jumps to the latest quote's expiry (open or partly paid), one millisecond before or
    /// after, if that is ahead.
    ToQuoteExpiry {
        /// -1, 0 or 1 ms from the expiry.
        offset_millis: i8,
    },
    /// Expires the quotes that ran out.
    Expire,
    /// Updates the session.
    Update(UpdateSpec),
    /// Deactivates the session.
    Deactivate,
    /// Resolves part of a flag: `permille` thousandths of the kind's unresolved amount
    /// (0 is refused; above 1000, one msat more than is unresolved, also refused).
    ResolveFlag {
        /// The kind.
        kind: crate::session::FlagKind,
        /// Thousandths of what is unresolved (up to 1100).
        permille: u16,
        /// A refund (with a reference) or an acceptance.
        refunded: bool,
    },
    /// Bad: a known transfer reported again with a larger amount.
    MismatchedAmount {
        /// The transfer.
        transfer: Pick,
        /// Msats (Lightning) or sats (on-chain) added.
        extra: u32,
    },
    /// Bad: a known on-chain transfer reported to another address.
    KnownTransferToWrongAddress {
        /// The transfer.
        transfer: Pick,
    },
    /// Bad: a payment to an invoice nobody issued.
    UnknownInvoice,
    /// Bad: a new output to an address that is not the session's.
    UnknownAddress,
    /// Bad: a report of zero msats.
    ZeroAmount,
    /// Bad: a command at a time before the session's last change.
    ClockBackwards(ClockCommand),
}

fn clock_command() -> impl Strategy<Value = ClockCommand> {
    prop_oneof![
        Just(ClockCommand::Record),
        Just(ClockCommand::Deactivate),
        Just(ClockCommand::Update),
        Just(ClockCommand::Expire),
        Just(ClockCommand::Quote),
    ]
}

/// Commands with quotes at rates from `rates`.
fn command_with(rates: BoxedStrategy<RateSpec>) -> BoxedStrategy<Command> {
    prop_oneof![
        6 => rates.prop_map(Command::IssueQuote),
        6 => (any::<Pick>(), amount()).prop_map(|(quote, amount)| Command::PayLightning { quote, amount }),
        5 => (
            amount(),
            prop::sample::select(vec![0u32, 0, 1, 2, 6]),
            prop::bool::weighted(0.2),
            0u32..3,
            prop::bool::weighted(0.05),
        )
            .prop_map(|(amount, confirmations, rbf, vout, reversed)| Command::PayOnchain {
                amount,
                confirmations,
                rbf,
                vout,
                reversed,
            }),
        4 => (any::<Pick>(), 1u32..=6).prop_map(|(transfer, more)| Command::Confirm { transfer, more }),
        1 => any::<Pick>().prop_map(|transfer| Command::ReportFewerConfirmations { transfer }),
        2 => any::<Pick>().prop_map(|transfer| Command::Reverse { transfer }),
        3 => any::<Pick>().prop_map(|report| Command::Duplicate { report }),
        1 => (any::<Pick>(), 1u32..1000)
            .prop_map(|(transfer, extra)| Command::MismatchedAmount { transfer, extra }),
        1 => any::<Pick>().prop_map(|transfer| Command::KnownTransferToWrongAddress { transfer }),
        3 => prop_oneof![1u32..=120_000, 200_000u32..=1_300_000]
            .prop_map(|millis| Command::AdvanceTime { millis }),
        1 => (-1i8..=1).prop_map(|offset_millis| Command::ToQuoteExpiry { offset_millis }),
        1 => Just(Command::Expire),
        2 => update().prop_map(Command::Update),
        1 => Just(Command::Deactivate),
        2 => (
            prop::sample::select(vec![
                crate::session::FlagKind::Overpaid,
                crate::session::FlagKind::Late,
                crate::session::FlagKind::PaidAfterExpiry,
                crate::session::FlagKind::Reversed,
                crate::session::FlagKind::RefundDue,
            ]),
            prop_oneof![1 => Just(0u16), 6 => 1u16..=1000, 1 => 1001u16..=1100],
            any::<bool>(),
        )
            .prop_map(|(kind, permille, refunded)| Command::ResolveFlag { kind, permille, refunded }),
        1 => Just(Command::UnknownInvoice),
        1 => Just(Command::UnknownAddress),
        1 => Just(Command::ZeroAmount),
        1 => clock_command().prop_map(Command::ClockBackwards),
    ]
    .boxed()
}

/// Every kind of [`Command`], with quotes at rates from [`rate`] (fiat-like; see
/// [`commands_for`] for sessions priced in other currencies). Time advances by up to 22
/// minutes at once, so quotes (5 to 20 minutes) often run out.
pub fn command() -> BoxedStrategy<Command> {
    command_with(rate().boxed())
}

/// Sequences of [`command`]s, of a length in `len` (`20`, `1..=30`, …).
///
/// ```
/// use bitcoin_checkout::testkit::strategies::{command_sequence, run};
/// use bitcoin_checkout::testkit::model::SessionSpec;
/// use bitcoin_checkout::Currency;
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(8))]
///     fn a_usd_session_agrees_with_the_model(commands in command_sequence(1..=20)) {
///         let spec = SessionSpec::new(2500, Currency::from_code("USD").unwrap());
///         run(&spec, &commands)?;
///     }
/// }
/// a_usd_session_agrees_with_the_model();
/// ```
pub fn command_sequence(len: impl Into<SizeRange>) -> impl Strategy<Value = Vec<Command>> {
    vec(command(), len)
}

/// Sequences of commands for the session `spec`, with quotes at rates from
/// [`rate_for`] its currencies.
///
/// ```
/// use bitcoin_checkout::testkit::model::SessionSpec;
/// use bitcoin_checkout::testkit::strategies::{commands_for, run};
/// use bitcoin_checkout::Currency;
/// use proptest::prelude::*;
///
/// let spec = SessionSpec::new(50_000, Currency::Sats); // 50,000 sats
/// proptest!(ProptestConfig::with_cases(8), |(commands in commands_for(&spec, 1..=20))| {
///     run(&spec, &commands)?;
/// });
/// ```
pub fn commands_for(spec: &SessionSpec, len: impl Into<SizeRange>) -> BoxedStrategy<Vec<Command>> {
    vec(
        command_with(rate_for(spec.currency, spec.target_currency)),
        len,
    )
    .boxed()
}

/// The same `items` in `count` orders (shuffled independently; shrinking goes back towards
/// the original order).
///
/// ```
/// use bitcoin_checkout::testkit::strategies::reorderings;
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(8))]
///     fn orders_are_permutations(orders in reorderings(vec![1, 2, 3], 1..=4)) {
///         for mut order in orders {
///             order.sort();
///             prop_assert_eq!(order, vec![1, 2, 3]);
///         }
///     }
/// }
/// orders_are_permutations();
/// ```
pub fn reorderings<T: Clone + fmt::Debug + 'static>(
    items: Vec<T>,
    count: impl Into<SizeRange>,
) -> impl Strategy<Value = Vec<Vec<T>>> {
    vec(Just(items).prop_shuffle(), count)
}

/// A session, the commands to run on it and the rates to re-quote at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The session.
    pub session: SessionSpec,
    /// The commands, starting with a quote.
    pub commands: Vec<Command>,
    /// When not empty, the harness issues a quote (at these rates in turn) after every
    /// command that leaves the session needing one, as the service's sweep does.
    pub auto_quote: Vec<RateSpec>,
}

impl Scenario {
    /// Runs the scenario on a [`CheckoutSession`] and the model.
    pub fn run(&self) -> Result<Harness, Failure> {
        let mut harness = Harness::new(&self.session)?.auto_quote(self.auto_quote.clone());
        harness.run(&self.commands)?;
        Ok(harness)
    }

    /// Runs the scenario on the integration `create` makes (see
    /// [`Harness::with_integration`]) and the model.
    pub fn run_with<I, F, E>(&self, create: F) -> Result<Harness<I>, Failure>
    where
        I: Integration,
        F: FnOnce(SessionId, SessionParams, OffsetDateTime) -> Result<(I, E), Error>,
        E: Into<Vec<SessionEvent>>,
    {
        let mut harness =
            Harness::with_integration(&self.session, create)?.auto_quote(self.auto_quote.clone());
        harness.run(&self.commands)?;
        Ok(harness)
    }
}

/// Whole scenarios: a [`session_spec`], a first quote at a rate that fits it, then `len`
/// [`commands_for`] it; half of them re-quote automatically at one to three rates.
///
/// ```
/// use bitcoin_checkout::testkit::strategies::scenario;
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(8))]
///     fn sessions_agree_with_the_model(s in scenario(1..=20)) {
///         s.run()?;
///     }
/// }
/// sessions_agree_with_the_model();
/// ```
pub fn scenario(len: impl Into<SizeRange>) -> impl Strategy<Value = Scenario> {
    let len: SizeRange = len.into();
    session_spec()
        .prop_flat_map(move |spec| {
            let rates = rate_for(spec.currency, spec.target_currency);
            (
                rates.clone(),
                commands_for(&spec, len.clone()),
                prop_oneof![Just(Vec::new()), vec(rates, 1..=3)],
                Just(spec),
            )
        })
        .prop_map(|(first, mut commands, auto_quote, session)| {
            commands.insert(0, Command::IssueQuote(first));
            Scenario {
                session,
                commands,
                auto_quote,
            }
        })
}
