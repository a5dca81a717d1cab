//! The webhook delivery suite (feature `webhooks`): `run_delivery` for a [`DeliveryStore`]
//! and its checks.

use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use super::fixtures::{Ck, dollars, t0, usd};
use super::{Check, run_checks};
use crate::clock::ManualClock;
use crate::event::EventType;
use crate::id::{EndpointId, EventId, SessionId};
use crate::outbox::Event;
use crate::request::TestRequestGenerator;
use crate::service::Checkout;
use crate::session::SessionParams;
use crate::store::Store;
use crate::transfer::TransferReport;
use crate::webhook::{
    Attempt, Delivery, DeliveryStatus, DeliveryStore, Dispatcher, Endpoint, SendOutcome,
    WebhookSecret, WebhookSender,
};

/// Every delivery check, by name.
fn delivery_checks<S: Store + DeliveryStore>() -> Vec<(&'static str, Check<S>)> {
    crate::__delivery_checks!(list(S))
}

/// The webhook delivery-store checks: the one list behind [`run_delivery`] and
/// [`delivery_store_tests!`](crate::delivery_store_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __delivery_checks {
    ($expand:ident $arg:tt) => {
        $crate::__conformance! { $expand $arg;
            check_endpoint_round_trip,
            check_disable_endpoint,
            check_delivery_cursor,
            check_schedule_keeps_existing,
            check_pending_order_and_limit,
            check_save_and_get_delivery,
            check_deliveries_log,
            check_dispatcher_resumes,
        }
    };
}

/// One `#[test]` per webhook delivery-store check (feature `webhooks`), each on a fresh
/// store from the expression.
///
/// ```
/// mod my_delivery_store {
///     bitcoin_checkout::delivery_store_tests!(bitcoin_checkout::store::MemoryStore::new());
/// }
/// ```
#[macro_export]
macro_rules! delivery_store_tests {
    ($fresh:expr) => {
        $crate::__delivery_checks!(tests($fresh));
    };
}

/// Runs every webhook delivery check (the contract of [`DeliveryStore`]), each on a
/// fresh store from `fresh`, then all of them on one more fresh store. Panics on the
/// first violation, naming the check.
pub fn run_delivery<S: Store + DeliveryStore>(fresh: impl FnMut() -> S) {
    run_checks(&delivery_checks::<S>(), fresh);
}

fn secret(n: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(&[n; 32]).expect("fixture secret")
}

/// A pending delivery of a made-up event.
fn pending(endpoint: EndpointId, seq: u64, now: OffsetDateTime) -> Delivery {
    Delivery {
        endpoint,
        seq,
        event_id: EventId::generate(),
        session_id: Some(SessionId::generate()),
        status: DeliveryStatus::Pending,
        next_attempt_at: Some(now),
        attempts: Vec::new(),
    }
}

/// `d` after a final attempt with `status`.
fn settled(mut d: Delivery, status: DeliveryStatus, at: OffsetDateTime) -> Delivery {
    d.attempts.push(Attempt {
        at,
        status: Some(if status == DeliveryStatus::Delivered {
            204
        } else {
            410
        }),
        error: None,
    });
    d.status = status;
    d.next_attempt_at = None;
    d
}

impl<S: Store + DeliveryStore> Ck<'_, S> {
    #[track_caller]
    fn endpoint(&self, id: EndpointId) -> Vec<Endpoint> {
        let all = self.ok("endpoints", self.store.endpoints());
        all.into_iter().filter(|e| e.id == id).collect()
    }

    #[track_caller]
    fn cursor(&self, id: EndpointId) -> u64 {
        self.ok("cursor", self.store.cursor(id))
    }

    #[track_caller]
    fn schedule(&self, id: EndpointId, cursor: u64, deliveries: &[Delivery]) {
        self.ok("schedule", self.store.schedule(id, cursor, deliveries));
    }

    #[track_caller]
    fn delivery(&self, id: EndpointId, seq: u64) -> Option<Delivery> {
        self.ok("delivery", self.store.delivery(id, seq))
    }

    #[track_caller]
    fn log(&self, id: EndpointId) -> Vec<Delivery> {
        self.ok("deliveries", self.store.deliveries(id))
    }
}

