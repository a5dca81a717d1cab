//! The checkout service: drives sessions through the ports (store, rates, payment
//! requests, clock, ids).
//!
//! Each operation runs as one transaction (`service/transact.rs`): it loads the session, applies
//! one core command at the clock's time, issues a new quote when the session needs one,
//! and commits the command's [`SessionChange`] with its
//! events in one atomic compare-and-swap. A conflict (another process changed the session
//! in between) or a retryable store error is retried from a fresh load after a jittered
//! backoff, so concurrent reports of the same or different transfers end with each counted
//! exactly once. Side effects are never repeated by a retry: the rate is fetched and the
//! payment request generated once per quote, and reused by later attempts while the quote
//! they computed still fits.
//!
//! The service is synchronous and `Send + Sync` when its ports are; from async code use
//! [`AsyncCheckout`] (feature `async`), which runs it on blocking threads.

mod aliases;
mod archive;
#[cfg(feature = "async")]
mod async_facade;
mod cache;
mod error;
mod idempotency;
mod links;
mod observed;
mod transact;
#[cfg(feature = "postgres")]
pub use aliases::PostgresCheckout;
#[cfg(feature = "sqlite")]
pub use aliases::SqliteCheckout;
pub use aliases::{DynCheckout, DynClock, DynGenerator, DynRates, MemoryCheckout};
pub use archive::SessionArchive;
#[cfg(feature = "async")]
pub use async_facade::AsyncCheckout;
pub use error::{ErrorKind, ServiceError};

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::clock::{Clock, IdSource, RandomIds, SystemClock};
use crate::id::SessionId;
use crate::metrics::Metrics;
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::session::{
    CheckoutSession, FlagResolution, SessionChange, SessionParams, SessionUpdate,
};
use crate::store::{Commit, ListQuery, Page, Reload, Store, StoreError, StoredEvent};
use crate::transfer::{TransferKey, TransferReport};
use cache::SessionCache;
use idempotency::Claim;
use observed::{Observed, operation, record_session};
use transact::{QuoteMemo, Quoting};

/// Sessions kept in the service's cache by default.
pub const DEFAULT_CACHE_SESSIONS: usize = 1_024;

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// How long a claimed idempotency key whose session never appeared blocks other requests
/// with that key: after it, a retry takes the claim over (its first holder crashed).
pub const IDEMPOTENCY_TAKEOVER: Duration = Duration::seconds(30);

/// How long an idempotency key is remembered, by default and at least (Stripe's 24 hours):
/// a key older than the window is forgotten, and the same key then creates a new session.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

/// The checkout service. Build it with [`Checkout::new`] and the `with_` setters.
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
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Checkout<S, R, G, C = SystemClock> {
    store: S,
    rates: R,
    generator: G,
    clock: C,
    ids: Arc<dyn IdSource>,
    max_attempts: u32,
    cache: SessionCache,
    metrics: Arc<Metrics>,
    idempotency_window: Duration,
}

impl<S, R, G> Checkout<S, R, G, SystemClock> {
    /// A service over these ports, with the system clock and random ids.
    pub fn new(store: S, rates: R, generator: G) -> Self {
        Self {
            store,
            rates,
            generator,
            clock: SystemClock,
            ids: Arc::new(RandomIds::new()),
            max_attempts: 32,
            cache: SessionCache::new(DEFAULT_CACHE_SESSIONS),
            metrics: Arc::new(Metrics::new()),
            idempotency_window: IDEMPOTENCY_WINDOW,
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
            ids: self.ids,
            max_attempts: self.max_attempts,
            cache: self.cache,
            metrics: self.metrics,
            idempotency_window: self.idempotency_window,
        }
    }

    /// Mints ids from `ids` instead of [`RandomIds`] (e.g. [`SeededIds`](crate::clock::SeededIds)
    /// for reproducible runs).
    pub fn with_ids(mut self, ids: impl IdSource + 'static) -> Self {
        self.ids = Arc::new(ids);
        self
    }

    /// How many times an operation is tried when it meets concurrent changes or retryable
    /// store errors (default 32).
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

    /// Remembers idempotency keys for `window` (at least [`IDEMPOTENCY_WINDOW`], 24 hours):
    /// a create with a key older than that makes a new session, and
    /// [`prune_idempotency`](Self::prune_idempotency) deletes the records.
    pub fn with_idempotency_window(mut self, window: Duration) -> Self {
        self.idempotency_window = window.max(IDEMPOTENCY_WINDOW);
        self
    }

