//! Crash safety of the SQLite store: a worker process records transfers and creates sessions
//! as fast as it can in one database file and is killed with SIGKILL at a random moment,
//! again and again; after each kill the parent reopens the file and checks that nothing
//! committed was lost and nothing half-done is visible.
//!
//! The worker is this test binary run again (`--exact crash_sqlite::crash_worker`, told what to do through
//! environment variables). It prints one line per operation it saw committed, flushed as
//! soon as the call returned `Ok`: a printed line is certainly committed; the operation in
//! flight when the kill came may be committed without its line (at most one per worker).
//!
//! After each kill the parent opens the file with `SqliteStore::open` and checks:
//!
//! * the outbox resumes from the parent's cursor with no gap and no repeat (sequence numbers
//!   contiguous across all kills), event ids are unique over the whole run, and the commits
//!   it gained are exactly the ones the worker printed, plus at most the one in flight;
//! * every transfer printed is stored (`find_by_transfer`, and on its session with the right
//!   amount and at least the printed confirmations), every session printed is there (and its
//!   idempotency record, when it was created with a key);
//! * every session (all pages of the listing; the sessions are exactly those the outbox has
//!   events of) round-trips through JSON (whole, and as head + transfers), its totals are the
//!   sums of its transfers at their quotes' rates, it is paid iff its counted funds reach the
//!   threshold, and its timeline matches its state exactly: one `checkout_session.created`
//!   first, one `transfer_received` per transfer, one `payment.created` per payment,
//!   `payment.paid` / `payment.expired` iff the payment is paid / expired,
//!   `checkout_session.paid` iff the session is paid, commit versions strictly increasing,
//!   the last commit's version and time the session's `version` and `modified`, and its
//!   snapshot equal to the stored session's event form; the stored timeline
//!   (`session_events`) is the one read through the cursor;
//! * `PRAGMA integrity_check` passes.
//!
//! Each event body is parsed once, when the cursor reads it. A session equal to the copy
//! verified before and with no new events is not derived again (the same inputs give the
//! same results). Every session is listed after every kill until the database holds
//! [`ALWAYS_FULL_UP_TO`] transfers; beyond that (long release runs) the listing runs each time
//! the stored transfers grew by a quarter, and the kills in between check the sessions the
//! outbox or the worker touched and the worker's transfers. The last kill is followed by a
//! check of everything (every timeline compared, every printed transfer looked up).
//!
//! Environment: `CRASH_KILLS` (default 120), `CRASH_SEED` (the PRNG seed; delays and worker
//! choices derive from it), `CRASH_SYNCHRONOUS=full` (workers switch to `synchronous=FULL`;
//! default `NORMAL`). `scripts/crash-test` runs the full-size version (500 kills, release).
//!
//! Why `synchronous=NORMAL` is enough here: in WAL mode a transaction is committed once its
//! frames, commit frame included, are written to the WAL file by `write()`; that data is in
//! the operating system's page cache and survives the death of the process (SIGKILL, panic,
//! abort). NORMAL only skips the `fsync` of the WAL at each commit, so what it can lose is
//! the last transactions on an operating-system crash or a power loss, which a process kill
//! cannot simulate. `CRASH_SYNCHRONOUS=full` runs the same suite with the `fsync`.
#![cfg(feature = "sqlite")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration as StdDuration, Instant};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::{Hash32, TestRequestGenerator};
use bitcoin_checkout::store::{ListQuery, SqliteStore, Store, StoredEvent};
use bitcoin_checkout::{
    Arrival, Checkout, CheckoutSession, ConfirmationPolicy, Currency, EventId, EventType, Msats,
    PaymentId, PaymentMethod, PaymentStatus, Sats, SessionId, SessionParams, SessionState,
    SessionStatus, TargetCurrency, TransferKey, TransferReport,
};
use bitcoin_checkout::{OutPoint, Txid};
use rust_decimal::Decimal;
use time::OffsetDateTime;

/// Set in a worker's environment: the database file.
const WORKER_DB: &str = "BITCOIN_CHECKOUT_CRASH_WORKER_DB";
/// Set in a worker's environment: its number (also makes its txids unique).
const WORKER_INDEX: &str = "BITCOIN_CHECKOUT_CRASH_WORKER_INDEX";
/// Set in a worker's environment: the seed of its choices.
const WORKER_SEED: &str = "BITCOIN_CHECKOUT_CRASH_WORKER_SEED";
/// Set in a worker's environment: its clock's start (Unix ms).
const WORKER_START_MS: &str = "BITCOIN_CHECKOUT_CRASH_WORKER_START_MS";
/// Set in a worker's environment: `full` for `synchronous=FULL`.
const WORKER_SYNC: &str = "BITCOIN_CHECKOUT_CRASH_WORKER_SYNC";

/// How many kills (default [`DEFAULT_KILLS`]).
const KILLS_ENV: &str = "CRASH_KILLS";
/// The PRNG seed (default [`DEFAULT_SEED`]).
const SEED_ENV: &str = "CRASH_SEED";
/// `full` to run the workers with `synchronous=FULL`.
const SYNC_ENV: &str = "CRASH_SYNCHRONOUS";

const DEFAULT_KILLS: usize = 120;
const DEFAULT_SEED: u64 = 0x00c0_ffee_d15c_a4d5;
/// Kill delays after the worker reported it started, in ms (inclusive).
const DELAY_MS: (u64, u64) = (5, 80);
/// A worker stops by itself after this long (the parent then fails: it must be killed).
const WORKER_MAX_SECS: u64 = 120;
/// How long the parent waits for a worker to start.
const START_TIMEOUT: StdDuration = StdDuration::from_secs(60);
/// Every line the worker means for the parent starts with this (libtest may print before it
/// on the same line).
const MARK: &str = "@@crash ";
/// The full check runs after every kill until the database holds this many transfers.
const ALWAYS_FULL_UP_TO: usize = 4_000;

type Service = Checkout<SqliteStore, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

// ---- shared ---------------------------------------------------------------------------------

/// splitmix64: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with `percent` % probability.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len() as u64) as usize])
        }
    }
}

fn currency(code: &str) -> Currency {
    Currency::from_code(code).expect("currency")
}

fn rates() -> FixedRates {
    FixedRates::new()
        .with(currency("USD"), TargetCurrency::Sats, Decimal::from(1_000))
        .with(
            currency("EUR"),
            TargetCurrency::Sats,
            Decimal::new(11_005, 1),
        )
        .with(currency("JPY"), TargetCurrency::Sats, Decimal::new(713, 2))
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time")
}

fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("ms")
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("ms time")
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

