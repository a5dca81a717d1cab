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
//! use bitcoin_checkout::testkit::model::{Rate, SessionSpec};
//! use bitcoin_checkout::testkit::strategies::{Amount, Command, Harness, Pick};
//! use bitcoin_checkout::{Currency, SessionStatus};
//!
//! let spec = SessionSpec::new(2500, Currency::from_code("USD")?);
//! let mut harness = Harness::new(&spec)?;
//! harness.run(&[
//!     Command::IssueQuote(Rate::new(1000, 0)?),
//!     Command::PayLightning { quote: Pick(0), amount: Amount::Exact },
//!     Command::Duplicate { report: Pick(0) },
//! ])?;
//! assert_eq!(harness.model().status(), SessionStatus::Paid);
//! assert_eq!(harness.session().status(), SessionStatus::Paid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use proptest::collection::{SizeRange, vec};
use proptest::prelude::*;
use proptest::strategy::Union;
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::model::{
    Mismatch, Rate, ReferenceSession, Report, SessionSpec, UpdateSpec, check_accounting,
    check_round_trips, mul_div_floor, unix_ms,
};
use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::id::{PaymentId, SessionId};
use crate::metadata::Metadata;
use crate::money::{Currency, ExchangeRate, MSATS_PER_SAT, SATS_PER_BTC, Sats, TargetCurrency};
use crate::payment::{PaymentState, PaymentStatus};
use crate::request::{Hash32, LightningInvoice, PaymentHash, PaymentRequest};
use crate::session::{
    SessionChange,
    CheckoutSession, QuoteTerms, SessionParams, SessionState, SessionStatus, SessionUpdate,
};
use crate::transfer::{ConfirmationPolicy, TransferKey, TransferReport};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// The on-chain address the harness gives every session.
pub const ADDRESS: &str = "bcrt1qtestaddress0000000000000000000000000";
/// An address no session of the harness has.
pub const WRONG_ADDRESS: &str = "bcrt1qwrongaddress000000000000000000000000";
/// The id of the harness's session.
pub const SESSION_ID: SessionId = SessionId::from_uuid(Uuid::from_bytes([7; 16]));

/// When the harness's session is created: 2026-01-01T00:00:00Z.
pub fn start_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The id of the `n`th quote the harness issues (from 1).
pub fn payment_id(n: u32) -> PaymentId {
    let mut b = [0u8; 16];
    b[12..].copy_from_slice(&n.to_be_bytes());
    PaymentId::from_uuid(Uuid::from_bytes(b))
}

/// The payment hash of the `n`th quote's invoice (from 1).
pub fn invoice_hash(n: u32) -> PaymentHash {
    let mut b = [0u8; 32];
    b[28..].copy_from_slice(&n.to_be_bytes());
    Hash32::from_bytes(b)
}

/// The `n`th transaction id.
pub fn txid(n: u32) -> Hash32 {
    let mut b = [0xabu8; 32];
    b[28..].copy_from_slice(&n.to_be_bytes());
    Hash32::from_bytes(b)
}

/// The payment request the harness makes for the `n`th quote: invoice [`invoice_hash`]`(n)`
/// expiring with the quote when Lightning is accepted, [`ADDRESS`] when on-chain is.
pub fn request_for(spec: &SessionSpec, terms: &QuoteTerms, n: u32) -> PaymentRequest {
    PaymentRequest {
        lightning: spec.lightning.then(|| LightningInvoice {
            payment_request: format!("lntest{}n1fake{n}", terms.target_msats().get()),
            payment_hash: invoice_hash(n),
            expires_at: terms.expires_at(),
        }),
        onchain_address: spec.onchain.then(|| ADDRESS.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------
// Strategies: sessions and rates
// ---------------------------------------------------------------------------------------

/// Price currencies: mostly USD, also EUR, JPY (no decimals), KWD (3 decimals), BTC and SATS.
pub fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        4 => Just(Currency::Fiat(iso_currency::Currency::USD)),
        1 => Just(Currency::Fiat(iso_currency::Currency::EUR)),
        1 => Just(Currency::Fiat(iso_currency::Currency::JPY)),
        1 => Just(Currency::Fiat(iso_currency::Currency::KWD)),
        1 => Just(Currency::Btc),
        1 => Just(Currency::Sats),
    ]
}

/// Prices in minor units of `currency`, from the smallest unit to large orders (fiat up to
/// 100,000 major units, BTC up to 100 BTC, SATS up to 10 BTC).
pub fn amount_minor_for(currency: Currency) -> BoxedStrategy<u64> {
    match currency {
        Currency::Btc => prop_oneof![
            1u64..=10_000,
            10_000u64..=100_000_000,
            100_000_000u64..=10_000_000_000,
        ]
        .boxed(),
        Currency::Sats => prop_oneof![
            1u64..=1_000,
            1_000u64..=1_000_000,
            1_000_000u64..=1_000_000_000
        ]
        .boxed(),
        Currency::Fiat(_) => prop_oneof![
            1u64..=100,
            100u64..=100_000,
            100_000u64..=10_000_000,
            Just(10_000_000u64),
        ]
        .boxed(),
    }
}

/// Tolerances in hundredths of a percent: often none, often any, and the edges (1 %, 99.99 %).
pub fn tolerance_hundredths() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(0u32), 1 => Just(100u32), 3 => 0u32..10_000, 1 => Just(9_999u32)]
}

/// Confirmation policies: 0, 1, 2 or 6 confirmations.
pub fn confirmation_policy() -> impl Strategy<Value = ConfirmationPolicy> {
    prop::sample::select(vec![
        ConfirmationPolicy::ZeroConf,
        ConfirmationPolicy::One,
        ConfirmationPolicy::Two,
        ConfirmationPolicy::Six,
    ])
}

