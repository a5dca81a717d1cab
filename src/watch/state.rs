//! The watcher's saved state: the recent chain, the unsettled transactions and the views,
//! as JSON text kept in a [`ResumeStore`], and the pruning that keeps it small.
//!
//! Transactions are kept in their consensus encoding (hex) and blocks as height and hash,
//! so the text does not depend on how BDK lays out its own change sets. A transaction
//! leaves the state once it is settled: confirmed [`final_depth`](super::WatchConfig::final_depth)
//! blocks deep, or beaten by a conflicting transaction that is, and with none of its
//! views waiting to be recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bdk_chain::local_chain::LocalChain;
use bdk_chain::{BlockId, ChainPosition, ConfirmationBlockTime, indexed_tx_graph, tx_graph};
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{BlockHash, Transaction, Txid};
use serde::{Deserialize, Serialize};

use super::{ChainWatcher, Graph, OutputView, WatchConfig, WatchError, new_index};
use crate::backend::ResumePoint;
use crate::request::onchain::AddressDeriver;
use crate::store::{ResumeStore, StoreError};

/// The format version; a state of another version is refused, never guessed at.
const VERSION: u32 = 1;

/// Blocks kept below the tip beyond the final depth, so a reorganisation up to the final
/// depth always finds its fork point.
const SPARE_BLOCKS: u32 = 10;

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    /// The descriptor (public keys only), to refuse the state of another one.
    descriptor: String,
    blocks: Vec<(u32, BlockHash)>,
    /// Consensus-encoded transactions.
    txs: Vec<String>,
    /// (txid, block height, block hash, block time).
    anchors: Vec<(Txid, u32, BlockHash, u64)>,
    first_seen: Vec<(Txid, u64)>,
    last_seen: Vec<(Txid, u64)>,
    evicted: Vec<(Txid, u64)>,
    revealed: Option<u32>,
    /// Used address indexes, each as its distance from the one before (compact).
    used: Vec<u32>,
    next_sequence: u64,
    views: Vec<OutputView>,
    outbox: Vec<OutputView>,
    unmatched: Vec<OutputView>,
    refused: Vec<(OutputView, String)>,
}

impl ChainWatcher {
    /// The watcher whose state is saved in `store` under its name, or a new one (see
    /// [`new`](Self::new)) if none is. A state saved for another descriptor is refused.
    pub fn load(
        store: &impl ResumeStore,
        deriver: AddressDeriver,
        config: WatchConfig,
    ) -> Result<Self, WatchError> {
        let mut watcher = Self::new(deriver, config);
        if let Some(point) = store.resume_point(&watcher.name)? {
            watcher.restore(point.as_str())?;
            watcher.saved = Some(point);
        }
        Ok(watcher)
    }

    /// The state as text, pruned of what is settled.
    pub fn state(&self) -> String {
        // Serialising plain data (strings, numbers, arrays) cannot fail.
        serde_json::to_string(&self.to_saved().0).unwrap_or_default()
    }

    /// Saves the state with compare-and-swap against the last one saved or loaded, then
    /// drops what it pruned from memory too.
    pub(super) fn save(&mut self, store: &impl ResumeStore) -> Result<(), WatchError> {
        let (saved, pruned) = self.to_saved();
        let text = serde_json::to_string(&saved).unwrap_or_default();
        if self.saved.as_ref().is_some_and(|s| s.as_str() == text) {
            return Ok(());
        }
        let new = ResumePoint::new(text);
        match store.save_resume_point(&self.name, self.saved.as_ref(), &new) {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(WatchError::Conflict),
            Err(e) => return Err(e.into()),
        }
        if pruned {
            // The text is what was just written: reading it back drops from memory what
            // the store no longer has.
            self.restore(new.as_str())?;
        }
        self.saved = Some(new);
        Ok(())
    }

    /// The state to save, and whether it leaves out transactions or many blocks memory
    /// still has.
    fn to_saved(&self) -> (Saved, bool) {
        let settled = self.settled();
        let keep = |txid: &Txid| !settled.contains(txid);
        let graph = self.graph.initial_changeset().tx_graph;
        let anchors: Vec<_> = graph
            .anchors
            .iter()
            .filter(|(_, txid)| keep(txid))
            .map(|(a, txid)| {
                (
                    *txid,
                    a.block_id.height,
                    a.block_id.hash,
                    a.confirmation_time,
                )
            })
            .collect();
        let tip = self.chain.tip().height();
        let floor = tip.saturating_sub(self.config.final_depth + SPARE_BLOCKS);
        let anchored: BTreeSet<u32> = anchors.iter().map(|a| a.1).collect();
        let mut in_memory = 0usize;
        let blocks: Vec<(u32, BlockHash)> = self
            .chain
            .iter_checkpoints()
            .inspect(|_| in_memory += 1)
            .map(|cp| (cp.height(), cp.hash()))
            .filter(|(h, _)| *h == 0 || *h >= floor || anchored.contains(h))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        // Memory is trimmed to the saved blocks once it holds twice as many.
        let pruned = !settled.is_empty() || in_memory > 2 * blocks.len().max(1);
        let pairs = |m: &BTreeMap<Txid, u64>| -> Vec<(Txid, u64)> {
            m.iter()
                .filter(|(t, _)| keep(t))
                .map(|(t, s)| (*t, *s))
                .collect()
        };
        let mut last = None::<u32>;
        let used = self
            .used
            .iter()
            .map(|&i| {
                let step = last.map_or(i, |l| i - l);
                last = Some(i);
                step
            })
            .collect();
        let unsettled = |v: &&OutputView| keep(&v.outpoint.txid.into());
        let saved = Saved {
            version: VERSION,
            descriptor: self.deriver.descriptor(),
            blocks,
            txs: graph
                .txs
                .iter()
                .filter(|tx| keep(&tx.compute_txid()))
                .map(|tx| serialize_hex(tx.as_ref()))
                .collect(),
            anchors,
            first_seen: pairs(&graph.first_seen),
            last_seen: pairs(&graph.last_seen),
            evicted: pairs(&graph.last_evicted),
            revealed: self.graph.index.last_revealed_index(()),
            used,
            next_sequence: self.next_sequence,
            views: self.views.values().filter(unsettled).cloned().collect(),
            outbox: self.outbox.values().cloned().collect(),
            unmatched: self.unmatched.values().cloned().collect(),
            refused: self.refused.values().cloned().collect(),
        };
        (saved, pruned)
    }

