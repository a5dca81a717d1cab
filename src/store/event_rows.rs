//! Outbox rows without repeated snapshots: the events of one commit share their objects.
//!
//! A commit's events describe one state: a session's events all carry the same snapshot of
//! the session, and its payment events carry one of that snapshot's payments, byte for byte
//! as the snapshot lists it. So the first event with a given object keeps it (its `body`
//! is the whole [`Event::to_json`]); every later one is *thin*: `carrier` names the event
//! that holds the object and `part`, for a payment event, the payment to take from the
//! carrier's session (its `payments` list), and its body holds only what the row's columns
//! do not, `{"event_type":…,"livemode":…}` (about 45 bytes instead of a 250-byte
//! envelope; a row naming its object by version, ADR 22, keeps only `{"livemode":…}`,
//! SQLite's `event_type` column saying the type). Reading a thin row rebuilds its envelope
//! from its columns, joins its carrier and puts the object back, so what a reader gets is the event as it was committed (a
//! conformance check compares them).
//!
//! Rows written before (no carrier, or a thin row with its envelope and `"object": null`)
//! read as they always did; an event filed under another session than its own (a link's)
//! keeps its envelope, since its row's `session_id` is not its own.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::rows::EventRow;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use super::{Corruption, StoreError, StoredEvent};
use crate::json::millis;
use crate::outbox::{Event, null};

/// The rows of one commit's events, filed under `session_id`, sharing their objects.
pub(super) fn commit_event_rows(events: &[Event], session_id: Option<&str>) -> Vec<EventRow> {
    // Each distinct object, with the first event that has it.
    let mut distinct: Vec<(&str, &Event)> = Vec::new();
    for event in events {
        let object = event.object.get();
        if !distinct.iter().any(|(o, _)| *o == object) {
            distinct.push((object, event));
        }
    }
    // Where an object is found: as a payment another object lists (a part), or whole.
    let part_of = |object: &str| {
        distinct.iter().find_map(|(container, carrier)| {
            listed_in(container, object).map(|id| (carrier.id.to_string(), Some(id)))
        })
    };
    events
        .iter()
        .map(|event| {
            let object = event.object.get();
            if let Some((carrier, part)) = part_of(object) {
                return thin_row(event, session_id, carrier, part);
            }
            match distinct.iter().find(|(o, _)| *o == object) {
                Some((_, carrier)) if carrier.id != event.id => {
                    thin_row(event, session_id, carrier.id.to_string(), None)
                }
                _ => EventRow::new(event, session_id),
            }
        })
        .collect()
}

