//! Several OS processes sharing one SQLite file: the parent creates sessions, then runs
//! this test binary again as workers (`--exact sqlite_worker`, told what to do through
//! environment variables), each recording an overlapping set of transfers with two threads
//! of its own, each thread with its own connection. The parent then checks that every
//! distinct transfer was counted exactly once, that no update was lost, and that each
//! session has exactly one `checkout_session.paid` event in the outbox.
#![cfg(feature = "sqlite")]

use crate::common;

use common::TempDir;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{ListQuery, SqliteStore, Store, StoredEvent};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, EventType, Msats, PaymentMethod, Sats, SessionId,
    SessionParams, SessionStatus, TargetCurrency, TransferKey, TransferReport,
};
use bitcoin_checkout::{OutPoint, Txid};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

/// Set in a worker's environment: the database file.
const WORKER_DB: &str = "BITCOIN_CHECKOUT_TEST_SQLITE_WORKER_DB";
/// Set in a worker's environment: its number.
const WORKER_INDEX: &str = "BITCOIN_CHECKOUT_TEST_SQLITE_WORKER_INDEX";

const PROCESSES: usize = 3;
const THREADS_PER_PROCESS: usize = 2;
const SESSIONS: usize = 3;
const OUTPUTS: u32 = 8;
const OUTPUT_SATS: u64 = 12_000;
const LN_SATS: u64 = 20_000;

type Service = Checkout<SqliteStore, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time")
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

fn service(path: &Path, clock: &Arc<ManualClock>) -> Service {
    let store = SqliteStore::open(path).expect("open the shared file");
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(store, rates, TestRequestGenerator).with_clock(Arc::clone(clock))
}

fn txid(session: SessionId, n: u32) -> Txid {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(session.as_uuid().as_bytes());
    b[28..].copy_from_slice(&n.to_be_bytes());
    Txid::from_byte_array(b)
}

/// The distinct transfers of the sessions (key → session, amount) and every report made
/// of them: a Lightning payment of the first quote, and on-chain outputs seen unconfirmed
/// and with one confirmation. Derived from the sessions alone, so that workers find it in
/// the database.
fn plan(
    sessions: &[CheckoutSession],
) -> (
    BTreeMap<TransferKey, (SessionId, Msats)>,
    Vec<TransferReport>,
) {
    let mut distinct = BTreeMap::new();
    let mut reports = Vec::new();
    for s in sessions {
        let first = s.payments().first().expect("a first quote");
        let ln = TransferReport::lightning(
            TestRequestGenerator::payment_hash(first.id()),
            Sats::new(LN_SATS).to_msats(),
        );
        distinct.insert(ln.key(), (s.id(), ln.amount()));
        reports.push(ln);
        for n in 0..OUTPUTS {
            let report = |confirmations| {
                TransferReport::onchain(
                    OutPoint::new(txid(s.id(), n), n),
                    TestRequestGenerator::address(s.id()),
                    Sats::new(OUTPUT_SATS),
                )
                .confirmations(confirmations)
            };
            distinct.insert(report(1).key(), (s.id(), report(1).amount()));
            reports.push(report(0));
            reports.push(report(1));
        }
    }
    (distinct, reports)
}

/// Worker `n`'s reports: every one, in its own order, some twice.
fn shuffled(reports: &[TransferReport], n: usize) -> Vec<TransferReport> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64.wrapping_mul(n as u64 + 7);
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = reports.to_vec();
    for i in (1..out.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    let again: Vec<TransferReport> = out.iter().step_by(4).cloned().collect();
    out.extend(again);
    out
}

/// The sessions in the file, oldest first.
fn sessions_in(store: &SqliteStore) -> Vec<CheckoutSession> {
    let mut page = store.list(&ListQuery::new().limit(100)).expect("list").data;
    page.reverse();
    page
}

/// Records a report, retrying while the error says so; returns the retries needed.
fn record(c: &Service, r: &TransferReport) -> u32 {
    for attempt in 0..200 {
        match c.record_transfer(r.clone()) {
            Ok(_) => return attempt,
            Err(ServiceError::Store(e)) if e.is_retryable() => {}
            Err(e) => panic!("report {:?} failed: {e:?}", r.key()),
        }
    }
    panic!("report {:?} still failing after 200 tries", r.key());
}

