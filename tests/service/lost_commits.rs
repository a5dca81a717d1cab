//! Retries after a commit whose answer was lost (issue #13, point 7): the store wrote the
//! commit, then failed as a PostgreSQL COMMIT cut off does, with a retryable backend error.
//! The service retries; the retry must answer with what the first attempt did, and do it
//! once. Run over the in-memory store, a real SQLite database and PostgreSQL.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::link::{LinkId, LinkStatus};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{LinkStore, MemoryStore, SqliteStore, Store, StoreError};
use bitcoin_checkout::testkit::ObservedStore;
use bitcoin_checkout::*;
use common::*;

type Inner = Box<dyn LinkStore>;
type Service = Checkout<
    Arc<ObservedStore<'static, Inner>>,
    FixedRates,
    TestRequestGenerator,
    Arc<ManualClock>,
>;

/// A service whose next commit (session or link) lands and then reports a lost answer
/// once `cut` is set; the flag clears itself, so the retry's commit answers truly.
struct Rig {
    c: Service,
    store: Arc<ObservedStore<'static, Inner>>,
    cut: Arc<AtomicBool>,
}

fn lost() -> StoreError {
    StoreError::Backend {
        message: "server closed the connection during COMMIT".into(),
        retryable: true,
    }
}

fn rig(inner: Inner) -> Rig {
    let cut = Arc::new(AtomicBool::new(false));
    let (a, b) = (Arc::clone(&cut), Arc::clone(&cut));
    let store = Arc::new(
        ObservedStore::new(inner)
            .intercept_commit(move |inner, commit| {
                inner.commit(commit)?;
                if a.swap(false, Ordering::SeqCst) {
                    Err(lost())
                } else {
                    Ok(())
                }
            })
            .intercept_commit_link(move |inner, commit| {
                inner.commit_link(commit)?;
                if b.swap(false, Ordering::SeqCst) {
                    Err(lost())
                } else {
                    Ok(())
                }
            }),
    );
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let c = Checkout::new(Arc::clone(&store), rates, TestRequestGenerator)
        .with_clock(Arc::new(ManualClock::new(t0())));
    Rig { c, store, cut }
}

/// Each test runs on both stores.
fn rigs() -> Vec<(&'static str, Rig)> {
    vec![
        ("memory", rig(Box::new(MemoryStore::new()))),
        (
            "sqlite",
            rig(Box::new(SqliteStore::open_in_memory().expect("sqlite"))),
        ),
    ]
}

fn count(store: &impl Store, event_type: &str) -> usize {
    store
        .events_after(None, 10_000)
        .expect("events")
        .iter()
        .filter(|e| e.event.event_type.as_str() == event_type)
        .count()
}

fn params() -> SessionParams {
    SessionParams::new(dec("1.00"), usd())
}

#[test]
fn deactivate_whose_answer_was_lost_returns_the_deactivated_session_once() {
    for (name, r) in rigs() {
        let s = r.c.create(params(), None).expect("created");
        r.cut.store(true, Ordering::SeqCst);
        let done =
            r.c.deactivate(s.id())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(done.status(), SessionStatus::Deactivated, "{name}");
        assert!(
            !r.cut.load(Ordering::SeqCst),
            "{name}: the cut was exercised"
        );
        assert_eq!(
            r.c.get(s.id()).expect("get"),
            done,
            "{name}: the stored state is returned"
        );
        assert_eq!(
            count(&*r.store, "checkout_session.deactivated"),
            1,
            "{name}"
        );
        assert_eq!(count(&*r.store, "payment.cancelled"), 1, "{name}");
    }
}

#[test]
fn deactivating_an_already_deactivated_session_is_still_refused() {
    // What tells "this call did it" from "someone did it before": a second, separate call
    // is refused as before.
    for (name, r) in rigs() {
        let s = r.c.create(params(), None).expect("created");
        r.c.deactivate(s.id()).expect("first");
        let again = r.c.deactivate(s.id()).expect_err("second call");
        assert!(
            matches!(again, ServiceError::Core(Error::InvalidTransition { .. })),
            "{name}: {again:?}"
        );
    }
}

