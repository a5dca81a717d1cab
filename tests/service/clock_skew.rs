//! Clock skew between application servers never wedges a session (issue 13, point 4).
//!
//! Two `Checkout` services share one store, one with its clock five minutes ahead of the
//! true time and one five minutes behind, and take turns on one session: partial on-chain
//! payments, more confirmations of earlier ones, quotes expired and re-issued by `refresh`
//! and `sweep`. The server behind works at the session's last change (time never runs
//! backwards for a session), so its quotes often get the very millisecond of the quote
//! before them; it mints ids that sort low within a millisecond, so without an explicit
//! order its quote would sort before the one it replaces and the session would no longer
//! load (an unpaid payment that is not the newest is corrupt). After every step the session
//! must load from the store, its payments in (created, id) order, and it must end paid with
//! exact totals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bitcoin_checkout::clock::{IdSource, ManualClock, RandomIds};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
#[cfg(feature = "sqlite")]
use bitcoin_checkout::store::SqliteStore;
use bitcoin_checkout::store::{MemoryStore, Store};
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, Msats, OutPoint, Sats, SessionId, SessionParams,
    SessionStatus, TargetCurrency, TransferReport, Txid,
};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::common::uncapped;

const SKEW: Duration = Duration::minutes(5);
const TTL_SECS: i64 = 300;
const CYCLES: u32 = 12;
const PARTIAL_SATS: u64 = 2_000;

/// Version 7 UUIDs at `now` whose other bits are a counter from zero: within a millisecond
/// they sort below (almost) every random one, the worst case for a server that is behind.
#[derive(Default)]
struct LowIds(AtomicU64);

impl IdSource for LowIds {
    fn next_uuid(&self, now: OffsetDateTime) -> Uuid {
        let ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; 10];
        bytes[2..].copy_from_slice(&n.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
    }
}

type Server<S> = Checkout<S, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

/// The true time at the start: 2026-01-01T00:00:00Z.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

fn server<S: Store>(store: S, clock: Arc<ManualClock>, ids: impl IdSource + 'static) -> Server<S> {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(store, rates, TestRequestGenerator)
        .with_clock(clock)
        .with_ids(ids)
}

