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
//! The model's inputs are plain values a test can generate and print:
//!
//! * [`SessionSpec`]: the parameters of a session (amount in minor units, currency,
//!   tolerance in hundredths of a percent, confirmation policy, methods, ttl, …), turned into
//!   [`SessionParams`] by [`SessionSpec::params`];
//! * [`Rate`]: an exchange rate as an exact decimal fraction;
//! * [`Report`]: a transfer report, turned into a [`TransferReport`] by
//!   [`Report::to_transfer_report`];
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
//! use bitcoin_checkout::testkit::model::{Rate, Report, ReferenceSession, SessionSpec};
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
//! let rate = Rate::new(1000, 0)?;
//! let terms = session.next_quote(payment_id(1), rate.exchange_rate(spec.currency, spec.target_currency, now)?, now)?;
//! let request = request_for(&spec, &terms, 1);
//! let expected = model.issue_quote(payment_id(1), &rate, &request, now)?;
//! assert_eq!(session.issue_quote(terms, request, now)?, expected);
//!
//! // The customer pays the invoice exactly.
//! let report = Report::Lightning { hash: invoice_hash(1), msats: 25_000_000, reversed: false };
//! let expected = model.record(&report, now)?;
//! assert_eq!(session.record_transfer(report.to_transfer_report(), now)?, expected);
//!
//! // Every field agrees.
//! model.check_against_at(&session, now)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check;

pub(crate) use check::check_accounting;
pub use check::{Mismatch, check_invariants, check_round_trips};

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::id::PaymentId;
use crate::metadata::{MAX_KEYS, Metadata, MetadataPatch, MetadataValue};
use crate::money::{
    Currency, ExchangeRate, MAX_MONEY_SATS, MSATS_PER_SAT, Msats, SATS_PER_BTC, Sats,
    TargetCurrency,
};
use crate::payment::PaymentState;
use crate::request::{Hash32, PaymentHash, PaymentRequest};
use crate::session::{
    DEFAULT_FIAT_TTL_SECS, Flag, FlagKind, MAX_TTL_SECS, MIN_TTL_SECS, SessionParams, SessionState,
    SessionStatus, SessionUpdate,
};
use crate::transfer::{
    Arrival, ConfirmationPolicy, PaymentMethod, Transfer, TransferKey, TransferReport,
};

/// The success URL the [`UpdateSpec`] menu sets.
pub const SUCCESS_URL: &str = "https://shop.example/thanks";
/// The success message the [`UpdateSpec`] menu sets.
pub const SUCCESS_MESSAGE: &str = "Thank you!";

/// Longest description, in characters (the documented limit of the core).
const MAX_DESCRIPTION_CHARS: usize = 1000;

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// The parameters of a session, as plain numbers a test can generate, print and shrink.
///
/// Build one with [`SessionSpec::new`] and change the public fields; [`params`](Self::params)
/// turns it into the [`SessionParams`] the core takes, and [`ReferenceSession::create`] into
/// a model.
///
/// ```
/// use bitcoin_checkout::testkit::model::SessionSpec;
/// use bitcoin_checkout::{ConfirmationPolicy, Currency};
///
/// let mut spec = SessionSpec::new(1999, Currency::from_code("EUR")?); // 19.99 EUR
/// spec.tolerance_hundredths = 150; // 1.5 %
/// spec.confirmations = ConfirmationPolicy::Two;
/// assert_eq!(spec.amount(), "19.99".parse()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSpec {
    /// The price in minor units of `currency` (cents for USD, sats for BTC and SATS).
    pub amount_minor: u64,
    /// The currency the price is in.
    pub currency: Currency,
    /// The currency the customer pays in.
    pub target_currency: TargetCurrency,
    /// Underpayment tolerance in hundredths of a percent (`150` = 1.5 %); valid below 10,000.
    pub tolerance_hundredths: u32,
    /// Confirmations on-chain transfers need.
    pub confirmations: ConfirmationPolicy,
    /// Whether Lightning is accepted.
    pub lightning: bool,
    /// Whether on-chain payments are accepted.
    pub onchain: bool,
    /// Lifetime of each quote, in seconds (valid from 300 to 31,536,000).
    pub ttl_secs: i64,
    /// The initial description.
    pub description: Option<String>,
    /// The initial metadata.
    pub metadata: Metadata,
}

impl SessionSpec {
    /// A session for `amount_minor` minor units of `currency`, paid in SATS over Lightning and
    /// on-chain, with no tolerance, one confirmation, a 600 s ttl, no description and no
    /// metadata.
    pub fn new(amount_minor: u64, currency: Currency) -> Self {
        Self {
            amount_minor,
            currency,
            target_currency: TargetCurrency::Sats,
            tolerance_hundredths: 0,
            confirmations: ConfirmationPolicy::One,
            lightning: true,
            onchain: true,
            ttl_secs: DEFAULT_FIAT_TTL_SECS,
            description: None,
            metadata: Metadata::new(),
        }
    }

    /// The price as a decimal at the currency's scale.
    pub fn amount(&self) -> Decimal {
        Decimal::from_i128_with_scale(i128::from(self.amount_minor), self.currency.scale())
    }

    /// The tolerance as a percentage.
    pub fn tolerance(&self) -> Decimal {
        Decimal::new(i64::from(self.tolerance_hundredths), 2)
    }

    /// The accepted methods, Lightning first.
    pub fn payment_methods(&self) -> Vec<PaymentMethod> {
        let mut methods = Vec::new();
        if self.lightning {
            methods.push(PaymentMethod::Lightning);
        }
        if self.onchain {
            methods.push(PaymentMethod::Onchain);
        }
        methods
    }

    /// Whether `method` is accepted.
    pub fn accepts(&self, method: PaymentMethod) -> bool {
        match method {
            PaymentMethod::Lightning => self.lightning,
            PaymentMethod::Onchain => self.onchain,
        }
    }

