//! The model's commands: quotes, transfer reports, expiry, deactivation and updates.

use time::{Duration, OffsetDateTime};

use super::inputs::{RateSpec, ReportSpec, UpdateSpec};
use super::state::{
    ExpectedQuote, ModelPayment, ModelTransfer, ReferenceSession, ev, ev_p, ev_t, mul_div_ceil,
    to_msats, truncate,
};
use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::id::PaymentId;
use crate::money::{MAX_MONEY_SATS, MSATS_PER_SAT, SATS_PER_BTC, Sats, TargetCurrency};
use crate::payment::PaymentState;
use crate::request::PaymentRequest;
use crate::session::SessionState;
use crate::transfer::Arrival;

impl ReferenceSession {
    /// The terms of the next quote at `rate`, or the error the core must return.
    pub fn next_quote(&self, rate: &RateSpec, now: OffsetDateTime) -> Result<ExpectedQuote, Error> {
        let now = truncate(now);
        self.clock(now)?;
        if !self.active() {
            return Err(self.invalid("quote"));
        }
        if let Some(open) = self.open_payment_at(now) {
            return Err(Error::QuoteAlreadyOpen(open.id));
        }
        let received = self.received_credit_minor();
        if received >= self.threshold_minor() {
            return Err(Error::InvalidTransition {
                action: "quote a fully received",
                status: "active",
            });
        }
        let due = self.amount_minor - received;
        // Rule 1: ceil(due × rate) sats, with due = due_minor / 10^scale, the rate
        // mantissa / 10^rate_scale target units, and a target unit worth `per_unit` sats.
        let per_unit = match self.target_currency {
            TargetCurrency::Sats => 1,
            TargetCurrency::Btc => u128::from(SATS_PER_BTC),
        };
        let numerator = u128::from(rate.mantissa)
            .checked_mul(per_unit)
            .ok_or(Error::AmountTooLarge)?;
        let denominator = 10u128
            .checked_pow(self.scale + rate.scale)
            .ok_or(Error::AmountTooLarge)?;
        // A price worth less than one sat is refused on the first quote; a small rest after
        // a partial payment is rounded up to one sat.
        if self.payments.is_empty()
            && self
                .amount_minor
                .checked_mul(numerator)
                .is_some_and(|v| v < denominator)
        {
            return Err(Error::AmountBelowOneSat);
        }
        if self.expires_at.is_some_and(|e| now >= e) {
            return Err(self.invalid("quote an expired"));
        }
        let target = mul_div_ceil(due, numerator, denominator);
        if target == 0 {
            return Err(Error::AmountBelowOneSat);
        }
        let target = u64::try_from(target)
            .ok()
            .filter(|t| *t <= MAX_MONEY_SATS)
            .ok_or(Error::AmountTooLarge)?;
        Ok(ExpectedQuote {
            due_minor: due,
            target: Sats::new(target),
            issued_at: now,
            // A quote never outlives its session.
            expires_at: now
                .checked_add(Duration::seconds(self.ttl_secs))
                .ok_or(Error::TimeOutOfRange)?
                .min(self.expires_at.unwrap_or(now + Duration::days(366 * 100))),
        })
    }

    /// Issues the next quote at `rate` as payment `payment_id` with the payment request
    /// `request`, checking the request as the core does.
    pub fn issue_quote(
        &mut self,
        payment_id: PaymentId,
        rate: &RateSpec,
        request: &PaymentRequest,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        let quote = self.next_quote(rate, now)?;
        if self.payments.iter().any(|p| p.id == payment_id) {
            return Err(Error::RequestMismatch("payment id already used"));
        }
        if now >= quote.expires_at {
            return Err(Error::RequestMismatch(
                "the quote expired before it was issued",
            ));
        }
        match (&request.lightning, self.lightning) {
            (Some(inv), true) => {
                if inv.expires_at > quote.expires_at {
                    return Err(Error::RequestMismatch("invoice outlives its quote"));
                }
                if self
                    .payments
                    .iter()
                    .any(|p| p.invoice == Some(inv.payment_hash))
                {
                    return Err(Error::RequestMismatch("invoice payment hash already used"));
                }
            }
            (None, false) => {}
            (Some(_), false) => return Err(Error::RequestMismatch("lightning is not enabled")),
            (None, true) => return Err(Error::RequestMismatch("lightning invoice missing")),
        }
        match (&request.onchain_address, self.onchain) {
            (Some(addr), true) => match &self.address {
                Some(own) if own != addr => {
                    return Err(Error::RequestMismatch(
                        "on-chain address differs from the session's",
                    ));
                }
                _ if addr.is_empty() => {
                    return Err(Error::RequestMismatch("empty on-chain address"));
                }
                _ => {}
            },
            (None, false) => {}
            (Some(_), false) => return Err(Error::RequestMismatch("on-chain is not enabled")),
            (None, true) => return Err(Error::RequestMismatch("on-chain address missing")),
        }
        let mut events = self.expire_due(now);
        if self.address.is_none() {
            self.address = request.onchain_address.clone();
        }
        self.payments.push(ModelPayment {
            id: payment_id,
            due_minor: quote.due_minor,
            target: quote.target,
            rate: *rate,
            created: now,
            expires_at: quote.expires_at,
            state: PaymentState::Unpaid,
            invoice: request.lightning.as_ref().map(|i| i.payment_hash),
        });
        events.push(ev_p(EventType::PaymentCreated, now, payment_id));
        self.touch(now);
        Ok(events)
    }

