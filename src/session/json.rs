//! The JSON shape of sessions and payments: Speed's objects, plus this crate's facts
//! (transfers, flags) so that a session read back from JSON is the same session.
//!
//! Derived fields (`amount_paid`, `target_amount_paid`, `flags`, …) are written for readers
//! and ignored when reading: they are recomputed from the facts.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::strict::{Written, only_known_fields};

mod decode;
mod memo;
use super::{
    Branding, CheckoutSession, DeactivationReason, Details, Flag, HeldTotals, SessionLimits,
    SessionState, SessionStatus,
};
use crate::error::Error;
use crate::id::{PaymentId, SessionId};
use crate::json::MaybeKnown;
use crate::metadata::Metadata;
use crate::money::{Currency, ExchangeRate, Sats, TargetCurrency};
use crate::payment::{LightningInvoice, PaymentRequest};
use crate::payment::{Payment, PaymentState, PaymentStatus};
use crate::transfer::{ConfirmationPolicy, PaymentMethod, Transfer};
use decode::{only_newest_unpaid, payment_from_wire, session_from_wire, stored_session};
pub(crate) use memo::PaymentTexts;

#[derive(Serialize, Deserialize)]
struct LightningOption {
    payment_request: String,
    payment_hash: crate::hash::PaymentHash,
    #[serde(with = "crate::json::millis")]
    expires_at: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
struct OnchainOption {
    address: String,
}

#[derive(Serialize, Deserialize, Default)]
struct MethodOptions {
    #[serde(default)]
    lightning: Option<LightningOption>,
    #[serde(default)]
    onchain: Option<OnchainOption>,
}

/// `source_id` as the client gave it: text, or an integer echoed as one.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SourceIdWire {
    Integer(i64),
    Text(String),
}

/// Speed's payment object.
#[derive(Serialize, Deserialize)]
struct PaymentWire {
    id: PaymentId,
    object: String,
    status: MaybeKnown<PaymentStatus>,
    checkout_session: SessionId,
    currency: Currency,
    #[serde(with = "crate::json::decimal_number")]
    amount: Decimal,
    #[serde(with = "crate::json::decimal_number")]
    exchange_rate: Decimal,
    exchange_rate_source: String,
    #[serde(with = "crate::json::millis")]
    exchange_rate_fetched_at: OffsetDateTime,
    target_currency: TargetCurrency,
    #[serde(with = "crate::json::decimal_number")]
    target_amount: Decimal,
    #[serde(default, with = "crate::json::decimal_number_option")]
    target_amount_paid: Option<Decimal>,
    #[serde(default)]
    payment_method_options: MethodOptions,
    #[serde(with = "crate::json::millis")]
    created: OffsetDateTime,
    #[serde(default, with = "crate::json::millis_option")]
    modified: Option<OffsetDateTime>,
    #[serde(with = "crate::json::millis")]
    expires_at: OffsetDateTime,
    #[serde(default, with = "crate::json::millis_option")]
    paid_at: Option<OffsetDateTime>,
    #[serde(default, with = "crate::json::millis_option")]
    expired_at: Option<OffsetDateTime>,
    #[serde(default, with = "crate::json::millis_option")]
    cancelled_at: Option<OffsetDateTime>,
}

/// Speed's checkout session object.
#[derive(Serialize, Deserialize)]
struct SessionWire {
    id: SessionId,
    object: String,
    livemode: bool,
    status: MaybeKnown<SessionStatus>,
    currency: Currency,
    #[serde(with = "crate::json::decimal_number")]
    amount: Decimal,
    target_currency: TargetCurrency,
    ttl: i64,
    payment_methods: Vec<MaybeKnown<PaymentMethod>>,
    confirmations: ConfirmationPolicy,
    #[serde(with = "crate::json::decimal_number")]
    amount_paid_tolerance: Decimal,
    statement_descriptor: Option<String>,
    description: Option<String>,
    success_url: Option<String>,
    success_message: Option<String>,
    cancel_url: Option<String>,
    title: Option<String>,
    title_description: Option<String>,
    title_image: Option<String>,
    source: Option<String>,
    source_id: Option<SourceIdWire>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default, with = "crate::json::decimal_number_option")]
    amount_paid: Option<Decimal>,
    #[serde(default, with = "crate::json::decimal_number_option")]
    target_amount_paid: Option<Decimal>,
    #[serde(default, with = "crate::json::decimal_number_option")]
    target_amount_pending: Option<Decimal>,
    onchain_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<crate::id::LinkId>,
    payments: Listing,
    /// How many payments the session has (the list may show only the newest).
    #[serde(default)]
    payments_count: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    transfers: Vec<Transfer>,
    // Derived: written for readers, never read back (so unknown kinds cannot fail a read).
    #[serde(default, skip_deserializing)]
    flags: Vec<Flag>,
    /// The caps on quotes and transfers, when not the defaults.
    #[serde(default, skip_serializing_if = "SessionLimits::is_default")]
    limits: SessionLimits,
    /// Transfers beyond the transfer cap, recorded apart (absent while there are none).
    #[serde(default, skip_serializing_if = "HeldTotals::is_empty")]
    held_transfers: HeldTotals,
    /// What the merchant did about flagged money (facts, kept as recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resolutions: Vec<super::Resolution>,
    #[serde(default, with = "crate::json::millis_option")]
    paid_at: Option<OffsetDateTime>,
    #[serde(default, with = "crate::json::millis_option")]
    deactivated_at: Option<OffsetDateTime>,
    /// Why it was deactivated (absent while it is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deactivation_reason: Option<MaybeKnown<DeactivationReason>>,
    /// When it deactivates itself if not paid (absent: never, as on Speed).
    #[serde(
        default,
        with = "crate::json::millis_option",
        skip_serializing_if = "Option::is_none"
    )]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "crate::json::millis")]
    created: OffsetDateTime,
    #[serde(with = "crate::json::millis")]
    modified: OffsetDateTime,
    #[serde(default)]
    version: u64,
}