    /// The parameters to create the session with.
    pub fn params(&self) -> SessionParams {
        let params = SessionParams::new(self.amount(), self.currency)
            .target_currency(self.target_currency)
            .payment_methods(self.payment_methods())
            .tolerance(self.tolerance())
            .confirmations(self.confirmations)
            .ttl_secs(self.ttl_secs)
            .metadata(self.metadata.clone());
        match &self.description {
            Some(d) => params.description(d.clone()),
            None => params,
        }
    }
}

/// An exchange rate as an exact decimal fraction: `mantissa / 10^scale` units of the
/// session's target currency per unit of its base currency (as [`ExchangeRate::rate`]).
///
/// ```
/// use bitcoin_checkout::testkit::model::Rate;
///
/// let rate = Rate::new(1_234_5678, 4)?; // 1234.5678 sats per unit
/// assert_eq!(rate.to_string(), "1234.5678");
/// # Ok::<(), bitcoin_checkout::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    mantissa: u64,
    scale: u32,
}

impl Rate {
    /// The most decimals a rate may have, so that `due × rate` stays exact in the core's
    /// 28-digit decimals for every amount the strategies make.
    pub const MAX_SCALE: u32 = 16;

    /// `mantissa / 10^scale`; [`Error::InvalidRate`] if it is zero or has more than
    /// [`MAX_SCALE`](Self::MAX_SCALE) decimals.
    pub fn new(mantissa: u64, scale: u32) -> Result<Self, Error> {
        if mantissa == 0 || scale > Self::MAX_SCALE {
            return Err(Error::InvalidRate);
        }
        Ok(Self { mantissa, scale })
    }

    /// For strategies: the caller guarantees `mantissa > 0` and `scale <= MAX_SCALE`.
    pub(crate) const fn from_parts(mantissa: u64, scale: u32) -> Self {
        Self { mantissa, scale }
    }

    /// The digits.
    pub fn mantissa(self) -> u64 {
        self.mantissa
    }

    /// The number of decimals.
    pub fn scale(self) -> u32 {
        self.scale
    }

    /// The rate as a decimal.
    pub fn to_decimal(self) -> Decimal {
        Decimal::from_i128_with_scale(i128::from(self.mantissa), self.scale.min(28))
    }

    /// The [`ExchangeRate`] to give the core for a session pricing `base` in `target`.
    pub fn exchange_rate(
        self,
        base: Currency,
        target: TargetCurrency,
        fetched_at: OffsetDateTime,
    ) -> Result<ExchangeRate, Error> {
        ExchangeRate::new(base, target, self.to_decimal(), "testkit", fetched_at)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_decimal(), f)
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

/// A transfer report as plain data: what a Lightning node or chain watcher says arrived.
///
/// Unlike [`TransferReport`] every field can be read back, so a test can replay or vary a
/// report, and the model can read it.
///
/// ```
/// use bitcoin_checkout::testkit::model::Report;
/// use bitcoin_checkout::testkit::strategies::{txid, ADDRESS};
///
/// let seen = Report::Onchain {
///     txid: txid(1),
///     vout: 0,
///     address: ADDRESS.into(),
///     sats: 25_000,
///     confirmations: 0,
///     rbf: false,
///     reversed: false,
/// };
/// let double_spent = seen.clone().reversed();
/// assert_eq!(double_spent.key(), seen.key());
/// assert_eq!(seen.to_transfer_report().amount().get(), 25_000_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Report {
    /// A settled Lightning payment.
    Lightning {
        /// The invoice's payment hash.
        hash: PaymentHash,
        /// The amount, in msats.
        msats: u64,
        /// Whether the payment is reported reversed.
        reversed: bool,
    },
    /// An on-chain output.
    Onchain {
        /// The transaction id.
        txid: Hash32,
        /// The output index.
        vout: u32,
        /// The address paid.
        address: String,
        /// The amount, in sats.
        sats: u64,
        /// Confirmations seen.
        confirmations: u32,
        /// Whether the transaction signals replace-by-fee.
        rbf: bool,
        /// Whether the output is reported reversed (double spent, reorganised away).
        reversed: bool,
    },
}

impl Report {
    /// The transfer's natural id.
    pub fn key(&self) -> TransferKey {
        match self {
            Self::Lightning { hash, .. } => TransferKey::Lightning(*hash),
            Self::Onchain { txid, vout, .. } => TransferKey::Onchain {
                txid: *txid,
                vout: *vout,
            },
        }
    }

    /// The amount in msats (on-chain: sats × 1000, exact).
    pub fn msats(&self) -> u128 {
        match self {
            Self::Lightning { msats, .. } => u128::from(*msats),
            Self::Onchain { sats, .. } => u128::from(*sats) * u128::from(MSATS_PER_SAT),
        }
    }

    /// The address paid (on-chain reports only).
    pub fn address(&self) -> Option<&str> {
        match self {
            Self::Lightning { .. } => None,
            Self::Onchain { address, .. } => Some(address),
        }
    }

    /// Confirmations seen (0 for Lightning).
    pub fn confirmations(&self) -> u32 {
        match self {
            Self::Lightning { .. } => 0,
            Self::Onchain { confirmations, .. } => *confirmations,
        }
    }

    /// Whether the transaction signals replace-by-fee.
    pub fn rbf(&self) -> bool {
        matches!(self, Self::Onchain { rbf: true, .. })
    }

    /// Whether the report says the transfer was reversed.
    pub fn is_reversed(&self) -> bool {
        match self {
            Self::Lightning { reversed, .. } | Self::Onchain { reversed, .. } => *reversed,
        }
    }

    /// The same report, marked reversed.
    pub fn reversed(mut self) -> Self {
        match &mut self {
            Self::Lightning { reversed, .. } | Self::Onchain { reversed, .. } => *reversed = true,
        }
        self
    }

