//! Delivery isolation over real HTTP on loopback: an endpoint that never answers and one
//! that does, both fed by one dispatcher with the crate's `HttpSender`. The healthy one
//! receives everything in the first pass; the dead one costs only its own lane, trips its
//! circuit breaker and is left alone until the circuit's time is up.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration as StdDuration;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::http::HttpSender;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{MemoryStore, Store};
use bitcoin_checkout::webhook::{
    BreakerSchedule, DeliveryStatus, DeliveryStore, Dispatcher, Endpoint, WebhookSecret,
};
use bitcoin_checkout::{
    Checkout, Currency, Decimal, Duration, EventType, OffsetDateTime, SessionParams, TargetCurrency,
};

/// A listener that accepts connections and never answers (a hung receiver).
fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    url
}

/// A receiver answering 200 to every request, keeping the `webhook-id` of each.
fn healthy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = Arc::clone(&got);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let keep = Arc::clone(&keep);
            std::thread::spawn(move || serve(conn, &keep));
        }
    });
    (url, got)
}

/// Two receivers that answer their first request only once both have one (within 2 s;
/// 500 otherwise), then 200: both are answered 200 only if they are sent to at once.
fn rendezvous_pair() -> [(String, Arc<Mutex<Vec<String>>>); 2] {
    let gate = Arc::new((Mutex::new(0u32), Condvar::new()));
    [0, 1].map(|_| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let (keep, gate) = (Arc::clone(&got), Arc::clone(&gate));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (keep, gate) = (Arc::clone(&keep), Arc::clone(&gate));
                std::thread::spawn(move || {
                    serve_with(conn, &keep, || {
                        if keep.lock().unwrap().len() > 1 {
                            return true;
                        }
                        let (arrived, both) = &*gate;
                        let mut n = arrived.lock().unwrap();
                        *n += 1;
                        both.notify_all();
                        let (n, _) = both
                            .wait_timeout_while(n, StdDuration::from_secs(2), |n| *n < 2)
                            .unwrap();
                        *n >= 2
                    })
                });
            }
        });
        (url, got)
    })
}

/// Answers the requests of one keep-alive connection.
fn serve(conn: TcpStream, got: &Mutex<Vec<String>>) {
    serve_with(conn, got, || true);
}

/// Answers the requests of one keep-alive connection: 200 when `ok()` says so, else 500.
fn serve_with(conn: TcpStream, got: &Mutex<Vec<String>>, ok: impl Fn() -> bool) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let (mut length, mut id) = (0usize, String::new());
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "webhook-id" => id = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        got.lock().unwrap().push(id);
        let answer: &[u8] = if ok() {
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
        };
        writer.write_all(answer).unwrap();
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

type Service = Checkout<Arc<MemoryStore>, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

/// A memory store with a service and a manual clock at `t0`.
struct World {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    checkout: Service,
    usd: Currency,
}

fn world() -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(t0()));
    let usd = Currency::from_code("USD").unwrap();
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let checkout = Checkout::new(Arc::clone(&store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(&clock));
    World {
        store,
        clock,
        checkout,
        usd,
    }
}