// ---- the worker -----------------------------------------------------------------------------

/// Prints one line for the parent in one `write` and flushes it; exits quietly when the
/// parent is gone.
fn emit(line: &str) {
    let text = format!("{MARK}{line}\n");
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

struct Worker {
    c: Service,
    clock: Arc<ManualClock>,
    rng: Rng,
    index: u32,
    op: u32,
    /// The sessions it works on: every active one, and a few paid ones (always the
    /// committed state: the worker is the only writer).
    sessions: Vec<CheckoutSession>,
    /// The last create with an idempotency key, to replay it.
    last_keyed: Option<(String, SessionParams, SessionId)>,
}

/// Not a test of its own: the body of a worker process (does nothing unless run as one).
#[test]
fn crash_worker() {
    let Ok(db) = std::env::var(WORKER_DB) else {
        return;
    };
    let index: u32 = env_num(WORKER_INDEX).expect("worker index");
    let seed: u64 = env_num(WORKER_SEED).expect("worker seed");
    let start_ms: i64 = env_num(WORKER_START_MS).expect("worker clock");
    let full = std::env::var(WORKER_SYNC).is_ok_and(|v| v == "full");
    let mut store = SqliteStore::open(&db).expect("worker: open the database");
    if full {
        store = store
            .with_synchronous_full()
            .expect("worker: synchronous=FULL");
    }
    let clock = Arc::new(ManualClock::new(from_ms(start_ms)));
    let c = Checkout::new(store, rates(), TestRequestGenerator).with_clock(Arc::clone(&clock));
    let sessions = working_set(c.store());
    let mut w = Worker {
        c,
        clock,
        rng: Rng::new(seed),
        index,
        op: 0,
        sessions,
        last_keyed: None,
    };
    emit(&format!(
        "started {} {} sessions",
        std::process::id(),
        w.sessions.len()
    ));
    let deadline = Instant::now() + StdDuration::from_secs(WORKER_MAX_SECS);
    while Instant::now() < deadline {
        w.step();
    }
    emit("done");
}

/// Every active session and the newest paid ones.
fn working_set(store: &SqliteStore) -> Vec<CheckoutSession> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&{
                let mut q = ListQuery::new().status(SessionStatus::Active).limit(100);
                q.starting_after = after;
                q
            })
            .expect("worker: list active sessions");
        after = page.data.last().map(CheckoutSession::id);
        out.extend(page.data);
        if !page.has_more {
            break;
        }
    }
    let paid = store
        .list(&ListQuery::new().status(SessionStatus::Paid).limit(6))
        .expect("worker: list paid sessions");
    out.extend(paid.data);
    out
}

impl Worker {
    fn step(&mut self) {
        self.op += 1;
        let ms = self.rng.below(4_000) as i64;
        self.clock.advance(time::Duration::milliseconds(ms));
        let active = self.indices(SessionStatus::Active);
        if active.len() < 3 || self.rng.chance(2) {
            self.create();
            return;
        }
        let r = self.rng.below(100);
        let done = match r {
            0..55 => false,
            55..63 => {
                let paid = self.indices(SessionStatus::Paid);
                match self.rng.pick(&paid) {
                    Some(i) => self.new_transfer(i),
                    None => false,
                }
            }
            63..75 => self.confirm(),
            75..92 => self.duplicate(),
            92..97 => self.old_invoice(),
            _ => self.replay_create(),
        };
        if !done {
            // The fallback that always applies: new funds for an active session.
            let i = self.rng.pick(&active).expect("active sessions");
            if !self.new_transfer(i) {
                self.create();
            }
        }
    }

