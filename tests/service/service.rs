//! The service over the in-memory store: idempotency, re-quoting, sweeps and bad input.

use crate::common;

use std::sync::Arc;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::{FixedRates, MaxAge, RateError, RateSource};
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{ListQuery, MemoryStore, Store, StoreError};
use bitcoin_checkout::*;
use common::*;
use time::Duration;

fn rates() -> FixedRates {
    FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"))
}

type Service<R> = Checkout<Arc<MemoryStore>, R, TestRequestGenerator, Arc<ManualClock>>;

fn service<R: RateSource>(rates: R) -> (Service<R>, Arc<ManualClock>, Arc<MemoryStore>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(MemoryStore::new());
    let c = Checkout::new(Arc::clone(&store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(&clock));
    (c, clock, store)
}

fn params() -> SessionParams {
    SessionParams::new(dec("25.00"), usd())
}

fn pay(c: &Service<impl RateSource>, id: SessionId, msats: u64) -> CheckoutSession {
    let s = c.get(id).expect("session");
    let quote = s.open_payment().expect("open quote");
    c.record_transfer(TransferReport::lightning(
        TestRequestGenerator::payment_hash(quote.id()),
        Msats::new(msats),
    ))
    .expect("recorded")
}

#[test]
fn create_issues_the_first_quote_and_commits_its_events() {
    let (c, _, _) = service(rates());
    let s = c.create(params(), None).expect("created");
    assert_eq!(
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(25_000))
    );
    let events: Vec<_> = c
        .timeline(s.id())
        .expect("timeline")
        .into_iter()
        .map(|e| e.event.event_type)
        .collect();
    assert_eq!(
        events,
        [EventType::CheckoutSessionCreated, EventType::PaymentCreated]
    );
}

#[test]
fn idempotent_create_replays_and_refuses_other_parameters() {
    let (c, clock, store) = service(rates());
    let first = c.create(params(), Some("order-1")).expect("created");
    clock.advance(Duration::seconds(5));
    let again = c.create(params(), Some("order-1")).expect("replayed");
    assert_eq!(again, first);
    let other = c.create(SessionParams::new(dec("26.00"), usd()), Some("order-1"));
    assert_eq!(other.unwrap_err(), ServiceError::IdempotencyConflict);
    assert_eq!(
        store.list(&ListQuery::default()).expect("list").data.len(),
        1
    );
    assert_eq!(
        c.create(params(), Some("")).unwrap_err(),
        ServiceError::InvalidIdempotencyKey
    );
    let long = "k".repeat(256);
    assert_eq!(
        c.create(params(), Some(&long)).unwrap_err(),
        ServiceError::InvalidIdempotencyKey
    );
}

#[test]
fn concurrent_creates_with_one_key_make_one_session() {
    let (c, _, store) = service(rates());
    let c = Arc::new(c);
    let ids: Vec<SessionId> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let c = Arc::clone(&c);
                scope.spawn(move || c.create(params(), Some("same-key")).expect("created").id())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(
        store.list(&ListQuery::default()).expect("list").data.len(),
        1
    );
}

#[test]
fn partial_payment_requotes_the_remaining_due() {
    let (c, clock, _) = service(rates());
    let s = c.create(params(), None).expect("created");
    clock.advance(Duration::seconds(10));
    let s = pay(&c, s.id(), 10_000_000);
    assert_eq!(s.status(), SessionStatus::Active);
    let open = s.open_payment().expect("new quote");
    assert_eq!(open.due(), dec("15.00"));
    assert_eq!(open.target(), Sats::new(15_000));
    let s = pay(&c, s.id(), 15_000_000);
    assert_eq!(s.status(), SessionStatus::Paid);
    let paid_events = c
        .events_after(None, 100)
        .expect("events")
        .into_iter()
        .filter(|e| e.event.event_type == EventType::CheckoutSessionPaid)
        .count();
    assert_eq!(paid_events, 1);
}

