//! The checkout service: drives sessions through the ports (store, rates, payment
//! requests, clock).
//!
//! Each operation loads the session, applies one core command at the clock's time, issues
//! a new quote when the session needs one, and commits the new state with its events in
//! one atomic compare-and-swap. A conflict (another process changed the session in between)
//! is retried from a fresh load, so concurrent reports of the same or different transfers
//! end with each counted exactly once.
//!
//! The service is synchronous and `Send + Sync` when its ports are; from async code use
//! [`AsyncCheckout`] (feature `async`), which runs it on blocking threads.

#[cfg(feature = "async")]
mod async_facade;
mod links;
#[cfg(feature = "async")]
pub use async_facade::AsyncCheckout;

use time::OffsetDateTime;

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::event::{Event, EventType, SessionEvent};
use crate::id::{EventId, PaymentId, SessionId};
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::session::{CheckoutSession, SessionParams, SessionUpdate};
use crate::store::{Commit, IdempotencyRecord, ListQuery, Page, Store, StoreError, StoredEvent};
use crate::transfer::{TransferKey, TransferReport};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The checkout service. Build it with [`Checkout::new`] and [`Checkout::with_clock`].
///
/// ```
/// use bitcoin_checkout::{Checkout, Currency, SessionParams, TargetCurrency};
/// use bitcoin_checkout::rates::FixedRates;
/// use bitcoin_checkout::request::TestRequestGenerator;
/// use bitcoin_checkout::store::MemoryStore;
/// use rust_decimal::Decimal;
///
/// let usd = Currency::from_code("USD")?;
/// let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
/// let checkout = Checkout::new(MemoryStore::new(), rates, TestRequestGenerator);
/// let session = checkout.create(SessionParams::new(Decimal::new(2500, 2), usd), Some("order-1001"))?;
/// assert_eq!(session.open_payment().map(|p| p.target().get()), Some(25_000));
/// // Retrying with the same key returns the same session.
/// let again = checkout.create(SessionParams::new(Decimal::new(2500, 2), usd), Some("order-1001"))?;
/// assert_eq!(again.id(), session.id());
/// # Ok::<(), bitcoin_checkout::Error>(())
/// ```
pub struct Checkout<S, R, G, C = SystemClock> {
    store: S,
    rates: R,
    generator: G,
    clock: C,
    max_attempts: u32,
}

impl<S, R, G> Checkout<S, R, G, SystemClock> {
    /// A service over these ports, with the system clock.
    pub fn new(store: S, rates: R, generator: G) -> Self {
        Self {
            store,
            rates,
            generator,
            clock: SystemClock,
            max_attempts: 32,
        }
    }
}

impl<S, R, G, C> Checkout<S, R, G, C> {
    /// The same service with another clock.
    pub fn with_clock<C2>(self, clock: C2) -> Checkout<S, R, G, C2> {
        Checkout {
            store: self.store,
            rates: self.rates,
            generator: self.generator,
            clock,
            max_attempts: self.max_attempts,
        }
    }

    /// How many times an operation is tried when it meets concurrent changes (default 32).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S, R, G, C> std::fmt::Debug for Checkout<S, R, G, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout").finish_non_exhaustive()
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Sessions whose quotes were expired or re-issued.
    pub updated: Vec<SessionId>,
    /// Sessions that could not get a new quote, with the reason (retried next sweep).
    pub failed: Vec<(SessionId, Error)>,
}

