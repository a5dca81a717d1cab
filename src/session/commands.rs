//! The commands of a session: each validates first, then applies completely.

use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use super::{CheckoutSession, Details, SessionChange, SessionParams, SessionState};
use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::id::{PaymentId, SessionId};
use crate::json::millis::truncate;
use crate::money::{ExchangeRate, Msats, Sats, from_minor_units};
use crate::payment::PaymentRequest;
use crate::payment::{Payment, PaymentState};
use crate::transfer::PaymentMethod;

/// The terms of a quote about to be issued: computed by
/// [`CheckoutSession::next_quote`], then turned into a payment request by a generator and
/// passed back to [`CheckoutSession::issue_quote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteTerms {
    pub(crate) payment_id: PaymentId,
    pub(crate) due: Decimal,
    pub(crate) target: Sats,
    pub(crate) rate: ExchangeRate,
    pub(crate) created: OffsetDateTime,
    pub(crate) expires_at: OffsetDateTime,
}

impl QuoteTerms {
    /// The id the payment will have.
    pub fn payment_id(&self) -> PaymentId {
        self.payment_id
    }

    /// The base amount the quote covers.
    pub fn due(&self) -> Decimal {
        self.due
    }

    /// What the customer pays, in sats.
    pub fn target(&self) -> Sats {
        self.target
    }

    /// The same in msats (for Lightning invoices).
    pub fn target_msats(&self) -> Msats {
        self.target.to_msats()
    }

    /// The locked rate.
    pub fn rate(&self) -> &ExchangeRate {
        &self.rate
    }

    /// When the quote is issued (the `now` it was computed at).
    pub fn issued_at(&self) -> OffsetDateTime {
        self.created
    }

    /// When the quote runs out; a Lightning invoice for it must expire no later.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

impl CheckoutSession {
    /// Creates a session from validated parameters. It has no quote yet: follow with
    /// [`next_quote`](Self::next_quote) and [`issue_quote`](Self::issue_quote).
    pub fn create(
        id: SessionId,
        params: SessionParams,
        now: OffsetDateTime,
    ) -> Result<(Self, SessionChange), Error> {
        let now = truncate(now);
        let amount = params.validate()?;
        params.check_expiry(now)?;
        let session = Self {
            id,
            livemode: params.livemode,
            amount,
            currency: params.currency,
            target_currency: params.target_currency,
            ttl_secs: params.effective_ttl(),
            tolerance: params
                .amount_paid_tolerance
                .unwrap_or(Decimal::ZERO)
                .normalize(),
            limits: super::accounting::Limits::of(
                amount,
                params.currency.scale(),
                params.amount_paid_tolerance.unwrap_or(Decimal::ZERO),
            ),
            caps: params.limits,
            held: Default::default(),
            confirmations: params.confirmations,
            statement_descriptor: params.statement_descriptor.clone(),
            source: params.source.clone(),
            source_id: params.source_id.clone(),
            source_id_integer: params.source_id_integer
                && params
                    .source_id
                    .as_deref()
                    .is_some_and(|id| id.parse::<i64>().is_ok()),
            details: Details {
                description: params.description.clone(),
                metadata: params.metadata.clone(),
                success_url: params.success_url.clone(),
                success_message: params.success_message.clone(),
                cancel_url: params.cancel_url.clone(),
                branding: params.branding_ref(),
            },
            payment_methods: params.payment_methods,
            state: SessionState::Active,
            payments: Default::default(),
            transfers: Default::default(),
            ledger: Default::default(),
            resolutions: Default::default(),
            onchain_address: None,
            link: params.link,
            expires_at: params.expires_at,
            created: now,
            modified: now,
            version: 0,
            texts: Default::default(),
        };
        let mut change = SessionChange::default();
        change.push(SessionEvent::new(EventType::CheckoutSessionCreated, now));
        Ok((session, change))
    }

