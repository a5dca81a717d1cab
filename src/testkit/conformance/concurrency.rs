//! Checks under concurrency and through the service: racing commits and the service's
//! whole lifecycle on the store.

use std::collections::BTreeSet;
use std::sync::Barrier;

use time::{Duration, OffsetDateTime};

use super::fixtures::{Ck, Draft, dollars, events_of, fresh_txid, paid_events, rates, t0, usd};
use crate::chain::OutPoint;
use crate::clock::ManualClock;
use crate::id::SessionId;
use crate::money::{Msats, Sats};
use crate::request::TestRequestGenerator;
use crate::service::{Checkout, ServiceError};
use crate::session::{SessionParams, SessionStatus};
use crate::store::{Store, StoreError};
use crate::transfer::{TransferKey, TransferReport};

/// Threads racing to commit from the same version: at most one wins each round (the others
/// get `Conflict`, or a retryable error), the winner's change alone is stored, and of
/// several sessions inserted with one idempotency key exactly one is created.
pub fn check_racing_commits<S: Store>(store: &S) {
    let ck = Ck::new("check_racing_commits", store);
    const THREADS: usize = 4;
    const ROUNDS: u32 = 8;
    let t = t0();
    let mut d = Draft::new(SessionParams::new(dollars(100_000), usd()), t);
    let mut timeline = ck.commit(&mut d);
    let mut winners = BTreeSet::new();
    for round in 0..ROUNDS {
        let now = t + Duration::seconds(i64::from(round) + 1);
        let candidates: Vec<Draft> = (0..THREADS)
            .map(|i| {
                let mut c = d.clone();
                let vout = u32::try_from(i).unwrap_or(0);
                c.record(
                    TransferReport::onchain(
                        OutPoint::new(fresh_txid(), vout),
                        c.address(),
                        Sats::new(1_000),
                    )
                    .confirmations(1),
                    now,
                );
                c
            })
            .collect();
        let results = race(store, &candidates);
        let won: Vec<usize> = (0..THREADS).filter(|i| results[*i].is_ok()).collect();
        ck.that(
            won.len() <= 1,
            format!(
                "round {round}: {} commits from one version succeeded",
                won.len()
            ),
        );
        for r in &results {
            ck.that(
                r.as_ref()
                    .err()
                    .is_none_or(|e| *e == StoreError::Conflict || e.is_retryable()),
                format!("round {round}: a losing commit failed with {r:?}"),
            );
        }
        match won.first() {
            Some(&w) => {
                d = candidates[w].clone();
                winners.extend(d.change.transfers().iter().copied());
                timeline.extend(d.committed());
            }
            None => ck.that(
                results
                    .iter()
                    .any(|r| !matches!(r, Err(StoreError::Conflict))),
                format!("round {round}: every commit got Conflict, yet none won"),
            ),
        }
        ck.loads_as(&format!("round {round}: the session"), &d);
    }
    let stored: BTreeSet<TransferKey> = d.session.transfers().map(|t| t.key).collect();
    ck.eq("the winners' transfers", stored, winners);
    let got = ck.ok("session_events", store.session_events(d.id()));
    ck.eq("the winners' events", events_of(&got), timeline);
}

/// Commits every candidate from its own thread, all released at once.
fn race<S: Store>(store: &S, candidates: &[Draft]) -> Vec<Result<(), StoreError>> {
    let barrier = Barrier::new(candidates.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = candidates
            .iter()
            .map(|c| {
                let commit = c.to_commit();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    store.commit(&commit)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StoreError::Backend {
                        message: "the committing thread panicked".into(),
                        retryable: false,
                    })
                })
            })
            .collect()
    })
}

