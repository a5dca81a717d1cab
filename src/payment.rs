//! Payments: the rate-locked quotes of a checkout session.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;
use crate::hash::PaymentHash;
use crate::id::PaymentId;
use crate::money::{ExchangeRate, Msats, Sats};

/// Where a payment stands. `Unpaid` is the only state that changes; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaymentState {
    /// Open: its quote is valid and nothing has arrived yet.
    Unpaid,
    /// Funds arrived for it, partial or full.
    Paid {
        /// When the first funds arrived.
        paid_at: OffsetDateTime,
    },
    /// Its quote ran out before any funds arrived.
    Expired {
        /// When it was marked expired (at or after `expires_at`).
        expired_at: OffsetDateTime,
    },
    /// Its session was deactivated while it was unpaid.
    Cancelled {
        /// When the session was deactivated.
        cancelled_at: OffsetDateTime,
    },
}

impl PaymentState {
    /// The status name as in JSON.
    pub fn status(&self) -> PaymentStatus {
        match self {
            Self::Unpaid => PaymentStatus::Unpaid,
            Self::Paid { .. } => PaymentStatus::Paid,
            Self::Expired { .. } => PaymentStatus::Expired,
            Self::Cancelled { .. } => PaymentStatus::Cancelled,
        }
    }

    /// Whether the payment is still open.
    pub fn is_unpaid(&self) -> bool {
        matches!(self, Self::Unpaid)
    }
}

/// A payment's status, as Speed names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PaymentStatus {
    /// Open.
    Unpaid,
    /// Funds arrived.
    Paid,
    /// The quote ran out.
    Expired,
    /// The session was deactivated.
    Cancelled,
}

impl PaymentStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unpaid => "unpaid",
            Self::Paid => "paid",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One rate-locked quote: `due` in the base currency, priced at `target` sats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub(crate) id: PaymentId,
    pub(crate) due: Decimal,
    /// `due` in minor units of the base currency (derived, for exact integer crediting).
    pub(crate) due_minor: u128,
    pub(crate) target: Sats,
    pub(crate) rate: ExchangeRate,
    pub(crate) request: PaymentRequest,
    pub(crate) state: PaymentState,
    pub(crate) created: OffsetDateTime,
    /// When its state or the funds attributed to it last changed.
    pub(crate) modified: OffsetDateTime,
    pub(crate) expires_at: OffsetDateTime,
}

impl Payment {
    /// The payment's id.
    pub fn id(&self) -> PaymentId {
        self.id
    }

    /// The amount of the base currency this quote covers (the session's due when issued).
    pub fn due(&self) -> Decimal {
        self.due
    }

    /// What the quote asks for, in sats (`ceil(due × rate)`).
    pub fn target(&self) -> Sats {
        self.target
    }

    /// The quote's target in msats.
    pub fn target_msats(&self) -> Msats {
        self.target.to_msats()
    }

    /// The locked exchange rate.
    pub fn rate(&self) -> &ExchangeRate {
        &self.rate
    }

    /// The invoice and/or address to pay.
    pub fn request(&self) -> &PaymentRequest {
        &self.request
    }

    /// The state, with its data.
    pub fn state(&self) -> PaymentState {
        self.state
    }

    /// The status name.
    pub fn status(&self) -> PaymentStatus {
        self.state.status()
    }

    /// When the quote was issued.
    pub fn created(&self) -> OffsetDateTime {
        self.created
    }

    /// When its status or the funds attributed to it last changed.
    pub fn modified(&self) -> OffsetDateTime {
        self.modified
    }

    /// When the quote runs out (`created + ttl`).
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// Whether the quote is unpaid and past its expiry at `now`.
    pub fn is_due_to_expire(&self, now: OffsetDateTime) -> bool {
        self.state.is_unpaid() && now >= self.expires_at
    }
}

/// A BOLT11 invoice issued for one quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightningInvoice {
    /// The BOLT11 string (`lnbc…`).
    pub payment_request: String,
    /// The invoice's payment hash: a payment to it is reported under this key.
    pub payment_hash: PaymentHash,
    /// When the invoice stops being payable; never after its quote's `expires_at`.
    #[serde(with = "crate::json::millis")]
    pub expires_at: OffsetDateTime,
}

impl LightningInvoice {
    /// Checks what the invoice's own string says against a quote: a BOLT11 invoice
    /// (feature `lightning`) must ask exactly `target`, pay to the stated
    /// [`payment_hash`](Self::payment_hash) and expire at the stated
    /// [`expires_at`](Self::expires_at); a test invoice (`lntest<msats>n1…`) must name
    /// `target`; and the invoice must expire no later than `quote_expires_at`. Issuing a
    /// quote runs this check; generators and their tests can run it too.
    ///
    /// ```
    /// use bitcoin_checkout::{Error, LightningInvoice, Msats, OffsetDateTime};
    /// use bitcoin_checkout::request::Hash32;
    ///
    /// let invoice = LightningInvoice {
    ///     payment_request: "lntest1000n1x".into(),
    ///     payment_hash: Hash32::from_bytes([7; 32]),
    ///     expires_at: OffsetDateTime::UNIX_EPOCH,
    /// };
    /// assert!(invoice.check_for_quote(Msats::new(1000), OffsetDateTime::UNIX_EPOCH).is_ok());
    /// assert!(matches!(
    ///     invoice.check_for_quote(Msats::new(1_000_000), OffsetDateTime::UNIX_EPOCH),
    ///     Err(Error::InvoiceMismatch { field: "amount_msat", .. })
    /// ));
    /// ```
    pub fn check_for_quote(
        &self,
        target: Msats,
        quote_expires_at: OffsetDateTime,
    ) -> Result<(), Error> {
        crate::invoice::check(self, target, quote_expires_at)
    }
}

/// What a customer can pay for one quote: a Lightning invoice, an on-chain address, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// The quote's own invoice, when Lightning is enabled.
    pub lightning: Option<LightningInvoice>,
    /// The session's on-chain address, when on-chain is enabled (shared by its quotes).
    pub onchain_address: Option<String>,
}
