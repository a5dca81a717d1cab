//! The chain watcher: blocks processed per second with 10,000 watched addresses, against
//! bare BDK applying the same blocks to the same index; the cost of recording one output's
//! view through a whole watcher pass, against recording a plain report; and the gap
//! limit's measure, simulated over 1,000 sessions at several shares of paid sessions.
//!
//! `cargo bench --features watcher --bench watcher`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bdk_chain::keychain_txout::KeychainTxOutIndex;
use bdk_chain::local_chain::LocalChain;
use bdk_chain::{ConfirmationBlockTime, IndexedTxGraph};
use bitcoin::Block;
use bitcoin_checkout::clock::SystemClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses, Network};
use bitcoin_checkout::request::{Disabled, MemoryAddressIndex, RequestGenerator};
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::watch::{ChainWatcher, GapReport, WatchConfig};
use bitcoin_checkout::{
    Checkout, Currency, Decimal, PaymentMethod, SessionParams, TargetCurrency, TransferReport,
};
use criterion::{Criterion, criterion_group};

#[path = "report.rs"]
mod report;

#[path = "../tests/support/chain.rs"]
mod chain;

use chain::{Chain, pay};

const DESCRIPTOR: &str = "wpkh([73c5da0a/84h/1h/0h]tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M/0/*)";
const WATCHED: u32 = 10_000;
const BLOCKS: u32 = 20;
const TXS_PER_BLOCK: usize = 200;
const PAYMENTS_PER_BLOCK: usize = 10;

fn deriver() -> AddressDeriver {
    AddressDeriver::new(DESCRIPTOR, Network::Regtest).unwrap()
}

/// `BLOCKS` blocks above block 1, each of `TXS_PER_BLOCK` transactions of which
/// `PAYMENTS_PER_BLOCK` pay watched addresses spread over the 10,000.
fn blocks() -> Vec<Block> {
    let d = deriver();
    let other = AddressDeriver::new(&DESCRIPTOR.replace("/0/*", "/1/*"), Network::Regtest)
        .unwrap()
        .address_at(0)
        .unwrap();
    let mut chain = Chain::new();
    let mut n = 0u32;
    for _ in 0..BLOCKS {
        let txs = (0..TXS_PER_BLOCK)
            .map(|i| {
                let to = if i < PAYMENTS_PER_BLOCK {
                    n += 1;
                    d.address_at((n * 7_919) % WATCHED).unwrap()
                } else {
                    other.clone()
                };
                pay(&[chain.coin()], &[(&to, 5_000)], false)
            })
            .collect();
        chain.mine(txs);
    }
    chain.blocks
}

fn watcher() -> ChainWatcher {
    let mut w = ChainWatcher::new(deriver(), WatchConfig::default());
    w.watch_up_to(WATCHED - 1);
    w
}

type Bare = (
    LocalChain,
    IndexedTxGraph<ConfirmationBlockTime, KeychainTxOutIndex<()>>,
);

fn bare() -> Bare {
    let genesis = bitcoin::constants::genesis_block(Network::Regtest).block_hash();
    let mut index = KeychainTxOutIndex::new(20, false);
    let descriptor = DESCRIPTOR.parse().unwrap();
    index.insert_descriptor((), descriptor).unwrap();
    let _ = index.reveal_to_target((), WATCHED - 1);
    (
        LocalChain::from_genesis_hash(genesis).0,
        IndexedTxGraph::new(index),
    )
}

/// Times `apply` on every block in order, on a fresh state from `fresh` (untimed) each
/// time the blocks run out.
fn per_block<T>(
    iters: u64,
    blocks: &[Block],
    fresh: impl Fn() -> T,
    apply: impl Fn(&mut T, &Block, u32),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let mut state = fresh();
        apply(&mut state, &blocks[1], 1);
        for (h, block) in blocks.iter().enumerate().skip(2) {
            if done == iters {
                break;
            }
            let start = Instant::now();
            apply(&mut state, block, h as u32);
            total += start.elapsed();
            done += 1;
        }
    }
    total
}

type Shop = Checkout<
    MemoryStore,
    FixedRates,
    RequestGenerator<Disabled, DerivedAddresses<Arc<MemoryAddressIndex>>>,
    SystemClock,
>;