/// The id of `payment` if `container` (a session's object) lists it byte for byte.
///
/// A commit's objects are a session's snapshot and some of its payments, so this is asked
/// a few times per commit, and answered without parsing: a payment object's first field is
/// its id (as the payment serialiser writes it), so the listing holds it where the text
/// `{"id":"<id>"` starts in the session's JSON (JSON text inside a string is escaped, and
/// no other field holds a whole payment object) and the whole object follows. Anything
/// else is settled by parsing the listing.
fn listed_in(container: &str, payment: &str) -> Option<String> {
    if container.len() <= payment.len() {
        return None;
    }
    let leading = payment
        .strip_prefix(r#"{"id":""#)
        .and_then(|rest| rest.find('"'))
        .map(|end| &payment[..end + 8])
        .filter(|leading| !leading.contains('\\'));
    let Some(leading) = leading else {
        return listed_payments(container)
            .into_iter()
            .find(|(_, json)| *json == payment)
            .map(|(id, _)| id);
    };
    container
        .match_indices(leading)
        .any(|(at, _)| container[at..].starts_with(payment))
        .then(|| leading[7..leading.len() - 1].to_owned())
}

/// The rows of a commit's events when its session object is kept by the session's rows
/// ([`CommitRows::with_live_object`](super::rows::CommitRows::with_live_object)): each
/// event whose object is `object` or one of the payments it lists names it by `version`
/// (and `part`); any other keeps its object. `None` when no event names it.
pub(super) fn live_event_rows(
    events: &[Event],
    session_id: &str,
    object: &str,
    listing: &super::live_object::Listing<'_>,
    version: i64,
) -> Option<Vec<EventRow>> {
    let mut named = false;
    let rows = events
        .iter()
        .map(|event| {
            let own = event.object.get();
            let part = if own == object {
                None
            } else {
                match listing.payments.iter().find(|(_, text)| *text == own) {
                    Some((id, _)) => Some((*id).to_owned()),
                    None => return EventRow::new(event, Some(session_id)),
                }
            };
            named = true;
            EventRow {
                id: event.id.to_string(),
                session_id: Some(session_id.to_owned()),
                created: millis::to_millis(event.created),
                event_type: event.event_type.as_str().to_owned(),
                body: thin_body(event, Some(session_id), Typed::ByColumn),
                carrier: None,
                part,
                object_version: Some(version),
            }
        })
        .collect();
    named.then_some(rows)
}

fn thin_row(
    event: &Event,
    session_id: Option<&str>,
    carrier: String,
    part: Option<String>,
) -> EventRow {
    EventRow {
        id: event.id.to_string(),
        session_id: session_id.map(str::to_owned),
        created: millis::to_millis(event.created),
        event_type: event.event_type.as_str().to_owned(),
        body: thin_body(event, session_id, Typed::InBody),
        carrier: Some(carrier),
        part,
        object_version: None,
    }
}

/// Where a thin row's type is read from.
#[derive(Clone, Copy)]
enum Typed {
    /// Its body (an outbox without a type column reads it so).
    InBody,
    /// The row's `event_type` column (SQLite's).
    ByColumn,
}

/// What a row whose object is elsewhere keeps: what its columns do not hold (the envelope
/// is rebuilt from them), or the envelope with a `null` object for an event filed under
/// another session than its own (a link's event).
fn thin_body(event: &Event, session_id: Option<&str>, typed: Typed) -> String {
    let filed_under_its_own = event.session_id.map(|s| s.to_string()).as_deref() == session_id;
    if filed_under_its_own {
        serde_json::to_string(&ThinBody {
            event_type: matches!(typed, Typed::InBody).then(|| event.event_type.as_str().into()),
            livemode: event.livemode,
        })
        .unwrap_or_default()
    } else {
        // The envelope alone: the object is the carrier's (not copied to be dropped).
        Event {
            id: event.id,
            event_type: event.event_type.clone(),
            session_id: event.session_id,
            livemode: event.livemode,
            created: event.created,
            object: null(),
        }
        .to_json()
    }
}

/// The body of a thin row filed under its own session: what the row's columns (`id`,
/// `session_id`, `created`) do not say. Its object is the carrier's.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThinBody<'a> {
    /// Written by earlier versions only: the row's `event_type` column says it.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    event_type: Option<std::borrow::Cow<'a, str>>,
    livemode: bool,
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
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug)]
pub(super) struct FetchedEvent {
    pub(super) seq: i64,
    pub(super) body: String,
    pub(super) carrier: Option<String>,
    pub(super) part: Option<String>,
    /// `None` when the row has no carrier, or its carrier is missing.
    pub(super) carrier_body: Option<String>,
    /// The row's `id`, `session_id` and `created` columns (a thin row's envelope).
    pub(super) id: String,
    pub(super) session_id: Option<String>,
    pub(super) created: i64,
    /// The row's `object_version` column (ADR 22).
    pub(super) object_version: Option<i64>,
    /// The row's `event_type` column (a thin row's type when its body does not say it;
    /// `None` where the outbox has no such column).
    pub(super) event_type: Option<String>,
    /// With an `object_version`: the session's object at that version, which the store
    /// found for the row before decoding it (`None`: not found).
    pub(super) object: Option<std::sync::Arc<str>>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl FetchedEvent {
    /// The event, with its object put back.
    pub(super) fn decode(&self) -> Result<StoredEvent, StoreError> {
        let row = || format!("event {}", self.seq);
        let (whole, holder) = if let Some(version) = self.object_version {
            let object = self.object.as_deref().ok_or_else(|| {
                let session = self.session_id.as_deref().unwrap_or("?");
                let missing = format!("the object of session {session} at version {version}");
                Corruption::undecodable(row(), format!("{missing} is missing"))
            })?;
            (object.to_owned(), format!("session version {version}"))
        } else if let Some(carrier) = self.carrier.as_deref() {
            let carrier_body = self.carrier_body.as_deref().ok_or_else(|| {
                Corruption::undecodable(row(), format!("its object's event {carrier} is missing"))
            })?;
            let event =
                Event::from_json(carrier_body).map_err(|e| Corruption::undecodable(row(), e))?;
            (event.object.get().to_owned(), format!("event {carrier}"))
        } else {
            return super::rows::decode_event(self.seq, &self.body);
        };
        let mut stored = match serde_json::from_str::<ThinBody<'_>>(&self.body) {
            Ok(thin) => self
                .envelope(thin)
                .map_err(|e| Corruption::undecodable(row(), e))?,
            // A thin row keeping its envelope (written so before, or a link's event).
            Err(_) => super::rows::decode_event(self.seq, &self.body)?,
        };
        let object = match self.part.as_deref() {
            None => whole,
            Some(payment) => listed_payments(&whole)
                .into_iter()
                .find(|(id, _)| id == payment)
                .map(|(_, json)| json.to_owned())
                .ok_or_else(|| {
                    Corruption::undecodable(
                        row(),
                        format!("{holder} does not list payment {payment}"),
                    )
                })?,
        };
        stored.event.object = crate::outbox::raw_or_null(object);
        Ok(stored)
    }

    /// A thin row's envelope, from its columns and its body (the object left `null`).
    fn envelope(&self, thin: ThinBody<'_>) -> Result<StoredEvent, String> {
        let seq = u64::try_from(self.seq).map_err(|_| "negative sequence number".to_owned())?;
        let parse = |what: &str, e: &dyn std::fmt::Display| format!("its {what}: {e}");
        let session_id = match self.session_id.as_deref() {
            Some(s) => Some(s.parse().map_err(|e| parse("session id", &e))?),
            None => None,
        };
        let event = Event {
            id: self.id.parse().map_err(|e| parse("id", &e))?,
            event_type: thin
                .event_type
                .as_deref()
                .or(self.event_type.as_deref())
                .ok_or("its type is missing")?
                .parse()
                .map_err(|e| parse("type", &e))?,
            session_id,
            livemode: thin.livemode,
            created: millis::from_millis(self.created)?,
            object: null(),
        };
        Ok(StoredEvent { seq, event })
    }
}

/// What every event read selects from `events e` (both SQL dialects), in the order of
/// [`FetchedEvent`]'s fields: the row, the body of its carrier (by the `events_by_id`
/// index), the columns a thin row's envelope is rebuilt from, and the session version
/// whose object it names.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! event_columns {
    // PostgreSQL's outbox has no type column: its thin rows keep the type in their body.
    () => {
        $crate::store::event_rows::event_columns!("NULL")
    };
    ($event_type:literal) => {
        concat!(
            "SELECT e.seq, e.body, e.carrier, e.part, \
             (SELECT c.body FROM events c WHERE c.id = e.carrier ORDER BY c.seq LIMIT 1), \
             e.id, e.session_id, e.created, e.object_version, ",
            $event_type,
            " FROM events e "
        )
    };
}
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) use event_columns;
