//! Running sums over a session's transfers, so that recording one more transfer costs the
//! same however many came before.
//!
//! The ledger is a cache of a function of the transfers, not a fact: it is rebuilt whenever
//! a session is read, and every change of a transfer goes through [`Ledger::swap`], which
//! takes the old version's contribution out and puts the new one in.

use std::sync::Arc;

use crate::id::PaymentId;
use crate::transfer::{Arrival, ConfirmationPolicy, Transfer};

/// Msats attributed to one payment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PaymentSums {
    /// Credited arrivals, not reversed (pending or counted).
    pub(crate) received: u128,
    /// Credited arrivals that count (confirmed enough, not reversed).
    pub(crate) counted: u128,
    /// Every non-reversed transfer, whatever its arrival.
    pub(crate) any: u128,
    /// Minor units `received` credits at this payment's rate (kept by the session).
    pub(crate) credit_received: i128,
    /// Minor units `counted` credits at this payment's rate (kept by the session).
    pub(crate) credit_counted: i128,
}

/// Sums over all transfers of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ledger {
    /// Per payment, sorted by payment id (a session has few payments, so a short sorted
    /// vector beats hashing, and its order does not depend on the order of reports).
    /// Shared (`Arc`) like the session's payments, so copying a session with many does
    /// not copy their sums.
    pub(crate) per_payment: Arc<Vec<(PaymentId, PaymentSums)>>,
    pub(crate) counted: u128,
    pub(crate) pending: u128,
    pub(crate) after_paid: u128,
    pub(crate) late: u128,
    pub(crate) after_expiry: u128,
    pub(crate) reversed_counted: u128,
    /// Sum of the payments' `credit_received`.
    pub(crate) credit_received: i128,
    /// Sum of the payments' `credit_counted`.
    pub(crate) credit_counted: i128,
}

impl Ledger {
    /// The sums of one payment.
    pub(crate) fn sums(&self, id: PaymentId) -> PaymentSums {
        match self.per_payment.binary_search_by_key(&id, |(p, _)| *p) {
            Ok(i) => self.per_payment[i].1,
            Err(_) => PaymentSums::default(),
        }
    }

    /// Sets a payment's credits (computed by the session, which knows its rate) and keeps
    /// the totals in step.
    /// `old` is the payment's sums from before the transfer changed (its entry may be gone).
    pub(crate) fn set_credits(
        &mut self,
        id: PaymentId,
        old: PaymentSums,
        received: i128,
        counted: i128,
    ) {
        self.credit_received = self
            .credit_received
            .saturating_sub(old.credit_received)
            .saturating_add(received);
        self.credit_counted = self
            .credit_counted
            .saturating_sub(old.credit_counted)
            .saturating_add(counted);
        if let Ok(i) = self.per_payment.binary_search_by_key(&id, |(p, _)| *p) {
            let sums = &mut Arc::make_mut(&mut self.per_payment)[i].1;
            sums.credit_received = received;
            sums.credit_counted = counted;
        }
    }

    /// Makes room for the sums of `payments` payments, so that recording a transfer does
    /// not allocate for them (the room is made when a quote is issued or a session read).
    pub(crate) fn make_room(&mut self, payments: usize) {
        // Amortised (not exact): a session re-quoted after each of many partial payments
        // would otherwise copy all its sums on every quote.
        let missing = payments.saturating_sub(self.per_payment.len());
        if self.per_payment.capacity() - self.per_payment.len() < missing {
            Arc::make_mut(&mut self.per_payment).reserve(missing);
        }
    }

    fn entry(&mut self, id: PaymentId) -> &mut PaymentSums {
        let all = Arc::make_mut(&mut self.per_payment);
        let index = match all.binary_search_by_key(&id, |(p, _)| *p) {
            Ok(i) => i,
            Err(i) => {
                all.insert(i, (id, PaymentSums::default()));
                i
            }
        };
        &mut all[index].1
    }

    /// Replaces `old`'s contribution (if any) with `new`'s.
    pub(crate) fn swap(
        &mut self,
        old: Option<&Transfer>,
        new: &Transfer,
        policy: ConfirmationPolicy,
    ) {
        if let Some(old) = old {
            self.apply(old, policy, false);
        }
        self.apply(new, policy, true);
        // A payment whose transfers were all reversed has nothing left: drop its entry so
        // the ledger is the same as one rebuilt from the transfers (its credits are zero
        // then, so the totals need no correction). Only the payments of this transfer's
        // two versions can have been emptied.
        for id in [old.map(|t| t.payment_id), Some(new.payment_id)]
            .into_iter()
            .flatten()
        {
            if let Ok(i) = self.per_payment.binary_search_by_key(&id, |(p, _)| *p) {
                let sums = self.per_payment[i].1;
                if (sums.received, sums.counted, sums.any) == (0, 0, 0) {
                    Arc::make_mut(&mut self.per_payment).remove(i);
                }
            }
        }
    }

    fn apply(&mut self, t: &Transfer, policy: ConfirmationPolicy, add: bool) {
        let amount = u128::from(t.amount.get());
        let step = |v: &mut u128| {
            *v = if add {
                v.saturating_add(amount)
            } else {
                v.saturating_sub(amount)
            }
        };
        if t.reversed {
            if t.counted_at.is_some() {
                step(&mut self.reversed_counted);
            }
            return;
        }
        match t.arrival {
            Arrival::AfterPaid => step(&mut self.after_paid),
            Arrival::AfterDeactivated => step(&mut self.late),
            Arrival::AfterQuoteExpiry => step(&mut self.after_expiry),
            Arrival::Expected => {}
        }
        let credited = t.is_credited_arrival();
        let counts = t.meets(policy);
        if credited {
            step(if counts {
                &mut self.counted
            } else {
                &mut self.pending
            });
        }
        let sums = self.entry(t.payment_id);
        step(&mut sums.any);
        if credited {
            step(&mut sums.received);
            if counts {
                step(&mut sums.counted);
            }
        }
    }
}