    /// Whether the session should get a new quote at `now`: it is active, no quote is
    /// open (after expiring those that ran out) and what it received is below the threshold.
    ///
    /// Quotes are made on demand: when the session is created, when a customer opens or
    /// fetches it, and after a partial payment; never by the passing of time alone.
    pub fn needs_quote(&self, now: OffsetDateTime) -> bool {
        matches!(self.state, SessionState::Active)
            && self.expires_at.is_none_or(|e| now < e)
            && self.open_payment().is_none_or(|p| now >= p.expires_at)
            && self.received_credit() < self.threshold_minor()
    }

    /// Refuses a new quote once the session has issued its limit
    /// ([`SessionLimits::quotes`](super::SessionLimits::quotes)).
    pub fn check_quote_limit(&self) -> Result<(), Error> {
        let max = self.caps.quotes();
        if self.payments.len() >= max as usize {
            return Err(Error::QuoteLimitReached { max });
        }
        Ok(())
    }

    /// Whether it lists a transfer with this key (held transfers are not listed).
    pub fn has_transfer(&self, key: &crate::transfer::TransferKey) -> bool {
        self.transfers.contains_key(key)
    }

    /// Whether it keeps as many transfers as its cap allows: a new one would be held.
    pub fn at_transfer_cap(&self) -> bool {
        self.transfers.len() >= self.caps.transfers() as usize
    }

    /// The caps on quotes and transfers it was created with.
    pub fn limits(&self) -> super::SessionLimits {
        self.caps
    }

    /// What it holds apart: the transfers beyond its transfer cap (see
    /// [`SessionLimits`](super::SessionLimits)).
    pub fn held_transfers(&self) -> super::HeldTotals {
        self.held
    }

    /// When something happens to the session by the passing of time alone: its open quote
    /// runs out, or the session itself expires (whichever is first); `None` if nothing
    /// will happen without a command. A session whose quote expired is not woken to be
    /// quoted again: the next quote waits until someone looks (see
    /// [`needs_quote`](Self::needs_quote)), so sessions nobody looks at cost nothing.
    pub fn wake_at(&self) -> Option<OffsetDateTime> {
        let quote = self.open_payment().map(|p| p.expires_at);
        let session = self
            .expires_at
            .filter(|_| matches!(self.state, SessionState::Active));
        match (quote, session) {
            (Some(q), Some(s)) => Some(q.min(s)),
            (q, s) => q.or(s),
        }
    }

    /// The id the next quote gets: `candidate`, unless it does not sort after the newest
    /// payment's id, then the first id after that one. A session's payments are in issue
    /// order when sorted by (creation time, id), which is how stores rebuild the list: two
    /// quotes issued in one millisecond (a partial payment and its re-quote), or by servers
    /// whose clocks or id sources differ, still keep their order.
    pub fn next_payment_id(&self, candidate: PaymentId) -> PaymentId {
        match self.payments.last() {
            Some(newest) if candidate <= newest.id => PaymentId::from_uuid(uuid::Uuid::from_u128(
                newest.id.as_uuid().as_u128().saturating_add(1),
            )),
            _ => candidate,
        }
    }

    /// The terms of the next quote at `rate`: the remaining due, converted with rule 1 of the
    /// money docs, valid for the session's ttl from `now`.
    pub fn next_quote(
        &self,
        payment_id: PaymentId,
        rate: ExchangeRate,
        now: OffsetDateTime,
    ) -> Result<QuoteTerms, Error> {
        let now = truncate(now);
        self.check_clock(now)?;
        self.check_quote_limit()?;
        if rate.base() != self.currency || rate.target() != self.target_currency {
            return Err(Error::RateMismatch {
                want_base: self.currency.code(),
                want_target: self.target_currency.code(),
                got_base: rate.base().code(),
                got_target: rate.target().code(),
            });
        }
        if !matches!(self.state, SessionState::Active) {
            return Err(self.invalid("quote"));
        }
        if let Some(open) = self.open_payment().filter(|p| now < p.expires_at) {
            return Err(Error::QuoteAlreadyOpen(open.id));
        }
        if self.received_credit() >= self.threshold_minor() {
            return Err(self.invalid("quote a fully received"));
        }
        let due = from_minor_units(self.remaining_due_minor(), self.currency.scale());
        if self.payments.is_empty() {
            // A price worth less than one sat cannot be paid; a small rest after a partial
            // payment is simply rounded up to one sat (rule 1).
            rate.check_at_least_one_sat(self.amount)?;
        }
        if self.expires_at.is_some_and(|e| now >= e) {
            return Err(self.invalid("quote an expired"));
        }
        let target = rate.quote_sats(due)?;
        // A quote never outlives its session.
        let expires_at = now
            .checked_add(Duration::seconds(self.ttl_secs))
            .ok_or(Error::TimeOutOfRange)?
            .min(
                self.expires_at
                    .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc()),
            );
        Ok(QuoteTerms {
            payment_id,
            due,
            target,
            rate,
            created: now,
            expires_at,
        })
    }