/// A shop with `PAYMENTS_PER_BLOCK` sessions, a watcher that has applied a block paying
/// each of them (views not given yet), and the index.
fn shop_with_payments() -> (Shop, ChainWatcher, Arc<MemoryAddressIndex>) {
    let index = Arc::new(MemoryAddressIndex::new());
    let generator =
        RequestGenerator::new().onchain(DerivedAddresses::new(deriver(), Arc::clone(&index)));
    let usd = Currency::from_code("USD").unwrap();
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let shop = Checkout::new(MemoryStore::new(), rates, generator);
    let mut chain = Chain::new();
    let txs = (0..PAYMENTS_PER_BLOCK)
        .map(|_| {
            let params = SessionParams::new(Decimal::from(10), usd)
                .payment_methods([PaymentMethod::Onchain]);
            let s = shop.create(params, None).unwrap();
            pay(
                &[chain.coin()],
                &[(s.onchain_address().unwrap(), 10_000)],
                false,
            )
        })
        .collect();
    chain.mine(txs);
    let mut w = ChainWatcher::load(shop.store(), deriver(), WatchConfig::default()).unwrap();
    for h in 1..=chain.height() {
        w.apply_block(chain.at(h), h).unwrap();
    }
    (shop, w, index)
}

fn bench(c: &mut Criterion) {
    let blocks = blocks();
    let mut g = c.benchmark_group("watcher");
    g.sample_size(20);
    g.bench_function("block_10k", |b| {
        b.iter_custom(|iters| {
            per_block(iters, &blocks, watcher, |w, block, h| {
                w.apply_block(block, h).unwrap();
                w.refresh_views();
            })
        })
    });
    g.bench_function("bdk_block_10k", |b| {
        b.iter_custom(|iters| {
            per_block(iters, &blocks, bare, |(chain, graph), block, h| {
                chain.apply_header(&block.header, h).unwrap();
                let _ = graph.apply_block_relevant(block, h);
            })
        })
    });
    g.bench_function("sync_per_output", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (shop, mut w, index) = shop_with_payments();
                let start = Instant::now();
                let pass = w.sync(&shop, &*index).unwrap();
                total += start.elapsed();
                assert_eq!(pass.recorded.len(), PAYMENTS_PER_BLOCK);
            }
            total / PAYMENTS_PER_BLOCK as u32
        })
    });
    g.bench_function("record_plain_report", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (shop, mut w, _) = shop_with_payments();
                w.refresh_views();
                let reports: Vec<TransferReport> = w
                    .pending_views()
                    .map(|v| {
                        TransferReport::onchain(v.outpoint, v.address.clone(), v.amount)
                            .confirmations(v.confirmations)
                    })
                    .collect();
                let start = Instant::now();
                for r in reports {
                    shop.record_transfer(r).unwrap();
                }
                total += start.elapsed();
            }
            total / PAYMENTS_PER_BLOCK as u32
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

/// xorshift64*: a fixed-seed generator, so the simulation prints the same figures each run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The median over 201 runs of 1,000 sessions, `percent` of them paid, of the gap report's
/// longest hiding run and trailing unused run.
fn gap_simulation(percent: u64) -> (u32, u32) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ percent);
    let (mut runs, mut trailing): (Vec<u32>, Vec<u32>) = (0..201)
        .map(|_| {
            let used: BTreeSet<u32> = (0..1_000).filter(|_| rng.below(100) < percent).collect();
            let r = GapReport::new(1_000, &used, 20);
            (r.longest_hiding_run, r.trailing_unused)
        })
        .unzip();
    runs.sort_unstable();
    trailing.sort_unstable();
    (runs[100], trailing[100])
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report::print_comparisons(&[
        (
            "watcher/block_10k",
            "watcher/bdk_block_10k",
            report::Stat::Median,
        ),
        (
            "watcher/sync_per_output",
            "watcher/record_plain_report",
            report::Stat::Median,
        ),
    ]);
    if let Some(ns) = report::estimate_ns("watcher/block_10k", report::Stat::Median) {
        println!(
            "\nblocks per second with {WATCHED} watched addresses ({TXS_PER_BLOCK} transactions, \
             {PAYMENTS_PER_BLOCK} paying them, per block): {:.0}",
            1e9 / ns
        );
    }
    println!("\ngap limit over 1,000 sessions (median of 201 simulations):");
    println!(
        "{:<22} {:>20} {:>18}",
        "sessions paid", "longest hiding run", "trailing unused"
    );
    for percent in [50, 30, 10] {
        let (run, trailing) = gap_simulation(percent);
        println!("{:<22} {run:>20} {trailing:>18}", format!("{percent} %"));
    }
}
