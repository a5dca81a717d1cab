//! A shop taking on-chain payments to derived regtest addresses, and its watcher.

use std::sync::Arc;

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses, Network};
use bitcoin_checkout::request::{Disabled, MemoryAddressIndex, RequestGenerator};
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::transfer::ConfirmationPolicy;
use bitcoin_checkout::watch::{ChainWatcher, WatchConfig, WatchPass};
use bitcoin_checkout::*;

use crate::chain::Chain;
use crate::common::{dec, t0, usd};

/// BIP 84 test vector account ("abandon … about"), regtest receive chain.
pub const DESCRIPTOR: &str = "wpkh([73c5da0a/84h/1h/0h]tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M/0/*)";

type Generator = RequestGenerator<Disabled, DerivedAddresses<Arc<MemoryAddressIndex>>>;
pub type Service = Checkout<MemoryStore, FixedRates, Generator, Arc<ManualClock>>;

pub struct Shop {
    pub checkout: Service,
    pub index: Arc<MemoryAddressIndex>,
}

pub fn deriver() -> AddressDeriver {
    AddressDeriver::new(DESCRIPTOR, Network::Regtest).expect("the test descriptor")
}

/// An address of the same wallet the watcher does not watch (its change chain).
pub fn other_address() -> String {
    AddressDeriver::new(&DESCRIPTOR.replace("/0/*", "/1/*"), Network::Regtest)
        .and_then(|d| d.address_at(0))
        .expect("the change address")
}

impl Shop {
    /// A shop pricing 1 USD at 1,000 sats.
    pub fn new() -> Self {
        let index = Arc::new(MemoryAddressIndex::new());
        let generator =
            RequestGenerator::new().onchain(DerivedAddresses::new(deriver(), Arc::clone(&index)));
        let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1000"));
        let clock = Arc::new(ManualClock::new(t0()));
        let checkout =
            Checkout::new(MemoryStore::new(), rates, generator).with_clock(Arc::clone(&clock));
        Self { checkout, index }
    }

    /// A session for `usd` dollars under `policy`, and its address.
    pub fn session(&self, usd_amount: &str, policy: ConfirmationPolicy) -> (SessionId, String) {
        let params = SessionParams::new(dec(usd_amount), usd())
            .payment_methods([PaymentMethod::Onchain])
            .confirmations(policy)
            .ttl_secs(3_600);
        let s = self.checkout.create(params, None).expect("created");
        let address = s.onchain_address().expect("an address").to_owned();
        (s.id(), address)
    }

    pub fn get(&self, id: SessionId) -> CheckoutSession {
        self.checkout.get(id).expect("the session")
    }

    /// A watcher loaded from the shop's store (a restart is loading it again).
    pub fn watcher(&self) -> ChainWatcher {
        ChainWatcher::load(self.checkout.store(), deriver(), WatchConfig::default())
            .expect("the watcher state loads")
    }

    pub fn sync(&self, watcher: &mut ChainWatcher) -> WatchPass {
        watcher
            .sync(&self.checkout, &*self.index)
            .expect("the pass succeeds")
    }
}

/// Feeds every block of `chain` above the watcher's tip, then syncs.
pub fn follow(shop: &Shop, watcher: &mut ChainWatcher, chain: &Chain) -> WatchPass {
    feed(watcher, chain);
    shop.sync(watcher)
}

/// Applies the blocks of `chain` the watcher lacks: from the fork point (the highest
/// height where both have the same block) to the chain's tip.
pub fn feed(watcher: &mut ChainWatcher, chain: &Chain) {
    let mut from = watcher.tip().0.min(chain.height());
    while from > 0 && watcher_has(watcher, chain, from).is_none() {
        from -= 1;
    }
    for h in from + 1..=chain.height() {
        watcher
            .apply_block(chain.at(h), h)
            .unwrap_or_else(|e| panic!("block {h}: {e}"));
    }
}

fn watcher_has(watcher: &ChainWatcher, chain: &Chain, height: u32) -> Option<()> {
    let cp = watcher.checkpoint().get(height)?;
    (cp.hash() == chain.at(height).block_hash()).then_some(())
}

/// Sats that count on the session now (any arrival; confirmed enough, not reversed).
pub fn counted(s: &CheckoutSession) -> u64 {
    let policy = s.confirmation_policy();
    s.transfers()
        .filter(|t| t.meets(policy))
        .map(|t| t.amount.get() / 1_000)
        .sum()
}

/// The session's events, by type, oldest first.
pub fn event_types(shop: &Shop, id: SessionId) -> Vec<String> {
    shop.checkout
        .timeline(id)
        .expect("events")
        .iter()
        .map(|e| e.event.event_type.to_string())
        .collect()
}