/// An endpoint saved is read back whole, signing secret included; saving it again
/// replaces it (one endpoint per id).
pub fn check_endpoint_round_trip<S: Store + DeliveryStore>(store: &S) {
    let ck = Ck::new("check_endpoint_round_trip", store);
    let t = t0() + Duration::milliseconds(321);
    let one = Endpoint::new("https://merchant.example/hooks?shop=1&x=é", secret(7), t)
        .expect("fixture endpoint")
        .only([
            EventType::CheckoutSessionPaid,
            EventType::Unknown("vendor.custom".into()),
        ]);
    let two = Endpoint::new("http://localhost:8080/hooks", secret(9), t).expect("endpoint");
    for e in [&one, &two] {
        ck.ok("save_endpoint", store.save_endpoint(e));
    }
    for e in [&one, &two] {
        let got = ck.endpoint(e.id);
        ck.eq("endpoints with the id", got.len(), 1);
        ck.eq(
            "the stored endpoint",
            got[0].to_stored_json(),
            e.to_stored_json(),
        );
        ck.eq(
            "the stored secret",
            got[0].secret.to_whsec_string(),
            e.secret.to_whsec_string(),
        );
        ck.eq("the stored created time", got[0].created, e.created);
    }
    // Replaced: a new URL and secret, then disabled (which also keeps later checks'
    // dispatchers away from it).
    let mut changed = one.clone();
    changed.url = "https://merchant.example/v2/hooks".into();
    changed.secret = secret(8);
    changed.disabled_at = Some(t + Duration::seconds(1));
    ck.ok("save_endpoint (replace)", store.save_endpoint(&changed));
    let got = ck.endpoint(one.id);
    ck.eq("endpoints with the id after a replace", got.len(), 1);
    ck.eq(
        "the replaced endpoint",
        got[0].to_stored_json(),
        changed.to_stored_json(),
    );
    ck.that(!got[0].is_active(), "the replaced endpoint is disabled");
    let mut two = two;
    two.disabled_at = Some(t + Duration::seconds(1));
    ck.ok("save_endpoint (disable)", store.save_endpoint(&two));
}

/// `disable_endpoint` saves the endpoint and appends its sessionless event in one write:
/// both are read back, the event exactly as given, by id and as the newest event.
pub fn check_disable_endpoint<S: Store + DeliveryStore>(store: &S) {
    let ck = Ck::new("check_disable_endpoint", store);
    let t = t0() + Duration::milliseconds(654);
    let mut ep = Endpoint::new("https://dead.example/hooks", secret(5), t).expect("endpoint");
    ck.ok("save_endpoint", store.save_endpoint(&ep));
    ep.disabled_at = Some(t + Duration::days(5));
    let event = Event {
        id: EventId::from_uuid(uuid::Uuid::from_u128(
            0x0190_0000_0000_7000_8000_0000_0000_0d15,
        )),
        event_type: EventType::WebhookEndpointDisabled,
        session_id: None,
        livemode: false,
        created: t + Duration::days(5),
        object: crate::outbox::raw_or_null(ep.to_api_json()),
    };
    ck.ok("disable_endpoint", store.disable_endpoint(&ep, &event));
    let got = ck.endpoint(ep.id);
    ck.eq("endpoints with the id", got.len(), 1);
    ck.that(!got[0].is_active(), "the endpoint is disabled");
    ck.eq(
        "the stored endpoint",
        got[0].to_stored_json(),
        ep.to_stored_json(),
    );
    let by_id = ck.ok("event", store.event(event.id));
    ck.eq(
        "the disabled event by id",
        by_id.map(|e| e.event.to_json()),
        Some(event.to_json()),
    );
    let newest = ck.ok("events_before", store.events_before(None, 1));
    ck.eq(
        "the newest event",
        newest.first().map(|e| e.event.id),
        Some(event.id),
    );
    ck.that(
        !ep.to_api_json().contains(&ep.secret.to_wsec_string()),
        "the event's object holds no secret",
    );
}