    fn indices(&self, status: SessionStatus) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&i| self.sessions[i].status() == status)
            .collect()
    }

    fn create(&mut self) {
        let code = ["USD", "EUR", "JPY"][self.rng.below(3) as usize];
        let amount = if code == "JPY" {
            Decimal::from(self.rng.range(1_500, 20_000))
        } else {
            Decimal::new(self.rng.range(1_000, 15_000) as i64, 2)
        };
        let methods: &[PaymentMethod] = match self.rng.below(100) {
            0..70 => &[PaymentMethod::Lightning, PaymentMethod::Onchain],
            70..85 => &[PaymentMethod::Lightning],
            _ => &[PaymentMethod::Onchain],
        };
        let policy = [0, 1, 1, 2][self.rng.below(4) as usize];
        let mut params = SessionParams::new(amount, currency(code))
            .payment_methods(methods.iter().copied())
            .confirmations(ConfirmationPolicy::from_confirmations(policy).expect("policy"))
            .ttl_secs([300, 600, 900][self.rng.below(3) as usize])
            .description(format!("crash test order {}-{}", self.index, self.op))
            // Many transfers and quotes per session, all counted: no cap holds any apart.
            .limits(
                bitcoin_checkout::session::SessionLimits::new()
                    .max_quotes(u32::MAX)
                    .max_transfers(u32::MAX),
            );
        if self.rng.chance(30) {
            params = params.tolerance(Decimal::new(self.rng.range(1, 20) as i64, 1));
        }
        let key = self
            .rng
            .chance(50)
            .then(|| format!("crash-{}-{}", self.index, self.op));
        let s = self
            .c
            .create(params.clone(), key.as_deref())
            .unwrap_or_else(|e| panic!("worker {}: create: {e:?}", self.index));
        emit(&format!(
            "created {} {}",
            s.id(),
            key.as_deref().unwrap_or("-")
        ));
        if let Some(key) = key {
            self.last_keyed = Some((key, params, s.id()));
        }
        self.sessions.push(s);
        // Keep the working set small: drop the oldest paid sessions.
        while self.sessions.len() > 24 {
            match self
                .sessions
                .iter()
                .position(|s| s.status() != SessionStatus::Active)
            {
                Some(i) => {
                    self.sessions.remove(i);
                }
                None => break,
            }
        }
    }

    /// The same create again with the same key: the first session comes back, nothing is
    /// written.
    fn replay_create(&mut self) -> bool {
        let Some((key, params, id)) = self.last_keyed.clone() else {
            return false;
        };
        let s = self
            .c
            .create(params, Some(&key))
            .unwrap_or_else(|e| panic!("worker {}: replay {key}: {e:?}", self.index));
        assert_eq!(s.id(), id, "worker {}: replay of {key}", self.index);
        emit(&format!("replayed {id} {key}"));
        true
    }

    /// New funds for session `i`: its open quote's invoice or its address (or, on a paid
    /// session, an invoice nobody paid yet or the address: an overpayment).
    fn new_transfer(&mut self, i: usize) -> bool {
        let s = &self.sessions[i];
        let open = s.open_payment();
        let reference = open.map_or(30_000_000, |p| p.target_msats().get());
        let msats = if self.rng.chance(25) {
            reference
        } else {
            reference * self.rng.range(15, 70) / 100 + self.rng.below(1_000)
        }
        .max(1_000);
        let unpaid_hash = |p: &bitcoin_checkout::Payment| {
            p.request()
                .lightning
                .as_ref()
                .map(|l| l.payment_hash)
                .filter(|h| s.transfer(&TransferKey::Lightning(*h)).is_none())
        };
        let hash = if s.accepts(PaymentMethod::Lightning) {
            open.and_then(unpaid_hash)
                .or_else(|| s.payments().iter().rev().find_map(|p| unpaid_hash(p)))
        } else {
            None
        };
        let address = s
            .onchain_address()
            .filter(|_| s.accepts(PaymentMethod::Onchain))
            .map(str::to_owned);
        let report = match (hash, address) {
            (Some(h), a) if a.is_none() || self.rng.chance(50) => {
                TransferReport::lightning(h, Msats::new(msats))
            }
            (_, Some(address)) => {
                let sats = msats.div_ceil(1_000);
                let confirmations = [0, 1, 1, 2, 0][self.rng.below(5) as usize];
                TransferReport::onchain(
                    OutPoint::new(self.txid(), self.rng.below(4) as u32),
                    address,
                    Sats::new(sats),
                )
                .confirmations(confirmations)
            }
            _ => return false,
        };
        self.record(i, report, None);
        true
    }

    /// A txid no other operation of the run uses.
    fn txid(&self) -> Txid {
        let mut b = [0xc5u8; 32];
        b[..4].copy_from_slice(&self.index.to_be_bytes());
        b[4..8].copy_from_slice(&self.op.to_be_bytes());
        Txid::from_byte_array(b)
    }

    /// One more confirmation for an on-chain transfer of the working set.
    fn confirm(&mut self) -> bool {
        let candidates: Vec<(usize, TransferKey)> = self
            .sessions
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.transfers()
                    .filter(|t| matches!(t.key, TransferKey::Onchain { .. }) && t.confirmations < 6)
                    .map(move |t| (i, t.key))
            })
            .collect();
        let Some((i, key)) = self.rng.pick(&candidates) else {
            return false;
        };
        let s = &self.sessions[i];
        let t = s.transfer(&key).expect("transfer");
        let TransferKey::Onchain(OutPoint { txid, vout }) = key else {
            unreachable!()
        };
        let report = TransferReport::onchain(
            OutPoint::new(txid, vout),
            s.onchain_address().expect("address"),
            Sats::new(t.amount.get() / 1_000),
        )
        .confirmations(t.confirmations + 1);
        self.record(i, report, Some(true));
        true
    }

    /// A transfer of the working set reported again, with no new facts: nothing changes.
    fn duplicate(&mut self) -> bool {
        let candidates: Vec<(usize, TransferKey)> = self
            .sessions
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.transfers().map(move |t| (i, t.key)))
            .collect();
        let Some((i, key)) = self.rng.pick(&candidates) else {
            return false;
        };
        let s = &self.sessions[i];
        let t = s.transfer(&key).expect("transfer");
        let report = match key {
            TransferKey::Lightning(h) => TransferReport::lightning(h, t.amount),
            TransferKey::Onchain(OutPoint { txid, vout }) => TransferReport::onchain(
                OutPoint::new(txid, vout),
                s.onchain_address().expect("address"),
                Sats::new(t.amount.get() / 1_000),
            )
            .confirmations(self.rng.range(0, u64::from(t.confirmations)) as u32),
        };
        self.record(i, report, Some(false));
        true
    }

    /// A Lightning payment of an older quote's invoice (expired, or replaced after a part
    /// payment) of an active session.
    fn old_invoice(&mut self) -> bool {
        let candidates: Vec<(usize, Hash32)> = self
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.status() == SessionStatus::Active)
            .flat_map(|(i, s)| {
                s.payments()
                    .iter()
                    .filter(|p| p.status() != PaymentStatus::Unpaid)
                    .filter_map(|p| p.request().lightning.as_ref().map(|l| l.payment_hash))
                    .filter(|h| s.transfer(&TransferKey::Lightning(*h)).is_none())
                    .map(move |h| (i, h))
            })
            .collect();
        let Some((i, hash)) = self.rng.pick(&candidates) else {
            return false;
        };
        let msats = self.rng.range(1_000, 40_000_000);
        self.record(i, TransferReport::lightning(hash, Msats::new(msats)), None);
        true
    }

    /// Records a report on session `i` and prints what was committed: `ok` when the session
    /// changed, `same` when the report was a no-op. `expect_change` checks which it was.
    fn record(&mut self, i: usize, report: TransferReport, expect_change: Option<bool>) {
        let key = report.key();
        let before = self.sessions[i].version();
        let id = self.sessions[i].id();
        let s = match self.c.record_transfer(report) {
            Ok(s) => s,
            Err(e) => panic!("worker {}: record {key} on {id}: {e:?}", self.index),
        };
        let changed = s.version() != before;
        let t = s
            .transfer(&key)
            .expect("the recorded transfer is on its session");
        emit(&format!(
            "{} {key} {} {} {}",
            if changed { "ok" } else { "same" },
            s.id(),
            t.amount.get(),
            t.confirmations
        ));
        assert_eq!(
            s.id(),
            id,
            "worker {}: {key} went to another session",
            self.index
        );
        if let Some(expected) = expect_change {
            assert_eq!(
                changed,
                expected,
                "worker {}: {key} on {id}: version {before} -> {}",
                self.index,
                s.version()
            );
        }
        self.sessions[i] = s;
    }
}

// ---- the parent -----------------------------------------------------------------------------

/// What one worker printed.
#[derive(Default)]
struct Lines {
    started: bool,
    /// (session, idempotency key)
    created: Vec<(SessionId, Option<String>)>,
    /// (changed, key, session, amount, confirmations)
    transfers: Vec<(bool, TransferKey, SessionId, Msats, u32)>,
    replays: usize,
}