    /// Issues a quote computed by [`next_quote`](Self::next_quote) with the payment request a
    /// generator made for it. The request must carry an invoice iff Lightning is enabled
    /// (expiring no later than the quote) and an address iff on-chain is (the session's own
    /// address once it has one).
    pub fn issue_quote(
        &mut self,
        terms: QuoteTerms,
        request: PaymentRequest,
        now: OffsetDateTime,
    ) -> Result<SessionChange, Error> {
        let now = truncate(now);
        // Re-derive the terms: the session may have changed since they were computed.
        let fresh = self.next_quote(terms.payment_id, terms.rate.clone(), now)?;
        if fresh.due != terms.due || fresh.target != terms.target || now < terms.created {
            return Err(Error::RequestMismatch(
                "quote terms are stale; compute them again",
            ));
        }
        if self.payments.iter().any(|p| p.id == terms.payment_id) {
            return Err(Error::RequestMismatch("payment id already used"));
        }
        // Stores rebuild the list in (creation time, id) order: a quote must sort after the
        // newest one (see `next_payment_id`).
        if let Some(newest) = self.payments.last()
            && (now, terms.payment_id) <= (newest.created, newest.id)
        {
            return Err(Error::RequestMismatch(
                "payment id does not sort after the newest payment",
            ));
        }
        self.check_request(&terms, &request, now)?;
        let mut request = request;
        if let Some(inv) = request.lightning.as_mut() {
            inv.expires_at = truncate(inv.expires_at);
        }
        let mut change = self.expire_due(now);
        if self.onchain_address.is_none() {
            self.onchain_address = request.onchain_address.clone();
        }
        let due_minor = crate::money::to_minor_units(terms.due, self.currency.scale())
            .and_then(|m| u128::try_from(m).ok())
            .unwrap_or(0);
        self.payments_mut().push(std::sync::Arc::new(Payment {
            id: terms.payment_id,
            due: terms.due,
            due_minor,
            target: terms.target,
            rate: terms.rate,
            request,
            state: PaymentState::Unpaid,
            created: now,
            modified: now,
            expires_at: terms.expires_at,
        }));
        self.ledger.make_room(self.payments.len());
        change.touch_payment(terms.payment_id);
        change.push(SessionEvent::new(EventType::PaymentCreated, now).payment(terms.payment_id));
        self.touch(now);
        Ok(change)
    }

    fn check_request(
        &self,
        terms: &QuoteTerms,
        request: &PaymentRequest,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        self.check_clock(now)?;
        if now >= terms.expires_at {
            return Err(Error::RequestMismatch(
                "the quote expired before it was issued",
            ));
        }
        match (&request.lightning, self.accepts(PaymentMethod::Lightning)) {
            (Some(inv), true) => {
                if inv.expires_at > terms.expires_at {
                    return Err(Error::RequestMismatch("invoice outlives its quote"));
                }
                inv.check_for_quote(terms.target_msats(), terms.expires_at)?;
                let hash_taken = self.payments.iter().any(|p| {
                    p.request
                        .lightning
                        .as_ref()
                        .is_some_and(|l| l.payment_hash == inv.payment_hash)
                });
                if hash_taken {
                    return Err(Error::RequestMismatch("invoice payment hash already used"));
                }
            }
            (None, false) => {}
            (Some(_), false) => return Err(Error::RequestMismatch("lightning is not enabled")),
            (None, true) => return Err(Error::RequestMismatch("lightning invoice missing")),
        }
        match (
            &request.onchain_address,
            self.accepts(PaymentMethod::Onchain),
        ) {
            (Some(addr), true) => match &self.onchain_address {
                Some(own) if own != addr => Err(Error::RequestMismatch(
                    "on-chain address differs from the session's",
                )),
                _ if addr.is_empty() => Err(Error::RequestMismatch("empty on-chain address")),
                _ => Ok(()),
            },
            (None, false) => Ok(()),
            (Some(_), false) => Err(Error::RequestMismatch("on-chain is not enabled")),
            (None, true) => Err(Error::RequestMismatch("on-chain address missing")),
        }
    }