    /// The report the core takes.
    ///
    /// An on-chain amount above 21 million BTC cannot be expressed in msats by
    /// [`TransferReport::onchain`]; it is passed on as 21 million BTC plus one sat, which every
    /// conforming integration refuses the same way ([`Error::AmountTooLarge`]).
    pub fn to_transfer_report(&self) -> TransferReport {
        match self {
            Self::Lightning {
                hash,
                msats,
                reversed,
            } => {
                let r = TransferReport::lightning(*hash, Msats::new(*msats));
                if *reversed { r.reversed() } else { r }
            }
            Self::Onchain {
                txid,
                vout,
                address,
                sats,
                confirmations,
                rbf,
                reversed,
            } => {
                let sats = Sats::new((*sats).min(MAX_MONEY_SATS + 1));
                let r =
                    TransferReport::onchain(*txid, *vout, address.clone(), sats, *confirmations)
                        .signals_rbf(*rbf);
                if *reversed { r.reversed() } else { r }
            }
        }
    }
}

/// An update from a fixed menu (so the model knows its effect without validating free text):
/// each variant is one kind of change to the mutable fields, including refused ones.
///
/// ```
/// use bitcoin_checkout::testkit::model::{ReferenceSession, SessionSpec, UpdateSpec};
/// use bitcoin_checkout::{CheckoutSession, Currency, Error, SessionId};
/// use time::OffsetDateTime;
///
/// let now = OffsetDateTime::UNIX_EPOCH;
/// let spec = SessionSpec::new(100, Currency::from_code("USD")?);
/// let mut model = ReferenceSession::new(&spec, now)?;
/// let (mut session, _) = CheckoutSession::create(SessionId::generate(), spec.params(), now)?;
/// for update in [UpdateSpec::SuccessUrl, UpdateSpec::SuccessMessage] {
///     assert_eq!(session.update(&update.to_update(), now), model.update(&update, now));
/// }
/// assert_eq!(model.update(&UpdateSpec::SuccessMessage, now), Err(Error::SuccessUrlAndMessage));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpdateSpec {
    /// Sets the description to `"desc {n % 4}"`.
    Description(u8),
    /// Clears the description.
    ClearDescription,
    /// Sets metadata key `"key{key % 8}"` to a string, number or boolean chosen by `value`.
    SetMetadata {
        /// Picks the key.
        key: u8,
        /// Picks the value.
        value: u8,
    },
    /// Removes metadata key `"key{n % 8}"`.
    RemoveMetadata(u8),
    /// Adds 51 metadata keys: refused ([`Error::InvalidMetadata`]).
    TooManyMetadataKeys,
    /// Sets the success URL ([`SUCCESS_URL`]).
    SuccessUrl,
    /// Sets the success message ([`SUCCESS_MESSAGE`]).
    SuccessMessage,
    /// Clears the success message and sets the success URL.
    SuccessUrlClearingMessage,
    /// Clears the success URL and sets the success message.
    SuccessMessageClearingUrl,
    /// Sets both: refused ([`Error::SuccessUrlAndMessage`]).
    SuccessUrlAndMessage,
    /// Clears the success URL and message.
    ClearSuccess,
    /// Changes nothing.
    Nothing,
    /// Tries to change the amount (as JSON `{"amount": 5}`): refused
    /// ([`Error::ImmutableField`]).
    ChangeAmount,
}

impl UpdateSpec {
    /// The metadata value [`UpdateSpec::SetMetadata`] sets for `value`.
    pub fn metadata_value(value: u8) -> MetadataValue {
        match value % 3 {
            0 => MetadataValue::from(format!("v{value}")),
            1 => MetadataValue::from(i64::from(value)),
            _ => MetadataValue::from(value.is_multiple_of(2)),
        }
    }

