//! The one transaction loop every service operation runs in, and the quoting it shares.
//!
//! An attempt reads what it needs, applies core commands and commits; the loop retries an
//! attempt that failed with a store conflict or a retryable store error, after a jittered
//! backoff, up to the service's `max_attempts`. Nothing else is retried: a rate source or
//! a payment-request generator that fails fails the operation, so no network call is made
//! twice by the loop. What an attempt obtained from them (the rate, the quote's terms and
//! its payment request) is kept in a [`QuoteMemo`] and reused by the next attempt while it
//! still fits the session.

use std::hash::{BuildHasher, Hasher};

use time::OffsetDateTime;

use super::{Outcome, ServiceError};
use crate::clock::Clock;
use crate::event::{EventType, SessionEvent};
use crate::id::{EventId, PaymentId, SessionId};
use crate::metrics::Counter;
use crate::outbox::Event;
use crate::payment::PaymentRequest;
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::session::{CheckoutSession, QuoteTerms, SessionChange};
use crate::store::{Commit, RoutingKey, Store, StoreError};

/// What one operation's attempts share so that a quote's side effects happen once: the
/// terms computed and the request generated for them.
#[derive(Default)]
pub(super) struct QuoteMemo {
    issued: Option<(QuoteTerms, PaymentRequest)>,
}

/// Whether an operation issues a new quote when the session needs one (quotes on demand,
/// ADR 8): operations that mean a customer is there do; the others only expire what ran
/// out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quoting {
    /// Issue one if needed: creation, a fetch, a partial payment.
    OnDemand,
    /// Never: updates, deactivations, the sweep.
    Never,
}

/// Why an attempt waits before the next.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    /// Another writer changed the session: it has finished, so retry almost at once.
    Conflict,
    /// A backend failed (a restart, a lost connection) or another request holds a claim:
    /// give it time.
    Busy,
}

/// Sleeps before attempt `attempt + 1`: a random time up to a ceiling that doubles with
/// each attempt (full jitter, so racing writers spread out instead of colliding again).
/// Conflicts start at 100 µs and stop doubling at 12.8 ms; busy backends start at 1 ms and
/// stop at 256 ms (about 4 s over 32 attempts on average).
pub(super) fn backoff(attempt: u32, wait: Wait) {
    let (base_us, max_shift) = match wait {
        Wait::Conflict => (100u64, 7),
        Wait::Busy => (1_000u64, 8),
    };
    if matches!(wait, Wait::Conflict) && attempt == 0 {
        // The first retry after a conflict goes at once: most conflicts are one writer.
        return;
    }
    let ceiling = base_us << attempt.min(max_shift);
    let jitter = random_u64() % ceiling.max(1);
    std::thread::sleep(std::time::Duration::from_micros(ceiling / 2 + jitter / 2));
}