    /// After the facts changed: marks the session paid if the threshold is reached, and
    /// raises a flag event for each kind of unexpected money that grew.
    fn settle(&mut self, before: [u128; 3], now: OffsetDateTime) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        if self.active() && self.paid_credit_minor() >= self.threshold_minor() {
            self.state = SessionState::Paid { paid_at: now };
            events.push(ev(EventType::CheckoutSessionPaid, now));
            for p in self.payments.iter_mut().filter(|p| p.unpaid()) {
                p.state = PaymentState::Expired { expired_at: now };
                events.push(ev_p(EventType::PaymentExpired, now, p.id));
            }
        }
        let after = self.snapshot();
        let kinds = [
            EventType::Overpaid,
            EventType::LatePayment,
            EventType::PaidAfterExpiry,
        ];
        for ((kind, b), a) in kinds.into_iter().zip(before).zip(after) {
            if a > b {
                let mut e = ev(kind, now);
                e.amount = Some(to_msats(a - b));
                events.push(e);
            }
        }
        events
    }

    /// Records a transfer report.
    pub fn record(
        &mut self,
        report: &ReportSpec,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        let key = report.key();
        let amount = report.msats();
        if amount == 0 {
            return Err(Error::AmountNotPositive);
        }
        let amount = u64::try_from(amount)
            .ok()
            .filter(|a| *a <= MAX_MONEY_SATS * MSATS_PER_SAT)
            .ok_or(Error::AmountTooLarge)?;
        if let Some(known) = self.transfers.get(&key).cloned() {
            return self.update_transfer(report, known, now);
        }
        // A new transfer: its invoice or address must belong to this session.
        let index = match report {
            ReportSpec::Lightning { hash, .. } => {
                if !self.lightning {
                    return Err(Error::MethodNotEnabled("lightning"));
                }
                self.payments
                    .iter()
                    .position(|p| p.invoice == Some(*hash))
                    .ok_or(Error::UnknownPaymentRequest)?
            }
            ReportSpec::Onchain { address, .. } => {
                if !self.onchain {
                    return Err(Error::MethodNotEnabled("onchain"));
                }
                if self.payments.is_empty() || self.address.as_deref() != Some(address.as_str()) {
                    return Err(Error::UnknownPaymentRequest);
                }
                // The quote open when it is first seen, else the latest.
                self.payments
                    .iter()
                    .position(|p| p.unpaid() && now < p.expires_at)
                    .unwrap_or(self.payments.len() - 1)
            }
        };
        let before = self.snapshot();
        let mut events = self.expire_due(now);
        let arrival = match self.state {
            SessionState::Paid { .. } => Arrival::AfterPaid,
            SessionState::Deactivated { .. } => Arrival::AfterDeactivated,
            _ => match self.payments[index].state {
                PaymentState::Unpaid => Arrival::Expected,
                // A partly paid quote's rate lock still ends at its expiry.
                PaymentState::Paid { .. } if now < self.payments[index].expires_at => {
                    Arrival::Expected
                }
                _ => Arrival::AfterQuoteExpiry,
            },
        };
        let mut t = ModelTransfer {
            payment: index,
            amount,
            arrival,
            confirmations: report.confirmations(),
            rbf: report.rbf(),
            reversed: report.is_reversed(),
            onchain: matches!(report, ReportSpec::Onchain { .. }),
            first_seen: now,
            counted_at: None,
        };
        if self.meets(&t) {
            t.counted_at = Some(now);
        }
        let pid = self.payments[index].id;
        events.push(ev_t(EventType::TransferReceived, now, pid, key, amount));
        if report.is_reversed() {
            events.push(ev_t(EventType::TransferReversed, now, pid, key, amount));
        }
        self.transfers.insert(key, t);
        if self.payments[index].unpaid() && !report.is_reversed() {
            self.payments[index].state = PaymentState::Paid { paid_at: now };
            events.push(ev_p(EventType::PaymentPaid, now, pid));
            events.push(ev_p(EventType::CheckoutSessionPaymentPaid, now, pid));
        }
        events.extend(self.settle(before, now));
        self.touch(now);
        Ok(events)
    }

    /// A report of a known transfer: only more confirmations, the RBF signal or a reversal
    /// can change it.
    fn update_transfer(
        &mut self,
        report: &ReportSpec,
        known: ModelTransfer,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let key = report.key();
        let amount = known.amount;
        if u128::from(amount) != report.msats() {
            return Err(Error::TransferAmountMismatch {
                first: amount,
                again: u64::try_from(report.msats()).unwrap_or(u64::MAX),
            });
        }
        if let Some(a) = report.address()
            && self.address.as_deref() != Some(a)
        {
            return Err(Error::UnknownPaymentRequest);
        }
        if known.reversed {
            // A reversal is final.
            return Ok(Vec::new());
        }
        let mut next = known.clone();
        next.confirmations = next.confirmations.max(report.confirmations());
        next.rbf |= report.rbf();
        next.reversed |= report.is_reversed();
        if next.counted_at.is_none() && self.meets(&next) {
            next.counted_at = Some(now);
        }
        if next == known {
            return Ok(Vec::new());
        }
        let before = self.snapshot();
        let mut events = self.expire_due(now);
        let pid = self.payments[known.payment].id;
        if next.counted_at.is_some() && known.counted_at.is_none() {
            events.push(ev_t(EventType::TransferConfirmed, now, pid, key, amount));
        }
        if next.reversed && !known.reversed {
            events.push(ev_t(EventType::TransferReversed, now, pid, key, amount));
        }
        if events.is_empty() {
            events.push(ev_t(EventType::TransferUpdated, now, pid, key, amount));
        }
        self.transfers.insert(key, next);
        events.extend(self.settle(before, now));
        self.touch(now);
        Ok(events)
    }

    /// Expires the quotes that ran out at `now`.
    pub fn expire(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        let events = self.expire_due(now);
        if !events.is_empty() {
            self.touch(now);
        }
        Ok(events)
    }

    /// Deactivates an active session, cancelling its unpaid quote.
    pub fn deactivate(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        if !self.active() {
            return Err(self.invalid("deactivate"));
        }
        let mut events = self.expire_due(now);
        if !self.active() {
            // It expired at or before `now`: deactivated as expired.
            self.touch(now);
            return Ok(events);
        }
        for p in self.payments.iter_mut().filter(|p| p.unpaid()) {
            p.state = PaymentState::Cancelled { cancelled_at: now };
            events.push(ev_p(EventType::PaymentCancelled, now, p.id));
        }
        self.state = SessionState::Deactivated {
            reason: crate::session::DeactivationReason::Requested,
            deactivated_at: now,
        };
        events.push(ev(EventType::CheckoutSessionDeactivated, now));
        self.touch(now);
        Ok(events)
    }

    /// Applies an update from the menu; an update that changes nothing returns no events.
    pub fn update(
        &mut self,
        update: &UpdateSpec,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        let next = update.apply(&self.details)?;
        if next == self.details {
            return Ok(Vec::new());
        }
        let mut events = self.expire_due(now);
        self.details = next;
        events.push(ev(EventType::CheckoutSessionUpdated, now));
        self.touch(now);
        Ok(events)
    }
}

impl ReferenceSession {
    /// Records a resolution of `amount` msats of the `kind` flag (a refund with a
    /// reference, or an acceptance), or the error the core must return.
    pub fn resolve(
        &mut self,
        kind: crate::session::FlagKind,
        amount: u64,
        refunded: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        let now = truncate(now);
        self.clock(now)?;
        if amount == 0 {
            return Err(Error::AmountNotPositive);
        }
        // The model's refunds always carry a reference: `refunded` only picks the outcome.
        let _ = refunded;
        let mut next = self.clone();
        let mut events = next.expire_due(now);
        let unresolved = next.unresolved(kind).get();
        if amount > unresolved {
            return Err(Error::ResolutionExceedsFlag {
                kind: kind.as_str(),
                requested: amount,
                unresolved,
            });
        }
        *self = next;
        let entry = self.resolved.entry(kind).or_insert(0);
        *entry = entry.saturating_add(amount);
        events.push(SessionEvent {
            amount: Some(crate::money::Msats::new(amount)),
            ..ev(EventType::FlagResolved, now)
        });
        self.touch(now);
        Ok(events)
    }
}
