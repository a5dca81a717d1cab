//! Archiving a finished session: its history handed to the application, its events
//! pruned from the outbox, the session itself kept so that late funds still find it.

use super::{Checkout, ServiceError, operation};
use crate::clock::Clock;
use crate::id::SessionId;
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::session::{CheckoutSession, HeldTransfer, SessionStatus};
use crate::store::{Store, StoredEvent};

/// A finished session's history, as [`Checkout::archive`] hands it over: write it
/// wherever the shop keeps old records (`to_json`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionArchive {
    /// The session as it stands (it stays in the store too).
    pub session: CheckoutSession,
    /// Its whole timeline, as it was before the events were pruned.
    pub events: Vec<StoredEvent>,
    /// The transfers it held apart (beyond its transfer cap).
    pub held: Vec<HeldTransfer>,
    /// How many of its events the outbox no longer has.
    pub pruned: usize,
}

impl SessionArchive {
    /// `{"session": …, "events": [{"seq": …, "event": …}], "held_transfers": [...]}`.
    pub fn to_json(&self) -> String {
        let events: Vec<String> = self
            .events
            .iter()
            .map(|e| format!(r#"{{"seq":{},"event":{}}}"#, e.seq, e.event.to_json()))
            .collect();
        let held: Vec<String> = self.held.iter().map(HeldTransfer::to_json).collect();
        format!(
            r#"{{"session":{},"events":[{}],"held_transfers":[{}]}}"#,
            self.session.to_json(),
            events.join(","),
            held.join(",")
        )
    }
}

impl<S: Store, R: RateSource, G: PaymentRequestGenerator, C: Clock> Checkout<S, R, G, C> {
    /// Archives a finished session (paid or deactivated, every flag resolved): returns its
    /// history and prunes its events at or below `through` from the outbox
    /// ([`Store::prune_session_events`]). Pass what every reader is done with, e.g.
    /// [`Dispatcher::delivered_through`](crate::webhook::Dispatcher::delivered_through), so
    /// no webhook loses its event. The session, its payments, transfers and routing keys
    /// stay: funds that arrive later are still recorded on it and flagged.
    ///
    /// Refused with [`ServiceError::NotArchivable`] while it is active or has unresolved
    /// flags; archiving it again returns what is left.
    pub fn archive(&self, id: SessionId, through: u64) -> Result<SessionArchive, ServiceError> {
        let _op = operation("archive", Some(id));
        let session = self
            .retry_store(|| self.st().load(id))?
            .ok_or(ServiceError::UnknownSession(id))?;
        let refuse = |reason| Err(ServiceError::NotArchivable { id, reason });
        if session.status() == SessionStatus::Active {
            return refuse("active");
        }
        if session.has_unresolved_flags() {
            return refuse("unresolved flags");
        }
        let events = self.retry_store(|| self.st().session_events(id))?;
        let held = self.retry_store(|| self.st().held_transfers(id, usize::MAX))?;
        let pruned = self.retry_store(|| self.st().prune_session_events(id, through))?;
        Ok(SessionArchive {
            session,
            events,
            held,
            pruned,
        })
    }
}
