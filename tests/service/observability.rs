//! Traces and counters: every service operation, attempt and store call in a span with its
//! session id, and the counters a metrics backend reads (commits, conflicts, retries,
//! quotes, transfers, deliveries by outcome and their lag), checked exactly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bitcoin_checkout::clock::{Clock, ManualClock};
use bitcoin_checkout::metrics::Metrics;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::webhook::{Dispatcher, Endpoint, SendOutcome, WebhookSecret, WebhookSender};
use bitcoin_checkout::*;
use time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};

use crate::common::*;

/// One span as the recorder saw it.
#[derive(Debug, Clone)]
struct Span {
    name: &'static str,
    fields: HashMap<String, String>,
    parent: Option<u64>,
}

/// The spans of one test's thread, with their fields and parents.
#[derive(Default)]
struct Recorder {
    spans: Mutex<HashMap<u64, Span>>,
    /// The entered spans of the thread under test.
    stack: Mutex<Vec<u64>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

thread_local! {
    static RECORDER: std::cell::RefCell<Option<Arc<Recorder>>> = const { std::cell::RefCell::new(None) };
}

/// The process-wide subscriber: it hands each span to the recorder of the thread that
/// made it, if that thread has one. A global subscriber, not a scoped one: `tracing`
/// caches per callsite whether anyone listens, and with scoped subscribers a test on
/// another thread meeting a callsite first can leave it switched off for everyone.
struct Router {
    next: AtomicU64,
}

fn with_recorder(f: impl FnOnce(&Recorder)) {
    RECORDER.with(|r| {
        if let Some(recorder) = r.borrow().as_ref() {
            f(recorder);
        }
    });
}

impl tracing::Subscriber for Router {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        with_recorder(|recorder| {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            let parent = match attrs.parent() {
                Some(p) => Some(p.into_u64()),
                None if attrs.is_contextual() => recorder.stack.lock().unwrap().last().copied(),
                None => None,
            };
            let span = Span {
                name: attrs.metadata().name(),
                fields,
                parent,
            };
            recorder.spans.lock().unwrap().insert(id, span);
        });
        Id::from_u64(id)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        with_recorder(|recorder| {
            if let Some(span) = recorder.spans.lock().unwrap().get_mut(&id.into_u64()) {
                values.record(&mut Fields(&mut span.fields));
            }
        });
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, id: &Id) {
        with_recorder(|recorder| recorder.stack.lock().unwrap().push(id.into_u64()));
    }
    fn exit(&self, id: &Id) {
        with_recorder(|recorder| {
            let mut stack = recorder.stack.lock().unwrap();
            if stack.last() == Some(&id.into_u64()) {
                stack.pop();
            }
        });
    }
}

/// Runs `f` with `recorder` recording this thread's spans.
fn traced<T>(recorder: &Arc<Recorder>, f: impl FnOnce() -> T) -> T {
    static ROUTER: std::sync::Once = std::sync::Once::new();
    ROUTER.call_once(|| {
        let router = Router {
            next: AtomicU64::new(0),
        };
        tracing::subscriber::set_global_default(router).unwrap();
    });
    RECORDER.with(|r| *r.borrow_mut() = Some(Arc::clone(recorder)));
    let out = f();
    RECORDER.with(|r| *r.borrow_mut() = None);
    out
}

impl Recorder {
    fn spans(&self) -> Vec<(u64, Span)> {
        let mut all: Vec<(u64, Span)> = self
            .spans
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// The `checkout` spans of an operation.
    fn operations(&self, operation: &str) -> Vec<(u64, Span)> {
        self.spans()
            .into_iter()
            .filter(|(_, s)| {
                s.name == "checkout"
                    && s.fields.get("operation").map(String::as_str) == Some(operation)
            })
            .collect()
    }

    /// The spans whose parent is `parent`.
    fn children(&self, parent: u64) -> Vec<Span> {
        self.spans()
            .into_iter()
            .filter(|(_, s)| s.parent == Some(parent))
            .map(|(_, s)| s)
            .collect()
    }
}

struct World {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    checkout: Checkout<Arc<MemoryStore>, FixedRates, TestRequestGenerator, Arc<ManualClock>>,
    metrics: Arc<Metrics>,
}

fn service(store: &Arc<MemoryStore>, clock: &Arc<ManualClock>) -> World {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let metrics = Arc::new(Metrics::new());
    let checkout = Checkout::new(Arc::clone(store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(clock))
        .with_metrics(Arc::clone(&metrics));
    World {
        store: Arc::clone(store),
        clock: Arc::clone(clock),
        checkout,
        metrics,
    }
}

fn world() -> World {
    service(
        &Arc::new(MemoryStore::new()),
        &Arc::new(ManualClock::new(t0())),
    )
}

#[test]
fn an_operation_its_attempts_and_its_store_calls_are_spans_with_the_session_id() {
    let w = world();
    let recorder = Arc::new(Recorder::default());
    let session = traced(&recorder, || {
        w.checkout
            .create(SessionParams::new(dec("2.00"), usd()), Some("order-7"))
            .unwrap()
    });
    let id = session.id().to_string();
    let creates = recorder.operations("create");
    assert_eq!(creates.len(), 1, "one create span");
    let (create, span) = &creates[0];
    assert_eq!(span.fields.get("session_id"), Some(&id));
    let attempts: Vec<Span> = recorder
        .children(*create)
        .into_iter()
        .filter(|s| s.name == "attempt")
        .collect();
    assert!(!attempts.is_empty());
    assert_eq!(attempts[0].fields.get("n").map(String::as_str), Some("0"));
    // Every store call the operation made is a `store` span inside it, with its name; the
    // commit names the session.
    let calls: Vec<(String, Option<String>)> = recorder
        .spans()
        .into_iter()
        .filter(|(_, s)| s.name == "store")
        .map(|(_, s)| {
            (
                s.fields["call"].clone(),
                s.fields.get("session_id").cloned(),
            )
        })
        .collect();
    assert!(calls.contains(&("claim_idempotency".into(), Some(id.clone()))));
    assert!(calls.contains(&("commit".into(), Some(id.clone()))));
    let commit_parent = recorder
        .spans()
        .into_iter()
        .find(|(_, s)| s.name == "store" && s.fields["call"] == "commit")
        .and_then(|(_, s)| s.parent)
        .unwrap();
    let under_create = recorder
        .spans()
        .into_iter()
        .find(|(sid, _)| *sid == commit_parent)
        .map(|(_, s)| (s.name, s.parent));
    assert_eq!(under_create, Some(("attempt", Some(*create))));
}

#[test]
fn a_conflict_is_counted_retried_and_traced_as_a_second_attempt() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(t0()));
    let a = service(&store, &clock);
    let b = service(&store, &clock);
    let s = a
        .checkout
        .create(SessionParams::new(dec("2.00"), usd()), None)
        .unwrap();
    // A's update leaves a copy in its cache; B changes the session behind it, so A's next
    // first attempt (from the cache) conflicts.
    a.checkout
        .update(s.id(), &SessionUpdate::new().description("from a, first"))
        .unwrap();
    let one = SessionUpdate::new().description("from b");
    b.checkout.update(s.id(), &one).unwrap();
    let recorder = Arc::new(Recorder::default());
    let two = SessionUpdate::new().description("from a");
    traced(&recorder, || {
        a.checkout.update(s.id(), &two).unwrap();
    });
    let m = a.metrics.snapshot();
    assert_eq!((m.commits, m.conflicts, m.retries), (3, 1, 1));
    let updates = recorder.operations("update");
    let attempts: Vec<String> = recorder
        .children(updates[0].0)
        .into_iter()
        .filter(|s| s.name == "attempt")
        .map(|s| s.fields["n"].clone())
        .collect();
    assert_eq!(attempts, ["0", "1"]);
    assert_eq!(
        updates[0].1.fields.get("session_id"),
        Some(&s.id().to_string())
    );
    assert_eq!(b.metrics.snapshot().commits, 1);
}

