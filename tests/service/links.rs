//! Checkout links and payment links through the service over the in-memory store.

use crate::common;

use std::sync::Arc;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::link::{LinkId, LinkStatus};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{LinkStore, MemoryStore, Store};
use bitcoin_checkout::*;
use common::*;
use time::Duration;

type Service = Checkout<Arc<MemoryStore>, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

fn service() -> (Arc<Service>, Arc<ManualClock>, Arc<MemoryStore>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(MemoryStore::new());
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let c = Checkout::new(Arc::clone(&store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(&clock));
    (Arc::new(c), clock, store)
}

fn event_types(store: &MemoryStore) -> Vec<String> {
    store
        .events_after(None, 10_000)
        .expect("events")
        .into_iter()
        .map(|e| e.event.event_type.as_str().to_owned())
        .collect()
}

#[test]
fn concurrent_opens_of_a_checkout_link_yield_one_session() {
    let (c, _, store) = service();
    let link = c
        .create_checkout_link(SessionParams::new(dec("5.00"), usd()), None)
        .expect("link");
    let link_id = link.id();
    let ids: Vec<SessionId> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let c = Arc::clone(&c);
                scope.spawn(move || c.open_link(link_id, None).expect("opened").id())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(
        store.link_sessions(link.id()).expect("sessions"),
        vec![ids[0]]
    );
    let stored = c.get_link(link.id()).expect("link");
    assert_eq!(stored.session(), Some(ids[0]));
    assert_eq!(c.get(ids[0]).expect("session").link(), Some(link.id()));
    let created = event_types(&store)
        .iter()
        .filter(|t| *t == "checkout_session.created")
        .count();
    assert_eq!(created, 1);
}

#[test]
fn a_hundred_opens_of_a_payment_link_yield_a_hundred_sessions() {
    let (c, _, store) = service();
    let link = c
        .create_payment_link(SessionParams::new(dec("1.00"), usd()), None)
        .expect("link");
    let mut ids: Vec<SessionId> = (0..100)
        .map(|_| c.open_link(link.id(), None).expect("opened").id())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    assert_eq!(store.link_sessions(link.id()).expect("sessions").len(), 100);
    assert_eq!(c.get_link(link.id()).expect("link").sessions_opened(), 100);
    assert_eq!(
        c.get_link(link.id()).expect("link").status(None),
        LinkStatus::Active
    );
}

#[test]
fn deactivating_a_link_deactivates_its_active_sessions_in_one_commit() {
    let (c, clock, store) = service();
    let link = c
        .create_payment_link(SessionParams::new(dec("2.00"), usd()), None)
        .expect("link");
    let a = c.open_link(link.id(), None).expect("a");
    let b = c.open_link(link.id(), None).expect("b");
    // b is paid: deactivation leaves it paid.
    let hash = TestRequestGenerator::payment_hash(b.payments()[0].id());
    c.record_transfer(TransferReport::lightning(hash, Msats::new(2_000_000)))
        .expect("paid");
    clock.advance(Duration::seconds(5));
    let before = store.events_after(None, 10_000).expect("events").len();
    let link = c.deactivate_link(link.id()).expect("deactivated");
    assert_eq!(link.status(None), LinkStatus::Deactivated);
    let a = c.get(a.id()).expect("a");
    assert_eq!(a.status(), SessionStatus::Deactivated);
    assert_eq!(a.payments()[0].status(), PaymentStatus::Cancelled);
    assert_eq!(c.get(b.id()).expect("b").status(), SessionStatus::Paid);
    let new: Vec<String> = event_types(&store).into_iter().skip(before).collect();
    assert_eq!(
        new,
        [
            "payment_link.deactivated",
            "payment.cancelled",
            "checkout_session.deactivated"
        ]
    );
    assert!(matches!(
        c.open_link(link.id(), None),
        Err(ServiceError::Core(Error::InvalidTransition { .. }))
    ));
    assert!(matches!(
        c.deactivate_link(link.id()),
        Err(ServiceError::Core(Error::InvalidTransition { .. }))
    ));
}

#[test]
fn a_checkout_link_is_paid_with_its_session_and_expired_links_open_nothing() {
    let (c, clock, store) = service();
    let link = c
        .create_checkout_link(
            SessionParams::new(dec("3.00"), usd()),
            Some(t0() + Duration::hours(1)),
        )
        .expect("link");
    let s = c.open_link(link.id(), None).expect("opened");
    let hash = TestRequestGenerator::payment_hash(s.payments()[0].id());
    c.record_transfer(TransferReport::lightning(hash, Msats::new(3_000_000)))
        .expect("paid");
    let types = event_types(&store);
    assert_eq!(
        types.first().map(String::as_str),
        Some("checkout_link.created")
    );
    assert_eq!(types.last().map(String::as_str), Some("checkout_link.paid"));
    assert_eq!(
        c.get_link(link.id())
            .expect("link")
            .status(Some(SessionStatus::Paid)),
        LinkStatus::Paid
    );
    // Opening again still returns the paid session.
    assert_eq!(c.open_link(link.id(), None).expect("again").id(), s.id());

    let late = c
        .create_payment_link(
            SessionParams::new(dec("3.00"), usd()),
            Some(t0() + Duration::hours(1)),
        )
        .expect("link");
    clock.advance(Duration::hours(2));
    assert_eq!(
        c.open_link(late.id(), None).unwrap_err(),
        ServiceError::Core(Error::LinkExpired)
    );
    let unknown = LinkId::Payment(PaymentLinkId::generate());
    assert_eq!(
        c.open_link(unknown, None).unwrap_err(),
        ServiceError::UnknownLink(unknown)
    );
    let bad = c.create_payment_link(SessionParams::new(dec("0"), usd()), None);
    assert_eq!(
        bad.unwrap_err(),
        ServiceError::Core(Error::AmountNotPositive)
    );
}
