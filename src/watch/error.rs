//! What can go wrong while watching the chain.

use crate::request::RequestError;
use crate::service::ServiceError;
use crate::store::StoreError;

/// An error of the chain watcher ([`ChainWatcher`](super::ChainWatcher)). Nothing is
/// applied when one is returned: the watcher's state is as before the call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// A block whose parent is not the watcher's block below it (a gap, or a fork from a
    /// block the watcher never had): deliver the blocks in between, or the fork point.
    #[error("block {hash} at height {height} does not connect: its parent {parent} is not the watcher's block at height {}", height.saturating_sub(1))]
    BlockDoesNotConnect {
        /// The block's height as delivered.
        height: u32,
        /// The block's hash.
        hash: String,
        /// The parent the block names.
        parent: String,
    },
    /// A block whose transactions do not hash to its header's merkle root.
    #[error("block {hash} at height {height} is invalid: {reason}")]
    InvalidBlock {
        /// The block's height as delivered.
        height: u32,
        /// The block's hash.
        hash: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The block source is on another chain than the watcher (another genesis block).
    #[error("the block source's genesis block {found} is not {expected} (another network?)")]
    WrongChain {
        /// The genesis block of the watcher's network.
        expected: String,
        /// The genesis block the source gave.
        found: String,
    },
    /// The descriptor or an address was refused (no wildcard, another network, …).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The saved state belongs to another descriptor or network, or does not parse.
    #[error("the saved watcher state is unusable: {0}")]
    InvalidState(String),
    /// Another watcher saved the state first: [`load`](super::ChainWatcher::load) it again
    /// and go on from there (nothing was recorded from this watcher's unsaved views).
    #[error("another watcher saved its state first; load it again")]
    Conflict,
    /// The store failed; the views are kept and recorded on the next pass.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recording a view failed for a reason that may pass (see
    /// [`ServiceError::is_retryable`]); it is kept and recorded on the next pass.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The block source failed (the node or server is down, or answered nonsense).
    #[error("block source: {message}")]
    Source {
        /// What the source said (never a credential).
        message: String,
        /// Whether asking again may help.
        retryable: bool,
    },
}

impl WatchError {
    /// Whether trying again later may succeed (the store, the service or the source were
    /// unavailable, or another watcher got ahead).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Service(e) => e.is_retryable(),
            Self::Source { retryable, .. } => *retryable,
            Self::Conflict => true,
            _ => false,
        }
    }
}
