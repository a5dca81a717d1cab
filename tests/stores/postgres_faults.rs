//! The PostgreSQL store under faults: many application servers record transfers while their
//! connections are terminated (`pg_terminate_backend`) and the server is restarted
//! (`scripts/postgres restart`). Every call must either commit once or fail with a typed
//! retryable error, and the end state must count each distinct transfer exactly once.
//!
//! Needs a server: `BITCOIN_CHECKOUT_PG` holds its connection string (`scripts/postgres
//! start`, then `BITCOIN_CHECKOUT_PG=$(scripts/postgres url) cargo test --all-features`).
//! The test restarts that server, so it is a test binary of its own (`[[test]]
//! postgres_faults` in Cargo.toml): cargo runs test binaries one after another, so no
//! other test meets the restarts (in the `stores` binary, run in parallel with the other
//! PostgreSQL tests, it cut their connections mid-test).
#![cfg(all(feature = "postgres", feature = "testkit"))]
// Tests assert by unwrapping, expecting and panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{
    Commit, IdempotencyRecord, ListQuery, Page, PostgresStore, Store, StoreError, StoredEvent,
};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, EventType, PaymentHash, Sats, SessionId, SessionParams,
    SessionStatus, TargetCurrency, TransferKey, TransferReport,
};
use bitcoin_checkout::{OutPoint, Txid};
use rust_decimal::Decimal;
use time::OffsetDateTime;

const WORKERS: usize = 8;
const SESSIONS: usize = 20;
/// On-chain outputs per session.
const OUTPUTS: usize = 30;
/// Pause between a worker's reports, so that the load outlasts the fault schedule.
const PACE: StdDuration = StdDuration::from_millis(25);
/// Time between two terminations of the workers' connections.
const KILL_EVERY: StdDuration = StdDuration::from_millis(120);
/// When (after the load starts) the server is restarted.
const RESTART_AT: [StdDuration; 2] = [
    StdDuration::from_millis(700),
    StdDuration::from_millis(1_500),
];
/// How long a worker may keep retrying before the test fails.
const DEADLINE: StdDuration = StdDuration::from_secs(60);

/// The test server's connection string; this test fails (never skips) without one.
fn pg_url() -> String {
    match std::env::var("BITCOIN_CHECKOUT_PG") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "BITCOIN_CHECKOUT_PG is not set: the PostgreSQL fault tests need a server. \
             Run `scripts/postgres start`, then \
             BITCOIN_CHECKOUT_PG=\"$(scripts/postgres url)\" cargo test --all-features …"
        ),
    }
}

/// Runs SQL on a connection of its own, returning the first column of each row as text.
fn admin(sql: &str) -> Result<Vec<Option<String>>, tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut config: tokio_postgres::Config = pg_url().parse()?;
        config.connect_timeout(StdDuration::from_secs(2));
        config.application_name("bc_fault_injector");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let mut out = Vec::new();
        for msg in client.simple_query(sql).await? {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
                out.push(row.get(0).map(str::to_owned));
            }
        }
        Ok(out)
    })
}

/// `scripts/postgres restart`: a fast restart (open connections cut), same port.
fn restart_server() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres");
    let out = Command::new(script)
        .arg("restart")
        .output()
        .expect("run scripts/postgres restart");
    assert!(
        out.status.success(),
        "scripts/postgres restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops the test's schema when the test ends (best effort).
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let _ = admin(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0));
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

/// A 32-byte txid made from a session id and a number.
fn txid(session: SessionId, n: u8) -> Txid {
    let mut b = [n; 32];
    b[..16].copy_from_slice(session.as_uuid().as_bytes());
    Txid::from_byte_array(b)
}

/// The size of each output of session `index`: every fifth session is underpaid
/// (30 × 300 = 9,000 sats for a 10,000 sats price), the others overpaid (15,000 sats).
fn output_sats(index: usize) -> u64 {
    if index % 5 == 4 { 300 } else { 500 }
}

/// The distinct on-chain outputs paid to one session's address, one confirmation each.
fn transfers_for(index: usize, session: SessionId) -> Vec<TransferReport> {
    (0..OUTPUTS)
        .map(|n| {
            TransferReport::onchain(
                OutPoint::new(
                    txid(session, u8::try_from(n % 8).expect("small")),
                    u32::try_from(n).expect("small"),
                ),
                TestRequestGenerator::address(session),
                Sats::new(output_sats(index)),
            )
            .confirmations(1)
        })
        .collect()
}

