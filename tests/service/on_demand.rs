//! Quotes on demand and the optional session expiry (issue 13, point 5; ADR 8).
//!
//! An abandoned active session costs one expiry, not a new invoice, two events and a
//! payment row every ttl; a customer who fetches it still finds a valid quote; funds that
//! arrive still count; an optional `expires_at` deactivates a session nobody paid.

use crate::common;

use std::sync::Arc;

use bitcoin_checkout::clock::{Clock, ManualClock};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{MemoryStore, Store};
use bitcoin_checkout::*;
use common::*;
use time::Duration;

type Service = Checkout<Arc<MemoryStore>, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

fn service(sats_per_usd: &str) -> (Service, Arc<ManualClock>, Arc<MemoryStore>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(MemoryStore::new());
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec(sats_per_usd));
    let c = Checkout::new(Arc::clone(&store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(&clock));
    (c, clock, store)
}

fn event_types(store: &MemoryStore) -> Vec<String> {
    store
        .events_after(None, 10_000)
        .expect("events")
        .into_iter()
        .map(|e| e.event.event_type.as_str().to_owned())
        .collect()
}

fn pay_open(c: &Service, s: &CheckoutSession, msats: u64) -> Result<CheckoutSession, ServiceError> {
    let quote = s.open_payment().expect("an open quote");
    c.record_transfer(TransferReport::lightning(
        TestRequestGenerator::payment_hash(quote.id()),
        Msats::new(msats),
    ))
}

#[test]
fn an_abandoned_session_costs_one_expiry_not_a_quote_every_ttl() {
    let (c, clock, store) = service("1000");
    let s = c
        .create(SessionParams::new(dec("25.00"), usd()), None)
        .expect("created");
    // A day of sweeps every minute (the default ttl is 10 minutes: 144 quotes a day before).
    for _ in 0..(24 * 60) {
        clock.advance(Duration::minutes(1));
        let report = c.sweep(100).expect("sweep");
        assert!(report.failed.is_empty());
    }
    let stored = store.load(s.id()).expect("load").expect("exists");
    assert_eq!(stored.payments().len(), 1, "no quote nobody asked for");
    assert_eq!(stored.payments()[0].status(), PaymentStatus::Expired);
    assert_eq!(
        event_types(&store),
        [
            "checkout_session.created",
            "payment.created",
            "payment.expired"
        ]
    );
    assert_eq!(stored.wake_at(), None, "nothing left to do by time alone");
    assert_eq!(store.due(clock.now(), 100).expect("due"), []);

    // The customer comes back a day later: the fetch finds a valid quote at today's rate.
    let fetched = c.get(s.id()).expect("fetched");
    let open = fetched.open_payment().expect("a valid quote on fetch");
    assert!(open.expires_at() > clock.now());
    assert_eq!(open.target(), Sats::new(25_000));
    assert_eq!(fetched.payments().len(), 2);
    // A second fetch while it is valid changes nothing.
    assert_eq!(c.get(s.id()).expect("again"), fetched);
    assert_eq!(
        store.load(s.id()).expect("load").expect("exists").version(),
        fetched.version()
    );

    // Funds on the expired first quote still count (flagged as paid after its expiry).
    let first = &fetched.payments()[0];
    let late = c
        .record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(first.id()),
            Msats::new(25_000_000),
        ))
        .expect("recorded");
    assert_eq!(late.status(), SessionStatus::Paid);
}

#[test]
fn a_partial_payment_is_quoted_again_at_once() {
    let (c, clock, _) = service("1000");
    let s = c
        .create(SessionParams::new(dec("25.00"), usd()), None)
        .expect("created");
    clock.advance(Duration::seconds(10));
    let s = pay_open(&c, &s, 10_000_000).expect("partial");
    let open = s
        .open_payment()
        .expect("the rest is quoted for the customer waiting");
    assert_eq!(open.due(), dec("15.00"));
}

#[test]
fn an_update_or_sweep_issues_no_quote_but_a_refresh_does() {
    let (c, clock, store) = service("1000");
    let s = c
        .create(SessionParams::new(dec("25.00"), usd()), None)
        .expect("created");
    clock.advance(Duration::minutes(11));
    let updated = c
        .update(s.id(), &SessionUpdate::new().description("changed"))
        .expect("update");
    assert_eq!(updated.payments().len(), 1);
    assert!(updated.open_payment().is_none(), "expired, not re-quoted");
    assert!(c.refresh(s.id()).expect("refresh"), "a quote was issued");
    let stored = store.load(s.id()).expect("load").expect("exists");
    assert!(stored.open_payment().is_some());
    assert!(!c.refresh(s.id()).expect("refresh"), "nothing due");
}

