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

use super::HeldTransfer;

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
    // A command touches one or two payments and at most one transfer: kept inline, so
    // recording a transfer allocates nothing for them (a report is the hot path).
    payments: Touched<PaymentId, 2>,
    transfers: Touched<TransferKey, 1>,
    /// A transfer beyond the session's cap, kept apart (see `session::limits`).
    held: Option<Box<HeldTransfer>>,
}

/// A list of distinct values kept inline up to `N`, spilled whole to the heap beyond (so
/// it is always one slice).
#[derive(Debug, Clone)]
struct Touched<T, const N: usize> {
    len: usize,
    inline: [T; N],
    spilled: Vec<T>,
}

/// A value to fill the unused inline slots with (never read as data).
trait Filler: Copy {
    const FILLER: Self;
}

impl Filler for PaymentId {
    const FILLER: Self = PaymentId::from_uuid(uuid::Uuid::nil());
}

impl Filler for TransferKey {
    const FILLER: Self = TransferKey::Lightning(crate::hash::Hash32::from_bytes([0; 32]));
}

impl<T: Filler, const N: usize> Default for Touched<T, N> {
    fn default() -> Self {
        Self {
            len: 0,
            inline: [T::FILLER; N],
            spilled: Vec::new(),
        }
    }
}

impl<T: Filler + PartialEq, const N: usize> Touched<T, N> {
    fn as_slice(&self) -> &[T] {
        match self.inline.get(..self.len) {
            Some(inline) if self.spilled.is_empty() => inline,
            _ => &self.spilled,
        }
    }

    /// Adds `value` unless it is in the list already.
    fn insert(&mut self, value: T) {
        if self.as_slice().contains(&value) {
            return;
        }
        if self.spilled.is_empty() && self.len < N {
            self.inline[self.len] = value;
            self.len += 1;
            return;
        }
        if self.spilled.is_empty() {
            self.spilled.extend_from_slice(&self.inline[..self.len]);
        }
        self.spilled.push(value);
    }
}

impl<T: Filler + PartialEq, const N: usize> PartialEq for Touched<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Filler + Eq, const N: usize> Eq for Touched<T, N> {}

impl SessionChange {
    /// The events caused, in order.
    pub fn events(&self) -> &[SessionEvent] {
        &self.events
    }

    /// The payments inserted or modified, each once, in the order first touched.
    pub fn payments(&self) -> &[PaymentId] {
        self.payments.as_slice()
    }

    /// The transfers inserted or modified, each once, in the order first touched.
    pub fn transfers(&self) -> &[TransferKey] {
        self.transfers.as_slice()
    }

    /// The transfer held apart, beyond the session's transfer cap (a store writes it with
    /// the session, see [`SessionLimits`](super::SessionLimits)).
    pub fn held(&self) -> Option<&HeldTransfer> {
        self.held.as_deref()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.payments().is_empty()
            && self.transfers().is_empty()
            && self.held.is_none()
    }

    /// Appends a later change (of the same session) to this one.
    pub fn merge(&mut self, later: Self) {
        for &id in later.payments() {
            self.touch_payment(id);
        }
        for &key in later.transfers() {
            self.touch_transfer(key);
        }
        if later.held.is_some() {
            self.held = later.held;
        }
        self.events.extend(later.events);
    }

    /// The events, dropping the rest.
    pub fn into_events(self) -> Vec<SessionEvent> {
        self.events
    }

    pub(crate) fn with_capacity(events: usize) -> Self {
        Self {
            events: Vec::with_capacity(events),
            ..Self::default()
        }
    }

    pub(crate) fn push(&mut self, event: SessionEvent) {
        self.events.push(event);
    }

    pub(crate) fn touch_payment(&mut self, id: PaymentId) {
        // A change touches one or two payments: a scan beats a set.
        self.payments.insert(id);
    }

    pub(crate) fn touch_transfer(&mut self, key: TransferKey) {
        self.transfers.insert(key);
    }

    pub(crate) fn hold(&mut self, held: HeldTransfer) {
        self.held = Some(Box::new(held));
    }
}

impl From<SessionChange> for Vec<SessionEvent> {
    /// The change's events (what an integration that only reports events returns).
    fn from(change: SessionChange) -> Self {
        change.into_events()
    }
}
