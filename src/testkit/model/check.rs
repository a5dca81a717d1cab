//! Comparing a session with the model, and the properties every session has on its own.

use std::collections::HashMap;
use std::fmt;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::{ReferenceSession, mul_div_floor};
use crate::id::PaymentId;
use crate::money::{MSATS_PER_SAT, SATS_PER_BTC, TargetCurrency};
use crate::payment::PaymentStatus;
use crate::session::{CheckoutSession, FlagKind, SessionStatus};
use crate::transfer::{Arrival, PaymentMethod, Transfer, TransferKey};

/// The first disagreement found: a field (or property) and the two sides of it.
///
/// Its message reads `field: expected …, found …`, where *expected* is what the model (or
/// the property) says and *found* is what the session under test has.
///
/// It is a [`std::error::Error`], so `?` turns it into a proptest
/// [`TestCaseError`](proptest::test_runner::TestCaseError) inside `proptest!` bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    field: String,
    expected: String,
    found: String,
}

impl Mismatch {
    /// A mismatch of `field`: `expected` per the model, `found` in the session.
    pub fn new(
        field: impl Into<String>,
        expected: impl fmt::Debug,
        found: impl fmt::Debug,
    ) -> Self {
        Self {
            field: field.into(),
            expected: format!("{expected:?}"),
            found: format!("{found:?}"),
        }
    }

    /// The field or property that differs, e.g. `totals.counted` or `payments[1].state`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What the model (or the property) expected, as debug text.
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// What was found, as debug text.
    pub fn found(&self) -> &str {
        &self.found
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, found {}",
            self.field, self.expected, self.found
        )
    }
}

impl std::error::Error for Mismatch {}

/// `Ok` if equal, else a mismatch of `field`.
fn same<T: PartialEq + fmt::Debug>(field: &str, expected: T, found: T) -> Result<(), Mismatch> {
    if expected == found {
        Ok(())
    } else {
        Err(Mismatch::new(field, expected, found))
    }
}

/// Like [`same`], naming the field only when it differs.
fn same_at<T: PartialEq + fmt::Debug>(
    field: impl FnOnce() -> String,
    expected: T,
    found: T,
) -> Result<(), Mismatch> {
    if expected == found {
        Ok(())
    } else {
        Err(Mismatch::new(field(), expected, found))
    }
}

/// `Ok` if `holds`, else a mismatch naming the property.
fn property(
    name: &str,
    holds: bool,
    detail: impl FnOnce() -> (String, String),
) -> Result<(), Mismatch> {
    if holds {
        return Ok(());
    }
    let (expected, found) = detail();
    Err(Mismatch {
        field: name.to_owned(),
        expected,
        found,
    })
}

/// `value` in minor units of a currency with `scale` decimals, if it has no more decimals.
fn minor_of(value: Decimal, scale: u32) -> Option<u128> {
    let mut v = value.normalize();
    if v.scale() > scale {
        return None;
    }
    v.rescale(scale);
    u128::try_from(v.mantissa()).ok()
}

/// Minor units as a decimal (`None` beyond 96 bits).
fn decimal(minor: u128, scale: u32) -> Option<Decimal> {
    let v = i128::try_from(minor).ok().filter(|v| *v < (1i128 << 96))?;
    Some(Decimal::from_i128_with_scale(v, scale))
}

fn sorted_transfers(session: &CheckoutSession) -> Vec<&Transfer> {
    let mut transfers: Vec<&Transfer> = session.transfers().collect();
    transfers.sort_by_key(|t| t.key);
    transfers
}