impl Lines {
    fn parse(all: &[String], worker: usize) -> Self {
        let mut out = Self::default();
        for raw in all {
            let Some(at) = raw.find(MARK) else { continue };
            let words: Vec<&str> = raw[at + MARK.len()..].split_whitespace().collect();
            fn bad<T>(worker: usize, raw: &str) -> T {
                panic!("worker {worker}: unreadable line {raw:?}")
            }
            match words.as_slice() {
                ["started", ..] => out.started = true,
                ["created", id, key] => out.created.push((
                    id.parse().unwrap_or_else(|_| bad(worker, raw)),
                    (*key != "-").then(|| (*key).to_owned()),
                )),
                ["replayed", ..] => out.replays += 1,
                [kind @ ("ok" | "same"), key, id, amount, conf] => out.transfers.push((
                    *kind == "ok",
                    key.parse().unwrap_or_else(|_| bad(worker, raw)),
                    id.parse().unwrap_or_else(|_| bad(worker, raw)),
                    Msats::new(amount.parse().unwrap_or_else(|_| bad(worker, raw))),
                    conf.parse().unwrap_or_else(|_| bad(worker, raw)),
                )),
                ["done"] => panic!("worker {worker} ran out of time without being killed"),
                _ => bad(worker, raw),
            }
        }
        out
    }

    fn commits(&self) -> usize {
        self.created.len() + self.transfers.iter().filter(|t| t.0).count()
    }
}