fn txid(n: u32) -> Txid {
    let mut b = [0x5eu8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    Txid::from_byte_array(b)
}

/// The session as the store has it: it must load, with its payments in (created, id)
/// order and at most the newest one unpaid.
fn load(store: &impl Store, id: SessionId, step: &str) -> CheckoutSession {
    let s = store
        .load(id)
        .unwrap_or_else(|e| panic!("{step}: the session no longer loads: {e}"))
        .unwrap_or_else(|| panic!("{step}: the session is gone"));
    for pair in s.payments().windows(2) {
        assert!(
            (pair[0].created(), pair[0].id()) < (pair[1].created(), pair[1].id()),
            "{step}: payments out of (created, id) order: {} at {} then {} at {}",
            pair[0].id(),
            pair[0].created(),
            pair[1].id(),
            pair[1].created()
        );
    }
    s
}

/// Runs the two skewed servers over `store` (each gets its own handle, as two application
/// servers have their own connections).
fn skewed_servers_share_a_session<S: Store>(open: impl Fn() -> S) {
    let ahead_clock = Arc::new(ManualClock::new(t0() + SKEW));
    let behind_clock = Arc::new(ManualClock::new(t0() - SKEW));
    let ahead = server(open(), Arc::clone(&ahead_clock), RandomIds::new());
    let behind = server(open(), Arc::clone(&behind_clock), LowIds::default());
    let store = open();
    let advance = |by: Duration| {
        ahead_clock.advance(by);
        behind_clock.advance(by);
    };

    // Re-quoted at every step for a long run: no quote cap.
    let params = uncapped(SessionParams::new(Decimal::from(100), usd()).ttl_secs(TTL_SECS));
    let created = ahead.create(params, None).unwrap();
    let id = created.id();
    let address = created.onchain_address().unwrap().to_owned();
    let mut reported = 0u64;
    let mut next_tx = 0u32;

    let pay = |checkout: &Server<S>, tx: u32, confirmations: u32, step: &str| {
        let report = TransferReport::onchain(
            OutPoint::new(txid(tx), 0),
            address.as_str(),
            Sats::new(PARTIAL_SATS),
        )
        .confirmations(confirmations);
        checkout
            .record_transfer(report)
            .unwrap_or_else(|e| panic!("{step}: record: {e}"));
    };
    let requote = |checkout: &Server<S>, by_sweep: bool, step: &str| {
        if by_sweep {
            let swept = checkout.sweep(100).unwrap();
            assert_eq!(swept.updated, [id], "{step}: sweep: {:?}", swept.failed);
            // The sweep only expires (quotes on demand): the next fetch quotes.
            let fetched = checkout.get(id).unwrap();
            assert!(
                fetched.open_payment().is_some(),
                "{step}: no quote on fetch"
            );
        } else {
            assert!(checkout.refresh(id).unwrap(), "{step}: nothing to refresh");
        }
    };

    for cycle in 0..CYCLES {
        let by_sweep = cycle % 2 == 1;
        for phase in 0..5 {
            let step = format!("cycle {cycle}, phase {phase}");
            match phase {
                // 0: the server ahead finds the quote run out and issues one at its time,
                // which becomes the session's last change. 2: much later, the server
                // behind sees its quote run out by its own clock.
                0 | 2 => {
                    let (checkout, wait) = if phase == 0 {
                        (&ahead, TTL_SECS + 1)
                    } else {
                        (&behind, 3 * TTL_SECS + 1)
                    };
                    advance(Duration::seconds(wait));
                    requote(checkout, by_sweep, &step);
                }
                // 1: funds reach the server behind; it works at that last change, so the
                // re-quote after the partial payment gets the millisecond of the quote it
                // replaces, and an id minted low in it. 3: funds reach the server ahead,
                // on the quote the server behind issued.
                1 | 3 => {
                    let checkout = if phase == 1 { &behind } else { &ahead };
                    advance(Duration::seconds(7));
                    next_tx += 1;
                    pay(checkout, next_tx, 1, &step);
                    reported += PARTIAL_SATS * 1_000;
                }
                // Both see the earlier payments confirm again, and sweep.
                _ => {
                    advance(Duration::seconds(1));
                    pay(&ahead, next_tx - 1, 2, &step);
                    pay(&behind, next_tx, 2, &step);
                    for c in [&ahead, &behind] {
                        let swept = c.sweep(100).unwrap();
                        assert!(swept.failed.is_empty(), "{step}: sweep: {:?}", swept.failed);
                    }
                }
            }
            // A customer fetches it through each server: a fetch quotes on demand when
            // the quote ran out by that server's clock.
            for c in [&ahead, &behind] {
                let _ = c.get(id).unwrap();
            }
            let s = load(&store, id, &step);
            assert_eq!(s.status(), SessionStatus::Active, "{step}");
            assert!(s.open_payment().is_some(), "{step}: no quote to pay");
            // Both servers then read the same session (from their caches or the store).
            for c in [&ahead, &behind] {
                assert_eq!(c.get(id).unwrap().version(), s.version(), "{step}");
            }
        }
    }

    let s = load(&store, id, "before the last payment");
    let same_millisecond_quotes = s
        .payments()
        .windows(2)
        .filter(|p| p[0].created() == p[1].created())
        .count();
    assert!(
        same_millisecond_quotes > 0,
        "the run never issued two quotes in one millisecond: it does not test the skew"
    );

    // The rest, by Lightning, on the quote open now, through the server behind.
    let open = s.open_payment().unwrap();
    let invoice = open.request().lightning.as_ref().unwrap();
    let rest = open.target_msats();
    let paid = behind
        .record_transfer(TransferReport::lightning(invoice.payment_hash, rest))
        .unwrap();
    reported += rest.get();
    assert_eq!(paid.status(), SessionStatus::Paid);

    let s = load(&store, id, "after the last payment");
    assert_eq!(s.status(), SessionStatus::Paid);
    let totals = s.totals();
    assert_eq!(totals.amount_paid, Decimal::from(100));
    assert_eq!(totals.counted.get(), reported);
    assert_eq!(totals.pending, Msats::ZERO);
    assert_eq!(s.transfers().count(), usize::try_from(next_tx).unwrap() + 1);
    for c in [&ahead, &behind] {
        assert_eq!(c.get(id).unwrap().status(), SessionStatus::Paid);
    }
}

#[test]
fn skewed_servers_never_wedge_a_session_on_the_memory_store() {
    let store = Arc::new(MemoryStore::new());
    skewed_servers_share_a_session(|| Arc::clone(&store));
}

#[cfg(feature = "sqlite")]
#[test]
fn skewed_servers_never_wedge_a_session_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("clock-skew-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.db", SessionId::generate()));
    // One connection per server, as two processes on one file.
    skewed_servers_share_a_session(|| SqliteStore::open(&path).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fails (never skips) without `BITCOIN_CHECKOUT_PG`, as every PostgreSQL test.
#[cfg(feature = "postgres")]
#[test]
fn skewed_servers_never_wedge_a_session_on_postgres() {
    use bitcoin_checkout::store::PostgresStore;
    let url = crate::common::pg_url();
    let schema = format!("skew_{}", SessionId::generate().as_uuid().simple());
    let stores = std::sync::Mutex::new(Vec::new());
    skewed_servers_share_a_session(|| {
        let store = Arc::new(PostgresStore::connect_in_schema(&url, &schema, 2).unwrap());
        stores.lock().unwrap().push(Arc::clone(&store));
        store
    });
    for store in stores.into_inner().unwrap() {
        store.close();
    }
}

/// One step of the property test: which server acts, and how.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Time passes (seconds).
    Wait(u16),
    /// A server fetches the session (a quote on demand if it needs one).
    Fetch { ahead: bool },
    /// A server sweeps (expires what ran out by its clock).
    Sweep { ahead: bool },
    /// A server records a new on-chain output of `sats`.
    Pay { ahead: bool, sats: u16 },
    /// A server reports the newest output again with a confirmation.
    Confirm { ahead: bool },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        2 => (1u16..=400).prop_map(Step::Wait),
        3 => any::<bool>().prop_map(|ahead| Step::Fetch { ahead }),
        2 => any::<bool>().prop_map(|ahead| Step::Sweep { ahead }),
        3 => (any::<bool>(), 1u16..=3_000).prop_map(|(ahead, sats)| Step::Pay { ahead, sats }),
        2 => any::<bool>().prop_map(|ahead| Step::Confirm { ahead }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(64))]

    /// Any two skews within ±5 minutes, any interleaving of fetches, sweeps, payments and
    /// confirmations by the two servers: the session always loads with its payments in
    /// order, what counts is exactly what was reported and confirmed, and it is paid once
    /// that reaches the price.
    #[test]
    fn any_skew_and_interleaving_keeps_the_session_loadable_and_exact(
        skew_ahead in 0i64..=300_000,
        skew_behind in 0i64..=300_000,
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let store = Arc::new(MemoryStore::new());
        let ahead_clock = Arc::new(ManualClock::new(t0() + Duration::milliseconds(skew_ahead)));
        let behind_clock = Arc::new(ManualClock::new(t0() - Duration::milliseconds(skew_behind)));
        let ahead = server(Arc::clone(&store), Arc::clone(&ahead_clock), RandomIds::new());
        let behind = server(Arc::clone(&store), Arc::clone(&behind_clock), LowIds::default());
        // Re-quoted at every step for a long run: no quote cap.
    let params = uncapped(SessionParams::new(Decimal::from(100), usd()).ttl_secs(TTL_SECS));
        let id = ahead.create(params, None).unwrap().id();
        let address = store.load(id).unwrap().unwrap().onchain_address().unwrap().to_owned();
        let mut outputs: Vec<u64> = Vec::new();
        for (n, s) in steps.iter().enumerate() {
            let label = format!("step {n}: {s:?}");
            let pick = |a: bool| if a { &ahead } else { &behind };
            let report = |tx: usize, sats: u64, confirmations: u32| {
                TransferReport::onchain(
                    OutPoint::new(txid(u32::try_from(tx).unwrap()), 0),
                    address.as_str(),
                    Sats::new(sats),
                )
                .confirmations(confirmations)
            };
            match *s {
                Step::Wait(secs) => {
                    ahead_clock.advance(Duration::seconds(i64::from(secs)));
                    behind_clock.advance(Duration::seconds(i64::from(secs)));
                }
                Step::Fetch { ahead } => { pick(ahead).get(id).unwrap(); }
                Step::Sweep { ahead } => {
                    let swept = pick(ahead).sweep(10).unwrap();
                    proptest::prop_assert!(swept.failed.is_empty(), "{label}: {:?}", swept.failed);
                }
                Step::Pay { ahead, sats } => {
                    pick(ahead).record_transfer(report(outputs.len(), u64::from(sats), 0)).unwrap();
                    outputs.push(u64::from(sats));
                }
                Step::Confirm { ahead } => {
                    if let Some(&sats) = outputs.last() {
                        let tx = outputs.len() - 1;
                        pick(ahead).record_transfer(report(tx, sats, 1)).unwrap();
                    }
                }
            }
            let s = load(&*store, id, &label);
            // Every output reported is counted or pending, once, whichever server saw it.
            let received: u64 = outputs.iter().sum::<u64>() * 1_000;
            let t = s.totals();
            proptest::prop_assert_eq!(t.counted.get() + t.pending.get(), received, "{}", label);
            if s.status() == SessionStatus::Paid {
                proptest::prop_assert!(t.counted.get() >= 100_000_000, "{}", label);
            }
        }
    }
}