impl ReferenceSession {
    /// Compares every observable field of `session` with the model and returns the first
    /// difference: parameters, status, version and times, the on-chain address, each quote,
    /// each transfer, totals, flags, `received_for`, the open quote, `wake_at`, description,
    /// success URL and message, and metadata.
    ///
    /// [`check_against_at`](Self::check_against_at) also compares `needs_quote` at a time.
    pub fn check_against(&self, session: &CheckoutSession) -> Result<(), Mismatch> {
        same("currency", self.currency, session.currency())?;
        same(
            "target_currency",
            self.target_currency,
            session.target_currency(),
        )?;
        same(
            "amount",
            self.decimal(self.amount_minor),
            Some(session.amount()),
        )?;
        same(
            "tolerance (hundredths of a percent)",
            Some(self.tolerance_hundredths),
            minor_of(session.tolerance(), 2),
        )?;
        same("ttl_secs", self.ttl_secs, session.ttl_secs())?;
        same(
            "confirmation_policy",
            self.confirmations,
            session.confirmation_policy().confirmations(),
        )?;
        same(
            "accepts(lightning)",
            self.lightning,
            session.accepts(PaymentMethod::Lightning),
        )?;
        same(
            "accepts(onchain)",
            self.onchain,
            session.accepts(PaymentMethod::Onchain),
        )?;
        same("state", self.state, session.state())?;
        same("status", self.status(), session.status())?;
        same("created", self.created, session.created())?;
        same("modified", self.modified, session.modified())?;
        same("version", self.version, session.version())?;
        same(
            "onchain_address",
            self.onchain_address(),
            session.onchain_address(),
        )?;

        same(
            "payments.len()",
            self.payments.len(),
            session.payments().len(),
        )?;
        for (i, (m, p)) in self.payments.iter().zip(session.payments()).enumerate() {
            let f = |name: &str| format!("payments[{i}].{name}");
            same_at(|| f("id"), m.id, p.id())?;
            same_at(|| f("due"), self.decimal(m.due_minor), Some(p.due()))?;
            same_at(|| f("target"), m.target, p.target())?;
            same_at(|| f("rate"), m.rate.to_decimal(), p.rate().rate())?;
            same_at(|| f("rate.base"), self.currency, p.rate().base())?;
            same_at(|| f("rate.target"), self.target_currency, p.rate().target())?;
            same_at(|| f("created"), m.created, p.created())?;
            same_at(|| f("expires_at"), m.expires_at, p.expires_at())?;
            same_at(|| f("state"), m.state, p.state())?;
            same_at(
                || f("request.lightning.payment_hash"),
                m.invoice,
                p.request().lightning.as_ref().map(|l| l.payment_hash),
            )?;
            same_at(
                || format!("received_for({})", m.id),
                self.received_for(m.id),
                session.received_for(m.id),
            )?;
        }
        same(
            "open_payment",
            self.open_payment().map(|p| p.id),
            session.open_payment().map(|p| p.id()),
        )?;

        let expected = self.transfers();
        let found = sorted_transfers(session);
        same(
            "transfers (keys)",
            expected.iter().map(|t| t.key).collect::<Vec<TransferKey>>(),
            found.iter().map(|t| t.key).collect(),
        )?;
        for (m, t) in expected.iter().zip(found) {
            let f = |name: &str| format!("transfers[{}].{name}", m.key);
            same_at(|| f("payment_id"), m.payment_id, t.payment_id)?;
            same_at(|| f("amount"), m.amount, t.amount)?;
            same_at(|| f("arrival"), m.arrival, t.arrival)?;
            same_at(|| f("confirmations"), m.confirmations, t.confirmations)?;
            same_at(|| f("rbf"), m.rbf, t.rbf)?;
            same_at(|| f("reversed"), m.reversed, t.reversed)?;
            same_at(|| f("first_seen"), m.first_seen, t.first_seen)?;
            same_at(|| f("counted_at"), m.counted_at, t.counted_at)?;
        }

        let totals = session.totals();
        same("totals.counted", self.counted(), totals.counted)?;
        same("totals.pending", self.pending(), totals.pending)?;
        same(
            "totals.amount_paid",
            self.amount_paid(),
            Some(totals.amount_paid),
        )?;
        same(
            "totals.amount_received",
            self.amount_received(),
            Some(totals.amount_received),
        )?;
        same("flags", self.flags(), session.flags())?;
        same("wake_at", self.wake_at(), session.wake_at())?;

        same("description", self.description(), session.description())?;
        same("success_url", self.success_url(), session.success_url())?;
        same(
            "success_message",
            self.success_message(),
            session.success_message(),
        )?;
        let same_metadata = self.details.metadata.len() == session.metadata().len()
            && self
                .details
                .metadata
                .iter()
                .zip(session.metadata().iter())
                .all(|((k, v), (k2, v2))| k == k2 && v == v2);
        if !same_metadata {
            return Err(Mismatch::new(
                "metadata",
                &self.details.metadata,
                session.metadata().iter().collect::<Vec<_>>(),
            ));
        }
        Ok(())
    }

    /// [`check_against`](Self::check_against), and `needs_quote(now)`.
    pub fn check_against_at(
        &self,
        session: &CheckoutSession,
        now: OffsetDateTime,
    ) -> Result<(), Mismatch> {
        self.check_against(session)?;
        same(
            "needs_quote(now)",
            self.needs_quote(now),
            session.needs_quote(now),
        )
    }
}