/// Runs worker `n` and kills it `delay_ms` after it reported it started; returns its lines.
fn run_worker(
    exe: &Path,
    db: &Path,
    n: usize,
    seed: u64,
    start_ms: i64,
    sync_full: bool,
    delay_ms: u64,
) -> Vec<String> {
    let mut child: Child = Command::new(exe)
        .args([
            "--exact",
            "crash_sqlite::crash_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_DB, db)
        .env(WORKER_INDEX, n.to_string())
        .env(WORKER_SEED, seed.to_string())
        .env(WORKER_START_MS, start_ms.to_string())
        .env(WORKER_SYNC, if sync_full { "full" } else { "normal" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a worker");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        // Whole lines only: a line cut short by the kill (no newline) was not printed.
        let mut stdout = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdout.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) if buf.last() != Some(&b'\n') => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + START_TIMEOUT;
    let mut started = false;
    while !started {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                started = line.contains(&format!("{MARK}started"));
                lines.push(line);
            }
            Err(_) => break,
        }
    }
    if started {
        std::thread::sleep(StdDuration::from_millis(delay_ms));
    }
    let early = child.try_wait().expect("try_wait");
    // SIGKILL (std's kill on Unix); harmless if it already exited.
    let _ = child.kill();
    let status = child.wait().expect("wait for the worker");
    reader.join().expect("stdout reader");
    lines.extend(rx.try_iter());
    let errors = err_reader.join().expect("stderr reader");
    #[cfg(unix)]
    let killed = std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
    #[cfg(not(unix))]
    let killed = !status.success();
    if !started || early.is_some() || !killed {
        panic!(
            "worker {n} {} (status {status:?}, before: {early:?})\nstdout:\n{}\nstderr:\n{errors}",
            if !started {
                "never started"
            } else if killed {
                "exited before it was killed"
            } else {
                "was not ended by SIGKILL"
            },
            lines.join("\n")
        );
    }
    lines
}

/// A transfer a worker printed as committed.
struct Reported {
    session: SessionId,
    amount: Msats,
    confirmations: u32,
}

/// The fields of an event's object the checks need (a session or a payment).
#[derive(serde::Deserialize)]
struct Snapshot {
    id: String,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    /// A payment's session.
    #[serde(default)]
    checkout_session: Option<String>,
}

/// Event types of which each commit has exactly one: the commit's cause.
fn is_primary(t: &EventType) -> bool {
    matches!(
        t,
        EventType::CheckoutSessionCreated
            | EventType::TransferReceived
            | EventType::TransferConfirmed
            | EventType::TransferUpdated
    )
}

/// One session's events as read through the outbox cursor, summarised as they are read
/// (each event body is parsed once in the whole run).
#[derive(Default)]
struct Timeline {
    /// (seq, id) of each event, in order.
    events: Vec<(u64, EventId)>,
    /// How many of them `session_events` was last found to list, exactly.
    compared: usize,
    /// Events by type name.
    counts: HashMap<String, usize>,
    /// Payment id → [payment.created, payment.paid, payment.expired].
    payments: HashMap<String, [usize; 3]>,
    /// Commits (primary events) and the version of the last one.
    commits: usize,
    last_commit_version: Option<u64>,
    /// The newest session snapshot: (seq, JSON).
    last_snapshot: Option<(u64, String)>,
    last_created: Option<OffsetDateTime>,
}

impl Timeline {
    fn count(&self, t: EventType) -> usize {
        self.counts.get(t.as_str()).copied().unwrap_or(0)
    }

    /// Takes in the session's next event; checks what one event tells.
    fn ingest(&mut self, session: SessionId, e: &StoredEvent, kill: usize) {
        let t = &e.event.event_type;
        let ctx = format!("kill {kill}: session {session}: event {} ({t})", e.seq);
        if self.events.is_empty() {
            assert_eq!(
                *t,
                EventType::CheckoutSessionCreated,
                "{ctx}: the timeline starts with the creation"
            );
        }
        self.events.push((e.seq, e.event.id));
        *self.counts.entry(t.as_str().to_owned()).or_default() += 1;
        let snap: Snapshot = serde_json::from_str(e.event.object.get())
            .unwrap_or_else(|err| panic!("{ctx}: object: {err}"));
        if t.is_payment_event() {
            assert_eq!(
                snap.checkout_session.as_deref(),
                Some(session.to_string().as_str()),
                "{ctx}: the payment's session"
            );
            let slot = match t {
                EventType::PaymentCreated => 0,
                EventType::PaymentPaid => 1,
                EventType::PaymentExpired => 2,
                other => panic!("{ctx}: unexpected {other}"),
            };
            let counts = self.payments.entry(snap.id).or_default();
            counts[slot] += 1;
            if slot > 0 {
                assert_eq!(counts[0], 1, "{ctx}: before its payment.created");
            }
        } else {
            assert_eq!(
                snap.id,
                session.to_string(),
                "{ctx}: the snapshot's session"
            );
            let v = snap
                .version
                .unwrap_or_else(|| panic!("{ctx}: snapshot without version"));
            if is_primary(t) {
                // A new commit: one more version (or several: a re-quote touches too).
                if let Some(prev) = self.last_commit_version {
                    assert!(v > prev, "{ctx}: commit versions {prev} then {v}");
                }
                self.commits += 1;
                self.last_commit_version = Some(v);
            } else {
                assert_eq!(
                    self.last_commit_version,
                    Some(v),
                    "{ctx}: snapshot is not its commit's"
                );
            }
            if *t == EventType::CheckoutSessionPaid {
                assert_eq!(snap.status.as_deref(), Some("paid"), "{ctx}: status");
            }
            self.last_snapshot = Some((e.seq, e.event.object.get().to_owned()));
        }
        if let Some(prev) = self.last_created {
            assert!(prev <= e.event.created, "{ctx}: time went backwards");
        }
        self.last_created = Some(e.event.created);
    }
}

/// What the parent knows, carried across kills.
#[derive(Default)]
struct Verifier {
    /// The outbox cursor: the last sequence number read.
    cursor: Option<u64>,
    event_ids: HashSet<EventId>,
    /// Each session's events as read through the cursor.
    timelines: HashMap<SessionId, Timeline>,
    /// Each session as last checked in depth, with its number of events then.
    verified: HashMap<SessionId, (CheckoutSession, usize)>,
    reported: HashMap<TransferKey, Reported>,
    created: HashMap<SessionId, Option<String>>,
    /// The latest event time seen.
    latest_ms: i64,
    /// Transfers stored (one `transfer_received` each).
    stored_transfers: usize,
    /// Stored transfers at the last full check.
    stored_at_last_full: usize,
    // figures
    kills: usize,
    /// Kills after which the worker's write-ahead log was left non-empty.
    hot_wal: usize,
    full_checks: usize,
    commits_printed: usize,
    commits_in_flight: usize,
    same_printed: usize,
    replays: usize,
    sessions_checked: usize,
    sessions_unchanged: usize,
    timeline_events_compared: usize,
    transfers_verified: usize,
    stored_sessions: usize,
    max_lines: usize,
    check_time: StdDuration,
    full_check_time: StdDuration,
}

impl Verifier {
    /// The clock the next worker starts from: after everything committed so far.
    fn next_start_ms(&self) -> i64 {
        self.latest_ms.max(to_ms(t0())) + 1_000
    }

    /// Checks the database after kill number `kill` (`lines`: what the killed worker
    /// printed).
    fn after_kill(&mut self, db: &Path, kill: usize, lines: &Lines, last: bool) {
        let started = Instant::now();
        // What the killed worker left in the write-ahead log, which opening recovers from.
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            self.hot_wal += 1;
        }
        let store = SqliteStore::open(db)
            .unwrap_or_else(|e| panic!("kill {kill}: reopening the database failed: {e:?}"));
        self.kills += 1;
        let new_events = self.read_outbox(&store, kill);
        self.account(kill, lines, &new_events);
        self.remember(kill, lines);
        let full = last
            || self.stored_at_last_full <= ALWAYS_FULL_UP_TO
            || self.stored_transfers * 4 >= self.stored_at_last_full * 5;
        if full {
            let t = Instant::now();
            self.full_check(&store, db, kill, last);
            self.full_check_time += t.elapsed();
        } else {
            self.partial_check(&store, kill, lines, &new_events);
        }
        store.close().expect("close");
        self.check_time += started.elapsed();
    }

    /// Reads the outbox from the cursor: contiguous, no repeat, ids never seen.
    fn read_outbox(&mut self, store: &SqliteStore, kill: usize) -> Vec<StoredEvent> {
        let mut new = Vec::new();
        loop {
            let page = store
                .events_after(self.cursor, 500)
                .unwrap_or_else(|e| panic!("kill {kill}: events_after: {e:?}"));
            if page.is_empty() {
                break;
            }
            for e in page {
                let expected = self.cursor.map_or(1, |c| c + 1);
                assert_eq!(
                    e.seq, expected,
                    "kill {kill}: the outbox after seq {:?} continues at {} (gap or repeat)",
                    self.cursor, e.seq
                );
                assert!(
                    self.event_ids.insert(e.event.id),
                    "kill {kill}: event id {} (seq {}) seen twice",
                    e.event.id,
                    e.seq
                );
                let sid = e
                    .event
                    .session_id
                    .unwrap_or_else(|| panic!("kill {kill}: event {} has no session", e.seq));
                self.timelines.entry(sid).or_default().ingest(sid, &e, kill);
                if e.event.event_type == EventType::TransferReceived {
                    self.stored_transfers += 1;
                }
                self.latest_ms = self.latest_ms.max(to_ms(e.event.created));
                self.cursor = Some(e.seq);
                new.push(e);
            }
        }
        new
    }

    /// The commits the outbox gained are the ones the worker printed, plus at most the one
    /// in flight when it was killed.
    fn account(&mut self, kill: usize, lines: &Lines, new_events: &[StoredEvent]) {
        let mut in_db: BTreeMap<SessionId, usize> = BTreeMap::new();
        for e in new_events
            .iter()
            .filter(|e| is_primary(&e.event.event_type))
        {
            *in_db
                .entry(e.event.session_id.expect("session"))
                .or_default() += 1;
        }
        let mut printed: BTreeMap<SessionId, usize> = BTreeMap::new();
        for (id, _) in &lines.created {
            *printed.entry(*id).or_default() += 1;
        }
        for (_, _, id, _, _) in lines.transfers.iter().filter(|t| t.0) {
            *printed.entry(*id).or_default() += 1;
        }
        for id in in_db.keys().chain(printed.keys()) {
            let (db, pr) = (
                in_db.get(id).copied().unwrap_or(0),
                printed.get(id).copied().unwrap_or(0),
            );
            assert!(
                db >= pr,
                "kill {kill}: session {id}: {pr} commits printed, only {db} in the outbox (lost)"
            );
        }
        let extra = in_db.values().sum::<usize>() - printed.values().sum::<usize>();
        assert!(
            extra <= 1,
            "kill {kill}: {extra} commits in the outbox that the worker never printed (at most \
             the one in flight may be missing)"
        );
        // Every session printed as created has its creation in this round.
        for (id, _) in &lines.created {
            assert!(
                new_events.iter().any(|e| e.event.session_id == Some(*id)
                    && e.event.event_type == EventType::CheckoutSessionCreated),
                "kill {kill}: session {id} printed as created has no creation event"
            );
        }
        self.commits_printed += lines.commits();
        self.commits_in_flight += extra;
    }

    fn remember(&mut self, kill: usize, lines: &Lines) {
        for (id, key) in &lines.created {
            assert!(
                self.created.insert(*id, key.clone()).is_none(),
                "kill {kill}: session {id} created twice"
            );
        }
        for &(changed, key, session, amount, confirmations) in &lines.transfers {
            if !changed {
                self.same_printed += 1;
            }
            let r = self.reported.entry(key).or_insert(Reported {
                session,
                amount,
                confirmations,
            });
            assert_eq!(
                (r.session, r.amount),
                (session, amount),
                "kill {kill}: {key} printed on two sessions or with two amounts"
            );
            r.confirmations = r.confirmations.max(confirmations);
        }
        self.replays += lines.replays;
        self.max_lines = self
            .max_lines
            .max(lines.created.len() + lines.transfers.len());
    }

    /// Every session (all pages), every printed transfer and session, the file's integrity.
    /// `everything`: also compare every session's stored timeline (else only those with new
    /// events since they were last compared).
    fn full_check(&mut self, store: &SqliteStore, db: &Path, kill: usize, everything: bool) {
        self.full_checks += 1;
        let sessions = all_sessions(store, kill);
        let listed: HashSet<SessionId> = sessions.iter().map(CheckoutSession::id).collect();
        let known: HashSet<SessionId> = self.timelines.keys().copied().collect();
        assert_eq!(
            listed, known,
            "kill {kill}: the sessions listed are not the sessions the outbox has events of"
        );
        let mut by_id = HashMap::new();
        let mut stored = 0;
        let mut deep = 0;
        for s in &sessions {
            deep += usize::from(self.check_session(store, s, kill, everything));
            stored += s.transfers().count();
            by_id.insert(s.id(), s);
        }
        self.sessions_unchanged += sessions.len() - deep;
        assert_eq!(
            stored, self.stored_transfers,
            "kill {kill}: transfers stored vs transfer_received events in the outbox"
        );
        let mut verified = 0;
        for (key, r) in &self.reported {
            let s = by_id.get(&r.session).unwrap_or_else(|| {
                panic!("kill {kill}: session {} of {key} is not listed", r.session)
            });
            // The lookup by key was checked with the session (find_by_transfer of each of
            // its transfers) when it last changed.
            check_reported(everything.then_some(store), s, key, r, kill);
            verified += 1;
        }
        for (id, key) in &self.created {
            assert!(
                by_id.contains_key(id),
                "kill {kill}: created session {id} lost"
            );
            check_idempotency(store, *id, key.as_deref(), kill);
        }
        let events: usize = self.timelines.values().map(|t| t.events.len()).sum();
        assert_eq!(
            events,
            self.event_ids.len(),
            "kill {kill}: events per session"
        );
        integrity_check(db, kill);
        self.stored_at_last_full = stored;
        self.stored_sessions = sessions.len();
        self.transfers_verified = verified;
    }

    /// The sessions this round touched (by the outbox and by the worker's lines), the
    /// transfers and sessions the worker printed.
    fn partial_check(
        &mut self,
        store: &SqliteStore,
        kill: usize,
        lines: &Lines,
        new_events: &[StoredEvent],
    ) {
        let mut touched: Vec<SessionId> = new_events
            .iter()
            .filter_map(|e| e.event.session_id)
            .chain(lines.created.iter().map(|c| c.0))
            .chain(lines.transfers.iter().map(|t| t.2))
            .collect();
        touched.sort();
        touched.dedup();
        let mut loaded = HashMap::new();
        for id in touched {
            let s = store
                .load(id)
                .unwrap_or_else(|e| panic!("kill {kill}: load {id}: {e:?}"))
                .unwrap_or_else(|| panic!("kill {kill}: session {id} lost"));
            self.check_session(store, &s, kill, false);
            loaded.insert(id, s);
        }
        for (_, key, id, _, _) in &lines.transfers {
            check_reported(Some(store), &loaded[id], key, &self.reported[key], kill);
        }
        for (id, key) in &lines.created {
            check_idempotency(store, *id, key.as_deref(), kill);
        }
    }

    /// One session: JSON, totals, status, and its timeline against its state. The stored
    /// timeline is compared with the one read through the cursor when it has new events
    /// (or `compare` is set).
    /// One session: JSON, totals, status, its timeline against its state, the lookup of
    /// its transfers. The stored timeline is compared with the one read through the cursor
    /// when it has new events. A session equal to the copy verified before, with no new
    /// events, is not derived again (the same inputs give the same results) unless
    /// `everything` is set. Returns whether it was checked in depth.
    fn check_session(
        &mut self,
        store: &SqliteStore,
        s: &CheckoutSession,
        kill: usize,
        everything: bool,
    ) -> bool {
        let id = s.id();
        let ctx = format!("kill {kill}: session {id} (version {})", s.version());
        let tl = self
            .timelines
            .get_mut(&id)
            .unwrap_or_else(|| panic!("{ctx}: a session without events"));
        if !everything
            && self
                .verified
                .get(&id)
                .is_some_and(|(copy, events)| copy == s && *events == tl.events.len())
        {
            return false;
        }
        self.sessions_checked += 1;
        check_state(s, &ctx);
        if everything || tl.compared != tl.events.len() {
            let stored: Vec<(u64, EventId)> = store
                .session_events(id)
                .unwrap_or_else(|e| panic!("{ctx}: session_events: {e:?}"))
                .iter()
                .map(|e| (e.seq, e.event.id))
                .collect();
            assert_eq!(
                stored, tl.events,
                "{ctx}: stored timeline vs the outbox read through the cursor"
            );
            tl.compared = stored.len();
            self.timeline_events_compared += stored.len();
        }
        check_timeline(s, tl, &ctx);
        for t in s.transfers() {
            assert_eq!(
                store.find_by_transfer(&t.key).expect("find_by_transfer"),
                Some(id),
                "{ctx}: the lookup of {} does not find its session",
                t.key
            );
        }
        let events = tl.events.len();
        self.verified.insert(id, (s.clone(), events));
        true
    }
}

