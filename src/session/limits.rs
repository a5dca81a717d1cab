//! Caps on what one session collects (see [`SessionLimits`]; ADR 20).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::SessionId;
use crate::money::Msats;
use crate::transfer::TransferKey;

/// Quotes a session issues at most, by default ([`SessionLimits`]): a page left open re-quotes every ttl
/// (fiat quotes live 10 minutes by default), so 50 quotes cover more than 8 hours.
pub const DEFAULT_MAX_QUOTES: u32 = 50;

/// Transfers a session keeps with it at most, by default (a session paid in more than a
/// few parts is rare; the rest are held, see [`SessionLimits`]).
pub const DEFAULT_MAX_TRANSFERS: u32 = 20;

/// The caps of one session, fixed at creation, so that a flood of dust payments cannot
/// make a session ever more expensive to load.
///
/// A session issues at most [`quotes`](Self::quotes) quotes: beyond, a new quote is refused
/// with [`Error::QuoteLimitReached`](crate::Error::QuoteLimitReached) (a page opened for
/// hours, or a re-quote after every dust payment). It keeps at most
/// [`transfers`](Self::transfers) transfers with it; every later *new* transfer is
/// **held**: recorded apart from the session (the store keeps it as a [`HeldTransfer`],
/// claiming its key like any transfer's, so a report of it again is recognised), counted
/// in the session's [`HeldTotals`], never toward the amount, and flagged
/// ([`FlagKind::Held`](super::FlagKind::Held)) for the merchant to refund or accept. The
/// first held transfer raises
/// [`TransfersHeld`](crate::event::EventType::TransfersHeld); the later ones change only
/// the totals (no event each, so a flood does not become a flood of webhooks). Transfers
/// already kept still gain confirmations and reversals as before.
///
/// ```
/// use bitcoin_checkout::session::SessionLimits;
///
/// let limits = SessionLimits::new().max_quotes(10).max_transfers(5);
/// assert_eq!((limits.quotes(), limits.transfers()), (10, 5));
/// assert_eq!(SessionLimits::default().transfers(), 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    #[serde(default = "default_quotes")]
    max_quotes: u32,
    #[serde(default = "default_transfers")]
    max_transfers: u32,
}

fn default_quotes() -> u32 {
    DEFAULT_MAX_QUOTES
}

fn default_transfers() -> u32 {
    DEFAULT_MAX_TRANSFERS
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_quotes: DEFAULT_MAX_QUOTES,
            max_transfers: DEFAULT_MAX_TRANSFERS,
        }
    }
}

impl SessionLimits {
    /// The default caps ([`DEFAULT_MAX_QUOTES`], [`DEFAULT_MAX_TRANSFERS`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` quotes (at least 1).
    pub fn max_quotes(mut self, n: u32) -> Self {
        self.max_quotes = n.max(1);
        self
    }

    /// At most `n` transfers kept with the session (at least 1); later new ones are held.
    pub fn max_transfers(mut self, n: u32) -> Self {
        self.max_transfers = n.max(1);
        self
    }

    /// The quote cap.
    pub fn quotes(&self) -> u32 {
        self.max_quotes
    }

    /// The transfer cap.
    pub fn transfers(&self) -> u32 {
        self.max_transfers
    }

    pub(crate) fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Caps read back from storage: at least 1 each, as the builder makes them.
    pub(crate) fn checked(self) -> Self {
        Self::new()
            .max_quotes(self.max_quotes)
            .max_transfers(self.max_transfers)
    }
}

/// What a session holds apart: how many transfers beyond its transfer cap
/// ([`SessionLimits`]), and their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeldTotals {
    /// Held transfers.
    pub count: u64,
    /// Their amounts, summed (msats; saturates).
    #[serde(rename = "amount_msat")]
    pub amount: Msats,
}

impl HeldTotals {
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A transfer beyond its session's transfer cap, as the store keeps it apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeldTransfer {
    /// The transfer's key (claimed for the session like any transfer's).
    pub key: TransferKey,
    /// The session it was sent to.
    pub session_id: SessionId,
    /// Its amount.
    #[serde(rename = "amount_msat")]
    pub amount: Msats,
    /// The on-chain address it paid, if on-chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// When it was first reported.
    #[serde(with = "crate::json::millis")]
    pub seen_at: OffsetDateTime,
}

impl HeldTransfer {
    /// Its stored form (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads [`to_json`](Self::to_json).
    pub fn from_json(text: &str) -> Result<Self, crate::Error> {
        serde_json::from_str(text).map_err(|e| crate::Error::Json(e.to_string()))
    }
}
