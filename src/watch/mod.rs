//! The chain watcher (feature `watcher`): on-chain payments to the merchant's derived
//! addresses, followed on the chain with the Bitcoin Dev Kit's chain engine (`bdk_chain`)
//! and recorded as transfers.
//!
//! A [`ChainWatcher`] is deterministic and does no I/O of its own. It holds BDK's view of
//! the chain (a `LocalChain` of block ids and an indexed transaction graph of the
//! transactions paying, spending or conflicting with the watched addresses) and is fed by
//! a block source: blocks in order ([`apply_block`](ChainWatcher::apply_block), with the
//! reorganisations a node goes through), mempool transactions
//! ([`apply_mempool`](ChainWatcher::apply_mempool)) and evictions
//! ([`apply_evicted`](ChainWatcher::apply_evicted)), or a BDK sync result
//! ([`apply_update`](ChainWatcher::apply_update)). The sources shipped are Bitcoin Core's
//! RPC (feature `bitcoind-rpc`, [`bitcoind`]) and Esplora (feature `esplora`,
//! [`esplora`]).
//!
//! After each feed, [`sync`](ChainWatcher::sync) compares BDK's canonical view with what it
//! last reported and records each output that changed as a **view**
//! ([`TransferReport::sequenced`](crate::TransferReport::sequenced)): its amount, its confirmations from the tip (reported up
//! to [`MAX_REPORTED_CONFIRMATIONS`], the most any policy needs), whether it signals RBF,
//! and whether it left the canonical chain (a conflicting transaction won, in a block or
//! in the mempool: reversed). Views carry increasing sequence numbers, so the session
//! follows the chain, reorganisations included: a transaction whose block was
//! reorganised away is pending again until it confirms again; one replaced by a
//! conflicting transaction is reversed, and restored if the reorganisation is undone.
//!
//! **Exactly once across restarts.** The watcher's state (the recent chain, the unsettled
//! transactions, the views and the views not yet recorded) is saved in the store's
//! [`ResumeStore`](crate::store::ResumeStore) under [`name`](ChainWatcher::name), with
//! compare-and-swap, *before* any new view is recorded, and again after. A watcher stopped
//! anywhere loads the last saved state and records its unrecorded views again (a view
//! recorded twice changes nothing); no sequence number is used twice. Two watchers on one
//! store cannot both save: the second gets [`WatchError::Conflict`] and loads the first's
//! state. A transaction buried [`final_depth`](WatchConfig::final_depth) blocks deep, its
//! views recorded, is settled and dropped from the state, which so stays small.
//!
//! ```
//! use bitcoin_checkout::request::onchain::{AddressDeriver, Network};
//! use bitcoin_checkout::watch::{ChainWatcher, WatchConfig};
//!
//! let tpub = "tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M";
//! let deriver = AddressDeriver::new(&format!("wpkh({tpub}/0/*)"), Network::Regtest)?;
//! let mut watcher = ChainWatcher::new(deriver, WatchConfig::default());
//! watcher.watch_up_to(9);
//! assert_eq!(watcher.tip().0, 0); // the genesis block
//! assert_eq!(watcher.gap().addresses, 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod gap;
mod state;
mod sync;
mod view;

#[cfg(feature = "bitcoind-rpc")]
pub mod bitcoind;
#[cfg(feature = "esplora")]
pub mod esplora;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bdk_chain::keychain_txout::KeychainTxOutIndex;
use bdk_chain::local_chain::LocalChain;
use bdk_chain::{
    CanonicalizationParams, ChainPosition, CheckPoint, ConfirmationBlockTime, IndexedTxGraph,
    TxUpdate,
};
use bitcoin::{Block, BlockHash, Transaction};

pub use error::WatchError;
pub use gap::GapReport;
pub use sync::WatchPass;
pub use view::OutputView;

use crate::backend::ResumePoint;
use crate::chain::OutPoint;
use crate::request::onchain::AddressDeriver;

/// The most confirmations a view reports: six, what the strictest policy needs. Counting
/// further would change nothing a session decides and cost a report per output per block.
pub const MAX_REPORTED_CONFIRMATIONS: u32 = 6;

/// How a watcher watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchConfig {
    /// Addresses watched beyond the last one handed out (default 20), so funds sent to an
    /// address being handed out right now are not missed.
    pub lookahead: u32,
    /// Depth at which a transaction is settled and forgotten (default 100): reorganisations
    /// deeper than this are not followed.
    pub final_depth: u32,
    /// The gap limit of the wallets the merchant may restore into (default 20): see
    /// [`GapReport`].
    pub gap_limit: u32,
    /// Where a new watcher starts (default: the genesis block): the block before the first
    /// address was handed out. Blocks below it are never asked for.
    pub birth: Option<(u32, BlockHash)>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            lookahead: 20,
            final_depth: 100,
            gap_limit: 20,
            birth: None,
        }
    }
}