/// Checks the properties any session has on its own, whatever happened to it, at `now` (the
/// time of its last command or later):
///
/// 1. totals recomputed from [`transfers()`](CheckoutSession::transfers): counted = credited,
///    not reversed and confirmed enough (or counted before, for plain reports), pending =
///    the rest;
/// 2. the rounding rules: each quote's target is `ceil(due × rate)`, each quote is credited
///    `floor(due × received / target)` (never worth more than the funds; exactly its due when
///    paid exactly), and `amount_received` is their sum;
/// 3. no satoshi created or lost: every non-reversed transfer is counted, pending, overpaid
///    or late; the late and paid-after-expiry flags are exactly those arrivals; overpaid is at
///    least what arrived after the session was paid, and excess is only flagged once the
///    amount was received; reversed flags never exceed what was reversed; a deactivated
///    session flags everything it kept as refund due;
/// 4. `wake_at` is the unpaid quote's expiry, else the active session's own expiry;
/// 5. JSON round-trips ([`check_round_trips`]).
pub fn check_invariants(session: &CheckoutSession, now: OffsetDateTime) -> Result<(), Mismatch> {
    check_accounting(session, now)?;
    check_round_trips(session)
}

/// Properties 1 to 4 of [`check_invariants`]. They hold at any time: `_now` is kept for
/// the callers, which pass the time of the last command.
pub(crate) fn check_accounting(
    session: &CheckoutSession,
    _now: OffsetDateTime,
) -> Result<(), Mismatch> {
    let totals = session.totals();
    let policy = session.confirmation_policy();
    let scale = session.currency().scale();
    let credited = |t: &Transfer| {
        !t.reversed && matches!(t.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry)
    };

    // --- 1: totals recomputed from transfers() ---
    let (mut counted, mut pending) = (0u128, 0u128);
    for t in session.transfers().filter(|t| credited(t)) {
        // Plain reports count for good once counted; views only while confirmed enough.
        let confirmed = (t.counted_at.is_some() && t.sequence.is_none())
            || match t.key {
                TransferKey::Lightning(_) => true,
                TransferKey::Onchain { .. } => {
                    let need = if t.rbf {
                        policy.confirmations().max(1)
                    } else {
                        policy.confirmations()
                    };
                    t.confirmations >= need
                }
            };
        if confirmed {
            counted += u128::from(t.amount.get());
        } else {
            pending += u128::from(t.amount.get());
        }
    }
    same(
        "totals.counted recomputed from transfers()",
        counted,
        u128::from(totals.counted.get()),
    )?;
    same(
        "totals.pending recomputed from transfers()",
        pending,
        u128::from(totals.pending.get()),
    )?;

    // --- 2: the rounding rules ---
    let per_unit = match session.target_currency() {
        TargetCurrency::Sats => Decimal::ONE,
        TargetCurrency::Btc => Decimal::from(SATS_PER_BTC),
    };
    let mut per: HashMap<PaymentId, u128> = HashMap::new();
    for t in session.transfers().filter(|t| credited(t)) {
        *per.entry(t.payment_id).or_default() += u128::from(t.amount.get());
    }
    let mut credit_sum = 0u128;
    for (i, pay) in session.payments().iter().enumerate() {
        let rate = pay.rate().rate();
        if let Some(exact) = pay
            .due()
            .checked_mul(rate)
            .and_then(|v| v.checked_mul(per_unit))
        {
            same_at(
                || format!("rule 1: payments[{i}].target = ceil(due × rate)"),
                exact.ceil(),
                Decimal::from(pay.target().get()),
            )?;
        }
        let due = minor_of(pay.due(), scale);
        let Some(due) = due else {
            return Err(Mismatch::new(
                format!("payments[{i}].due in whole minor units"),
                format!("at most {scale} decimals"),
                pay.due(),
            ));
        };
        let target = u128::from(pay.target_msats().get());
        property("quote target is positive", target > 0, || {
            ("> 0 msat".into(), format!("{target}"))
        })?;
        let received = per.get(&pay.id()).copied().unwrap_or(0);
        let credit = mul_div_floor(due, received, target);
        credit_sum = credit_sum.saturating_add(credit);
        // The credit is never worth more than the funds at the quote's rate.
        let value = decimal(credit, scale)
            .and_then(|c| c.checked_mul(Decimal::from(MSATS_PER_SAT)))
            .and_then(|c| c.checked_mul(rate))
            .and_then(|c| c.checked_mul(per_unit));
        if let (Some(value), Ok(r)) = (value, u64::try_from(received)) {
            property(
                "rule 2: credit worth at most the funds received",
                value <= Decimal::from(r),
                || {
                    (
                        format!("<= {r} msat"),
                        format!("{value} msat (payments[{i}])"),
                    )
                },
            )?;
        }
        if received == target {
            same_at(
                || format!("rule 2: payments[{i}] paid exactly credits exactly its due"),
                due,
                credit,
            )?;
        }
    }
    same(
        "rule 2: totals.amount_received = Σ floor(due × received / target)",
        decimal(credit_sum, scale),
        Some(totals.amount_received),
    )?;

    // --- 3: no satoshi created or lost ---
    let sum = |f: &dyn Fn(&Transfer) -> bool| -> u128 {
        session
            .transfers()
            .filter(|t| f(t))
            .map(|t| u128::from(t.amount.get()))
            .sum()
    };
    let all = sum(&|t| !t.reversed);
    let after_paid = sum(&|t| !t.reversed && t.arrival == Arrival::AfterPaid);
    let late = sum(&|t| !t.reversed && t.arrival == Arrival::AfterDeactivated);
    let after_expiry = sum(&|t| !t.reversed && t.arrival == Arrival::AfterQuoteExpiry);
    let reversed = sum(&|t| t.reversed);
    let kept = u128::from(totals.counted.get()) + u128::from(totals.pending.get());
    same(
        "every non-reversed msat is counted, pending, overpaid or late",
        all,
        kept + after_paid + late,
    )?;
    let flagged = |kind| u128::from(session.flagged(kind).get());
    same("flags.late = late arrivals", late, flagged(FlagKind::Late))?;
    same(
        "flags.paid_after_expiry = arrivals after quote expiry",
        after_expiry,
        flagged(FlagKind::PaidAfterExpiry),
    )?;
    let overpaid = flagged(FlagKind::Overpaid);
    property(
        "flags.overpaid covers arrivals after paid",
        overpaid >= after_paid,
        || (format!(">= {after_paid}"), format!("{overpaid}")),
    )?;
    property(
        "flags.overpaid excess within the funds kept",
        overpaid - after_paid <= kept,
        || (format!("<= {kept}"), format!("{}", overpaid - after_paid)),
    )?;
    let amount = minor_of(session.amount(), scale).unwrap_or(u128::MAX);
    if credit_sum < amount {
        same(
            "no excess flagged while less than the amount was received",
            after_paid,
            overpaid,
        )?;
    }
    property(
        "flags.reversed within the reversed transfers",
        flagged(FlagKind::Reversed) <= reversed,
        || {
            (
                format!("<= {reversed}"),
                format!("{}", flagged(FlagKind::Reversed)),
            )
        },
    )?;
    let refund = if session.status() == SessionStatus::Deactivated {
        kept
    } else {
        0
    };
    same("flags.refund_due", refund, flagged(FlagKind::RefundDue))?;

    // --- 4: wake_at ---
    match session
        .payments()
        .iter()
        .find(|p| p.status() == PaymentStatus::Unpaid)
    {
        Some(open) => same(
            "wake_at = the unpaid quote's expiry",
            Some(open.expires_at()),
            session.wake_at(),
        )?,
        // No open quote: only the session's own expiry can wake it (quotes on demand).
        // (A quote never outlives its session: checked below.)
        None => same(
            "wake_at = the session's expiry while active",
            session
                .expires_at()
                .filter(|_| session.status() == SessionStatus::Active),
            session.wake_at(),
        )?,
    }
    if let Some(expires_at) = session.expires_at() {
        for p in session.payments() {
            property(
                "a quote never outlives its session",
                p.expires_at() <= expires_at,
                || (format!("<= {expires_at}"), format!("{}", p.expires_at())),
            )?;
        }
    }

    Ok(())
}

