//! Events: what happened, named as Speed names it, plus the flags this crate adds for money
//! nobody expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::id::PaymentId;
use crate::money::Msats;
use crate::transfer::TransferKey;

macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// The type of an event (`event_type` in JSON).
        #[derive(Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum EventType {
            $($(#[$doc])* $variant,)*
            /// A type from a newer API version, kept as written.
            Unknown(String),
        }

        impl EventType {
            /// Every known type.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The name as in JSON, e.g. `checkout_session.paid`.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Unknown(s) => s,
                }
            }
        }

        impl FromStr for EventType {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($name => Self::$variant,)*
                    other => Self::Unknown(other.to_owned()),
                })
            }
        }
    };
}

event_types! {
    /// A session was created.
    CheckoutSessionCreated => "checkout_session.created",
    /// A session's counted funds reached its amount within the tolerance.
    CheckoutSessionPaid => "checkout_session.paid",
    /// One of a session's payments received funds (possibly partial).
    CheckoutSessionPaymentPaid => "checkout_session.payment_paid",
    /// A session was deactivated.
    CheckoutSessionDeactivated => "checkout_session.deactivated",
    /// A session's mutable fields changed.
    CheckoutSessionUpdated => "checkout_session.updated",
    /// A transfer was first seen (counted or pending confirmation).
    TransferReceived => "checkout_session.transfer_received",
    /// A pending on-chain transfer got enough confirmations to count.
    TransferConfirmed => "checkout_session.transfer_confirmed",
    /// A transfer gained confirmations (or an RBF signal) without changing what counts.
    TransferUpdated => "checkout_session.transfer_updated",
    /// A transfer was reversed (double spend, reorg) and no longer counts.
    TransferReversed => "checkout_session.transfer_reversed",
    /// A reversed on-chain transfer is back in the best chain (the reorganisation that
    /// took it away was undone) and counts again once confirmed enough.
    TransferRestored => "checkout_session.transfer_restored",
    /// A counted on-chain transfer lost confirmations (its block was reorganised away) and
    /// is pending again until it is confirmed enough.
    TransferUnconfirmed => "checkout_session.transfer_unconfirmed",
    /// Funds beyond the amount arrived (flag).
    Overpaid => "checkout_session.overpaid",
    /// Funds arrived after the session was deactivated (flag).
    LatePayment => "checkout_session.late_payment",
    /// Funds arrived for a quote after it expired and count at its rate (flag: rate risk).
    PaidAfterExpiry => "checkout_session.paid_after_expiry",
    /// A transfer arrived beyond the session's transfer cap: it is held apart and flagged
    /// (`held`), never counted. Raised at the first held transfer only; later ones change
    /// the session's `held_transfers` totals without an event each.
    TransfersHeld => "checkout_session.transfers_held",
    /// The merchant recorded what was done with flagged money (refunded or accepted).
    FlagResolved => "checkout_session.flag_resolved",
    /// A quote was issued.
    PaymentCreated => "payment.created",
    /// A quote received its first funds.
    PaymentPaid => "payment.paid",
    /// A quote ran out unpaid.
    PaymentExpired => "payment.expired",
    /// A quote was cancelled because its session was deactivated.
    PaymentCancelled => "payment.cancelled",
    /// A checkout link was created.
    CheckoutLinkCreated => "checkout_link.created",
    /// A checkout link's session was paid.
    CheckoutLinkPaid => "checkout_link.paid",
    /// A checkout link was deactivated.
    CheckoutLinkDeactivated => "checkout_link.deactivated",
    /// A payment link was created.
    PaymentLinkCreated => "payment_link.created",
    /// A payment link was deactivated.
    PaymentLinkDeactivated => "payment_link.deactivated",
    /// The dispatcher disabled a webhook endpoint on its own: it answered `410 Gone`, or
    /// it failed without a single 2xx for the breaker's `disable_after` (5 days by
    /// default). The object is the endpoint as the API shows it (never its secret).
    WebhookEndpointDisabled => "webhook_endpoint.disabled",
}

impl EventType {
    /// Whether the event's object is a payment (else a session or link).
    pub fn is_payment_event(&self) -> bool {
        self.as_str().starts_with("payment.")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let Ok(t) = s.parse();
        Ok(t)
    }
}

/// One thing that happened to a session, as returned by its commands.
///
/// It names what changed; the service wraps it into a webhook [`Event`](crate::outbox::Event) with an
/// id and a snapshot of the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// What happened.
    pub event_type: EventType,
    /// When (the `now` of the command).
    #[serde(with = "crate::json::millis")]
    pub at: OffsetDateTime,
    /// The payment concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<PaymentId>,
    /// The transfer concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferKey>,
    /// The amount concerned (transfer amount, or the flagged amount), if any.
    #[serde(
        default,
        rename = "amount_msat",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount: Option<Msats>,
}

impl SessionEvent {
    pub(crate) fn new(event_type: EventType, at: OffsetDateTime) -> Self {
        Self {
            event_type,
            at,
            payment_id: None,
            transfer: None,
            amount: None,
        }
    }

    pub(crate) fn payment(mut self, id: PaymentId) -> Self {
        self.payment_id = Some(id);
        self
    }

    pub(crate) fn transfer(mut self, key: TransferKey, amount: Msats) -> Self {
        self.transfer = Some(key);
        self.amount = Some(amount);
        self
    }

    pub(crate) fn amount(mut self, amount: Msats) -> Self {
        self.amount = Some(amount);
        self
    }

    /// One readable line for a session's timeline.
    pub fn describe(&self) -> String {
        let mut line = format!("{}", self.event_type);
        if let Some(p) = self.payment_id {
            line.push_str(&format!(" payment={p}"));
        }
        if let Some(t) = self.transfer {
            line.push_str(&format!(" transfer={t}"));
        }
        if let Some(a) = self.amount {
            line.push_str(&format!(" amount={a}"));
        }
        line
    }
}
