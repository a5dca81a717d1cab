//! An Esplora server as the watcher's block source (feature `esplora`), through BDK's
//! blocking Esplora client (`bdk_esplora`).
//!
//! Each poll is one BDK sync: the server is asked, for every watched address (those handed
//! out and the lookahead) and every unconfirmed transaction, what it knows, and answers
//! with the transactions, their blocks and the chain's new tip. It costs a request per
//! address per poll, so it suits shops with few addresses; a busy one follows its own
//! node with [`bitcoind`](super::bitcoind). `examples/watch_esplora.rs` runs it:
//!
//! ```text
//! ESPLORA_URL=https://mempool.space/testnet4/api DESCRIPTOR='wpkh(tpub…/0/*)' \
//! NETWORK=testnet4 cargo run --example watch_esplora --features esplora
//! ```

use bdk_chain::spk_client::{SyncRequest, SyncResponse};
use bdk_esplora::EsploraExt;

use super::{ChainWatcher, WatchError};

/// The Esplora client crate BDK uses (for its `Builder`).
pub use bdk_esplora::esplora_client as client;

/// Feeds a watcher from an Esplora server.
pub struct EsploraSource {
    client: client::BlockingClient,
    parallel_requests: usize,
}

impl std::fmt::Debug for EsploraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsploraSource")
            .field("parallel_requests", &self.parallel_requests)
            .finish_non_exhaustive()
    }
}

impl EsploraSource {
    /// A source for the server at `url` (its API root, e.g. `https://host/api`), asking
    /// `parallel_requests` things at a time.
    pub fn new(url: &str, parallel_requests: usize) -> Self {
        Self {
            client: client::Builder::new(url).build_blocking(),
            parallel_requests: parallel_requests.max(1),
        }
    }

    /// One sync at `now` (Unix seconds: when the unconfirmed transactions found were
    /// seen). The server is asked once per address and transaction; a failure applies
    /// nothing.
    pub fn poll(&self, watcher: &mut ChainWatcher, now: u64) -> Result<(), WatchError> {
        let response = self
            .client
            .sync(sync_request(watcher, now), self.parallel_requests)
            .map_err(|e| WatchError::Source {
                message: e.to_string(),
                // Esplora answers an unknown request with a status, not a mapping error:
                // everything but a malformed answer may pass.
                retryable: true,
            })?;
        apply_sync_response(watcher, response)
    }
}

/// The sync request for the watcher: its chain, every watched address and every
/// unconfirmed transaction (to learn it confirmed, or vanished).
pub fn sync_request(watcher: &ChainWatcher, now: u64) -> SyncRequest {
    SyncRequest::builder_at(now)
        .chain_tip(watcher.checkpoint())
        .spks(watcher.watched_scripts())
        .txids(watcher.unconfirmed().iter().map(|tx| tx.compute_txid()))
        .build()
}

/// Applies a sync response: its chain update (which must connect) and its transactions.
pub fn apply_sync_response(
    watcher: &mut ChainWatcher,
    response: SyncResponse,
) -> Result<(), WatchError> {
    watcher.apply_update(response.chain_update, response.tx_update)
}