/// How many of the newest payments an event's session snapshot lists.
pub const EVENT_PAYMENTS: usize = 5;

/// Which payments a session's JSON lists.
enum Payments {
    All,
    Newest(usize),
}

/// A session's list of payments: read as payment objects; written from them, or from
/// their remembered texts ([`PaymentTexts`]), which give the same bytes.
enum Listing {
    Wires(Vec<PaymentWire>),
    Texts(Vec<Box<RawValue>>),
}

impl Listing {
    /// The payments read (none for texts, which are only written).
    fn wires(&self) -> &[PaymentWire] {
        match self {
            Listing::Wires(w) => w,
            Listing::Texts(_) => &[],
        }
    }

    fn into_wires(self) -> Vec<PaymentWire> {
        match self {
            Listing::Wires(w) => w,
            Listing::Texts(_) => Vec::new(),
        }
    }
}

impl Serialize for Listing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Listing::Wires(w) => w.serialize(s),
            Listing::Texts(t) => t.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Listing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<PaymentWire>::deserialize(d).map(Listing::Wires)
    }
}

/// `None` for zero, as Speed writes `null` until something is paid.
pub(super) fn nonzero(d: Decimal) -> Option<Decimal> {
    (!d.is_zero()).then_some(d)
}

impl CheckoutSession {
    fn payment_wire(&self, p: &Payment) -> PaymentWire {
        let (paid_at, expired_at, cancelled_at) = match p.state {
            PaymentState::Unpaid => (None, None, None),
            PaymentState::Paid { paid_at } => (Some(paid_at), None, None),
            PaymentState::Expired { expired_at } => (None, Some(expired_at), None),
            PaymentState::Cancelled { cancelled_at } => (None, None, Some(cancelled_at)),
        };
        let target = self.target_currency;
        PaymentWire {
            id: p.id,
            object: "payment".into(),
            status: MaybeKnown::Known(p.status()),
            checkout_session: self.id,
            currency: self.currency,
            amount: p.due,
            exchange_rate: p.rate.rate(),
            exchange_rate_source: p.rate.source().to_owned(),
            exchange_rate_fetched_at: p.rate.fetched_at(),
            target_currency: target,
            target_amount: target.from_msats(p.target_msats()),
            target_amount_paid: nonzero(target.from_msats(self.received_for(p.id))),
            payment_method_options: MethodOptions {
                lightning: p.request.lightning.as_ref().map(|l| LightningOption {
                    payment_request: l.payment_request.clone(),
                    payment_hash: l.payment_hash,
                    expires_at: l.expires_at,
                }),
                onchain: p
                    .request
                    .onchain_address
                    .as_ref()
                    .map(|a| OnchainOption { address: a.clone() }),
            },
            created: p.created,
            modified: Some(p.modified),
            expires_at: p.expires_at,
            paid_at,
            expired_at,
            cancelled_at,
        }
    }

    fn wire(&self) -> SessionWire {
        let mut w = self.head_wire(Payments::All);
        let mut transfers: Vec<Transfer> = self.transfers.values().cloned().collect();
        transfers.sort_by_key(|t| (t.first_seen, t.key));
        w.transfers = transfers;
        w
    }

    /// The payments `payments` selects, oldest first.
    fn listed(&self, payments: Payments) -> &[std::sync::Arc<Payment>] {
        match payments {
            Payments::All => &self.payments[..],
            Payments::Newest(n) => &self.payments[self.payments.len().saturating_sub(n)..],
        }
    }

