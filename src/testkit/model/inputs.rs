//! The model's inputs, plain values a test can generate and print: [`SessionSpec`],
//! [`RateSpec`], [`ReportSpec`] and [`UpdateSpec`] (with the success URL and message it sets).

use std::fmt;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::state::Details;
#[cfg(doc)]
use super::state::ReferenceSession;
use crate::chain::{OutPoint, Txid};
use crate::error::Error;
use crate::metadata::{MAX_KEYS, Metadata, MetadataPatch, MetadataValue};
use crate::money::{
    Currency, ExchangeRate, MAX_MONEY_SATS, MSATS_PER_SAT, Msats, Sats, TargetCurrency,
};
use crate::request::PaymentHash;
use crate::session::{DEFAULT_FIAT_TTL_SECS, SessionParams, SessionUpdate};
use crate::transfer::{ConfirmationPolicy, PaymentMethod, TransferKey, TransferReport};

/// The success URL the [`UpdateSpec`] menu sets.
pub const SUCCESS_URL: &str = "https://shop.example/thanks";
/// The success message the [`UpdateSpec`] menu sets.
pub const SUCCESS_MESSAGE: &str = "Thank you!";

/// Longest description, in characters (the documented limit of the core).
pub(super) const MAX_DESCRIPTION_CHARS: usize = 1000;

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
    /// When the session deactivates itself if it is not paid (valid 5 minutes to a year
    /// after creation); `None`, the default, for never.
    pub expires_at: Option<OffsetDateTime>,
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
            expires_at: None,
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
        let params = match self.expires_at {
            Some(at) => params.expires_at(at),
            None => params,
        };
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
/// use bitcoin_checkout::testkit::model::RateSpec;
///
/// let rate = RateSpec::new(1_234_5678, 4)?; // 1234.5678 sats per unit
/// assert_eq!(rate.to_string(), "1234.5678");
/// # Ok::<(), bitcoin_checkout::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateSpec {
    pub(super) mantissa: u64,
    pub(super) scale: u32,
}

impl RateSpec {
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

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_decimal(), f)
    }
}

impl fmt::Debug for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateSpec({self})")
    }
}

/// A transfer report as plain data: what a Lightning node or chain watcher says arrived.
///
/// Unlike [`TransferReport`] every field can be read back, so a test can replay or vary a
/// report, and the model can read it.
///
/// ```
/// use bitcoin_checkout::testkit::model::ReportSpec;
/// use bitcoin_checkout::testkit::strategies::{txid, ADDRESS};
///
/// let seen = ReportSpec::Onchain {
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
pub enum ReportSpec {
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
        txid: Txid,
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

impl ReportSpec {
    /// The same on-chain output reported again with `more` confirmations (not reversed);
    /// `None` for a Lightning payment.
    pub fn confirmed(&self, more: u32) -> Option<Self> {
        match self {
            Self::Lightning { .. } => None,
            Self::Onchain {
                txid,
                vout,
                address,
                sats,
                confirmations,
                rbf,
                ..
            } => Some(Self::Onchain {
                txid: *txid,
                vout: *vout,
                address: address.clone(),
                sats: *sats,
                confirmations: confirmations.saturating_add(more),
                rbf: *rbf,
                reversed: false,
            }),
        }
    }

    /// The transfer's natural id.
    pub fn key(&self) -> TransferKey {
        match self {
            Self::Lightning { hash, .. } => TransferKey::Lightning(*hash),
            Self::Onchain { txid, vout, .. } => TransferKey::Onchain(OutPoint::new(*txid, *vout)),
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
                let r = TransferReport::onchain(OutPoint::new(*txid, *vout), address.clone(), sats)
                    .confirmations(*confirmations)
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
///     assert_eq!(
///         session.update(&update.to_update(), now).map(|c| c.into_events()),
///         model.update(&update, now)
///     );
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
    /// Adds 51 metadata keys: refused ([`Error::TooManyMetadataKeys`]).
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
    pub(super) fn apply(&self, d: &Details) -> Result<Details, Error> {
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
