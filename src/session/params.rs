//! Parameters for creating a checkout session, validated all at once.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::text::{check_text, check_url};
use crate::error::Error;
use crate::metadata::Metadata;
use crate::money::{Currency, TargetCurrency};
use crate::transfer::{ConfirmationPolicy, PaymentMethod};

/// Shortest quote lifetime, in seconds (5 minutes).
pub const MIN_TTL_SECS: i64 = 300;
/// Longest quote lifetime, in seconds (365 days).
pub const MAX_TTL_SECS: i64 = 31_536_000;
/// Default quote lifetime for fiat-priced sessions: the rate risk window (10 minutes).
pub const DEFAULT_FIAT_TTL_SECS: i64 = 600;

pub(crate) const MAX_DESCRIPTION_CHARS: usize = 1000;
pub(crate) const MAX_TITLE_CHARS: usize = 200;
pub(crate) const MAX_TAG_CHARS: usize = 255;

/// How the payment page is branded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Branding {
    /// Title shown above the amount.
    #[serde(default)]
    pub title: Option<String>,
    /// A line under the title.
    #[serde(default)]
    pub title_description: Option<String>,
    /// An absolute http(s) URL of an image.
    #[serde(default)]
    pub title_image: Option<String>,
}

impl Branding {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        check_text("title", self.title.as_deref(), MAX_TITLE_CHARS, false)?;
        check_text(
            "title_description",
            self.title_description.as_deref(),
            MAX_DESCRIPTION_CHARS,
            true,
        )?;
        check_url("title_image", self.title_image.as_deref())
    }
}

/// Everything needed to create a checkout session.
///
/// Built with [`SessionParams::new`] and setters, or read from Speed-shaped JSON.
///
/// ```
/// use bitcoin_checkout::{Currency, SessionParams, PaymentMethod};
/// use rust_decimal::Decimal;
///
/// let params = SessionParams::new(Decimal::new(2500, 2), Currency::from_code("USD")?)
///     .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
///     .tolerance(Decimal::ONE)
///     .description("Order #1001");
/// # Ok::<(), bitcoin_checkout::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionParams {
    #[serde(with = "crate::json::decimal_number")]
    pub(crate) amount: Decimal,
    pub(crate) currency: Currency,
    #[serde(default)]
    pub(crate) target_currency: TargetCurrency,
    #[serde(default = "default_methods")]
    pub(crate) payment_methods: BTreeSet<PaymentMethod>,
    #[serde(default)]
    pub(crate) ttl: Option<i64>,
    #[serde(default, with = "crate::json::decimal_number_option")]
    pub(crate) amount_paid_tolerance: Option<Decimal>,
    #[serde(default)]
    pub(crate) confirmations: ConfirmationPolicy,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) metadata: Metadata,
    #[serde(default)]
    pub(crate) success_url: Option<String>,
    #[serde(default)]
    pub(crate) success_message: Option<String>,
    #[serde(default)]
    pub(crate) cancel_url: Option<String>,
    // Branding fields are spelled out rather than flattened: serde's flatten buffers the
    // input, which would lose the exact text of decimal numbers.
    #[serde(default)]
    pub(crate) title: Option<String>,
    #[serde(default)]
    pub(crate) title_description: Option<String>,
    #[serde(default)]
    pub(crate) title_image: Option<String>,
    #[serde(default)]
    pub(crate) statement_descriptor: Option<String>,
    #[serde(default)]
    pub(crate) source: Option<String>,
    #[serde(default)]
    pub(crate) source_id: Option<String>,
    /// Whether `source_id` was given as a JSON integer, to echo it as one (set by
    /// [`integer_source_id`](Self::integer_source_id), e.g. by the HTTP layer).
    #[serde(skip)]
    pub(crate) source_id_integer: bool,
    #[serde(default)]
    pub(crate) livemode: bool,
    /// When the session deactivates itself if it is not paid (Stripe's `expires_at`).
    #[serde(
        default,
        with = "crate::json::millis_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) expires_at: Option<time::OffsetDateTime>,
    /// The link that opened the session (set by the service, never by callers).
    #[serde(skip)]
    pub(crate) link: Option<crate::id::LinkId>,
    /// The caps on quotes and transfers: set in code ([`limits`](Self::limits)), never
    /// read from a request; part of the idempotency fingerprint when not the defaults.
    #[serde(
        default,
        skip_deserializing,
        skip_serializing_if = "super::SessionLimits::is_default"
    )]
    pub(crate) limits: super::SessionLimits,
}

