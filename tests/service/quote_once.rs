//! Side effects happen once: a quote's rate is fetched and its payment request generated
//! once, however many times the commit that issues it meets a conflict; racing creates with
//! one idempotency key reserve exactly one derivation index (on SQLite and PostgreSQL).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::money::ExchangeRate;
use bitcoin_checkout::rates::{FixedRates, RateError, RateSource};
use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses, Network};
use bitcoin_checkout::request::{
    AddressIndex, PaymentRequest, PaymentRequestGenerator, RequestError, RequestGenerator,
    TestRequestGenerator,
};
use bitcoin_checkout::session::QuoteTerms;
use bitcoin_checkout::store::{Commit, MemoryStore, SqliteStore, Store, StoreError};
use bitcoin_checkout::testkit::ObservedStore;
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, Msats, SessionId, SessionParams, TargetCurrency,
    TransferReport,
};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

/// Counts the payment requests it makes (delegating to `inner`).
struct CountingGenerator<G> {
    inner: G,
    calls: AtomicUsize,
}

impl<G: PaymentRequestGenerator> PaymentRequestGenerator for CountingGenerator<G> {
    fn generate(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<PaymentRequest, RequestError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(session, terms)
    }
}

/// Counts the rates it gives.
struct CountingRates {
    inner: FixedRates,
    calls: AtomicUsize,
}

impl RateSource for CountingRates {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.rate(base, target, now)
    }
}

/// Refuses the first `conflicts` commits of every change with `Conflict` (writing
/// nothing), as if another server had won each race; counts the refusals.
fn conflicting_store(conflicts: u32, refused: &AtomicU32) -> ObservedStore<'_, MemoryStore> {
    let seen = std::sync::Mutex::new(std::collections::HashMap::new());
    ObservedStore::new(MemoryStore::new()).intercept_commit(move |inner, commit: &Commit| {
        let key: (SessionId, Option<u64>) = (commit.session.id(), commit.expected_version);
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        let n: &mut u32 = seen.entry(key).or_insert(0);
        if *n < conflicts {
            *n += 1;
            refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Conflict);
        }
        drop(seen);
        inner.commit(commit)
    })
}

#[test]
fn one_rate_and_one_request_per_quote_under_forced_conflicts() {
    let refused = AtomicU32::new(0);
    let store = conflicting_store(5, &refused);
    let rates = CountingRates {
        inner: FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000)),
        calls: AtomicUsize::new(0),
    };
    let generator = CountingGenerator {
        inner: TestRequestGenerator,
        calls: AtomicUsize::new(0),
    };
    let clock = ManualClock::new(t0());
    let checkout = Checkout::new(&store, &rates, &generator).with_clock(&clock);

    // Creating: five refused inserts, one rate and one request.
    let s = checkout
        .create(SessionParams::new(Decimal::new(2500, 2), usd()), None)
        .expect("created through the conflicts");
    assert_eq!(refused.load(Ordering::SeqCst), 5);
    assert_eq!(
        generator.calls.load(Ordering::SeqCst),
        1,
        "requests for the first quote"
    );
    assert_eq!(
        rates.calls.load(Ordering::SeqCst),
        1,
        "rates for the first quote"
    );
    let first = s.open_payment().expect("a quote").clone();
    assert_eq!(first.target().get(), 25_000);

    // A partial payment: the re-quote for the rest meets five conflicts, and is made once.
    clock.advance(Duration::seconds(10));
    let hash = first
        .request()
        .lightning
        .as_ref()
        .expect("invoice")
        .payment_hash;
    let paid = checkout
        .record_transfer(TransferReport::lightning(hash, first.target_msats()))
        .expect("recorded");
    // The whole amount: no new quote.
    assert_eq!(generator.calls.load(Ordering::SeqCst), 1);
    assert!(paid.open_payment().is_none());

    let s = checkout
        .create(SessionParams::new(Decimal::new(1000, 2), usd()), None)
        .expect("second session");
    assert_eq!(generator.calls.load(Ordering::SeqCst), 2);
    let quote = s.open_payment().expect("a quote").clone();
    let hash = quote
        .request()
        .lightning
        .as_ref()
        .expect("invoice")
        .payment_hash;
    clock.advance(Duration::seconds(10));
    let partial = checkout
        .record_transfer(TransferReport::lightning(
            hash,
            Msats::new(quote.target_msats().get() / 2),
        ))
        .expect("partial payment recorded");
    let rest = partial.open_payment().expect("a quote for the rest");
    assert_eq!(rest.target().get(), 5_000);
    assert_eq!(
        generator.calls.load(Ordering::SeqCst),
        3,
        "one request for the re-quote despite five conflicts"
    );
    assert_eq!(rates.calls.load(Ordering::SeqCst), 3);
    // Five refusals for each of the four changes.
    assert_eq!(refused.load(Ordering::SeqCst), 20);
    // What was committed is what the one request made.
    let stored = store.load(s.id()).expect("load").expect("stored");
    assert_eq!(stored, partial);
}

/// Rates that fail until switched on.
struct FlakyRates {
    up: std::sync::atomic::AtomicBool,
}

impl RateSource for FlakyRates {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(RateError::Unavailable {
                base: base.code(),
                target: target.code(),
            });
        }
        FixedRates::new()
            .with(usd(), TargetCurrency::Sats, Decimal::from(1_000))
            .rate(base, target, now)
    }
}