/// A cursor starts at 0, follows `schedule` forward and never moves back; each
/// endpoint has its own.
pub fn check_delivery_cursor<S: Store + DeliveryStore>(store: &S) {
    let ck = Ck::new("check_delivery_cursor", store);
    let t = t0();
    let (ep, other) = (EndpointId::generate(), EndpointId::generate());
    ck.eq("the cursor of a new endpoint", ck.cursor(ep), 0);
    ck.schedule(ep, 5, &[]);
    ck.eq("the cursor after schedule(5)", ck.cursor(ep), 5);
    ck.schedule(ep, 3, &[]);
    ck.eq("the cursor after schedule(3)", ck.cursor(ep), 5);
    ck.schedule(ep, 5, &[]);
    ck.eq("the cursor after schedule(5) again", ck.cursor(ep), 5);
    let d10 = pending(ep, 10, t);
    ck.schedule(ep, 12, std::slice::from_ref(&d10));
    ck.eq("the cursor after schedule(12)", ck.cursor(ep), 12);
    // Deliveries scheduled with a lower cursor are stored; the cursor stays.
    let d11 = pending(ep, 11, t);
    ck.schedule(ep, 7, std::slice::from_ref(&d11));
    ck.eq("the cursor after schedule(7)", ck.cursor(ep), 12);
    ck.eq("the deliveries", ck.log(ep), vec![d10, d11]);
    ck.eq("another endpoint's cursor", ck.cursor(other), 0);
    ck.schedule(other, 2, &[]);
    ck.eq("another endpoint's cursor moved", ck.cursor(other), 2);
    ck.eq("the first endpoint's cursor", ck.cursor(ep), 12);
}

/// Scheduling again keeps the deliveries already stored (with their attempts) and adds
/// the new ones.
pub fn check_schedule_keeps_existing<S: Store + DeliveryStore>(store: &S) {
    let ck = Ck::new("check_schedule_keeps_existing", store);
    let t = t0() + Duration::milliseconds(1);
    let ep = EndpointId::generate();
    let (d1, d2, d3) = (pending(ep, 1, t), pending(ep, 2, t), pending(ep, 3, t));
    ck.schedule(ep, 3, &[d1.clone(), d2.clone(), d3.clone()]);
    let mut d2_tried = d2.clone();
    d2_tried.attempts.push(Attempt {
        at: t + Duration::seconds(1),
        status: Some(500),
        error: None,
    });
    d2_tried.next_attempt_at = Some(t + Duration::seconds(6));
    let d3_done = settled(
        d3.clone(),
        DeliveryStatus::Delivered,
        t + Duration::seconds(1),
    );
    ck.ok("save_delivery", store.save_delivery(&d2_tried));
    ck.ok("save_delivery", store.save_delivery(&d3_done));
    let d4 = pending(ep, 4, t);
    ck.schedule(ep, 4, &[pending(ep, 2, t), d3.clone(), d4.clone()]);
    ck.eq(
        "the log after scheduling again",
        ck.log(ep),
        vec![d1, d2_tried, d3_done, d4],
    );
    ck.eq("the cursor", ck.cursor(ep), 4);
}

