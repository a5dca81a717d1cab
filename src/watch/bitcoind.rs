//! Bitcoin Core as the watcher's block source (feature `bitcoind-rpc`), through BDK's
//! RPC emitter (`bdk_bitcoind_rpc`).
//!
//! The emitter asks the node for the blocks after the watcher's tip, in order and with the
//! reorganisations the node went through (it goes back to the fork point and emits the new
//! branch), then for the mempool, whose transactions count as unconfirmed and whose
//! departures (replaced, expired) as evictions. `examples/watch_bitcoind.rs` runs it
//! against an operator's own node:
//!
//! ```text
//! BITCOIND_URL=http://127.0.0.1:18443 BITCOIND_COOKIE=~/.bitcoin/regtest/.cookie \
//! DESCRIPTOR='wpkh(tpub…/0/*)' NETWORK=regtest \
//! cargo run --example watch_bitcoind --features bitcoind-rpc
//! ```

use std::ops::Deref;

use bdk_bitcoind_rpc::bitcoincore_rpc::{self, RpcApi};
use bdk_bitcoind_rpc::{BlockEvent, Emitter, MempoolEvent};
use bitcoin::Block;

use super::{ChainWatcher, WatchError};

/// The RPC client crate BDK's emitter uses (for `Client` and `Auth`).
pub use bdk_bitcoind_rpc::bitcoincore_rpc as rpc;

/// Feeds a watcher from a Bitcoin Core node.
pub struct BitcoindSource<C> {
    emitter: Emitter<C>,
}

impl<C> std::fmt::Debug for BitcoindSource<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitcoindSource").finish_non_exhaustive()
    }
}

impl<C> BitcoindSource<C>
where
    C: Deref,
    C::Target: RpcApi,
{
    /// A source starting from the watcher's chain and unconfirmed transactions (so the
    /// first mempool poll can tell which of them were evicted while it was stopped).
    pub fn new(client: C, watcher: &ChainWatcher) -> Self {
        let (height, _) = watcher.tip();
        Self {
            emitter: Emitter::new(client, watcher.checkpoint(), height, watcher.unconfirmed()),
        }
    }

    /// Applies every block the node has after the watcher's tip, then the mempool.
    /// Returns how many blocks were applied. Each call to the node is made once; a failure
    /// leaves the watcher with what was applied before it (the next poll goes on from
    /// there).
    pub fn poll(&mut self, watcher: &mut ChainWatcher) -> Result<usize, WatchError> {
        let mut blocks = 0;
        while let Some(event) = self.emitter.next_block().map_err(source_error)? {
            apply_block_event(watcher, &event)?;
            blocks += 1;
        }
        let mempool = self.emitter.mempool().map_err(source_error)?;
        apply_mempool_event(watcher, mempool);
        Ok(blocks)
    }
}

/// Applies one block the emitter gave.
pub fn apply_block_event(
    watcher: &mut ChainWatcher,
    event: &BlockEvent<Block>,
) -> Result<(), WatchError> {
    watcher.apply_block(&event.block, event.block_height())
}

/// Applies one mempool snapshot the emitter gave: its transactions (with when they were
/// seen) and its evictions.
pub fn apply_mempool_event(watcher: &mut ChainWatcher, event: MempoolEvent) {
    watcher.apply_mempool(event.update);
    watcher.apply_evicted(event.evicted);
}

/// The node's error as a watcher error: transport failures (node down, timeout) are worth
/// retrying, an answer the node gave is not.
pub fn source_error(e: bitcoincore_rpc::Error) -> WatchError {
    use bitcoincore_rpc::Error as E;
    use bitcoincore_rpc::jsonrpc::Error as J;
    let retryable = matches!(e, E::JsonRpc(J::Transport(_)) | E::Io(_));
    WatchError::Source {
        message: e.to_string(),
        retryable,
    }
}
