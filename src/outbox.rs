//! The outbox's records: events as webhooks deliver them, in Speed's envelope with a
//! snapshot of the object they concern.
//!
//! This is the top of the core: it wraps the [`SessionEvent`]s a command returned with an
//! id and the JSON of the session, payment or link as it was at that moment. Stores keep
//! these envelopes in their outbox; the webhook dispatcher sends them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::event::{EventType, SessionEvent};

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
    pub object: Box<RawValue>,
}

#[derive(Serialize, Deserialize)]
struct EventData {
    object: Box<RawValue>,
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
            .unwrap_or_else(|| Self::envelope(id, event, session, null()))
    }

    /// Wraps all the events of one change, with ids from `next_id`. Each object is
    /// serialised once and shared by the events that carry it (they describe one state):
    /// the session's snapshot, and each payment an event is about.
    pub fn all_for_session(
        events: &[SessionEvent],
        session: &crate::session::CheckoutSession,
        mut next_id: impl FnMut() -> crate::id::EventId,
    ) -> Vec<Self> {
        let mut head: Option<Box<RawValue>> = None;
        let mut payments: Vec<(crate::id::PaymentId, Box<RawValue>)> = Vec::new();
        events
            .iter()
            .map(|e| {
                let payment = e
                    .payment_id
                    .filter(|_| e.event_type.is_payment_event())
                    .and_then(|p| match payments.iter().find(|(id, _)| *id == p) {
                        Some((_, raw)) => Some(raw.clone()),
                        None => {
                            let raw = session.payment_raw(p)?;
                            payments.push((p, raw.clone()));
                            Some(raw)
                        }
                    });
                let object = match payment {
                    Some(raw) => raw,
                    None => head
                        .get_or_insert_with(|| session.event_raw().unwrap_or_else(null))
                        .clone(),
                };
                Self::envelope(next_id(), e, session, object)
            })
            .collect()
    }

    fn envelope(
        id: crate::id::EventId,
        event: &SessionEvent,
        session: &crate::session::CheckoutSession,
        object: Box<RawValue>,
    ) -> Self {
        Self {
            id,
            event_type: event.event_type.clone(),
            session_id: Some(session.id()),
            livemode: session.livemode(),
            created: event.at,
            object,
        }
    }

    /// The event as JSON: `{"id", "object": "events", "api_version", "event_type",
    /// "data": {"object": …}, "livemode", "created"}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads an event from JSON (unknown fields and event types are tolerated: the
    /// envelope is read for delivery, its object kept as it is; read that with
    /// [`ObjectSnapshot::of`](crate::snapshot::ObjectSnapshot::of)).
    pub fn from_json(text: &str) -> Result<Self, crate::Error> {
        crate::json::read(text)
    }
}

/// JSON `null` as a raw value.
pub(crate) fn null() -> Box<RawValue> {
    raw_or_null("null".to_owned())
}

pub(crate) fn raw_or_null(json: String) -> Box<RawValue> {
    RawValue::from_string(json).unwrap_or_else(|_| {
        // Our own serializers produce valid JSON; `null` keeps the envelope valid regardless.
        RawValue::from_string("null".to_owned()).unwrap_or_default()
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
