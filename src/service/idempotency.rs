//! Idempotency keys of creates: claimed in the store before the session exists, replayed,
//! taken over after a crash, forgotten after the window, pruned.

use time::OffsetDateTime;

use super::{
    Checkout, IDEMPOTENCY_TAKEOVER, MAX_IDEMPOTENCY_KEY_LEN, ServiceError, operation, transact,
};
use crate::clock::Clock;
use crate::id::SessionId;
use crate::json::millis::truncate;
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::session::CheckoutSession;
use crate::store::{IdempotencyRecord, Store, StoreError};

impl<S: Store, R: RateSource, G: PaymentRequestGenerator, C: Clock> Checkout<S, R, G, C> {
    /// Frees the claim of an operation that failed before committing (the core refused,
    /// no rate, generator down), so a retry with the key is not kept waiting for a
    /// session that will never appear. A failed release only delays that retry until the
    /// takeover window.
    pub(super) fn release_unused<T>(
        &self,
        claim: Option<&IdempotencyRecord>,
        result: &Result<T, ServiceError>,
    ) {
        if let (Err(e), Some(record)) = (result, claim)
            && matches!(
                e,
                ServiceError::Core(_)
                    | ServiceError::Rate(_)
                    | ServiceError::Request(_)
                    | ServiceError::Store(StoreError::KeyTaken { .. })
            )
        {
            let _ = self.st().release_idempotency(record);
        }
    }

    /// The id a request creates its session under, with the claim of its idempotency key
    /// if it has one (`request` gives the request's canonical form), or the session an
    /// earlier request with the key made.
    pub(super) fn claim_or_mint(
        &self,
        key: Option<&str>,
        request: impl FnOnce() -> String,
        now: OffsetDateTime,
    ) -> Result<Claim, ServiceError> {
        match key {
            None => Ok(Claim::Create(self.new_session_id(now), None)),
            Some(key) => self.claim(key, request(), now),
        }
    }

    /// Claims an idempotency key for a new session made by `request` (its canonical
    /// form: the same key with another request is refused), or finds the session it
    /// stands for.
    fn claim(
        &self,
        key: &str,
        request: String,
        now: OffsetDateTime,
    ) -> Result<Claim, ServiceError> {
        check_idempotency_key(key)?;
        let record = IdempotencyRecord {
            key: key.to_owned(),
            request,
            session_id: self.new_session_id(now),
            created: truncate(now),
        };
        let mut held = self.retry_store(|| self.st().claim_idempotency(&record))?;
        if let Some(old) = held.as_ref()
            && now - old.created >= self.idempotency_window
        {
            // Forgotten: the key is free again. The release removes exactly that record
            // (a racing request that already replaced it keeps its own), then the claim
            // is made afresh, which only one of racing requests wins.
            let old = old.clone();
            self.retry_store(|| self.st().release_idempotency(&old))?;
            held = self.retry_store(|| self.st().claim_idempotency(&record))?;
        }
        // `None`: ours. Our own record back: the store re-ran the claim after a lost
        // connection and found the row its first run inserted.
        let held = match held {
            None => return Ok(Claim::create(record)),
            Some(held) if held == record => return Ok(Claim::create(record)),
            Some(held) => held,
        };
        if held.request != record.request {
            return Err(ServiceError::IdempotencyConflict);
        }
        // Another request holds the key: wait for its session.
        for attempt in 0..self.max_attempts {
            if let Some(session) = self.retry_store(|| self.st().load(held.session_id))? {
                return Ok(Claim::Replay(Box::new(session)));
            }
            transact::backoff(attempt, transact::Wait::Busy);
        }
        if self.clock.now() - held.created >= IDEMPOTENCY_TAKEOVER {
            // Its holder never created the session (it crashed): create it under the
            // claimed id, which only one insert can win.
            return Ok(Claim::create(held));
        }
        Err(ServiceError::IdempotencyKeyInUse)
    }

    /// Deletes up to `limit` idempotency records older than the window (see
    /// [`with_idempotency_window`](Self::with_idempotency_window)), oldest first; returns
    /// how many. Call it on a schedule (the runner's `retention` job does).
    pub fn prune_idempotency(&self, limit: usize) -> Result<usize, ServiceError> {
        let _op = operation("prune_idempotency", None);
        let before = self.clock.now() - self.idempotency_window;
        self.retry_store(|| self.st().prune_idempotency(before, limit))
    }
}

/// Refuses an empty or over-long idempotency key.
pub(super) fn check_idempotency_key(key: &str) -> Result<(), ServiceError> {
    if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(ServiceError::InvalidIdempotencyKey);
    }
    Ok(())
}

/// What claiming an idempotency key gave.
pub(super) enum Claim {
    /// Create the session with this id; the record, if any, holds the request's key.
    Create(SessionId, Option<IdempotencyRecord>),
    /// The key's session exists: return it.
    Replay(Box<CheckoutSession>),
}

impl Claim {
    pub(super) fn create(record: IdempotencyRecord) -> Self {
        Self::Create(record.session_id, Some(record))
    }
}
