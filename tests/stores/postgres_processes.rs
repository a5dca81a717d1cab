//! Several OS processes (this test binary, re-run as workers) record overlapping and
//! duplicate transfers for the same sessions in one PostgreSQL database: each transfer is
//! counted once, each session is paid once, and the outbox stays ordered and gap-free for
//! a reader watching it meanwhile.
//!
//! Needs `BITCOIN_CHECKOUT_PG` (run `scripts/test`, or `eval "$(scripts/postgres start)"`).
#![cfg(all(feature = "postgres", feature = "testkit"))]

use crate::common;

use common::shuffle;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant};

use bitcoin_checkout::OutPoint;
use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{PostgresStore, Store, StoredEvent};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, EventType, Msats, Sats, SessionId, SessionParams,
    SessionStatus, TargetCurrency, TransferKey, TransferReport,
};
use rust_decimal::Decimal;
use time::OffsetDateTime;

/// Set in a child process: its worker number.
const ROLE: &str = "BITCOIN_CHECKOUT_PG_WORKER";
const SCHEMA: &str = "BITCOIN_CHECKOUT_PG_WORKER_SCHEMA";
const SESSIONS: &str = "BITCOIN_CHECKOUT_PG_WORKER_SESSIONS";

const PROCESSES: usize = 3;
const THREADS_PER_PROCESS: usize = 2;
const SESSION_COUNT: usize = 6;

fn pg_url() -> String {
    match std::env::var("BITCOIN_CHECKOUT_PG") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "BITCOIN_CHECKOUT_PG is not set: the PostgreSQL store tests need a server. \
             Run `scripts/test`, or `eval \"$(scripts/postgres start)\"` and then cargo test \
             (or BITCOIN_CHECKOUT_PG=\"$(scripts/postgres url)\" cargo test …)."
        ),
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("valid time")
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

fn rates() -> FixedRates {
    FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000))
}

/// Every transfer of one session: a Lightning payment to its first quote and four on-chain
/// outputs, 12,000 sats for a 10,000 sats price.
fn transfers_for(session: &CheckoutSession) -> Vec<TransferReport> {
    let hash = TestRequestGenerator::payment_hash(session.payments()[0].id());
    let mut out = vec![TransferReport::lightning(hash, Msats::new(2_000_000))];
    for n in 0..4u8 {
        let mut b = [n; 32];
        b[..16].copy_from_slice(session.id().as_uuid().as_bytes());
        out.push(
            TransferReport::onchain(
                OutPoint::new(bitcoin_checkout::Txid::from_byte_array(b), u32::from(n)),
                TestRequestGenerator::address(session.id()),
                Sats::new(2_500),
            )
            .confirmations(1),
        );
    }
    out
}

/// The worker's part, in a child process: a few application servers (threads, each with
/// its own store) report every transfer of every session, in their own order, some twice.
/// A no-op in a normal test run.
#[test]
fn worker_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let worker: u64 = role.parse().expect("worker number");
    let schema = std::env::var(SCHEMA).expect("schema");
    let ids: Vec<SessionId> = std::env::var(SESSIONS)
        .expect("sessions")
        .split(',')
        .map(|s| s.parse().expect("session id"))
        .collect();
    let url = pg_url();
    std::thread::scope(|scope| {
        for thread in 0..THREADS_PER_PROCESS as u64 {
            let (url, schema, ids) = (&url, &schema, &ids);
            scope.spawn(move || {
                let store = PostgresStore::connect_in_schema(url, schema, 2).expect("connect");
                let mut reports: Vec<TransferReport> = ids
                    .iter()
                    .flat_map(|id| {
                        transfers_for(&store.load(*id).expect("load").expect("session exists"))
                    })
                    .collect();
                shuffle(&mut reports, 100 * worker + thread + 1);
                let again: Vec<_> = reports.iter().step_by(2).cloned().collect();
                reports.extend(again);
                let checkout = Checkout::new(store, rates(), TestRequestGenerator)
                    .with_clock(Arc::new(ManualClock::new(t0())))
                    .with_max_attempts(1_000);
                for r in reports {
                    loop {
                        match checkout.record_transfer(r.clone()) {
                            Ok(_) => break,
                            Err(ServiceError::Store(e)) if e.is_retryable() => {}
                            Err(e) => panic!("worker {worker}.{thread}: {e}"),
                        }
                    }
                }
            });
        }
    });
}