/// A session's own consistency: JSON round trips, totals, status.
fn check_state(s: &CheckoutSession, ctx: &str) {
    // JSON: the whole session, and the stored form (the rows of `store::rows`: head,
    // payments, transfers).
    let back = CheckoutSession::from_json(&s.to_json())
        .unwrap_or_else(|e| panic!("{ctx}: JSON does not read back: {e:?}"));
    assert_eq!(&back, s, "{ctx}: JSON round trip");
    let rows = bitcoin_checkout::store::rows::session_rows(s)
        .unwrap_or_else(|e| panic!("{ctx}: the session cannot be written as rows: {e:?}"));
    let parts = bitcoin_checkout::store::rows::decode_session(
        &rows.session.id,
        rows.session.version,
        &rows.session.head,
        rows.payments.iter().map(|p| p.body.as_str()),
        rows.transfers
            .iter()
            .map(|t| (t.key.as_str(), t.body.as_str())),
    )
    .unwrap_or_else(|e| panic!("{ctx}: head + payments + transfers do not read back: {e:?}"));
    assert_eq!(&parts, s, "{ctx}: head + payments + transfers round trip");

    // Totals: the sums of the transfers, credited at their quotes' rates.
    let policy = s.confirmation_policy();
    let scale = s.currency().scale();
    let (mut counted, mut pending) = (0u128, 0u128);
    let mut per_payment: HashMap<PaymentId, (u128, u128)> = HashMap::new();
    for t in s.transfers() {
        assert!(
            !t.reversed,
            "{ctx}: {} reversed (no reversals are made)",
            t.key
        );
        let p = s
            .payments()
            .iter()
            .find(|p| p.id() == t.payment_id)
            .unwrap_or_else(|| panic!("{ctx}: {} on an unknown payment", t.key));
        if let TransferKey::Lightning(h) = t.key {
            assert_eq!(
                p.request().lightning.as_ref().map(|l| l.payment_hash),
                Some(h),
                "{ctx}: {} attributed to another quote",
                t.key
            );
        }
        assert!(t.first_seen <= s.modified(), "{ctx}: {} seen later", t.key);
        if let Some(at) = t.counted_at {
            assert!(
                t.first_seen <= at && at <= s.modified(),
                "{ctx}: {} counted_at",
                t.key
            );
            assert!(t.meets(policy), "{ctx}: {} counted unconfirmed", t.key);
        }
        let credited = matches!(t.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry);
        if credited {
            let amount = u128::from(t.amount.get());
            let e = per_payment.entry(p.id()).or_default();
            e.1 += amount;
            if t.meets(policy) {
                counted += amount;
                e.0 += amount;
            } else {
                pending += amount;
            }
        }
    }
    let totals = s.totals();
    assert_eq!(u128::from(totals.counted.get()), counted, "{ctx}: counted");
    assert_eq!(u128::from(totals.pending.get()), pending, "{ctx}: pending");
    let minor = |d: Decimal| {
        let mut d = d.normalize();
        d.rescale(scale);
        d.mantissa()
    };
    let (mut paid_minor, mut received_minor) = (0i128, 0i128);
    for p in s.payments() {
        let (c, r) = per_payment.get(&p.id()).copied().unwrap_or_default();
        let due = u128::try_from(minor(p.due())).expect("due");
        let target = u128::from(p.target_msats().get());
        paid_minor += i128::try_from(due * c / target).expect("credit");
        received_minor += i128::try_from(due * r / target).expect("credit");
    }
    assert_eq!(
        totals.amount_paid,
        Decimal::from_i128_with_scale(paid_minor, scale),
        "{ctx}: amount_paid"
    );
    assert_eq!(
        totals.amount_received,
        Decimal::from_i128_with_scale(received_minor, scale),
        "{ctx}: amount_received"
    );

    // Status: paid iff the counted credit reaches the threshold.
    let amount_minor = minor(s.amount());
    let allowance = (Decimal::from_i128_with_scale(amount_minor, 0) * s.tolerance()
        / Decimal::ONE_HUNDRED)
        .floor()
        .mantissa();
    let reached = paid_minor >= amount_minor - allowance;
    match s.state() {
        SessionState::Active => assert!(!reached, "{ctx}: threshold reached, still active"),
        SessionState::Paid { paid_at } => {
            assert!(reached, "{ctx}: paid below the threshold");
            assert!(paid_at <= s.modified(), "{ctx}: paid_at after modified");
            assert!(
                s.payments()
                    .iter()
                    .all(|p| p.status() != PaymentStatus::Unpaid),
                "{ctx}: paid with a quote still open"
            );
        }
        other => panic!("{ctx}: unexpected state {other:?}"),
    }
    assert!(
        s.payments()
            .iter()
            .filter(|p| p.status() == PaymentStatus::Unpaid)
            .count()
            <= 1,
        "{ctx}: several open quotes"
    );
}