    /// Everything but the transfers (whose totals and flags it still carries), with the
    /// payments chosen by `payments`.
    fn head_wire(&self, payments: Payments) -> SessionWire {
        let listed = self.listed(payments);
        let totals = self.totals();
        let target = self.target_currency;
        let (paid_at, deactivated_at, deactivation_reason) = match self.state {
            SessionState::Active => (None, None, None),
            SessionState::Paid { paid_at } => (Some(paid_at), None, None),
            SessionState::Deactivated {
                deactivated_at,
                reason,
            } => (None, Some(deactivated_at), Some(MaybeKnown::Known(reason))),
        };
        let d = &self.details;
        SessionWire {
            id: self.id,
            object: "checkout_session".into(),
            livemode: self.livemode,
            status: MaybeKnown::Known(self.status()),
            currency: self.currency,
            amount: self.amount,
            target_currency: target,
            ttl: self.ttl_secs,
            payment_methods: self
                .payment_methods
                .iter()
                .map(|m| MaybeKnown::Known(*m))
                .collect(),
            confirmations: self.confirmations,
            amount_paid_tolerance: self.tolerance,
            statement_descriptor: self.statement_descriptor.clone(),
            description: d.description.clone(),
            success_url: d.success_url.clone(),
            success_message: d.success_message.clone(),
            cancel_url: d.cancel_url.clone(),
            title: d.branding.title.clone(),
            title_description: d.branding.title_description.clone(),
            title_image: d.branding.title_image.clone(),
            source: self.source.clone(),
            source_id: self.source_id.as_ref().map(|id| match id.parse::<i64>() {
                Ok(n) if self.source_id_integer => SourceIdWire::Integer(n),
                _ => SourceIdWire::Text(id.clone()),
            }),
            metadata: d.metadata.clone(),
            amount_paid: nonzero(totals.amount_paid),
            target_amount_paid: nonzero(target.from_msats(totals.counted)),
            target_amount_pending: nonzero(target.from_msats(totals.pending)),
            onchain_address: self.onchain_address.clone(),
            link: self.link,
            payments: Listing::Wires(listed.iter().map(|p| self.payment_wire(p)).collect()),
            payments_count: Some(self.payments.len()),
            transfers: Vec::new(),
            flags: self.flags(),
            limits: self.caps,
            held_transfers: self.held,
            // Rare and small: a copy costs nothing on the sessions that have none.
            resolutions: self.resolutions.to_vec(),
            paid_at,
            deactivated_at,
            deactivation_reason,
            expires_at: self.expires_at,
            created: self.created,
            modified: self.modified,
            version: self.version,
        }
    }

    /// The JSON of one of this session's payments (Speed's payment object), as webhook
    /// payloads carry it.
    pub fn payment_json(&self, id: PaymentId) -> Option<String> {
        self.payment_raw(id).map(raw_text)
    }

    /// [`payment_json`](Self::payment_json) as a raw JSON value, serialised straight into it
    /// (an event's object: not parsed again to be checked, it is our own serialiser's).
    pub(crate) fn payment_raw(&self, id: PaymentId) -> Option<Box<RawValue>> {
        let p = self.payments.iter().find(|p| p.id == id)?;
        self.payment_text(p)
    }

    /// `p`'s JSON, remembered while `p` and what it received stay the same (ADR 27).
    fn payment_text(&self, p: &std::sync::Arc<Payment>) -> Option<Box<RawValue>> {
        self.texts.get_or_write(p, self.received_for(p.id), || {
            serde_json::value::to_raw_value(&self.payment_wire(p)).ok()
        })
    }

    /// The session's JSON without transfers, listing the payments `payments` chooses from
    /// their remembered texts.
    fn head_wire_texts(&self, payments: Payments) -> Option<SessionWire> {
        let listed = self.listed(payments);
        let texts = listed
            .iter()
            .map(|p| self.payment_text(p))
            .collect::<Option<Vec<_>>>()?;
        let mut wire = self.head_wire(Payments::Newest(0));
        wire.payments = Listing::Texts(texts);
        Some(wire)
    }

    /// [`event_json`](Self::event_json) as a raw JSON value (see
    /// [`payment_raw`](Self::payment_raw)).
    pub(crate) fn event_raw(&self) -> Option<Box<RawValue>> {
        let wire = self.head_wire_texts(Payments::Newest(EVENT_PAYMENTS))?;
        serde_json::value::to_raw_value(&wire).ok()
    }

    /// The session's JSON without its list of transfers (totals and flags included), with
    /// every payment (the test kit's round trips).
    #[cfg(feature = "testkit")]
    pub(crate) fn head_json(&self) -> String {
        self.head_wire_texts(Payments::All)
            .and_then(|wire| serde_json::to_string(&wire).ok())
            .unwrap_or_default()
    }

