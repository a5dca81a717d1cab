//! The sans-I/O core against plain collections doing the same bookkeeping.

use std::collections::HashMap;
use std::hint::black_box;

use bitcoin_checkout::request::{Hash32, LightningInvoice, PaymentRequest};
use bitcoin_checkout::*;
use criterion::{BatchSize, Criterion, criterion_group};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

#[path = "report.rs"]
mod report;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn hash(n: u32) -> Hash32 {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    Hash32::from_bytes(b)
}

/// A $25 session with one open quote at 1000 sats/USD, on-chain only (one shared address).
fn session() -> CheckoutSession {
    let usd = Currency::from_code("USD").unwrap_or(Currency::Sats);
    let params = SessionParams::new(Decimal::new(2500, 2), usd)
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
        .confirmations(ConfirmationPolicy::ZeroConf);
    let (mut s, _) = CheckoutSession::create(SessionId::generate(), params, t0())
        .unwrap_or_else(|e| panic!("{e}"));
    let rate = ExchangeRate::new(
        usd,
        TargetCurrency::Sats,
        Decimal::from(1_000),
        "fixed",
        t0(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let terms = s
        .next_quote(PaymentId::generate(), rate, t0())
        .unwrap_or_else(|e| panic!("{e}"));
    let request = PaymentRequest {
        lightning: Some(LightningInvoice {
            payment_request: "lnbc1".into(),
            payment_hash: hash(0),
            expires_at: terms.expires_at(),
        }),
        onchain_address: Some("bcrt1qbench".into()),
    };
    s.issue_quote(terms, request, t0())
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    let now = t0() + Duration::seconds(10);
    g.bench_function("record_transfer", |b| {
        b.iter_batched(
            session,
            |mut s| {
                let report =
                    TransferReport::onchain(hash(7), 0, "bcrt1qbench", Sats::new(1_000), 0);
                black_box(s.record_transfer(report, now).map(|e| e.len()).unwrap_or(0));
                s
            },
            BatchSize::SmallInput,
        )
    });
    // The baseline keeps the same records in plain collections: the transfer (the crate's
    // own `Transfer`) in a HashMap keyed by its id, its events in a Vec, with the same
    // duplicate check; no rules, no accounting.
    let payment = session().payments()[0].id();
    g.bench_function("record_transfer_baseline", |b| {
        b.iter_batched(
            || {
                (
                    HashMap::<TransferKey, Transfer>::new(),
                    Vec::<SessionEvent>::new(),
                )
            },
            |(mut map, mut log)| {
                let report =
                    TransferReport::onchain(hash(7), 0, "bcrt1qbench", Sats::new(1_000), 0);
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
                black_box((map, log))
            },
            BatchSize::SmallInput,
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
            fields.insert("address", "bcrt1qbench".into());
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