fn default_methods() -> BTreeSet<PaymentMethod> {
    [PaymentMethod::Lightning, PaymentMethod::Onchain].into()
}

impl SessionParams {
    /// The parameters' JSON as idempotency records compare it: the same parameters always
    /// give the same text.
    pub(crate) fn canonical_json(&self) -> String {
        // Plain strings, numbers and maps: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads parameters from Speed's create-session JSON. Fields this version does not
    /// know are ignored (a request, not an object read back); a decimal that a `Decimal`
    /// cannot hold exactly is refused ([`Error::InexactDecimal`]), never rounded.
    ///
    /// ```
    /// use bitcoin_checkout::{Currency, Error, SessionParams};
    /// use rust_decimal::Decimal;
    ///
    /// let params = SessionParams::from_json(r#"{"amount": 25.5, "currency": "USD"}"#)?;
    /// assert_eq!(params, SessionParams::new(Decimal::new(255, 1), Currency::from_code("USD")?));
    /// let rounded = SessionParams::from_json(
    ///     r#"{"amount": 9.9999999999999999999999999999999, "currency": "USD"}"#,
    /// );
    /// assert!(matches!(rounded, Err(Error::InexactDecimal { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self, Error> {
        crate::json::read(text)
    }

    /// A session for `amount` of `currency`, paid in SATS over Lightning and on-chain, with
    /// the default ttl, no tolerance and one confirmation.
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self {
            amount,
            currency,
            target_currency: TargetCurrency::Sats,
            payment_methods: default_methods(),
            ttl: None,
            amount_paid_tolerance: None,
            confirmations: ConfirmationPolicy::default(),
            description: None,
            metadata: Metadata::new(),
            success_url: None,
            success_message: None,
            cancel_url: None,
            title: None,
            title_description: None,
            title_image: None,
            statement_descriptor: None,
            source: None,
            source_id: None,
            source_id_integer: false,
            livemode: false,
            expires_at: None,
            link: None,
            limits: super::SessionLimits::default(),
        }
    }

    /// The currency the customer pays in (SATS by default).
    pub fn target_currency(mut self, target: TargetCurrency) -> Self {
        self.target_currency = target;
        self
    }

    /// The accepted payment methods (both by default).
    pub fn payment_methods(mut self, methods: impl IntoIterator<Item = PaymentMethod>) -> Self {
        self.payment_methods = methods.into_iter().collect();
        self
    }

    /// How long each quote (and its exchange rate) stays valid, in seconds:
    /// 300 to 31,536,000. Defaults to 600 s for fiat and one year for BTC/SATS prices.
    pub fn ttl_secs(mut self, secs: i64) -> Self {
        self.ttl = Some(secs);
        self
    }

    /// Underpayment tolerance as a percentage in [0, 100): the session is paid once funds
    /// reach `amount × (1 − tolerance / 100)`.
    pub fn tolerance(mut self, percent: Decimal) -> Self {
        self.amount_paid_tolerance = Some(percent);
        self
    }

    /// Confirmations an on-chain transfer needs before it counts.
    pub fn confirmations(mut self, policy: ConfirmationPolicy) -> Self {
        self.confirmations = policy;
        self
    }

    /// A description for the merchant (updatable later).
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Merchant metadata (updatable later).
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Where to send the customer after paying (exclusive with a success message).
    pub fn success_url(mut self, url: impl Into<String>) -> Self {
        self.success_url = Some(url.into());
        self
    }

    /// What to tell the customer after paying (exclusive with a success URL).
    pub fn success_message(mut self, text: impl Into<String>) -> Self {
        self.success_message = Some(text.into());
        self
    }

    /// Where the back/cancel button goes.
    pub fn cancel_url(mut self, url: impl Into<String>) -> Self {
        self.cancel_url = Some(url.into());
        self
    }

    /// Branding of the payment page.
    pub fn branding(mut self, branding: Branding) -> Self {
        self.title = branding.title;
        self.title_description = branding.title_description;
        self.title_image = branding.title_image;
        self
    }

    /// Short text put into Lightning invoices.
    pub fn statement_descriptor(mut self, text: impl Into<String>) -> Self {
        self.statement_descriptor = Some(text.into());
        self
    }

    /// Free tags naming the integration and the order (as Speed's plugins use them).
    pub fn source(mut self, source: impl Into<String>, source_id: impl Into<String>) -> Self {
        self.source_id_integer = false;
        self.source = Some(source.into());
        self.source_id = Some(source_id.into());
        self
    }

    /// Writes `source_id` in the session's JSON as a JSON integer, as a client that sent
    /// it as one (Speed's Magento plugin sends the order number) reads it back. Only a
    /// `source_id` of digits (with an optional `-`) that fits an `i64` is written so; any
    /// other stays a string.
    pub fn integer_source_id(mut self) -> Self {
        self.source_id_integer = true;
        self
    }

    /// Whether this is a live (real money) session.
    pub fn livemode(mut self, live: bool) -> Self {
        self.livemode = live;
        self
    }

    pub(crate) fn branding_ref(&self) -> Branding {
        Branding {
            title: self.title.clone(),
            title_description: self.title_description.clone(),
            title_image: self.title_image.clone(),
        }
    }

    /// The ttl that applies: the given one, or the default for the base currency.
    /// Deactivates the session at `at` if it is not paid by then (reason
    /// [`Expired`](crate::session::DeactivationReason::Expired), with its events); its
    /// quotes never run past it. Off by default, as on Speed, where a session stays active
    /// until it is paid or deactivated. Must be 5 minutes to 1 year after creation.
    pub fn expires_at(mut self, at: time::OffsetDateTime) -> Self {
        self.expires_at = Some(crate::json::millis::truncate(at));
        self
    }

    /// Caps the quotes the session issues and the transfers it keeps (default
    /// [`SessionLimits::default`](super::SessionLimits)); see `session::limits`.
    pub fn limits(mut self, limits: super::SessionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks `expires_at` against the creation time `now`.
    pub(crate) fn check_expiry(&self, now: time::OffsetDateTime) -> Result<(), Error> {
        let Some(at) = self.expires_at else {
            return Ok(());
        };
        let after = at - now;
        if after < time::Duration::seconds(MIN_TTL_SECS) || after > time::Duration::days(365) {
            return Err(Error::InvalidExpiry {
                expires_at_ms: crate::json::millis::to_millis(at),
                created_ms: crate::json::millis::to_millis(now),
            });
        }
        Ok(())
    }

    pub(crate) fn effective_ttl(&self) -> i64 {
        self.ttl.unwrap_or(if self.currency.is_fiat() {
            DEFAULT_FIAT_TTL_SECS
        } else {
            MAX_TTL_SECS
        })
    }

    /// Checks every field; returns the amount at its currency's scale.
    pub(crate) fn validate(&self) -> Result<Decimal, Error> {
        let amount = self.currency.validate_amount(self.amount)?;
        let tol = self.amount_paid_tolerance.unwrap_or(Decimal::ZERO);
        if tol < Decimal::ZERO || tol >= Decimal::ONE_HUNDRED {
            return Err(Error::InvalidTolerance(tol));
        }
        let ttl = self.effective_ttl();
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&ttl) {
            return Err(Error::InvalidTtl(ttl));
        }
        if self.payment_methods.is_empty() {
            return Err(Error::NoPaymentMethod);
        }
        if self.success_url.is_some() && self.success_message.is_some() {
            return Err(Error::SuccessUrlAndMessage);
        }
        check_url("success_url", self.success_url.as_deref())?;
        check_url("cancel_url", self.cancel_url.as_deref())?;
        check_text(
            "description",
            self.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
            true,
        )?;
        check_text(
            "success_message",
            self.success_message.as_deref(),
            MAX_DESCRIPTION_CHARS,
            true,
        )?;
        check_text(
            "statement_descriptor",
            self.statement_descriptor.as_deref(),
            MAX_TITLE_CHARS,
            false,
        )?;
        check_text("source", self.source.as_deref(), MAX_TAG_CHARS, false)?;
        check_text("source_id", self.source_id.as_deref(), MAX_TAG_CHARS, false)?;
        self.branding_ref().validate()?;
        self.metadata.validate()?;
        Ok(amount)
    }
}
