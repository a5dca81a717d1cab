//! The webhook dispatcher over the in-memory store: retries, 410, order, filters, redelivery.
#![cfg(feature = "webhooks")]

use crate::common;

use std::sync::{Arc, Mutex};

use bitcoin_checkout::clock::{Clock, ManualClock};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{MemoryStore, Store};
use bitcoin_checkout::webhook::*;
use bitcoin_checkout::*;
use common::*;
use time::Duration;

/// One request as the endpoint saw it: url, headers, body.
type Request = (String, Vec<(&'static str, String)>, String);

/// Records every request; answers from a script of statuses (then 200).
#[derive(Default)]
struct Script {
    answers: Mutex<Vec<u16>>,
    seen: Mutex<Vec<Request>>,
}

impl Script {
    fn failing(n: usize, status: u16) -> Self {
        Self {
            answers: Mutex::new(vec![status; n]),
            seen: Mutex::default(),
        }
    }
    fn seen_ids(&self) -> Vec<String> {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .map(|(_, h, _)| h[0].1.clone())
            .collect()
    }
}

impl WebhookSender for Script {
    fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> SendOutcome {
        self.seen
            .lock()
            .expect("seen")
            .push((url.to_owned(), headers.to_vec(), body.to_owned()));
        let mut answers = self.answers.lock().expect("answers");
        if answers.is_empty() {
            SendOutcome::Status(200)
        } else {
            SendOutcome::Status(answers.remove(0))
        }
    }
}

fn secret() -> WebhookSecret {
    WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("secret")
}

type Service = Checkout<Arc<MemoryStore>, FixedRates, TestRequestGenerator, Arc<ManualClock>>;

struct World {
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    checkout: Service,
}

fn world() -> World {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(MemoryStore::new());
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
    let checkout = Checkout::new(Arc::clone(&store), rates, TestRequestGenerator)
        .with_clock(Arc::clone(&clock));
    World {
        clock,
        store,
        checkout,
    }
}

fn pay(w: &World, s: &CheckoutSession) {
    let hash = TestRequestGenerator::payment_hash(s.payments()[0].id());
    w.checkout
        .record_transfer(TransferReport::lightning(
            hash,
            s.payments()[0].target_msats(),
        ))
        .expect("paid");
}

#[test]
fn retries_until_delivered_with_a_stable_id_and_a_valid_signature() {
    let w = world();
    let sender = Arc::new(Script::failing(3, 500));
    let d = Dispatcher::new(
        Arc::clone(&w.store),
        Arc::clone(&sender),
        Arc::clone(&w.clock),
    );
    let ep = Endpoint::new("https://merchant.example/hooks", secret(), t0())
        .expect("endpoint")
        .only([EventType::CheckoutSessionPaid]);
    d.add_endpoint(&ep).expect("added");
    let s = w
        .checkout
        .create(SessionParams::new(dec("1.00"), usd()), None)
        .expect("created");
    pay(&w, &s);
    let r = d.run_once().expect("run");
    assert_eq!((r.scheduled, r.retried), (1, 1));
    // Nothing is due before the first delay (5 s ± 10 %).
    w.clock.advance(Duration::seconds(4));
    assert_eq!(d.run_once().expect("run").retried, 0);
    for step in [
        Duration::seconds(2),
        Duration::seconds(330),
        Duration::seconds(1_980),
    ] {
        w.clock.advance(step);
        d.run_once().expect("run");
    }
    let log = d.log(ep.id).expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, DeliveryStatus::Delivered);
    assert_eq!(
        log[0].attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [Some(500), Some(500), Some(500), Some(200)]
    );
    let ids = sender.seen_ids();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // The receiver's view: the last request verifies against the endpoint secret.
    let (_, headers, body) = sender
        .seen
        .lock()
        .expect("seen")
        .last()
        .cloned()
        .expect("request");
    let verifier = Verifier::new(secret());
    verifier
        .verify_raw(
            Some(&headers[0].1),
            Some(&headers[1].1),
            Some(&headers[2].1),
            body.as_bytes(),
            w.clock.now(),
        )
        .expect("verifies");
    assert_eq!(
        Event::from_json(&body).expect("event").event_type,
        EventType::CheckoutSessionPaid
    );
}

#[test]
fn gone_disables_the_endpoint_and_other_endpoints_still_receive() {
    let w = world();
    let gone = Arc::new(Script::failing(1, 410));
    let d = Dispatcher::new(
        Arc::clone(&w.store),
        Arc::clone(&gone),
        Arc::clone(&w.clock),
    );
    let ep = Endpoint::new("https://gone.example/hooks", secret(), t0()).expect("endpoint");
    d.add_endpoint(&ep).expect("added");
    w.checkout
        .create(SessionParams::new(dec("1.00"), usd()), None)
        .expect("created");
    let r = d.run_once().expect("run");
    assert_eq!(r.disabled, vec![ep.id]);
    // The disabling is itself an event, with the endpoint as the API shows it (no secret).
    let newest = w.store.events_before(None, 1).expect("events");
    let event = &newest.first().expect("an event").event;
    assert_eq!(event.event_type, EventType::WebhookEndpointDisabled);
    assert_eq!(event.session_id, None);
    let object: serde_json::Value = serde_json::from_str(event.object.get()).expect("json");
    assert_eq!(object["id"], ep.id.to_string());
    assert_eq!(object["status"], "deactivated");
    assert!(!event.object.get().contains(&ep.secret.to_wsec_string()));
    w.clock.advance(Duration::days(1));
    let r = d.run_once().expect("run");
    assert_eq!((r.delivered, r.retried), (0, 0));
    assert_eq!(gone.seen_ids().len(), 1);
}

#[test]
fn events_of_one_session_arrive_in_order_behind_a_failing_one() {
    let w = world();
    let sender = Arc::new(Script::failing(2, 503));
    let d = Dispatcher::new(
        Arc::clone(&w.store),
        Arc::clone(&sender),
        Arc::clone(&w.clock),
    );
    let ep = Endpoint::new("https://merchant.example/hooks", secret(), t0()).expect("endpoint");
    d.add_endpoint(&ep).expect("added");
    let s = w
        .checkout
        .create(SessionParams::new(dec("1.00"), usd()), None)
        .expect("created");
    pay(&w, &s);
    for _ in 0..20 {
        d.run_once().expect("run");
        w.clock.advance(Duration::minutes(40));
    }
    let log = d.log(ep.id).expect("log");
    assert!(
        log.iter().all(|d| d.status == DeliveryStatus::Delivered),
        "{log:?}"
    );
    // Delivered order = outbox order, and every event was delivered exactly once.
    let bodies: Vec<Event> = sender
        .seen
        .lock()
        .expect("seen")
        .iter()
        .filter(|(_, _, _)| true)
        .map(|(_, _, b)| Event::from_json(b).expect("event"))
        .collect();
    let mut delivered = Vec::new();
    for e in &bodies {
        if delivered.last() != Some(&e.id) {
            delivered.push(e.id);
        }
    }
    let outbox: Vec<EventId> = w
        .checkout
        .events_after(None, 100)
        .expect("events")
        .into_iter()
        .map(|e| e.event.id)
        .collect();
    assert_eq!(delivered, outbox);
}

#[test]
fn exhausted_deliveries_fail_and_can_be_redelivered_by_hand() {
    let w = world();
    let sender = Arc::new(Script::failing(10, 500));
    let schedule = RetrySchedule::default();
    assert_eq!(schedule.max_attempts(), 10);
    let span = schedule.span();
    assert!(
        span >= Duration::days(3) && span <= Duration::days(4),
        "{span}"
    );
    let d = Dispatcher::new(
        Arc::clone(&w.store),
        Arc::clone(&sender),
        Arc::clone(&w.clock),
    );
    let ep = Endpoint::new("https://merchant.example/hooks", secret(), t0())
        .expect("endpoint")
        .only([EventType::CheckoutSessionCreated]);
    d.add_endpoint(&ep).expect("added");
    w.checkout
        .create(SessionParams::new(dec("1.00"), usd()), None)
        .expect("created");
    for _ in 0..200 {
        d.run_once().expect("run");
        w.clock.advance(Duration::hours(1));
    }
    let log = d.log(ep.id).expect("log");
    assert_eq!(log[0].status, DeliveryStatus::Failed);
    assert_eq!(log[0].attempts.len(), 10);
    d.redeliver(ep.id, log[0].seq).expect("redeliver");
    d.run_once().expect("run");
    let log = d.log(ep.id).expect("log");
    assert_eq!(log[0].status, DeliveryStatus::Delivered);
    assert_eq!(log[0].attempts.len(), 11);
}

#[test]
fn delivered_events_are_pruned_and_pending_ones_kept() {
    let w = world();
    // The first three attempts fail: the first session's events stay pending a while.
    let sender = Arc::new(Script::failing(3, 503));
    let d = Dispatcher::new(
        Arc::clone(&w.store),
        Arc::clone(&sender),
        Arc::clone(&w.clock),
    )
    .prune_after_delivery(1_000);
    let ep = Endpoint::new("https://merchant.example/hooks", secret(), t0()).expect("endpoint");
    d.add_endpoint(&ep).expect("added");
    let s = w
        .checkout
        .create(SessionParams::new(dec("1.00"), usd()), None)
        .expect("created");
    pay(&w, &s);
    let all = w.store.events_after(None, 100).expect("events");
    let r = d.run_once().expect("run");
    assert_eq!(r.pruned, 0, "nothing delivered yet: nothing pruned");
    assert_eq!(d.delivered_through().expect("through"), 0);
    for _ in 0..20 {
        d.run_once().expect("run");
        w.clock.advance(Duration::minutes(40));
    }
    // Every event went out (once each after its retries), and the outbox kept only the
    // newest event (the store never prunes that one).
    let sent: std::collections::BTreeSet<String> = sender.seen_ids().into_iter().collect();
    assert_eq!(sent.len(), all.len());
    let left = w.store.events_after(None, 100).expect("events");
    assert_eq!(
        left.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [all.last().unwrap().seq]
    );
    // Events made later are delivered as before.
    w.checkout
        .create(SessionParams::new(dec("2.00"), usd()), None)
        .expect("created");
    d.run_once().expect("run");
    assert!(sender.seen_ids().len() > sent.len());
}
