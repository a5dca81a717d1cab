//! Concurrency stress: 16 workers report thousands of transfers, a fifth of them twice, in
//! shuffled order, to 100 sessions at once; afterwards every distinct transfer must be
//! recorded exactly once and the outbox must tell the same story as the sessions.
//!
//! Sizes (the SQLite run is shrunk by default to stay within ~30 s in a debug build; set
//! `STRESS_FULL=1` to run it at the full size too):
//!
//! | what | memory (always) | SQLite and PostgreSQL, default | both with `STRESS_FULL=1` |
//! |---|---|---|---|
//! | worker threads | 16 | 16 | 16 |
//! | sessions | 100 | 100 | 100 |
//! | transfer reports | 10,000 | 2,500 | 10,000 |
//! | … exact duplicates among them | 2,000 (20 %) | 500 (20 %) | 2,000 (20 %) |
//! | on-chain outputs | 7,000 | 1,750 | 7,000 |
//! | Lightning items | 1,000 | 250 | 1,000 |
//!
//! The transfers are designed so the test knows what to expect:
//!
//! * **on-chain**: output `k` of session `i` pays a fixed small amount (1,000 to 1,400 sats)
//!   to the session's address (`TestRequestGenerator::address`) with one confirmation;
//! * **Lightning**: a payment of 2,000 sats to the quote open when the report is made (or
//!   the latest quote once none is open), read from the store at report time
//!   (`TestRequestGenerator::payment_hash(quote id)`). Two Lightning items that read the
//!   same quote report the same transfer (a "collision", one more duplicate); a planned
//!   duplicate of a Lightning item repeats the report its original resolved to.
//!
//! Sessions come in three groups: 10,000 USD with the one-confirmation policy (never
//! paid: everything counts), 10 USD with one confirmation (paid early; later money is
//! overpayment) and 10,000 USD with two confirmations (on-chain money stays pending).
//!
//! Run over the in-memory store (one shared `Checkout`) and over SQLite (one `Checkout` and
//! one `SqliteStore` per worker, all on one database file). Each run prints its figures.

use crate::common;

use common::TempDir;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration as StdDuration, Instant};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{MemoryStore, Store, StoredEvent};
use bitcoin_checkout::testkit::ObservedStore;
use bitcoin_checkout::{
    Arrival, Checkout, ConfirmationPolicy, Currency, EventType, Msats, Sats, SessionId,
    SessionParams, SessionStatus, TargetCurrency, TransferKey, TransferReport,
};
use bitcoin_checkout::{OutPoint, Txid};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

const WORKERS: usize = 16;
/// Percentage of the reports that repeat an earlier one exactly.
const DUPLICATE_PERCENT: usize = 20;
/// One planned item in this many is a Lightning payment; the others are on-chain outputs.
const LIGHTNING_EVERY: usize = 8;
/// Sats of every Lightning payment.
const LIGHTNING_SATS: u64 = 2_000;
/// How often a worker retries a report the service gave up on with a retryable error.
const CALLER_RETRIES: usize = 1_000;

/// How big a run is.
#[derive(Debug, Clone, Copy)]
struct Size {
    sessions: usize,
    reports: usize,
}

/// The full size: 100 sessions, 10,000 reports.
const FULL: Size = Size {
    sessions: 100,
    reports: 10_000,
};

/// The SQLite run by default: 2,500 reports. The full size took 170 to 200 s in a debug
/// build on a loaded 2-core machine (each commit rewrites a session head that grows with
/// its quotes, and the 16 connections conflict often); 2,500 reports took 22 s there.
const SQLITE_DEFAULT: Size = Size {
    sessions: 100,
    reports: 2_500,
};

/// `STRESS_FULL=1` runs every store at the full size; by default only the in-memory run
/// is full size (about 10 s in a debug build).
fn size(default: Size) -> Size {
    if std::env::var_os("STRESS_FULL").is_some_and(|v| v != "0") {
        FULL
    } else {
        default
    }
}

