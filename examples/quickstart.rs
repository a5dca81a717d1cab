//! The whole life of a checkout session, on the embedded default (SQLite).
//!
//! `cargo run --example quickstart`
//!
//! Creates a $25.00 session paid in sats over Lightning or on-chain at a fixed rate of
//! 1,000 sats per dollar, shows its unified payment URI as a QR code, records a partial
//! payment on-chain (unconfirmed, then confirmed) and the rest over Lightning on the new
//! quote, as wallets pay (docs/payments.md), then prints the session's timeline and the
//! webhook requests (signed per Standard Webhooks) an endpoint would receive.
//!
//! The database is a file in a fresh temporary directory (printed first). Payment requests
//! come from `TestRequestGenerator`: they look like real ones but no wallet can pay them;
//! see the `payment_request` example for real BOLT11 invoices and addresses.

use std::error::Error;

use bitcoin_checkout::OutPoint;
use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::request::unified::UnifiedUri;
use bitcoin_checkout::store::SqliteStore;
use bitcoin_checkout::webhook::{SignatureHeader, WebhookSecret};
use bitcoin_checkout::{
    Checkout, Currency, PaymentMethod, SessionParams, TargetCurrency, TransferReport, qr,
};
use bitcoin_checkout::{Decimal, Duration, OffsetDateTime};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!(
        "bitcoin-checkout-quickstart-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("checkout.sqlite3");
    println!("database: {}", db.display());

    let usd = Currency::from_code("USD")?;
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    // A clock we move by hand, so the demo shows time passing without waiting.
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let checkout =
        Checkout::new(SqliteStore::open(&db)?, rates, TestRequestGenerator).with_clock(&clock);

    let params = SessionParams::new(Decimal::new(2500, 2), usd)
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
        .description("Order #1001")
        .success_message("Thank you for your order!");
    let session = checkout.create(params, Some("order-1001"))?;
    println!(
        "\ncreated {} for {} {}",
        session.id(),
        session.amount(),
        session.currency()
    );

    if let Some(quote) = session.open_payment() {
        let uri = UnifiedUri::from_request(quote.request(), quote.target_msats())?.to_uri()?;
        println!(
            "pay {} sats (quote {} expires {}):\n{uri}",
            quote.target().get(),
            quote.id(),
            quote.expires_at()
        );
        println!("{}", qr::render_terminal(&uri)?);
    }

    // As wallets pay: a Lightning invoice is paid in full or not at all (nodes refuse less
    // than its amount), an address takes any amount. So the partial payment comes on-chain:
    // 10,000 sats, seen first unconfirmed, then with its confirmation; the session quotes
    // the rest at once, and the customer pays that quote's invoice over Lightning.
    let txid = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".parse()?;
    for step in 0..3 {
        clock.advance(Duration::seconds(40));
        let current = checkout.get(session.id())?;
        let Some(quote) = current.open_payment() else {
            break;
        };
        let what = match step {
            0 => "10,000 sats on-chain, unconfirmed",
            1 => "the same output, now confirmed",
            _ => "the rest over Lightning",
        };
        let report = match step {
            0 | 1 => {
                let address = quote
                    .request()
                    .onchain_address
                    .clone()
                    .ok_or("no address")?;
                // The same output, reported again when it confirms: counted once.
                TransferReport::onchain(
                    OutPoint::new(txid, 0),
                    address,
                    bitcoin_checkout::Sats::new(10_000),
                )
                .confirmations(step)
            }
            _ => {
                let invoice = quote.request().lightning.as_ref().ok_or("no invoice")?;
                TransferReport::lightning(invoice.payment_hash, quote.target_msats())
            }
        };
        println!(
            "\n{what}; open quote {}: {} USD due as {} sats; reported {}",
            quote.id(),
            quote.due(),
            quote.target().get(),
            report.amount()
        );
        let after = checkout.record_transfer(report)?;
        println!(
            "  -> session {}, amount paid {} USD, pending {} msat",
            after.status().as_str(),
            after.totals().amount_paid,
            after.totals().pending.get()
        );
    }

    println!("\ntimeline of {}:", session.id());
    let timeline = checkout.timeline(session.id())?;
    for stored in &timeline {
        println!(
            "  #{:<3} {}  {}",
            stored.seq, stored.event.created, stored.event.event_type
        );
    }

    // What a webhook endpoint receives: the event JSON, signed (demo secret).
    let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    println!("\nsigned webhook requests (last two):");
    for stored in timeline.iter().rev().take(2).rev() {
        let body = stored.event.to_json();
        let id = stored.event.id.to_string();
        let headers =
            SignatureHeader::new(&secret, &id, clock_now(&clock), body.as_bytes())?.into_headers();
        println!("POST /webhooks");
        for (name, value) in headers.pairs() {
            println!("{name}: {value}");
        }
        println!("\n{}\n", shorten(&body, 400));
    }
    Ok(())
}

fn clock_now(clock: &ManualClock) -> i64 {
    use bitcoin_checkout::clock::Clock;
    clock.now().unix_timestamp()
}

/// Keeps the demo output readable.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], text.len()),
        None => text.to_owned(),
    }
}
