//! The in-memory outbox: events in commit order, most of them without their JSON.
//!
//! An event's payload is the session (or one of its payments) as it was right after the
//! change. While the session has not changed again that is exactly its current state, so
//! for a new session the store keeps only the envelopes of its creation events and renders
//! their payloads when they are read. Before the session's first change is applied, those
//! events are rendered and kept whole (`Inner::settle`); the events of later changes are
//! kept whole from the start, as is any payload the store could not reproduce byte for
//! byte. So a million fresh sessions carry no JSON at all, and what a reader sees is the
//! same as if every payload had been stored.

use time::OffsetDateTime;

use super::{Inner, codec};
use crate::event::EventType;
use crate::id::{EventId, PaymentId};
use crate::outbox::Event;
use crate::session::CheckoutSession;
use crate::store::{StoreError, StoredEvent};

/// One event of the outbox.
pub(super) enum Record {
    /// Its payload is its session's current state: the session's JSON, or one payment's.
    Current {
        id: EventId,
        slot: u32,
        created: OffsetDateTime,
        event_type: EventType,
        payment: Option<PaymentId>,
    },
    /// Stored whole.
    Whole(Box<Event>),
    /// Pruned ([`Store::prune_events`](crate::store::Store::prune_events)): below the
    /// store's watermark, never read.
    Pruned,
}

/// How a committed event is kept.
pub(super) enum Payload {
    Session,
    Payment(PaymentId),
    Whole,
}

/// Says whether `event`'s payload is what `session` renders now (so it need not be kept).
pub(super) struct Classifier<'a> {
    session: &'a CheckoutSession,
    /// The payments the commit wrote: those a payment event of it can show.
    written: &'a [PaymentId],
    head: Option<String>,
    payments: Option<Vec<(PaymentId, String)>>,
}

impl<'a> Classifier<'a> {
    pub(super) fn new(session: &'a CheckoutSession, written: &'a [PaymentId]) -> Self {
        Self {
            session,
            written,
            head: None,
            payments: None,
        }
    }

    pub(super) fn classify(&mut self, event: &Event) -> Payload {
        let s = self.session;
        if event.session_id != Some(s.id()) || event.livemode != s.livemode() {
            return Payload::Whole;
        }
        let text = event.object.get();
        if self.head.get_or_insert_with(|| s.event_json()) == text {
            return Payload::Session;
        }
        if event.event_type.is_payment_event() {
            let payments = self.payments.get_or_insert_with(|| {
                self.written
                    .iter()
                    .filter_map(|&id| Some((id, s.payment_json(id)?)))
                    .collect()
            });
            if let Some((id, _)) = payments.iter().find(|(_, json)| json == text) {
                return Payload::Payment(*id);
            }
        }
        Payload::Whole
    }
}

/// Renders an event kept as [`Record::Current`] from its session's current state.
pub(super) fn render(record: &Record, session: &CheckoutSession) -> Event {
    match record {
        Record::Whole(event) => (**event).clone(),
        // Never rendered: reads stop at the watermark. Stay total anyway.
        Record::Pruned => Event {
            id: EventId::from_uuid(uuid::Uuid::nil()),
            event_type: EventType::Unknown("pruned".into()),
            session_id: Some(session.id()),
            livemode: session.livemode(),
            created: session.created(),
            object: crate::outbox::raw_or_null("null".to_owned()),
        },
        Record::Current {
            id,
            created,
            event_type,
            payment,
            ..
        } => {
            let json = match payment {
                Some(p) => session
                    .payment_json(*p)
                    .unwrap_or_else(|| "null".to_owned()),
                None => session.event_json(),
            };
            Event {
                id: *id,
                event_type: event_type.clone(),
                session_id: Some(session.id()),
                livemode: session.livemode(),
                created: *created,
                object: crate::outbox::raw_or_null(json),
            }
        }
    }
}

/// Reads events, decoding each session once for a run of its events.
pub(super) struct Reader<'a> {
    decode: &'a dyn Fn(u32) -> Result<CheckoutSession, StoreError>,
    last: Option<(u32, CheckoutSession)>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(decode: &'a dyn Fn(u32) -> Result<CheckoutSession, StoreError>) -> Self {
        Self { decode, last: None }
    }

    pub(super) fn read(&mut self, seq: usize, record: &Record) -> Result<StoredEvent, StoreError> {
        let event = match record {
            Record::Whole(event) => (**event).clone(),
            Record::Pruned => return Err(corrupt()),
            Record::Current { slot, .. } => {
                if self.last.as_ref().is_none_or(|(s, _)| s != slot) {
                    self.last = Some((*slot, (self.decode)(*slot)?));
                }
                match &self.last {
                    Some((_, session)) => render(record, session),
                    None => return Err(corrupt()),
                }
            }
        };
        Ok(StoredEvent {
            seq: seq as u64 + 1,
            event,
        })
    }
}

impl Inner {
    /// [`Store::events_before`](crate::store::Store::events_before).
    pub(super) fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // The event at position `p` has sequence number `p + 1`.
        let below = before.map_or(usize::MAX, |b| {
            usize::try_from(b.saturating_sub(1)).unwrap_or(usize::MAX)
        });
        let end = below.min(self.events.len());
        let positions: Vec<usize> = (self.pruned_below.min(end)..end)
            .rev()
            .filter(|p| !matches!(self.events[*p], Record::Pruned))
            .take(limit)
            .collect();
        self.read_events(positions.into_iter())
    }

    /// [`Store::prune_events`](crate::store::Store::prune_events). No event here carries
    /// another's object, so what goes is a prefix: below the watermark, which reads skip.
    /// The newest event always stays, as in the SQL stores (where it keeps the next
    /// sequence number from being reused).
    pub(super) fn prune_prefix(&mut self, through: u64, limit: usize) -> usize {
        let through = usize::try_from(through).unwrap_or(usize::MAX);
        let start = self.pruned_below;
        let end = through
            .min(self.events.len().saturating_sub(1))
            .min(start.saturating_add(limit));
        if end <= start {
            return 0;
        }
        for record in &mut self.events[start..end] {
            *record = Record::Pruned;
        }
        self.pruned_below = end;
        end - start
    }

    /// [`Store::prune_session_events`](crate::store::Store::prune_session_events): the
    /// session's events at or below `through`, the newest event of all kept.
    pub(super) fn prune_session(&mut self, id: crate::id::SessionId, through: u64) -> usize {
        let through = usize::try_from(through).unwrap_or(usize::MAX);
        let newest = self.events.len().saturating_sub(1);
        let positions: Vec<usize> = self
            .slot_of(id)
            .map(|s| s.events.iter().map(|p| *p as usize).collect())
            .unwrap_or_default();
        let mut pruned = 0;
        for pos in positions {
            if pos < through && pos < newest && !matches!(self.events[pos], Record::Pruned) {
                self.events[pos] = Record::Pruned;
                pruned += 1;
            }
        }
        pruned
    }

    /// [`Store::event`](crate::store::Store::event): from the index of event ids.
    pub(super) fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let Some(pos) = self.event_position(id) else {
            return Ok(None);
        };
        if (pos as usize) < self.pruned_below {
            return Ok(None);
        }
        Ok(self.read_events(std::iter::once(pos as usize))?.pop())
    }
}

pub(super) fn corrupt() -> StoreError {
    StoreError::Backend {
        message: "in-memory session could not be decoded".into(),
        retryable: false,
    }
}

impl From<codec::Corrupt> for StoreError {
    fn from(_: codec::Corrupt) -> Self {
        corrupt()
    }
}