#[test]
fn a_session_with_an_expiry_is_deactivated_with_a_reason_and_its_events() {
    let (c, clock, store) = service("1000");
    let expires_at = t0() + Duration::minutes(15);
    let s = c
        .create(
            SessionParams::new(dec("25.00"), usd()).expires_at(expires_at),
            None,
        )
        .expect("created");
    assert_eq!(s.expires_at(), Some(expires_at));
    assert_eq!(
        s.wake_at(),
        Some(t0() + Duration::minutes(10)),
        "the quote first"
    );
    // The second quote is cut at the session's expiry: a quote never outlives it.
    clock.advance(Duration::minutes(12));
    let s = c.get(s.id()).expect("fetched");
    assert_eq!(s.open_payment().map(|p| p.expires_at()), Some(expires_at));
    assert_eq!(s.wake_at(), Some(expires_at));

    clock.advance(Duration::minutes(4));
    assert_eq!(c.sweep(10).expect("sweep").updated, [s.id()]);
    let s = store.load(s.id()).expect("load").expect("exists");
    assert_eq!(
        s.state(),
        SessionState::Deactivated {
            deactivated_at: expires_at,
            reason: DeactivationReason::Expired
        }
    );
    assert_eq!(s.wake_at(), None);
    assert!(s.to_json().contains(r#""deactivation_reason":"expired""#));
    assert_eq!(
        event_types(&store)[2..],
        [
            "payment.expired",
            "payment.created",
            "payment.expired",
            "checkout_session.deactivated"
        ]
    );
    // It takes no more quotes; money that still arrives is recorded and flagged late.
    assert!(!c.refresh(s.id()).expect("refresh"));
    let late = c
        .record_transfer(TransferReport::lightning(
            TestRequestGenerator::payment_hash(s.payments()[1].id()),
            Msats::new(25_000_000),
        ))
        .expect("recorded");
    assert_eq!(late.status(), SessionStatus::Deactivated);
    assert_eq!(
        late.flags().iter().map(|f| f.kind).collect::<Vec<_>>(),
        [FlagKind::Late]
    );
    assert_eq!(
        c.deactivate(s.id()).expect_err("already closed"),
        ServiceError::Core(Error::InvalidTransition {
            action: "deactivate",
            status: "deactivated"
        })
    );
}

#[test]
fn a_session_expiring_before_the_sweep_is_closed_by_the_next_command() {
    let (c, clock, _) = service("1000");
    let expires_at = t0() + Duration::minutes(5);
    let s = c
        .create(
            SessionParams::new(dec("25.00"), usd()).expires_at(expires_at),
            None,
        )
        .expect("created");
    clock.advance(Duration::minutes(6));
    // No sweep ran: the payment reported now arrives after the expiry, so it cannot pay.
    let after = pay_open(&c, &s, 25_000_000).expect("recorded");
    assert_eq!(after.status(), SessionStatus::Deactivated);
    assert_eq!(
        after.flags().iter().map(|f| f.kind).collect::<Vec<_>>(),
        [FlagKind::Late]
    );
    // A fetch of an expired session issues no quote.
    assert!(c.get(s.id()).expect("fetched").open_payment().is_none());
}

#[test]
fn an_expiry_outside_five_minutes_to_a_year_is_refused() {
    let (c, _, store) = service("1000");
    for at in [
        t0() - Duration::minutes(1),
        t0() + Duration::minutes(4),
        t0() + Duration::days(366),
    ] {
        let err = c
            .create(SessionParams::new(dec("25.00"), usd()).expires_at(at), None)
            .expect_err("refused");
        assert!(
            matches!(err, ServiceError::Core(Error::InvalidExpiry { .. })),
            "{err:?}"
        );
    }
    assert!(store.events_after(None, 10).expect("events").is_empty());
    // From JSON (Unix milliseconds, as every time in this API).
    let ms = (t0() + Duration::hours(1)).unix_timestamp() * 1000;
    let params = SessionParams::from_json(&format!(
        r#"{{"amount": 25, "currency": "USD", "expires_at": {ms}}}"#
    ))
    .expect("params");
    let s = c.create(params, None).expect("created");
    assert_eq!(s.expires_at(), Some(t0() + Duration::hours(1)));
    assert_eq!(
        CheckoutSession::from_json(&s.to_json()).expect("reads back"),
        s
    );
}