/// `pending`: only pending deliveries, ordered by (endpoint, seq) across endpoints,
/// at most `limit`: a shorter limit gives a prefix of a longer one.
pub fn check_pending_order_and_limit<S: Store + DeliveryStore>(store: &S) {
    let ck = Ck::new("check_pending_order_and_limit", store);
    let t = t0() + Duration::milliseconds(2);
    let (a, b) = (EndpointId::generate(), EndpointId::generate());
    // Scheduled out of order: b first, seqs shuffled.
    let b_all = [pending(b, 9, t), pending(b, 3, t), pending(b, 5, t)];
    ck.schedule(b, 9, &b_all);
    let a_all = [pending(a, 8, t), pending(a, 1, t), pending(a, 4, t)];
    ck.schedule(a, 8, &a_all);
    ck.ok(
        "save_delivery",
        store.save_delivery(&settled(b_all[2].clone(), DeliveryStatus::Failed, t)),
    );
    ck.ok(
        "save_delivery",
        store.save_delivery(&settled(a_all[0].clone(), DeliveryStatus::Delivered, t)),
    );
    let all = ck.ok("pending", store.pending(usize::MAX));
    ck.that(
        all.iter().all(|d| d.status == DeliveryStatus::Pending),
        "pending returns only pending deliveries",
    );
    ck.that(
        all.windows(2)
            .all(|w| (w[0].endpoint, w[0].seq) < (w[1].endpoint, w[1].seq)),
        "pending is ordered by (endpoint, seq)",
    );
    let mut want = vec![
        a_all[1].clone(),
        a_all[2].clone(),
        b_all[1].clone(),
        b_all[0].clone(),
    ];
    if b < a {
        want.rotate_left(2);
    }
    let mine: Vec<Delivery> = all
        .iter()
        .filter(|d| d.endpoint == a || d.endpoint == b)
        .cloned()
        .collect();
    ck.eq("the pending deliveries of the check", mine, want);
    for limit in [0, 1, 2, 3, 5] {
        let page = ck.ok("pending", store.pending(limit));
        ck.eq(
            &format!("pending({limit})"),
            page,
            all.iter().take(limit).cloned().collect::<Vec<_>>(),
        );
    }
}

/// `save_delivery` inserts or replaces one delivery, read back exactly by `delivery`
/// (its attempts with statuses and errors, its next attempt time).
pub fn check_save_and_get_delivery<S: Store + DeliveryStore>(store: &S) {
    let ck = Ck::new("check_save_and_get_delivery", store);
    let t = t0() + Duration::milliseconds(3);
    let ep = EndpointId::generate();
    ck.eq("an unknown delivery", ck.delivery(ep, 1), None);
    ck.eq("an unknown seq", ck.delivery(ep, u64::MAX), None);
    let mut d = pending(ep, 7, t);
    d.session_id = None;
    ck.ok("save_delivery (insert)", store.save_delivery(&d));
    ck.eq("a delivery saved", ck.delivery(ep, 7), Some(d.clone()));
    d.attempts.push(Attempt {
        at: t + Duration::milliseconds(1_001),
        status: Some(503),
        error: None,
    });
    d.attempts.push(Attempt {
        at: t + Duration::milliseconds(6_789),
        status: None,
        error: Some("connection refused — ☕ \"x\"".into()),
    });
    d.next_attempt_at = Some(t + Duration::milliseconds(306_789));
    ck.ok("save_delivery (retry)", store.save_delivery(&d));
    ck.eq("a delivery retried", ck.delivery(ep, 7), Some(d.clone()));
    let done = settled(d, DeliveryStatus::Delivered, t + Duration::seconds(400));
    ck.ok("save_delivery (delivered)", store.save_delivery(&done));
    ck.eq(
        "a delivery delivered",
        ck.delivery(ep, 7),
        Some(done.clone()),
    );
    ck.eq("the log", ck.log(ep), vec![done]);
    let pending_now = ck.ok("pending", store.pending(usize::MAX));
    ck.that(
        pending_now.iter().all(|d| d.endpoint != ep),
        "a delivered delivery is not pending",
    );
}