/// Checks that a session survives its JSON forms: `from_json(to_json())` equals it and
/// writes the same JSON, and `from_parts(head_json(), transfers())` (a store's form: the head
/// without transfers, plus the transfers) rebuilds the same JSON.
pub fn check_round_trips(session: &CheckoutSession) -> Result<(), Mismatch> {
    let json = session.to_json();
    let back = CheckoutSession::from_json(&json)
        .map_err(|e| Mismatch::new("JSON round-trip: from_json(to_json())", "Ok", e))?;
    same(
        "JSON round-trip: the JSON",
        json.as_str(),
        back.to_json().as_str(),
    )?;
    if &back != session {
        return Err(Mismatch::new(
            "JSON round-trip: the session",
            session,
            &back,
        ));
    }
    let head = session.head_json();
    property(
        "head_json() has no transfers",
        !head.contains(r#""transfers""#),
        || ("no \"transfers\"".into(), head.clone()),
    )?;
    let parts = CheckoutSession::from_parts(&head, session.transfers().cloned())
        .map_err(|e| Mismatch::new("from_parts(head_json(), transfers())", "Ok", e))?;
    same(
        "from_parts(head_json(), transfers()).to_json()",
        json.as_str(),
        parts.to_json().as_str(),
    )?;
    Ok(())
}
