//! What a flood of dust payments costs a session's load: a session that received 10,000
//! dust transfers (the default cap keeps 20, the rest are held apart) against one paid in
//! 10 transfers, and against a flood without a cap (2,000 transfers kept), on the
//! memory store and on a SQLite file. Loads of the three run interleaved in rounds, so
//! the ratios compare one moment of the machine; the target of the operations issue is
//! the flooded session within 2x of the 10-transfer one.
//!
//! `cargo bench --bench flood --features sqlite`; `FLOOD_TRANSFERS=2000` for a quicker run.

// A benchmark harness: a setup that fails stops the run, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::session::SessionLimits;
use bitcoin_checkout::store::{MemoryStore, SqliteStore, Store};
use bitcoin_checkout::*;
use rust_decimal::Decimal;

const TARGET: f64 = 2.0;

fn flood_size() -> u32 {
    std::env::var("FLOOD_TRANSFERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

type Shop<S> = Checkout<S, FixedRates, TestRequestGenerator>;

fn shop<S: Store>(store: S) -> Shop<S> {
    let usd = Currency::from_code("USD").unwrap();
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::new(store, rates, TestRequestGenerator)
}

/// A session receiving `n` transfers of `sats` each on chain, under `limits`.
fn paid_in<S: Store>(shop: &Shop<S>, n: u32, sats: u64, limits: SessionLimits) -> SessionId {
    let usd = Currency::from_code("USD").unwrap();
    let params = SessionParams::new(Decimal::from(1_000_000), usd)
        .payment_methods([PaymentMethod::Onchain])
        .confirmations(ConfirmationPolicy::from_confirmations(0).unwrap())
        .limits(limits);
    let s = shop.create(params, None).unwrap();
    let address = s.onchain_address().unwrap().to_owned();
    for i in 0..n {
        let mut txid = [0u8; 32];
        txid[..16].copy_from_slice(&s.id().as_uuid().as_u128().to_be_bytes());
        txid[16..20].copy_from_slice(&i.to_be_bytes());
        let report = TransferReport::onchain(
            OutPoint::new(Txid::from_byte_array(txid), 0),
            address.clone(),
            Sats::new(sats),
        );
        shop.record_transfer(report).unwrap();
    }
    s.id()
}

/// Median time of one load of each session, measured in interleaved rounds.
fn medians<S: Store>(store: &S, ids: &[SessionId]) -> Vec<Duration> {
    let rounds = 31;
    let per_round = 50;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ids.len()];
    for _ in 0..rounds {
        for (i, id) in ids.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..per_round {
                black_box(store.load(*id).unwrap());
            }
            times[i].push(start.elapsed() / per_round);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect()
}

fn run<S: Store>(name: &str, store: S) {
    let n = flood_size();
    let shop = shop(store);
    let uncapped = SessionLimits::new()
        .max_quotes(u32::MAX)
        .max_transfers(u32::MAX);
    let ten = paid_in(&shop, 10, 1_000, SessionLimits::default());
    let flooded = paid_in(&shop, n, 546, SessionLimits::default());
    // Without a cap every report rewrites a session ever larger (quadratic to build), so
    // the comparison stops at 2,000.
    let unbounded_n = n.min(2_000);
    let unbounded = paid_in(&shop, unbounded_n, 546, uncapped);
    let kept = shop.store().load(flooded).unwrap().unwrap();
    assert_eq!(
        u64::from(n),
        kept.transfers().count() as u64 + kept.held_transfers().count,
        "every dust transfer recorded"
    );
    let m = medians(shop.store(), &[ten, flooded, unbounded]);
    let ratio = m[1].as_secs_f64() / m[0].as_secs_f64();
    let without = m[2].as_secs_f64() / m[0].as_secs_f64();
    println!(
        "{name:<8} load: 10 transfers {:>9.1} µs | {n} dust, capped {:>9.1} µs ({ratio:.2}x, target <= {TARGET}x: {}) | {unbounded_n} dust, no cap {:>10.1} µs ({without:.1}x)",
        m[0].as_secs_f64() * 1e6,
        m[1].as_secs_f64() * 1e6,
        if ratio <= TARGET { "met" } else { "MISSED" },
        m[2].as_secs_f64() * 1e6,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("flood: benchmark");
        return;
    }
    run("memory", MemoryStore::new());
    let dir = std::env::temp_dir().join(format!("flood-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    run("sqlite", SqliteStore::open(dir.join("flood.db")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
