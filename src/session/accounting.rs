//! Totals and flags, derived from the recorded transfers (through the running sums of the
//! ledger) and the quotes; see the rounding rules in [`crate::money`].

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ledger::PaymentSums;
use super::{CheckoutSession, SessionState};
use crate::id::PaymentId;
use crate::money::{Msats, from_minor_units, mul_div_ceil, mul_div_floor, to_minor_units};
use crate::payment::Payment;

/// The money of a session, derived from its transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Totals {
    /// Funds that count towards the price (confirmed enough, not reversed).
    pub counted: Msats,
    /// Funds seen but still waiting for confirmations.
    pub pending: Msats,
    /// Base-currency value of the counted funds, each at its quote's rate.
    #[serde(with = "crate::json::decimal_number")]
    pub amount_paid: Decimal,
    /// Base-currency value of counted and pending funds.
    #[serde(with = "crate::json::decimal_number")]
    pub amount_received: Decimal,
}

/// What kind of unexpected money a flag reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FlagKind {
    /// Funds beyond the amount: after the session was paid, or beyond what completed it.
    Overpaid,
    /// Funds that arrived after the session was deactivated.
    Late,
    /// Funds that arrived for an expired quote and count at its (possibly stale) rate.
    PaidAfterExpiry,
    /// Funds that had counted and were then reversed.
    Reversed,
    /// Funds received before the session was deactivated: refund or accept them.
    RefundDue,
    /// Funds in transfers beyond the session's transfer cap, held apart and never counted
    /// (see [`SessionLimits`](super::SessionLimits)): refund or accept them.
    Held,
}

impl FlagKind {
    /// The name as in JSON (`overpaid`, `refund_due`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overpaid => "overpaid",
            Self::Late => "late",
            Self::PaidAfterExpiry => "paid_after_expiry",
            Self::Reversed => "reversed",
            Self::RefundDue => "refund_due",
            Self::Held => "held",
        }
    }
}

/// An amount of unexpected money the merchant should review, and how much of it their
/// [resolutions](crate::session::Resolution) cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Flag {
    /// What it is.
    pub kind: FlagKind,
    /// How much, in msats.
    #[serde(rename = "amount_msat")]
    pub amount: Msats,
    /// How much of it resolutions cover (refunded or accepted), in msats; may exceed
    /// `amount` if the flag shrank after it was resolved (a reversal).
    #[serde(rename = "resolved_msat", default)]
    pub resolved: Msats,
}

impl Flag {
    /// The flagged amount no resolution covers yet.
    pub fn unresolved(&self) -> Msats {
        self.amount.saturating_sub(self.resolved)
    }
}

impl CheckoutSession {
    /// The price in minor units of the base currency.
    pub(crate) fn amount_minor(&self) -> i128 {
        self.limits.amount_minor
    }

    /// The minor units the session must receive to be paid.
    pub(crate) fn threshold_minor(&self) -> i128 {
        self.limits.threshold_minor
    }

    fn sums(&self, id: PaymentId) -> PaymentSums {
        self.ledger.sums(id)
    }

    /// Minor units credited for `msats` received on payment `p` (rule 2 of the money docs).
    pub(crate) fn credit(&self, p: &Payment, msats: u128) -> i128 {
        let due = p.due_minor;
        let target = u128::from(p.target_msats().get());
        // Saturate: a sum this large pays any price; it cannot be less than the truth.
        mul_div_floor(due, msats, target)
            .and_then(|c| i128::try_from(c).ok())
            .unwrap_or(i128::MAX / 4)
    }

    /// (received, counted) credit in minor units.
    fn credits(&self) -> (i128, i128) {
        (self.ledger.credit_received, self.ledger.credit_counted)
    }

    /// Credit (minor units) of counted funds.
    pub(crate) fn counted_credit(&self) -> i128 {
        self.credits().1
    }

    /// Credit (minor units) of counted and pending funds.
    pub(crate) fn received_credit(&self) -> i128 {
        self.credits().0
    }

    /// Whether counted funds reach the threshold.
    pub(crate) fn threshold_reached(&self) -> bool {
        self.counted_credit() >= self.threshold_minor()
    }

    /// The base amount still to be quoted: the price minus everything received (pending
    /// included, so a customer is not asked twice while a transaction confirms).
    pub(crate) fn remaining_due_minor(&self) -> i128 {
        (self.amount_minor() - self.received_credit()).max(0)
    }

