//! Three application servers (OS processes running this test binary again as workers) on
//! one store, each with a runner doing the sweep and the webhook dispatcher under leases:
//! one server at a time does each job, and when the holder of the sweep is killed
//! (SIGKILL) another takes over once its lease runs out. Checked on one SQLite file and on
//! one PostgreSQL schema: every quote that ran out is expired (once), every event reaches
//! the shop's webhook receiver over loopback HTTP, repeats stay within what at-least-once
//! delivery allows around the kill, and the servers left never collide (no conflicts).
#![cfg(feature = "runner")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use bitcoin_checkout::clock::{ManualClock, SystemClock};
use bitcoin_checkout::http::HttpSender;
use bitcoin_checkout::lease::Leases;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::runner::RunnerBuilder;
use bitcoin_checkout::store::{ResumeStore, SqliteStore, Store};
use bitcoin_checkout::webhook::{
    DEFAULT_PER_ENDPOINT, DeliveryStore, Dispatcher, Endpoint, WebhookSecret,
};
use bitcoin_checkout::{
    Checkout, Currency, Decimal, Duration, EventType, OffsetDateTime, PaymentStatus, SessionId,
    SessionParams, TargetCurrency,
};

/// A worker's store: `sqlite:<path>` or `postgres:<schema>`.
const WORKER_STORE: &str = "BITCOIN_CHECKOUT_TEST_SERVER_STORE";
/// A worker's holder name.
const WORKER_NAME: &str = "BITCOIN_CHECKOUT_TEST_SERVER_NAME";
/// A file whose appearance tells the workers to stop.
const WORKER_STOP: &str = "BITCOIN_CHECKOUT_TEST_SERVER_STOP";

const SERVERS: usize = 3;
const SESSIONS_PER_BATCH: usize = 8;
/// Short, so the test sees a takeover quickly; far above a pass here.
const LEASE_SECS: i64 = 2;
const WAIT: StdDuration = StdDuration::from_secs(90);

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

fn rates() -> FixedRates {
    FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000))
}

/// Not a test of its own: the body of a worker process (does nothing unless run as one).
#[test]
fn many_servers_worker() {
    let Ok(target) = std::env::var(WORKER_STORE) else {
        return;
    };
    let name = std::env::var(WORKER_NAME).unwrap();
    let stop = PathBuf::from(std::env::var(WORKER_STOP).unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        match target.split_once(':') {
            Some(("sqlite", path)) => {
                serve(Arc::new(SqliteStore::open(path).unwrap()), &name, &stop).await;
            }
            #[cfg(feature = "postgres")]
            Some(("postgres", schema)) => {
                let store = bitcoin_checkout::store::PostgresStore::connect_in_schema(
                    &crate::common::pg_url(),
                    schema,
                    2,
                )
                .unwrap();
                serve(Arc::new(store), &name, &stop).await;
            }
            _ => panic!("unknown worker store {target}"),
        }
    });
}

/// One server: the sweep and the dispatcher under leases, until the stop file appears;
/// then its counters on stdout.
async fn serve<S>(store: Arc<S>, name: &str, stop: &Path)
where
    S: Store + DeliveryStore + ResumeStore + 'static,
{
    let checkout = Arc::new(Checkout::new(
        Arc::clone(&store),
        rates(),
        TestRequestGenerator,
    ));
    let dispatcher = Dispatcher::new(
        Arc::clone(&store),
        HttpSender::new(StdDuration::from_secs(2)),
        SystemClock,
    )
    .with_metrics(Arc::clone(checkout.metrics()));
    let leases =
        Leases::new(Arc::clone(&store), name, SystemClock).with_ttl(Duration::seconds(LEASE_SECS));
    let runner = RunnerBuilder::new()
        .leases(leases)
        .sweep(Arc::clone(&checkout), StdDuration::from_millis(100), 100)
        .dispatcher(dispatcher, StdDuration::from_millis(100))
        .start();
    println!("READY {name}");
    while !stop.exists() {
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    runner.stop().await;
    let m = checkout.metrics().snapshot();
    println!(
        "METRICS {name} commits={} conflicts={} delivered={}",
        m.commits, m.conflicts, m.deliveries_delivered
    );
}

/// The shop's webhook receiver: answers 200 to every request and keeps each
/// `webhook-id` it was sent, in order.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut id = None;
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("webhook-id:") {
                        id = Some(line[line.len() - v.len()..].trim().to_owned());
                    }
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                if let Some(id) = id {
                    kept.lock().unwrap().push(id);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            });
        }
    });
    (url, seen)
}

fn spawn_worker(store: &str, name: &str, stop: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "many_servers::many_servers_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_STORE, store)
        .env(WORKER_NAME, name)
        .env(WORKER_STOP, stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `done` holds, or fails with `what`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(StdDuration::from_millis(100));
    }
}

