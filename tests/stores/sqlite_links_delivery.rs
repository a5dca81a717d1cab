//! Links, webhook delivery and address indexes over the SQLite store, as the product uses
//! them: the link tests of `tests/links.rs` on SQLite files (also with one store per thread
//! on one file), a webhook dispatcher that is stopped and restarted on the same file while
//! deliveries are being retried, and derivation indexes reserved across reopening and
//! across processes (this test binary run again as workers).
#![cfg(feature = "sqlite")]

use crate::common;

use common::TempDir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::link::{LinkId, LinkStatus};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::{AddressIndex, TestRequestGenerator};
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::store::{LinkStore, SqliteStore, Store};
use bitcoin_checkout::*;
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

type Service<S> = Checkout<S, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

/// 2026-01-01T00:00:00Z.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time")
}

fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal literal")
}

fn service<S: Store>(store: S, clock: &Arc<ManualClock>) -> Service<S> {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    Checkout::new(store, rates, TestRequestGenerator).with_clock(Arc::clone(clock))
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).expect("open the database file")
}

fn event_types<S: Store>(store: &S) -> Vec<String> {
    store
        .events_after(None, 10_000)
        .expect("events")
        .into_iter()
        .map(|e| e.event.event_type.as_str().to_owned())
        .collect()
}

// ---- links -------------------------------------------------------------------------------

