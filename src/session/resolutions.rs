//! What the merchant did about unexpected money: flag resolutions (ADR 9).
//!
//! A flag is derived from the transfers (overpaid, late, paid after expiry, reversed,
//! refund due) and can grow as more money arrives; a resolution is a fact the merchant
//! records once — refunded (with the refund's reference) or accepted — for an amount of one
//! kind. Resolutions are kept like transfers, insert-only, and what remains unresolved is
//! derived: a flag's amount minus what its resolutions cover.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{CheckoutSession, FlagKind, SessionChange};
use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::json::millis::truncate;
use crate::money::Msats;

/// The longest refund reference kept (an id at the merchant's refund system).
pub const MAX_REFERENCE_CHARS: usize = 200;

/// What the merchant did with flagged money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FlagOutcome {
    /// Sent back to the customer (`reference` names the refund).
    Refunded,
    /// Kept: the merchant accepts the money (a tip, a price it honours anyway).
    Accepted,
}

/// A resolution recorded on a session: an amount of one flag kind, and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resolution {
    /// The kind of flag it resolves.
    pub kind: FlagKind,
    /// How much of it, in msats.
    #[serde(rename = "amount_msat")]
    pub amount: Msats,
    /// What was done.
    pub outcome: FlagOutcome,
    /// The refund's reference (required for a refund), or a note for an acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// When it was recorded.
    #[serde(with = "crate::json::millis")]
    pub at: OffsetDateTime,
}

/// A resolution to record with [`CheckoutSession::resolve_flag`].
///
/// ```
/// use bitcoin_checkout::session::FlagResolution;
/// use bitcoin_checkout::{FlagKind, Msats};
///
/// let refund = FlagResolution::refunded(FlagKind::Overpaid, Msats::new(5_000_000), "re_1001");
/// let tip = FlagResolution::accepted(FlagKind::Overpaid, Msats::new(1_000)).note("a tip");
/// # let _ = (refund, tip);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagResolution {
    kind: FlagKind,
    amount: Msats,
    outcome: FlagOutcome,
    reference: Option<String>,
}

impl FlagResolution {
    /// `amount` of the `kind` flag was refunded; `reference` names the refund (1 to 200
    /// characters, no control characters).
    pub fn refunded(kind: FlagKind, amount: Msats, reference: impl Into<String>) -> Self {
        Self {
            kind,
            amount,
            outcome: FlagOutcome::Refunded,
            reference: Some(reference.into()),
        }
    }

    /// `amount` of the `kind` flag is accepted as it is.
    pub fn accepted(kind: FlagKind, amount: Msats) -> Self {
        Self {
            kind,
            amount,
            outcome: FlagOutcome::Accepted,
            reference: None,
        }
    }

    /// A note kept with the resolution (its reference field).
    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.reference = Some(text.into());
        self
    }
}

impl CheckoutSession {
    /// Records what the merchant did with flagged money. Allowed in every status (flags
    /// are raised on paid and deactivated sessions too). Refused, changing nothing: a zero
    /// amount, more than the kind's unresolved amount
    /// ([`Error::ResolutionExceedsFlag`]), a refund without a reference, a reference
    /// over 200 characters or with control characters.
    pub fn resolve_flag(
        &mut self,
        resolution: &FlagResolution,
        now: OffsetDateTime,
    ) -> Result<SessionChange, Error> {
        let now = truncate(now);
        self.check_clock(now)?;
        let r = resolution;
        if r.amount == Msats::ZERO {
            return Err(Error::AmountNotPositive);
        }
        if r.outcome == FlagOutcome::Refunded && r.reference.as_deref().is_none_or(str::is_empty) {
            return Err(Error::InvalidText {
                field: "reference",
                reason: "a refund needs its reference",
            });
        }
        super::text::check_text(
            "reference",
            r.reference.as_deref(),
            MAX_REFERENCE_CHARS,
            false,
        )?;
        // What was flagged as of now (what ran out is expired first, like every command;
        // an expiring session raises its refund due): on a copy, so that a refusal changes
        // nothing. The copy shares the payments and transfers (`Arc`); resolutions are rare.
        let mut next = self.clone();
        let mut change = next.expire_due(now);
        let unresolved = next.unresolved(r.kind);
        if r.amount > unresolved {
            return Err(Error::ResolutionExceedsFlag {
                kind: r.kind.as_str(),
                requested: r.amount.get(),
                unresolved: unresolved.get(),
            });
        }
        *self = next;
        std::sync::Arc::make_mut(&mut self.resolutions).push(Resolution {
            kind: r.kind,
            amount: r.amount,
            outcome: r.outcome,
            reference: r.reference.clone(),
            at: now,
        });
        change.push(SessionEvent::new(EventType::FlagResolved, now).amount(r.amount));
        self.touch(now);
        Ok(change)
    }

    /// The resolutions recorded, in order.
    pub fn resolutions(&self) -> &[Resolution] {
        &self.resolutions
    }

    /// Msats of `kind` that resolutions cover.
    pub(crate) fn resolved(&self, kind: FlagKind) -> Msats {
        let sum: u64 = self
            .resolutions
            .iter()
            .filter(|r| r.kind == kind)
            .fold(0u64, |acc, r| acc.saturating_add(r.amount.get()));
        Msats::new(sum)
    }

    /// The flagged amount of `kind` no resolution covers.
    pub fn unresolved(&self, kind: FlagKind) -> Msats {
        self.flagged(kind).saturating_sub(self.resolved(kind))
    }

    /// Whether some flagged money has no resolution yet (what a merchant's review queue
    /// lists).
    pub fn has_unresolved_flags(&self) -> bool {
        self.flags().iter().any(|f| f.unresolved() > Msats::ZERO)
    }
}