    /// Counts into `metrics` (share one with the webhook dispatcher) instead of a registry
    /// of its own.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// What the service has counted (see [`metrics`](crate::metrics)).
    ///
    /// ```
    /// # use bitcoin_checkout::rates::FixedRates;
    /// # use bitcoin_checkout::request::TestRequestGenerator;
    /// # use bitcoin_checkout::store::MemoryStore;
    /// # use bitcoin_checkout::Checkout;
    /// let checkout = Checkout::new(MemoryStore::new(), FixedRates::new(), TestRequestGenerator);
    /// assert_eq!(checkout.metrics().snapshot().commits, 0);
    /// ```
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store as the service calls it: traced and counted.
    fn st(&self) -> Observed<'_, S> {
        Observed {
            store: &self.store,
            metrics: &self.metrics,
        }
    }

    /// The clock the service reads (the HTTP layer dates idempotency records with it).
    pub fn clock(&self) -> &C {
        &self.clock
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
    pub failed: Vec<(SessionId, ServiceError)>,
}

impl<S: Store, R: RateSource, G: PaymentRequestGenerator, C: Clock> Checkout<S, R, G, C> {
    /// Whether no call of this service waits for I/O: its store, rate source and
    /// generator all say they never block ([`Store::never_blocks`]). The async layers
    /// then call it on the executor's thread, without a trip to the blocking pool.
    ///
    /// ```
    /// # use bitcoin_checkout::rates::FixedRates;
    /// # use bitcoin_checkout::request::TestRequestGenerator;
    /// # use bitcoin_checkout::store::MemoryStore;
    /// # use bitcoin_checkout::Checkout;
    /// let checkout = Checkout::new(MemoryStore::new(), FixedRates::new(), TestRequestGenerator);
    /// assert!(checkout.never_blocks());
    /// ```
    pub fn never_blocks(&self) -> bool {
        self.store.never_blocks() && self.rates.never_blocks() && self.generator.never_blocks()
    }

    /// Whether this service's store reads without waiting for a writer or the network
    /// ([`Store::reads_never_block`]): the async layers then answer a read that needs no
    /// write ([`get`](Checkout::get) of a session with a valid quote, event reads) on the
    /// executor's thread, and send only the writes to the blocking pool.
    pub fn reads_never_block(&self) -> bool {
        self.store.reads_never_block()
    }

