//! Running sums over a session's transfers, so that recording one more transfer costs the
//! same however many came before.
//!
//! The ledger is a cache of a function of the transfers, not a fact: it is rebuilt whenever
//! a session is read, and every change of a transfer goes through [`Ledger::swap`], which
//! takes the old version's contribution out and puts the new one in.

use std::collections::HashMap;

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
}

/// Sums over all transfers of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub(crate) per_payment: HashMap<PaymentId, PaymentSums>,
    pub(crate) counted: u128,
    pub(crate) pending: u128,
    pub(crate) after_paid: u128,
    pub(crate) late: u128,
    pub(crate) after_expiry: u128,
    pub(crate) reversed_counted: u128,
}

impl Ledger {
    /// Replaces `old`'s contribution (if any) with `new`'s.
    pub(crate) fn swap(&mut self, old: Option<&Transfer>, new: &Transfer, policy: ConfirmationPolicy) {
        if let Some(old) = old {
            self.apply(old, policy, false);
        }
        self.apply(new, policy, true);
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
        let sums = self.per_payment.entry(t.payment_id).or_default();
        step(&mut sums.any);
        match t.arrival {
            Arrival::AfterPaid => step(&mut self.after_paid),
            Arrival::AfterDeactivated => step(&mut self.late),
            Arrival::AfterQuoteExpiry => step(&mut self.after_expiry),
            Arrival::Expected => {}
        }
        if t.is_credited_arrival() {
            step(&mut sums.received);
            if t.meets(policy) {
                step(&mut sums.counted);
                step(&mut self.counted);
            } else {
                step(&mut self.pending);
            }
        }
    }
}