/// A random number for jitter, from the standard library's per-hasher random keys (no
/// dependency; the quality needed is only that two processes differ).
fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl<S: Store, R: RateSource, G: PaymentRequestGenerator, C: Clock> super::Checkout<S, R, G, C> {
    /// Runs `attempt` until it succeeds, fails with an error a retry cannot fix, or the
    /// attempts run out (then the last error is returned). `attempt` gets its number.
    pub(super) fn transact<T>(
        &self,
        mut attempt: impl FnMut(u32) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let mut n = 0;
        loop {
            let result = {
                let _attempt = tracing::debug_span!("attempt", n).entered();
                attempt(n)
            };
            match result {
                Err(ServiceError::Store(e)) if e.is_retryable() && n + 1 < self.max_attempts => {
                    tracing::debug!(attempt = n, error = %e, "retrying");
                    self.metrics.add(Counter::retries, 1);
                    backoff(n, wait_for(&e));
                    n += 1;
                }
                other => return other,
            }
        }
    }

    /// A store read, retried like a transaction (reads are side-effect free).
    pub(super) fn retry_store<T>(
        &self,
        mut read: impl FnMut() -> Result<T, StoreError>,
    ) -> Result<T, ServiceError> {
        self.transact(|_| Ok(read()?))
    }

    /// Loads session `id`, applies `command`, re-quotes if needed, and commits, in one
    /// transaction. When the re-quote fails after a successful command, the command is
    /// still committed (funds are never dropped for want of a rate) and the outcome
    /// carries the error; the next sweep re-quotes.
    ///
    /// The first attempt starts from the session cache when it holds the session: the
    /// commit's compare-and-swap proves whether the cached copy was current, and anything
    /// else the copy decides (an error, nothing to do) is checked against the store.
    pub(super) fn mutate<E: Into<ServiceError>>(
        &self,
        id: SessionId,
        quoting: Quoting,
        command: impl Fn(&mut CheckoutSession, OffsetDateTime) -> Result<SessionChange, E>,
    ) -> Result<(CheckoutSession, Outcome), ServiceError> {
        let mut memo = QuoteMemo::default();
        // The last commit whose outcome the store could not tell, with its re-quote's result.
        let mut unsure: Option<(Commit, Result<(), ServiceError>)> = None;
        self.transact(|attempt| {
            if let Some((commit, quote)) = &unsure {
                let stored = self
                    .st()
                    .load(id)?
                    .ok_or(ServiceError::UnknownSession(id))?;
                if self.landed(commit, &stored)? {
                    // That attempt's commit is in the store: this call did what it was
                    // asked, so it answers with that, not with the error a second run of
                    // the command would meet (deactivating a deactivated session).
                    self.cache.put(stored.clone());
                    let quote = quote.clone();
                    return Ok((stored, Outcome::Committed { quote }));
                }
            }
            let cached = if attempt == 0 {
                self.cache.take(id)
            } else {
                None
            };
            let from_cache = cached.is_some();
            let mut session = match cached {
                Some(s) => s,
                None => self
                    .st()
                    .load(id)?
                    .ok_or(ServiceError::UnknownSession(id))?,
            };
            // A stale copy may refuse what the stored one accepts, or find nothing to do:
            // both are retried from the store, as a conflict is.
            let stale = || ServiceError::Store(StoreError::Conflict);
            let before = session.version();
            // Tolerate small clock skew between servers: time never runs backwards here.
            let now = self.clock.now().max(session.modified());
            let mut change = match command(&mut session, now) {
                Ok(change) => change,
                Err(_) if from_cache => return Err(stale()),
                Err(e) => return Err(e.into()),
            };
            let quote = match quoting {
                Quoting::OnDemand => self.quote(&mut session, now, &mut memo, &mut change),
                Quoting::Never => session
                    .expire_quotes(now)
                    .map(|expired| change.merge(expired))
                    .map_err(ServiceError::from),
            };
            if change.is_empty() && session.version() == before {
                if from_cache {
                    return Err(stale());
                }
                self.cache.put(session.clone());
                return match quote {
                    Ok(()) => Ok((session, Outcome::Unchanged)),
                    Err(e) => Err(e),
                };
            }
            let events = self.envelopes(change.events(), &session, now);
            let commit = Commit::new(session, Some(before), &change, events);
            match self.st().commit(&commit) {
                Ok(()) => {}
                Err(e) => {
                    if outcome_unknown(&e) {
                        unsure = Some((commit, quote));
                    }
                    return Err(e.into());
                }
            }
            self.cache.put(commit.session.clone());
            Ok((commit.session, Outcome::Committed { quote }))
        })
    }

    /// Whether `commit`, whose outcome the store could not tell, is in the store, which
    /// holds `stored` now.
    ///
    /// The events tell "this call did it" from "another request did the same earlier":
    /// event ids are minted by this call and by no one else, so finding the commit's
    /// first event in the session's timeline proves the commit landed, however far the
    /// session moved on since. A commit without events (none makes one today) landed if
    /// the store holds exactly the session it wrote.
    fn landed(&self, commit: &Commit, stored: &CheckoutSession) -> Result<bool, ServiceError> {
        let Some(first) = commit.events.first() else {
            return Ok(*stored == commit.session);
        };
        if stored.version() < commit.session.version() {
            return Ok(false);
        }
        let timeline = self.st().session_events(stored.id())?;
        Ok(timeline.iter().any(|e| e.event.id == first.id))
    }

    /// Expires the quotes that ran out and issues a new one if the session needs it, adding
    /// both to `change` as they happen: if the new quote cannot be made, the expiry is
    /// already in `change` (the error says why no quote was issued, and the caller decides
    /// whether to commit without it).
    ///
    /// A quote computed by an earlier attempt of the same operation is issued again when it
    /// still fits (same remaining due, still valid); only otherwise are a rate fetched and
    /// a request generated anew.
    pub(super) fn quote(
        &self,
        session: &mut CheckoutSession,
        now: OffsetDateTime,
        memo: &mut QuoteMemo,
        change: &mut SessionChange,
    ) -> Result<(), ServiceError> {
        change.merge(session.expire_quotes(now)?);
        if !session.needs_quote(now) {
            return Ok(());
        }
        if let Some((terms, request)) = memo.issued.as_ref()
            && let Ok(issued) = session.issue_quote(terms.clone(), request.clone(), now)
        {
            change.merge(issued);
            return Ok(());
        }
        // Nothing kept, or the session moved on (funds arrived, another server quoted):
        // the kept request is for another amount, so it is never shown to anyone. A
        // session at its quote cap is refused before any rate is fetched.
        session.check_quote_limit()?;
        let rate = self
            .rates
            .rate(session.currency(), session.target_currency(), now)?;
        let payment_id = session.next_payment_id(PaymentId::from_uuid(self.ids.next_uuid(now)));
        let terms = session.next_quote(payment_id, rate, now)?;
        let request = self.generator.generate(session, &terms)?;
        self.check_keys_free(session, &request)?;
        memo.issued = Some((terms.clone(), request.clone()));
        change.merge(session.issue_quote(terms, request, now)?);
        Ok(())
    }

    /// Refuses a request whose invoice hash or (new) address another session holds, before
    /// it is issued: funds sent to it would be credited to that session. The store refuses
    /// the commit too (a race of two such quotes); checking first keeps the command the
    /// quote follows, which is committed without the quote.
    fn check_keys_free(
        &self,
        session: &CheckoutSession,
        request: &PaymentRequest,
    ) -> Result<(), ServiceError> {
        let taken = |key, holder: Option<SessionId>| match holder {
            Some(holder) if holder != session.id() => {
                Err(ServiceError::Store(StoreError::KeyTaken { key, holder }))
            }
            _ => Ok(()),
        };
        if let Some(inv) = &request.lightning {
            let holder = self.st().find_by_payment_hash(&inv.payment_hash)?;
            taken(RoutingKey::PaymentHash(inv.payment_hash), holder)?;
        }
        if session.onchain_address().is_none()
            && let Some(address) = &request.onchain_address
        {
            let holder = self.st().find_by_address(address)?;
            taken(RoutingKey::Address(address.clone()), holder)?;
        }
        Ok(())
    }

    /// Wraps a change's events into outbox envelopes with ids minted at `now`.
    pub(super) fn envelopes(
        &self,
        events: &[SessionEvent],
        session: &CheckoutSession,
        now: OffsetDateTime,
    ) -> Vec<Event> {
        let mut out = Event::all_for_session(events, session, || self.event_id(now));
        // A checkout link is paid when its session is.
        if let Some(paid) = events
            .iter()
            .find(|e| e.event_type == EventType::CheckoutSessionPaid)
            && let Some(link_event) =
                super::links::checkout_link_paid(session, paid.at, || self.event_id(now))
        {
            out.push(link_event);
        }
        out
    }

    pub(super) fn event_id(&self, now: OffsetDateTime) -> EventId {
        EventId::from_uuid(self.ids.next_uuid(now))
    }
}

/// Whether a failed commit may nevertheless have been written: the backend failed (a
/// connection cut during COMMIT cannot say), as opposed to a refused compare-and-swap.
pub(super) fn outcome_unknown(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend { .. })
}

fn wait_for(e: &StoreError) -> Wait {
    match e {
        StoreError::Conflict => Wait::Conflict,
        _ => Wait::Busy,
    }
}