/// Valid session specs: any [`currency`] with a fitting amount, SATS or BTC as the target
/// currency, any [`tolerance_hundredths`] and [`confirmation_policy`], Lightning, on-chain or
/// both, a ttl of 5 to 20 minutes, the description `"initial"` and the metadata
/// `{"order": "1001"}`.
///
/// ```
/// use bitcoin_checkout::testkit::model::ReferenceSession;
/// use bitcoin_checkout::testkit::strategies::{session_spec, start_time};
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn every_spec_is_valid(spec in session_spec()) {
///         prop_assert!(ReferenceSession::new(&spec, start_time()).is_ok());
///     }
/// }
/// every_spec_is_valid();
/// ```
pub fn session_spec() -> impl Strategy<Value = SessionSpec> {
    currency()
        .prop_flat_map(|currency| {
            (
                Just(currency),
                amount_minor_for(currency),
                prop_oneof![3 => Just(TargetCurrency::Sats), 1 => Just(TargetCurrency::Btc)],
                tolerance_hundredths(),
                confirmation_policy(),
                prop_oneof![1 => Just((true, false)), 1 => Just((false, true)), 2 => Just((true, true))],
                300i64..=1200,
            )
        })
        .prop_map(
            |(currency, amount_minor, target, tolerance, confirmations, (ln, oc), ttl)| {
                let mut spec = SessionSpec::new(amount_minor, currency);
                spec.target_currency = target;
                spec.tolerance_hundredths = tolerance;
                spec.confirmations = confirmations;
                spec.lightning = ln;
                spec.onchain = oc;
                spec.ttl_secs = ttl;
                spec.description = Some("initial".into());
                spec.metadata = Metadata::from_pairs([("order", "1001")]).unwrap_or_default();
                spec
            },
        )
}

/// Valid [`SessionParams`]: [`session_spec`] turned into parameters.
///
/// ```
/// use bitcoin_checkout::testkit::strategies::{session_params, start_time};
/// use bitcoin_checkout::{CheckoutSession, SessionId};
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn every_session_can_be_created(params in session_params()) {
///         prop_assert!(CheckoutSession::create(SessionId::generate(), params, start_time()).is_ok());
///     }
/// }
/// every_session_can_be_created();
/// ```
pub fn session_params() -> impl Strategy<Value = SessionParams> {
    session_spec().prop_map(|spec| spec.params())
}

/// Rates in 1/10,000 sats per unit: 1 to 100,000 sats per unit.
fn rate_e4() -> impl Strategy<Value = u64> {
    prop_oneof![10_000u64..=1_000_000, 1_000_000u64..=1_000_000_000]
}

/// Rates of 1 to 100,000 sats per unit with up to 4 decimals: what a fiat currency like USD
/// or EUR is worth in SATS. For other currency pairs use [`rate_for`].
///
/// ```
/// use bitcoin_checkout::testkit::strategies::rate;
/// use proptest::prelude::*;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn rates_are_positive(r in rate()) {
///         prop_assert!(r.to_decimal() >= rust_decimal::Decimal::ONE);
///     }
/// }
/// rates_are_positive();
/// ```
pub fn rate() -> impl Strategy<Value = Rate> {
    rate_e4().prop_map(|m| Rate::from_parts(m, 4))
}

/// Rates that fit a session pricing `currency` in `target`: around 1 sat per sat, around
/// 100,000,000 sats per BTC, 0.01 to 1,000 sats per unit for currencies without decimals and
/// 1 to 100,000 sats per unit for the others; divided by 100,000,000 for a BTC target.
///
/// ```
/// use bitcoin_checkout::testkit::strategies::{rate_for, session_spec};
/// use bitcoin_checkout::testkit::model::ReferenceSession;
/// use proptest::prelude::*;
/// use time::OffsetDateTime;
///
/// proptest! {
///     #![proptest_config(ProptestConfig::with_cases(16))]
///     fn every_session_is_quoted_unless_worth_less_than_a_sat(
///         (spec, rate) in session_spec().prop_flat_map(|spec| {
///             let rate = rate_for(spec.currency, spec.target_currency);
///             (Just(spec), rate)
///         }),
///     ) {
///         let now = OffsetDateTime::UNIX_EPOCH;
///         let model = ReferenceSession::new(&spec, now)?;
///         let quoted = model.next_quote(&rate, now);
///         prop_assert!(
///             quoted.is_ok() || quoted == Err(bitcoin_checkout::Error::AmountBelowOneSat),
///             "{quoted:?}"
///         );
///     }
/// }
/// every_session_is_quoted_unless_worth_less_than_a_sat();
/// ```
pub fn rate_for(currency: Currency, target: TargetCurrency) -> BoxedStrategy<Rate> {
    let extra = match target {
        TargetCurrency::Sats => 0,
        TargetCurrency::Btc => 8,
    };
    let sats_per_unit: BoxedStrategy<(u64, u32)> = match currency {
        Currency::Sats => prop_oneof![
            3 => Just((1u64, 0u32)),
            1 => (5_000u64..=20_000).prop_map(|m| (m, 4)),
        ]
        .boxed(),
        Currency::Btc => prop_oneof![
            3 => Just((SATS_PER_BTC, 0u32)),
            1 => (50_000_000u64..=200_000_000).prop_map(|m| (m, 0)),
        ]
        .boxed(),
        Currency::Fiat(_) if currency.scale() == 0 => rate_e4().prop_map(|m| (m, 6)).boxed(),
        Currency::Fiat(_) => rate_e4().prop_map(|m| (m, 4)).boxed(),
    };
    sats_per_unit
        .prop_map(move |(m, s)| Rate::from_parts(m, s + extra))
        .boxed()
}

// ---------------------------------------------------------------------------------------
// Strategies: reports, updates, commands
// ---------------------------------------------------------------------------------------

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
) -> BoxedStrategy<Report> {
    let target_msats = u128::from(target.get()) * u128::from(MSATS_PER_SAT);
    let msats = prop_oneof![2 => Just(1000u32), 6 => 1u32..1000, 2 => 1001u32..=2000].prop_map(
        move |permille| {
            let v = (target_msats * u128::from(permille) / 1000).max(1);
            u64::try_from(v).unwrap_or(u64::MAX)
        },
    );
    let mut arms: Vec<BoxedStrategy<Report>> = Vec::new();
    if let Some(hash) = invoice {
        arms.push(
            (msats.clone(), prop::bool::weighted(0.05))
                .prop_map(move |(msats, reversed)| Report::Lightning {
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
                .prop_map(
                    move |(msats, confirmations, rbf, vout, tx, reversed)| Report::Onchain {
                        txid: txid(tx),
                        vout,
                        address: address.clone(),
                        sats: msats.div_ceil(MSATS_PER_SAT).max(1),
                        confirmations,
                        rbf,
                        reversed,
                    },
                )
                .boxed(),
        );
    }
    if arms.is_empty() {
        arms.push(
            msats
                .prop_map(|msats| Report::Lightning {
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
    IssueQuote(Rate),
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
    Report(Report),
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
fn command_with(rates: BoxedStrategy<Rate>) -> BoxedStrategy<Command> {
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
    pub auto_quote: Vec<Rate>,
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
    pub fn run_with<I, F>(&self, create: F) -> Result<Harness<I>, Failure>
    where
        I: Integration,
        F: FnOnce(
            SessionId,
            SessionParams,
            OffsetDateTime,
        ) -> Result<(I, Vec<SessionEvent>), Error>,
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

// ---------------------------------------------------------------------------------------
// The integration under test
// ---------------------------------------------------------------------------------------

/// What the harness drives: the commands of a [`CheckoutSession`], and a way to read the
/// session's current state.
///
/// [`CheckoutSession`] implements it directly. Implement it for your own code around the
/// core (a wrapper that persists the session after each command, deduplicates reports,
/// caches…) to check that it behaves exactly like the specification.
pub trait Integration {
    /// [`CheckoutSession::next_quote`]; it must not change the session.
    fn next_quote(
        &mut self,
        payment_id: PaymentId,
        rate: ExchangeRate,
        now: OffsetDateTime,
    ) -> Result<QuoteTerms, Error>;

    /// [`CheckoutSession::issue_quote`].
    fn issue_quote(
        &mut self,
        terms: QuoteTerms,
        request: PaymentRequest,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::record_transfer`].
    fn record_transfer(
        &mut self,
        report: TransferReport,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::expire_quotes`].
    fn expire_quotes(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::update`].
    fn update(
        &mut self,
        update: &SessionUpdate,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::deactivate`].
    fn deactivate(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error>;

    /// The session as it is now (for a persisting integration: as stored).
    fn session(&self) -> Result<CheckoutSession, Error>;
}

impl Integration for CheckoutSession {
    fn next_quote(
        &mut self,
        payment_id: PaymentId,
        rate: ExchangeRate,
        now: OffsetDateTime,
    ) -> Result<QuoteTerms, Error> {
        CheckoutSession::next_quote(self, payment_id, rate, now)
    }

    fn issue_quote(
        &mut self,
        terms: QuoteTerms,
        request: PaymentRequest,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::issue_quote(self, terms, request, now).map(SessionChange::into_events)
    }

    fn record_transfer(
        &mut self,
        report: TransferReport,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::record_transfer(self, report, now).map(SessionChange::into_events)
    }

    fn expire_quotes(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::expire_quotes(self, now).map(SessionChange::into_events)
    }

    fn update(
        &mut self,
        update: &SessionUpdate,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::update(self, update, now).map(SessionChange::into_events)
    }

    fn deactivate(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::deactivate(self, now).map(SessionChange::into_events)
    }

    fn session(&self) -> Result<CheckoutSession, Error> {
        Ok(self.clone())
    }
}

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

/// The outcome of a command: its events, or the error it was refused with.
pub type Outcome = Result<Vec<SessionEvent>, Error>;

/// A disagreement found by the [`Harness`]: where in the run, and what.
#[derive(Debug, Clone)]
pub struct Failure(Box<FailureDetails>);

#[derive(Debug, Clone)]
struct FailureDetails {
    step: Option<usize>,
    command: Option<String>,
    mismatch: Mismatch,
    log: Vec<String>,
}

impl Failure {
    fn new(
        step: Option<usize>,
        command: Option<String>,
        mismatch: Mismatch,
        log: Vec<String>,
    ) -> Self {
        Self(Box::new(FailureDetails {
            step,
            command,
            mismatch,
            log,
        }))
    }

    /// The step (from 1) at which it was found; `None` when creating the session.
    pub fn step(&self) -> Option<usize> {
        self.0.step
    }

    /// The command of that step, as debug text.
    pub fn command(&self) -> Option<&str> {
        self.0.command.as_deref()
    }

    /// The field that differs, and both values.
    pub fn mismatch(&self) -> &Mismatch {
        &self.0.mismatch
    }

    /// What happened before, one line per operation.
    pub fn log(&self) -> &[String] {
        &self.0.log
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        match (&d.step, &d.command) {
            (Some(step), Some(command)) => write!(f, "step {step} ({command}): {}", d.mismatch)?,
            _ => write!(f, "creating the session: {}", d.mismatch)?,
        }
        if !d.log.is_empty() {
            f.write_str("\nhistory:")?;
            for line in &d.log {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Applies [`Command`]s to an [`Integration`] and to the [`ReferenceSession`] and checks
/// them against each other after every step (see the [module docs](self)).
///
/// ```
/// use bitcoin_checkout::testkit::model::{Rate, SessionSpec};
/// use bitcoin_checkout::testkit::strategies::{Amount, Command, Harness, Pick};
/// use bitcoin_checkout::{Currency, SessionStatus};
///
/// let mut spec = SessionSpec::new(10_000, Currency::from_code("USD")?); // 100.00 USD
/// spec.lightning = false; // on-chain only, one confirmation
/// let mut harness = Harness::new(&spec)?;
/// harness.step(&Command::IssueQuote(Rate::new(1000, 0)?))?;
/// harness.step(&Command::PayOnchain {
///     amount: Amount::Exact,
///     confirmations: 0,
///     rbf: false,
///     vout: 0,
///     reversed: false,
/// })?;
/// assert_eq!(harness.model().status(), SessionStatus::Active); // pending
/// harness.step(&Command::Confirm { transfer: Pick(0), more: 1 })?;
/// assert_eq!(harness.model().status(), SessionStatus::Paid);
/// assert_eq!(harness.integration().status(), SessionStatus::Paid);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Harness<I = CheckoutSession> {
    integration: I,
    model: ReferenceSession,
    spec: SessionSpec,
    now: OffsetDateTime,
    accepted: Vec<Report>,
    next_tx: u32,
    events: Vec<SessionEvent>,
    reached: bool,
    auto_quote: Vec<Rate>,
    steps: usize,
    last: Option<Outcome>,
    log: Vec<String>,
}

/// Runs `commands` on a new [`CheckoutSession`] for `spec` and the model; the harness is
/// returned for further checks.
pub fn run(spec: &SessionSpec, commands: &[Command]) -> Result<Harness, Failure> {
    let mut harness = Harness::new(spec)?;
    harness.run(commands)?;
    Ok(harness)
}

impl Harness<CheckoutSession> {
    /// A harness on a new [`CheckoutSession`] for `spec`, created at [`start_time`].
    pub fn new(spec: &SessionSpec) -> Result<Self, Failure> {
        Self::with_integration(spec, |id, params, now| {
            CheckoutSession::create(id, params, now).map(|(s, c)| (s, c.into_events()))
        })
    }
}

/// The session's threshold in minor units, from its public fields (rule 3).
fn threshold_of(session: &CheckoutSession) -> Option<u128> {
    let scale = session.currency().scale();
    let mut amount = session.amount();
    amount.rescale(scale);
    let minor = u128::try_from(amount.mantissa()).ok()?;
    let allowance = Decimal::from_i128_with_scale(i128::try_from(minor).ok()?, 0)
        .checked_mul(session.tolerance())?
        .checked_div(Decimal::ONE_HUNDRED)?
        .floor();
    minor.checked_sub(u128::try_from(i128::try_from(allowance).ok()?).ok()?)
}

/// Counted credit in minor units, recomputed from `payments()` and `transfers()`.
fn counted_credit_of(session: &CheckoutSession) -> u128 {
    let policy = session.confirmation_policy();
    let scale = session.currency().scale();
    session
        .payments()
        .iter()
        .map(|p| {
            let msats: u128 = session
                .transfers()
                .filter(|t| t.payment_id == p.id() && t.counts(policy))
                .map(|t| u128::from(t.amount.get()))
                .sum();
            let mut due = p.due();
            due.rescale(scale);
            let due = u128::try_from(due.mantissa()).unwrap_or(0);
            mul_div_floor(due, msats, u128::from(p.target_msats().get()))
        })
        .fold(0u128, u128::saturating_add)
}

/// A count as a `u32` (saturating).
fn number(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `t` moved by `millis`, or a mismatch if that leaves the supported range of times.
fn later(t: OffsetDateTime, millis: i64) -> Result<OffsetDateTime, Mismatch> {
    t.checked_add(Duration::milliseconds(millis))
        .ok_or_else(|| {
            Mismatch::new(
                "the run's time",
                "a time in the supported range",
                (t, millis),
            )
        })
}

fn same<T: PartialEq + fmt::Debug>(field: &str, expected: T, found: T) -> Result<(), Mismatch> {
    if expected == found {
        Ok(())
    } else {
        Err(Mismatch::new(field, expected, found))
    }
}

impl<I: Integration> Harness<I> {
    /// A harness on the integration `create` makes from the session's id, parameters and
    /// creation time (pass [`CheckoutSession::create`] or your own constructor); the
    /// creation events must be the model's.
    pub fn with_integration<F>(spec: &SessionSpec, create: F) -> Result<Self, Failure>
    where
        F: FnOnce(
            SessionId,
            SessionParams,
            OffsetDateTime,
        ) -> Result<(I, Vec<SessionEvent>), Error>,
    {
        let now = start_time();
        let failure = |mismatch| Failure::new(None, None, mismatch, Vec::new());
        let expected = ReferenceSession::create(spec, now);
        let got = create(SESSION_ID, spec.params(), now);
        let (model, integration, events) = match (expected, got) {
            (Ok((model, expected)), Ok((integration, events))) => {
                same("events of create", &expected, &events).map_err(failure)?;
                (model, integration, events)
            }
            (Err(e), Err(g)) if e == g => {
                return Err(failure(Mismatch::new(
                    "create (both refused the spec)",
                    "a valid SessionSpec",
                    g,
                )));
            }
            (e, g) => {
                return Err(failure(Mismatch::new(
                    "outcome of create",
                    e.map(|(_, events)| events),
                    g.map(|(_, events)| events),
                )));
            }
        };
        let harness = Self {
            integration,
            model,
            spec: spec.clone(),
            now,
            accepted: Vec::new(),
            next_tx: 1,
            events,
            reached: false,
            auto_quote: Vec::new(),
            steps: 0,
            last: None,
            log: vec![format!("create {spec:?}")],
        };
        let checked = harness.snapshot().and_then(|s| harness.check(&s, true));
        match checked {
            Ok(()) => Ok(harness),
            Err(m) => Err(Failure::new(None, None, m, harness.log.clone())),
        }
    }

    /// After every command of [`run`](Self::run) that leaves the session needing a quote,
    /// issues one at the next of `rates` (none when empty, the default).
    pub fn auto_quote(mut self, rates: Vec<Rate>) -> Self {
        self.auto_quote = rates;
        self
    }

    /// The integration under test.
    pub fn integration(&self) -> &I {
        &self.integration
    }

    /// Gives the integration back.
    pub fn into_integration(self) -> I {
        self.integration
    }

    /// The model.
    pub fn model(&self) -> &ReferenceSession {
        &self.model
    }

    /// The session's spec.
    pub fn spec(&self) -> &SessionSpec {
        &self.spec
    }

    /// The run's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Every event the integration returned so far, creation included.
    pub fn events(&self) -> &[SessionEvent] {
        &self.events
    }

    /// The reports accepted so far (what [`Command::Duplicate`] picks from).
    pub fn accepted_reports(&self) -> &[Report] {
        &self.accepted
    }

    /// The outcome of the last command applied (`None` if the last step applied none, e.g.
    /// [`Command::AdvanceTime`]).
    pub fn last_outcome(&self) -> Option<&Outcome> {
        self.last.as_ref()
    }

    /// What happened so far, one line per operation.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Applies `commands` in order (with [automatic quotes](Self::auto_quote)), stopping at
    /// the first failure.
    pub fn run(&mut self, commands: &[Command]) -> Result<(), Failure> {
        for (i, command) in commands.iter().enumerate() {
            self.step(command)?;
            if !self.auto_quote.is_empty() && self.model.needs_quote(self.now) {
                let rate = self.auto_quote[i % self.auto_quote.len()];
                self.step(&Command::IssueQuote(rate))?;
            }
        }
        Ok(())
    }

    /// Applies one command to the integration and the model, then checks everything.
    ///
    /// After a failure the two sides may differ for good: start a new harness rather than
    /// stepping this one further.
    pub fn step(&mut self, command: &Command) -> Result<(), Failure> {
        self.steps += 1;
        self.last = None;
        match self.step_inner(command) {
            Ok(()) => Ok(()),
            Err(mismatch) => Err(Failure::new(
                Some(self.steps),
                Some(format!("{command:?}")),
                mismatch,
                self.log.clone(),
            )),
        }
    }

    fn snapshot(&self) -> Result<CheckoutSession, Mismatch> {
        self.integration
            .session()
            .map_err(|e| Mismatch::new("integration.session()", "the session", e))
    }

    fn unchanged(&self, what: &str, before: &CheckoutSession) -> Result<(), Mismatch> {
        let after = self.snapshot()?;
        if &after == before {
            return Ok(());
        }
        Err(Mismatch::new(
            format!("session after {what} (must be unchanged)"),
            before.to_json(),
            after.to_json(),
        ))
    }

    fn step_inner(&mut self, command: &Command) -> Result<(), Mismatch> {
        let before = self.snapshot()?;
        let was_active = matches!(before.state(), SessionState::Active);
        self.apply_command(command, &before)?;
        let after = self.snapshot()?;

        // Terminal statuses never change; quotes are never removed.
        if before.state().is_terminal() {
            same(
                "a terminal session's state never changes",
                before.state(),
                after.state(),
            )?;
        }
        if after.payments().len() < before.payments().len() {
            return Err(Mismatch::new(
                "quotes are never removed",
                before.payments().len(),
                after.payments().len(),
            ));
        }
        for (old, new) in before.payments().iter().zip(after.payments()) {
            same("a quote's id never changes", old.id(), new.id())?;
            if !matches!(old.state(), PaymentState::Unpaid) {
                same(
                    "a terminal quote's state never changes",
                    old.state(),
                    new.state(),
                )?;
            }
        }
        if was_active && threshold_of(&after).is_some_and(|t| counted_credit_of(&after) >= t) {
            self.reached = true;
        }
        self.check(&after, after != before)
    }

    /// Everything that must hold after every step. The JSON round-trips are only checked
    /// when the session `changed` (an equal session was checked before).
    fn check(&self, session: &CheckoutSession, changed: bool) -> Result<(), Mismatch> {
        self.model.check_against_at(session, self.now)?;
        check_accounting(session, self.now)?;
        if changed {
            check_round_trips(session)?;
        }
        same(
            "paid iff the counted funds reached the threshold while active",
            self.reached,
            session.status() == SessionStatus::Paid,
        )?;

        // The events so far add up.
        let count = |t: &EventType, p: Option<PaymentId>| {
            self.events
                .iter()
                .filter(|e| &e.event_type == t && (p.is_none() || e.payment_id == p))
                .count()
        };
        let is = |s: SessionStatus| usize::from(session.status() == s);
        same(
            "events: one checkout_session.created",
            1,
            count(&EventType::CheckoutSessionCreated, None),
        )?;
        same(
            "events: one checkout_session.paid iff paid",
            is(SessionStatus::Paid),
            count(&EventType::CheckoutSessionPaid, None),
        )?;
        same(
            "events: one checkout_session.deactivated iff deactivated",
            is(SessionStatus::Deactivated),
            count(&EventType::CheckoutSessionDeactivated, None),
        )?;
        for pay in session.payments() {
            let id = Some(pay.id());
            let is = |s: PaymentStatus| usize::from(pay.status() == s);
            let field = |what: &str| format!("events: {what} of payment {}", pay.id());
            let check = |what: &str, t: EventType, want: usize| {
                let n = count(&t, id);
                if n == want {
                    Ok(())
                } else {
                    Err(Mismatch::new(field(what), want, n))
                }
            };
            check("one payment.created", EventType::PaymentCreated, 1)?;
            check(
                "payment.expired iff expired",
                EventType::PaymentExpired,
                is(PaymentStatus::Expired),
            )?;
            check(
                "payment.cancelled iff cancelled",
                EventType::PaymentCancelled,
                is(PaymentStatus::Cancelled),
            )?;
            check(
                "payment.paid iff paid",
                EventType::PaymentPaid,
                is(PaymentStatus::Paid),
            )?;
            check(
                "checkout_session.payment_paid iff paid",
                EventType::CheckoutSessionPaymentPaid,
                is(PaymentStatus::Paid),
            )?;
        }
        for t in session.transfers() {
            let n = |ty: EventType| {
                self.events
                    .iter()
                    .filter(|e| e.event_type == ty && e.transfer == Some(t.key))
                    .count()
            };
            let field = |what: &str| format!("events: {what} of transfer {}", t.key);
            let received = n(EventType::TransferReceived);
            if received != 1 {
                return Err(Mismatch::new(field("one transfer_received"), 1, received));
            }
            let reversed = n(EventType::TransferReversed);
            if reversed != usize::from(t.reversed) {
                return Err(Mismatch::new(
                    field("transfer_reversed iff reversed"),
                    usize::from(t.reversed),
                    reversed,
                ));
            }
            let confirmed = n(EventType::TransferConfirmed);
            if confirmed > 1 {
                return Err(Mismatch::new(
                    field("at most one transfer_confirmed"),
                    "<= 1",
                    confirmed,
                ));
            }
        }
        Ok(())
    }

    /// Applies a command to both sides and compares the outcomes; on error (or a no-op),
    /// checks that the session did not change.
    fn apply(
        &mut self,
        what: String,
        integration: impl FnOnce(&mut I) -> Outcome,
        model: impl FnOnce(&mut ReferenceSession) -> Outcome,
    ) -> Result<Outcome, Mismatch> {
        let before = self.snapshot()?;
        let mut next = self.model.clone();
        let expected = model(&mut next);
        let got = integration(&mut self.integration);
        self.log.push(format!("{what} -> {got:?}"));
        self.last = Some(got.clone());
        same("outcome", &expected, &got)?;
        match &got {
            Ok(events) => {
                if next.version() == self.model.version() {
                    // A command the model says changes nothing must leave the session equal.
                    same("events of a command that changes nothing", 0, events.len())?;
                    self.unchanged(&what, &before)?;
                }
                self.model = next;
                self.events.extend(events.iter().cloned());
            }
            Err(_) => self.unchanged(&what, &before)?,
        }
        Ok(got)
    }

    fn record(&mut self, report: Report, now: OffsetDateTime) -> Result<Outcome, Mismatch> {
        let transfer = report.to_transfer_report();
        let what = format!(
            "record {report:?} at +{} ms",
            unix_ms(now) - unix_ms(start_time())
        );
        let for_model = report.clone();
        let out = self.apply(
            what,
            |i| i.record_transfer(transfer, now),
            |m| m.record(&for_model, now),
        )?;
        if out.is_ok() {
            self.accepted.push(report);
        }
        Ok(out)
    }

    /// Computes the next quote on both sides and, if allowed, issues it; returns the error
    /// it was refused with, if any.
    fn quote(&mut self, rate: Rate, now: OffsetDateTime) -> Result<Option<Error>, Mismatch> {
        let n = number(self.model.payments().len()).saturating_add(1);
        let id = payment_id(n);
        let exchange_rate = rate
            .exchange_rate(self.spec.currency, self.spec.target_currency, now)
            .map_err(|e| Mismatch::new("the exchange rate", rate, e))?;
        let before = self.snapshot()?;
        let expected = self.model.next_quote(&rate, now);
        let got = self.integration.next_quote(id, exchange_rate, now);
        self.unchanged("next_quote", &before)?;
        match (expected, got) {
            (Err(e), Err(g)) => {
                self.log.push(format!("quote {n} at {rate} -> {g:?}"));
                same("outcome of next_quote", &e, &g)?;
                self.last = Some(Err(g.clone()));
                Ok(Some(g))
            }
            (Ok(q), Ok(terms)) => {
                same("quote.payment_id", id, terms.payment_id())?;
                same(
                    "quote.due",
                    self.model.decimal(q.due_minor),
                    Some(terms.due()),
                )?;
                same("quote.target", q.target, terms.target())?;
                same(
                    "quote.target_msats",
                    u128::from(q.target.get()) * u128::from(MSATS_PER_SAT),
                    u128::from(terms.target_msats().get()),
                )?;
                same("quote.rate", rate.to_decimal(), terms.rate().rate())?;
                same("quote.issued_at", q.issued_at, terms.issued_at())?;
                same("quote.expires_at", q.expires_at, terms.expires_at())?;
                let request = request_for(&self.spec, &terms, n);
                let for_model = request.clone();
                let what = format!(
                    "issue quote {n} at {rate}: due {} minor units, {} sats",
                    q.due_minor,
                    q.target.get()
                );
                let out = self.apply(
                    what,
                    |i| i.issue_quote(terms, request, now),
                    |m| m.issue_quote(id, &rate, &for_model, now),
                )?;
                Ok(out.err())
            }
            (e, g) => Err(Mismatch::new("outcome of next_quote", e, g)),
        }
    }

    /// A known transfer, as the report that would repeat its first one (with its current
    /// confirmations and RBF signal, not reversed).
    fn pick_known(&self, pick: Pick) -> Option<Report> {
        let transfers = self.model.transfers();
        let t = transfers.get(pick.index(transfers.len()))?;
        Some(match t.key {
            TransferKey::Lightning(hash) => Report::Lightning {
                hash,
                msats: t.amount.get(),
                reversed: false,
            },
            TransferKey::Onchain { txid, vout } => Report::Onchain {
                txid,
                vout,
                address: ADDRESS.into(),
                sats: t.amount.get() / MSATS_PER_SAT,
                confirmations: t.confirmations,
                rbf: t.rbf,
                reversed: false,
            },
        })
    }

    /// Msats for `amount` on quote `p` (1,000,000 when there is no quote).
    fn msats_for(&self, p: Option<&super::model::ModelPayment>, amount: Amount) -> u64 {
        let Some(p) = p else { return 1_000_000 };
        let t = p.target_msats();
        let v = match amount {
            Amount::Exact => t,
            Amount::Partial { permille } => (t * u128::from(permille) / 1000).max(1),
            Amount::Over { permille } => t + t * u128::from(permille) / 1000 + 1,
            Amount::OneLess => t.saturating_sub(1).max(1),
            Amount::Tiny { msats } => u128::from(msats),
            Amount::Threshold { short_by_one } => {
                let received = self.model.received_credit_minor();
                let need = self.model.threshold_minor().saturating_sub(received).max(1);
                let m = need.saturating_mul(t).div_ceil(p.due_minor().max(1));
                if short_by_one {
                    m.saturating_sub(1).max(1)
                } else {
                    m
                }
            }
        };
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    fn next_txid(&mut self) -> Hash32 {
        let tx = txid(self.next_tx);
        self.next_tx = self.next_tx.wrapping_add(1);
        tx
    }

    /// `Ok` if `got` is `want`, naming the command's expectation otherwise.
    fn expect(what: &str, want: Outcome, got: &Outcome) -> Result<(), Mismatch> {
        same(what, &want, got)
    }

    fn apply_command(
        &mut self,
        command: &Command,
        before: &CheckoutSession,
    ) -> Result<(), Mismatch> {
        let now = self.now;
        match command {
            Command::IssueQuote(rate) => {
                self.quote(*rate, now)?;
            }
            Command::PayLightning { quote, amount } => {
                let n = self.model.payments().len();
                // The last slot (and a session without quotes) means the latest quote.
                let index = (n > 0).then(|| quote.index(n + 1).min(n - 1));
                let payment = index.and_then(|k| self.model.payments().get(k));
                let hash = payment.and_then(|p| p.invoice()).unwrap_or_else(|| {
                    invoice_hash(index.map_or(1, |k| number(k).saturating_add(1)))
                });
                let msats = self.msats_for(payment, *amount);
                let _ = self.record(
                    Report::Lightning {
                        hash,
                        msats,
                        reversed: false,
                    },
                    now,
                )?;
            }
            Command::PayOnchain {
                amount,
                confirmations,
                rbf,
                vout,
                reversed,
            } => {
                let payment = self.model.onchain_payment_at(now);
                let sats = self
                    .msats_for(payment, *amount)
                    .div_ceil(MSATS_PER_SAT)
                    .max(1);
                let txid = self.next_txid();
                let _ = self.record(
                    Report::Onchain {
                        txid,
                        vout: *vout,
                        address: ADDRESS.into(),
                        sats,
                        confirmations: *confirmations,
                        rbf: *rbf,
                        reversed: *reversed,
                    },
                    now,
                )?;
            }
            Command::Confirm { transfer, more } => {
                if let Some(Report::Onchain {
                    txid,
                    vout,
                    address,
                    sats,
                    confirmations,
                    rbf,
                    ..
                }) = self.pick_known(*transfer)
                {
                    let _ = self.record(
                        Report::Onchain {
                            txid,
                            vout,
                            address,
                            sats,
                            confirmations: confirmations.saturating_add(*more),
                            rbf,
                            reversed: false,
                        },
                        now,
                    )?;
                }
            }
            Command::ReportFewerConfirmations { transfer } => {
                if let Some(mut report) = self.pick_known(*transfer) {
                    if let Report::Onchain { confirmations, .. } = &mut report {
                        *confirmations = confirmations.saturating_sub(1);
                    }
                    let out = self.record(report, now)?;
                    Self::expect("fewer confirmations change nothing", Ok(Vec::new()), &out)?;
                    self.unchanged("fewer confirmations", before)?;
                }
            }
            Command::Reverse { transfer } => {
                if let Some(report) = self.pick_known(*transfer) {
                    let _ = self.record(report.reversed(), now)?;
                }
            }
            Command::Duplicate { report } => {
                if !self.accepted.is_empty() {
                    let report = self.accepted[report.index(self.accepted.len())].clone();
                    let out = self.record(report, now)?;
                    Self::expect("a replayed report returns no events", Ok(Vec::new()), &out)?;
                    self.unchanged("a replayed report", before)?;
                }
            }
            Command::Report(report) => {
                let _ = self.record(report.clone(), now)?;
            }
            Command::AdvanceTime { millis } => {
                self.now = later(now, i64::from(*millis))?;
                self.log.push(format!("advance {millis} ms"));
            }
            Command::ToQuoteExpiry { offset_millis } => {
                if let Some(p) = self.model.payments().last() {
                    let t = later(p.expires_at(), i64::from(*offset_millis))?;
                    if t > now {
                        self.now = t;
                        self.log
                            .push(format!("to quote expiry {offset_millis:+} ms"));
                    }
                }
            }
            Command::Expire => {
                let _ = self.apply("expire".into(), |i| i.expire_quotes(now), |m| m.expire(now))?;
            }
            Command::Update(spec) => {
                let update = spec.to_update();
                let _ = self.apply(
                    format!("update {spec:?}"),
                    |i| i.update(&update, now),
                    |m| m.update(spec, now),
                )?;
            }
            Command::Deactivate => {
                let _ = self.apply(
                    "deactivate".into(),
                    |i| i.deactivate(now),
                    |m| m.deactivate(now),
                )?;
            }
            Command::MismatchedAmount { transfer, extra } => {
                if let Some(mut report) = self.pick_known(*transfer) {
                    let first = report.msats();
                    match &mut report {
                        Report::Lightning { msats, .. } => {
                            *msats = msats.saturating_add(u64::from(*extra))
                        }
                        Report::Onchain { sats, .. } => {
                            *sats = sats.saturating_add(u64::from(*extra))
                        }
                    }
                    let again = report.msats();
                    let out = self.record(report, now)?;
                    if let (Ok(first), Ok(again)) = (u64::try_from(first), u64::try_from(again))
                        && first != again
                    {
                        Self::expect(
                            "a known transfer with another amount is refused",
                            Err(Error::TransferAmountMismatch { first, again }),
                            &out,
                        )?;
                    }
                }
            }
            Command::KnownTransferToWrongAddress { transfer } => {
                if let Some(Report::Onchain {
                    txid,
                    vout,
                    sats,
                    confirmations,
                    rbf,
                    ..
                }) = self.pick_known(*transfer)
                {
                    let out = self.record(
                        Report::Onchain {
                            txid,
                            vout,
                            address: WRONG_ADDRESS.into(),
                            sats,
                            confirmations: confirmations.saturating_add(1),
                            rbf,
                            reversed: false,
                        },
                        now,
                    )?;
                    Self::expect(
                        "a known transfer to another address is refused",
                        Err(Error::UnknownPaymentRequest),
                        &out,
                    )?;
                }
            }
            Command::UnknownInvoice => {
                let out = self.record(
                    Report::Lightning {
                        hash: invoice_hash(999_999),
                        msats: 1000,
                        reversed: false,
                    },
                    now,
                )?;
                let want = if self.spec.lightning {
                    Error::UnknownPaymentRequest
                } else {
                    Error::MethodNotEnabled("lightning")
                };
                Self::expect(
                    "a payment to an unknown invoice is refused",
                    Err(want),
                    &out,
                )?;
            }
            Command::UnknownAddress => {
                let txid = self.next_txid();
                let out = self.record(
                    Report::Onchain {
                        txid,
                        vout: 0,
                        address: WRONG_ADDRESS.into(),
                        sats: 1000,
                        confirmations: 1,
                        rbf: false,
                        reversed: false,
                    },
                    now,
                )?;
                let want = if self.spec.onchain {
                    Error::UnknownPaymentRequest
                } else {
                    Error::MethodNotEnabled("onchain")
                };
                Self::expect(
                    "a payment to an unknown address is refused",
                    Err(want),
                    &out,
                )?;
            }
            Command::ZeroAmount => {
                let out = self.record(
                    Report::Lightning {
                        hash: invoice_hash(1),
                        msats: 0,
                        reversed: false,
                    },
                    now,
                )?;
                Self::expect(
                    "a report of nothing is refused",
                    Err(Error::AmountNotPositive),
                    &out,
                )?;
            }
            Command::ClockBackwards(which) => {
                let modified = self.model.modified();
                let past = later(modified, -1)?;
                let want = Error::ClockWentBackwards {
                    now_ms: unix_ms(past),
                    last_ms: unix_ms(modified),
                };
                let got = match which {
                    ClockCommand::Record => self
                        .record(
                            Report::Lightning {
                                hash: invoice_hash(1),
                                msats: 1000,
                                reversed: false,
                            },
                            past,
                        )?
                        .err(),
                    ClockCommand::Deactivate => self
                        .apply(
                            "deactivate (clock backwards)".into(),
                            |i| i.deactivate(past),
                            |m| m.deactivate(past),
                        )?
                        .err(),
                    ClockCommand::Update => {
                        let spec = UpdateSpec::Description(0);
                        let update = spec.to_update();
                        self.apply(
                            "update (clock backwards)".into(),
                            |i| i.update(&update, past),
                            |m| m.update(&spec, past),
                        )?
                        .err()
                    }
                    ClockCommand::Expire => self
                        .apply(
                            "expire (clock backwards)".into(),
                            |i| i.expire_quotes(past),
                            |m| m.expire(past),
                        )?
                        .err(),
                    ClockCommand::Quote => self.quote(Rate::from_parts(1000, 0), past)?,
                };
                same("a command in the past is refused", Some(want), got)?;
            }
        }
        Ok(())
    }
}

impl Harness<CheckoutSession> {
    /// The session under test.
    pub fn session(&self) -> &CheckoutSession {
        &self.integration
    }
}
