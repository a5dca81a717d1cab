//! Outbox rows without repeated snapshots: the events of one commit share their objects.
//!
//! A commit's events describe one state: a session's events all carry the same snapshot of
//! the session, and its payment events carry one of that snapshot's payments, byte for byte
//! as the snapshot lists it. So the first event with a given object keeps it (its `body`
//! is the whole [`Event::to_json`]); every later one is *thin*: its body is the envelope
//! with `"object": null`, `carrier` names the event that holds the object and `part`, for a
//! payment event, the payment to take from the carrier's session (its `payments` list).
//! Reading a thin row joins its carrier and puts the object back, so what a reader gets is
//! the event as it was committed (a conformance check compares them).
//!
//! Rows written before this (no carrier) read as they always did.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::rows::EventRow;
use super::{Corruption, StoreError, StoredEvent};
use crate::json::millis;
use crate::outbox::{Event, raw_or_null};

/// The rows of one commit's events, filed under `session_id`, sharing their objects.
pub(super) fn commit_event_rows(events: &[Event], session_id: Option<&str>) -> Vec<EventRow> {
    // Each distinct object, with the first event that has it and the payments it lists.
    let mut distinct: Vec<(&str, &Event, Listing<'_>)> = Vec::new();
    for event in events {
        let object = event.object.get();
        if !distinct.iter().any(|(o, _, _)| *o == object) {
            distinct.push((object, event, listed_payments(object)));
        }
    }
    // Where an object is found: as another object's listed payment (a part), or whole.
    let part_of = |object: &str| {
        distinct.iter().find_map(|(_, carrier, payments)| {
            payments
                .iter()
                .find(|(_, json)| *json == object)
                .map(|(id, _)| (carrier.id.to_string(), Some(id.clone())))
        })
    };
    events
        .iter()
        .map(|event| {
            let object = event.object.get();
            if let Some((carrier, part)) = part_of(object) {
                return thin_row(event, session_id, carrier, part);
            }
            match distinct.iter().find(|(o, _, _)| *o == object) {
                Some((_, carrier, _)) if carrier.id != event.id => {
                    thin_row(event, session_id, carrier.id.to_string(), None)
                }
                _ => EventRow::new(event, session_id),
            }
        })
        .collect()
}

fn thin_row(
    event: &Event,
    session_id: Option<&str>,
    carrier: String,
    part: Option<String>,
) -> EventRow {
    // The envelope alone: the object is the carrier's (not copied to be dropped).
    let envelope = Event {
        id: event.id,
        event_type: event.event_type.clone(),
        session_id: event.session_id,
        livemode: event.livemode,
        created: event.created,
        object: raw_or_null("null".to_owned()),
    };
    EventRow {
        id: event.id.to_string(),
        session_id: session_id.map(str::to_owned),
        created: millis::to_millis(event.created),
        event_type: event.event_type.as_str().to_owned(),
        body: envelope.to_json(),
        carrier: Some(carrier),
        part,
    }
}

#[derive(Deserialize)]
struct Listed<'a> {
    #[serde(borrow, default)]
    payments: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Id<'a> {
    #[serde(borrow)]
    id: &'a str,
}

/// The payments a session object lists, as (id, exact JSON).
type Listing<'a> = Vec<(String, &'a str)>;

/// The payments a session object lists; none for another object.
fn listed_payments(object: &str) -> Listing<'_> {
    let Ok(listed) = serde_json::from_str::<Listed<'_>>(object) else {
        return Vec::new();
    };
    listed
        .payments
        .into_iter()
        .filter_map(|raw| {
            let id = serde_json::from_str::<Id<'_>>(raw.get())
                .ok()?
                .id
                .to_owned();
            Some((id, raw.get()))
        })
        .collect()
}

/// An outbox row as the SQL stores read it: its columns and its carrier's body.
#[derive(Debug)]
pub(super) struct FetchedEvent {
    pub(super) seq: i64,
    pub(super) body: String,
    pub(super) carrier: Option<String>,
    pub(super) part: Option<String>,
    /// `None` when the row has no carrier, or its carrier is missing.
    pub(super) carrier_body: Option<String>,
}

impl FetchedEvent {
    /// The event, with its object put back.
    pub(super) fn decode(&self) -> Result<StoredEvent, StoreError> {
        decode(
            self.seq,
            &self.body,
            self.carrier.as_deref(),
            self.part.as_deref(),
            self.carrier_body.as_deref(),
        )
    }
}

/// What every event read selects from `events e` (both SQL dialects): the row, and the
/// body of its carrier (by the `events_by_id` index).
macro_rules! event_columns {
    () => {
        "SELECT e.seq, e.body, e.carrier, e.part, \
         (SELECT c.body FROM events c WHERE c.id = e.carrier ORDER BY c.seq LIMIT 1) \
         FROM events e "
    };
}
pub(super) use event_columns;

/// An outbox row read back with its carrier's body (`carrier_body`, `None` when the row
/// has no carrier or the carrier is missing).
fn decode(
    seq: i64,
    body: &str,
    carrier: Option<&str>,
    part: Option<&str>,
    carrier_body: Option<&str>,
) -> Result<StoredEvent, StoreError> {
    let mut stored = super::rows::decode_event(seq, body)?;
    let Some(carrier) = carrier else {
        return Ok(stored);
    };
    let row = || format!("event {seq}");
    let carrier_body = carrier_body.ok_or_else(|| {
        Corruption::undecodable(row(), format!("its object's event {carrier} is missing"))
    })?;
    let holder = Event::from_json(carrier_body).map_err(|e| Corruption::undecodable(row(), e))?;
    let object = match part {
        None => holder.object.get().to_owned(),
        Some(payment) => listed_payments(holder.object.get())
            .into_iter()
            .find(|(id, _)| id == payment)
            .map(|(_, json)| json.to_owned())
            .ok_or_else(|| {
                Corruption::undecodable(
                    row(),
                    format!("event {carrier} does not list payment {payment}"),
                )
            })?,
    };
    stored.event.object = raw_or_null(object);
    Ok(stored)
}
