//! `Idempotency-Key` on POST requests, with Stripe's semantics.
//!
//! The first request with a key runs and its answer is kept; a retry with the same key
//! and the same request (method, path and body) gets that answer again, marked
//! `Idempotent-Replayed: true`, without running anything. The same key with another
//! request is refused (400), and a retry while the first is still running waits its turn
//! (409, retryable). Keys are scoped to the API key that sent them.
//!
//! What is kept: answers with a 2xx or 500 status (the request ran). Other refusals (a
//! 4xx before anything ran, a 503 from a backend that was down) are not kept, so the retry
//! runs afresh. Records expire after the configured window (at least 24 hours); a claim
//! left by a server that died mid-request is taken over after [`STALE_CLAIM`].
//!
//! Records live in any [`ResumeStore`] (memory, SQLite, PostgreSQL) under
//! `idem:<api key hash>:<sha256 of the key>`, claimed by compare-and-swap, so two servers
//! receiving the same retry at once run it once.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::backend::ResumePoint;
use crate::store::{Corruption, ResumeStore, StoreError};

/// After this long, a claim whose request never finished (its server died) is taken over.
pub const STALE_CLAIM: Duration = Duration::minutes(5);

/// Longest idempotency key accepted (Stripe's limit).
pub const MAX_KEY_CHARS: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    #[serde(with = "crate::json::millis")]
    at: OffsetDateTime,
    /// The kept answer; `None` while the first request runs, or once it was released.
    status: Option<u16>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    released: bool,
}

/// What to do with a request carrying a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Run it; then [`Idempotency::finish`] with its answer.
    Run(Claim),
    /// Answer this, as the first request was answered.
    Replay {
        /// The kept status.
        status: u16,
        /// The kept body (JSON).
        body: String,
    },
    /// The key was used for another request.
    Mismatch,
    /// The first request with the key is still running.
    InProgress,
}

/// A claimed key, to finish or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    name: String,
    record: Record,
}

/// Idempotency records over a [`ResumeStore`].
#[derive(Debug, Clone)]
pub struct Idempotency<R> {
    store: R,
    window: Duration,
}

impl<R: ResumeStore> Idempotency<R> {
    /// Records in `store`, kept for `window`.
    pub fn new(store: R, window: Duration) -> Self {
        Self { store, window }
    }