    /// Creates a session with its first quote.
    ///
    /// With an idempotency key (Stripe semantics): the same key with the same parameters
    /// returns the session created the first time; with other parameters it is
    /// [`ServiceError::IdempotencyConflict`]. The key is claimed in the store before the
    /// quote is made, so of concurrent calls with one key exactly one fetches a rate,
    /// generates a payment request and creates the session; the others wait for it and
    /// return it (or [`ServiceError::IdempotencyKeyInUse`] if it takes too long).
    pub fn create(
        &self,
        params: SessionParams,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutSession, ServiceError> {
        let op = operation("create", None);
        let now = self.clock.now();
        // Bad parameters are refused before a key is claimed: a refusal never holds a key.
        params.validate()?;
        let (session_id, claim) =
            match self.claim_or_mint(idempotency_key, || params.canonical_json(), now)? {
                Claim::Replay(session) => return Ok(*session),
                Claim::Create(id, claim) => (id, claim),
            };
        record_session(&op, session_id);
        let created = self.insert_session(session_id, params);
        self.release_unused(claim.as_ref(), &created);
        created
    }

    fn new_session_id(&self, now: OffsetDateTime) -> SessionId {
        SessionId::from_uuid(self.ids.next_uuid(now))
    }

    /// Creates session `id` with its first quote and inserts it. An insert that conflicts
    /// found the session already there (a racing takeover of one idempotency claim): that
    /// one is returned.
    fn insert_session(
        &self,
        id: SessionId,
        params: SessionParams,
    ) -> Result<CheckoutSession, ServiceError> {
        let mut memo = QuoteMemo::default();
        self.transact(|_| {
            let now = self.clock.now();
            let (mut session, mut change) = CheckoutSession::create(id, params.clone(), now)?;
            self.quote(&mut session, now, &mut memo, &mut change)?;
            let events = self.envelopes(change.events(), &session, now);
            let commit = Commit::new(session, None, &change, events);
            match self.st().commit(&commit) {
                Ok(()) => {
                    self.cache.put(commit.session.clone());
                    Ok(commit.session)
                }
                // The id is taken: by this session, inserted by a racing takeover (or by
                // an earlier attempt whose outcome was unknown). Not retried blindly.
                Err(StoreError::Conflict) => self
                    .st()
                    .load(id)?
                    .ok_or(ServiceError::Store(StoreError::Conflict)),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Records a report of funds on the session its invoice or address belongs to.
    pub fn record_transfer(&self, report: TransferReport) -> Result<CheckoutSession, ServiceError> {
        self.record_transfer_first(report)
            .map(|(session, _)| session)
    }

    /// [`record_transfer`](Self::record_transfer), also saying whether this call recorded
    /// the transfer first (`false`: it was recorded already, by an earlier report or a
    /// racing one, and this one changed nothing about it). Listeners use it to count each
    /// settlement once, whoever records it.
    pub(crate) fn record_transfer_first(
        &self,
        report: TransferReport,
    ) -> Result<(CheckoutSession, bool), ServiceError> {
        let op = operation("record_transfer", None);
        // Lookups are reads: retried like a transaction.
        let id = self.transact(|_| self.find_session(&report))?;
        record_session(&op, id);
        // Set by the attempt that committed (each retry runs the command again).
        let first = std::sync::atomic::AtomicBool::new(false);
        // A partial payment is quoted again at once: the customer is there, waiting to pay
        // the rest.
        let key = report.key();
        let (session, _) =
            self.mutate(id, Quoting::OnDemand, |s, now| -> Result<_, ServiceError> {
                if self.already_held(s, &key)? {
                    return Ok(SessionChange::default());
                }
                let change = s.record_transfer(report.clone(), now)?;
                let received = change
                    .events()
                    .iter()
                    .any(|e| e.event_type == crate::event::EventType::TransferReceived);
                first.store(received, std::sync::atomic::Ordering::Relaxed);
                Ok(change)
            })?;
        Ok((session, first.into_inner()))
    }

    /// Whether a report is of a transfer `session` holds apart already (beyond its
    /// transfer cap: held transfers are not loaded with the session, so the store's index
    /// of transfer keys tells). Asked only of a session at its cap, for a key it does not
    /// list, so reports below the cap cost no lookup; asked on every attempt, so a report
    /// racing the first one finds it once that one committed (the store refuses the
    /// second copy as a conflict).
    fn already_held(
        &self,
        session: &CheckoutSession,
        key: &TransferKey,
    ) -> Result<bool, ServiceError> {
        if session.has_transfer(key) || !session.at_transfer_cap() {
            return Ok(false);
        }
        Ok(self.st().find_by_transfer(key)? == Some(session.id()))
    }

    fn find_session(&self, report: &TransferReport) -> Result<SessionId, ServiceError> {
        let key = report.key();
        if let Some(id) = self.st().find_by_transfer(&key)? {
            return Ok(id);
        }
        let found = match (key, report.address()) {
            (TransferKey::Lightning(hash), _) => self.st().find_by_payment_hash(&hash)?,
            (TransferKey::Onchain { .. }, Some(addr)) => self.st().find_by_address(addr)?,
            (TransferKey::Onchain { .. }, None) => None,
        };
        found.ok_or(ServiceError::Core(crate::Error::UnknownPaymentRequest))
    }

    /// Updates a session's mutable fields.
    pub fn update(
        &self,
        id: SessionId,
        update: &SessionUpdate,
    ) -> Result<CheckoutSession, ServiceError> {
        let _op = operation("update", Some(id));
        self.mutate(id, Quoting::Never, |s, now| s.update(update, now))
            .map(|(session, _)| session)
    }

    /// Deactivates an active session.
    pub fn deactivate(&self, id: SessionId) -> Result<CheckoutSession, ServiceError> {
        let _op = operation("deactivate", Some(id));
        self.mutate(id, Quoting::Never, |s, now| s.deactivate(now))
            .map(|(session, _)| session)
    }

    /// Records what the merchant did with flagged money (refunded, with the refund's
    /// reference, or accepted): see [`CheckoutSession::resolve_flag`].
    pub fn resolve_flag(
        &self,
        id: SessionId,
        resolution: &FlagResolution,
    ) -> Result<CheckoutSession, ServiceError> {
        let _op = operation("resolve_flag", Some(id));
        self.mutate(id, Quoting::Never, |s, now| s.resolve_flag(resolution, now))
            .map(|(session, _)| session)
    }

    /// The session with this id, as a customer opening its page should see it: what ran
    /// out is expired, and an active session without a valid quote gets one now (quotes
    /// are made on demand, ADR 8), so a fetched active session always shows a valid quote.
    ///
    /// If that quote cannot be made (no rate, the generator down) the session is returned
    /// without an open quote ([`CheckoutSession::open_payment`] is `None`) rather than
    /// failing the read; the next fetch tries again.
    pub fn get(&self, id: SessionId) -> Result<CheckoutSession, ServiceError> {
        let _op = operation("get", Some(id));
        let session = self
            .retry_store(|| self.load_for_read(id))?
            .ok_or(ServiceError::UnknownSession(id))?;
        if self.is_current(&session) {
            return Ok(session);
        }
        self.bring_up_to_date(id)
    }

    /// Session `id` as stored: the cached copy when the store says the session is still
    /// at its version (a version's content never changes, ADR 26), else read (and cached).
    /// Saves decoding a session that a page polls while nothing happens to it.
    fn load_for_read(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        let Some(cached) = self.cache.peek(id) else {
            let loaded = self.st().load(id)?;
            if let Some(session) = &loaded {
                self.cache.put(session.clone());
            }
            return Ok(loaded);
        };
        match self.st().load_if_changed(id, cached.version())? {
            Reload::Unchanged => Ok(Some(cached)),
            Reload::Changed(session) => {
                self.cache.put(session.clone());
                Ok(Some(session))
            }
            Reload::Gone => {
                self.cache.take(id);
                Ok(None)
            }
        }
    }

    /// [`get`](Checkout::get) answered in place, on the caller's thread: `Ok(None)` when
    /// that cannot be, and `get` itself must run (on the blocking pool): the store's reads
    /// may block ([`reads_never_block`](Checkout::reads_never_block)), the session is due (a
    /// deadline passed, a quote to make) or the store asks for a retry. The async layers
    /// call it first.
    #[cfg(feature = "async")]
    pub(crate) fn get_in_place(
        &self,
        id: SessionId,
    ) -> Result<Option<CheckoutSession>, ServiceError> {
        if !self.reads_never_block() {
            return Ok(None);
        }
        let _op = operation("get", Some(id));
        match self.load_for_read(id) {
            Ok(Some(session)) => Ok(self.is_current(&session).then_some(session)),
            Ok(None) => Err(ServiceError::UnknownSession(id)),
            Err(e) if e.is_retryable() => Ok(None),
            Err(e) => Err(ServiceError::Store(e)),
        }
    }

    /// Nothing of it is due and it has the quote it needs: `get` would return it as read.
    fn is_current(&self, session: &CheckoutSession) -> bool {
        let now = self.clock.now();
        session.wake_at().is_none_or(|w| w > now) && !session.needs_quote(now)
    }

    /// `get`'s writes: expires what ran out and quotes on demand.
    fn bring_up_to_date(&self, id: SessionId) -> Result<CheckoutSession, ServiceError> {
        match self.mutate(id, Quoting::OnDemand, |_, _| {
            Ok::<_, crate::Error>(Default::default())
        }) {
            Ok((session, _)) => Ok(session),
            Err(
                ServiceError::Rate(_)
                | ServiceError::Request(_)
                | ServiceError::Store(StoreError::KeyTaken { .. }),
            ) => self
                .retry_store(|| self.st().load(id))?
                .ok_or(ServiceError::UnknownSession(id)),
            Err(e) => Err(e),
        }
    }

    /// The session as it stands now, never quoting: what ran out is expired (and
    /// written, as the sweep would), but an active session without a valid quote is left
    /// without one. For reads that are not a customer looking at the page, such as a
    /// payment's status (`GET /payments/{id}`).
    pub fn current(&self, id: SessionId) -> Result<CheckoutSession, ServiceError> {
        let _op = operation("current", Some(id));
        let session = self
            .retry_store(|| self.st().load(id))?
            .ok_or(ServiceError::UnknownSession(id))?;
        if session.wake_at().is_none_or(|w| w > self.clock.now()) {
            return Ok(session);
        }
        self.mutate(id, Quoting::Never, |_, _| {
            Ok::<_, crate::Error>(Default::default())
        })
        .map(|(session, _)| session)
    }

    /// Sessions newest first, filtered and paged by `query` (by status, `source_id`, a
    /// metadata key and value, a creation range; see [`ListQuery`]). A query with both
    /// cursors or a limit outside 1 to 100 is refused
    /// ([`StoreError::InvalidQuery`], kind [`ErrorKind::InvalidInput`]).
    ///
    /// ```
    /// # use bitcoin_checkout::rates::FixedRates;
    /// # use bitcoin_checkout::request::TestRequestGenerator;
    /// # use bitcoin_checkout::store::{ListQuery, MemoryStore};
    /// # use bitcoin_checkout::{Checkout, Currency, Decimal, Metadata, MetadataValue, SessionParams, TargetCurrency};
    /// # let usd = Currency::from_code("USD")?;
    /// # let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    /// let checkout = Checkout::new(MemoryStore::new(), rates, TestRequestGenerator);
    /// let order = Metadata::from_pairs([("order", MetadataValue::from(1001))])?;
    /// let s = checkout.create(SessionParams::new(Decimal::ONE, usd).metadata(order), None)?;
    /// let found = checkout.list(&ListQuery::new().metadata("order", "1001"))?;
    /// assert_eq!(found.data[0].id(), s.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list(&self, query: &ListQuery) -> Result<Page, ServiceError> {
        let _op = operation("list", None);
        self.retry_store(|| self.st().list(query))
    }

    /// Events after an outbox cursor.
    pub fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, ServiceError> {
        let _op = operation("events_after", None);
        self.retry_store(|| self.st().events_after(after, limit))
    }

    /// A page of a session's timeline: its events after the sequence number `after` (from
    /// the first when `None`), in order, at most `limit`; page on from the last one's
    /// `seq`. A session with a long history is read a page at a time.
    pub fn timeline_page(
        &self,
        id: SessionId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, ServiceError> {
        let _op = operation("timeline_page", Some(id));
        self.retry_store(|| self.st().session_events_after(id, after, limit))
    }

    /// Everything that happened to one session, in order.
    pub fn timeline(&self, id: SessionId) -> Result<Vec<StoredEvent>, ServiceError> {
        let _op = operation("timeline", Some(id));
        self.retry_store(|| self.st().session_events(id))
    }

    /// Expires what ran out, for up to `limit` due sessions: quotes past their expiry, and
    /// sessions past their optional `expires_at` (deactivated, with their events). Call it
    /// on a schedule (every few seconds), so events go out when things expire.
    ///
    /// It issues no quotes: a session whose quote ran out gets the next one when someone
    /// looks ([`get`](Self::get), [`refresh`](Self::refresh)), so an abandoned session
    /// costs one expiry, not a new invoice, two events and a payment row every ttl.
    pub fn sweep(&self, limit: usize) -> Result<SweepReport, ServiceError> {
        let _op = operation("sweep", None);
        let now = self.clock.now();
        let mut report = SweepReport::default();
        for id in self.retry_store(|| self.st().due(now, limit))? {
            let _expire = operation("expire", Some(id));
            match self.mutate(id, Quoting::Never, |_, _| {
                Ok::<_, crate::Error>(Default::default())
            }) {
                Ok((_, Outcome::Committed { .. })) => report.updated.push(id),
                Ok((_, Outcome::Unchanged)) => {}
                Err(e) => report.failed.push((id, e)),
            }
        }
        Ok(report)
    }

    /// Expires what ran out and, if the session is active without a valid quote, issues
    /// one now; `Ok(false)` when nothing was due. If no quote can be made (no rate,
    /// generator down), the expiry is still committed and the error returned.
    pub fn refresh(&self, id: SessionId) -> Result<bool, ServiceError> {
        let _op = operation("refresh", Some(id));
        let (_, outcome) = self.mutate(id, Quoting::OnDemand, |_, _| {
            Ok::<_, crate::Error>(Default::default())
        })?;
        match outcome {
            Outcome::Unchanged => Ok(false),
            Outcome::Committed { quote: Ok(()) } => Ok(true),
            Outcome::Committed { quote: Err(e) } => Err(e),
        }
    }
}

/// What [`Checkout::mutate`] committed.
enum Outcome {
    /// The command changed nothing and no quote was due: nothing was written.
    Unchanged,
    /// The change was committed; `quote` says whether the re-quote after it succeeded.
    Committed { quote: Result<(), ServiceError> },
}