    /// Expires the quotes that ran out at `now`. The session then needs a new quote
    /// ([`needs_quote`](Self::needs_quote)) if it is still active.
    pub fn expire_quotes(&mut self, now: OffsetDateTime) -> Result<SessionChange, Error> {
        let now = truncate(now);
        self.check_clock(now)?;
        let change = self.expire_due(now);
        if !change.is_empty() {
            self.touch(now);
        }
        Ok(change)
    }

    /// Marks unpaid quotes past their expiry as expired (no version bump: the caller's
    /// command does that).
    pub(crate) fn expire_due(&mut self, now: OffsetDateTime) -> SessionChange {
        let mut change = SessionChange::default();
        self.expire_due_into(now, &mut change);
        change
    }

    pub(super) fn expire_due_into(&mut self, now: OffsetDateTime, change: &mut SessionChange) {
        let due = self
            .unpaid_index()
            .filter(|&i| self.payments[i].is_due_to_expire(now));
        if let Some(p) = due.and_then(|i| self.payment_mut(i, change)) {
            p.state = PaymentState::Expired {
                expired_at: p.expires_at,
            };
            p.modified = now;
            let id = p.id;
            change.push(SessionEvent::new(EventType::PaymentExpired, now).payment(id));
        }
        // The session's own expiry: its quotes ran out with it (they never outlive it),
        // so only the session itself is left to close.
        if let (SessionState::Active, Some(expires_at)) = (self.state, self.expires_at)
            && now >= expires_at
        {
            self.state = SessionState::Deactivated {
                deactivated_at: expires_at,
                reason: super::DeactivationReason::Expired,
            };
            change.push(SessionEvent::new(
                EventType::CheckoutSessionDeactivated,
                now,
            ));
        }
    }

    /// Deactivates an active session: its open quote is cancelled; funds already received
    /// stay recorded and are flagged [`RefundDue`](super::FlagKind::RefundDue). A session
    /// found past its `expires_at` is deactivated as expired.
    pub fn deactivate(&mut self, now: OffsetDateTime) -> Result<SessionChange, Error> {
        let now = truncate(now);
        self.check_clock(now)?;
        if !matches!(self.state, SessionState::Active) {
            return Err(self.invalid("deactivate"));
        }
        let mut change = self.expire_due(now);
        if !matches!(self.state, SessionState::Active) {
            self.touch(now);
            return Ok(change);
        }
        if let Some(i) = self.unpaid_index()
            && let Some(p) = self.payment_mut(i, &mut change)
        {
            p.state = PaymentState::Cancelled { cancelled_at: now };
            p.modified = now;
            let id = p.id;
            change.push(SessionEvent::new(EventType::PaymentCancelled, now).payment(id));
        }
        self.state = SessionState::Deactivated {
            deactivated_at: now,
            reason: super::DeactivationReason::Requested,
        };
        change.push(SessionEvent::new(
            EventType::CheckoutSessionDeactivated,
            now,
        ));
        self.touch(now);
        Ok(change)
    }

    pub(crate) fn check_clock(&self, now: OffsetDateTime) -> Result<(), Error> {
        if now < self.modified {
            return Err(Error::ClockWentBackwards {
                now_ms: now.unix_timestamp_nanos() / 1_000_000,
                last_ms: self.modified.unix_timestamp_nanos() / 1_000_000,
            });
        }
        Ok(())
    }

    pub(crate) fn invalid(&self, action: &'static str) -> Error {
        Error::InvalidTransition {
            action,
            status: self.status().as_str(),
        }
    }
}