/// xorshift64: a tiny deterministic PRNG (no new dependencies).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform enough in `0..n` for shuffling test data.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The three kinds of session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// 10,000 USD, one confirmation: never paid, so every transfer counts.
    OpenOneConf,
    /// 10 USD, one confirmation: paid early on.
    Paid,
    /// 10,000 USD, two confirmations: one-confirmation outputs stay pending.
    OpenTwoConf,
}

fn group(index: usize) -> Group {
    match index % 5 {
        0 | 1 => Group::OpenOneConf,
        2 | 3 => Group::Paid,
        _ => Group::OpenTwoConf,
    }
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time")
}

fn params(g: Group) -> SessionParams {
    let (amount, policy) = match g {
        Group::OpenOneConf => (10_000, ConfirmationPolicy::One),
        Group::Paid => (10, ConfirmationPolicy::One),
        Group::OpenTwoConf => (10_000, ConfirmationPolicy::Two),
    };
    // Thousands of reports per session, all counted: no cap holds any apart.
    SessionParams::new(Decimal::from(amount), usd())
        .confirmations(policy)
        .limits(
            bitcoin_checkout::session::SessionLimits::new()
                .max_quotes(u32::MAX)
                .max_transfers(u32::MAX),
        )
}

type Service<S> =
    Checkout<ObservedStore<'static, S>, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