#[test]
fn a_dead_endpoint_never_delays_a_healthy_one() {
    let World {
        store,
        clock,
        checkout,
        usd,
    } = world();
    let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let dead = Endpoint::new(black_hole(), secret.clone(), t0())
        .unwrap()
        .only([EventType::CheckoutSessionCreated]);
    let (url, got) = healthy();
    let alive = Endpoint::new(url, secret, t0())
        .unwrap()
        .only([EventType::CheckoutSessionCreated]);
    // Every attempt to the dead one waits the sender's whole timeout.
    let sender = HttpSender::new(StdDuration::from_millis(300));
    let dispatcher = Dispatcher::new(Arc::clone(&store), sender, Arc::clone(&clock));
    dispatcher.add_endpoint(&dead).unwrap();
    dispatcher.add_endpoint(&alive).unwrap();
    const SESSIONS: usize = 30;
    for _ in 0..SESSIONS {
        checkout
            .create(SessionParams::new(Decimal::ONE, usd), None)
            .unwrap();
    }
    let created: HashSet<String> = store
        .events_after(None, 10_000)
        .unwrap()
        .iter()
        .filter(|e| e.event.event_type == EventType::CheckoutSessionCreated)
        .map(|e| e.event.id.to_string())
        .collect();
    assert_eq!(created.len(), SESSIONS);

    // One pass: the healthy endpoint gets every event; the dead one is tried until its
    // circuit opens (5 timeouts, the default), each delivery of it left pending.
    let report = dispatcher.run_once().unwrap();
    let received: HashSet<String> = got.lock().unwrap().iter().cloned().collect();
    assert_eq!(
        received, created,
        "the healthy endpoint got every event at once"
    );
    assert_eq!(report.delivered, SESSIONS);
    assert_eq!(
        report.retried,
        BreakerSchedule::default().trip_after as usize
    );
    let stored = |id| {
        store
            .endpoints()
            .unwrap()
            .into_iter()
            .find(|e: &Endpoint| e.id == id)
            .unwrap()
    };
    let dead_now = stored(dead.id);
    assert!(dead_now.health.is_open(t0()));
    assert_eq!(dead_now.health.consecutive_failures, 5);
    assert_eq!(stored(alive.id).health, Default::default());
    let log = dispatcher.log(dead.id).unwrap();
    assert_eq!(log.len(), SESSIONS);
    assert!(log.iter().all(|d| d.status == DeliveryStatus::Pending));
    assert_eq!(log.iter().filter(|d| !d.attempts.is_empty()).count(), 5);

    // While the circuit is open, passes leave the dead endpoint alone.
    clock.advance(Duration::seconds(30));
    let report = dispatcher.run_once().unwrap();
    assert_eq!((report.delivered, report.retried), (0, 0));

    // Its time up, one probe; it fails, and the circuit opens for twice as long.
    clock.advance(Duration::seconds(31));
    let report = dispatcher.run_once().unwrap();
    assert_eq!(report.retried, 1);
    let dead_now = stored(dead.id);
    assert_eq!(
        dead_now.health.open_until,
        Some(clock_now(&clock) + Duration::minutes(2))
    );
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    use bitcoin_checkout::clock::Clock as _;
    clock.now()
}

#[test]
fn an_endpoint_failing_for_days_is_disabled() {
    let World {
        store,
        clock,
        checkout,
        usd,
    } = world();
    // A port nobody listens on: every attempt is refused at once.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let ep = Endpoint::new(closed, secret, t0()).unwrap();
    let dispatcher = Dispatcher::new(
        Arc::clone(&store),
        HttpSender::new(StdDuration::from_secs(2)),
        Arc::clone(&clock),
    );
    dispatcher.add_endpoint(&ep).unwrap();
    let mut disabled_at = None;
    for hour in 0..24 * 6 {
        // A new session every few hours keeps deliveries due.
        if hour % 6 == 0 {
            checkout
                .create(SessionParams::new(Decimal::ONE, usd), None)
                .unwrap();
        }
        let report = dispatcher.run_once().unwrap();
        if report.disabled.contains(&ep.id) {
            disabled_at = Some(hour);
            break;
        }
        clock.advance(Duration::hours(1));
    }
    let hour = disabled_at.expect("disabled within six days");
    assert!(
        (24 * 5..24 * 6).contains(&hour),
        "disabled after {hour} hours"
    );
    let stored = store
        .endpoints()
        .unwrap()
        .into_iter()
        .find(|e| e.id == ep.id)
        .unwrap();
    assert!(!stored.is_active());
    assert!(
        dispatcher
            .log(ep.id)
            .unwrap()
            .iter()
            .all(|d| d.status != DeliveryStatus::Pending),
        "its pending deliveries are given up"
    );
    let newest = store.events_before(None, 1).unwrap();
    let event = &newest[0].event;
    assert_eq!(event.event_type, EventType::WebhookEndpointDisabled);
    assert!(event.object.get().contains(&ep.id.to_string()));
}

#[test]
fn endpoints_are_sent_to_at_once() {
    let World {
        store,
        clock,
        checkout,
        usd,
    } = world();
    let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let [(a, got_a), (b, got_b)] = rendezvous_pair();
    let dispatcher = Dispatcher::new(
        Arc::clone(&store),
        HttpSender::new(StdDuration::from_secs(5)),
        Arc::clone(&clock),
    );
    for url in [a, b] {
        let ep = Endpoint::new(url, secret.clone(), t0())
            .unwrap()
            .only([EventType::CheckoutSessionCreated]);
        dispatcher.add_endpoint(&ep).unwrap();
    }
    for _ in 0..3 {
        checkout
            .create(SessionParams::new(Decimal::ONE, usd), None)
            .unwrap();
    }
    // Sent one endpoint after the other, the first request would wait out the other
    // receiver's gate and be answered 500.
    let report = dispatcher.run_once().unwrap();
    assert_eq!(
        (report.delivered, report.retried, report.failed),
        (6, 0, 0),
        "{report:?}"
    );
    assert_eq!(got_a.lock().unwrap().len(), 3);
    assert_eq!(got_b.lock().unwrap().len(), 3);
}