    /// The update the core takes.
    pub fn to_update(&self) -> SessionUpdate {
        let u = SessionUpdate::new();
        match *self {
            Self::Description(n) => u.description(format!("desc {}", n % 4)),
            Self::ClearDescription => u.clear_description(),
            Self::SetMetadata { key, value } => u.metadata(
                MetadataPatch::new().set(format!("key{}", key % 8), Self::metadata_value(value)),
            ),
            Self::RemoveMetadata(k) => {
                u.metadata(MetadataPatch::new().remove(format!("key{}", k % 8)))
            }
            Self::TooManyMetadataKeys => {
                let patch = (0..=MAX_KEYS)
                    .fold(MetadataPatch::new(), |p, i| p.set(format!("bulk{i}"), "x"));
                u.metadata(patch)
            }
            Self::SuccessUrl => u.success_url(SUCCESS_URL),
            Self::SuccessMessage => u.success_message(SUCCESS_MESSAGE),
            Self::SuccessUrlClearingMessage => u.clear_success_message().success_url(SUCCESS_URL),
            Self::SuccessMessageClearingUrl => {
                u.clear_success_url().success_message(SUCCESS_MESSAGE)
            }
            Self::SuccessUrlAndMessage => {
                u.success_url(SUCCESS_URL).success_message(SUCCESS_MESSAGE)
            }
            Self::ClearSuccess => u.clear_success_url().clear_success_message(),
            Self::Nothing => u,
            // The builder has no setter for immutable fields; JSON is how they arrive. The
            // literal always parses; were it not to, the no-op update would show up as a
            // mismatch with the model, never as a silent pass.
            Self::ChangeAmount => serde_json::from_str(r#"{"amount": 5}"#).unwrap_or_default(),
        }
    }

    /// The details after this update, per the documented rules.
    fn apply(&self, d: &Details) -> Result<Details, Error> {
        let mut n = d.clone();
        match *self {
            Self::ChangeAmount => return Err(Error::ImmutableField("amount")),
            Self::Description(k) => n.description = Some(format!("desc {}", k % 4)),
            Self::ClearDescription => n.description = None,
            Self::SetMetadata { key, value } => {
                n.metadata
                    .insert(format!("key{}", key % 8), Self::metadata_value(value));
            }
            Self::RemoveMetadata(k) => {
                n.metadata.remove(&format!("key{}", k % 8));
            }
            Self::TooManyMetadataKeys => {
                for i in 0..=MAX_KEYS {
                    n.metadata
                        .insert(format!("bulk{i}"), MetadataValue::from("x"));
                }
            }
            Self::SuccessUrl => n.success_url = Some(SUCCESS_URL.into()),
            Self::SuccessMessage => n.success_message = Some(SUCCESS_MESSAGE.into()),
            Self::SuccessUrlClearingMessage => {
                n.success_message = None;
                n.success_url = Some(SUCCESS_URL.into());
            }
            Self::SuccessMessageClearingUrl => {
                n.success_url = None;
                n.success_message = Some(SUCCESS_MESSAGE.into());
            }
            Self::SuccessUrlAndMessage => {
                n.success_url = Some(SUCCESS_URL.into());
                n.success_message = Some(SUCCESS_MESSAGE.into());
            }
            Self::ClearSuccess => {
                n.success_url = None;
                n.success_message = None;
            }
            Self::Nothing => {}
        }
        if n.metadata.len() > MAX_KEYS {
            return Err(Error::TooManyMetadataKeys {
                count: n.metadata.len(),
            });
        }
        if n.success_url.is_some() && n.success_message.is_some() {
            return Err(Error::SuccessUrlAndMessage);
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// The model's state
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    description: Option<String>,
    metadata: BTreeMap<String, MetadataValue>,
    success_url: Option<String>,
    success_message: Option<String>,
}

/// One quote of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPayment {
    id: PaymentId,
    due_minor: u128,
    target: Sats,
    rate: Rate,
    created: OffsetDateTime,
    expires_at: OffsetDateTime,
    state: PaymentState,
    invoice: Option<PaymentHash>,
}

impl ModelPayment {
    /// The payment's id.
    pub fn id(&self) -> PaymentId {
        self.id
    }

    /// The base amount the quote covers, in minor units.
    pub fn due_minor(&self) -> u128 {
        self.due_minor
    }

    /// What the quote asks for: `ceil(due × rate)` sats.
    pub fn target(&self) -> Sats {
        self.target
    }

    /// The target in msats.
    pub fn target_msats(&self) -> u128 {
        u128::from(self.target.get()) * u128::from(MSATS_PER_SAT)
    }

    /// The locked rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// When it was issued.
    pub fn created(&self) -> OffsetDateTime {
        self.created
    }

    /// When it runs out.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// Its state.
    pub fn state(&self) -> PaymentState {
        self.state
    }

    /// The payment hash of its invoice, when Lightning is enabled.
    pub fn invoice(&self) -> Option<PaymentHash> {
        self.invoice
    }

    fn unpaid(&self) -> bool {
        matches!(self.state, PaymentState::Unpaid)
    }
}

/// What the model expects [`CheckoutSession::next_quote`](crate::CheckoutSession::next_quote)
/// to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedQuote {
    /// The remaining due, in minor units of the base currency.
    pub due_minor: u128,
    /// `ceil(due × rate)` in whole sats.
    pub target: Sats,
    /// When the quote is issued (`now`, to the millisecond).
    pub issued_at: OffsetDateTime,
    /// When it will run out.
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelTransfer {
    payment: usize,
    amount: u64,
    arrival: Arrival,
    confirmations: u32,
    rbf: bool,
    reversed: bool,
    onchain: bool,
    first_seen: OffsetDateTime,
    counted_at: Option<OffsetDateTime>,
}

impl ModelTransfer {
    fn credited(&self) -> bool {
        !self.reversed && matches!(self.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry)
    }
}

/// The reference model of one checkout session.
///
/// Commands mirror [`CheckoutSession`](crate::CheckoutSession)'s and return the same
/// `Result<Vec<SessionEvent>, Error>`; like the core, a refused command leaves the model as
/// it was. Getters give everything the core exposes, computed from the specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceSession {
    currency: Currency,
    target_currency: TargetCurrency,
    scale: u32,
    amount_minor: u128,
    tolerance_hundredths: u128,
    confirmations: u32,
    lightning: bool,
    onchain: bool,
    ttl_secs: i64,
    state: SessionState,
    payments: Vec<ModelPayment>,
    transfers: BTreeMap<TransferKey, ModelTransfer>,
    address: Option<String>,
    created: OffsetDateTime,
    modified: OffsetDateTime,
    version: u64,
    details: Details,
}

/// Times are kept to the millisecond.
pub(crate) fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
        .unwrap_or(t)
}

pub(crate) fn unix_ms(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1_000_000
}

fn ev(event_type: EventType, at: OffsetDateTime) -> SessionEvent {
    SessionEvent {
        event_type,
        at,
        payment_id: None,
        transfer: None,
        amount: None,
    }
}

fn ev_p(event_type: EventType, at: OffsetDateTime, p: PaymentId) -> SessionEvent {
    SessionEvent {
        payment_id: Some(p),
        ..ev(event_type, at)
    }
}

fn ev_t(
    event_type: EventType,
    at: OffsetDateTime,
    p: PaymentId,
    key: TransferKey,
    amount: u64,
) -> SessionEvent {
    SessionEvent {
        payment_id: Some(p),
        transfer: Some(key),
        amount: Some(Msats::new(amount)),
        ..ev(event_type, at)
    }
}

/// `floor(a × b / c)`, saturating (the model's amounts never get near).
pub(crate) fn mul_div_floor(a: u128, b: u128, c: u128) -> u128 {
    if c == 0 {
        return u128::MAX;
    }
    if let Some(p) = a.checked_mul(b) {
        return p / c;
    }
    let (q, r) = (a / c, a % c);
    let whole = q.saturating_mul(b);
    let part = r.checked_mul(b).map_or(u128::MAX, |v| v / c);
    whole.saturating_add(part)
}

/// `ceil(a × b / c)`, saturating.
fn mul_div_ceil(a: u128, b: u128, c: u128) -> u128 {
    if c == 0 {
        return u128::MAX;
    }
    if let Some(p) = a.checked_mul(b) {
        return p.div_ceil(c);
    }
    let floor = mul_div_floor(a, b, c);
    let exact = (a % c).checked_mul(b).is_some_and(|v| v % c == 0);
    if exact {
        floor
    } else {
        floor.saturating_add(1)
    }
}

fn to_msats(v: u128) -> Msats {
    Msats::new(u64::try_from(v).unwrap_or(u64::MAX))
}

