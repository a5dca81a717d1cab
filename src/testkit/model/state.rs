//! The model's state: its quotes, transfers and the [`ReferenceSession`] itself, with the
//! integer helpers (millisecond times, events, exact rounding) the model computes with.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::inputs::RateSpec;
use crate::event::{EventType, SessionEvent};
use crate::id::PaymentId;
use crate::metadata::MetadataValue;
use crate::money::{Currency, MSATS_PER_SAT, Msats, Sats, TargetCurrency};
use crate::payment::PaymentState;
use crate::request::PaymentHash;
use crate::session::SessionState;
use crate::transfer::{Arrival, TransferKey};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Details {
    pub(super) description: Option<String>,
    pub(super) metadata: BTreeMap<String, MetadataValue>,
    pub(super) success_url: Option<String>,
    pub(super) success_message: Option<String>,
}

/// One quote of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPayment {
    pub(super) id: PaymentId,
    pub(super) due_minor: u128,
    pub(super) target: Sats,
    pub(super) rate: RateSpec,
    pub(super) created: OffsetDateTime,
    pub(super) expires_at: OffsetDateTime,
    pub(super) state: PaymentState,
    pub(super) invoice: Option<PaymentHash>,
}

impl ModelPayment {
    /// The payment's id.
    pub fn id(&self) -> PaymentId {
        self.id
    }

    /// The base amount the quote covers, in minor units.
    pub fn due_minor(&self) -> u128 {
        self.due_minor
    }

    /// What the quote asks for: `ceil(due × rate)` sats.
    pub fn target(&self) -> Sats {
        self.target
    }

    /// The target in msats.
    pub fn target_msats(&self) -> u128 {
        u128::from(self.target.get()) * u128::from(MSATS_PER_SAT)
    }

    /// The locked rate.
    pub fn rate(&self) -> RateSpec {
        self.rate
    }

    /// When it was issued.
    pub fn created(&self) -> OffsetDateTime {
        self.created
    }

    /// When it runs out.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// Its state.
    pub fn state(&self) -> PaymentState {
        self.state
    }

    /// The payment hash of its invoice, when Lightning is enabled.
    pub fn invoice(&self) -> Option<PaymentHash> {
        self.invoice
    }

    pub(super) fn unpaid(&self) -> bool {
        matches!(self.state, PaymentState::Unpaid)
    }
}

/// What the model expects [`CheckoutSession::next_quote`](crate::CheckoutSession::next_quote)
/// to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedQuote {
    /// The remaining due, in minor units of the base currency.
    pub due_minor: u128,
    /// `ceil(due × rate)` in whole sats.
    pub target: Sats,
    /// When the quote is issued (`now`, to the millisecond).
    pub issued_at: OffsetDateTime,
    /// When it will run out.
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ModelTransfer {
    pub(super) payment: usize,
    pub(super) amount: u64,
    pub(super) arrival: Arrival,
    pub(super) confirmations: u32,
    pub(super) rbf: bool,
    pub(super) reversed: bool,
    pub(super) onchain: bool,
    pub(super) first_seen: OffsetDateTime,
    pub(super) counted_at: Option<OffsetDateTime>,
}

impl ModelTransfer {
    pub(super) fn credited(&self) -> bool {
        !self.reversed && matches!(self.arrival, Arrival::Expected | Arrival::AfterQuoteExpiry)
    }
}

/// The reference model of one checkout session.
///
/// Commands mirror [`CheckoutSession`](crate::CheckoutSession)'s and return the same
/// `Result<Vec<SessionEvent>, Error>`; like the core, a refused command leaves the model as
/// it was. Getters give everything the core exposes, computed from the specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceSession {
    pub(super) currency: Currency,
    pub(super) target_currency: TargetCurrency,
    pub(super) scale: u32,
    pub(super) amount_minor: u128,
    pub(super) tolerance_hundredths: u128,
    pub(super) confirmations: u32,
    pub(super) lightning: bool,
    pub(super) onchain: bool,
    pub(super) ttl_secs: i64,
    pub(super) expires_at: Option<OffsetDateTime>,
    pub(super) state: SessionState,
    pub(super) payments: Vec<ModelPayment>,
    pub(super) transfers: BTreeMap<TransferKey, ModelTransfer>,
    pub(super) address: Option<String>,
    pub(super) created: OffsetDateTime,
    pub(super) modified: OffsetDateTime,
    pub(super) version: u64,
    pub(super) details: Details,
    /// Msats resolved per flag kind (refunded or accepted).
    pub(super) resolved: BTreeMap<crate::session::FlagKind, u64>,
}

/// Times are kept to the millisecond.
pub(crate) fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
        .unwrap_or(t)
}

pub(crate) fn unix_ms(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1_000_000
}

pub(super) fn ev(event_type: EventType, at: OffsetDateTime) -> SessionEvent {
    SessionEvent {
        event_type,
        at,
        payment_id: None,
        transfer: None,
        amount: None,
    }
}

pub(super) fn ev_p(event_type: EventType, at: OffsetDateTime, p: PaymentId) -> SessionEvent {
    SessionEvent {
        payment_id: Some(p),
        ..ev(event_type, at)
    }
}

pub(super) fn ev_t(
    event_type: EventType,
    at: OffsetDateTime,
    p: PaymentId,
    key: TransferKey,
    amount: u64,
) -> SessionEvent {
    SessionEvent {
        payment_id: Some(p),
        transfer: Some(key),
        amount: Some(Msats::new(amount)),
        ..ev(event_type, at)
    }
}

/// `floor(a × b / c)`, saturating (the model's amounts never get near).
pub(crate) fn mul_div_floor(a: u128, b: u128, c: u128) -> u128 {
    if c == 0 {
        return u128::MAX;
    }
    if let Some(p) = a.checked_mul(b) {
        return p / c;
    }
    let (q, r) = (a / c, a % c);
    let whole = q.saturating_mul(b);
    let part = r.checked_mul(b).map_or(u128::MAX, |v| v / c);
    whole.saturating_add(part)
}

/// `ceil(a × b / c)`, saturating.
pub(super) fn mul_div_ceil(a: u128, b: u128, c: u128) -> u128 {
    if c == 0 {
        return u128::MAX;
    }
    if let Some(p) = a.checked_mul(b) {
        return p.div_ceil(c);
    }
    let floor = mul_div_floor(a, b, c);
    let exact = (a % c).checked_mul(b).is_some_and(|v| v % c == 0);
    if exact {
        floor
    } else {
        floor.saturating_add(1)
    }
}

pub(super) fn to_msats(v: u128) -> Msats {
    Msats::new(u64::try_from(v).unwrap_or(u64::MAX))
}