#[test]
fn quotes_transfers_and_sessions_are_counted_once_each() {
    let w = world();
    let s = w
        .checkout
        .create(SessionParams::new(dec("2.00"), usd()), None)
        .unwrap();
    // The quote runs out; opening the page issues the next one: a refresh.
    w.clock.advance(Duration::hours(2));
    let s = w.checkout.get(s.id()).unwrap();
    let open = s.open_payment().unwrap();
    let report = TransferReport::lightning(
        TestRequestGenerator::payment_hash(open.id()),
        open.target_msats(),
    );
    w.checkout.record_transfer(report.clone()).unwrap();
    // The same report again changes nothing and counts nothing.
    w.checkout.record_transfer(report).unwrap();
    let m = w.metrics.snapshot();
    assert_eq!(m.sessions_created, 1);
    assert_eq!(
        (m.quotes_issued, m.quote_refreshes, m.quotes_expired),
        (2, 1, 1)
    );
    assert_eq!((m.transfers_recorded, m.sessions_paid), (1, 1));
    assert_eq!(m.commits, 3, "create, expiry with the new quote, payment");
    // The repeated report found nothing to do on the cached copy and was checked once
    // more against the store: a retry without a conflict.
    assert_eq!((m.conflicts, m.retries, m.store_errors), (0, 1, 0));
    let names: Vec<&str> = m.iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"bitcoin_checkout_commits_total"));
    assert!(names.contains(&"bitcoin_checkout_delivery_lag_ms_sum"));
}

/// Answers from a script of statuses (then 200).
struct Script(Mutex<Vec<u16>>);

impl WebhookSender for Script {
    fn send(&self, _: &str, _: &[(&'static str, String)], _: &str) -> SendOutcome {
        let mut answers = self.0.lock().unwrap();
        SendOutcome::Status(if answers.is_empty() {
            200
        } else {
            answers.remove(0)
        })
    }
}

#[test]
fn deliveries_are_counted_by_outcome_with_their_lag() {
    let w = world();
    let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let d = Dispatcher::new(
        Arc::clone(&w.store),
        Script(Mutex::new(vec![500])),
        Arc::clone(&w.clock),
    )
    .with_metrics(Arc::clone(&w.metrics));
    d.add_endpoint(&Endpoint::new("https://shop.example/hooks", secret, t0()).unwrap())
        .unwrap();
    w.checkout
        .create(SessionParams::new(dec("1.00"), usd()), None)
        .unwrap();
    // Created and its quote: two events. The first attempt fails (500) and blocks the
    // session's second event until its retry, 5 s later.
    d.run_once().unwrap();
    let m = w.metrics.snapshot();
    assert_eq!((m.deliveries_delivered, m.deliveries_retried), (0, 1));
    w.clock.advance(Duration::seconds(10));
    d.run_once().unwrap();
    let m = w.metrics.snapshot();
    assert_eq!(
        (
            m.deliveries_delivered,
            m.deliveries_retried,
            m.deliveries_failed
        ),
        (2, 1, 0)
    );
    assert_eq!(m.delivery_lag_ms_max, 10_000);
    assert_eq!(m.delivery_lag_ms_sum, 20_000);
    assert_eq!(w.clock.now(), t0() + Duration::seconds(10));
    // One registry for the service and the dispatcher.
    assert_eq!(m.commits, 1);
}