/// The session's timeline (as read through the cursor) against its state.
fn check_timeline(s: &CheckoutSession, tl: &Timeline, ctx: &str) {
    assert_eq!(
        tl.count(EventType::CheckoutSessionCreated),
        1,
        "{ctx}: checkout_session.created events"
    );
    assert_eq!(
        tl.count(EventType::TransferReceived),
        s.transfers().count(),
        "{ctx}: one transfer_received per transfer"
    );
    let paid = matches!(s.state(), SessionState::Paid { .. });
    assert_eq!(
        tl.count(EventType::CheckoutSessionPaid),
        usize::from(paid),
        "{ctx}: checkout_session.paid iff paid"
    );
    let counted = s.transfers().filter(|t| t.counted_at.is_some()).count();
    assert!(
        tl.count(EventType::TransferConfirmed) <= counted,
        "{ctx}: more transfer_confirmed than counted transfers"
    );
    for t in [
        EventType::TransferReversed,
        EventType::CheckoutSessionDeactivated,
        EventType::PaymentCancelled,
    ] {
        assert_eq!(tl.count(t.clone()), 0, "{ctx}: unexpected {t}");
    }
    // One payment.created per payment; payment.paid / payment.expired iff it is paid /
    // expired.
    assert_eq!(
        tl.payments.len(),
        s.payments().len(),
        "{ctx}: payments with events vs payments"
    );
    for p in s.payments() {
        let [created, paid, expired] = tl
            .payments
            .get(&p.id().to_string())
            .copied()
            .unwrap_or_default();
        assert_eq!(created, 1, "{ctx}: payment.created of {}", p.id());
        assert_eq!(
            paid,
            usize::from(p.status() == PaymentStatus::Paid),
            "{ctx}: payment.paid of {} ({:?})",
            p.id(),
            p.status()
        );
        assert_eq!(
            expired,
            usize::from(p.status() == PaymentStatus::Expired),
            "{ctx}: payment.expired of {} ({:?})",
            p.id(),
            p.status()
        );
    }
    // The last commit's version, time and snapshot are the stored session's.
    assert_eq!(
        tl.last_commit_version,
        Some(s.version()),
        "{ctx}: the last commit's version"
    );
    assert_eq!(
        tl.last_created,
        Some(s.modified()),
        "{ctx}: the last event is not at modified"
    );
    let (seq, last) = tl.last_snapshot.as_ref().expect("a session snapshot");
    let snapshot: serde_json::Value = serde_json::from_str(last).expect("snapshot");
    // Event payloads carry the session's event form (the newest payments only).
    let head: serde_json::Value = serde_json::from_str(&s.event_json()).expect("head");
    let diff = json_diff(&snapshot, &head, "");
    assert!(
        diff.is_empty(),
        "{ctx}: the last snapshot (event {seq}) is not the stored session: {diff:#?}"
    );
}