/// A tiny seeded PRNG (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("fits")
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

fn is_retryable(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Store(s) if s.is_retryable())
}

/// A store that counts the retryable errors its calls meet (to show the faults landed).
struct Counting<'a> {
    inner: PostgresStore,
    retryable: &'a AtomicU32,
}

impl Counting<'_> {
    fn tally<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Err(e @ StoreError::Backend { .. }) => {
                assert!(
                    e.is_retryable(),
                    "a fault gave a non-retryable error: {e:?}"
                );
                self.retryable.fetch_add(1, Ordering::Relaxed);
            }
            Err(StoreError::Conflict) | Ok(_) => {}
            Err(e) => panic!("unexpected store error under faults: {e:?}"),
        }
        r
    }
}

impl Store for Counting<'_> {
    fn load(&self, id: SessionId) -> Result<Option<CheckoutSession>, StoreError> {
        self.tally(self.inner.load(id))
    }
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.tally(self.inner.commit(commit))
    }
    fn find_by_transfer(&self, key: &TransferKey) -> Result<Option<SessionId>, StoreError> {
        self.tally(self.inner.find_by_transfer(key))
    }
    fn find_by_payment_hash(&self, hash: &PaymentHash) -> Result<Option<SessionId>, StoreError> {
        self.tally(self.inner.find_by_payment_hash(hash))
    }
    fn find_by_address(&self, address: &str) -> Result<Option<SessionId>, StoreError> {
        self.tally(self.inner.find_by_address(address))
    }
    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.tally(self.inner.list(query))
    }
    fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        self.tally(self.inner.due(now, limit))
    }
    fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.tally(self.inner.events_after(after, limit))
    }
    fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.tally(self.inner.events_before(before, limit))
    }
    fn event(&self, id: bitcoin_checkout::EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.tally(self.inner.event(id))
    }
    fn find_by_payment(
        &self,
        id: bitcoin_checkout::PaymentId,
    ) -> Result<Option<SessionId>, StoreError> {
        self.tally(self.inner.find_by_payment(id))
    }
    fn session_events(&self, id: SessionId) -> Result<Vec<StoredEvent>, StoreError> {
        self.tally(self.inner.session_events(id))
    }
    fn held_transfers(
        &self,
        id: SessionId,
        limit: usize,
    ) -> Result<Vec<bitcoin_checkout::session::HeldTransfer>, StoreError> {
        self.tally(self.inner.held_transfers(id, limit))
    }
    fn prune_idempotency(&self, before: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
        self.tally(self.inner.prune_idempotency(before, limit))
    }
    fn prune_events(&self, through: u64, limit: usize) -> Result<usize, StoreError> {
        self.tally(self.inner.prune_events(through, limit))
    }
    fn prune_session_events(&self, id: SessionId, through: u64) -> Result<usize, StoreError> {
        self.tally(self.inner.prune_session_events(id, through))
    }
    fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.tally(self.inner.idempotency(key))
    }
    fn claim_idempotency(
        &self,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.tally(self.inner.claim_idempotency(record))
    }
    fn release_idempotency(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        self.tally(self.inner.release_idempotency(record))
    }
}

