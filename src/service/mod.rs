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

/// Sessions kept in the service's cache by default.
pub const DEFAULT_CACHE_SESSIONS: usize = 1_024;

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
    cache: SessionCache,
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
            cache: SessionCache::new(DEFAULT_CACHE_SESSIONS),
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
            cache: self.cache,
        }
    }

    /// How many times an operation is tried when it meets concurrent changes (default 32).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How many recently changed sessions to keep in memory (default 1,024; 0 turns the
    /// cache off). The cache saves re-reading a session's transfers on every report; it
    /// never decides anything, because every commit compares versions with the store.
    pub fn with_session_cache(mut self, sessions: usize) -> Self {
        self.cache = SessionCache::new(sessions);
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
    pub fn create(
        &self,
        params: SessionParams,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutSession, Error> {
        let request = match idempotency_key {
            Some(key) => {
                if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
                    return Err(Error::InvalidIdempotencyKey);
                }
                let request =
                    serde_json::to_string(&params).map_err(|e| Error::Json(e.to_string()))?;
                if let Some(session) = self.replay(key, &request)? {
                    return Ok(session);
                }
                Some((key, request))
            }
            None => None,
        };
        let now = self.clock.now();
        let (mut session, mut events) =
            CheckoutSession::create(SessionId::generate(), params, now)?;
        self.quote(&mut session, now, &mut events)?;
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
                let (key, req) = request
                    .as_ref()
                    .map(|(k, r)| (*k, r.as_str()))
                    .unwrap_or_default();
                self.replay(key, req)?
                    .ok_or(Error::Store(StoreError::Conflict))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn replay(&self, key: &str, request: &str) -> Result<Option<CheckoutSession>, Error> {
        match self.store.idempotency(key)? {
            Some(rec) if rec.request == request => {
                let session = self.store.load(rec.session_id)?;
                session
                    .map(Some)
                    .ok_or(Error::UnknownSession(rec.session_id))
            }
            Some(_) => Err(Error::IdempotencyConflict),
            None => Ok(None),
        }
    }

    /// Expires the quotes that ran out and issues a new one if the session needs it,
    /// pushing the events as it goes: if the new quote cannot be made, the expiry events
    /// are already in `events` and the error says why no quote was issued.
    fn quote(
        &self,
        session: &mut CheckoutSession,
        now: OffsetDateTime,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), Error> {
        events.extend(session.expire_quotes(now)?);
        if session.needs_quote(now) {
            let rate = self
                .rates
                .rate(session.currency(), session.target_currency(), now)?;
            let terms = session.next_quote(PaymentId::generate(), rate, now)?;
            let request = self.generator.generate(session, &terms)?;
            events.extend(session.issue_quote(terms, request, now)?);
        }
        Ok(())
    }

    fn envelopes(&self, events: &[SessionEvent], session: &CheckoutSession) -> Vec<Event> {
        let mut out = Event::all_for_session(events, session, EventId::generate);
        // A checkout link is paid when its session is.
        if let Some(paid) = events
            .iter()
            .find(|e| e.event_type == EventType::CheckoutSessionPaid)
            && let Some(link_event) = links::checkout_link_paid(session, paid.at)
        {
            out.push(link_event);
        }
        out
    }

    /// Loads, applies `command`, re-quotes if needed, and commits; retried on conflicts.
    /// When the re-quote fails after a successful command, the command is still committed
    /// (funds are never dropped for want of a rate) and the next sweep re-quotes.
    ///
    /// The first attempt starts from the session cache when it holds the session: the
    /// commit's compare-and-swap proves whether the cached copy was current, and a conflict
    /// falls back to loading from the store.
    fn mutate(
        &self,
        id: SessionId,
        changed: Option<TransferKey>,
        command: impl Fn(&mut CheckoutSession, OffsetDateTime) -> Result<Vec<SessionEvent>, Error>,
    ) -> Result<CheckoutSession, Error> {
        let mut last = Error::Store(StoreError::Conflict);
        for attempt in 0..self.max_attempts {
            let cached = if attempt == 0 {
                self.cache.take(id)
            } else {
                None
            };
            let from_cache = cached.is_some();
            let mut session = match cached {
                Some(s) => s,
                None => match self.store.load(id) {
                    Ok(found) => found.ok_or(Error::UnknownSession(id))?,
                    Err(e) if e.is_retryable() => {
                        backoff(attempt, &e);
                        last = Error::Store(e);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            let before = session.version();
            // Tolerate small clock skew between servers: time never runs backwards here.
            let now = self.clock.now().max(session.modified());
            let mut events = match command(&mut session, now) {
                Ok(events) => events,
                // A stale cached copy may refuse what the stored one accepts.
                Err(_) if from_cache => continue,
                Err(e) => return Err(e),
            };
            if events.is_empty() && session.version() == before {
                if from_cache {
                    // Nothing to commit, so nothing proved the copy current: read the store.
                    continue;
                }
                self.cache.put(session.clone());
                return Ok(session);
            }
            // A failed re-quote leaves the transfer to be committed; the sweep retries.
            let _ = self.quote(&mut session, now, &mut events);
            let commit = Commit {
                expected_version: Some(before),
                changed_transfers: changed.into_iter().collect(),
                events: self.envelopes(&events, &session),
                idempotency: None,
                session,
            };
            match self.store.commit(&commit) {
                Ok(()) => {
                    self.cache.put(commit.session.clone());
                    return Ok(commit.session);
                }
                Err(e) if e.is_retryable() => {
                    backoff(attempt, &e);
                    last = Error::Store(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last)
    }

    /// Records a report of funds on the session its invoice or address belongs to.
    pub fn record_transfer(&self, report: TransferReport) -> Result<CheckoutSession, Error> {
        let id = self.session_for(&report)?;
        let key = report.key();
        self.mutate(id, Some(key), |s, now| {
            s.record_transfer(report.clone(), now)
        })
    }

    /// The session a report belongs to: by transfer key, then invoice hash or address.
    fn session_for(&self, report: &TransferReport) -> Result<SessionId, Error> {
        let mut attempt = 0;
        loop {
            match self.find_session(report) {
                Err(Error::Store(e)) if e.is_retryable() && attempt + 1 < self.max_attempts => {
                    backoff(attempt, &e);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn find_session(&self, report: &TransferReport) -> Result<SessionId, Error> {
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
    pub fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, Error> {
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

    /// Expires and re-quotes one session now; `Ok(false)` when nothing was due. If no
    /// quote can be made (no rate, generator down), the expiry is still committed and the
    /// error returned.
    pub fn refresh(&self, id: SessionId) -> Result<bool, Error> {
        for attempt in 0..self.max_attempts {
            let mut session = self.get(id)?;
            let before = session.version();
            let now = self.clock.now().max(session.modified());
            let mut events = Vec::new();
            let quoted = self.quote(&mut session, now, &mut events);
            if events.is_empty() {
                return quoted.map(|()| false);
            }
            let commit = Commit {
                expected_version: Some(before),
                changed_transfers: Vec::new(),
                events: self.envelopes(&events, &session),
                idempotency: None,
                session,
            };
            match self.store.commit(&commit) {
                Ok(()) => {
                    self.cache.put(commit.session);
                    return quoted.map(|()| true);
                }
                Err(e) if e.is_retryable() => backoff(attempt, &e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(StoreError::Conflict))
    }
}

/// Waits before retrying after a retryable backend error (a server restarting, a lost
/// connection): 1 ms doubling to 256 ms, about two seconds over all attempts. A version
/// conflict is retried at once: the other writer has already finished.
fn backoff(attempt: u32, error: &StoreError) {
    if matches!(error, StoreError::Backend { .. }) {
        std::thread::sleep(std::time::Duration::from_millis(1 << attempt.min(8)));
    }
}

/// The sessions this process changed last, so a busy session is not re-read from the store
/// for every report. Bounded; correctness never depends on it (commits compare versions).
struct SessionCache {
    map: std::sync::Mutex<std::collections::HashMap<SessionId, CheckoutSession>>,
    capacity: usize,
}

impl SessionCache {
    fn new(capacity: usize) -> Self {
        Self {
            map: std::sync::Mutex::default(),
            capacity,
        }
    }

    fn take(&self, id: SessionId) -> Option<CheckoutSession> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
    }

    fn put(&self, session: CheckoutSession) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&session.id()) {
            // Any entry will do: the cache only saves reads.
            if let Some(victim) = map.keys().next().copied() {
                map.remove(&victim);
            }
        }
        // Keep the newest version when two threads race.
        match map.get(&session.id()) {
            Some(held) if held.version() > session.version() => {}
            _ => {
                map.insert(session.id(), session);
            }
        }
    }
}