#[test]
fn deactivate_link_whose_answer_was_lost_returns_the_link_once() {
    for (name, r) in rigs() {
        let link = r.c.create_payment_link(params(), None).expect("link");
        let opened = r.c.open_link(link.id(), None).expect("opened");
        r.cut.store(true, Ordering::SeqCst);
        let done =
            r.c.deactivate_link(link.id())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !r.cut.load(Ordering::SeqCst),
            "{name}: the cut was exercised"
        );
        assert_eq!(done.status(None), LinkStatus::Deactivated, "{name}");
        assert_eq!(r.c.get_link(link.id()).expect("get"), done, "{name}");
        assert_eq!(
            r.c.get(opened.id()).expect("session").status(),
            SessionStatus::Deactivated,
            "{name}"
        );
        assert_eq!(count(&*r.store, "payment_link.deactivated"), 1, "{name}");
        assert_eq!(
            count(&*r.store, "checkout_session.deactivated"),
            1,
            "{name}"
        );
        assert!(
            r.c.deactivate_link(link.id()).is_err(),
            "{name}: a second call is refused"
        );
    }
}

#[test]
fn open_link_whose_answer_was_lost_makes_one_session() {
    for (name, r) in rigs() {
        let link = r.c.create_payment_link(params(), None).expect("link");
        r.cut.store(true, Ordering::SeqCst);
        let opened =
            r.c.open_link(link.id(), None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !r.cut.load(Ordering::SeqCst),
            "{name}: the cut was exercised"
        );
        assert_eq!(
            r.store.link_sessions(link.id()).expect("sessions"),
            vec![opened.id()],
            "{name}"
        );
        assert_eq!(count(&*r.store, "checkout_session.created"), 1, "{name}");
    }
}

#[test]
fn open_link_retried_with_its_key_returns_the_same_session() {
    for (name, r) in rigs() {
        let link = r.c.create_payment_link(params(), None).expect("link");
        r.cut.store(true, Ordering::SeqCst);
        let first =
            r.c.open_link(link.id(), Some("cart-7"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !r.cut.load(Ordering::SeqCst),
            "{name}: the cut was exercised"
        );
        // The client lost the answer too and retries the request with its key.
        let again = r.c.open_link(link.id(), Some("cart-7")).expect("retried");
        assert_eq!(again.id(), first.id(), "{name}");
        assert_eq!(
            r.store.link_sessions(link.id()).expect("sessions"),
            vec![first.id()],
            "{name}"
        );
        assert_eq!(count(&*r.store, "checkout_session.created"), 1, "{name}");
        assert_eq!(
            r.c.get_link(link.id()).expect("link").sessions_opened(),
            1,
            "{name}"
        );
        // Another key opens another session; the key with another link is refused.
        let other = r.c.open_link(link.id(), Some("cart-8")).expect("other");
        assert_ne!(other.id(), first.id(), "{name}");
        let link2 = r.c.create_payment_link(params(), None).expect("link 2");
        assert_eq!(
            r.c.open_link(link2.id(), Some("cart-7"))
                .expect_err("key reused"),
            ServiceError::IdempotencyConflict,
            "{name}"
        );
        assert_eq!(
            r.c.open_link(link.id(), Some("")).expect_err("empty key"),
            ServiceError::InvalidIdempotencyKey,
            "{name}"
        );
    }
}

#[test]
fn create_link_whose_answer_was_lost_returns_the_link() {
    for (name, r) in rigs() {
        r.cut.store(true, Ordering::SeqCst);
        let link =
            r.c.create_checkout_link(params(), None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !r.cut.load(Ordering::SeqCst),
            "{name}: the cut was exercised"
        );
        assert_eq!(r.c.get_link(link.id()).expect("stored"), link, "{name}");
        assert_eq!(count(&*r.store, "checkout_link.created"), 1, "{name}");
        assert!(matches!(link.id(), LinkId::Checkout(_)));
    }
}
