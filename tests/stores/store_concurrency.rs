//! Many threads reporting overlapping and duplicate transfers for the same few sessions:
//! every distinct transfer must be counted exactly once, no update may be lost, and each
//! paid session must have exactly one `checkout_session.paid` event in the outbox.
//!
//! Run through one shared service over the in-memory store and over the SQLite store, and
//! with one service (and one SQLite connection) per thread on one database file.

use crate::common;

use common::TempDir;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{MemoryStore, Store, StoredEvent};
use bitcoin_checkout::testkit::ObservedStore;
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, EventType, Msats, PaymentMethod, Sats, SessionId,
    SessionParams, SessionStatus, TargetCurrency, TransferKey, TransferReport,
};
use bitcoin_checkout::{OutPoint, Txid};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

const THREADS: usize = 8;
const SESSIONS: usize = 3;
/// On-chain outputs paid to each session's address.
const OUTPUTS: u32 = 10;
/// Sats per on-chain output, of the first Lightning payment, and of each later one.
const OUTPUT_SATS: u64 = 9_000;
const FIRST_LN_SATS: u64 = 20_000;
const LATER_LN_SATS: u64 = 5_000;

type Service<S> =
    Checkout<ObservedStore<'static, S>, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time")
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

fn service<S: Store>(store: S, clock: &Arc<ManualClock>) -> Service<S> {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(ObservedStore::new(store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(clock))
}

/// The txid of output `n` paid to a session: distinct per session and output.
fn txid(session: SessionId, n: u32) -> Txid {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(session.as_uuid().as_bytes());
    b[28..].copy_from_slice(&n.to_be_bytes());
    Txid::from_byte_array(b)
}

/// The transfers every thread reports, known before they start: per session, a Lightning
/// payment of its first quote and on-chain outputs to its address (each seen unconfirmed,
/// then with one confirmation).
struct Plan {
    sessions: Vec<SessionId>,
    /// Confirmed reports, one per distinct transfer: key → (session, amount).
    distinct: BTreeMap<TransferKey, (SessionId, Msats)>,
    /// Every report a thread makes (before shuffling).
    reports: Vec<TransferReport>,
}

impl Plan {
    fn new(sessions: &[CheckoutSession]) -> Self {
        let mut distinct = BTreeMap::new();
        let mut reports = Vec::new();
        for s in sessions {
            let first = s.payments().first().expect("a first quote");
            let ln = TransferReport::lightning(
                TestRequestGenerator::payment_hash(first.id()),
                Sats::new(FIRST_LN_SATS).to_msats(),
            );
            distinct.insert(ln.key(), (s.id(), ln.amount()));
            reports.push(ln);
            let address = TestRequestGenerator::address(s.id());
            for n in 0..OUTPUTS {
                let report = |confirmations| {
                    TransferReport::onchain(
                        OutPoint::new(txid(s.id(), n), n),
                        address.clone(),
                        Sats::new(OUTPUT_SATS),
                    )
                    .confirmations(confirmations)
                };
                distinct.insert(report(1).key(), (s.id(), report(1).amount()));
                reports.push(report(0));
                reports.push(report(1));
            }
        }
        Self {
            sessions: sessions.iter().map(CheckoutSession::id).collect(),
            distinct,
            reports,
        }
    }

    /// Thread `worker`'s reports: all of them in its own order, some twice.
    fn for_worker(&self, worker: usize) -> Vec<TransferReport> {
        let mut seed =
            0x9e37_79b9_7f4a_7c15_u64 ^ (worker as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut out = self.reports.clone();
        for i in (1..out.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            out.swap(i, j);
        }
        let again: Vec<TransferReport> = out.iter().step_by(3).cloned().collect();
        for r in again {
            let at = (next() % (out.len() as u64 + 1)) as usize;
            out.insert(at, r);
        }
        out
    }
}

/// Creates the sessions: 100 USD each (100,000 sats), Lightning and on-chain.
fn create_sessions<S: Store>(c: &Service<S>) -> Vec<CheckoutSession> {
    (0..SESSIONS)
        .map(|_| {
            let params = SessionParams::new(Decimal::from(100), usd())
                .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain]);
            c.create(params, None).expect("create")
        })
        .collect()
}

/// Records a report like a webhook handler would: retried while the error says so.
fn report<S: Store>(c: &Service<S>, r: &TransferReport, retries: &Mutex<u64>) {
    for _ in 0..100 {
        match c.record_transfer(r.clone()) {
            Ok(_) => return,
            Err(ServiceError::Store(e)) if e.is_retryable() => {
                *retries.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            }
            Err(e) => panic!("report {:?} failed: {e:?}", r.key()),
        }
    }
    panic!("report {:?} still conflicting after 100 tries", r.key());
}

