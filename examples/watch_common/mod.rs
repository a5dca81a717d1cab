//! What the `watch_bitcoind` and `watch_esplora` examples share: the shop on its SQLite
//! file, its first session, and printing a pass.

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses, Network};
use bitcoin_checkout::request::{Disabled, RequestGenerator};
use bitcoin_checkout::store::{ListQuery, SqliteStore};
use bitcoin_checkout::watch::{ChainWatcher, WatchPass};
use bitcoin_checkout::{Checkout, Currency, Decimal, PaymentMethod, SessionParams, TargetCurrency};

pub type Shop =
    Checkout<SqliteStore, FixedRates, RequestGenerator<Disabled, DerivedAddresses<SqliteStore>>>;

/// An environment variable the example needs.
pub fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (see the example's docs)"))
}

/// The descriptor's deriver, the shop on `SHOP_DB` and a second handle on the file for
/// the address index; opens a first session if the shop has none.
pub fn shop() -> Result<(AddressDeriver, Shop, SqliteStore), Box<dyn std::error::Error>> {
    let network: Network = env("NETWORK")?.parse()?;
    let deriver = AddressDeriver::new(&env("DESCRIPTOR")?, network)?;
    let db = std::env::var("SHOP_DB").unwrap_or_else(|_| "shop.sqlite".into());
    let generator = RequestGenerator::new().onchain(DerivedAddresses::new(
        deriver.clone(),
        SqliteStore::open(&db)?,
    ));
    let usd = Currency::from_code("USD")?;
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let shop = Checkout::new(SqliteStore::open(&db)?, rates, generator);
    if shop.list(&ListQuery::default())?.data.is_empty() {
        let params =
            SessionParams::new(Decimal::from(10), usd).payment_methods([PaymentMethod::Onchain]);
        let session = shop.create(params, None)?;
        println!(
            "new session {} pays to {}",
            session.id(),
            session.onchain_address().unwrap_or("?")
        );
    }
    Ok((deriver, shop, SqliteStore::open(&db)?))
}

/// Prints what a pass recorded, and a warning when the unused addresses reach the gap
/// limit of a restoring wallet.
pub fn report(pass: &WatchPass, watcher: &ChainWatcher) {
    for (view, session) in &pass.recorded {
        println!(
            "{session}: {} sats at {} ({} conf{})",
            view.amount.get(),
            view.outpoint,
            view.confirmations,
            if view.reversed { ", reversed" } else { "" }
        );
    }
    let gap = watcher.gap();
    if gap.at_risk() {
        eprintln!(
            "warning: restore this wallet with a gap limit of at least {} ({} unused after \
             the last payment)",
            gap.restore_gap().max(gap.trailing_unused + 1),
            gap.trailing_unused
        );
    }
}

/// How long to wait between polls: `POLL_SECS`, else `default`.
pub fn every(default: u64) -> std::time::Duration {
    let secs = std::env::var("POLL_SECS").ok().and_then(|s| s.parse().ok());
    std::time::Duration::from_secs(secs.unwrap_or(default))
}