    /// Msats of non-reversed transfers attributed to `payment`, whatever their arrival.
    pub fn received_for(&self, payment: PaymentId) -> Msats {
        Msats::new(u64::try_from(self.sums(payment).any).unwrap_or(u64::MAX))
    }

    /// The session's money, derived from its transfers.
    pub fn totals(&self) -> Totals {
        let msats = |v: u128| Msats::new(u64::try_from(v).unwrap_or(u64::MAX));
        let (received_credit, counted_credit) = self.credits();
        let scale = self.currency.scale();
        Totals {
            counted: msats(self.ledger.counted),
            pending: msats(self.ledger.pending),
            amount_paid: from_minor_units(counted_credit.min(i128::from(i64::MAX)), scale),
            amount_received: from_minor_units(received_credit.min(i128::from(i64::MAX)), scale),
        }
    }

    /// Msats beyond the price among funds that arrived while the session was active: the
    /// quotes are walked in order, each credited until the full amount is reached, and
    /// whatever a quote received past that point is excess.
    pub(crate) fn excess_msats(&self) -> u128 {
        let amount = self.amount_minor();
        // Below the full amount no quote can hold excess (each credits less than what was
        // still needed when its turn came), so most sessions never walk their quotes.
        if self.ledger.credit_received < amount {
            return 0;
        }
        let mut credited: i128 = 0;
        let mut excess: u128 = 0;
        for p in self.payments.iter() {
            let received = self.sums(p.id).received;
            let need = u128::try_from((amount - credited).max(0)).unwrap_or(0);
            let due = p.due_minor;
            let target = u128::from(p.target_msats().get());
            // The fewest msats on this quote that credit `need` minor units.
            let needed = if due == 0 {
                0
            } else {
                mul_div_ceil(need, target, due).unwrap_or(u128::MAX)
            };
            excess += received.saturating_sub(needed);
            credited = credited.saturating_add(self.sums(p.id).credit_received);
        }
        excess
    }

    /// The unexpected money on this session, by kind (kinds with nothing are left out).
    pub fn flags(&self) -> Vec<Flag> {
        let l = &self.ledger;
        let refund_due = match self.state {
            SessionState::Deactivated { .. } => l.counted.saturating_add(l.pending),
            _ => 0,
        };
        [
            (
                FlagKind::Overpaid,
                l.after_paid.saturating_add(self.excess_msats()),
            ),
            (FlagKind::Late, l.late),
            (FlagKind::PaidAfterExpiry, l.after_expiry),
            (FlagKind::Reversed, l.reversed_counted),
            (FlagKind::RefundDue, refund_due),
            (FlagKind::Held, u128::from(self.held.amount.get())),
        ]
        .into_iter()
        .filter(|(_, amount)| *amount > 0)
        .map(|(kind, amount)| Flag {
            kind,
            amount: Msats::new(u64::try_from(amount).unwrap_or(u64::MAX)),
            resolved: self.resolved(kind),
        })
        .collect()
    }

    /// The flagged amount of one kind (resolved or not).
    pub fn flagged(&self, kind: FlagKind) -> Msats {
        self.flags()
            .into_iter()
            .find(|f| f.kind == kind)
            .map_or(Msats::ZERO, |f| f.amount)
    }
}

/// The price and the paid threshold in minor units: fixed at creation, kept beside the
/// decimal amount so the hot path does no decimal arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Limits {
    pub(crate) amount_minor: i128,
    pub(crate) threshold_minor: i128,
}

impl Limits {
    /// `threshold = amount − floor(amount × tolerance / 100)` (rule 3 of the money docs).
    pub(crate) fn of(amount: Decimal, scale: u32, tolerance: Decimal) -> Self {
        let amount_minor = to_minor_units(amount, scale).unwrap_or(i128::MAX);
        let allowance = Decimal::from_i128_with_scale(amount_minor, 0)
            .checked_mul(tolerance)
            .map(|v| (v / Decimal::ONE_HUNDRED).floor())
            .and_then(|v| i128::try_from(v).ok())
            .unwrap_or(0);
        Self {
            amount_minor,
            threshold_minor: amount_minor - allowance,
        }
    }
}
