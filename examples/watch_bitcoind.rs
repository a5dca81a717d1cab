//! Follows the chain with an operator's own Bitcoin Core node and records on-chain
//! payments to the shop's sessions (feature `bitcoind-rpc`).
//!
//! ```text
//! BITCOIND_URL=http://127.0.0.1:18443 \
//! BITCOIND_COOKIE=$HOME/.bitcoin/regtest/.cookie \
//! DESCRIPTOR='wpkh(tpub…/0/*)' NETWORK=regtest SHOP_DB=shop.sqlite \
//! cargo run --example watch_bitcoind --features bitcoind-rpc
//! ```
//!
//! `BITCOIND_USER` and `BITCOIND_PASSWORD` can replace the cookie. `SHOP_DB` is the shop's
//! SQLite file (sessions, address indexes and the watcher's state); the example opens a
//! session there first if it has none, prints its address, and then polls every
//! `POLL_SECS` (default 10) seconds. Stop it with Ctrl-C: the next run resumes from the
//! saved state.

mod watch_common;

use bitcoin_checkout::watch::bitcoind::{BitcoindSource, rpc};
use bitcoin_checkout::watch::{ChainWatcher, WatchConfig};
use watch_common::{env, every, report, shop};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (deriver, shop, index) = shop()?;
    let auth = match std::env::var("BITCOIND_COOKIE") {
        Ok(cookie) => rpc::Auth::CookieFile(cookie.into()),
        Err(_) => rpc::Auth::UserPass(env("BITCOIND_USER")?, env("BITCOIND_PASSWORD")?),
    };
    let client = rpc::Client::new(&env("BITCOIND_URL")?, auth)?;
    let mut watcher = ChainWatcher::load(shop.store(), deriver, WatchConfig::default())?;
    let mut source = BitcoindSource::new(&client, &watcher);
    loop {
        match source
            .poll(&mut watcher)
            .and_then(|_| watcher.sync(&shop, &index))
        {
            Ok(pass) => report(&pass, &watcher),
            Err(e) if e.is_retryable() => eprintln!("will retry: {e}"),
            Err(e) => return Err(e.into()),
        }
        std::thread::sleep(every(10));
    }
}
