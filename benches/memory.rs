//! Memory: one million active sessions in the in-memory store, against the same sessions
//! held in a plain `HashMap` (the least an application keeping them would use).
//!
//! Counts the bytes the global allocator has live; no timing is involved. The number of
//! sessions can be lowered with `MEMORY_SESSIONS` for a quick look.

// A benchmark harness: a setup that fails stops the run, loudly. The counting global
// allocator is the one unsafe code of the project: it forwards to the system allocator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::{MemoryStore, Store};
use bitcoin_checkout::*;
use rust_decimal::Decimal;
use time::OffsetDateTime;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Resident set size of this process, from `/proc/self/statm` (Linux; 0 elsewhere).
fn resident() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Bytes as MiB with one decimal, in integer arithmetic.
fn mib(bytes: usize) -> String {
    let tenths = bytes * 10 / (1 << 20);
    format!("{}.{} MiB", tenths / 10, tenths % 10)
}

const TARGET: usize = 1 << 30;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("MEMORY_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let usd = Currency::from_code("USD")?;
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    // A typical session: $25.00, Lightning and on-chain, one open quote with its invoice
    // and address, its two creation events in the outbox, every index entry.
    let params = SessionParams::new(Decimal::new(2500, 2), usd)
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain]);

    let (before, rss_before) = (live(), resident());
    let store = MemoryStore::new();
    let checkout = Checkout::new(
        &store,
        FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000)),
        TestRequestGenerator,
    )
    .with_clock(&clock)
    .with_session_cache(0);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(checkout.create(params.clone(), None)?.id());
    }
    drop(checkout);
    let ids_bytes = ids.capacity() * size_of::<SessionId>();
    let store_bytes = live() - before - ids_bytes;
    let store_rss = resident().saturating_sub(rss_before + ids_bytes);

    // The baseline: the same sessions as plain values in a HashMap, deep copies (through
    // JSON) so that nothing is shared with the store.
    let before = live();
    let mut plain = HashMap::with_capacity(0);
    for id in &ids {
        if let Some(s) = store.load(*id)? {
            plain.insert(*id, CheckoutSession::from_json(&s.to_json())?);
        }
    }
    let plain_bytes = live() - before;
    assert_eq!(plain.len(), n);

    let ok = store_bytes < TARGET && store_rss < TARGET;
    println!(
        "\n{:<44} {:>12} {:>12} {:>8} {:>8}",
        "operation", "memory", "baseline", "ratio", "target"
    );
    println!(
        "memory/active_sessions_{n:<21} {:>12} {:>12} {:>7}x {:>8} {}",
        mib(store_bytes),
        mib(plain_bytes),
        format!(
            "{}.{:02}",
            store_bytes * 100 / plain_bytes.max(1) / 100,
            store_bytes * 100 / plain_bytes.max(1) % 100
        ),
        "< 1 GiB",
        if ok { "ok" } else { "MISSED" }
    );
    println!(
        "  {} bytes per session allocated ({} resident, {} in the baseline)",
        store_bytes / n.max(1),
        mib(store_rss),
        plain_bytes / n.max(1)
    );
    Ok(())
}