#[test]
fn sweep_expires_quotes_and_a_fetch_requotes_at_the_current_rate() {
    let (c, clock, store) = service(rates());
    let s = c.create(params(), None).expect("created");
    assert!(c.sweep(10).expect("sweep").updated.is_empty());
    clock.advance(Duration::seconds(600));
    let report = c.sweep(10).expect("sweep");
    assert_eq!(report.updated, [s.id()]);
    let stored = store.load(s.id()).expect("load").expect("exists");
    assert_eq!(stored.payments().len(), 1, "the sweep issues no quote");
    assert_eq!(stored.payments()[0].status(), PaymentStatus::Expired);
    let s = c.get(s.id()).expect("fetched");
    assert_eq!(s.payments().len(), 2);
    assert_eq!(s.payments()[0].status(), PaymentStatus::Expired);
    assert_eq!(s.payments()[1].status(), PaymentStatus::Unpaid);
}

#[test]
fn a_transfer_is_recorded_even_when_no_new_quote_can_be_made() {
    // Rates go stale after 60 s: the re-quote after a partial payment fails, the payment stays.
    let (c, clock, _) = service(MaxAge::new(
        StaleAfterStart(rates(), t0()),
        Duration::seconds(60),
    ));
    let s = c.create(params(), None).expect("created");
    clock.advance(Duration::seconds(120));
    let s = pay(&c, s.id(), 5_000_000);
    assert_eq!(s.totals().counted, Msats::new(5_000_000));
    assert!(s.open_payment().is_none(), "no quote without a fresh rate");
    assert!(matches!(
        c.refresh(s.id()),
        Err(ServiceError::Rate(RateError::Stale { .. }))
    ));
    // A fetch still reads the session (without a quote) rather than failing.
    let fetched = c.get(s.id()).expect("read");
    assert!(fetched.open_payment().is_none());
    assert_eq!(fetched.totals().counted, Msats::new(5_000_000));
}

/// A source whose rates are all fetched at `start` (so they age).
struct StaleAfterStart(FixedRates, OffsetDateTime);

impl RateSource for StaleAfterStart {
    fn rate(
        &self,
        b: Currency,
        t: TargetCurrency,
        _now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        self.0.rate(b, t, self.1)
    }
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let (c, _, store) = service(rates());
    let s = c.create(params(), None).expect("created");
    let before = store.events_after(None, 1000).expect("events");
    let unknown = SessionId::generate();
    assert_eq!(
        c.get(unknown).unwrap_err(),
        ServiceError::UnknownSession(unknown)
    );
    assert_eq!(
        c.deactivate(unknown).unwrap_err(),
        ServiceError::UnknownSession(unknown)
    );
    let stray = TransferReport::lightning(hash(999), Msats::new(1_000));
    assert_eq!(
        c.record_transfer(stray).unwrap_err(),
        ServiceError::Core(Error::UnknownPaymentRequest)
    );
    let wrong_addr = TransferReport::onchain(
        OutPoint::new(txid(1), 0),
        "bcrt1qsomeoneelse",
        Sats::new(1_000),
    )
    .confirmations(1);
    assert_eq!(
        c.record_transfer(wrong_addr).unwrap_err(),
        ServiceError::Core(Error::UnknownPaymentRequest)
    );
    let eur = SessionParams::new(dec("10"), Currency::from_code("EUR").expect("EUR"));
    assert!(matches!(
        c.create(eur, None).unwrap_err(),
        ServiceError::Rate(RateError::Unavailable { .. })
    ));
    let update = SessionUpdate::new()
        .success_url("https://shop.example/ok")
        .success_message("thanks");
    assert_eq!(
        c.update(s.id(), &update).unwrap_err(),
        ServiceError::Core(Error::SuccessUrlAndMessage)
    );
    assert_eq!(store.load(s.id()).expect("load"), Some(s.clone()));
    assert_eq!(store.events_after(None, 1000).expect("events"), before);
    store.close();
    assert_eq!(
        c.get(s.id()).unwrap_err(),
        ServiceError::Store(StoreError::Closed)
    );
    assert_eq!(
        c.create(params(), None).unwrap_err(),
        ServiceError::Store(StoreError::Closed)
    );
}

#[test]
fn duplicate_reports_add_no_events() {
    let (c, _, store) = service(rates());
    let s = c.create(params(), None).expect("created");
    let report = TransferReport::lightning(
        TestRequestGenerator::payment_hash(s.payments()[0].id()),
        Msats::new(1_000_000),
    );
    c.record_transfer(report.clone()).expect("first");
    let n = store.events_after(None, 1000).expect("events").len();
    let again = c.record_transfer(report).expect("again");
    assert_eq!(store.events_after(None, 1000).expect("events").len(), n);
    assert_eq!(again.totals().counted, Msats::new(1_000_000));
}
