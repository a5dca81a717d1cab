//! Recording transfers: insert-only facts, monotone updates, and what they settle.

use time::OffsetDateTime;

use super::{CheckoutSession, HeldTransfer, SessionChange, SessionState};
use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::json::millis::truncate;
use crate::money::Msats;
use crate::payment::PaymentState;
use crate::transfer::{Arrival, PaymentMethod, Transfer, TransferKey, TransferReport};

impl CheckoutSession {
    /// Records a report of funds. A new transfer is attributed to a quote (Lightning: the
    /// quote whose invoice it paid; on-chain: the quote open when it is first seen, else the
    /// latest) and counts at that quote's rate. A known transfer only gains confirmations or
    /// a reversal; reporting it again unchanged is a no-op that returns no events.
    pub fn record_transfer(
        &mut self,
        report: TransferReport,
        now: OffsetDateTime,
    ) -> Result<SessionChange, Error> {
        let now = truncate(now);
        self.check_clock(now)?;
        if report.amount == Msats::ZERO {
            return Err(Error::AmountNotPositive);
        }
        Msats::checked(report.amount.get())?;
        if let Some(known) = self.transfers.get(&report.key) {
            if known.amount != report.amount {
                return Err(Error::TransferAmountMismatch {
                    first: known.amount.get(),
                    again: report.amount.get(),
                });
            }
            if let Some(addr) = &report.address
                && self.onchain_address.as_deref() != Some(addr.as_str())
            {
                return Err(Error::UnknownPaymentRequest);
            }
            return Ok(self.update_transfer(report, now));
        }
        self.check_destination(&report)?;
        if self.transfers.len() >= self.caps.transfers() as usize {
            let mut change = SessionChange::with_capacity(1);
            self.expire_due_into(now, &mut change);
            self.hold_transfer(report, now, &mut change);
            self.touch(now);
            return Ok(change);
        }
        // Room for what a transfer usually causes (received, payment paid, session paid);
        // the rarer events (expiries, flags) grow the vector.
        let mut change = SessionChange::with_capacity(4);
        self.expire_due_into(now, &mut change);
        self.insert_transfer(report, now, &mut change);
        self.touch(now);
        Ok(change)
    }

    /// Holds a new transfer beyond the transfer cap apart (see `session::limits`): counted
    /// in the held totals and flagged, never toward the amount; the first one raises the
    /// event.
    fn hold_transfer(
        &mut self,
        report: TransferReport,
        now: OffsetDateTime,
        change: &mut SessionChange,
    ) {
        self.held.count = self.held.count.saturating_add(1);
        self.held.amount = self.held.amount.saturating_add(report.amount);
        if self.held.count == 1 {
            change.push(SessionEvent::new(EventType::TransfersHeld, now));
        }
        change.hold(HeldTransfer {
            key: report.key,
            session_id: self.id,
            amount: report.amount,
            address: report.address,
            seen_at: now,
        });
    }

    /// Checks that a new transfer's invoice or address belongs to this session.
    fn check_destination(&self, report: &TransferReport) -> Result<(), Error> {
        match report.key {
            TransferKey::Lightning(hash) => {
                if !self.accepts(PaymentMethod::Lightning) {
                    return Err(Error::MethodNotEnabled("lightning"));
                }
                self.payment_for_invoice(hash)
                    .map(|_| ())
                    .ok_or(Error::UnknownPaymentRequest)
            }
            TransferKey::Onchain { .. } => {
                if !self.accepts(PaymentMethod::Onchain) {
                    return Err(Error::MethodNotEnabled("onchain"));
                }
                match (&report.address, &self.onchain_address) {
                    (Some(a), Some(own)) if a == own && !self.payments.is_empty() => Ok(()),
                    _ => Err(Error::UnknownPaymentRequest),
                }
            }
        }
    }

    fn payment_for_invoice(&self, hash: crate::hash::PaymentHash) -> Option<usize> {
        // Newest first: most payments go to the newest invoice.
        self.payments.iter().rposition(|p| {
            p.request
                .lightning
                .as_ref()
                .is_some_and(|l| l.payment_hash == hash)
        })
    }

