//! The Lightning rail against the real LNbits server (`scripts/lnbits start`, FakeWallet):
//!
//! * a quote whose invoice LNbits makes (`POST /api/v1/payments` over loopback HTTP), next
//!   to the same quote signed by the offline signer (the crate's floor: no network call);
//! * the listener's time from a settlement (the payer's `POST` has returned: LNbits has
//!   settled it) to the transfer recorded in the store, median and p99, next to one bare
//!   listing round trip to the same server measured right after each pass (the least a
//!   pass that learns of the settlement can cost).
//!
//! The listener here polls back to back; a [runner](bitcoin_checkout::runner) adds up to
//! its polling interval on top. Needs `BITCOIN_CHECKOUT_LNBITS` and
//! `BITCOIN_CHECKOUT_LNBITS_TOKEN` (set by `eval "$(scripts/lnbits start)"`, and by
//! `scripts/bench-report`). `RAILS_SETTLEMENTS` sets how many settlements are timed (100).

// A benchmark harness: a setup that fails stops the run, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitcoin_checkout::clock::SystemClock;
use bitcoin_checkout::listener::SettlementListener;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::lightning::{Bolt11Signer, Network, OfflineInvoices, SecretKey};
use bitcoin_checkout::request::lnbits::LnbitsBackend;
use bitcoin_checkout::request::{InvoiceSource, RequestGenerator};
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::{
    Checkout, CheckoutSession, Currency, Decimal, PaymentMethod, SessionParams, SessionStatus,
    TargetCurrency,
};
use criterion::{Criterion, criterion_group};
use serde_json::Value;

#[path = "report.rs"]
mod report;

#[path = "../tests/support/lnbits_api.rs"]
mod lnbits_api;

use lnbits_api::{credit, pay, server, wallet};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn backend(inkey: &str) -> LnbitsBackend {
    // FakeWallet's invoices carry no feature field (see the LNbits tests).
    LnbitsBackend::new(&server().0, inkey, Network::Bitcoin).allow_invoices_without_features()
}

fn checkout<I: InvoiceSource>(
    invoices: I,
) -> Checkout<MemoryStore, FixedRates, RequestGenerator<I>, SystemClock> {
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    // LNbits dates invoices with its own clock: the service's tells the real time.
    Checkout::new(
        MemoryStore::new(),
        rates,
        RequestGenerator::new().lightning(invoices),
    )
    .with_clock(SystemClock)
}

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

fn create<I: InvoiceSource>(
    c: &Checkout<MemoryStore, FixedRates, RequestGenerator<I>, SystemClock>,
) -> CheckoutSession {
    let params = SessionParams::new(Decimal::new(2_500, 2), usd())
        .payment_methods([PaymentMethod::Lightning])
        .ttl_secs(600);
    c.create(params, None).unwrap()
}

fn bench(c: &mut Criterion) {
    let (_, _, inkey) = wallet("bench-quotes");
    let lnbits = checkout(backend(&inkey));
    let signer = Bolt11Signer::new(
        SecretKey::from_slice(&[0x42; 32]).unwrap(),
        Network::Bitcoin,
    );
    let mut counter = 0u64;
    let entropy = move || {
        counter += 1;
        let mut bytes = [7u8; 32];
        bytes[..8].copy_from_slice(&counter.to_le_bytes());
        bytes
    };
    let entropy = std::sync::Mutex::new(entropy);
    let offline = checkout(OfflineInvoices::new(
        signer,
        move || (entropy.lock().unwrap())(),
        |_| Ok(()),
    ));
    let mut g = c.benchmark_group("rails");
    g.bench_function("quote_lnbits", |b| b.iter(|| black_box(create(&lnbits))));
    g.bench_function("quote_offline", |b| b.iter(|| black_box(create(&offline))));
    g.finish();
}

criterion_group!(benches, bench);

/// The `q`-quantile of sorted durations (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    // A rank from a fraction: timing statistics, not money.
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

/// What the latency run measured, each sorted.
struct Latency {
    /// From a settlement to its transfer recorded by the listener.
    recorded: Vec<Duration>,
    /// From a settlement to a bare listing that shows it.
    listed: Vec<Duration>,
    /// Listener passes over the `recorded` settlements.
    passes: usize,
}

/// Times `n` settlements from paid to recorded through the listener, and, alternating with
/// them (so both meet the server in the same state: LNbits is still busy with a payment
/// just after it settles), `n` more from paid to seen by a bare listing.
fn listener_latency(n: usize) -> Latency {
    let (wallet_id, _, inkey) = wallet("bench-listener");
    let (payer_id, payer, _) = wallet("bench-payer");
    // 25,000 sats a payment, and room for fees.
    credit(&payer_id, 30_000 * 2 * n as u64);
    let shop = checkout(backend(&inkey));
    let listener = SettlementListener::new(format!("lnbits:{wallet_id}"), backend(&inkey));
    listener.poll(&shop).unwrap();
    let list_url = format!("{}/api/v1/payments/paginated", server().0);
    let agent = agent();
    let listed_now = |hash: &str| -> bool {
        let mut response = agent
            .get(&list_url)
            .query("status", "success")
            .query("sortby", "updated_at")
            .query("direction", "desc")
            .query("limit", "100")
            .header("X-Api-Key", &inkey)
            .call()
            .unwrap();
        let page: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        page["data"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["payment_hash"] == hash))
    };
    let mut run = Latency {
        recorded: Vec::with_capacity(n),
        listed: Vec::with_capacity(n),
        passes: 0,
    };
    for i in 0..2 * n {
        let session = create(&shop);
        let invoice = session
            .current_payment()
            .unwrap()
            .request()
            .lightning
            .clone()
            .unwrap();
        pay(&payer, &invoice.payment_request);
        let settled = Instant::now();
        if i % 2 == 1 {
            let hash = invoice.payment_hash.to_string();
            let mut calls = 0;
            while !listed_now(&hash) {
                calls += 1;
                assert!(calls < 50, "LNbits never listed {hash}");
            }
            run.listed.push(settled.elapsed());
        }
        let mut passes = 0;
        while shop.get(session.id()).unwrap().status() != SessionStatus::Paid {
            passes += 1;
            assert!(
                passes < 50,
                "the listener never recorded {:?}",
                session.id()
            );
            listener.poll(&shop).unwrap();
        }
        if i % 2 == 0 {
            run.recorded.push(settled.elapsed());
            run.passes += passes;
        }
    }
    run.recorded.sort();
    run.listed.sort();
    run
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report::print_comparisons(&[(
        "rails/quote_lnbits",
        "rails/quote_offline",
        report::Stat::Mean,
    )]);

    let n = std::env::var("RAILS_SETTLEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(100);
    let run = listener_latency(n);
    println!(
        "\nsettlement to recorded transfer ({n} settlements in {} listener passes, against \
         {n} others seen by a bare listing; LNbits on loopback):",
        run.passes
    );
    for (label, q) in [("median", 0.5), ("p99", 0.99)] {
        let (a, b) = (quantile(&run.recorded, q), quantile(&run.listed, q));
        println!(
            "listener/settled_to_recorded_{label:<6} {:>12} {:>12} {:>7.2}x (bare listing)",
            ms(a),
            ms(b),
            a.as_secs_f64() / b.as_secs_f64()
        );
    }
}