    /// What a request's fingerprint is: the same method, path and body give the same one.
    pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
        let mut hash = Sha256::new();
        for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
            hash.update(part);
        }
        hex(&hash.finalize())
    }

    /// Deletes up to `limit` records past the window at `now` (and released ones), each by
    /// compare-and-swap so a record a request is rewriting meanwhile stays; returns how
    /// many went. Run it on a schedule, e.g. as a runner job, so the records of
    /// one-time keys do not pile up.
    pub fn prune(&self, now: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
        let mut pruned = 0;
        let mut after: Option<String> = None;
        while pruned < limit {
            let page = self.store.resume_points("idem:", after.as_deref(), 100)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (name, point) in &page {
                if pruned >= limit {
                    break;
                }
                let record: Record = serde_json::from_str(point.as_str())
                    .map_err(|e| Corruption::undecodable("idempotency record", e))?;
                if now - record.at >= self.window || record.released {
                    match self.store.delete_resume_point(name, point) {
                        Ok(()) => pruned += 1,
                        // Rewritten meanwhile: it is in use, not expired.
                        Err(StoreError::Conflict) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(pruned)
    }

    /// Claims `key` for a request, or says how its first use was answered.
    pub fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
    ) -> Result<Begin, StoreError> {
        let name = format!("idem:{scope}:{}", hex(&Sha256::digest(key.as_bytes())));
        let current = self.store.resume_point(&name)?;
        if let Some(point) = &current {
            let old: Record = serde_json::from_str(point.as_str())
                .map_err(|e| Corruption::undecodable("idempotency record", e))?;
            let live = now - old.at < self.window && !old.released;
            if live {
                if old.fingerprint != fingerprint {
                    return Ok(Begin::Mismatch);
                }
                match old.status {
                    Some(status) => {
                        return Ok(Begin::Replay {
                            status,
                            body: old.body,
                        });
                    }
                    None if now - old.at < STALE_CLAIM => return Ok(Begin::InProgress),
                    None => {}
                }
            }
        }
        let record = Record {
            fingerprint: fingerprint.to_owned(),
            at: crate::json::millis::truncate(now),
            status: None,
            body: String::new(),
            released: false,
        };
        match self
            .store
            .save_resume_point(&name, current.as_ref(), &point(&record)?)
        {
            Ok(()) => Ok(Begin::Run(Claim { name, record })),
            // Another server claimed it between the read and the write.
            Err(StoreError::Conflict) => Ok(Begin::InProgress),
            Err(e) => Err(e),
        }
    }

    /// Keeps the answer of a claimed request.
    pub fn finish(&self, claim: Claim, status: u16, body: String) -> Result<(), StoreError> {
        let done = Record {
            status: Some(status),
            body,
            ..claim.record.clone()
        };
        self.store
            .save_resume_point(&claim.name, Some(&point(&claim.record)?), &point(&done)?)
    }

    /// Gives the key back: the request was refused before it ran, so a retry runs afresh.
    pub fn release(&self, claim: Claim) -> Result<(), StoreError> {
        let released = Record {
            released: true,
            ..claim.record.clone()
        };
        self.store.save_resume_point(
            &claim.name,
            Some(&point(&claim.record)?),
            &point(&released)?,
        )
    }
}

/// Whether an answer with this status is kept for retries (the request ran).
pub fn is_kept(status: u16) -> bool {
    (200..300).contains(&status) || status == 500
}

fn point(record: &Record) -> Result<ResumePoint, StoreError> {
    serde_json::to_string(record)
        .map(ResumePoint::new)
        .map_err(|e| Corruption::undecodable("idempotency record", e).into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn expired_records_are_pruned_and_live_ones_kept() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let idem = Idempotency::new(std::sync::Arc::clone(&store), Duration::hours(24));
        let f = Idempotency::<MemoryStore>::fingerprint("POST", "/payments", b"{}");
        for (key, secs) in [("old-1", 0), ("old-2", 10), ("new", 90_000)] {
            let Begin::Run(claim) = idem.begin("k", key, &f, at(secs)).unwrap() else {
                panic!("first use runs");
            };
            idem.finish(claim, 200, "{}".into()).unwrap();
        }
        // A listener's resume point is not an idempotency record: never touched.
        let other = ResumePoint::new("42");
        store.save_resume_point("lnbits:w", None, &other).unwrap();
        let now = at(90_000);
        assert_eq!(idem.prune(now, 1).unwrap(), 1, "at most the limit");
        assert_eq!(idem.prune(now, 100).unwrap(), 1);
        assert_eq!(idem.prune(now, 100).unwrap(), 0);
        assert!(matches!(
            idem.begin("k", "new", &f, now).unwrap(),
            Begin::Replay { status: 200, .. }
        ));
        assert_eq!(store.resume_point("lnbits:w").unwrap(), Some(other));
        assert_eq!(store.resume_points("idem:", None, 10).unwrap().len(), 1);
    }

    #[test]
    fn replays_refuses_other_requests_and_expires() {
        let idem = Idempotency::new(MemoryStore::new(), Duration::hours(24));
        let f1 = Idempotency::<MemoryStore>::fingerprint("POST", "/payments", b"{}");
        let f2 = Idempotency::<MemoryStore>::fingerprint("POST", "/payments", b"{ }");
        let Begin::Run(claim) = idem.begin("k", "order-1", &f1, at(0)).unwrap() else {
            panic!("first use runs");
        };
        assert_eq!(
            idem.begin("k", "order-1", &f1, at(1)).unwrap(),
            Begin::InProgress
        );
        idem.finish(claim, 200, "{\"id\":1}".into()).unwrap();
        assert_eq!(
            idem.begin("k", "order-1", &f1, at(2)).unwrap(),
            Begin::Replay {
                status: 200,
                body: "{\"id\":1}".into()
            }
        );
        assert_eq!(
            idem.begin("k", "order-1", &f2, at(3)).unwrap(),
            Begin::Mismatch
        );
        // Another API key's scope is another key.
        assert!(matches!(
            idem.begin("other", "order-1", &f2, at(3)).unwrap(),
            Begin::Run(_)
        ));
        // After the window the key is free again.
        let later = at(24 * 3600);
        assert!(matches!(
            idem.begin("k", "order-1", &f2, later).unwrap(),
            Begin::Run(_)
        ));
    }

    #[test]
    fn released_and_stale_claims_run_again() {
        let idem = Idempotency::new(MemoryStore::new(), Duration::hours(24));
        let f = Idempotency::<MemoryStore>::fingerprint("POST", "/x", b"");
        let Begin::Run(claim) = idem.begin("k", "a", &f, at(0)).unwrap() else {
            panic!("runs");
        };
        idem.release(claim).unwrap();
        assert!(matches!(
            idem.begin("k", "a", &f, at(1)).unwrap(),
            Begin::Run(_)
        ));
        // That claim is never finished: after STALE_CLAIM another request takes it over.
        assert_eq!(idem.begin("k", "a", &f, at(2)).unwrap(), Begin::InProgress);
        assert!(matches!(
            idem.begin("k", "a", &f, at(1 + STALE_CLAIM.whole_seconds()))
                .unwrap(),
            Begin::Run(_)
        ));
        assert!(is_kept(201) && is_kept(500) && !is_kept(503) && !is_kept(400));
    }
}