/// Not a test of its own: the body of a worker process (does nothing unless run as one).
#[test]
fn sqlite_worker() {
    let Ok(db) = std::env::var(WORKER_DB) else {
        return;
    };
    let index: usize = std::env::var(WORKER_INDEX)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("worker index");
    let path = PathBuf::from(db);
    let clock = Arc::new(ManualClock::new(t0() + Duration::minutes(1)));
    let started = Instant::now();
    let retries: u32 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS_PER_PROCESS)
            .map(|thread| {
                let (path, clock) = (&path, &clock);
                scope.spawn(move || {
                    // One attempt per call, so that every conflict comes back here and
                    // is counted.
                    let c = service(path, clock).with_max_attempts(1);
                    let (_, reports) = plan(&sessions_in(c.store()));
                    shuffled(&reports, index * THREADS_PER_PROCESS + thread)
                        .iter()
                        .map(|r| record(&c, r))
                        .sum::<u32>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .sum()
    });
    println!(
        "worker {index} (pid {}): done in {:?}, {retries} conflicts or busy retried",
        std::process::id(),
        started.elapsed()
    );
}

fn outbox(store: &SqliteStore) -> Vec<StoredEvent> {
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

#[test]
fn processes_share_one_sqlite_file() {
    if std::env::var_os(WORKER_DB).is_some() {
        return;
    }
    let dir = TempDir::new("processes");
    let path = dir.file("shared.db");

    let clock = Arc::new(ManualClock::new(t0()));
    let c = service(&path, &clock);
    for _ in 0..SESSIONS {
        let params = common::uncapped(
            SessionParams::new(Decimal::from(100), usd())
                .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain]),
        );
        c.create(params, None).expect("create");
    }
    let sessions = sessions_in(c.store());
    assert_eq!(sessions.len(), SESSIONS);
    let (distinct, _) = plan(&sessions);

    let started = Instant::now();
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "sqlite_processes::sqlite_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_DB, &path)
                .env(WORKER_INDEX, i.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a worker")
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("worker output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "worker {i} failed: {}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            stdout.contains(&format!("worker {i} (pid")),
            "worker {i} did not run the worker test:\n{stdout}"
        );
        let tag = format!("worker {i} (pid");
        for line in stdout
            .lines()
            .filter_map(|l| l.find(&tag).map(|at| &l[at..]))
        {
            println!("{line}");
        }
    }
    println!("{PROCESSES} processes: {:?}", started.elapsed());

    // Read back through a connection opened after the workers finished, and the old one.
    let fresh = SqliteStore::open(&path).expect("reopen");
    for store in [&fresh, c.store()] {
        let events = outbox(store);
        assert!(
            events.windows(2).all(|w| w[0].seq < w[1].seq),
            "sequence numbers increase"
        );
        let event_ids: BTreeSet<_> = events.iter().map(|e| e.event.id).collect();
        assert_eq!(
            event_ids.len(),
            events.len(),
            "every event is in the outbox once"
        );
        for s in &sessions {
            let id = s.id();
            let loaded = store.load(id).expect("load").expect("session");
            let want: BTreeMap<TransferKey, Msats> = distinct
                .iter()
                .filter(|(_, (sid, _))| *sid == id)
                .map(|(k, (_, m))| (*k, *m))
                .collect();
            let got: BTreeMap<TransferKey, Msats> =
                loaded.transfers().map(|t| (t.key, t.amount)).collect();
            assert_eq!(
                got, want,
                "session {id}: each distinct transfer recorded once"
            );
            let total: u64 = got.values().map(|m| m.get()).sum();
            assert_eq!(
                total,
                want.values().map(|m| m.get()).sum::<u64>(),
                "session {id}: total received"
            );
            for t in loaded.transfers() {
                if let TransferKey::Onchain { .. } = t.key {
                    assert_eq!(
                        t.confirmations, 1,
                        "session {id}: {:?} lost its confirmation",
                        t.key
                    );
                    assert!(
                        t.counted_at.is_some(),
                        "session {id}: {:?} not counted",
                        t.key
                    );
                }
            }
            assert_eq!(loaded.status(), SessionStatus::Paid, "session {id} is paid");
            let mine: Vec<StoredEvent> = events
                .iter()
                .filter(|e| e.event.session_id == Some(id))
                .cloned()
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
                "session {id}: received events"
            );
            assert_eq!(
                store.session_events(id).expect("timeline"),
                mine,
                "session {id}: timeline"
            );
        }
    }
    c.store().close().expect("close");
    fresh.close().expect("close");
}
