//! Transfers: receipts of funds, keyed by their natural id, recorded once and never edited
//! except by the monotone facts later reports add (more confirmations, a reversal).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::chain::OutPoint;
use crate::error::Error;
use crate::hash::PaymentHash;
use crate::id::PaymentId;
use crate::money::{Msats, Sats};

/// The natural id of a transfer: the Lightning payment hash, or the on-chain outpoint.
///
/// Written as `ln:<payment hash>` or `<txid>:<vout>` (the txid as wallets and explorers
/// show it; see [`crate::chain`] for the byte order).
///
/// ```
/// use bitcoin_checkout::{OutPoint, TransferKey, Txid};
///
/// let key = TransferKey::Onchain(OutPoint::new(Txid::from_byte_array([0xab; 32]), 2));
/// assert_eq!(key.to_string().parse::<TransferKey>()?, key);
/// # Ok::<(), bitcoin_checkout::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransferKey {
    /// A Lightning payment, identified by its payment hash.
    Lightning(PaymentHash),
    /// An on-chain output, identified by its outpoint.
    Onchain(OutPoint),
}

impl TransferKey {
    /// The payment method this transfer came over.
    pub fn method(&self) -> PaymentMethod {
        match self {
            Self::Lightning(_) => PaymentMethod::Lightning,
            Self::Onchain { .. } => PaymentMethod::Onchain,
        }
    }
}

impl fmt::Display for TransferKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lightning(h) => write!(f, "ln:{h}"),
            Self::Onchain(outpoint) => fmt::Display::fmt(outpoint, f),
        }
    }
}

impl fmt::Debug for TransferKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for TransferKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some(hash) = s.strip_prefix("ln:") {
            return Ok(Self::Lightning(hash.parse()?));
        }
        Ok(Self::Onchain(s.parse()?))
    }
}

impl Serialize for TransferKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TransferKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A way to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PaymentMethod {
    /// Lightning (BOLT11 invoices).
    Lightning,
    /// On-chain bitcoin.
    Onchain,
}

impl PaymentMethod {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lightning => "lightning",
            Self::Onchain => "onchain",
        }
    }
}

/// How many confirmations an on-chain transfer needs before it counts.
///
/// The choices follow BTCPay Server's speed policies. A transaction that signals
/// replace-by-fee never counts at 0 confirmations: it can be replaced at will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ConfirmationPolicy {
    /// Count on sight (1 confirmation if the transaction signals RBF).
    ZeroConf,
    /// One confirmation (the default).
    #[default]
    One,
    /// Two confirmations.
    Two,
    /// Six confirmations.
    Six,
}

impl ConfirmationPolicy {
    /// The policy for a number of confirmations: 0, 1, 2 or 6.
    pub fn from_confirmations(n: u32) -> Result<Self, Error> {
        match n {
            0 => Ok(Self::ZeroConf),
            1 => Ok(Self::One),
            2 => Ok(Self::Two),
            6 => Ok(Self::Six),
            other => Err(Error::InvalidConfirmationPolicy(other)),
        }
    }

    /// The number of confirmations a transaction not signalling RBF needs.
    pub fn confirmations(self) -> u32 {
        match self {
            Self::ZeroConf => 0,
            Self::One => 1,
            Self::Two => 2,
            Self::Six => 6,
        }
    }

    /// The confirmations a transaction needs, given whether it signals RBF.
    pub fn required(self, rbf: bool) -> u32 {
        let n = self.confirmations();
        if rbf { n.max(1) } else { n }
    }
}

impl Serialize for ConfirmationPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.confirmations())
    }
}

impl<'de> Deserialize<'de> for ConfirmationPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_confirmations(u32::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A report from a Lightning node or chain watcher that funds arrived (or changed).
///
/// Reports are idempotent: the same report twice, reports in any order, or a report with
/// more confirmations never count a transfer twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    pub(crate) key: TransferKey,
    pub(crate) amount: Msats,
    pub(crate) address: Option<String>,
    pub(crate) confirmations: u32,
    pub(crate) rbf: bool,
    pub(crate) reversed: bool,
    pub(crate) sequence: Option<u64>,
}