/// Sessions whose first quote ran out five minutes ago: due for the sweep at once.
fn create_due<S: Store>(store: &Arc<S>, n: usize) -> Vec<SessionId> {
    let past = OffsetDateTime::now_utc() - Duration::minutes(10);
    let c = Checkout::new(Arc::clone(store), rates(), TestRequestGenerator)
        .with_clock(Arc::new(ManualClock::new(past)));
    (0..n)
        .map(|_| {
            let params = SessionParams::new(Decimal::from(5), usd()).ttl_secs(300);
            c.create(params, None).unwrap().id()
        })
        .collect()
}

fn all_expired<S: Store>(store: &S, ids: &[SessionId]) -> bool {
    ids.iter().all(|id| {
        store
            .load(*id)
            .unwrap()
            .is_some_and(|s| s.payments()[0].status() == PaymentStatus::Expired)
    })
}

fn event_ids<S: Store>(store: &S) -> BTreeSet<String> {
    store
        .events_after(None, 100_000)
        .unwrap()
        .iter()
        .map(|e| e.event.id.to_string())
        .collect()
}

fn delivered(seen: &Mutex<Vec<String>>) -> BTreeSet<String> {
    seen.lock().unwrap().iter().cloned().collect()
}

/// The whole scenario on `store`, whose workers open it as `target`.
fn three_servers_share_the_work<S>(store: Arc<S>, target: &str, dir: &Path)
where
    S: Store + DeliveryStore + ResumeStore + 'static,
{
    let (url, seen) = receiver();
    let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let since = OffsetDateTime::now_utc() - Duration::hours(1);
    store
        .save_endpoint(&Endpoint::new(url, secret, since).unwrap())
        .unwrap();
    let stop = dir.join("stop");
    let first = create_due(&store, SESSIONS_PER_BATCH);
    let mut workers: BTreeMap<String, Child> = (0..SERVERS)
        .map(|i| {
            let name = format!("server-{i}");
            let child = spawn_worker(target, &name, &stop);
            (name, child)
        })
        .collect();

    wait_until("the first sessions expired and delivered", || {
        all_expired(&*store, &first) && delivered(&seen).is_superset(&event_ids(&*store))
    });
    let leases = Leases::new(Arc::clone(&store), "the-test", SystemClock);
    let holder = leases
        .holder_of("sweep")
        .unwrap()
        .expect("someone sweeps")
        .holder;
    let mut killed = workers.remove(&holder).unwrap();
    killed.kill().unwrap();
    let _ = killed.wait();

    // Work that only the servers left can do.
    let second = create_due(&store, SESSIONS_PER_BATCH);
    wait_until("the second sessions expired and delivered", || {
        all_expired(&*store, &second) && delivered(&seen).is_superset(&event_ids(&*store))
    });
    let successor = leases
        .holder_of("sweep")
        .unwrap()
        .expect("someone sweeps")
        .holder;
    assert_ne!(
        successor, holder,
        "the killed server's sweep was taken over"
    );

    std::fs::write(&stop, b"stop").unwrap();
    let mut conflicts = 0;
    for (name, child) in workers {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("METRICS {name} ")))
            .unwrap_or_else(|| panic!("{name} printed no metrics:\n{stdout}"));
        conflicts += line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("conflicts="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap();
    }
    assert_eq!(
        conflicts, 0,
        "the servers left never worked on the same thing at once"
    );

    // Every quote that ran out expired exactly once.
    for id in first.iter().chain(&second) {
        let expired = store
            .session_events(*id)
            .unwrap()
            .iter()
            .filter(|e| e.event.event_type == EventType::PaymentExpired)
            .count();
        assert_eq!(expired, 1, "{id}: payment.expired events");
    }
    // Every event was delivered; repeats only where at-least-once allows them: what the
    // killed server sent and had not yet recorded.
    let all = seen.lock().unwrap().clone();
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), event_ids(&*store).len());
    assert!(
        all.len() - distinct.len() <= DEFAULT_PER_ENDPOINT,
        "{} repeated deliveries",
        all.len() - distinct.len()
    );
}

#[test]
fn three_servers_on_one_sqlite_file_share_the_work_and_survive_a_kill() {
    let dir = std::env::temp_dir().join(format!("many-servers-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shop.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    three_servers_share_the_work(store, &format!("sqlite:{}", path.display()), &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
#[test]
fn three_servers_on_one_postgres_schema_share_the_work_and_survive_a_kill() {
    let dir = std::env::temp_dir().join(format!("many-servers-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = format!("many_servers_{}", std::process::id());
    let store = Arc::new(
        bitcoin_checkout::store::PostgresStore::connect_in_schema(
            &crate::common::pg_url(),
            &schema,
            2,
        )
        .unwrap(),
    );
    three_servers_share_the_work(store, &format!("postgres:{schema}"), &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
