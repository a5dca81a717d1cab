//! For random chains with random reorganisations (up to 6 blocks deep, some with a double
//! spend) and mempool replacements, what each session counts equals what the final best
//! chain (and, at 0 confirmations, the final mempool) pays it, under each policy.
//!
//! The test keeps the ground truth as a node would: a transaction broadcast enters the
//! mempool, a mined one leaves it, a replacement evicts what it replaces, and the
//! transactions of blocks reorganised away go back to the mempool unless the new branch
//! spends their coins. The watcher is fed the same blocks, mempool entries and evictions
//! and syncs after every step, as a runner would.

use std::sync::Arc;

use bitcoin::Transaction;
use bitcoin_checkout::SessionId;
use bitcoin_checkout::transfer::ConfirmationPolicy::{self, One, Six, Two, ZeroConf};
use bitcoin_checkout::watch::ChainWatcher;
use proptest::prelude::*;

use crate::chain::{Chain, pay};
use crate::shop::{Shop, counted, feed, other_address};

#[derive(Debug, Clone)]
enum Op {
    /// Broadcast a payment of `sats` to session `session`.
    Pay {
        session: usize,
        sats: u64,
        rbf: bool,
    },
    /// Mine a block with up to `take` mempool transactions.
    Mine { take: usize },
    /// Reorganise `depth` blocks away; the new branch is one block longer and, with
    /// `double_spend`, spends the coin of the first payment it removes elsewhere.
    Reorg { depth: u32, double_spend: bool },
    /// Replace a mempool transaction with one paying `less` sats less, to the same
    /// address or elsewhere.
    Replace {
        which: usize,
        less: u64,
        elsewhere: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..8usize, 1_000..20_000u64, any::<bool>())
            .prop_map(|(session, sats, rbf)| Op::Pay { session, sats, rbf }),
        4 => (0..4usize).prop_map(|take| Op::Mine { take }),
        1 => (1..=6u32, any::<bool>())
            .prop_map(|(depth, double_spend)| Op::Reorg { depth, double_spend }),
        1 => (0..8usize, 0..900u64, any::<bool>())
            .prop_map(|(which, less, elsewhere)| Op::Replace { which, less, elsewhere }),
    ]
}

struct World {
    shop: Shop,
    watcher: ChainWatcher,
    chain: Chain,
    mempool: Vec<Transaction>,
    sessions: Vec<(SessionId, String, ConfirmationPolicy)>,
    clock: u64,
    other: String,
}

impl World {
    fn new() -> Self {
        let shop = Shop::new();
        let sessions = [ZeroConf, One, Two, Six, ZeroConf, One, Two, Six]
            .into_iter()
            .map(|policy| {
                let (id, address) = shop.session("1000", policy);
                (id, address, policy)
            })
            .collect();
        let watcher = shop.watcher();
        let mut world = Self {
            shop,
            watcher,
            chain: Chain::new(),
            mempool: Vec::new(),
            sessions,
            clock: 1_000,
            other: other_address(),
        };
        world.sync();
        world
    }

    fn broadcast(&mut self, tx: Transaction) {
        self.clock += 1;
        self.watcher
            .apply_mempool([(Arc::new(tx.clone()), self.clock)]);
        self.mempool.push(tx);
    }

    fn sync(&mut self) {
        feed(&mut self.watcher, &self.chain);
        self.shop.sync(&mut self.watcher);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Pay { session, sats, rbf } => {
                let address = self.sessions[session].1.clone();
                let tx = pay(&[self.chain.coin()], &[(&address, sats)], rbf);
                self.broadcast(tx);
            }
            Op::Mine { take } => {
                let n = take.min(self.mempool.len());
                let txs: Vec<Transaction> = self.mempool.drain(..n).collect();
                self.chain.mine(txs);
            }
            Op::Reorg {
                depth,
                double_spend,
            } => {
                // Block 1 funds every payment: the fork stays above it.
                let depth = depth.min(self.chain.height().saturating_sub(1));
                if depth == 0 {
                    return;
                }
                let fork_at = self.chain.height() - depth;
                let removed: Vec<Transaction> = self.chain.blocks[fork_at as usize + 1..]
                    .iter()
                    .flat_map(|b| b.txdata[1..].to_vec())
                    .collect();
                let mut branch = self.chain.fork_at(fork_at);
                let mut first_block = Vec::new();
                let mut back = removed.clone();
                if double_spend && !removed.is_empty() {
                    let victim = back.remove(0);
                    let coin = victim.input[0].previous_output;
                    first_block.push(pay(&[coin], &[(&self.other, 500)], false));
                }
                branch.mine(first_block);
                branch.mine_empty(depth);
                self.chain = branch;
                // What the old blocks had and the new ones do not goes back to the mempool.
                for tx in back {
                    self.broadcast(tx);
                }
            }
            Op::Replace {
                which,
                less,
                elsewhere,
            } => {
                if self.mempool.is_empty() {
                    return;
                }
                let old = self.mempool.remove(which % self.mempool.len());
                let out = &old.output[0];
                let address =
                    bitcoin::Address::from_script(&out.script_pubkey, bitcoin::Network::Regtest)
                        .expect("a standard address")
                        .to_string();
                let to = if elsewhere {
                    self.other.clone()
                } else {
                    address
                };
                let sats = out.value.to_sat().saturating_sub(less).max(600);
                let new = pay(&[old.input[0].previous_output], &[(&to, sats)], true);
                self.clock += 1;
                self.watcher
                    .apply_evicted([(old.compute_txid(), self.clock)]);
                self.broadcast(new);
            }
        }
        self.sync();
    }

    /// What the final chain and mempool pay the session, under its policy.
    fn expected(&self, address: &str, policy: ConfirmationPolicy) -> u64 {
        let pays = |tx: &Transaction| -> u64 {
            tx.output
                .iter()
                .filter(|o| {
                    bitcoin::Address::from_script(&o.script_pubkey, bitcoin::Network::Regtest)
                        .is_ok_and(|a| a.to_string() == address)
                })
                .map(|o| o.value.to_sat())
                .sum()
        };
        let tip = self.chain.height();
        let mut total = 0;
        for (height, block) in self.chain.blocks.iter().enumerate() {
            let confirmations = tip + 1 - height as u32;
            for tx in &block.txdata[1..] {
                if confirmations >= policy.required(tx.is_explicitly_rbf()) {
                    total += pays(tx);
                }
            }
        }
        for tx in &self.mempool {
            if policy.required(tx.is_explicitly_rbf()) == 0 {
                total += pays(tx);
            }
        }
        total
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sessions_count_what_the_final_chain_pays_them(ops in prop::collection::vec(op(), 1..30)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
        for (id, address, policy) in &world.sessions {
            let session = world.shop.get(*id);
            prop_assert_eq!(
                counted(&session),
                world.expected(address, *policy),
                "session {} under {:?}", id, policy
            );
        }
        // The watcher's state reloads to the same accounting (a restart at the end).
        let mut again = world.shop.watcher();
        prop_assert!(world.shop.sync(&mut again).recorded.is_empty());
    }
}