impl TransferReport {
    /// A settled Lightning payment to the invoice with `payment_hash`.
    pub fn lightning(payment_hash: PaymentHash, amount: Msats) -> Self {
        Self {
            key: TransferKey::Lightning(payment_hash),
            amount,
            address: None,
            confirmations: 0,
            rbf: false,
            reversed: false,
            sequence: None,
        }
    }

    /// An on-chain output paying `amount` to `address`, seen with no confirmation yet;
    /// [`confirmations`](Self::confirmations) and [`signals_rbf`](Self::signals_rbf) add what
    /// the watcher knows.
    ///
    /// The output is anything that converts into an [`OutPoint`]: the crate's own, or (feature
    /// `onchain`) a `bitcoin::OutPoint`. However the txid was obtained (from the `bitcoin`
    /// crate, its bytes or its text) the transfer key is the same, so it is counted once.
    ///
    /// ```
    /// use bitcoin_checkout::{OutPoint, Sats, TransferReport, Txid};
    ///
    /// let txid: Txid = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".parse()?;
    /// let report = TransferReport::onchain(OutPoint::new(txid, 0), "bcrt1qexample", Sats::new(5_000))
    ///     .confirmations(1)
    ///     .signals_rbf(false);
    /// assert_eq!(report.key().to_string(), format!("{txid}:0"));
    /// assert_eq!(report.address(), Some("bcrt1qexample"));
    /// # Ok::<(), bitcoin_checkout::Error>(())
    /// ```
    pub fn onchain(
        outpoint: impl Into<OutPoint>,
        address: impl Into<String>,
        amount: Sats,
    ) -> Self {
        Self {
            key: TransferKey::Onchain(outpoint.into()),
            amount: amount.to_msats(),
            address: Some(address.into()),
            confirmations: 0,
            rbf: false,
            reversed: false,
            sequence: None,
        }
    }

    /// Sets the confirmations the transaction has (0 if unconfirmed, the default). A report
    /// with more confirmations than an earlier one raises the transfer's; fewer never lower
    /// them. A Lightning report keeps 0: it has no confirmations.
    ///
    /// ```
    /// use bitcoin_checkout::{OutPoint, Sats, TransferReport, Txid};
    ///
    /// let output = OutPoint::new(Txid::from_byte_array([1; 32]), 0);
    /// let seen = TransferReport::onchain(output, "bcrt1qexample", Sats::new(1_000));
    /// let confirmed = seen.clone().confirmations(6);
    /// assert_eq!(seen.key(), confirmed.key()); // the same transfer, further along
    /// ```
    #[must_use]
    pub fn confirmations(mut self, confirmations: u32) -> Self {
        if let TransferKey::Onchain(_) = self.key {
            self.confirmations = confirmations;
        }
        self
    }

    /// Marks the transaction as signalling replace-by-fee (or not, the default).
    #[must_use]
    pub fn signals_rbf(mut self, rbf: bool) -> Self {
        self.rbf = rbf;
        self
    }

    /// Marks the transfer as reversed (double spent, or its block reorganised away).
    #[must_use]
    pub fn reversed(mut self) -> Self {
        self.reversed = true;
        self
    }

    /// Makes the report a **view**: the reporter's whole knowledge of the output at its
    /// observation number `sequence`, which replaces what earlier views said. A chain
    /// watcher reports this way, because the chain can take back what it showed: a view may
    /// lower the confirmations (its block was reorganised away), reverse the transfer (a
    /// conflicting transaction won) or restore it (the reorganisation was undone).
    ///
    /// Views apply in sequence order, whatever order they arrive in: a view whose sequence
    /// is not above the last applied one changes nothing, and once a transfer has had a view,
    /// reports without a sequence change nothing either (one authority per transfer). A
    /// transfer moved by views counts while its latest view confirms it enough, not forever
    /// once it counted. Without a sequence a report only adds facts (see
    /// [`confirmations`](Self::confirmations)). Lightning reports ignore it: a settled
    /// invoice stays settled.
    ///
    /// ```
    /// use bitcoin_checkout::{OutPoint, Sats, TransferReport, Txid};
    ///
    /// let output = OutPoint::new(Txid::from_byte_array([1; 32]), 0);
    /// let seen = TransferReport::onchain(output, "bcrt1qexample", Sats::new(1_000));
    /// let confirmed = seen.clone().confirmations(1).sequenced(7);
    /// let reorganised = seen.sequenced(8); // back to 0 confirmations
    /// assert_eq!(confirmed.sequence(), Some(7));
    /// assert_eq!(reorganised.sequence(), Some(8));
    /// ```
    #[must_use]
    pub fn sequenced(mut self, sequence: u64) -> Self {
        if let TransferKey::Onchain(_) = self.key {
            self.sequence = Some(sequence);
        }
        self
    }

