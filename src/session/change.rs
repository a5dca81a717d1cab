//! What a command changed: the change set the service commits and stores write.
//!
//! Like `bdk_chain`'s change sets, a [`SessionChange`] is returned by every command and says
//! exactly what the command inserted or modified, so nothing downstream has to guess it:
//! the events it caused, in order, and the ids of the payments and keys of the transfers
//! whose stored form changed. The session's own fields (status, details, version) change
//! with every non-empty change. Changes [`merge`](SessionChange::merge) in order, so a
//! command and the re-quote that follows it commit as one.

use crate::event::SessionEvent;
use crate::id::PaymentId;
use crate::transfer::TransferKey;

/// The events and the touched payments and transfers of one or more commands.
///
/// Contract: `payments` holds every payment the commands inserted or modified (its
/// status, its received amount, its `modified` time) and `transfers` every transfer they
/// inserted or modified, each once, in the order first touched. A store that writes
/// exactly these rows, plus the session's own row, holds the session as it is after the
/// change. An empty change (no events, nothing touched) means the commands changed nothing.
#[must_use = "a change must be committed, or the session copy it was made on dropped"]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionChange {
    events: Vec<SessionEvent>,
    payments: Vec<PaymentId>,
    transfers: Vec<TransferKey>,
}

impl SessionChange {
    /// The events caused, in order.
    pub fn events(&self) -> &[SessionEvent] {
        &self.events
    }

    /// The payments inserted or modified, each once.
    pub fn payments(&self) -> &[PaymentId] {
        &self.payments
    }

    /// The transfers inserted or modified, each once.
    pub fn transfers(&self) -> &[TransferKey] {
        &self.transfers
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.payments.is_empty() && self.transfers.is_empty()
    }

    /// Appends a later change (of the same session) to this one.
    pub fn merge(&mut self, later: Self) {
        self.events.extend(later.events);
        for id in later.payments {
            self.touch_payment(id);
        }
        for key in later.transfers {
            self.touch_transfer(key);
        }
    }

    /// The events, dropping the rest.
    pub fn into_events(self) -> Vec<SessionEvent> {
        self.events
    }

    pub(crate) fn with_capacity(events: usize) -> Self {
        Self {
            events: Vec::with_capacity(events),
            payments: Vec::new(),
            transfers: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, event: SessionEvent) {
        self.events.push(event);
    }

    pub(crate) fn touch_payment(&mut self, id: PaymentId) {
        // A change touches one or two payments: a scan beats a set.
        if !self.payments.contains(&id) {
            self.payments.push(id);
        }
    }

    pub(crate) fn touch_transfer(&mut self, key: TransferKey) {
        if !self.transfers.contains(&key) {
            self.transfers.push(key);
        }
    }
}