/// `deliveries`: an endpoint's whole log by seq, whatever the statuses; none of
/// another endpoint's.
pub fn check_deliveries_log<S: Store + DeliveryStore>(store: &S) {
    let ck = Ck::new("check_deliveries_log", store);
    let t = t0() + Duration::milliseconds(4);
    let (a, b) = (EndpointId::generate(), EndpointId::generate());
    ck.eq("the log of an unknown endpoint", ck.log(a), vec![]);
    let a3 = pending(a, 3, t);
    let a1 = settled(pending(a, 1, t), DeliveryStatus::Delivered, t);
    let a2 = settled(pending(a, 2, t), DeliveryStatus::Failed, t);
    let b2 = pending(b, 2, t);
    ck.schedule(a, 3, std::slice::from_ref(&a3));
    ck.schedule(b, 2, std::slice::from_ref(&b2));
    ck.ok("save_delivery", store.save_delivery(&a2));
    ck.ok("save_delivery", store.save_delivery(&a1));
    ck.eq("the log of a", ck.log(a), vec![a1, a2, a3]);
    ck.eq("the log of b", ck.log(b), vec![b2]);
}

/// Answers 500 to the first attempt of each event, then 200; records every request.
#[derive(Default)]
struct FlakySender {
    seen: Mutex<Vec<(String, String, u16)>>,
}

impl WebhookSender for FlakySender {
    fn send(&self, url: &str, headers: &[(&'static str, String)], _body: &str) -> SendOutcome {
        let id = headers
            .iter()
            .find(|(name, _)| *name == crate::webhook::HEADER_ID)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let status = if seen.iter().any(|(u, i, _)| u == url && *i == id) {
            200
        } else {
            500
        };
        seen.push((url.to_owned(), id, status));
        SendOutcome::Status(status)
    }
}

/// A dispatcher stopped with deliveries being retried, and a new one over the same
/// store, deliver each event once: scheduled once, retried with the same `webhook-id`,
/// nothing lost or repeated.
pub fn check_dispatcher_resumes<S: Store + DeliveryStore>(store: &S) {
    let ck = Ck::new("check_dispatcher_resumes", store);
    // Later than every other check's events: the endpoint gets only this check's.
    let start = t0() + Duration::days(3_650) + Duration::milliseconds(9);
    let clock = ManualClock::new(start);
    let sender = FlakySender::default();
    let url = format!("https://resume.example/{}", EndpointId::generate());
    let ep = Endpoint::new(url.clone(), secret(3), start).expect("endpoint");
    let cursor = ck.last_seq();
    let checkout =
        Checkout::new(store, super::fixtures::rates(), TestRequestGenerator).with_clock(&clock);
    let first = Dispatcher::new(store, &sender, &clock);
    ck.svc("add_endpoint", first.add_endpoint(&ep));
    let s = ck.svc(
        "create",
        checkout.create(SessionParams::new(dollars(100), usd()), None),
    );
    let report = ck.svc("run_once", first.run_once());
    ck.that(report.scheduled >= 1, "the dispatcher scheduled the events");
    drop(first);
    let hash = TestRequestGenerator::payment_hash(s.payments()[0].id());
    ck.svc(
        "pay",
        checkout.record_transfer(TransferReport::lightning(
            hash,
            s.payments()[0].target_msats(),
        )),
    );
    let second = Dispatcher::new(store, &sender, &clock);
    for _ in 0..30 {
        clock.advance(Duration::minutes(1));
        ck.svc("run_once", second.run_once());
    }
    let outbox: Vec<Event> = ck
        .events_since(cursor)
        .into_iter()
        .filter(|e| e.event.created >= ep.created)
        .map(|e| e.event)
        .collect();
    let log = ck.ok("deliveries", store.deliveries(ep.id));
    ck.eq(
        "the delivered events",
        log.iter().map(|d| d.event_id).collect::<Vec<_>>(),
        outbox.iter().map(|e| e.id).collect::<Vec<_>>(),
    );
    ck.that(
        log.iter()
            .all(|d| d.status == DeliveryStatus::Delivered && d.attempts.len() == 2),
        format!("every event delivered on its second attempt: {log:?}"),
    );
    let seen = sender
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for e in &outbox {
        let tries: Vec<u16> = seen
            .iter()
            .filter(|(u, id, _)| *u == url && *id == e.id.to_string())
            .map(|(_, _, status)| *status)
            .collect();
        ck.eq(&format!("the requests for {}", e.id), tries, vec![500, 200]);
    }
}