/// Opens `link` from `threads` threads at once, each through `open_link` of its own
/// service; returns the session ids they got.
fn open_concurrently<S: LinkStore>(services: &[Service<S>], link: LinkId) -> Vec<SessionId> {
    let barrier = Barrier::new(services.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = services
            .iter()
            .map(|c| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    c.open_link(link, None).expect("opened").id()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

/// One checkout link, one session: checked on the file through a fresh connection.
fn assert_one_session(path: &Path, link: LinkId, ids: &[SessionId]) {
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let store = open(path);
    assert_eq!(store.link_sessions(link).expect("sessions"), vec![ids[0]]);
    let stored = store.load_link(link).expect("load").expect("link");
    assert_eq!(stored.session(), Some(ids[0]));
    assert_eq!(stored.sessions_opened(), 1);
    let session = store.load(ids[0]).expect("load").expect("session");
    assert_eq!(session.link(), Some(link));
    let created = store
        .session_events(ids[0])
        .expect("timeline")
        .iter()
        .filter(|e| e.event.event_type == EventType::CheckoutSessionCreated)
        .count();
    assert_eq!(created, 1);
    let all_created = event_types(&store)
        .iter()
        .filter(|t| *t == "checkout_session.created")
        .count();
    assert_eq!(all_created, 1, "exactly one session was ever created");
}

#[test]
fn concurrent_opens_of_a_checkout_link_yield_one_session() {
    let dir = TempDir::new("links-shared");
    let path = dir.file("links.db");
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(open(&path));
    let services: Vec<_> = (0..8)
        .map(|_| service(Arc::clone(&store), &clock))
        .collect();
    let link = services[0]
        .create_checkout_link(SessionParams::new(dec("5.00"), usd()), None)
        .expect("link");
    let ids = open_concurrently(&services, link.id());
    assert_one_session(&path, link.id(), &ids);
    assert_eq!(
        services[0].get(ids[0]).expect("session").link(),
        Some(link.id())
    );
}

#[test]
fn concurrent_opens_with_one_store_per_thread_on_one_file_yield_one_session() {
    let dir = TempDir::new("links-per-thread");
    let path = dir.file("links.db");
    let clock = Arc::new(ManualClock::new(t0()));
    // Each thread has its own connection: the race is decided by the file's write lock
    // and the link's compare-and-swap, not by a mutex in this process.
    let services: Vec<_> = (0..8).map(|_| service(open(&path), &clock)).collect();
    for round in 0..3 {
        let link = services[round]
            .create_checkout_link(SessionParams::new(dec("5.00"), usd()), None)
            .expect("link");
        let ids = open_concurrently(&services, link.id());
        let store = open(&path);
        assert_eq!(
            store.link_sessions(link.id()).expect("sessions"),
            vec![ids[0]]
        );
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let stored = store.load_link(link.id()).expect("load").expect("link");
        assert_eq!(stored.session(), Some(ids[0]));
        assert_eq!(stored.sessions_opened(), 1);
    }
    let created = event_types(services[0].store())
        .iter()
        .filter(|t| *t == "checkout_session.created")
        .count();
    assert_eq!(created, 3, "one session per checkout link");
}

#[test]
fn a_hundred_opens_of_a_payment_link_yield_a_hundred_sessions() {
    let dir = TempDir::new("links-payment");
    let path = dir.file("links.db");
    let clock = Arc::new(ManualClock::new(t0()));
    let c = service(open(&path), &clock);
    let link = c
        .create_payment_link(SessionParams::new(dec("1.00"), usd()), None)
        .expect("link");
    let mut opened = Vec::new();
    for _ in 0..100 {
        opened.push(c.open_link(link.id(), None).expect("opened").id());
        clock.advance(Duration::milliseconds(10));
    }
    let mut ids = opened.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    // Oldest first, from a connection opened afterwards.
    let again = open(&path);
    assert_eq!(again.link_sessions(link.id()).expect("sessions"), opened);
    let stored = again.load_link(link.id()).expect("load").expect("link");
    assert_eq!(stored.sessions_opened(), 100);
    assert_eq!(stored.status(None), LinkStatus::Active);
    assert_eq!(stored, c.get_link(link.id()).expect("link"));
}

#[test]
fn deactivating_a_link_deactivates_its_active_sessions_in_one_commit() {
    let dir = TempDir::new("links-deactivate");
    let path = dir.file("links.db");
    let clock = Arc::new(ManualClock::new(t0()));
    let c = service(open(&path), &clock);
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
    let before = c.events_after(None, 10_000).expect("events").len();
    let deactivated = c.deactivate_link(link.id()).expect("deactivated");
    assert_eq!(deactivated.status(None), LinkStatus::Deactivated);
    c.store().close().expect("close");
    drop(c);

    // Everything is in the file.
    let c = service(open(&path), &clock);
    assert_eq!(c.get_link(link.id()).expect("link"), deactivated);
    let a = c.get(a.id()).expect("a");
    assert_eq!(a.status(), SessionStatus::Deactivated);
    assert_eq!(a.payments()[0].status(), PaymentStatus::Cancelled);
    assert_eq!(c.get(b.id()).expect("b").status(), SessionStatus::Paid);
    let events = c.events_after(None, 10_000).expect("events");
    let new: Vec<&str> = events
        .iter()
        .skip(before)
        .map(|e| e.event.event_type.as_str())
        .collect();
    assert_eq!(
        new,
        [
            "payment_link.deactivated",
            "payment.cancelled",
            "checkout_session.deactivated"
        ]
    );
    // The link's event belongs to no session; the others are in a's timeline.
    assert_eq!(events[before].event.session_id, None);
    let timeline = c.store().session_events(a.id()).expect("timeline");
    assert_eq!(
        timeline[timeline.len() - 2..].to_vec(),
        events[before + 1..].to_vec()
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
    let dir = TempDir::new("links-paid");
    let clock = Arc::new(ManualClock::new(t0()));
    let c = service(open(&dir.file("links.db")), &clock);
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
    let types = event_types(c.store());
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
    assert!(matches!(
        c.open_link(unknown, None),
        Err(ServiceError::UnknownLink(id)) if id == unknown
    ));
}

// ---- webhook delivery across a restart ---------------------------------------------------

#[cfg(feature = "webhooks")]
mod delivery {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use bitcoin_checkout::clock::{Clock, ManualClock};
    use bitcoin_checkout::request::TestRequestGenerator;
    use bitcoin_checkout::store::Store;
    use bitcoin_checkout::webhook::*;
    use bitcoin_checkout::*;
    use time::Duration;

    use super::{TempDir, dec, open, service, t0, usd};

    /// Each event's first attempts fail (three times: 500, a transport error, 503), then
    /// 200.
    const FAILURES: usize = 3;
    const GOOD_URL: &str = "https://merchant.example/hooks";
    const GONE_URL: &str = "https://gone.example/hooks";

    #[derive(Debug, Clone)]
    struct Request {
        url: String,
        webhook_id: String,
        event: Event,
        /// 1 before the restart, 2 after.
        phase: u32,
        outcome: SendOutcome,
    }

    /// The receiving side, which outlives the restart: checks every request's signature
    /// and answers per URL.
    struct Receiver {
        clock: Arc<ManualClock>,
        verifier: Verifier,
        phase: Mutex<u32>,
        log: Mutex<Vec<Request>>,
    }

    impl WebhookSender for Receiver {
        fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> SendOutcome {
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_str())
            };
            self.verifier
                .verify_raw(
                    header(HEADER_ID),
                    header(HEADER_TIMESTAMP),
                    header(HEADER_SIGNATURE),
                    body.as_bytes(),
                    self.clock.now(),
                )
                .expect("every request is signed with the endpoint's secret");
            let webhook_id = header(HEADER_ID).expect("webhook-id").to_owned();
            let event = Event::from_json(body).expect("the body is an event");
            let mut log = self.log.lock().expect("log");
            let tries = log
                .iter()
                .filter(|r| r.url == url && r.webhook_id == webhook_id)
                .count();
            let outcome = match (url, tries) {
                (GONE_URL, _) => SendOutcome::Status(410),
                (_, 0) => SendOutcome::Status(500),
                (_, 1) => SendOutcome::Error("connection reset by peer".into()),
                (_, n) if n < FAILURES => SendOutcome::Status(503),
                _ => SendOutcome::Status(200),
            };
            log.push(Request {
                url: url.to_owned(),
                webhook_id,
                event,
                phase: *self.phase.lock().expect("phase"),
                outcome: outcome.clone(),
            });
            outcome
        }
    }

    fn secret() -> WebhookSecret {
        WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("secret")
    }

    fn pay<S: Store>(c: &super::Service<S>, id: SessionId) {
        let s = c.get(id).expect("session");
        let p = s.open_payment().expect("an open quote");
        let hash = TestRequestGenerator::payment_hash(p.id());
        c.record_transfer(TransferReport::lightning(hash, p.target_msats()))
            .expect("paid");
    }

    #[test]
    fn the_dispatcher_delivers_everything_across_a_restart_of_the_store() {
        let dir = TempDir::new("dispatch-restart");
        let path = dir.file("webhooks.db");
        let clock = Arc::new(ManualClock::new(t0()));
        let receiver = Arc::new(Receiver {
            clock: Arc::clone(&clock),
            // Both endpoints share the secret, so one verifier checks every request.
            verifier: Verifier::new(secret()),
            phase: Mutex::new(1),
            log: Mutex::default(),
        });
        let good = Endpoint::new(GOOD_URL, secret(), t0()).expect("endpoint");
        let gone = Endpoint::new(GONE_URL, secret(), t0()).expect("endpoint");
        let step = Duration::seconds(60);

        // Phase 1: events, a few rounds, then everything is dropped and the file closed.
        let s1;
        let s2;
        {
            let store = Arc::new(open(&path));
            let c = service(Arc::clone(&store), &clock);
            let d = Dispatcher::new(
                Arc::clone(&store),
                Arc::clone(&receiver),
                Arc::clone(&clock),
            );
            d.add_endpoint(&good).expect("endpoint");
            d.add_endpoint(&gone).expect("endpoint");
            s1 = c
                .create(SessionParams::new(dec("1.00"), usd()), None)
                .expect("s1")
                .id();
            let link = c
                .create_payment_link(SessionParams::new(dec("2.00"), usd()), None)
                .expect("link");
            s2 = c.open_link(link.id(), None).expect("s2").id();
            clock.advance(Duration::seconds(1));
            pay(&c, s1);
            let first = d.run_once().expect("run");
            assert_eq!(first.disabled, vec![gone.id], "410 disables the endpoint");
            assert_eq!(first.delivered, 0);
            for _ in 0..4 {
                clock.advance(step);
                d.run_once().expect("run");
            }
            let log = d.log(good.id).expect("log");
            assert!(
                log.iter()
                    .any(|x| x.status == DeliveryStatus::Pending && !x.attempts.is_empty()),
                "the restart happens while deliveries are being retried: {log:?}"
            );
            drop(d);
            drop(c);
            Arc::try_unwrap(store)
                .expect("the only owner of the store")
                .close()
                .expect("close");
        }
        *receiver.phase.lock().expect("phase") = 2;

        // Phase 2: a new store on the file, a new dispatcher (endpoints come from the file),
        // more events, rounds until everything is delivered.
        let store = Arc::new(open(&path));
        let endpoints = store.endpoints().expect("endpoints");
        assert_eq!(endpoints.len(), 2);
        let stored_gone = endpoints
            .iter()
            .find(|e| e.id == gone.id)
            .expect("gone endpoint");
        assert!(!stored_gone.is_active(), "the 410 endpoint stays disabled");
        let stored_good = endpoints
            .iter()
            .find(|e| e.id == good.id)
            .expect("good endpoint");
        // The endpoint as added, with its circuit breaker's state from phase 1 (it failed
        // there): the breaker survives the restart too.
        assert!(stored_good.health.consecutive_failures > 0);
        let mut expected = good.clone();
        expected.health = stored_good.health;
        assert_eq!(stored_good.to_stored_json(), expected.to_stored_json());
        let c = service(Arc::clone(&store), &clock);
        let d = Dispatcher::new(
            Arc::clone(&store),
            Arc::clone(&receiver),
            Arc::clone(&clock),
        );
        let s3 = c
            .create(SessionParams::new(dec("3.00"), usd()), None)
            .expect("s3")
            .id();
        pay(&c, s2);
        let mut rounds = 0;
        loop {
            clock.advance(step);
            d.run_once().expect("run");
            rounds += 1;
            if rounds == 3 {
                pay(&c, s3);
            }
            let outbox = c.events_after(None, 10_000).expect("events");
            let log = d.log(good.id).expect("log");
            if rounds > 3
                && log.len() == outbox.len()
                && log.iter().all(|x| x.status == DeliveryStatus::Delivered)
            {
                break;
            }
            assert!(
                rounds < 2_000,
                "not delivered after {rounds} rounds: {log:?}"
            );
        }

        // Every event delivered to the good endpoint, once, in order per session.
        let outbox = c.events_after(None, 10_000).expect("events");
        let log = d.log(good.id).expect("log");
        assert_eq!(
            log.iter().map(|x| (x.seq, x.event_id)).collect::<Vec<_>>(),
            outbox
                .iter()
                .map(|e| (e.seq, e.event.id))
                .collect::<Vec<_>>(),
            "one delivery per event, none lost"
        );
        for x in &log {
            let statuses: Vec<Option<u16>> = x.attempts.iter().map(|a| a.status).collect();
            assert_eq!(
                statuses,
                [Some(500), None, Some(503), Some(200)],
                "the whole attempt log of {} survived the restart",
                x.seq
            );
        }
        let requests = receiver.log.lock().expect("log").clone();
        let to_good: Vec<&Request> = requests.iter().filter(|r| r.url == GOOD_URL).collect();
        for r in &to_good {
            assert_eq!(
                r.webhook_id,
                r.event.id.to_string(),
                "webhook-id is the event id"
            );
        }
        let mut by_event: BTreeMap<String, Vec<&Request>> = BTreeMap::new();
        for r in &to_good {
            by_event.entry(r.webhook_id.clone()).or_default().push(r);
        }
        assert_eq!(by_event.len(), outbox.len());
        for e in &outbox {
            let tries = &by_event[&e.event.id.to_string()];
            assert_eq!(tries.len(), FAILURES + 1, "{}", e.event.id);
            assert_eq!(
                tries.iter().map(|r| &r.event).collect::<Vec<_>>(),
                vec![&e.event; FAILURES + 1],
                "the same event on every attempt"
            );
        }
        assert!(
            by_event.values().any(|tries| tries
                .iter()
                .map(|r| r.phase)
                .collect::<BTreeSet<_>>()
                .len()
                == 2),
            "some event was retried across the restart with the same webhook-id"
        );
        // In order per session: no attempt of an event before the earlier events of its
        // session were delivered.
        let mut delivered: BTreeSet<EventId> = BTreeSet::new();
        for r in &to_good {
            if let Some(session) = r.event.session_id {
                for earlier in outbox
                    .iter()
                    .take_while(|e| e.event.id != r.event.id)
                    .filter(|e| e.event.session_id == Some(session))
                {
                    assert!(
                        delivered.contains(&earlier.event.id),
                        "{} attempted before {} of the same session was delivered",
                        r.event.id,
                        earlier.event.id
                    );
                }
            }
            if r.outcome == SendOutcome::Status(200) {
                assert!(
                    delivered.insert(r.event.id),
                    "delivered twice: {}",
                    r.event.id
                );
            }
        }
        for s in [s1, s2, s3] {
            let order: Vec<EventId> = to_good
                .iter()
                .filter(|r| r.outcome == SendOutcome::Status(200) && r.event.session_id == Some(s))
                .map(|r| r.event.id)
                .collect();
            let want: Vec<EventId> = store
                .session_events(s)
                .expect("timeline")
                .into_iter()
                .map(|e| e.event.id)
                .collect();
            assert!(want.len() >= 2, "fixture: several events for {s}");
            assert_eq!(order, want, "delivery order of {s}");
        }

        // The 410 endpoint: one request ever, its delivery failed, the rest never sent.
        let to_gone: Vec<&Request> = requests.iter().filter(|r| r.url == GONE_URL).collect();
        assert_eq!(to_gone.len(), 1);
        assert_eq!(to_gone[0].phase, 1);
        let gone_log = d.log(gone.id).expect("log");
        assert_eq!(gone_log[0].status, DeliveryStatus::Failed);
        assert_eq!(gone_log[0].attempts.len(), 1);
        assert!(gone_log[1..].iter().all(|x| x.attempts.is_empty()));
        let gone_now = store
            .endpoints()
            .expect("endpoints")
            .into_iter()
            .find(|e| e.id == gone.id)
            .expect("gone");
        assert!(gone_now.disabled_at.is_some());
        println!(
            "{} events, {} requests, {rounds} rounds after the restart",
            outbox.len(),
            requests.len()
        );
    }
}

// ---- address indexes ---------------------------------------------------------------------

/// Set in a worker's environment: the database file.
const WORKER_DB: &str = "BITCOIN_CHECKOUT_TEST_ADDRESS_WORKER_DB";
/// The descriptor the processes reserve indexes of.
const DESCRIPTOR: &str = "wpkh([d34db33f/84'/1'/0']tpubD6NzVbkrYhZ4X/0/*)";
const WORKER_THREADS: usize = 2;
const PER_THREAD: usize = 150;

#[test]
fn reserved_indexes_survive_reopening_the_file() {
    let dir = TempDir::new("index-reopen");
    let path = dir.file("index.db");
    let store = open(&path);
    let first: Vec<u32> = (0..5)
        .map(|_| store.reserve(DESCRIPTOR).expect("reserve"))
        .collect();
    assert_eq!(first, [0, 1, 2, 3, 4]);
    assert_eq!(store.reserve("other").expect("reserve"), 0);
    // A second connection to the file continues the same counter.
    let second = open(&path);
    assert_eq!(second.reserve(DESCRIPTOR).expect("reserve"), 5);
    assert_eq!(store.reserve(DESCRIPTOR).expect("reserve"), 6);
    store.close().expect("close");
    second.close().expect("close");
    drop((store, second));

    let again = open(&path);
    assert_eq!(again.reserve(DESCRIPTOR).expect("reserve"), 7);
    assert_eq!(again.reserve("other").expect("reserve"), 1);
}

/// Not a test of its own: the body of a worker process (does nothing unless run as one).
#[test]
fn address_index_worker() {
    let Ok(db) = std::env::var(WORKER_DB) else {
        return;
    };
    let path = PathBuf::from(db);
    let indexes: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKER_THREADS)
            .map(|_| {
                let path = &path;
                scope.spawn(move || {
                    let store = open(path);
                    (0..PER_THREAD)
                        .map(|_| store.reserve(DESCRIPTOR).expect("reserve"))
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    });
    let list: Vec<String> = indexes.iter().map(u32::to_string).collect();
    println!("worker-indexes: {}", list.join(","));
}

#[test]
fn reserved_indexes_are_unique_across_processes() {
    if std::env::var_os(WORKER_DB).is_some() {
        return;
    }
    const PROCESSES: usize = 2;
    let dir = TempDir::new("index-processes");
    let path = dir.file("index.db");
    let parent = open(&path);
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "sqlite_links_delivery::address_index_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_DB, &path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a worker")
        })
        .collect();
    // The parent reserves too, while the workers run.
    let mut all: Vec<u32> = (0..PER_THREAD)
        .map(|_| parent.reserve(DESCRIPTOR).expect("reserve"))
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("worker output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker {i} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split("worker-indexes: ").nth(1))
            .unwrap_or_else(|| panic!("worker {i} did not run the worker test:\n{stdout}"));
        let got: Vec<u32> = line
            .split(',')
            .map(|n| n.trim().parse().expect("an index"))
            .collect();
        assert_eq!(got.len(), WORKER_THREADS * PER_THREAD, "worker {i}");
        all.extend(got);
    }
    let total = PER_THREAD * (1 + PROCESSES * WORKER_THREADS);
    let distinct: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an index was handed out twice");
    let total = u32::try_from(total).expect("small");
    assert_eq!(distinct, (0..total).collect::<BTreeSet<u32>>());
    assert_eq!(parent.reserve(DESCRIPTOR).expect("reserve"), total);
}