/// Runs `THREADS` threads; thread `i` uses `services[i % services.len()]`. Besides the
/// planned reports, each thread now and then pays a session's currently open quote over
/// Lightning (threads reading the same quote report the same transfer). Returns those
/// extra transfers.
fn hammer<S: Store>(
    plan: &Plan,
    services: &[&Service<S>],
) -> BTreeMap<TransferKey, (SessionId, Msats)> {
    let extra = Mutex::new(BTreeMap::new());
    let retries = Mutex::new(0_u64);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..THREADS {
            let c = services[worker % services.len()];
            let (extra, retries) = (&extra, &retries);
            scope.spawn(move || {
                for (i, r) in plan.for_worker(worker).iter().enumerate() {
                    report(c, r, retries);
                    if i % 8 == 0 {
                        let id = plan.sessions[(worker + i) % plan.sessions.len()];
                        let s = c.get(id).expect("get");
                        // Not the first quote: its payment is planned with another amount.
                        let first = s.payments().first().map(|p| p.id());
                        if let Some(open) = s.open_payment().filter(|p| Some(p.id()) != first) {
                            let hash = TestRequestGenerator::payment_hash(open.id());
                            let r = TransferReport::lightning(
                                hash,
                                Sats::new(LATER_LN_SATS).to_msats(),
                            );
                            extra
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(r.key(), (id, r.amount()));
                            report(c, &r, retries);
                        }
                    }
                }
            });
        }
    });
    let retries = *retries.lock().unwrap_or_else(|p| p.into_inner());
    let conflicts: u64 = services.iter().map(|c| c.store().conflicts()).sum();
    println!(
        "{THREADS} threads, {} services: {:?}, {conflicts} conflicting commits retried by the \
         service, {retries} reports retried by the caller",
        services.len(),
        started.elapsed()
    );
    extra.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Every event in the outbox.