/// Retries a read until it succeeds (the server may still be coming back).
fn settle<T>(what: &str, mut f: impl FnMut() -> Result<T, StoreError>) -> T {
    let started = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if e.is_retryable() && started.elapsed() < DEADLINE => {
                std::thread::sleep(StdDuration::from_millis(50));
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

/// The whole outbox, read in pages.
fn read_outbox(store: &PostgresStore) -> Vec<StoredEvent> {
    let mut all: Vec<StoredEvent> = Vec::new();
    loop {
        let after = all.last().map(|e| e.seq);
        let batch = settle("events_after", || store.events_after(after, 100));
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

#[derive(Default)]
struct Faults {
    /// Rounds of `pg_terminate_backend` run.
    rounds: u32,
    /// Backends terminated.
    terminated: u32,
    /// Server restarts.
    restarts: u32,
    /// Rounds that could not reach the server (it was restarting).
    unreachable: u32,
}

#[test]
fn transfers_survive_terminated_connections_and_restarts() {
    let started = Instant::now();
    let url = pg_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!("f{}_{nanos}", std::process::id());
    let _drop = DropSchema(schema.clone());
    let app = format!("bcw_{schema}");
    let worker_url = format!("{url} application_name={app}");

    let setup = PostgresStore::connect_in_schema(&url, &schema, 2).expect("connect");
    let clock = Arc::new(ManualClock::new(t0()));
    let checkout =
        Checkout::new(&setup, rates(), TestRequestGenerator).with_clock(Arc::clone(&clock));
    let sessions: Vec<SessionId> = (0..SESSIONS)
        .map(|_| {
            checkout
                .create(
                    SessionParams::new(Decimal::new(1_000, 2), usd()).limits(
                        // Many transfers per session, every one counted: no cap.
                        bitcoin_checkout::session::SessionLimits::new()
                            .max_quotes(u32::MAX)
                            .max_transfers(u32::MAX),
                    ),
                    None,
                )
                .expect("create")
                .id()
        })
        .collect();

    // The distinct reports, about 20 % of them again (webhook redeliveries), shuffled and
    // dealt out to the workers.
    let distinct: Vec<TransferReport> = sessions
        .iter()
        .enumerate()
        .flat_map(|(i, id)| transfers_for(i, *id))
        .collect();
    let mut rng = Rng(0x5EED_F00D_CAFE_D00D);
    let mut reports = distinct.clone();
    for _ in 0..distinct.len() / 5 {
        reports.push(distinct[rng.below(distinct.len())].clone());
    }
    rng.shuffle(&mut reports);
    let mut dealt: Vec<Vec<TransferReport>> = vec![Vec::new(); WORKERS];
    for (i, r) in reports.iter().enumerate() {
        dealt[i % WORKERS].push(r.clone());
    }

    let retryable_store = AtomicU32::new(0);
    let retryable_calls = AtomicU32::new(0);
    let operations = AtomicU32::new(0);
    let active = AtomicUsize::new(WORKERS);
    let load_started = Instant::now();

    let faults = std::thread::scope(|scope| {
        let fault_thread = scope.spawn(|| {
            let mut f = Faults::default();
            let kill = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND application_name = '{app}'"
            );
            while active.load(Ordering::SeqCst) > 0 {
                std::thread::sleep(KILL_EVERY);
                let due = RESTART_AT
                    .get(f.restarts as usize)
                    .is_some_and(|at| load_started.elapsed() >= *at);
                if due {
                    restart_server();
                    f.restarts += 1;
                    continue;
                }
                match admin(&kill) {
                    Ok(rows) => {
                        f.rounds += 1;
                        f.terminated += u32::try_from(
                            rows.iter().filter(|r| r.as_deref() == Some("t")).count(),
                        )
                        .expect("fits");
                    }
                    Err(_) => f.unreachable += 1,
                }
            }
            f
        });
        let workers: Vec<_> = dealt
            .iter()
            .enumerate()
            .map(|(w, mine)| {
                let (worker_url, schema, clock) = (&worker_url, &schema, &clock);
                let (retryable_store, retryable_calls, operations, active) =
                    (&retryable_store, &retryable_calls, &operations, &active);
                scope.spawn(move || {
                    // Each worker is an application server: its own store and service.
                    let store = Counting {
                        inner: settle("connect", || {
                            PostgresStore::connect_in_schema(worker_url, schema, 2)
                        }),
                        retryable: retryable_store,
                    };
                    let checkout = Checkout::new(store, rates(), TestRequestGenerator)
                        .with_clock(Arc::clone(clock));
                    let began = Instant::now();
                    for r in mine {
                        loop {
                            operations.fetch_add(1, Ordering::Relaxed);
                            match checkout.record_transfer(r.clone()) {
                                Ok(_) => break,
                                Err(e) if is_retryable(&e) => {
                                    retryable_calls.fetch_add(1, Ordering::Relaxed);
                                    assert!(
                                        began.elapsed() < DEADLINE,
                                        "worker {w}: still failing after {DEADLINE:?}: {e}"
                                    );
                                    std::thread::sleep(StdDuration::from_millis(20));
                                }
                                Err(e) => panic!("worker {w}: a non-retryable error: {e:?}"),
                            }
                        }
                        std::thread::sleep(PACE);
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        let mut panicked = None;
        for w in workers {
            if let Err(p) = w.join() {
                active.store(0, Ordering::SeqCst);
                panicked.get_or_insert(p);
            }
        }
        let faults = fault_thread.join().expect("fault thread");
        if let Some(p) = panicked {
            std::panic::resume_unwind(p);
        }
        faults
    });
    let load_elapsed = load_started.elapsed();

    // ---- the end state -------------------------------------------------------------------
    let outbox = read_outbox(&setup);
    assert!(
        outbox.windows(2).all(|w| w[0].seq < w[1].seq),
        "outbox seqs not strictly increasing"
    );
    let gaps = outbox
        .windows(2)
        .filter(|w| w[1].seq != w[0].seq + 1)
        .count();
    let ids: BTreeSet<_> = outbox.iter().map(|e| e.event.id).collect();
    assert_eq!(ids.len(), outbox.len(), "duplicate event ids in the outbox");
    let mut received: BTreeMap<SessionId, usize> = BTreeMap::new();
    let mut paid: BTreeMap<SessionId, usize> = BTreeMap::new();
    for e in &outbox {
        let Some(id) = e.event.session_id else {
            continue;
        };
        match e.event.event_type {
            EventType::TransferReceived => *received.entry(id).or_default() += 1,
            EventType::CheckoutSessionPaid => *paid.entry(id).or_default() += 1,
            _ => {}
        }
    }
    let mut checked = 0;
    let mut paid_sessions = 0;
    for (i, id) in sessions.iter().enumerate() {
        let s = settle("load", || setup.load(*id)).expect("session exists");
        let expected: BTreeSet<TransferKey> = transfers_for(i, *id)
            .iter()
            .map(TransferReport::key)
            .collect();
        let got: Vec<TransferKey> = s.transfers().map(|t| t.key).collect();
        assert_eq!(got.len(), expected.len(), "{id}: transfers recorded");
        assert_eq!(
            got.iter().copied().collect::<BTreeSet<_>>(),
            expected,
            "{id}: the transfers recorded are the distinct reports"
        );
        let msats: u64 = s.transfers().map(|t| t.amount.get()).sum();
        let want = OUTPUTS as u64 * output_sats(i) * 1_000;
        assert_eq!(msats, want, "{id}: each transfer counted once");
        assert_eq!(
            received.get(id).copied().unwrap_or(0),
            expected.len(),
            "{id}: one transfer_received per distinct transfer"
        );
        let should_pay = OUTPUTS as u64 * output_sats(i) >= 10_000;
        if should_pay {
            paid_sessions += 1;
            assert_eq!(s.status(), SessionStatus::Paid, "{id}");
        } else {
            assert_ne!(s.status(), SessionStatus::Paid, "{id}: underpaid");
        }
        assert_eq!(
            paid.get(id).copied().unwrap_or(0),
            usize::from(should_pay),
            "{id}: checkout_session.paid once per paid session"
        );
        let timeline = settle("session_events", || setup.session_events(*id));
        assert!(
            timeline.windows(2).all(|w| w[0].seq < w[1].seq),
            "{id}: timeline in order"
        );
        checked += got.len();
    }

    eprintln!(
        "faults: {} backends terminated in {} rounds ({} rounds while the server was down), \
         {} restarts",
        faults.terminated, faults.rounds, faults.unreachable, faults.restarts
    );
    eprintln!(
        "load: {} reports ({} distinct) by {WORKERS} servers over {SESSIONS} sessions \
         ({paid_sessions} paid); {} record_transfer calls, {} failed retryably; \
         {} retryable store errors",
        reports.len(),
        distinct.len(),
        operations.load(Ordering::Relaxed),
        retryable_calls.load(Ordering::Relaxed),
        retryable_store.load(Ordering::Relaxed)
    );
    eprintln!(
        "checked: {checked} transfers, {} outbox events ({gaps} seq gaps); load {load_elapsed:?}, \
         total {:?}",
        outbox.len(),
        started.elapsed()
    );
    assert!(
        faults.terminated >= 20,
        "only {} backends terminated",
        faults.terminated
    );
    assert_eq!(faults.restarts, 2, "restarts during the load");
    assert!(
        retryable_store.load(Ordering::Relaxed) > 0,
        "no fault reached the workers"
    );
}
