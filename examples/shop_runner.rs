//! A shop taking Lightning payments through LNbits, with the runner doing the background
//! work: the settlement listener records payments, the sweep expires quotes.
//!
//! ```text
//! eval "$(scripts/lnbits start)"        # or your own LNbits server
//! LNBITS_INVOICE_KEY=<a wallet's invoice key> \
//!   cargo run --example shop_runner --features runner,lnbits
//! ```
//!
//! It creates a session for 5 USD (at a fixed rate of 1,000 sats per USD), prints its
//! invoice, and waits until it is paid (pay it from any LNbits wallet of the server) or
//! Ctrl-C, then stops the runner gracefully.

use std::sync::Arc;
use std::time::Duration;

use bitcoin_checkout::listener::SettlementListener;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::RequestGenerator;
use bitcoin_checkout::request::lightning::Network;
use bitcoin_checkout::request::lnbits::LnbitsBackend;
use bitcoin_checkout::runner::RunnerBuilder;
use bitcoin_checkout::store::SqliteStore;
use bitcoin_checkout::{
    Checkout, Currency, Decimal, PaymentMethod, SessionParams, SessionStatus, TargetCurrency,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BITCOIN_CHECKOUT_LNBITS")
        .map_err(|_| "set BITCOIN_CHECKOUT_LNBITS to the LNbits server's URL")?;
    let key = std::env::var("LNBITS_INVOICE_KEY")
        .map_err(|_| "set LNBITS_INVOICE_KEY to a wallet's invoice key")?;
    // LNbits' FakeWallet (scripts/lnbits) writes invoices without a feature field; a real
    // funding source does not need this.
    let lnbits = || {
        LnbitsBackend::new(&url, key.clone(), Network::Bitcoin).allow_invoices_without_features()
    };
    let usd = Currency::from_code("USD")?;
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let checkout = Arc::new(Checkout::new(
        SqliteStore::open("shop_runner.db")?,
        rates,
        RequestGenerator::new().lightning(lnbits()),
    ));

    let runner = RunnerBuilder::new()
        .sweep(checkout.clone(), Duration::from_secs(5), 100)
        .listener(
            SettlementListener::new("lnbits:shop", lnbits()),
            checkout.clone(),
            Duration::from_secs(1),
        )
        .start();

    let c = checkout.clone();
    let session = tokio::task::spawn_blocking(move || {
        let params =
            SessionParams::new(Decimal::from(5), usd).payment_methods([PaymentMethod::Lightning]);
        c.create(params, None)
    })
    .await??;
    if let Some(invoice) = session
        .current_payment()
        .and_then(|p| p.request().lightning.clone())
    {
        println!("pay this invoice:\n{}", invoice.payment_request);
    }

    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let (c, id) = (checkout.clone(), session.id());
        let now = tokio::task::spawn_blocking(move || c.get(id)).await??;
        println!("{}: {:?}, {:?}", now.id(), now.status(), runner.health());
        if now.status() == SessionStatus::Paid {
            println!("paid");
            break;
        }
    }
    runner.stop().await;
    Ok(())
}