fn outbox<S: Store>(store: &S) -> Vec<StoredEvent> {
    let mut all: Vec<StoredEvent> = Vec::new();
    loop {
        let page = store
            .events_after(all.last().map(|e| e.seq), 200)
            .expect("events_after");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// The invariants after the storm.
fn verify<S: Store>(store: &S, plan: &Plan, extra: &BTreeMap<TransferKey, (SessionId, Msats)>) {
    let mut distinct = plan.distinct.clone();
    distinct.extend(extra.iter().map(|(k, v)| (*k, *v)));
    let events = outbox(store);
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "outbox sequence numbers must strictly increase"
    );
    let ids: BTreeSet<_> = events.iter().map(|e| e.event.id).collect();
    assert_eq!(ids.len(), events.len(), "every event is in the outbox once");
    for &id in &plan.sessions {
        let s = store.load(id).expect("load").expect("session");
        let want: BTreeMap<TransferKey, Msats> = distinct
            .iter()
            .filter(|(_, (sid, _))| *sid == id)
            .map(|(k, (_, amount))| (*k, *amount))
            .collect();
        let got: BTreeMap<TransferKey, Msats> = s.transfers().map(|t| (t.key, t.amount)).collect();
        assert_eq!(
            got, want,
            "session {id}: the recorded transfers are the distinct ones"
        );
        let total: u64 = got.values().map(|m| m.get()).sum();
        let want_total: u64 = want.values().map(|m| m.get()).sum();
        assert_eq!(total, want_total, "session {id}: total received");
        for t in s.transfers() {
            if let TransferKey::Onchain { .. } = t.key {
                assert_eq!(
                    t.confirmations, 1,
                    "session {id}: {:?} lost its confirmation",
                    t.key
                );
                assert!(
                    t.counted_at.is_some(),
                    "session {id}: {:?} is not counted",
                    t.key
                );
            }
            assert_eq!(store.find_by_transfer(&t.key), Ok(Some(id)));
        }
        assert_eq!(s.status(), SessionStatus::Paid, "session {id} is paid");

        let mine: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.event.session_id == Some(id))
            .collect();
        let count = |t: EventType| mine.iter().filter(|e| e.event.event_type == t).count();
        assert_eq!(
            count(EventType::CheckoutSessionPaid),
            1,
            "session {id}: paid events"
        );
        assert_eq!(
            count(EventType::TransferReceived),
            want.len(),
            "session {id}: one transfer_received event per distinct transfer"
        );
        assert!(
            count(EventType::TransferConfirmed) <= OUTPUTS as usize,
            "session {id}: at most one confirmation event per output"
        );
        let timeline = store.session_events(id).expect("session_events");
        assert_eq!(
            timeline,
            mine.into_iter().cloned().collect::<Vec<_>>(),
            "session {id}: timeline matches the outbox"
        );
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

/// Moves the clock a minute on (the quotes, 10 minutes long, stay open).
fn later(clock: &ManualClock) {
    clock.advance(Duration::minutes(1));
}

#[test]
fn memory_store_one_shared_service() {
    let clock = clock();
    let c = Arc::new(service(MemoryStore::new(), &clock));
    let plan = Plan::new(&create_sessions(&c));
    later(&clock);
    let extra = hammer(&plan, &[&*c]);
    verify(c.store(), &plan, &extra);
}

#[cfg(feature = "sqlite")]
mod sqlite {

    use bitcoin_checkout::store::SqliteStore;

    use super::*;

    #[test]
    fn sqlite_in_memory_one_shared_service() {
        let clock = clock();
        let c = Arc::new(service(
            SqliteStore::open_in_memory().expect("open"),
            &clock,
        ));
        let plan = Plan::new(&create_sessions(&c));
        later(&clock);
        let extra = hammer(&plan, &[&*c]);
        verify(c.store(), &plan, &extra);
    }

    #[test]
    fn sqlite_file_one_shared_service() {
        let dir = TempDir::new("shared-service");
        let clock = clock();
        let store = SqliteStore::open(dir.file("shared.db")).expect("open");
        let c = Arc::new(service(store, &clock));
        let plan = Plan::new(&create_sessions(&c));
        later(&clock);
        let extra = hammer(&plan, &[&*c]);
        verify(c.store(), &plan, &extra);
    }

    #[test]
    fn sqlite_file_one_store_per_thread() {
        let dir = TempDir::new("store-per-thread");
        let path = dir.file("per-thread.db");
        let clock = clock();
        let services: Vec<Service<SqliteStore>> = (0..THREADS)
            .map(|_| service(SqliteStore::open(&path).expect("open"), &clock))
            .collect();
        let plan = Plan::new(&create_sessions(&services[0]));
        later(&clock);
        let refs: Vec<&Service<SqliteStore>> = services.iter().collect();
        let extra = hammer(&plan, &refs);
        // Check through a connection that took no part.
        let fresh = SqliteStore::open(&path).expect("reopen");
        verify(&fresh, &plan, &extra);
        for c in &services {
            verify(c.store(), &plan, &extra);
        }
    }
}

/// A read of a SQLite file never waits for a writer (issue #17, point 3: what lets the
/// async layers read in place): while another connection holds the write lock with a
/// change not yet committed, and a write of this very store waits for that lock, the
/// store's reads answer at once from the last committed state; they see the change once
/// it commits.
#[test]
fn sqlite_reads_never_wait_for_a_writer() {
    use bitcoin_checkout::store::SqliteStore;
    use std::time::Duration as Wait;

    let dir = TempDir::new("reads-vs-writer");
    let path = dir.file("shop.db");
    let store = SqliteStore::open(&path)
        .unwrap()
        .with_busy_timeout(Wait::from_secs(2))
        .unwrap();
    assert!(store.reads_never_block());
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1000));
    let c = Checkout::new(&store, rates, TestRequestGenerator);
    let s = c
        .create(SessionParams::new(Decimal::ONE, usd()), None)
        .unwrap();
    let hash = TestRequestGenerator::payment_hash(s.open_payment().unwrap().id());

    let writer = rusqlite::Connection::open(&path).unwrap();
    writer
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM events;")
        .unwrap();
    std::thread::scope(|scope| {
        // This store's own write, waiting (up to 2 s) for the other connection's lock.
        let waiting = scope.spawn(|| store.prune_idempotency(t0(), 10));
        std::thread::sleep(Wait::from_millis(100));
        let started = Instant::now();
        assert_eq!(store.load(s.id()).unwrap().as_ref(), Some(&s));
        assert_eq!(store.events_after(None, 10).unwrap().len(), 2);
        assert_eq!(store.find_by_payment_hash(&hash).unwrap(), Some(s.id()));
        assert_eq!(store.session_events(s.id()).unwrap().len(), 2);
        let took = started.elapsed();
        assert!(
            !waiting.is_finished(),
            "the write did not wait for the lock"
        );
        assert!(took < Wait::from_millis(500), "the reads waited: {took:?}");
        let gave_up = waiting.join().unwrap();
        assert!(
            matches!(&gave_up, Err(e) if e.is_retryable()),
            "{gave_up:?}"
        );
    });
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(store.events_after(None, 10).unwrap().len(), 0);
    assert_eq!(store.session_events(s.id()).unwrap().len(), 0);
}