fn service<S: Store>(store: S, clock: &Arc<ManualClock>) -> Service<S> {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(ObservedStore::new(store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(clock))
}

/// The txid of on-chain output `k` to session `id`: distinct per session and output.
fn txid(id: SessionId, k: u32) -> Txid {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(id.as_uuid().as_bytes());
    b[28..].copy_from_slice(&k.to_be_bytes());
    Txid::from_byte_array(b)
}

/// One report to make (several times if it was picked as a duplicate).
#[derive(Clone)]
enum Item {
    /// A fixed on-chain output.
    Onchain(TransferReport),
    /// A Lightning payment to whichever quote of session `session` is current when the
    /// first copy of this item runs; every copy reports the same transfer.
    Lightning { session: usize, slot: usize },
}

struct Plan {
    sessions: Vec<SessionId>,
    /// Every report, duplicates included, shuffled.
    items: Vec<Item>,
    /// The distinct on-chain outputs: key → (session index, amount).
    onchain: BTreeMap<TransferKey, (usize, Msats)>,
    lightning_slots: usize,
    duplicates: usize,
}

impl Plan {
    fn new(sessions: Vec<SessionId>, reports: usize) -> Self {
        let duplicates = reports * DUPLICATE_PERCENT / 100;
        let distinct = reports - duplicates;
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut items = Vec::with_capacity(reports);
        let mut onchain = BTreeMap::new();
        let mut lightning_slots = 0;
        let mut outputs = 0_usize;
        for n in 0..distinct {
            if n % LIGHTNING_EVERY == LIGHTNING_EVERY - 1 {
                let slot = lightning_slots;
                lightning_slots += 1;
                items.push(Item::Lightning {
                    session: slot % sessions.len(),
                    slot,
                });
            } else {
                let session = outputs % sessions.len();
                let k = u32::try_from(outputs / sessions.len()).expect("few outputs");
                outputs += 1;
                let id = sessions[session];
                let report = TransferReport::onchain(
                    OutPoint::new(txid(id, k), k % 4),
                    TestRequestGenerator::address(id),
                    Sats::new(1_000 + 100 * u64::from(k % 5)),
                )
                .confirmations(1);
                onchain.insert(report.key(), (session, report.amount()));
                items.push(Item::Onchain(report));
            }
        }
        for _ in 0..duplicates {
            let again = items[rng.below(distinct)].clone();
            items.push(again);
        }
        for i in (1..items.len()).rev() {
            items.swap(i, rng.below(i + 1));
        }
        Self {
            sessions,
            items,
            onchain,
            lightning_slots,
            duplicates,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the workers did.
struct Outcome {
    /// The distinct Lightning transfers reported: key → (session index, amount).
    lightning: BTreeMap<TransferKey, (usize, Msats)>,
    sent: usize,
    conflicts: u64,
    caller_retries: u64,
    unexpected: Vec<String>,
    elapsed: StdDuration,
}

/// Records a report like a webhook handler would: retried while the error is retryable.
/// Any other error is unexpected (every report in the plan is valid).
fn report<S: Store>(
    c: &Service<S>,
    r: &TransferReport,
    retries: &AtomicU64,
    unexpected: &Mutex<Vec<String>>,
) {
    for _ in 0..CALLER_RETRIES {
        match c.record_transfer(r.clone()) {
            Ok(_) => return,
            Err(ServiceError::Store(e)) if e.is_retryable() => {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                lock(unexpected).push(format!("{:?}: {e:?}", r.key()));
                return;
            }
        }
    }
    lock(unexpected).push(format!(
        "{:?}: still failing after {CALLER_RETRIES} tries",
        r.key()
    ));
}

/// The report a Lightning item stands for, resolved on first use.
fn resolve<S: Store>(
    c: &Service<S>,
    plan: &Plan,
    session: usize,
    slot: usize,
    resolved: &Mutex<HashMap<usize, (usize, TransferReport)>>,
) -> Result<TransferReport, ServiceError> {
    let mut map = lock(resolved);
    if let Some((_, r)) = map.get(&slot) {
        return Ok(r.clone());
    }
    let s = c.get(plan.sessions[session])?;
    let quote = s
        .open_payment()
        .or_else(|| s.current_payment())
        .expect("every session has a quote");
    let r = TransferReport::lightning(
        TestRequestGenerator::payment_hash(quote.id()),
        Sats::new(LIGHTNING_SATS).to_msats(),
    );
    map.insert(slot, (session, r.clone()));
    Ok(r)
}

/// Runs the workers; worker `w` uses `services[w % services.len()]` and takes the next item
/// of the shared shuffled list until none is left.
fn hammer<S: Store>(plan: &Plan, services: &[&Service<S>]) -> Outcome {
    let next = AtomicUsize::new(0);
    let retries = AtomicU64::new(0);
    let unexpected = Mutex::new(Vec::new());
    let resolved = Mutex::new(HashMap::new());
    let conflicts_before: u64 = services.iter().map(|c| c.store().conflicts()).sum();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let c = services[w % services.len()];
            let (next, retries, unexpected, resolved) = (&next, &retries, &unexpected, &resolved);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = plan.items.get(i) else { break };
                    let r = match item {
                        Item::Onchain(r) => r.clone(),
                        Item::Lightning { session, slot } => {
                            match resolve(c, plan, *session, *slot, resolved) {
                                Ok(r) => r,
                                Err(e) => {
                                    lock(unexpected).push(format!("reading a quote: {e:?}"));
                                    continue;
                                }
                            }
                        }
                    };
                    report(c, &r, retries, unexpected);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let conflicts = services.iter().map(|c| c.store().conflicts()).sum::<u64>() - conflicts_before;
    let lightning = lock(&resolved)
        .values()
        .map(|(session, r)| (r.key(), (*session, r.amount())))
        .collect();
    Outcome {
        lightning,
        sent: plan.items.len(),
        conflicts,
        caller_retries: retries.load(Ordering::Relaxed),
        unexpected: lock(&unexpected).clone(),
        elapsed,
    }
}

/// Every event in the outbox.
fn outbox<S: Store>(store: &S) -> Vec<StoredEvent> {
    let mut all: Vec<StoredEvent> = Vec::new();
    loop {
        let page = store
            .events_after(all.last().map(|e| e.seq), 1_000)
            .expect("events_after");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Checks every invariant; returns how many transfers were checked.
fn verify<S: Store>(store: &S, plan: &Plan, outcome: &Outcome) -> usize {
    assert!(
        outcome.unexpected.is_empty(),
        "{} reports failed unexpectedly, e.g. {:?}",
        outcome.unexpected.len(),
        &outcome.unexpected[..outcome.unexpected.len().min(10)]
    );
    let events = outbox(store);
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "outbox sequence numbers strictly increase"
    );
    let ids: BTreeSet<_> = events.iter().map(|e| e.event.id).collect();
    assert_eq!(ids.len(), events.len(), "every event is in the outbox once");
    let mut by_session: HashMap<SessionId, Vec<StoredEvent>> = HashMap::new();
    for e in &events {
        if let Some(id) = e.event.session_id {
            by_session.entry(id).or_default().push(e.clone());
        }
    }
    let mut checked = 0;
    for (index, &id) in plan.sessions.iter().enumerate() {
        let s = store.load(id).expect("load").expect("session");
        let mine = |map: &BTreeMap<TransferKey, (usize, Msats)>| -> BTreeMap<TransferKey, Msats> {
            map.iter()
                .filter(|(_, (i, _))| *i == index)
                .map(|(k, (_, amount))| (*k, *amount))
                .collect()
        };
        let onchain = mine(&plan.onchain);
        let lightning = mine(&outcome.lightning);
        let mut want = onchain.clone();
        want.extend(lightning.iter().map(|(k, v)| (*k, *v)));
        let got: BTreeMap<TransferKey, Msats> = s.transfers().map(|t| (t.key, t.amount)).collect();
        assert_eq!(
            got.len(),
            want.len(),
            "session {index}: number of distinct transfers"
        );
        assert_eq!(
            got, want,
            "session {index}: each distinct transfer recorded once with its amount"
        );
        for t in s.transfers() {
            assert_eq!(
                store.find_by_transfer(&t.key),
                Ok(Some(id)),
                "{:?} is filed under its session",
                t.key
            );
            assert!(!t.reversed);
        }
        checked += got.len();

        let sum = |m: &BTreeMap<TransferKey, Msats>| m.values().map(|a| a.get()).sum::<u64>();
        let received: u64 = s.transfers().map(|t| t.amount.get()).sum();
        assert_eq!(
            received,
            sum(&want),
            "session {index}: sum of transfers = sum of distinct reports"
        );
        let after_paid: u64 = s
            .transfers()
            .filter(|t| t.arrival == Arrival::AfterPaid)
            .map(|t| t.amount.get())
            .sum();
        let totals = s.totals();
        let g = group(index);
        match g {
            Group::OpenOneConf => {
                assert_eq!(s.status(), SessionStatus::Active, "session {index}");
                assert_eq!(
                    totals.counted.get(),
                    sum(&want),
                    "session {index}: everything counts at one confirmation"
                );
                assert_eq!(
                    totals.pending,
                    Msats::ZERO,
                    "session {index}: nothing pending"
                );
            }
            Group::Paid => {
                assert_eq!(s.status(), SessionStatus::Paid, "session {index}");
                assert_eq!(
                    totals.counted.get() + after_paid,
                    sum(&want),
                    "session {index}: counted before paid + overpaid after = everything"
                );
                assert_eq!(
                    totals.pending,
                    Msats::ZERO,
                    "session {index}: nothing pending"
                );
                assert!(
                    totals.amount_paid >= s.amount(),
                    "session {index}: paid in full"
                );
            }
            Group::OpenTwoConf => {
                assert_eq!(s.status(), SessionStatus::Active, "session {index}");
                assert_eq!(
                    totals.counted.get(),
                    sum(&lightning),
                    "session {index}: only Lightning counts"
                );
                assert_eq!(
                    totals.pending.get(),
                    sum(&onchain),
                    "session {index}: on-chain waits for 2 confirmations"
                );
            }
        }

        let mine = by_session.remove(&id).unwrap_or_default();
        let count = |t: EventType| mine.iter().filter(|e| e.event.event_type == t).count();
        let paid_events = count(EventType::CheckoutSessionPaid);
        assert_eq!(
            paid_events,
            usize::from(g == Group::Paid),
            "session {index} ({g:?}): checkout_session.paid events"
        );
        assert_eq!(
            count(EventType::TransferReceived),
            want.len(),
            "session {index}: one transfer_received per distinct transfer"
        );
        assert_eq!(
            store.session_events(id).expect("timeline"),
            mine,
            "session {index}: the timeline is the outbox filtered by session"
        );
    }
    assert!(by_session.is_empty(), "no events of unknown sessions");
    checked
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

/// Creates the sessions through `c`, then moves the clock a minute on (the 10-minute
/// quotes stay open for the whole run).
fn create_sessions<S: Store>(c: &Service<S>, clock: &ManualClock, n: usize) -> Vec<SessionId> {
    let ids = (0..n)
        .map(|i| c.create(params(group(i)), None).expect("create").id())
        .collect();
    clock.advance(Duration::minutes(1));
    ids
}

fn print(store: &str, plan: &Plan, outcome: &Outcome, checked: usize, verify: StdDuration) {
    let distinct = plan.onchain.len() + outcome.lightning.len();
    println!(
        "stress [{store}]: {WORKERS} workers, {} sessions: {} transfer reports sent, {distinct} distinct \
         transfers checked ({} on-chain + {} Lightning), {} duplicates ({} planned + {} Lightning \
         reports that found the same quote), {} conflicting commits retried by the service, {} \
         reports retried by the caller; reporting took {:.2?}, verifying {:.2?} ({checked} transfers)",
        plan.sessions.len(),
        outcome.sent,
        plan.onchain.len(),
        outcome.lightning.len(),
        outcome.sent - distinct,
        plan.duplicates,
        plan.lightning_slots - outcome.lightning.len(),
        outcome.conflicts,
        outcome.caller_retries,
        outcome.elapsed,
        verify,
    );
}

#[test]
fn memory_store_one_shared_checkout() {
    let size = size(FULL);
    let clock = clock();
    let c = service(MemoryStore::new(), &clock);
    let plan = Plan::new(create_sessions(&c, &clock, size.sessions), size.reports);
    let outcome = hammer(&plan, &[&c]);
    let started = Instant::now();
    let checked = verify(c.store(), &plan, &outcome);
    print("memory", &plan, &outcome, checked, started.elapsed());
}

#[cfg(feature = "sqlite")]
mod sqlite {

    use bitcoin_checkout::store::SqliteStore;

    use super::*;

    #[test]
    fn sqlite_file_one_checkout_per_worker() {
        let size = size(SQLITE_DEFAULT);
        let dir = TempDir::new("stress");
        let path = dir.file("stress.db");
        let clock = clock();
        let services: Vec<Service<SqliteStore>> = (0..WORKERS)
            .map(|_| service(SqliteStore::open(&path).expect("open"), &clock))
            .collect();
        let plan = Plan::new(
            create_sessions(&services[0], &clock, size.sessions),
            size.reports,
        );
        let refs: Vec<&Service<SqliteStore>> = services.iter().collect();
        let outcome = hammer(&plan, &refs);
        let started = Instant::now();
        // Read back through a connection that took no part.
        let fresh = SqliteStore::open(&path).expect("reopen");
        let checked = verify(&fresh, &plan, &outcome);
        print("sqlite", &plan, &outcome, checked, started.elapsed());
    }
}

/// The same load on PostgreSQL: one `Checkout` and one `PostgresStore` per worker (as if each
/// were its own application server), all on one database schema.
#[cfg(feature = "postgres")]
mod postgres {
    use bitcoin_checkout::store::PostgresStore;

    use super::*;

    fn pg_url() -> String {
        match std::env::var("BITCOIN_CHECKOUT_PG") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => panic!(
                "BITCOIN_CHECKOUT_PG is not set: run `scripts/test`, or \
                 BITCOIN_CHECKOUT_PG=\"$(scripts/postgres url)\" cargo test (after scripts/postgres start)"
            ),
        }
    }

    #[test]
    fn postgres_one_checkout_per_worker() {
        let size = size(SQLITE_DEFAULT);
        let schema = format!(
            "stress_{}_{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
        );
        let url = pg_url();
        let clock = clock();
        let services: Vec<Service<PostgresStore>> = (0..WORKERS)
            .map(|_| {
                let store = PostgresStore::connect_in_schema(&url, &schema, 2).expect("connect");
                service(store, &clock)
            })
            .collect();
        let plan = Plan::new(
            create_sessions(&services[0], &clock, size.sessions),
            size.reports,
        );
        let refs: Vec<&Service<PostgresStore>> = services.iter().collect();
        let outcome = hammer(&plan, &refs);
        let started = Instant::now();
        // Read back through a connection that took no part.
        let fresh = PostgresStore::connect_in_schema(&url, &schema, 2).expect("reconnect");
        let checked = verify(&fresh, &plan, &outcome);
        print("postgres", &plan, &outcome, checked, started.elapsed());
    }
}