fn check_continues(cursor: Option<u64>, batch: &[StoredEvent]) {
    for (expected, e) in (cursor.unwrap_or(0) + 1..).zip(batch) {
        assert_eq!(
            e.seq,
            expected,
            "outbox page after {cursor:?} skips or repeats a seq: {:?}",
            batch.iter().map(|e| e.seq).collect::<Vec<_>>()
        );
    }
}

/// Reads the outbox from `cursor` to its current end, checking each page.
fn drain(store: &PostgresStore, cursor: &mut Option<u64>, into: &mut Vec<StoredEvent>) {
    loop {
        let batch = store.events_after(*cursor, 5).expect("events_after");
        check_continues(*cursor, &batch);
        let Some(last) = batch.last() else { return };
        *cursor = Some(last.seq);
        into.extend(batch);
    }
}

#[test]
fn processes_record_overlapping_transfers() {
    let started = Instant::now();
    let url = pg_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!("p{}_{nanos}", std::process::id());
    let _cleanup = DropSchema {
        url: url.clone(),
        schema: schema.clone(),
    };
    let store = PostgresStore::connect_in_schema(&url, &schema, 2).expect("connect");
    let clock = Arc::new(ManualClock::new(t0()));
    let checkout = Checkout::new(&store, rates(), TestRequestGenerator).with_clock(clock);
    let ids: Vec<SessionId> = (0..SESSION_COUNT)
        .map(|_| {
            checkout
                .create(
                    common::uncapped(SessionParams::new(Decimal::from(10), usd())),
                    None,
                )
                .expect("create")
                .id()
        })
        .collect();
    let id_list = ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().expect("test binary");

    let done = AtomicBool::new(false);
    let mut outbox = Vec::new();
    std::thread::scope(|scope| {
        // The reader: polls the outbox while the processes write.
        let reader = scope.spawn(|| {
            let mut cursor = None;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                drain(&store, &mut cursor, &mut seen);
                if finished {
                    return seen;
                }
                std::thread::sleep(StdDuration::from_millis(2));
            }
        });
        let children: Vec<_> = (0..PROCESSES)
            .map(|n| {
                Command::new(&exe)
                    .args([
                        "--exact",
                        "postgres_processes::worker_process",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(ROLE, n.to_string())
                    .env(SCHEMA, &schema)
                    .env(SESSIONS, &id_list)
                    .env("BITCOIN_CHECKOUT_PG", &url)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start a worker process")
            })
            .collect();
        let mut failures = Vec::new();
        for (n, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().expect("worker output");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || !text.contains("1 passed") {
                failures.push(format!("worker {n} ({}):\n{text}", out.status));
            }
        }
        done.store(true, Ordering::SeqCst);
        outbox = reader.join().expect("reader");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });

    // What the reader saw is the whole outbox, in order.
    let mut cursor = None;
    let mut all = Vec::new();
    drain(&store, &mut cursor, &mut all);
    assert_eq!(outbox, all, "the reader saw the outbox as it is now");

    let mut received: BTreeMap<SessionId, usize> = BTreeMap::new();
    let mut paid: BTreeMap<SessionId, usize> = BTreeMap::new();
    for e in &all {
        let Some(id) = e.event.session_id else {
            continue;
        };
        match e.event.event_type {
            EventType::TransferReceived => *received.entry(id).or_default() += 1,
            EventType::CheckoutSessionPaid => *paid.entry(id).or_default() += 1,
            _ => {}
        }
    }
    for id in &ids {
        let s = store.load(*id).expect("load").expect("session exists");
        let expected: BTreeSet<TransferKey> =
            transfers_for(&s).iter().map(TransferReport::key).collect();
        let got: BTreeSet<TransferKey> = s.transfers().map(|t| t.key).collect();
        assert_eq!(got, expected, "{id}: the transfers recorded");
        assert_eq!(
            s.transfers().map(|t| t.amount.get()).sum::<u64>(),
            12_000_000,
            "{id}: each transfer counted once"
        );
        assert_eq!(s.status(), SessionStatus::Paid, "{id}");
        assert_eq!(
            received.get(id),
            Some(&5),
            "{id}: one transfer_received per transfer"
        );
        assert_eq!(
            paid.get(id),
            Some(&1),
            "{id}: exactly one checkout_session.paid"
        );
    }
    eprintln!(
        "{PROCESSES} processes x {THREADS_PER_PROCESS} servers, {SESSION_COUNT} sessions, {} events: {:?}",
        all.len(),
        started.elapsed()
    );
}

/// Drops the test's schema when the test ends, passed or not (best effort).
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
                let _ = client.batch_execute(&sql).await;
            }
        });
    }
}