impl ReferenceSession {
    /// The model of a session created from `spec` at `now`, with the events of creation; the
    /// same errors as [`CheckoutSession::create`](crate::CheckoutSession::create) for invalid
    /// amounts, tolerances, ttls, method sets and descriptions.
    pub fn create(
        spec: &SessionSpec,
        now: OffsetDateTime,
    ) -> Result<(Self, Vec<SessionEvent>), Error> {
        let now = truncate(now);
        if spec.amount_minor == 0 {
            return Err(Error::AmountNotPositive);
        }
        let bitcoin = matches!(spec.currency, Currency::Btc | Currency::Sats);
        if bitcoin && spec.amount_minor > MAX_MONEY_SATS {
            return Err(Error::AmountTooLarge);
        }
        if spec.tolerance_hundredths >= 10_000 {
            return Err(Error::InvalidTolerance(spec.tolerance()));
        }
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&spec.ttl_secs) {
            return Err(Error::InvalidTtl(spec.ttl_secs));
        }
        if !spec.lightning && !spec.onchain {
            return Err(Error::NoPaymentMethod);
        }
        if let Some(d) = &spec.description {
            if d.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(Error::InvalidText {
                    field: "description",
                    reason: "too long",
                });
            }
            if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return Err(Error::InvalidText {
                    field: "description",
                    reason: "contains control characters",
                });
            }
        }
        let model = Self {
            currency: spec.currency,
            target_currency: spec.target_currency,
            scale: spec.currency.scale(),
            amount_minor: u128::from(spec.amount_minor),
            tolerance_hundredths: u128::from(spec.tolerance_hundredths),
            confirmations: spec.confirmations.confirmations(),
            lightning: spec.lightning,
            onchain: spec.onchain,
            ttl_secs: spec.ttl_secs,
            state: SessionState::Active,
            payments: Vec::new(),
            transfers: BTreeMap::new(),
            address: None,
            created: now,
            modified: now,
            version: 0,
            details: Details {
                description: spec.description.clone(),
                metadata: spec
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect(),
                success_url: None,
                success_message: None,
            },
        };
        Ok((model, vec![ev(EventType::CheckoutSessionCreated, now)]))
    }

    /// [`create`](Self::create) without the events.
    pub fn new(spec: &SessionSpec, now: OffsetDateTime) -> Result<Self, Error> {
        Self::create(spec, now).map(|(model, _)| model)
    }

    // ---- getters ------------------------------------------------------------------------

    /// The base currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The currency the customer pays in.
    pub fn target_currency(&self) -> TargetCurrency {
        self.target_currency
    }

    /// The price in minor units.
    pub fn amount_minor(&self) -> u128 {
        self.amount_minor
    }

    /// Minor units the session must count to be paid (rule 3 of [`crate::money`]):
    /// `amount − floor(amount × tolerance / 100)`.
    pub fn threshold_minor(&self) -> u128 {
        self.amount_minor - self.amount_minor * self.tolerance_hundredths / 10_000
    }

    /// Whether `method` is accepted.
    pub fn accepts(&self, method: PaymentMethod) -> bool {
        match method {
            PaymentMethod::Lightning => self.lightning,
            PaymentMethod::Onchain => self.onchain,
        }
    }

    /// The quote lifetime, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// The state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The status.
    pub fn status(&self) -> SessionStatus {
        self.state.status()
    }

    /// When it was created.
    pub fn created(&self) -> OffsetDateTime {
        self.created
    }

    /// When it last changed.
    pub fn modified(&self) -> OffsetDateTime {
        self.modified
    }

    /// Changes applied since creation.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The session's on-chain address, once a quote was issued with one.
    pub fn onchain_address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// The quotes, oldest first.
    pub fn payments(&self) -> &[ModelPayment] {
        &self.payments
    }

    /// The unpaid quote, if any (even if past its expiry and not yet marked expired).
    pub fn open_payment(&self) -> Option<&ModelPayment> {
        self.payments.iter().find(|p| p.unpaid())
    }

    /// The quote that is open at `now`: unpaid and not past its expiry.
    pub fn open_payment_at(&self, now: OffsetDateTime) -> Option<&ModelPayment> {
        let now = truncate(now);
        self.payments
            .iter()
            .find(|p| p.unpaid() && now < p.expires_at)
    }

    /// The quote a new on-chain transfer seen at `now` is attributed to: the one open at
    /// `now`, else the latest.
    pub fn onchain_payment_at(&self, now: OffsetDateTime) -> Option<&ModelPayment> {
        self.open_payment_at(now).or(self.payments.last())
    }

    /// Every transfer, as the core's [`Transfer`] values, sorted by key.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.transfers
            .iter()
            .map(|(key, t)| Transfer {
                key: *key,
                payment_id: self.payments[t.payment].id,
                amount: Msats::new(t.amount),
                arrival: t.arrival,
                confirmations: t.confirmations,
                rbf: t.rbf,
                reversed: t.reversed,
                first_seen: t.first_seen,
                counted_at: t.counted_at,
            })
            .collect()
    }

    /// Msats of non-reversed transfers attributed to `payment`, whatever their arrival.
    pub fn received_for(&self, payment: PaymentId) -> Msats {
        let sum: u128 = self
            .transfers
            .values()
            .filter(|t| !t.reversed && self.payments[t.payment].id == payment)
            .map(|t| u128::from(t.amount))
            .sum();
        to_msats(sum)
    }

    /// Funds that count towards the price.
    pub fn counted(&self) -> Msats {
        to_msats(self.sums().iter().map(|s| s.1).sum())
    }

    /// Funds seen but still waiting for confirmations.
    pub fn pending(&self) -> Msats {
        let sums = self.sums();
        let received: u128 = sums.iter().map(|s| s.0).sum();
        let counted: u128 = sums.iter().map(|s| s.1).sum();
        to_msats(received - counted)
    }

    /// Credit of counted funds in minor units (`amount_paid`): rule 2 per quote, summed.
    pub fn paid_credit_minor(&self) -> u128 {
        self.credits().1
    }

    /// Credit of counted and pending funds in minor units (`amount_received`).
    pub fn received_credit_minor(&self) -> u128 {
        self.credits().0
    }

    /// `amount_paid` as a decimal at the currency's scale.
    pub fn amount_paid(&self) -> Option<Decimal> {
        self.decimal(self.paid_credit_minor())
    }

    /// `amount_received` as a decimal at the currency's scale.
    pub fn amount_received(&self) -> Option<Decimal> {
        self.decimal(self.received_credit_minor())
    }

    /// Minor units as a decimal at the currency's scale (`None` beyond 96 bits).
    pub fn decimal(&self, minor: u128) -> Option<Decimal> {
        let v = i128::try_from(minor).ok().filter(|v| *v < (1i128 << 96))?;
        Some(Decimal::from_i128_with_scale(v, self.scale))
    }

    /// The flags, in the order of [`FlagKind`], kinds with nothing left out.
    pub fn flags(&self) -> Vec<Flag> {
        self.flag_map()
            .into_iter()
            .map(|(kind, amount)| Flag {
                kind,
                amount: to_msats(amount),
            })
            .collect()
    }

    /// The flagged amount of one kind.
    pub fn flagged(&self, kind: FlagKind) -> Msats {
        to_msats(self.flag(kind))
    }

    /// Whether the session needs a new quote at `now`.
    pub fn needs_quote(&self, now: OffsetDateTime) -> bool {
        self.active()
            && self.open_payment_at(now).is_none()
            && self.received_credit_minor() < self.threshold_minor()
    }

    /// When the session next needs attention: its unpaid quote's expiry, else its last
    /// change if it is active and needs a quote, else `None`.
    pub fn wake_at(&self) -> Option<OffsetDateTime> {
        if let Some(open) = self.open_payment() {
            return Some(open.expires_at);
        }
        (self.active() && self.received_credit_minor() < self.threshold_minor())
            .then_some(self.modified)
    }

    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.details.description.as_deref()
    }

    /// The success URL.
    pub fn success_url(&self) -> Option<&str> {
        self.details.success_url.as_deref()
    }

    /// The success message.
    pub fn success_message(&self) -> Option<&str> {
        self.details.success_message.as_deref()
    }

    /// The metadata, in key order.
    pub fn metadata(&self) -> &BTreeMap<String, MetadataValue> {
        &self.details.metadata
    }

    // ---- accounting ---------------------------------------------------------------------

    fn active(&self) -> bool {
        matches!(self.state, SessionState::Active)
    }

    fn required(&self, rbf: bool) -> u32 {
        if rbf {
            self.confirmations.max(1)
        } else {
            self.confirmations
        }
    }

    /// Counted money keeps counting until it is reversed.
    fn meets(&self, t: &ModelTransfer) -> bool {
        !t.reversed
            && (t.counted_at.is_some() || !t.onchain || t.confirmations >= self.required(t.rbf))
    }

    /// Rule 2: `floor(due × received / target)`.
    fn credit(p: &ModelPayment, msats: u128) -> u128 {
        mul_div_floor(p.due_minor, msats, p.target_msats())
    }

    /// Per payment: (received, counted) msats of credited transfers.
    fn sums(&self) -> Vec<(u128, u128)> {
        let mut sums = vec![(0u128, 0u128); self.payments.len()];
        for t in self.transfers.values().filter(|t| t.credited()) {
            if let Some(s) = sums.get_mut(t.payment) {
                s.0 += u128::from(t.amount);
                if self.meets(t) {
                    s.1 += u128::from(t.amount);
                }
            }
        }
        sums
    }

    /// (received, counted) credit in minor units.
    fn credits(&self) -> (u128, u128) {
        let sums = self.sums();
        self.payments
            .iter()
            .zip(&sums)
            .fold((0u128, 0u128), |(r, c), (p, s)| {
                (
                    r.saturating_add(Self::credit(p, s.0)),
                    c.saturating_add(Self::credit(p, s.1)),
                )
            })
    }

    /// Msats past the full amount: quotes walked in order, each credited until the amount
    /// is reached; what a quote received beyond that point is excess.
    fn excess(&self) -> u128 {
        let sums = self.sums();
        let mut credited = 0u128;
        let mut excess = 0u128;
        for (p, s) in self.payments.iter().zip(&sums) {
            let need = self.amount_minor.saturating_sub(credited);
            let needed = mul_div_ceil(need, p.target_msats(), p.due_minor);
            excess += s.0.saturating_sub(needed);
            credited = credited.saturating_add(Self::credit(p, s.0));
        }
        excess
    }

    fn flag_map(&self) -> BTreeMap<FlagKind, u128> {
        let mut f: BTreeMap<FlagKind, u128> = BTreeMap::new();
        for t in self.transfers.values() {
            let kind = if t.reversed {
                if t.counted_at.is_none() {
                    continue;
                }
                FlagKind::Reversed
            } else {
                match t.arrival {
                    Arrival::AfterPaid => FlagKind::Overpaid,
                    Arrival::AfterDeactivated => FlagKind::Late,
                    Arrival::AfterQuoteExpiry => FlagKind::PaidAfterExpiry,
                    _ => continue,
                }
            };
            *f.entry(kind).or_default() += u128::from(t.amount);
        }
        let excess = self.excess();
        if excess > 0 {
            *f.entry(FlagKind::Overpaid).or_default() += excess;
        }
        if matches!(self.state, SessionState::Deactivated { .. }) {
            let kept: u128 = self
                .transfers
                .values()
                .filter(|t| t.credited())
                .map(|t| u128::from(t.amount))
                .sum();
            if kept > 0 {
                f.insert(FlagKind::RefundDue, kept);
            }
        }
        f
    }

    fn flag(&self, kind: FlagKind) -> u128 {
        self.flag_map().get(&kind).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> [u128; 3] {
        [
            self.flag(FlagKind::Overpaid),
            self.flag(FlagKind::Late),
            self.flag(FlagKind::PaidAfterExpiry),
        ]
    }

    // ---- commands -----------------------------------------------------------------------

    fn clock(&self, now: OffsetDateTime) -> Result<(), Error> {
        if now < self.modified {
            return Err(Error::ClockWentBackwards {
                now_ms: unix_ms(now),
                last_ms: unix_ms(self.modified),
            });
        }
        Ok(())
    }

    fn invalid(&self, action: &'static str) -> Error {
        Error::InvalidTransition {
            action,
            status: self.status().as_str(),
        }
    }

    fn touch(&mut self, now: OffsetDateTime) {
        self.modified = now;
        self.version += 1;
    }

    /// Marks unpaid quotes past their expiry as expired (the calling command bumps the
    /// version).
    fn expire_due(&mut self, now: OffsetDateTime) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        for p in self
            .payments
            .iter_mut()
            .filter(|p| p.unpaid() && now >= p.expires_at)
        {
            p.state = PaymentState::Expired {
                expired_at: p.expires_at,
            };
            events.push(ev_p(EventType::PaymentExpired, now, p.id));
        }
        events
    }

    /// The terms of the next quote at `rate`, or the error the core must return.
    pub fn next_quote(&self, rate: &Rate, now: OffsetDateTime) -> Result<ExpectedQuote, Error> {
        let now = truncate(now);
        self.clock(now)?;
        if !self.active() {
            return Err(self.invalid("quote"));
        }
        if let Some(open) = self.open_payment_at(now) {
            return Err(Error::QuoteAlreadyOpen(open.id));
        }
        let received = self.received_credit_minor();
        if received >= self.threshold_minor() {
            return Err(Error::InvalidTransition {
                action: "quote a fully received",
                status: "active",
            });
        }
        let due = self.amount_minor - received;
        // Rule 1: ceil(due × rate) sats, with due = due_minor / 10^scale, the rate
        // mantissa / 10^rate_scale target units, and a target unit worth `per_unit` sats.
        let per_unit = match self.target_currency {
            TargetCurrency::Sats => 1,
            TargetCurrency::Btc => u128::from(SATS_PER_BTC),
        };
        let numerator = u128::from(rate.mantissa)
            .checked_mul(per_unit)
            .ok_or(Error::AmountTooLarge)?;
        let denominator = 10u128
            .checked_pow(self.scale + rate.scale)
            .ok_or(Error::AmountTooLarge)?;
        // A price worth less than one sat is refused on the first quote; a small rest after
        // a partial payment is rounded up to one sat.
        if self.payments.is_empty()
            && self
                .amount_minor
                .checked_mul(numerator)
                .is_some_and(|v| v < denominator)
        {
            return Err(Error::AmountBelowOneSat);
        }
        let target = mul_div_ceil(due, numerator, denominator);
        if target == 0 {
            return Err(Error::AmountBelowOneSat);
        }
        let target = u64::try_from(target)
            .ok()
            .filter(|t| *t <= MAX_MONEY_SATS)
            .ok_or(Error::AmountTooLarge)?;
        Ok(ExpectedQuote {
            due_minor: due,
            target: Sats::new(target),
            issued_at: now,
            expires_at: now
                .checked_add(Duration::seconds(self.ttl_secs))
                .ok_or(Error::TimeOutOfRange)?,
        })
    }

    /// Issues the next quote at `rate` as payment `payment_id` with the payment request
    /// `request`, checking the request as the core does.
    pub fn issue_quote(
        &mut self,
        payment_id: PaymentId,
        rate: &Rate,
        request: &PaymentRequest,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        let quote = self.next_quote(rate, now)?;
        if self.payments.iter().any(|p| p.id == payment_id) {
            return Err(Error::RequestMismatch("payment id already used"));
        }
        if now >= quote.expires_at {
            return Err(Error::RequestMismatch(
                "the quote expired before it was issued",
            ));
        }
        match (&request.lightning, self.lightning) {
            (Some(inv), true) => {
                if inv.expires_at > quote.expires_at {
                    return Err(Error::RequestMismatch("invoice outlives its quote"));
                }
                if self
                    .payments
                    .iter()
                    .any(|p| p.invoice == Some(inv.payment_hash))
                {
                    return Err(Error::RequestMismatch("invoice payment hash already used"));
                }
            }
            (None, false) => {}
            (Some(_), false) => return Err(Error::RequestMismatch("lightning is not enabled")),
            (None, true) => return Err(Error::RequestMismatch("lightning invoice missing")),
        }
        match (&request.onchain_address, self.onchain) {
            (Some(addr), true) => match &self.address {
                Some(own) if own != addr => {
                    return Err(Error::RequestMismatch(
                        "on-chain address differs from the session's",
                    ));
                }
                _ if addr.is_empty() => {
                    return Err(Error::RequestMismatch("empty on-chain address"));
                }
                _ => {}
            },
            (None, false) => {}
            (Some(_), false) => return Err(Error::RequestMismatch("on-chain is not enabled")),
            (None, true) => return Err(Error::RequestMismatch("on-chain address missing")),
        }
        let mut events = self.expire_due(now);
        if self.address.is_none() {
            self.address = request.onchain_address.clone();
        }
        self.payments.push(ModelPayment {
            id: payment_id,
            due_minor: quote.due_minor,
            target: quote.target,
            rate: *rate,
            created: now,
            expires_at: quote.expires_at,
            state: PaymentState::Unpaid,
            invoice: request.lightning.as_ref().map(|i| i.payment_hash),
        });
        events.push(ev_p(EventType::PaymentCreated, now, payment_id));
        self.touch(now);
        Ok(events)
    }

    /// After the facts changed: marks the session paid if the threshold is reached, and
    /// raises a flag event for each kind of unexpected money that grew.
    fn settle(&mut self, before: [u128; 3], now: OffsetDateTime) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        if self.active() && self.paid_credit_minor() >= self.threshold_minor() {
            self.state = SessionState::Paid { paid_at: now };
            events.push(ev(EventType::CheckoutSessionPaid, now));
            for p in self.payments.iter_mut().filter(|p| p.unpaid()) {
                p.state = PaymentState::Expired { expired_at: now };
                events.push(ev_p(EventType::PaymentExpired, now, p.id));
            }
        }
        let after = self.snapshot();
        let kinds = [
            EventType::Overpaid,
            EventType::LatePayment,
            EventType::PaidAfterExpiry,
        ];
        for ((kind, b), a) in kinds.into_iter().zip(before).zip(after) {
            if a > b {
                let mut e = ev(kind, now);
                e.amount = Some(to_msats(a - b));
                events.push(e);
            }
        }
        events
    }

    /// Records a transfer report.
    pub fn record(
        &mut self,
        report: &Report,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        let key = report.key();
        let amount = report.msats();
        if amount == 0 {
            return Err(Error::AmountNotPositive);
        }
        let amount = u64::try_from(amount)
            .ok()
            .filter(|a| *a <= MAX_MONEY_SATS * MSATS_PER_SAT)
            .ok_or(Error::AmountTooLarge)?;
        if let Some(known) = self.transfers.get(&key).cloned() {
            return self.update_transfer(report, known, now);
        }
        // A new transfer: its invoice or address must belong to this session.
        let index = match report {
            Report::Lightning { hash, .. } => {
                if !self.lightning {
                    return Err(Error::MethodNotEnabled("lightning"));
                }
                self.payments
                    .iter()
                    .position(|p| p.invoice == Some(*hash))
                    .ok_or(Error::UnknownPaymentRequest)?
            }
            Report::Onchain { address, .. } => {
                if !self.onchain {
                    return Err(Error::MethodNotEnabled("onchain"));
                }
                if self.payments.is_empty() || self.address.as_deref() != Some(address.as_str()) {
                    return Err(Error::UnknownPaymentRequest);
                }
                // The quote open when it is first seen, else the latest.
                self.payments
                    .iter()
                    .position(|p| p.unpaid() && now < p.expires_at)
                    .unwrap_or(self.payments.len() - 1)
            }
        };
        let before = self.snapshot();
        let mut events = self.expire_due(now);
        let arrival = match self.state {
            SessionState::Paid { .. } => Arrival::AfterPaid,
            SessionState::Deactivated { .. } => Arrival::AfterDeactivated,
            _ => match self.payments[index].state {
                PaymentState::Unpaid => Arrival::Expected,
                // A partly paid quote's rate lock still ends at its expiry.
                PaymentState::Paid { .. } if now < self.payments[index].expires_at => {
                    Arrival::Expected
                }
                _ => Arrival::AfterQuoteExpiry,
            },
        };
        let mut t = ModelTransfer {
            payment: index,
            amount,
            arrival,
            confirmations: report.confirmations(),
            rbf: report.rbf(),
            reversed: report.is_reversed(),
            onchain: matches!(report, Report::Onchain { .. }),
            first_seen: now,
            counted_at: None,
        };
        if self.meets(&t) {
            t.counted_at = Some(now);
        }
        let pid = self.payments[index].id;
        events.push(ev_t(EventType::TransferReceived, now, pid, key, amount));
        if report.is_reversed() {
            events.push(ev_t(EventType::TransferReversed, now, pid, key, amount));
        }
        self.transfers.insert(key, t);
        if self.payments[index].unpaid() && !report.is_reversed() {
            self.payments[index].state = PaymentState::Paid { paid_at: now };
            events.push(ev_p(EventType::PaymentPaid, now, pid));
            events.push(ev_p(EventType::CheckoutSessionPaymentPaid, now, pid));
        }
        events.extend(self.settle(before, now));
        self.touch(now);
        Ok(events)
    }

    /// A report of a known transfer: only more confirmations, the RBF signal or a reversal
    /// can change it.
    fn update_transfer(
        &mut self,
        report: &Report,
        known: ModelTransfer,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let key = report.key();
        let amount = known.amount;
        if u128::from(amount) != report.msats() {
            return Err(Error::TransferAmountMismatch {
                first: amount,
                again: u64::try_from(report.msats()).unwrap_or(u64::MAX),
            });
        }
        if let Some(a) = report.address()
            && self.address.as_deref() != Some(a)
        {
            return Err(Error::UnknownPaymentRequest);
        }
        if known.reversed {
            // A reversal is final.
            return Ok(Vec::new());
        }
        let mut next = known.clone();
        next.confirmations = next.confirmations.max(report.confirmations());
        next.rbf |= report.rbf();
        next.reversed |= report.is_reversed();
        if next.counted_at.is_none() && self.meets(&next) {
            next.counted_at = Some(now);
        }
        if next == known {
            return Ok(Vec::new());
        }
        let before = self.snapshot();
        let mut events = self.expire_due(now);
        let pid = self.payments[known.payment].id;
        if next.counted_at.is_some() && known.counted_at.is_none() {
            events.push(ev_t(EventType::TransferConfirmed, now, pid, key, amount));
        }
        if next.reversed && !known.reversed {
            events.push(ev_t(EventType::TransferReversed, now, pid, key, amount));
        }
        if events.is_empty() {
            events.push(ev_t(EventType::TransferUpdated, now, pid, key, amount));
        }
        self.transfers.insert(key, next);
        events.extend(self.settle(before, now));
        self.touch(now);
        Ok(events)
    }

    /// Expires the quotes that ran out at `now`.
    pub fn expire(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        let events = self.expire_due(now);
        if !events.is_empty() {
            self.touch(now);
        }
        Ok(events)
    }

    /// Deactivates an active session, cancelling its unpaid quote.
    pub fn deactivate(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        if !self.active() {
            return Err(self.invalid("deactivate"));
        }
        let mut events = self.expire_due(now);
        for p in self.payments.iter_mut().filter(|p| p.unpaid()) {
            p.state = PaymentState::Cancelled { cancelled_at: now };
            events.push(ev_p(EventType::PaymentCancelled, now, p.id));
        }
        self.state = SessionState::Deactivated {
            deactivated_at: now,
        };
        events.push(ev(EventType::CheckoutSessionDeactivated, now));
        self.touch(now);
        Ok(events)
    }

    /// Applies an update from the menu; an update that changes nothing returns no events.
    pub fn update(
        &mut self,
        update: &UpdateSpec,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        let next = update.apply(&self.details)?;
        if next == self.details {
            return Ok(Vec::new());
        }
        let mut events = self.expire_due(now);
        self.details = next;
        events.push(ev(EventType::CheckoutSessionUpdated, now));
        self.touch(now);
        Ok(events)
    }
}
