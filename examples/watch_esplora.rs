//! Follows the chain through an Esplora server and records on-chain payments to the shop's
//! sessions (feature `esplora`).
//!
//! ```text
//! ESPLORA_URL=https://mempool.space/testnet4/api \
//! DESCRIPTOR='wpkh(tpub…/0/*)' NETWORK=testnet4 SHOP_DB=shop.sqlite \
//! cargo run --example watch_esplora --features esplora
//! ```
//!
//! Like `watch_bitcoind`, it opens a session first if the shop has none, then polls every
//! `POLL_SECS` (default 30) seconds and resumes from the saved state after a restart.

mod watch_common;

use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin_checkout::watch::esplora::EsploraSource;
use bitcoin_checkout::watch::{ChainWatcher, WatchConfig};
use watch_common::{env, every, report, shop};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (deriver, shop, index) = shop()?;
    let source = EsploraSource::new(&env("ESPLORA_URL")?, 4);
    let mut watcher = ChainWatcher::load(shop.store(), deriver, WatchConfig::default())?;
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        match source
            .poll(&mut watcher, now)
            .and_then(|_| watcher.sync(&shop, &index))
        {
            Ok(pass) => report(&pass, &watcher),
            Err(e) if e.is_retryable() => eprintln!("will retry: {e}"),
            Err(e) => return Err(e.into()),
        }
        std::thread::sleep(every(30));
    }
}
