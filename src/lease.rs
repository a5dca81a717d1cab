//! Leases: a piece of background work (the sweep, the webhook dispatcher, a settlement
//! listener) done by one server at a time, taken over when its holder stops renewing.
//!
//! A lease is a record `lease:<work>` in any [`ResumeStore`] (memory, SQLite, PostgreSQL)
//! saying who holds the work and until when. [`Leases::claim`] takes it when it is free
//! or has run out, or renews it for its holder, by compare-and-swap: of servers claiming
//! at once exactly one wins, so the work is claimed, not duplicated. A holder that crashes
//! stops renewing; after the lease's time to live another server's claim succeeds. The
//! work must stay safe to repeat (everything the crate's jobs do is: commits compare
//! versions, deliveries are at least once): a holder stalled for longer than the time to
//! live can overlap its successor once, which costs a conflict or a repeated delivery,
//! never a double count.
//!
//! Give every server its own holder name (a host name and process id) and a time to live
//! well above both a pass's length and the servers' clock skew (30 s is the default).
//!
//! ```
//! use std::sync::Arc;
//! use bitcoin_checkout::clock::ManualClock;
//! use bitcoin_checkout::lease::Leases;
//! use bitcoin_checkout::store::MemoryStore;
//! use time::{Duration, OffsetDateTime};
//!
//! let store = Arc::new(MemoryStore::new());
//! let clock = Arc::new(ManualClock::new(OffsetDateTime::UNIX_EPOCH));
//! let a = Leases::new(Arc::clone(&store), "server-a", Arc::clone(&clock));
//! let b = Leases::new(Arc::clone(&store), "server-b", Arc::clone(&clock));
//! assert!(a.claim("sweep")?);
//! assert!(!b.claim("sweep")?, "a holds it");
//! assert!(a.claim("sweep")?, "renewed");
//! clock.advance(Duration::seconds(31)); // a stopped renewing
//! assert!(b.claim("sweep")?);
//! # Ok::<(), bitcoin_checkout::store::StoreError>(())
//! ```

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::backend::ResumePoint;
use crate::clock::Clock;
use crate::store::{Corruption, ResumeStore, StoreError};

/// How long a lease lasts without renewal, by default.
pub const DEFAULT_LEASE_TTL: Duration = Duration::seconds(30);

/// The stored record of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    holder: String,
    #[serde(with = "crate::json::millis")]
    until: OffsetDateTime,
}

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseHolder {
    /// The holder's name.
    pub holder: String,
    /// When the lease runs out unless renewed.
    pub until: OffsetDateTime,
}

/// One server's leases in a store (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Leases<R, C> {
    store: R,
    holder: String,
    clock: C,
    ttl: Duration,
}