impl<S: Store, R: RateSource, G: PaymentRequestGenerator, C: Clock> Checkout<S, R, G, C> {
    /// Creates a session with its first quote.
    ///
    /// With an idempotency key (Stripe semantics): the same key with the same parameters
    /// returns the session created the first time; with other parameters it is
    /// [`Error::IdempotencyConflict`]. Concurrent calls with one key create one session.
    pub fn create(&self, params: SessionParams, idempotency_key: Option<&str>) -> Result<CheckoutSession, Error> {
        let request = match idempotency_key {
            Some(key) => {
                if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
                    return Err(Error::InvalidIdempotencyKey);
                }
                let request = serde_json::to_string(&params).map_err(|e| Error::Json(e.to_string()))?;
                if let Some(session) = self.replay(key, &request)? {
                    return Ok(session);
                }
                Some((key, request))
            }
            None => None,
        };
        let now = self.clock.now();
        let (mut session, mut events) = CheckoutSession::create(SessionId::generate(), params, now)?;
        events.extend(self.quote(&mut session, now)?);
        let commit = Commit {
            expected_version: None,
            changed_transfers: Vec::new(),
            events: self.envelopes(&events, &session),
            idempotency: request.as_ref().map(|(key, req)| IdempotencyRecord {
                key: (*key).to_owned(),
                request: req.clone(),
                session_id: session.id(),
                created: now,
            }),
            session,
        };
        match self.store.commit(&commit) {
            Ok(()) => Ok(commit.session),
            // Someone else committed this key first: replay theirs.
            Err(StoreError::Conflict) if request.is_some() => {
                let (key, req) = request.as_ref().map(|(k, r)| (*k, r.as_str())).unwrap_or_default();
                self.replay(key, req)?.ok_or(Error::Store(StoreError::Conflict))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn replay(&self, key: &str, request: &str) -> Result<Option<CheckoutSession>, Error> {
        match self.store.idempotency(key)? {
            Some(rec) if rec.request == request => {
                let session = self.store.load(rec.session_id)?;
                session.map(Some).ok_or(Error::UnknownSession(rec.session_id))
            }
            Some(_) => Err(Error::IdempotencyConflict),
            None => Ok(None),
        }
    }

    /// Issues a new quote if the session needs one at `now`.
    fn quote(&self, session: &mut CheckoutSession, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        let mut events = session.expire_quotes(now)?;
        if session.needs_quote(now) {
            let rate = self.rates.rate(session.currency(), session.target_currency(), now)?;
            let terms = session.next_quote(PaymentId::generate(), rate, now)?;
            let request = self.generator.generate(session, &terms)?;
            events.extend(session.issue_quote(terms, request, now)?);
        }
        Ok(events)
    }

    fn envelopes(&self, events: &[SessionEvent], session: &CheckoutSession) -> Vec<Event> {
        let mut out: Vec<Event> = events
            .iter()
            .map(|e| Event::for_session(EventId::generate(), e, session))
            .collect();
        // A checkout link is paid when its session is.
        if let Some(paid) = events.iter().find(|e| e.event_type == EventType::CheckoutSessionPaid)
            && let Some(link_event) = links::checkout_link_paid(session, paid.at)
        {
            out.push(link_event);
        }
        out
    }

    /// Loads, applies `command`, re-quotes if needed, and commits; retried on conflicts.
    /// When the re-quote fails after a successful command, the command is still committed
    /// (funds are never dropped for want of a rate) and the next sweep re-quotes.
    fn mutate(
        &self,
        id: SessionId,
        changed: Option<TransferKey>,
        command: impl Fn(&mut CheckoutSession, OffsetDateTime) -> Result<Vec<SessionEvent>, Error>,
    ) -> Result<CheckoutSession, Error> {
        let mut last = Error::Store(StoreError::Conflict);
        for _ in 0..self.max_attempts {
            let mut session = self.store.load(id)?.ok_or(Error::UnknownSession(id))?;
            let before = session.version();
            // Tolerate small clock skew between servers: time never runs backwards here.
            let now = self.clock.now().max(session.modified());
            let mut events = command(&mut session, now)?;
            if events.is_empty() && session.version() == before {
                return Ok(session);
            }
            let mut quoted = session.clone();
            if let Ok(more) = self.quote(&mut quoted, now) {
                events.extend(more);
                session = quoted;
            }
            let commit = Commit {
                expected_version: Some(before),
                changed_transfers: changed.into_iter().collect(),
                events: self.envelopes(&events, &session),
                idempotency: None,
                session,
            };
            match self.store.commit(&commit) {
                Ok(()) => return Ok(commit.session),
                Err(StoreError::Conflict) => last = Error::Store(StoreError::Conflict),
                Err(e) if e.is_retryable() => last = Error::Store(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last)
    }

    /// Records a report of funds on the session its invoice or address belongs to.
    pub fn record_transfer(&self, report: TransferReport) -> Result<CheckoutSession, Error> {
        let id = self.session_for(&report)?;
        let key = report.key();
        self.mutate(id, Some(key), |s, now| s.record_transfer(report.clone(), now))
    }

    /// The session a report belongs to: by transfer key, then invoice hash or address.
    fn session_for(&self, report: &TransferReport) -> Result<SessionId, Error> {
        let key = report.key();
        if let Some(id) = self.store.find_by_transfer(&key)? {
            return Ok(id);
        }
        let found = match (key, report.address()) {
            (TransferKey::Lightning(hash), _) => self.store.find_by_payment_hash(&hash)?,
            (TransferKey::Onchain { .. }, Some(addr)) => self.store.find_by_address(addr)?,
            (TransferKey::Onchain { .. }, None) => None,
        };
        found.ok_or(Error::UnknownPaymentRequest)
    }

    /// Updates a session's mutable fields.
    pub fn update(&self, id: SessionId, update: &SessionUpdate) -> Result<CheckoutSession, Error> {
        self.mutate(id, None, |s, now| s.update(update, now))
    }

    /// Deactivates an active session.
    pub fn deactivate(&self, id: SessionId) -> Result<CheckoutSession, Error> {
        self.mutate(id, None, |s, now| s.deactivate(now))
    }

    /// The session with this id.
    pub fn get(&self, id: SessionId) -> Result<CheckoutSession, Error> {
        self.store.load(id)?.ok_or(Error::UnknownSession(id))
    }

    /// Sessions newest first.
    pub fn list(&self, query: &ListQuery) -> Result<Page, Error> {
        Ok(self.store.list(query)?)
    }

    /// Events after an outbox cursor.
    pub fn events_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredEvent>, Error> {
        Ok(self.store.events_after(after, limit)?)
    }

    /// Everything that happened to one session, in order.
    pub fn timeline(&self, id: SessionId) -> Result<Vec<StoredEvent>, Error> {
        Ok(self.store.session_events(id)?)
    }

    /// Expires the quotes that ran out and issues new ones, for up to `limit` due
    /// sessions. Call it on a schedule (every few seconds) or before showing a session.
    pub fn sweep(&self, limit: usize) -> Result<SweepReport, Error> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        for id in self.store.due(now, limit)? {
            match self.refresh(id) {
                Ok(true) => report.updated.push(id),
                Ok(false) => {}
                Err(e) => report.failed.push((id, e)),
            }
        }
        Ok(report)
    }

    /// Expires and re-quotes one session now; `Ok(false)` when nothing was due.
    pub fn refresh(&self, id: SessionId) -> Result<bool, Error> {
        for _ in 0..self.max_attempts {
            let mut session = self.get(id)?;
            let before = session.version();
            let now = self.clock.now().max(session.modified());
            let events = self.quote(&mut session, now)?;
            if events.is_empty() {
                return Ok(false);
            }
            let commit = Commit {
                expected_version: Some(before),
                changed_transfers: Vec::new(),
                events: self.envelopes(&events, &session),
                idempotency: None,
                session,
            };
            match self.store.commit(&commit) {
                Ok(()) => return Ok(true),
                Err(e) if e.is_retryable() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(StoreError::Conflict))
    }
}
