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
    /// Funds beyond the amount arrived (flag).
    Overpaid => "checkout_session.overpaid",
    /// Funds arrived after the session was deactivated (flag).
    LatePayment => "checkout_session.late_payment",
    /// Funds arrived for a quote after it expired and count at its rate (flag: rate risk).
    PaidAfterExpiry => "checkout_session.paid_after_expiry",
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
/// It names what changed; the service wraps it into a webhook [`Event`] with an
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

/// The API version event payloads are shaped after (Speed's).
pub const API_VERSION: &str = "2022-10-15";

/// An event as webhooks deliver it: Speed's envelope with a snapshot of the object.
///
/// `data.object` holds the object's JSON exactly as it was when the event happened (a
/// session without its transfer list, a payment, or a link), kept as raw JSON text so
/// amounts are never re-parsed through floating point.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's id (`evt_…`), also the webhook message id: stable across retries.
    pub id: crate::id::EventId,
    /// What happened.
    pub event_type: EventType,
    /// The session concerned (`None` for link events).
    pub session_id: Option<crate::id::SessionId>,
    /// Live or test mode.
    pub livemode: bool,
    /// When it happened.
    pub created: OffsetDateTime,
    /// The object's JSON at that moment.
    pub object: Box<serde_json::value::RawValue>,
}

#[derive(Serialize, Deserialize)]
struct EventData {
    object: Box<serde_json::value::RawValue>,
}

#[derive(Serialize, Deserialize)]
struct EventWire {
    id: crate::id::EventId,
    object: String,
    api_version: String,
    event_type: EventType,
    #[serde(default)]
    session_id: Option<crate::id::SessionId>,
    data: EventData,
    livemode: bool,
    #[serde(with = "crate::json::millis")]
    created: OffsetDateTime,
}

impl Event {
    /// Wraps a session's event with its id and a snapshot of the session (or, for payment
    /// events, of the payment).
    pub fn for_session(
        id: crate::id::EventId,
        event: &SessionEvent,
        session: &crate::session::CheckoutSession,
    ) -> Self {
        Self::all_for_session(std::slice::from_ref(event), session, || id)
            .pop()
            .unwrap_or_else(|| Self::envelope(id, event, session, "null".into()))
    }

    /// Wraps all the events of one change, with ids from `next_id`. The session's
    /// snapshot is serialised once and shared by its events (they describe the same state).
    pub fn all_for_session(
        events: &[SessionEvent],
        session: &crate::session::CheckoutSession,
        mut next_id: impl FnMut() -> crate::id::EventId,
    ) -> Vec<Self> {
        let mut head: Option<String> = None;
        events
            .iter()
            .map(|e| {
                let payment_json = e
                    .payment_id
                    .filter(|_| e.event_type.is_payment_event())
                    .and_then(|p| session.payment_json(p));
                let json = match payment_json {
                    Some(json) => json,
                    None => head.get_or_insert_with(|| session.event_json()).clone(),
                };
                Self::envelope(next_id(), e, session, json)
            })
            .collect()
    }

    fn envelope(
        id: crate::id::EventId,
        event: &SessionEvent,
        session: &crate::session::CheckoutSession,
        json: String,
    ) -> Self {
        Self {
            id,
            event_type: event.event_type.clone(),
            session_id: Some(session.id()),
            livemode: session.livemode(),
            created: event.at,
            object: raw_or_null(json),
        }
    }

    /// The event as JSON: `{"id", "object": "events", "api_version", "event_type",
    /// "data": {"object": …}, "livemode", "created"}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads an event from JSON (unknown fields and event types are tolerated).
    pub fn from_json(text: &str) -> Result<Self, crate::Error> {
        serde_json::from_str(text).map_err(|e| crate::Error::Json(e.to_string()))
    }
}

pub(crate) fn raw_or_null(json: String) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(json).unwrap_or_else(|_| {
        // Our own serializers produce valid JSON; `null` keeps the envelope valid regardless.
        serde_json::value::RawValue::from_string("null".to_owned()).unwrap_or_default()
    })
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EventWire {
            id: self.id,
            object: "events".into(),
            api_version: API_VERSION.into(),
            event_type: self.event_type.clone(),
            session_id: self.session_id,
            data: EventData {
                object: self.object.clone(),
            },
            livemode: self.livemode,
            created: self.created,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = EventWire::deserialize(d)?;
        Ok(Self {
            id: w.id,
            event_type: w.event_type,
            session_id: w.session_id,
            livemode: w.livemode,
            created: w.created,
            object: w.data.object,
        })
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.event_type == other.event_type
            && self.session_id == other.session_id
            && self.livemode == other.livemode
            && self.created == other.created
            && self.object.get() == other.object.get()
    }
}

impl Eq for Event {}