#[test]
fn a_create_that_failed_before_committing_frees_its_idempotency_key() {
    let store = MemoryStore::new();
    let rates = FlakyRates {
        up: std::sync::atomic::AtomicBool::new(false),
    };
    let checkout = Checkout::new(&store, &rates, TestRequestGenerator);
    let params = SessionParams::new(Decimal::new(2500, 2), usd());
    let err = checkout
        .create(params.clone(), Some("order-7"))
        .expect_err("no rate");
    assert!(
        matches!(err, bitcoin_checkout::service::ServiceError::Rate(_)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        store.idempotency("order-7").expect("read"),
        None,
        "the key is free again"
    );
    // The retry goes through at once (no wait for a session that never came).
    rates.up.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let s = checkout
        .create(params.clone(), Some("order-7"))
        .expect("created");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let again = checkout.create(params, Some("order-7")).expect("replayed");
    assert_eq!(again.id(), s.id());
    // A refused request never claims the key.
    let bad = checkout.create(
        SessionParams::new(Decimal::new(1, 3), usd()),
        Some("order-8"),
    );
    assert!(bad.is_err());
    assert_eq!(store.idempotency("order-8").expect("read"), None);
}

const TPUB: &str = "tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M";

/// Eight threads create with one idempotency key at once through services sharing `store`
/// (which also reserves the derivation indexes): all get the one session, one request is
/// made, and exactly one index is reserved.
fn racing_creates_reserve_one_index<S: Store + AddressIndex + Clone + 'static>(store: S) {
    let deriver = AddressDeriver::new(TPUB, Network::Regtest).expect("descriptor");
    let descriptor = deriver.descriptor();
    let generator = Arc::new(CountingGenerator {
        inner: RequestGenerator::new().onchain(DerivedAddresses::new(deriver, store.clone())),
        calls: AtomicUsize::new(0),
    });
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    let key = format!("order-{}", SessionId::generate());
    let params = SessionParams::new(Decimal::new(2500, 2), usd())
        .payment_methods([bitcoin_checkout::PaymentMethod::Onchain]);
    const THREADS: usize = 8;
    let barrier = Barrier::new(THREADS);
    let sessions: Vec<CheckoutSession> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                // One service per thread, as on separate application servers.
                let checkout = Checkout::new(store.clone(), rates.clone(), Arc::clone(&generator));
                let (barrier, key, params) = (&barrier, key.as_str(), params.clone());
                scope.spawn(move || {
                    barrier.wait();
                    checkout.create(params, Some(key))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("create"))
            .collect()
    });
    let id = sessions[0].id();
    assert!(
        sessions.iter().all(|s| s.id() == id),
        "one session for one key"
    );
    assert!(
        sessions
            .iter()
            .all(|s| s.onchain_address() == sessions[0].onchain_address())
    );
    assert_eq!(
        generator.calls.load(Ordering::SeqCst),
        1,
        "one payment request"
    );
    // The next reservation gets index 1: only index 0 was taken.
    assert_eq!(
        store.reserve(&descriptor).expect("reserve"),
        1,
        "derivation indexes reserved"
    );
}

#[test]
fn racing_creates_with_one_key_reserve_one_index_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("quote-once-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{}.db", SessionId::generate()));
    let store = Arc::new(SqliteStore::open(&path).expect("open"));
    racing_creates_reserve_one_index(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn racing_creates_with_one_key_reserve_one_index_on_postgres() {
    let url = crate::common::pg_url();
    let schema = format!("q1_{}", SessionId::generate().as_uuid().simple());
    let store = Arc::new(
        bitcoin_checkout::store::PostgresStore::connect_in_schema(&url, &schema, 4)
            .expect("connect"),
    );
    racing_creates_reserve_one_index(Arc::clone(&store));
    store.close();
}

#[test]
fn an_idempotency_key_is_forgotten_after_its_window_and_pruned() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(t0()));
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    let checkout = Checkout::new(Arc::clone(&store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(&clock))
        // Shorter than the least window: raised to 24 hours.
        .with_idempotency_window(Duration::hours(1));
    let params = || SessionParams::new(Decimal::from(3), usd());
    let first = checkout.create(params(), Some("order-9")).unwrap();
    clock.advance(Duration::hours(23));
    assert_eq!(
        checkout.create(params(), Some("order-9")).unwrap().id(),
        first.id(),
        "within the window: the same session"
    );
    assert_eq!(
        checkout.prune_idempotency(100).unwrap(),
        0,
        "nothing is old enough"
    );
    clock.advance(Duration::hours(2));
    let again = checkout.create(params(), Some("order-9")).unwrap();
    assert_ne!(again.id(), first.id(), "after the window: a new session");
    assert_eq!(
        checkout.create(params(), Some("order-9")).unwrap().id(),
        again.id(),
        "the new record holds the key"
    );
    checkout.create(params(), Some("order-10")).unwrap();
    clock.advance(Duration::hours(25));
    assert_eq!(checkout.prune_idempotency(100).unwrap(), 2);
    assert_eq!(store.idempotency("order-9").unwrap(), None);
}

#[test]
fn a_timeline_is_read_a_page_at_a_time() {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    let checkout = Checkout::new(MemoryStore::new(), rates, TestRequestGenerator);
    let s = checkout
        .create(SessionParams::new(Decimal::from(3), usd()), None)
        .unwrap();
    checkout.deactivate(s.id()).unwrap();
    let whole = checkout.timeline(s.id()).unwrap();
    let first = checkout.timeline_page(s.id(), None, 2).unwrap();
    let rest = checkout
        .timeline_page(s.id(), first.last().map(|e| e.seq), 100)
        .unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!([first, rest].concat(), whole);
}
