//! The whole life of a checkout session, on the embedded default.
//!
//! `cargo run --example quickstart`
//!
//! Creates a $25.00 session paid in sats over Lightning or on-chain at a fixed rate,
//! records two partial payments and a final one, and prints the session's timeline and the
//! events a webhook endpoint would receive.

use std::error::Error;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::{Checkout, Currency, Msats, PaymentMethod, SessionParams, TargetCurrency, TransferReport};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

fn main() -> Result<(), Box<dyn Error>> {
    let usd = Currency::from_code("USD")?;
    // 1,000 sats per dollar: $25.00 is 25,000 sats.
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let checkout = Checkout::new(MemoryStore::new(), rates, TestRequestGenerator).with_clock(&clock);

    let params = SessionParams::new(Decimal::new(2500, 2), usd)
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
        .description("Order #1001")
        .success_message("Thank you!");
    let session = checkout.create(params, Some("order-1001"))?;
    println!("created {} for {} {}", session.id(), session.amount(), session.currency());

    // Three Lightning payments: 10,000 + 5,000 sats, then whatever is still due.
    for sats in [10_000u64, 5_000, 0] {
        clock.advance(Duration::seconds(30));
        let current = checkout.get(session.id())?;
        let Some(quote) = current.open_payment() else { break };
        let Some(invoice) = &quote.request().lightning else { break };
        let amount = if sats == 0 { quote.target().to_msats() } else { Msats::new(sats * 1_000) };
        println!(
            "quote {}: {} due = {} sats; paying {} sats",
            quote.id(),
            quote.due(),
            quote.target().get(),
            amount.get() / 1_000
        );
        let after = checkout.record_transfer(TransferReport::lightning(invoice.payment_hash, amount))?;
        println!("  -> session {} , amount paid {}", after.status().as_str(), after.totals().amount_paid);
    }

    println!("\ntimeline of {}:", session.id());
    for stored in checkout.timeline(session.id())? {
        let e = &stored.event;
        println!("  #{:<3} {}  {}", stored.seq, e.created, e.event_type);
    }

    println!("\nlast event as a webhook would deliver it:");
    if let Some(last) = checkout.timeline(session.id())?.last() {
        println!("{}", last.event.to_json());
    }
    Ok(())
}