impl WatchConfig {
    /// Sets [`lookahead`](Self::lookahead).
    #[must_use]
    pub fn lookahead(mut self, addresses: u32) -> Self {
        self.lookahead = addresses;
        self
    }

    /// Sets [`final_depth`](Self::final_depth) (at least [`MAX_REPORTED_CONFIRMATIONS`]).
    #[must_use]
    pub fn final_depth(mut self, blocks: u32) -> Self {
        self.final_depth = blocks.max(MAX_REPORTED_CONFIRMATIONS);
        self
    }

    /// Sets [`gap_limit`](Self::gap_limit).
    #[must_use]
    pub fn gap_limit(mut self, addresses: u32) -> Self {
        self.gap_limit = addresses;
        self
    }

    /// Sets [`birth`](Self::birth).
    #[must_use]
    pub fn birth(mut self, height: u32, hash: BlockHash) -> Self {
        self.birth = Some((height, hash));
        self
    }
}

type Graph = IndexedTxGraph<ConfirmationBlockTime, KeychainTxOutIndex<()>>;

/// Follows the chain for one descriptor's addresses. See the [module docs](self).
pub struct ChainWatcher {
    name: String,
    deriver: AddressDeriver,
    config: WatchConfig,
    chain: LocalChain,
    graph: Graph,
    /// The last view given to each output that is not settled yet.
    views: BTreeMap<OutPoint, OutputView>,
    /// Address indexes that ever received funds.
    used: BTreeSet<u32>,
    next_sequence: u64,
    /// Views given and not recorded yet (a newer view of an output replaces an older).
    outbox: BTreeMap<OutPoint, OutputView>,
    /// Views of outputs no session's address matches, kept so they are never lost.
    unmatched: BTreeMap<OutPoint, OutputView>,
    /// Views a session refused, with its reason.
    refused: BTreeMap<OutPoint, (OutputView, String)>,
    /// The state text last saved or loaded: the compare-and-swap's expected value.
    saved: Option<ResumePoint>,
}

impl std::fmt::Debug for ChainWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainWatcher")
            .field("name", &self.name)
            .field("tip", &self.chain.tip().block_id())
            .field("views", &self.views.len())
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

impl ChainWatcher {
    /// A watcher for `deriver`'s addresses, starting at the configured birth block (or the
    /// network's genesis block), with no address watched yet.
    pub fn new(deriver: AddressDeriver, config: WatchConfig) -> Self {
        let genesis = genesis_hash(&deriver);
        let mut blocks = BTreeMap::from([(0, genesis)]);
        if let Some((height, hash)) = config.birth.filter(|(h, _)| *h > 0) {
            blocks.insert(height, hash);
        }
        let chain = match LocalChain::from_blocks(blocks) {
            Ok(chain) => chain,
            // Unreachable (the map has the genesis block); stay total anyway.
            Err(_) => LocalChain::from_genesis_hash(genesis).0,
        };
        let graph = Graph::new(new_index(&deriver, config.lookahead));
        Self {
            name: watcher_name(&deriver),
            deriver,
            config,
            chain,
            graph,
            views: BTreeMap::new(),
            used: BTreeSet::new(),
            next_sequence: 1,
            outbox: BTreeMap::new(),
            unmatched: BTreeMap::new(),
            refused: BTreeMap::new(),
            saved: None,
        }
    }