    fn insert_transfer(
        &mut self,
        report: TransferReport,
        now: OffsetDateTime,
        change: &mut SessionChange,
    ) {
        let index = match report.key {
            TransferKey::Lightning(hash) => self.payment_for_invoice(hash),
            // The quotes share one address: funds go to the open one, which is the newest,
            // or (none open) still to the newest.
            TransferKey::Onchain { .. } => self.payments.len().checked_sub(1),
        };
        // check_destination guarantees a payment; stay total anyway.
        let Some(index) = index else { return };
        let arrival = match self.state {
            SessionState::Paid { .. } => Arrival::AfterPaid,
            SessionState::Deactivated { .. } => Arrival::AfterDeactivated,
            SessionState::Active => match self.payments[index].state {
                PaymentState::Unpaid => Arrival::Expected,
                // A partly paid quote's rate lock still ends at its expiry: money on it
                // after that (on-chain, while no new quote could be issued) is flagged.
                PaymentState::Paid { .. } if now < self.payments[index].expires_at => {
                    Arrival::Expected
                }
                PaymentState::Paid { .. }
                | PaymentState::Expired { .. }
                | PaymentState::Cancelled { .. } => Arrival::AfterQuoteExpiry,
            },
        };
        let before = self.snapshot_flags();
        let mut transfer = Transfer {
            key: report.key,
            payment_id: self.payments[index].id,
            amount: report.amount,
            arrival,
            confirmations: report.confirmations,
            rbf: report.rbf,
            reversed: report.reversed,
            first_seen: now,
            counted_at: None,
            sequence: report.sequence,
        };
        if transfer.meets(self.confirmations) {
            transfer.counted_at = Some(now);
        }
        let payment_id = transfer.payment_id;
        change.push(
            SessionEvent::new(EventType::TransferReceived, now)
                .payment(payment_id)
                .transfer(report.key, report.amount),
        );
        if report.reversed {
            change.push(
                SessionEvent::new(EventType::TransferReversed, now)
                    .payment(payment_id)
                    .transfer(report.key, report.amount),
            );
        }
        self.put_transfer(transfer, change);
        // `index` came from the payments just above: always found.
        if let Some(payment) = self.payment_mut(index, change) {
            // Its received amount changed, whatever happens to its status.
            payment.modified = now;
            if payment.state.is_unpaid() && !report.reversed {
                payment.state = PaymentState::Paid { paid_at: now };
                change.push(SessionEvent::new(EventType::PaymentPaid, now).payment(payment_id));
                change.push(
                    SessionEvent::new(EventType::CheckoutSessionPaymentPaid, now)
                        .payment(payment_id),
                );
            }
        }
        self.settle(before, now, change);
    }

    fn update_transfer(&mut self, report: TransferReport, now: OffsetDateTime) -> SessionChange {
        let policy = self.confirmations;
        let before = self.snapshot_flags();
        let Some(t) = self.transfers.get(&report.key).cloned() else {
            return SessionChange::default();
        };
        let Some(next) = next_version(&t, &report, policy, now) else {
            return SessionChange::default();
        };
        let mut change = SessionChange::with_capacity(4);
        self.expire_due_into(now, &mut change);
        let (key, amount, payment) = (next.key, next.amount, next.payment_id);
        let (counted, counts) = (t.meets(policy), next.meets(policy));
        let kinds = [
            (!counted && counts, EventType::TransferConfirmed),
            (next.reversed && !t.reversed, EventType::TransferReversed),
            (t.reversed && !next.reversed, EventType::TransferRestored),
            (
                counted && !counts && !next.reversed,
                EventType::TransferUnconfirmed,
            ),
        ];
        let happened: Vec<EventType> = kinds
            .into_iter()
            .filter_map(|(happened, kind)| happened.then_some(kind))
            .collect();
        // Only the confirmation count (or the RBF signal) moved: still a change, shown as
        // such unless the command had other events (expiries) to show.
        let happened = match happened.is_empty() && change.events().is_empty() {
            true => vec![EventType::TransferUpdated],
            false => happened,
        };
        for kind in happened {
            change.push(
                SessionEvent::new(kind, now)
                    .payment(payment)
                    .transfer(key, amount),
            );
        }
        let restored = t.reversed && !next.reversed;
        if let Some(i) = self.payments.iter().rposition(|p| p.id == payment)
            && let Some(p) = self.payment_mut(i, &mut change)
        {
            p.modified = now;
            // Funds first seen reversed did not pay their quote; restored, they do.
            if restored && p.state.is_unpaid() {
                p.state = PaymentState::Paid { paid_at: now };
                change.push(SessionEvent::new(EventType::PaymentPaid, now).payment(payment));
                change.push(
                    SessionEvent::new(EventType::CheckoutSessionPaymentPaid, now).payment(payment),
                );
            }
        }
        self.put_transfer(next, &mut change);
        self.settle(before, now, &mut change);
        self.touch(now);
        change
    }

