//! The gap limit: addresses handed out and never paid, against a restoring wallet's scan.
//!
//! A wallet restored from the merchant's seed finds funds by deriving addresses in order
//! and stops after a run of `gap` addresses with no history (about 20 for most wallets).
//! Each checkout session takes an address whether it is paid or not, so unpaid sessions
//! leave runs of unused addresses, and funds behind a run as long as the gap are not found
//! by that wallet until its gap is raised.

use std::collections::BTreeSet;

/// Where the derived addresses stand against a gap limit: a wallet restored from the
/// seed stops after `gap` unused addresses, so runs of unpaid sessions can hide later
/// funds from it (see docs/onchain.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GapReport {
    /// Addresses handed out (indexes `0..addresses`).
    pub addresses: u32,
    /// Of those, addresses that received funds.
    pub used: u32,
    /// The longest run of unused addresses followed by a used one: a restoring wallet
    /// needs a gap above it to find every payment received so far.
    pub longest_hiding_run: u32,
    /// Unused addresses after the last used one: a late payment to the last of them needs
    /// a gap above it.
    pub trailing_unused: u32,
    /// The gap limit compared with (the watcher's [`gap_limit`](super::WatchConfig::gap_limit)).
    pub gap_limit: u32,
}

impl GapReport {
    /// The report for `addresses` handed out, of which `used` received funds.
    ///
    /// ```
    /// use std::collections::BTreeSet;
    /// use bitcoin_checkout::watch::GapReport;
    ///
    /// // Ten addresses; 0 and 7 were paid, 1..=6 were not, 8 and 9 not yet.
    /// let report = GapReport::new(10, &BTreeSet::from([0, 7]), 5);
    /// assert_eq!((report.longest_hiding_run, report.trailing_unused), (6, 2));
    /// assert_eq!(report.restore_gap(), 7);
    /// assert!(report.hides_funds()); // a wallet scanning a gap of 5 misses the payment to 7
    /// ```
    pub fn new(addresses: u32, used: &BTreeSet<u32>, gap_limit: u32) -> Self {
        let mut longest_hiding_run = 0;
        let mut next_expected = 0u32;
        let mut count = 0;
        for &index in used.range(..addresses) {
            longest_hiding_run = longest_hiding_run.max(index - next_expected);
            next_expected = index + 1;
            count += 1;
        }
        Self {
            addresses,
            used: count,
            longest_hiding_run,
            trailing_unused: addresses - next_expected,
            gap_limit,
        }
    }

    /// The smallest gap limit with which a restoring wallet finds every payment received
    /// so far (the address after the longest hiding run is found only if the scan goes one
    /// further than the run).
    pub fn restore_gap(&self) -> u32 {
        self.longest_hiding_run.saturating_add(1)
    }

    /// Whether a wallet scanning [`gap_limit`](Self::gap_limit) addresses would miss a
    /// payment received so far.
    pub fn hides_funds(&self) -> bool {
        self.longest_hiding_run >= self.gap_limit
    }

    /// Whether the unused addresses after the last payment reach the gap limit: a late
    /// payment to one of the last of them would be hidden from such a wallet. Time to
    /// raise the restore gap, or to look at why so many sessions go unpaid.
    pub fn at_risk(&self) -> bool {
        self.hides_funds() || self.trailing_unused >= self.gap_limit
    }
}