/// The paths where two JSON values differ, with both sides.
fn json_diff(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Vec<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let (l, r) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    json_diff(l, r, &format!("{path}.{k}"))
                })
                .collect()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .flat_map(|(i, (l, r))| json_diff(l, r, &format!("{path}[{i}]")))
            .collect(),
        (Value::Array(x), Value::Array(y)) => {
            let ids = |v: &Vec<Value>| -> Vec<String> {
                v.iter()
                    .map(|e| format!("{}:{}", e["id"], e["status"]))
                    .collect()
            };
            vec![format!("{path}: {:?} vs {:?}", ids(x), ids(y))]
        }
        _ if a == b => Vec::new(),
        _ => vec![format!("{path}: {a} vs {b}")],
    }
}

/// A printed transfer is on its session (and found by its key, when `store` is given).
fn check_reported(
    store: Option<&SqliteStore>,
    s: &CheckoutSession,
    key: &TransferKey,
    r: &Reported,
    kill: usize,
) {
    if let Some(store) = store {
        assert_eq!(
            store.find_by_transfer(key).expect("find_by_transfer"),
            Some(r.session),
            "kill {kill}: committed transfer {key} not found"
        );
    }
    let t = s
        .transfer(key)
        .unwrap_or_else(|| panic!("kill {kill}: committed {key} missing from {}", s.id()));
    assert_eq!(t.amount, r.amount, "kill {kill}: {key} amount");
    assert!(
        t.confirmations >= r.confirmations,
        "kill {kill}: {key} lost confirmations ({} < {})",
        t.confirmations,
        r.confirmations
    );
}

fn check_idempotency(store: &SqliteStore, id: SessionId, key: Option<&str>, kill: usize) {
    if let Some(key) = key {
        let rec = store
            .idempotency(key)
            .expect("idempotency")
            .unwrap_or_else(|| panic!("kill {kill}: idempotency record {key} lost"));
        assert_eq!(rec.session_id, id, "kill {kill}: idempotency record {key}");
    }
}

/// Every session, through all pages of the listing, newest first.
fn all_sessions(store: &SqliteStore, kill: usize) -> Vec<CheckoutSession> {
    let mut out: Vec<CheckoutSession> = Vec::new();
    loop {
        let page = store
            .list(&{
                let mut q = ListQuery::new().limit(100);
                q.starting_after = out.last().map(CheckoutSession::id);
                q
            })
            .unwrap_or_else(|e| panic!("kill {kill}: list: {e:?}"));
        let more = page.has_more;
        assert!(
            !page.data.is_empty() || !more,
            "kill {kill}: an empty page with more after it"
        );
        out.extend(page.data);
        if !more {
            break;
        }
    }
    for w in out.windows(2) {
        assert!(
            (w[0].created(), w[0].id()) > (w[1].created(), w[1].id()),
            "kill {kill}: listing order at {} / {}",
            w[0].id(),
            w[1].id()
        );
    }
    out
}

/// `PRAGMA integrity_check` through a connection of its own.
fn integrity_check(db: &Path, kill: usize) {
    let conn = rusqlite::Connection::open(db).expect("open for integrity_check");
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(result, "ok", "kill {kill}: integrity_check");
}

/// Removes the test's directory when the test passes; keeps it (and says where) when it
/// fails, for a look at the database.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("crash test failed: database kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn sqlite_survives_sigkill() {
    if std::env::var_os(WORKER_DB).is_some() {
        return;
    }
    let kills: usize = env_num(KILLS_ENV).unwrap_or(DEFAULT_KILLS).max(1);
    let seed: u64 = env_num(SEED_ENV).unwrap_or(DEFAULT_SEED);
    let sync_full = std::env::var(SYNC_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("full"));
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let dir = std::env::temp_dir().join(format!(
        "bitcoin-checkout-crash-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let _cleanup = RemoveOnDrop(dir.clone());
    let db = dir.join("crash.db");
    let exe = std::env::current_exe().expect("test binary");
    println!(
        "crash test: {kills} kills, seed {seed:#x}, synchronous={}, database {}",
        if sync_full { "FULL" } else { "NORMAL" },
        db.display()
    );

    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut v = Verifier::default();
    let mut worker_time = StdDuration::ZERO;
    let mut delays = 0u64;
    for kill in 0..kills {
        let worker_seed = rng.next();
        let delay = rng.range(DELAY_MS.0, DELAY_MS.1);
        delays += delay;
        let t = Instant::now();
        let raw = run_worker(
            &exe,
            &db,
            kill,
            worker_seed,
            v.next_start_ms(),
            sync_full,
            delay,
        );
        worker_time += t.elapsed();
        let lines = Lines::parse(&raw, kill);
        assert!(lines.started, "worker {kill} did not start");
        v.after_kill(&db, kill, &lines, kill + 1 == kills);
        if (kill + 1) % 50 == 0 {
            println!(
                "  {} kills, {} transfers stored, {} events, {:.1?}",
                kill + 1,
                v.stored_transfers,
                v.event_ids.len(),
                started.elapsed()
            );
        }
    }
    let elapsed = started.elapsed();
    println!(
        "crash test figures (synchronous={}):",
        if sync_full { "FULL" } else { "NORMAL" }
    );
    println!(
        "  kills (SIGKILL)              {} ({} left a non-empty WAL to recover)",
        v.kills, v.hot_wal
    );
    println!(
        "  mean kill delay              {} ms",
        delays / kills.max(1) as u64
    );
    println!(
        "  commits printed by workers   {} (+{} no-op reports, {} idempotent replays)",
        v.commits_printed, v.same_printed, v.replays
    );
    println!(
        "  commits in flight at a kill  {} (committed, never printed)",
        v.commits_in_flight
    );
    println!("  most lines from one worker   {}", v.max_lines);
    println!(
        "  transfers stored             {} ({} printed as committed, all verified)",
        v.stored_transfers, v.transfers_verified
    );
    println!("  sessions stored              {}", v.stored_sessions);
    println!(
        "  outbox events read (cursor)  {} (contiguous, ids unique)",
        v.event_ids.len()
    );
    println!(
        "  session checks               {} in depth, {} found unchanged ({} stored timeline \
         events compared), {} full checks",
        v.sessions_checked, v.sessions_unchanged, v.timeline_events_compared, v.full_checks
    );
    println!(
        "  time                         {elapsed:.1?} (workers {worker_time:.1?}, checks {:.1?} \
         of which full checks {:.1?})",
        v.check_time, v.full_check_time
    );
    assert_eq!(v.kills, kills);
    assert!(v.commits_printed > 0, "the workers committed nothing");
}