/// The service's whole lifecycle on the store: create with an idempotency key, replay
/// it, refuse it with other parameters; a partial Lightning payment, a quote that runs out
/// and is replaced, a partial on-chain payment and a final Lightning payment make the
/// session paid; reporting a transfer again adds no event; exactly one
/// `checkout_session.paid` event.
pub fn check_service_lifecycle<S: Store>(store: &S) {
    let ck = Ck::new("check_service_lifecycle", store);
    let clock = ManualClock::new(t0() + Duration::milliseconds(250));
    let checkout = Checkout::new(store, rates(), TestRequestGenerator).with_clock(&clock);
    let cursor = ck.last_seq();
    let key = format!("order-{}", SessionId::generate());
    let params = SessionParams::new(dollars(2500), usd()).description("lifecycle");

    let s = ck.svc("create", checkout.create(params.clone(), Some(&key)));
    let id = s.id();
    ck.eq(
        "first quote",
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(25_000)),
    );
    ck.eq("load after create", ck.load(id), Some(s.clone()));
    let record = ck.ok("idempotency", store.idempotency(&key));
    ck.eq(
        "idempotency record",
        record.map(|r| (r.session_id, r.created)),
        Some((id, clock_now(&clock))),
    );
    clock.advance(Duration::seconds(5));
    let again = ck.svc("replayed create", checkout.create(params, Some(&key)));
    ck.eq("replayed create", again, s.clone());
    let other = checkout.create(SessionParams::new(dollars(2600), usd()), Some(&key));
    ck.eq(
        "create with a used key and other parameters",
        other.err(),
        Some(ServiceError::IdempotencyConflict),
    );

    // A partial Lightning payment: a new quote for the rest.
    clock.advance(Duration::seconds(5));
    let q1 = s.open_payment().map(|p| p.id()).expect("first quote");
    let ln1 = TransferReport::lightning(
        TestRequestGenerator::payment_hash(q1),
        Msats::new(10_000_000),
    );
    let s = ck.svc(
        "partial Lightning payment",
        checkout.record_transfer(ln1.clone()),
    );
    ck.eq(
        "status after a partial payment",
        s.status(),
        SessionStatus::Active,
    );
    ck.eq(
        "quote for the rest",
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(15_000)),
    );

    // That quote runs out; a refresh replaces it.
    clock.advance(Duration::minutes(11));
    ck.eq(
        "refresh after expiry",
        ck.svc("refresh", checkout.refresh(id)),
        true,
    );
    let s = ck.svc("get", checkout.get(id));
    ck.eq("quotes after the refresh", s.payments().len(), 3);

    // A partial on-chain payment, confirmed.
    clock.advance(Duration::seconds(5));
    let txid = fresh_txid();
    let chain = TransferReport::onchain(
        OutPoint::new(txid, 1),
        TestRequestGenerator::address(id),
        Sats::new(5_000),
    )
    .confirmations(1);
    let s = ck.svc(
        "partial on-chain payment",
        checkout.record_transfer(chain.clone()),
    );
    ck.eq(
        "status after two partial payments",
        s.status(),
        SessionStatus::Active,
    );
    ck.eq(
        "quote for the rest, again",
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(10_000)),
    );

    // The final Lightning payment.
    clock.advance(Duration::seconds(5));
    let last = s.open_payment().map(|p| p.id()).expect("an open quote");
    let ln2 = TransferReport::lightning(
        TestRequestGenerator::payment_hash(last),
        Msats::new(10_000_000),
    );
    let s = ck.svc("final payment", checkout.record_transfer(ln2.clone()));
    ck.eq(
        "status after the final payment",
        s.status(),
        SessionStatus::Paid,
    );
    ck.eq("load after the final payment", ck.load(id), Some(s.clone()));
    let timeline = ck.ok("session_events", store.session_events(id));

    // Reports again: nothing new.
    clock.advance(Duration::seconds(5));
    for report in [ln2, chain, ln1] {
        let key = report.key();
        let again = ck.svc("duplicate report", checkout.record_transfer(report));
        ck.eq("session after a duplicate report", again, s.clone());
        ck.eq(
            "find_by_transfer",
            ck.ok("find_by_transfer", store.find_by_transfer(&key)),
            Some(id),
        );
    }
    let after = ck.ok("session_events", store.session_events(id));
    ck.eq(
        "events after duplicate reports",
        after.len(),
        timeline.len(),
    );
    ck.eq("paid events in the timeline", paid_events(&after, id), 1);
    ck.eq(
        "paid events in the outbox",
        paid_events(&ck.events_since(cursor), id),
        1,
    );
    let types: Vec<String> = after
        .iter()
        .map(|e| e.event.event_type.as_str().to_owned())
        .collect();
    ck.eq(
        "the first and last events",
        (types.first().cloned(), types.last().cloned()),
        (
            Some("checkout_session.created".to_owned()),
            Some("checkout_session.paid".to_owned()),
        ),
    );
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    crate::clock::Clock::now(clock)
}