    /// The session as event payloads carry it: its JSON without transfers, listing only the
    /// newest [`EVENT_PAYMENTS`] payments (`payments_count` says how many there are), so a
    /// payload stays small however many partial payments a session had.
    pub fn event_json(&self) -> String {
        self.event_raw().map(raw_text).unwrap_or_default()
    }

    /// The head of the session's row in stores that keep payments and transfers as rows of
    /// their own: no payments, no transfers (see [`crate::store::rows`]).
    pub(crate) fn row_head_json(&self) -> String {
        serde_json::to_string(&self.head_wire(Payments::Newest(0))).unwrap_or_default()
    }

    /// Rebuilds a session from [`row_head_json`](Self::row_head_json), its payments'
    /// [`payment_json`](Self::payment_json) (any order) and its transfers; the error says
    /// what does not fit.
    pub(crate) fn from_rows<'a>(
        head: &str,
        payments: impl IntoIterator<Item = &'a str>,
        transfers: impl IntoIterator<Item = Transfer>,
    ) -> Result<Self, String> {
        let mut session = stored_session(head)?;
        let target = session.target_currency;
        for text in payments {
            let wire: PaymentWire = crate::json::read(text).map_err(|e| e.to_string())?;
            if wire.checkout_session != session.id
                || wire.currency != session.currency
                || wire.target_currency != target
            {
                return Err(format!("payment {} belongs to another session", wire.id));
            }
            if session.payments.iter().any(|p| p.id == wire.id) {
                return Err(format!("payment {} is listed twice", wire.id));
            }
            session.payments_mut().push(std::sync::Arc::new(
                payment_from_wire(wire, target).map_err(|e| e.to_string())?,
            ));
        }
        // Quotes are issued one after another: creation time, then the time-ordered id.
        session.payments_mut().sort_by_key(|p| (p.created, p.id));
        only_newest_unpaid(&session.payments).map_err(|e| e.to_string())?;
        session.ledger.make_room(session.payments.len());
        session
            .add_transfers(transfers)
            .map_err(|e| e.to_string())?;
        Ok(session)
    }

    /// Rebuilds a session from [`head_json`](Self::head_json) and its transfers (the
    /// SQLite store's upgrade of schema 2 rows, and the test kit's round trips).
    #[cfg(any(feature = "sqlite", feature = "testkit"))]
    pub(crate) fn from_parts(
        head: &str,
        transfers: impl IntoIterator<Item = Transfer>,
    ) -> Result<Self, String> {
        let mut session = stored_session(head)?;
        session
            .add_transfers(transfers)
            .map_err(|e| e.to_string())?;
        Ok(session)
    }

    /// Adds decoded transfers, each of which must belong to one of the payments and be
    /// new.
    fn add_transfers(
        &mut self,
        transfers: impl IntoIterator<Item = Transfer>,
    ) -> Result<(), Error> {
        for t in transfers {
            if !self.payments.iter().any(|p| p.id == t.payment_id) {
                return Err(Error::Json(format!("transfer {} has no payment", t.key)));
            }
            if self.transfers.contains_key(&t.key) {
                return Err(Error::Json(format!("transfer {} is listed twice", t.key)));
            }
            self.put_transfer_fact(t);
        }
        Ok(())
    }

    /// Reads a session from its JSON (as [`to_json`](Self::to_json) writes it), exactly
    /// or not at all.
    ///
    /// Refused, each with a typed error: a decimal a `Decimal` cannot hold exactly
    /// ([`Error::InexactDecimal`]); a status or payment method this version does not know
    /// ([`Error::UnknownValue`]) or a field it does not write ([`Error::UnknownField`]), as
    /// an object from a newer API version has; and JSON that is not a whole session, whose
    /// totals or `payments_count` differ from what its payments and transfers give
    /// ([`Error::DerivedMismatch`]), as a webhook payload's `data.object` (which lists only
    /// the newest payments and no transfers). Read those with
    /// [`SessionSnapshot`](crate::snapshot::SessionSnapshot), which keeps every field.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        only_known_fields(text)?;
        let wire: SessionWire = crate::json::read(text)?;
        let written = Written::of(&wire);
        let session = session_from_wire(wire)?;
        written.check(&session)?;
        Ok(session)
    }

    /// Writes the session as JSON.
    pub fn to_json(&self) -> String {
        // Serializing owned strings, numbers and maps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for CheckoutSession {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.wire().serialize(s)
    }
}

/// A raw JSON value's text, without copying it.
fn raw_text(raw: Box<RawValue>) -> String {
    Box::<str>::from(raw).into_string()
}

/// Reads as [`CheckoutSession::from_json`] does (with the same refusals); like the
/// crate's decimals it needs `serde_json`'s `from_str`/`from_slice`/`from_reader`.
impl<'de> Deserialize<'de> for CheckoutSession {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(d)?;
        CheckoutSession::from_json(raw.get()).map_err(crate::json::refuse)
    }
}