    /// The transactions the state can forget: confirmed `final_depth` deep, or beaten by a
    /// conflicting transaction that is; none with a view waiting to be recorded.
    fn settled(&self) -> BTreeSet<Txid> {
        let canonical = self.canonical();
        let tip = self.chain.tip().height();
        let deep = |txid: &Txid| match canonical.get(txid) {
            Some(ChainPosition::Confirmed { anchor, .. }) => {
                (tip + 1).saturating_sub(anchor.block_id.height) >= self.config.final_depth
            }
            _ => false,
        };
        let waiting: BTreeSet<Txid> = self.outbox.keys().map(|o| Txid::from(o.txid)).collect();
        self.graph
            .graph()
            .full_txs()
            .filter(|node| !waiting.contains(&node.txid))
            .filter(|node| {
                deep(&node.txid)
                    || (!canonical.contains_key(&node.txid) && {
                        let mut conflicts =
                            self.graph.graph().direct_conflicts(&node.tx).peekable();
                        conflicts.peek().is_some() && conflicts.all(|(_, c)| deep(&c))
                    })
            })
            .map(|node| node.txid)
            .collect()
    }

    /// Replaces the chain, graph and views with those of a saved state.
    fn restore(&mut self, text: &str) -> Result<(), WatchError> {
        let invalid = |why: String| WatchError::InvalidState(why);
        let saved: Saved =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a watcher state: {e}")))?;
        if saved.version != VERSION {
            return Err(invalid(format!(
                "version {} (expected {VERSION})",
                saved.version
            )));
        }
        if saved.descriptor != self.deriver.descriptor() {
            return Err(invalid("saved for another descriptor".into()));
        }
        let blocks: BTreeMap<u32, BlockHash> = saved.blocks.iter().copied().collect();
        if blocks.get(&0) != Some(&super::genesis_hash(&self.deriver)) {
            return Err(invalid("saved for another network".into()));
        }
        let chain = LocalChain::from_blocks(blocks)
            .map_err(|_| invalid("its chain has no genesis block".into()))?;
        let mut graph = Graph::new(new_index(&self.deriver, self.config.lookahead));
        if let Some(revealed) = saved.revealed {
            let _ = graph.index.reveal_to_target((), revealed);
        }
        let mut txs = BTreeSet::new();
        for hex in &saved.txs {
            let tx: Transaction = deserialize_hex(hex)
                .map_err(|e| invalid(format!("a transaction does not decode: {e}")))?;
            txs.insert(Arc::new(tx));
        }
        let anchors = saved
            .anchors
            .iter()
            .map(|&(txid, height, hash, time)| {
                let block_id = BlockId { height, hash };
                let anchor = ConfirmationBlockTime {
                    block_id,
                    confirmation_time: time,
                };
                (anchor, txid)
            })
            .collect();
        let map = |v: &[(Txid, u64)]| v.iter().copied().collect();
        graph.apply_changeset(indexed_tx_graph::ChangeSet {
            tx_graph: tx_graph::ChangeSet {
                txs,
                anchors,
                first_seen: map(&saved.first_seen),
                last_seen: map(&saved.last_seen),
                last_evicted: map(&saved.evicted),
                ..Default::default()
            },
            indexer: Default::default(),
        });
        let mut used = BTreeSet::new();
        let mut at = None::<u32>;
        for step in saved.used {
            let next = match at {
                None => Some(step),
                Some(a) => a.checked_add(step),
            }
            .ok_or_else(|| invalid("its used indexes overflow".into()))?;
            used.insert(next);
            at = Some(next);
        }
        let by_outpoint = |v: Vec<OutputView>| v.into_iter().map(|v| (v.outpoint, v)).collect();
        self.chain = chain;
        self.graph = graph;
        self.used = used;
        self.next_sequence = saved.next_sequence;
        self.views = by_outpoint(saved.views);
        self.outbox = by_outpoint(saved.outbox);
        self.unmatched = by_outpoint(saved.unmatched);
        self.refused = saved
            .refused
            .into_iter()
            .map(|(v, why)| (v.outpoint, (v, why)))
            .collect();
        Ok(())
    }
}
