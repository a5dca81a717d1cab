//! The sans-I/O core against plain collections doing the same bookkeeping.

use std::collections::HashMap;
use std::hint::black_box;

use bitcoin_checkout::*;
use criterion::{BatchSize, Criterion, criterion_group};
use rust_decimal::Decimal;
use time::Duration;

#[path = "report.rs"]
mod report;

#[path = "../tests/support/quoted_session.rs"]
mod fixture;
use fixture::{onchain, quoted_session as session, t0};

/// Sessions (or baseline maps) set up per timed batch.
const BATCH: u64 = 32;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    let now = t0() + Duration::seconds(10);
    g.bench_function("record_transfer", |b| {
        // `_ref`: the session stays in criterion's input buffer, so the timing is the
        // command alone, not moving a session value into an output buffer and back.
        // A fixed batch of sessions, small enough to stay in cache as a session does when
        // the service has just read it from its store: with criterion's `SmallInput` the
        // batch grows with the iteration count (thousands of sessions set up long before
        // they are used), so what was measured depended on the machine's speed.
        b.iter_batched_ref(
            session,
            |s| {
                let report = onchain(7, 1_000);
                s.record_transfer(report, now)
            },
            BatchSize::NumIterations(BATCH),
        )
    });
    // The baseline keeps the same records in plain collections, in batches of the same
    // size: the transfer (the crate's own `Transfer`) in a HashMap keyed by its id, its
    // events in a Vec, with the same duplicate check; no rules, no accounting.
    let payment = session().payments()[0].id();
    g.bench_function("record_transfer_baseline", |b| {
        b.iter_batched_ref(
            || {
                (
                    HashMap::<TransferKey, Transfer>::new(),
                    Vec::<SessionEvent>::new(),
                )
            },
            |(map, log)| {
                let report = onchain(7, 1_000);
                if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(report.key()) {
                    slot.insert(Transfer {
                        key: report.key(),
                        payment_id: payment,
                        amount: report.amount(),
                        arrival: Arrival::Expected,
                        confirmations: 0,
                        rbf: false,
                        reversed: false,
                        first_seen: now,
                        counted_at: Some(now),
                    });
                    for t in [
                        EventType::TransferReceived,
                        EventType::PaymentPaid,
                        EventType::CheckoutSessionPaymentPaid,
                    ] {
                        log.push(SessionEvent {
                            event_type: t,
                            at: now,
                            payment_id: Some(payment),
                            transfer: Some(report.key()),
                            amount: Some(report.amount()),
                        });
                    }
                }
                black_box(log.len())
            },
            BatchSize::NumIterations(BATCH),
        )
    });
    g.bench_function("create_session", |b| b.iter(|| black_box(session())));
    g.bench_function("create_session_baseline", |b| {
        b.iter(|| {
            let mut fields: HashMap<&'static str, String> = HashMap::with_capacity(16);
            fields.insert("id", SessionId::generate().to_string());
            fields.insert("amount", Decimal::new(2500, 2).to_string());
            fields.insert("currency", "USD".into());
            fields.insert("payment", PaymentId::generate().to_string());
            fields.insert(
                "target",
                (Decimal::new(2500, 2) * Decimal::from(1_000))
                    .ceil()
                    .to_string(),
            );
            fields.insert("invoice", "lnbc1".into());
            fields.insert("address", fixture::ADDRESS.into());
            let log = vec![
                (EventType::CheckoutSessionCreated, t0()),
                (EventType::PaymentCreated, t0()),
            ];
            black_box((fields, log))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report::print_ratios(&[
        ("core/record_transfer", "core/record_transfer_baseline", 3.0),
        ("core/create_session", "core/create_session_baseline", 3.0),
    ]);
}