    /// The view's sequence number, if the report is a view ([`sequenced`](Self::sequenced)).
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// The confirmations reported.
    pub fn confirmation_count(&self) -> u32 {
        self.confirmations
    }

    /// Whether the report says the transfer is reversed.
    pub fn is_reversed(&self) -> bool {
        self.reversed
    }

    /// Whether the report says the transaction signals replace-by-fee.
    pub fn is_rbf(&self) -> bool {
        self.rbf
    }

    /// The transfer's natural id.
    pub fn key(&self) -> TransferKey {
        self.key
    }

    /// The amount reported.
    pub fn amount(&self) -> Msats {
        self.amount
    }

    /// The on-chain address paid, for on-chain reports.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }
}

/// When a transfer was first seen, relative to what the session expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Arrival {
    /// While the session was active and its quote's rate lock held.
    Expected,
    /// While the session was active, but after its quote's `expires_at` (expired, or partly
    /// paid and not replaced yet): it counts at that quote's rate and is flagged so the
    /// merchant can review the rate risk.
    AfterQuoteExpiry,
    /// After the session was paid: an overpayment, recorded and flagged.
    AfterPaid,
    /// After the session was deactivated: late funds, recorded and flagged.
    AfterDeactivated,
}

/// One recorded transfer. Its amount, payment and arrival are fixed when first seen;
/// confirmations only grow and a reversal is final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The natural id.
    pub key: TransferKey,
    /// The payment (quote) it is attributed to; it counts at that quote's rate.
    pub payment_id: PaymentId,
    /// The amount, in msats (whole sats for on-chain).
    #[serde(rename = "amount_msat")]
    pub amount: Msats,
    /// Where it stood when first seen.
    pub arrival: Arrival,
    /// Confirmations (on-chain; 0 for Lightning).
    pub confirmations: u32,
    /// Whether the transaction signals replace-by-fee.
    pub rbf: bool,
    /// Whether it was reversed (double spend, reorg).
    pub reversed: bool,
    /// When it was first reported.
    #[serde(with = "crate::json::millis")]
    pub first_seen: OffsetDateTime,
    /// When it first counted towards the session (confirmed enough), if ever.
    #[serde(with = "crate::json::millis_option")]
    pub counted_at: Option<OffsetDateTime>,
    /// The sequence number of the last view applied, for a transfer moved by views
    /// ([`TransferReport::sequenced`]): its confirmations and reversal are then the latest
    /// view's, and it counts only while that view confirms it enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl Transfer {
    /// Whether the funds are still there (not reversed), counted or pending.
    pub fn is_received(&self) -> bool {
        !self.reversed
    }

    /// Whether the transfer is confirmed enough under `policy` and not reversed. Once a
    /// transfer reported by plain reports has counted it keeps counting until it is
    /// reversed: only a reversal takes counted money away. One moved by views
    /// ([`sequence`](Self::sequence)) counts while its latest view confirms it enough.
    pub fn meets(&self, policy: ConfirmationPolicy) -> bool {
        !self.reversed
            && ((self.counted_at.is_some() && self.sequence.is_none())
                || match self.key {
                    TransferKey::Lightning(_) => true,
                    TransferKey::Onchain { .. } => self.confirmations >= policy.required(self.rbf),
                })
    }

    /// Whether it counts towards the session's total (expected, not reversed, confirmed).
    pub fn counts(&self, policy: ConfirmationPolicy) -> bool {
        self.is_credited_arrival() && self.meets(policy)
    }

    /// Whether its arrival lets it count towards the price at all.
    pub(crate) fn is_credited_arrival(&self) -> bool {
        matches!(self.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry)
    }
}
