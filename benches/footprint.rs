//! Bytes per session in a SQLite file: 10,000 sessions left unpaid in one file, 10,000 paid
//! in full (create with its first quote, one Lightning payment) in another, with real
//! BOLT11 invoices and bech32 addresses, the way a shop's sessions look. Prints the file
//! size per session and what each table holds per session, against the targets of the
//! performance issue (an unpaid session at most 2 KB, a paid one at most 4 KB).
//!
//! `cargo bench --bench footprint --features sqlite,lightning,onchain`;
//! `FOOTPRINT_SESSIONS=1000` for a quicker run (the figures are per session either way),
//! `FOOTPRINT_KEEP=1` to keep the files.

// A benchmark harness: a setup that fails stops the run, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::service::DynCheckout;
use bitcoin_checkout::store::SqliteStore;
use bitcoin_checkout::*;
use rust_decimal::Decimal;

#[path = "support/real_requests.rs"]
mod real_requests;

/// Targets, bytes of file per session.
const UNPAID_TARGET: f64 = 2048.0;
const PAID_TARGET: f64 = 4096.0;

fn sessions() -> usize {
    std::env::var("FOOTPRINT_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn checkout(path: &Path, real: bool) -> DynCheckout<SqliteStore> {
    let usd = Currency::from_code("USD").unwrap();
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let store = SqliteStore::open(path).unwrap();
    if real {
        Checkout::boxed(store, rates, real_requests::real_requests())
    } else {
        Checkout::boxed(store, rates, TestRequestGenerator)
    }
}

/// A shop's session: $25.00 for a bag of coffee, both methods, its own order number.
fn params(i: usize) -> SessionParams {
    SessionParams::new(Decimal::new(2500, 2), Currency::from_code("USD").unwrap())
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
        .description(format!("Satoshi's Coffee, order {i}"))
        .success_url(format!("https://shop.example.com/thanks?order={i}"))
        .cancel_url("https://shop.example.com/cart")
}

/// Fills a new file with `n` sessions, each paid in full if `pay`, with real requests or
/// the test generator's short ones.
fn fill(path: &Path, n: usize, pay: bool, real: bool) {
    let c = checkout(path, real);
    for i in 0..n {
        let session = c.create(params(i), None).unwrap();
        if pay {
            let quote = session.open_payment().unwrap();
            let hash = if real {
                quote.request().lightning.as_ref().unwrap().payment_hash
            } else {
                TestRequestGenerator::payment_hash(quote.id())
            };
            let paid = c
                .record_transfer(TransferReport::lightning(hash, quote.target_msats()))
                .unwrap();
            assert_eq!(paid.status(), SessionStatus::Paid);
        }
    }
}

/// The file's size once its write-ahead log is folded in, and the bytes per session each
/// table's row columns hold (JSON text, or packed JSON where the store packs it).
fn measure(path: &Path, n: usize) -> (f64, Vec<(String, f64)>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let size = std::fs::metadata(path).unwrap().len() as f64 / n as f64;
    let columns = [
        ("sessions", "length(head) + coalesce(length(metadata), 0)"),
        ("payments", "length(body)"),
        ("transfers", "length(body)"),
        ("events", "length(body)"),
    ];
    let mut tables = Vec::new();
    for (table, expr) in columns {
        let bytes: i64 = conn
            .query_row(
                &format!("SELECT coalesce(sum({expr}), 0) FROM {table}"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        tables.push((table.to_owned(), bytes as f64 / n as f64));
    }
    // The older event objects the sessions moved past (ADR 22), kept as deltas by the
    // events of the commits that moved past them (ADR 33) or apart.
    let kept: i64 = conn
        .query_row(
            "SELECT (SELECT coalesce(sum(length(body)), 0) FROM session_objects)
                  + (SELECT coalesce(sum(length(older_body)), 0) FROM events)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    tables.push(("older objects".to_owned(), kept as f64 / n as f64));
    (size, tables)
}

fn dir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bitcoin-checkout-footprint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names nothing here skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"footprint".contains(&a))
    {
        return;
    }
    let n = sessions();
    let dir = dir();
    println!("\nbytes per session in a SQLite file of {n} sessions (on disk, WAL folded in)");
    println!("(`/test`: the test generator's short requests, as the checkout_page example uses)");
    println!(
        "{:<12} {:>10} {:>10}   per table (body columns)",
        "sessions", "file", "target"
    );
    let mut ok = true;
    let runs = [
        ("unpaid", false, UNPAID_TARGET, true),
        ("paid", true, PAID_TARGET, true),
        ("unpaid/test", false, UNPAID_TARGET, false),
        ("paid/test", true, PAID_TARGET, false),
    ];
    for (name, pay, target, real) in runs {
        let path = dir.join(format!("{}.sqlite3", name.replace('/', "-")));
        fill(&path, n, pay, real);
        let (size, tables) = measure(&path, n);
        let verdict = if size <= target { "ok" } else { "MISSED" };
        ok &= size <= target;
        let detail: Vec<String> = tables.iter().map(|(t, b)| format!("{t} {b:.0}")).collect();
        println!(
            "{name:<12} {size:>8.0} B {target:>8.0} B {verdict}   {}",
            detail.join(", ")
        );
    }
    if std::env::var_os("FOOTPRINT_KEEP").is_some() {
        println!("files kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !ok {
        println!("(a target was missed)");
    }
}