impl<R: ResumeStore, C: Clock> Leases<R, C> {
    /// The leases of `holder` (unique per server) in `store`, timed by `clock`, lasting
    /// [`DEFAULT_LEASE_TTL`].
    pub fn new(store: R, holder: impl Into<String>, clock: C) -> Self {
        Self {
            store,
            holder: holder.into(),
            clock,
            ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// Leases last `ttl` (at least 1 s) without renewal.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::seconds(1));
        self
    }

    /// This server's name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes the lease of `work` (free, run out, or already this holder's, then renewed
    /// once less than half its time to live is left) until now plus the time to live: `true` when this holder has it. `false` when
    /// another holder's lease is still running, or another server claimed it at the same
    /// moment (the compare-and-swap lost).
    pub fn claim(&self, work: &str) -> Result<bool, StoreError> {
        let name = lease_name(work);
        let now = self.clock.now();
        let stored = self.store.resume_point(&name)?;
        if let Some(point) = &stored {
            let current = decode(&name, point)?;
            if current.holder != self.holder && current.until > now {
                return Ok(false);
            }
            // Ours with more than half its time to live left: no write needed yet (a job
            // claiming every second renews every ttl/2, not on every pass).
            if current.holder == self.holder && current.until - now > self.ttl / 2 {
                return Ok(true);
            }
        }
        let mine = Record {
            holder: self.holder.clone(),
            until: now + self.ttl,
        };
        let new = ResumePoint::new(serde_json::to_string(&mine).unwrap_or_default());
        match self.store.save_resume_point(&name, stored.as_ref(), &new) {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives up the lease of `work` if this holder has it (a graceful stop), so another
    /// server takes the work over at its next claim instead of after the time to live.
    pub fn release(&self, work: &str) -> Result<(), StoreError> {
        let name = lease_name(work);
        let Some(point) = self.store.resume_point(&name)? else {
            return Ok(());
        };
        let current = decode(&name, &point)?;
        if current.holder != self.holder {
            return Ok(());
        }
        // Run out at once: the next claim by anyone succeeds.
        let released = Record {
            holder: self.holder.clone(),
            until: OffsetDateTime::UNIX_EPOCH,
        };
        let new = ResumePoint::new(serde_json::to_string(&released).unwrap_or_default());
        match self.store.save_resume_point(&name, Some(&point), &new) {
            // Someone took it meanwhile: it is not ours to release.
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Who holds the lease of `work` now (`None`: free or run out).
    pub fn holder_of(&self, work: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let name = lease_name(work);
        let now = self.clock.now();
        let Some(point) = self.store.resume_point(&name)? else {
            return Ok(None);
        };
        let current = decode(&name, &point)?;
        Ok((current.until > now).then_some(LeaseHolder {
            holder: current.holder,
            until: current.until,
        }))
    }
}

fn lease_name(work: &str) -> String {
    format!("lease:{work}")
}

fn decode(name: &str, point: &ResumePoint) -> Result<Record, StoreError> {
    serde_json::from_str(point.as_str())
        .map_err(|e| Corruption::undecodable(format!("resume point {name}"), e).into())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;

    type TestLeases = Leases<Arc<MemoryStore>, Arc<ManualClock>>;

    fn pair() -> (TestLeases, TestLeases, Arc<ManualClock>) {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::UNIX_EPOCH + Duration::days(1),
        ));
        let a = Leases::new(Arc::clone(&store), "a", Arc::clone(&clock))
            .with_ttl(Duration::seconds(10));
        let b = Leases::new(store, "b", Arc::clone(&clock)).with_ttl(Duration::seconds(10));
        (a, b, clock)
    }

    #[test]
    fn one_holder_at_a_time_until_it_stops_renewing() {
        let (a, b, clock) = pair();
        assert_eq!(a.claim("sweep"), Ok(true));
        assert_eq!(b.claim("sweep"), Ok(false));
        clock.advance(Duration::seconds(9));
        assert_eq!(a.claim("sweep"), Ok(true), "renewed before it ran out");
        clock.advance(Duration::seconds(9));
        assert_eq!(b.claim("sweep"), Ok(false), "the renewal counts from then");
        clock.advance(Duration::seconds(2));
        assert_eq!(b.claim("sweep"), Ok(true), "taken over once run out");
        assert_eq!(a.claim("sweep"), Ok(false));
        assert_eq!(
            a.holder_of("sweep").unwrap().map(|h| h.holder),
            Some("b".to_owned())
        );
    }

    #[test]
    fn a_release_hands_over_at_once_and_only_the_holder_releases() {
        let (a, b, _) = pair();
        assert_eq!(a.claim("dispatcher"), Ok(true));
        assert_eq!(b.release("dispatcher"), Ok(()));
        assert_eq!(b.claim("dispatcher"), Ok(false), "b's release did nothing");
        assert_eq!(a.release("dispatcher"), Ok(()));
        assert_eq!(a.holder_of("dispatcher"), Ok(None));
        assert_eq!(b.claim("dispatcher"), Ok(true));
    }

    #[test]
    fn leases_of_different_work_are_independent() {
        let (a, b, _) = pair();
        assert_eq!(a.claim("sweep"), Ok(true));
        assert_eq!(b.claim("listener:lnbits"), Ok(true));
    }

    #[test]
    fn racing_claims_have_one_winner() {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::UNIX_EPOCH + Duration::days(1),
        ));
        let wins = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for i in 0..8 {
                let leases = Leases::new(Arc::clone(&store), format!("s{i}"), Arc::clone(&clock));
                let wins = &wins;
                scope.spawn(move || {
                    if leases.claim("sweep") == Ok(true) {
                        wins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 1);
    }

    #[test]
    fn a_corrupt_lease_is_an_error_not_a_takeover() {
        let (a, _, _) = pair();
        a.store
            .save_resume_point("lease:sweep", None, &ResumePoint::new("{not json"))
            .unwrap();
        assert!(matches!(a.claim("sweep"), Err(StoreError::Corrupt(_))));
    }
}