    /// The name the watcher's state is saved under: `chain:<network>:<descriptor checksum>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> &WatchConfig {
        &self.config
    }

    /// The height and hash of the best block applied.
    pub fn tip(&self) -> (u32, BlockHash) {
        let tip = self.chain.tip();
        (tip.height(), tip.hash())
    }

    /// The chain as BDK's checkpoints, for block sources that start from it (BDK's
    /// emitters and sync requests).
    pub fn checkpoint(&self) -> CheckPoint {
        self.chain.tip()
    }

    /// The unconfirmed transactions the watcher holds, for a block source that reports
    /// their eviction (Bitcoin Core's mempool emitter).
    pub fn unconfirmed(&self) -> Vec<Arc<Transaction>> {
        self.canonical()
            .into_iter()
            .filter(|(_, position)| !position.is_confirmed())
            .filter_map(|(txid, _)| self.graph.graph().get_tx(txid))
            .collect()
    }

    /// The output scripts of every watched address (those handed out and the lookahead),
    /// for block sources that ask by address (Esplora, Electrum).
    pub fn watched_scripts(&self) -> Vec<bitcoin::ScriptBuf> {
        self.graph
            .index
            .inner()
            .all_spks()
            .values()
            .cloned()
            .collect()
    }

    /// Watches every address up to `index` (and the lookahead beyond it). Call it with
    /// the last index handed out ([`AddressIndex::reserved`](crate::request::AddressIndex::reserved));
    /// [`sync`](Self::sync) does so itself from the store.
    pub fn watch_up_to(&mut self, index: u32) {
        // None only for an unknown keychain: the watcher's one keychain always exists.
        let _ = self.graph.index.reveal_to_target((), index);
    }

    /// The index of `address` if the watcher watches it (lookahead included), after
    /// checking it is an address of the watcher's network.
    pub fn index_of(&self, address: &str) -> Result<Option<u32>, WatchError> {
        let canonical = crate::request::onchain::validate_address(address, self.deriver.network())?;
        let parsed: bitcoin::Address<_> = canonical
            .parse::<bitcoin::Address<_>>()
            .map_err(|e| crate::request::RequestError::InvalidAddress {
                reason: e.to_string(),
            })?
            .assume_checked();
        Ok(self
            .graph
            .index
            .index_of_spk(parsed.script_pubkey())
            .map(|(_, i)| *i))
    }

    /// Applies one block at `height`: its parent must be the watcher's block at
    /// `height - 1` (a block at a height the watcher has replaces it and the blocks above:
    /// a reorganisation). The same block again changes nothing.
    pub fn apply_block(&mut self, block: &Block, height: u32) -> Result<(), WatchError> {
        let hash = block.block_hash();
        if height == 0 {
            let genesis = genesis_hash(&self.deriver);
            if hash != genesis {
                return Err(WatchError::WrongChain {
                    expected: genesis.to_string(),
                    found: hash.to_string(),
                });
            }
            return Ok(());
        }
        if self.chain.get(height).is_some_and(|cp| cp.hash() == hash) {
            return Ok(());
        }
        let parent = block.header.prev_blockhash;
        let connects = self
            .chain
            .get(height - 1)
            .is_some_and(|cp| cp.hash() == parent);
        if !connects {
            return Err(WatchError::BlockDoesNotConnect {
                height,
                hash: hash.to_string(),
                parent: parent.to_string(),
            });
        }
        if !block.check_merkle_root() {
            return Err(WatchError::InvalidBlock {
                height,
                hash: hash.to_string(),
                reason: "its transactions do not match the header's merkle root",
            });
        }
        self.chain
            .apply_header(&block.header, height)
            .map_err(|_| WatchError::BlockDoesNotConnect {
                height,
                hash: hash.to_string(),
                parent: parent.to_string(),
            })?;
        let _ = self.graph.apply_block_relevant(block, height);
        Ok(())
    }

    /// Applies transactions seen in the mempool, each with when it was seen (Unix
    /// seconds). Those that neither pay, spend nor conflict with a watched output are
    /// ignored.
    pub fn apply_mempool(&mut self, txs: impl IntoIterator<Item = (Arc<Transaction>, u64)>) {
        let _ = self.graph.batch_insert_relevant_unconfirmed(txs);
    }

    /// Applies evictions from the mempool (the transaction's id and when it was found
    /// missing, Unix seconds): an evicted transaction that is not in a block no longer
    /// counts, and its outputs are reported reversed.
    pub fn apply_evicted(&mut self, evicted: impl IntoIterator<Item = (bitcoin::Txid, u64)>) {
        let _ = self.graph.batch_insert_relevant_evicted_at(evicted);
    }

    /// Applies a BDK sync result (an Esplora or Electrum scan): the chain update must
    /// connect to the watcher's chain.
    pub fn apply_update(
        &mut self,
        chain: Option<CheckPoint>,
        txs: TxUpdate<ConfirmationBlockTime>,
    ) -> Result<(), WatchError> {
        if let Some(update) = chain {
            let (height, hash) = (update.height(), update.hash());
            self.chain
                .apply_update(update)
                .map_err(|_| WatchError::BlockDoesNotConnect {
                    height,
                    hash: hash.to_string(),
                    parent: "(a block the update does not share with the watcher)".into(),
                })?;
        }
        let _ = self.graph.apply_update(txs);
        Ok(())
    }

    /// Where the derived addresses stand against a restoring wallet's gap limit.
    pub fn gap(&self) -> GapReport {
        let addresses = self
            .graph
            .index
            .last_revealed_index(())
            .map_or(0, |i| i.saturating_add(1));
        GapReport::new(addresses, &self.used, self.config.gap_limit)
    }

    /// The views of outputs no session's address matched (money nobody expected: an
    /// address handed out by another application, or reused by hand).
    pub fn unmatched(&self) -> impl Iterator<Item = &OutputView> {
        self.unmatched.values()
    }

    /// The views a session refused, with its reason.
    pub fn refused(&self) -> impl Iterator<Item = (&OutputView, &str)> {
        self.refused.values().map(|(v, why)| (v, why.as_str()))
    }

    /// The views given and not recorded yet.
    pub fn pending_views(&self) -> impl Iterator<Item = &OutputView> {
        self.outbox.values()
    }

    /// BDK's canonical view: each canonical transaction's position.
    fn canonical(&self) -> HashMap<bitcoin::Txid, ChainPosition<ConfirmationBlockTime>> {
        let tip = self.chain.tip().block_id();
        self.graph
            .graph()
            .list_canonical_txs(&self.chain, tip, CanonicalizationParams::default())
            .map(|c| (c.tx_node.txid, c.chain_position))
            .collect()
    }

    /// Compares the canonical view with the last views and gives a new view, with the next
    /// sequence number, to every watched output that changed; they wait in
    /// [`pending_views`](Self::pending_views) until [`sync`](Self::sync) records them.
    /// Returns how many. `sync` calls it first; call it alone to look without recording.
    pub fn refresh_views(&mut self) -> usize {
        let canonical = self.canonical();
        let tip = self.chain.tip().height();
        let network = self.deriver.network();
        let mut fresh = Vec::new();
        for ((_, index), outpoint) in self.graph.index.outpoints() {
            let Some(txout) = self.graph.graph().get_txout(*outpoint) else {
                continue;
            };
            let (confirmations, reversed) = match canonical.get(&outpoint.txid) {
                Some(ChainPosition::Confirmed { anchor, .. }) => {
                    let depth = (tip + 1).saturating_sub(anchor.block_id.height);
                    (depth.min(MAX_REPORTED_CONFIRMATIONS), false)
                }
                Some(ChainPosition::Unconfirmed { .. }) => (0, false),
                None => (0, true),
            };
            let rbf = self
                .graph
                .graph()
                .get_tx(outpoint.txid)
                .is_some_and(|tx| tx.is_explicitly_rbf());
            let key = OutPoint::from(*outpoint);
            let last = self.views.get(&key);
            let unchanged = last.is_some_and(|v| {
                (v.confirmations, v.rbf, v.reversed) == (confirmations, rbf, reversed)
            });
            // An output never seen canonical has nothing to take back.
            if unchanged || (last.is_none() && reversed) {
                continue;
            }
            let Ok(address) = bitcoin::Address::from_script(&txout.script_pubkey, network) else {
                continue;
            };
            fresh.push(OutputView {
                outpoint: key,
                address: address.to_string(),
                index: *index,
                amount: crate::money::Sats::new(txout.value.to_sat()),
                confirmations,
                rbf,
                reversed,
                sequence: 0,
            });
        }
        let count = fresh.len();
        for mut view in fresh {
            view.sequence = self.next_sequence;
            self.next_sequence += 1;
            if !view.reversed {
                self.used.insert(view.index);
            }
            self.views.insert(view.outpoint, view.clone());
            self.outbox.insert(view.outpoint, view);
        }
        count
    }
}

/// The genesis block of the deriver's network.
fn genesis_hash(deriver: &AddressDeriver) -> BlockHash {
    bitcoin::constants::genesis_block(deriver.network()).block_hash()
}

/// An index of the deriver's one descriptor, nothing revealed.
fn new_index(deriver: &AddressDeriver, lookahead: u32) -> KeychainTxOutIndex<()> {
    let mut index = KeychainTxOutIndex::new(lookahead, false);
    // A fresh index has no descriptor yet: inserting the first cannot clash.
    let _ = index.insert_descriptor((), deriver.descriptor_value().clone());
    index
}

/// `chain:<network>:<descriptor checksum>`.
fn watcher_name(deriver: &AddressDeriver) -> String {
    let descriptor = deriver.descriptor();
    let checksum = descriptor.rsplit_once('#').map_or("", |(_, c)| c);
    format!("chain:{}:{checksum}", deriver.network())
}
