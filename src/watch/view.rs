//! What the watcher last saw of one output, and the transfer report it makes.

use serde::{Deserialize, Serialize};

use crate::chain::OutPoint;
use crate::money::Sats;
use crate::transfer::TransferReport;

/// One output paying a watched address, as the watcher saw it at one point: a view, in
/// the sense of [`TransferReport::sequenced`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutputView {
    /// The output.
    pub outpoint: OutPoint,
    /// The address it pays (canonical form, as the session shows it).
    pub address: String,
    /// The address's derivation index.
    pub index: u32,
    /// Its value.
    pub amount: Sats,
    /// Its transaction's confirmations from the tip (0: in the mempool, or its block was
    /// reorganised away), at most [`MAX_REPORTED_CONFIRMATIONS`](super::MAX_REPORTED_CONFIRMATIONS).
    pub confirmations: u32,
    /// Whether its transaction signals replace-by-fee (BIP 125).
    pub rbf: bool,
    /// Whether it left the canonical chain (a conflicting transaction won, or it was
    /// evicted from the mempool).
    pub reversed: bool,
    /// The view's sequence number: later views of an output have higher ones.
    pub sequence: u64,
}

impl OutputView {
    /// The view as a transfer report.
    ///
    /// ```
    /// # #[cfg(feature = "watcher")] {
    /// use bitcoin_checkout::watch::OutputView;
    ///
    /// let text = r#"{"outpoint":"0101010101010101010101010101010101010101010101010101010101010101:0",
    ///     "address":"bcrt1qexample","index":3,"amount":5000,"confirmations":1,"rbf":false,
    ///     "reversed":false,"sequence":9}"#;
    /// let view: OutputView = serde_json::from_str(text)?;
    /// let report = view.report();
    /// assert_eq!(report.sequence(), Some(9));
    /// assert_eq!(report.address(), Some("bcrt1qexample"));
    /// # }
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn report(&self) -> TransferReport {
        let report = TransferReport::onchain(self.outpoint, self.address.clone(), self.amount)
            .confirmations(self.confirmations)
            .signals_rbf(self.rbf)
            .sequenced(self.sequence);
        match self.reversed {
            true => report.reversed(),
            false => report,
        }
    }
}
