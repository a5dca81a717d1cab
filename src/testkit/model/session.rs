//! Creating a [`ReferenceSession`], its getters, and the computations its commands share
//! (credits, flags, expiries).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::inputs::{MAX_DESCRIPTION_CHARS, SessionSpec};
use super::state::{
    Details, ModelPayment, ModelTransfer, ReferenceSession, ev, ev_p, mul_div_ceil, mul_div_floor,
    to_msats, truncate, unix_ms,
};
use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::id::PaymentId;
use crate::metadata::MetadataValue;
use crate::money::{Currency, MAX_MONEY_SATS, Msats, TargetCurrency};
use crate::payment::PaymentState;
use crate::session::{Flag, FlagKind, MAX_TTL_SECS, MIN_TTL_SECS, SessionState, SessionStatus};
use crate::transfer::{Arrival, PaymentMethod, Transfer};

impl ReferenceSession {
    /// The model of a session created from `spec` at `now`, with the events of creation; the
    /// same errors as [`CheckoutSession::create`](crate::CheckoutSession::create) for invalid
    /// amounts, tolerances, ttls, method sets and descriptions.
    pub fn create(
        spec: &SessionSpec,
        now: OffsetDateTime,
    ) -> Result<(Self, Vec<SessionEvent>), Error> {
        let now = truncate(now);
        if spec.amount_minor == 0 {
            return Err(Error::AmountNotPositive);
        }
        let bitcoin = matches!(spec.currency, Currency::Btc | Currency::Sats);
        if bitcoin && spec.amount_minor > MAX_MONEY_SATS {
            return Err(Error::AmountTooLarge);
        }
        if spec.tolerance_hundredths >= 10_000 {
            return Err(Error::InvalidTolerance(spec.tolerance()));
        }
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&spec.ttl_secs) {
            return Err(Error::InvalidTtl(spec.ttl_secs));
        }
        if !spec.lightning && !spec.onchain {
            return Err(Error::NoPaymentMethod);
        }
        if let Some(d) = &spec.description {
            if d.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(Error::InvalidText {
                    field: "description",
                    reason: "too long",
                });
            }
            if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return Err(Error::InvalidText {
                    field: "description",
                    reason: "contains control characters",
                });
            }
        }
        if let Some(at) = spec.expires_at {
            let after = at - now;
            if after < time::Duration::seconds(MIN_TTL_SECS) || after > time::Duration::days(365) {
                return Err(Error::InvalidExpiry {
                    expires_at_ms: unix_ms(at) as i64,
                    created_ms: unix_ms(now) as i64,
                });
            }
        }
        let model = Self {
            currency: spec.currency,
            target_currency: spec.target_currency,
            scale: spec.currency.scale(),
            amount_minor: u128::from(spec.amount_minor),
            tolerance_hundredths: u128::from(spec.tolerance_hundredths),
            confirmations: spec.confirmations.confirmations(),
            lightning: spec.lightning,
            onchain: spec.onchain,
            ttl_secs: spec.ttl_secs,
            expires_at: spec.expires_at.map(truncate),
            state: SessionState::Active,
            payments: Vec::new(),
            transfers: BTreeMap::new(),
            address: None,
            created: now,
            modified: now,
            version: 0,
            details: Details {
                description: spec.description.clone(),
                metadata: spec
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect(),
                success_url: None,
                success_message: None,
            },
            resolved: BTreeMap::new(),
        };
        Ok((model, vec![ev(EventType::CheckoutSessionCreated, now)]))
    }

    /// [`create`](Self::create) without the events.
    pub fn new(spec: &SessionSpec, now: OffsetDateTime) -> Result<Self, Error> {
        Self::create(spec, now).map(|(model, _)| model)
    }

    // ---- getters ------------------------------------------------------------------------

    /// The base currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The currency the customer pays in.
    pub fn target_currency(&self) -> TargetCurrency {
        self.target_currency
    }

    /// The price in minor units.
    pub fn amount_minor(&self) -> u128 {
        self.amount_minor
    }

    /// Minor units the session must count to be paid (rule 3 of [`crate::money`]):
    /// `amount − floor(amount × tolerance / 100)`.
    pub fn threshold_minor(&self) -> u128 {
        self.amount_minor - self.amount_minor * self.tolerance_hundredths / 10_000
    }

    /// Whether `method` is accepted.
    pub fn accepts(&self, method: PaymentMethod) -> bool {
        match method {
            PaymentMethod::Lightning => self.lightning,
            PaymentMethod::Onchain => self.onchain,
        }
    }

    /// The quote lifetime, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// The state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The status.
    pub fn status(&self) -> SessionStatus {
        self.state.status()
    }

    /// When it was created.
    pub fn created(&self) -> OffsetDateTime {
        self.created
    }

    /// When it last changed.
    pub fn modified(&self) -> OffsetDateTime {
        self.modified
    }

    /// Changes applied since creation.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The session's on-chain address, once a quote was issued with one.
    pub fn onchain_address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// The quotes, oldest first.
    pub fn payments(&self) -> &[ModelPayment] {
        &self.payments
    }

    /// The unpaid quote, if any (even if past its expiry and not yet marked expired).
    pub fn open_payment(&self) -> Option<&ModelPayment> {
        self.payments.iter().find(|p| p.unpaid())
    }

    /// The quote that is open at `now`: unpaid and not past its expiry.
    pub fn open_payment_at(&self, now: OffsetDateTime) -> Option<&ModelPayment> {
        let now = truncate(now);
        self.payments
            .iter()
            .find(|p| p.unpaid() && now < p.expires_at)
    }

    /// The quote a new on-chain transfer seen at `now` is attributed to: the one open at
    /// `now`, else the latest.
    pub fn onchain_payment_at(&self, now: OffsetDateTime) -> Option<&ModelPayment> {
        self.open_payment_at(now).or(self.payments.last())
    }

    /// Every transfer, as the core's [`Transfer`] values, sorted by key.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.transfers
            .iter()
            .map(|(key, t)| Transfer {
                key: *key,
                payment_id: self.payments[t.payment].id,
                amount: Msats::new(t.amount),
                arrival: t.arrival,
                confirmations: t.confirmations,
                rbf: t.rbf,
                reversed: t.reversed,
                first_seen: t.first_seen,
                counted_at: t.counted_at,
                sequence: None,
            })
            .collect()
    }

    /// Msats of non-reversed transfers attributed to `payment`, whatever their arrival.
    pub fn received_for(&self, payment: PaymentId) -> Msats {
        let sum: u128 = self
            .transfers
            .values()
            .filter(|t| !t.reversed && self.payments[t.payment].id == payment)
            .map(|t| u128::from(t.amount))
            .sum();
        to_msats(sum)
    }

    /// Funds that count towards the price.
    pub fn counted(&self) -> Msats {
        to_msats(self.sums().iter().map(|s| s.1).sum())
    }

    /// Funds seen but still waiting for confirmations.
    pub fn pending(&self) -> Msats {
        let sums = self.sums();
        let received: u128 = sums.iter().map(|s| s.0).sum();
        let counted: u128 = sums.iter().map(|s| s.1).sum();
        to_msats(received - counted)
    }

    /// Credit of counted funds in minor units (`amount_paid`): rule 2 per quote, summed.
    pub fn paid_credit_minor(&self) -> u128 {
        self.credits().1
    }

    /// Credit of counted and pending funds in minor units (`amount_received`).
    pub fn received_credit_minor(&self) -> u128 {
        self.credits().0
    }

    /// `amount_paid` as a decimal at the currency's scale.
    pub fn amount_paid(&self) -> Option<Decimal> {
        self.decimal(self.paid_credit_minor())
    }

    /// `amount_received` as a decimal at the currency's scale.
    pub fn amount_received(&self) -> Option<Decimal> {
        self.decimal(self.received_credit_minor())
    }

    /// Minor units as a decimal at the currency's scale (`None` beyond 96 bits).
    pub fn decimal(&self, minor: u128) -> Option<Decimal> {
        let v = i128::try_from(minor).ok().filter(|v| *v < (1i128 << 96))?;
        Some(Decimal::from_i128_with_scale(v, self.scale))
    }

    /// The flags, in the order of [`FlagKind`], kinds with nothing left out.
    pub fn flags(&self) -> Vec<Flag> {
        self.flag_map()
            .into_iter()
            .map(|(kind, amount)| Flag {
                resolved: Msats::new(self.resolved.get(&kind).copied().unwrap_or(0)),
                kind,
                amount: to_msats(amount),
            })
            .collect()
    }

    /// The flagged amount of one kind.
    pub fn flagged(&self, kind: FlagKind) -> Msats {
        to_msats(self.flag(kind))
    }

    /// Whether the session needs a new quote at `now`.
    pub fn needs_quote(&self, now: OffsetDateTime) -> bool {
        self.active()
            && self.expires_at.is_none_or(|e| now < e)
            && self.open_payment_at(now).is_none()
            && self.received_credit_minor() < self.threshold_minor()
    }

    /// When time alone changes the session: its unpaid quote's expiry or, while it is
    /// active, its own, whichever is first; else `None` (quotes are made on demand, never
    /// because time passed).
    pub fn wake_at(&self) -> Option<OffsetDateTime> {
        let quote = self.open_payment().map(|open| open.expires_at);
        let own = self.expires_at.filter(|_| self.active());
        match (quote, own) {
            (Some(q), Some(s)) => Some(q.min(s)),
            (q, s) => q.or(s),
        }
    }

    /// The flagged msats of `kind` no resolution covers.
    pub fn unresolved(&self, kind: FlagKind) -> Msats {
        let resolved = self.resolved.get(&kind).copied().unwrap_or(0);
        to_msats(self.flag(kind)).saturating_sub(Msats::new(resolved))
    }

    /// The description.
    pub fn description(&self) -> Option<&str> {
        self.details.description.as_deref()
    }

    /// The success URL.
    pub fn success_url(&self) -> Option<&str> {
        self.details.success_url.as_deref()
    }

    /// The success message.
    pub fn success_message(&self) -> Option<&str> {
        self.details.success_message.as_deref()
    }

    /// The metadata, in key order.
    pub fn metadata(&self) -> &BTreeMap<String, MetadataValue> {
        &self.details.metadata
    }

    // ---- accounting ---------------------------------------------------------------------

    pub(super) fn active(&self) -> bool {
        matches!(self.state, SessionState::Active)
    }

    fn required(&self, rbf: bool) -> u32 {
        if rbf {
            self.confirmations.max(1)
        } else {
            self.confirmations
        }
    }

    /// Counted money keeps counting until it is reversed.
    pub(super) fn meets(&self, t: &ModelTransfer) -> bool {
        !t.reversed
            && (t.counted_at.is_some() || !t.onchain || t.confirmations >= self.required(t.rbf))
    }

    /// Rule 2: `floor(due × received / target)`.
    fn credit(p: &ModelPayment, msats: u128) -> u128 {
        mul_div_floor(p.due_minor, msats, p.target_msats())
    }

    /// Per payment: (received, counted) msats of credited transfers.
    fn sums(&self) -> Vec<(u128, u128)> {
        let mut sums = vec![(0u128, 0u128); self.payments.len()];
        for t in self.transfers.values().filter(|t| t.credited()) {
            if let Some(s) = sums.get_mut(t.payment) {
                s.0 += u128::from(t.amount);
                if self.meets(t) {
                    s.1 += u128::from(t.amount);
                }
            }
        }
        sums
    }

    /// (received, counted) credit in minor units.
    fn credits(&self) -> (u128, u128) {
        let sums = self.sums();
        self.payments
            .iter()
            .zip(&sums)
            .fold((0u128, 0u128), |(r, c), (p, s)| {
                (
                    r.saturating_add(Self::credit(p, s.0)),
                    c.saturating_add(Self::credit(p, s.1)),
                )
            })
    }

    /// Msats past the full amount: quotes walked in order, each credited until the amount
    /// is reached; what a quote received beyond that point is excess.
    fn excess(&self) -> u128 {
        let sums = self.sums();
        let mut credited = 0u128;
        let mut excess = 0u128;
        for (p, s) in self.payments.iter().zip(&sums) {
            let need = self.amount_minor.saturating_sub(credited);
            let needed = mul_div_ceil(need, p.target_msats(), p.due_minor);
            excess += s.0.saturating_sub(needed);
            credited = credited.saturating_add(Self::credit(p, s.0));
        }
        excess
    }

    fn flag_map(&self) -> BTreeMap<FlagKind, u128> {
        let mut f: BTreeMap<FlagKind, u128> = BTreeMap::new();
        for t in self.transfers.values() {
            let kind = if t.reversed {
                if t.counted_at.is_none() {
                    continue;
                }
                FlagKind::Reversed
            } else {
                match t.arrival {
                    Arrival::AfterPaid => FlagKind::Overpaid,
                    Arrival::AfterDeactivated => FlagKind::Late,
                    Arrival::AfterQuoteExpiry => FlagKind::PaidAfterExpiry,
                    _ => continue,
                }
            };
            *f.entry(kind).or_default() += u128::from(t.amount);
        }
        let excess = self.excess();
        if excess > 0 {
            *f.entry(FlagKind::Overpaid).or_default() += excess;
        }
        if matches!(self.state, SessionState::Deactivated { .. }) {
            let kept: u128 = self
                .transfers
                .values()
                .filter(|t| t.credited())
                .map(|t| u128::from(t.amount))
                .sum();
            if kept > 0 {
                f.insert(FlagKind::RefundDue, kept);
            }
        }
        f
    }

    fn flag(&self, kind: FlagKind) -> u128 {
        self.flag_map().get(&kind).copied().unwrap_or(0)
    }

    pub(super) fn snapshot(&self) -> [u128; 3] {
        [
            self.flag(FlagKind::Overpaid),
            self.flag(FlagKind::Late),
            self.flag(FlagKind::PaidAfterExpiry),
        ]
    }

    // ---- commands -----------------------------------------------------------------------

    pub(super) fn clock(&self, now: OffsetDateTime) -> Result<(), Error> {
        if now < self.modified {
            return Err(Error::ClockWentBackwards {
                now_ms: unix_ms(now),
                last_ms: unix_ms(self.modified),
            });
        }
        Ok(())
    }

    pub(super) fn invalid(&self, action: &'static str) -> Error {
        Error::InvalidTransition {
            action,
            status: self.status().as_str(),
        }
    }

    pub(super) fn touch(&mut self, now: OffsetDateTime) {
        self.modified = now;
        self.version += 1;
    }

    /// Marks unpaid quotes past their expiry as expired (the calling command bumps the
    /// version).
    pub(super) fn expire_due(&mut self, now: OffsetDateTime) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        for p in self
            .payments
            .iter_mut()
            .filter(|p| p.unpaid() && now >= p.expires_at)
        {
            p.state = PaymentState::Expired {
                expired_at: p.expires_at,
            };
            events.push(ev_p(EventType::PaymentExpired, now, p.id));
        }
        if let Some(expires_at) = self.expires_at.filter(|e| self.active() && now >= *e) {
            self.state = SessionState::Deactivated {
                deactivated_at: expires_at,
                reason: crate::session::DeactivationReason::Expired,
            };
            events.push(ev(EventType::CheckoutSessionDeactivated, now));
        }
        events
    }
}