    /// The overpaid, late and paid-after-expiry amounts, to see which grew.
    fn snapshot_flags(&self) -> [u128; 3] {
        let l = &self.ledger;
        [
            l.after_paid.saturating_add(self.excess_msats()),
            l.late,
            l.after_expiry,
        ]
    }

    /// After the facts changed: marks the session paid if the threshold is reached, and
    /// raises a flag event for each kind of unexpected money that grew.
    fn settle(&mut self, before: [u128; 3], now: OffsetDateTime, change: &mut SessionChange) {
        if matches!(self.state, SessionState::Active) && self.threshold_reached() {
            self.state = SessionState::Paid { paid_at: now };
            change.push(SessionEvent::new(EventType::CheckoutSessionPaid, now));
            // Nothing more is due: a quote still open (funds came in on an older one) ends
            // now, so the customer is not asked to pay twice.
            if let Some(i) = self.unpaid_index()
                && let Some(p) = self.payment_mut(i, change)
            {
                p.state = PaymentState::Expired { expired_at: now };
                p.modified = now;
                let id = p.id;
                change.push(SessionEvent::new(EventType::PaymentExpired, now).payment(id));
            }
        }
        let after = self.snapshot_flags();
        let kinds = [
            EventType::Overpaid,
            EventType::LatePayment,
            EventType::PaidAfterExpiry,
        ];
        for ((kind, b), a) in kinds.into_iter().zip(before).zip(after) {
            if a > b {
                let grown = Msats::new(u64::try_from(a - b).unwrap_or(u64::MAX));
                change.push(SessionEvent::new(kind, now).amount(grown));
            }
        }
    }
}

/// The version of `t` after `report`, or `None` if the report changes nothing.
///
/// A plain report only adds facts: confirmations grow, the RBF signal and a reversal stick,
/// and a reversal is final. A view ([`TransferReport::sequenced`]) newer than the last one
/// applied replaces them, so the chain can take back what it showed; an older view, or a
/// plain report after a view, changes nothing.
fn next_version(
    t: &Transfer,
    report: &TransferReport,
    policy: crate::transfer::ConfirmationPolicy,
    now: OffsetDateTime,
) -> Option<Transfer> {
    let mut next = t.clone();
    match (t.sequence, report.sequence) {
        (Some(applied), Some(seen)) if seen <= applied => return None,
        (Some(_), None) => return None,
        (_, Some(seen)) => {
            next.confirmations = report.confirmations;
            next.rbf = report.rbf;
            next.reversed = report.reversed;
            next.sequence = Some(seen);
        }
        (None, None) => {
            if t.reversed {
                return None;
            }
            next.confirmations = next.confirmations.max(report.confirmations);
            next.rbf |= report.rbf;
            next.reversed |= report.reversed;
        }
    }
    if next.counted_at.is_none() && next.meets(policy) {
        next.counted_at = Some(now);
    }
    // A new sequence alone is no change worth an event or a write.
    let same = Transfer {
        sequence: t.sequence,
        ..next.clone()
    } == *t;
    (!same).then_some(next)
}
