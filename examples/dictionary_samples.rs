//! Writes sample rows for training the SQLite store's packing dictionaries (ADR 25, format
//! 2 of `store::sqlite::packed`): the row head and payment bodies of a few hundred
//! sessions in the shapes a shop makes (three currencies, each method alone and both,
//! with and without the optional texts and metadata; unpaid, partly paid, paid and
//! deactivated), with real BOLT11 invoices and bech32 addresses.
//!
//! `scripts/train-dictionaries` runs it and trains the dictionaries with `zstd --train`.
//! A released dictionary never changes (rows packed with it must read back), so this only
//! matters when a better one gets a new format byte.
//!
//! `cargo run --release --example dictionary_samples --features sqlite,lightning,onchain -- <dir>`

// A tool: a setup that fails stops it, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bitcoin_checkout::metadata::{Metadata, MetadataValue};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::store::{MemoryStore, rows::session_rows};
use bitcoin_checkout::*;
use rust_decimal::Decimal;

#[path = "../benches/support/real_requests.rs"]
mod real_requests;

const SESSIONS: usize = 400;

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: dictionary_samples <output directory>");
    std::fs::create_dir_all(&out).unwrap();
    let mut rates = FixedRates::new();
    for (code, rate) in [("USD", 1_000), ("EUR", 1_100), ("GBP", 1_300)] {
        let currency = Currency::from_code(code).unwrap();
        rates = rates.with(currency, TargetCurrency::Sats, Decimal::from(rate));
    }
    let checkout = Checkout::new(MemoryStore::new(), rates, real_requests::real_requests());
    for i in 0..SESSIONS {
        let session = checkout.create(params(i), None).unwrap();
        let id = session.id();
        // Every fifth stays unpaid; the others are paid in part (a third), in full, or in
        // full and then deactivated (a no-op on a paid session, refused and ignored).
        if i % 5 != 0
            && let Some(quote) = session.open_payment()
            && let Some(invoice) = &quote.request().lightning
        {
            let due = quote.target_msats().get();
            let amount = if i % 5 == 1 { due / 3 } else { due };
            checkout
                .record_transfer(TransferReport::lightning(
                    invoice.payment_hash,
                    Msats::new(amount),
                ))
                .unwrap();
        }
        if i % 5 == 4 {
            let _refused_when_paid = checkout.deactivate(id);
        }
        let rows = session_rows(&checkout.get(id).unwrap()).unwrap();
        std::fs::write(format!("{out}/head-{i}.json"), &rows.session.head).unwrap();
        for (j, payment) in rows.payments.iter().enumerate() {
            std::fs::write(format!("{out}/payment-{i}-{j}.json"), &payment.body).unwrap();
        }
    }
}

/// The `i`th session's parameters.
fn params(i: usize) -> SessionParams {
    let currency = Currency::from_code(["USD", "USD", "EUR", "GBP"][i % 4]).unwrap();
    let methods = match i % 3 {
        0 => vec![PaymentMethod::Lightning, PaymentMethod::Onchain],
        1 => vec![PaymentMethod::Lightning],
        _ => vec![PaymentMethod::Onchain],
    };
    let cents = 500 + (i as i64 * 137) % 20_000;
    let mut p = SessionParams::new(Decimal::new(cents, 2), currency).payment_methods(methods);
    if i.is_multiple_of(2) {
        p = p
            .description(format!("Satoshi's Coffee, order {i}"))
            .success_url(format!("https://shop.example.com/thanks?order={i}"))
            .cancel_url("https://shop.example.com/cart");
    }
    if i.is_multiple_of(7) {
        let metadata = Metadata::from_pairs([
            ("order_id", MetadataValue::from(format!("{}", 1000 + i))),
            ("customer", MetadataValue::from(format!("c{}", i * 31))),
        ])
        .unwrap();
        p = p
            .metadata(metadata)
            .source("woocommerce", format!("wc_{i}"));
    }
    p
}
