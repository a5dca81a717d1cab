//! The JSON shape of sessions and payments: Speed's objects, plus this crate's facts
//! (transfers, flags) so that a session read back from JSON is the same session.
//!
//! Derived fields (`amount_paid`, `target_amount_paid`, `flags`, …) are written for readers
//! and ignored when reading: they are recomputed from the facts.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use super::{Branding, CheckoutSession, Details, Flag, SessionState, SessionStatus};
use crate::error::Error;
use crate::id::{PaymentId, SessionId};
use crate::metadata::Metadata;
use crate::money::{Currency, ExchangeRate, Sats, TargetCurrency};
use crate::payment::{LightningInvoice, PaymentRequest};
use crate::payment::{Payment, PaymentState, PaymentStatus};
use crate::transfer::{ConfirmationPolicy, PaymentMethod, Transfer};

/// A payment method as read from JSON: unknown methods from newer API versions are kept
/// apart instead of failing the whole object.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum MethodWire {
    Known(PaymentMethod),
    Other(String),
}

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

/// Speed's payment object.
#[derive(Serialize, Deserialize)]
struct PaymentWire {
    id: PaymentId,
    object: String,
    status: PaymentStatus,
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
    status: SessionStatus,
    currency: Currency,
    #[serde(with = "crate::json::decimal_number")]
    amount: Decimal,
    target_currency: TargetCurrency,
    ttl: i64,
    payment_methods: Vec<MethodWire>,
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
    source_id: Option<String>,
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
    payments: Vec<PaymentWire>,
    /// How many payments the session has (the list may show only the newest).
    #[serde(default, skip_deserializing)]
    payments_count: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    transfers: Vec<Transfer>,
    // Derived: written for readers, never read back (so unknown kinds cannot fail a read).
    #[serde(default, skip_deserializing)]
    flags: Vec<Flag>,
    #[serde(default, with = "crate::json::millis_option")]
    paid_at: Option<OffsetDateTime>,
    #[serde(default, with = "crate::json::millis_option")]
    deactivated_at: Option<OffsetDateTime>,
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

/// `None` for zero, as Speed writes `null` until something is paid.
fn nonzero(d: Decimal) -> Option<Decimal> {
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
            status: p.status(),
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

    /// Everything but the transfers (whose totals and flags it still carries), with the
    /// payments chosen by `payments`.
    fn head_wire(&self, payments: Payments) -> SessionWire {
        let listed = match payments {
            Payments::All => &self.payments[..],
            Payments::Newest(n) => &self.payments[self.payments.len().saturating_sub(n)..],
        };
        let totals = self.totals();
        let target = self.target_currency;
        let (paid_at, deactivated_at) = match self.state {
            SessionState::Active => (None, None),
            SessionState::Paid { paid_at } => (Some(paid_at), None),
            SessionState::Deactivated { deactivated_at } => (None, Some(deactivated_at)),
        };
        let d = &self.details;
        SessionWire {
            id: self.id,
            object: "checkout_session".into(),
            livemode: self.livemode,
            status: self.status(),
            currency: self.currency,
            amount: self.amount,
            target_currency: target,
            ttl: self.ttl_secs,
            payment_methods: self
                .payment_methods
                .iter()
                .map(|m| MethodWire::Known(*m))
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
            source_id: self.source_id.clone(),
            metadata: d.metadata.clone(),
            amount_paid: nonzero(totals.amount_paid),
            target_amount_paid: nonzero(target.from_msats(totals.counted)),
            target_amount_pending: nonzero(target.from_msats(totals.pending)),
            onchain_address: self.onchain_address.clone(),
            link: self.link,
            payments: listed.iter().map(|p| self.payment_wire(p)).collect(),
            payments_count: Some(self.payments.len()),
            transfers: Vec::new(),
            flags: self.flags(),
            paid_at,
            deactivated_at,
            created: self.created,
            modified: self.modified,
            version: self.version,
        }
    }

    /// The JSON of one of this session's payments (Speed's payment object), as webhook
    /// payloads carry it.
    pub fn payment_json(&self, id: PaymentId) -> Option<String> {
        let p = self.payments.iter().find(|p| p.id == id)?;
        serde_json::to_string(&self.payment_wire(p)).ok()
    }

    /// The session's JSON without its list of transfers (totals and flags included), with
    /// every payment.
    #[cfg(any(feature = "sqlite", feature = "testkit"))]
    pub(crate) fn head_json(&self) -> String {
        serde_json::to_string(&self.head_wire(Payments::All)).unwrap_or_default()
    }

    /// The session as event payloads carry it: its JSON without transfers, listing only the
    /// newest [`EVENT_PAYMENTS`] payments (`payments_count` says how many there are), so a
    /// payload stays small however many partial payments a session had.
    pub fn event_json(&self) -> String {
        serde_json::to_string(&self.head_wire(Payments::Newest(EVENT_PAYMENTS))).unwrap_or_default()
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
        let mut session: Self = serde_json::from_str(head).map_err(|e| e.to_string())?;
        let target = session.target_currency;
        for text in payments {
            let wire: PaymentWire = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if wire.checkout_session != session.id
                || wire.currency != session.currency
                || wire.target_currency != target
            {
                return Err(format!("payment {} belongs to another session", wire.id));
            }
            if session.payments.iter().any(|p| p.id == wire.id) {
                return Err(format!("payment {} is listed twice", wire.id));
            }
            session
                .payments_mut()
                .push(std::sync::Arc::new(payment_from_wire(wire, target)?));
        }
        // Quotes are issued one after another: creation time, then the time-ordered id.
        session.payments_mut().sort_by_key(|p| (p.created, p.id));
        only_newest_unpaid(&session.payments)?;
        session.ledger.make_room(session.payments.len());
        session.add_transfers(transfers)?;
        Ok(session)
    }

    /// Rebuilds a session from [`head_json`](Self::head_json) and its transfers (the
    /// SQLite store's upgrade of schema 2 rows, and the test kit's round trips).
    #[cfg(any(feature = "sqlite", feature = "testkit"))]
    pub(crate) fn from_parts(
        head: &str,
        transfers: impl IntoIterator<Item = Transfer>,
    ) -> Result<Self, String> {
        let mut session: Self = serde_json::from_str(head).map_err(|e| e.to_string())?;
        session.add_transfers(transfers)?;
        Ok(session)
    }

    /// Adds decoded transfers, each of which must belong to one of the payments and be
    /// new.
    fn add_transfers(
        &mut self,
        transfers: impl IntoIterator<Item = Transfer>,
    ) -> Result<(), String> {
        for t in transfers {
            if !self.payments.iter().any(|p| p.id == t.payment_id) {
                return Err(format!("transfer {} has no payment", t.key));
            }
            if self.transfers.contains_key(&t.key) {
                return Err(format!("transfer {} is listed twice", t.key));
            }
            self.put_transfer_fact(t);
        }
        Ok(())
    }

    /// Reads a session from its JSON (as written by `serde_json::to_string`).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| Error::Json(e.to_string()))
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

fn payment_from_wire(w: PaymentWire, target: TargetCurrency) -> Result<Payment, String> {
    let due_minor = crate::money::to_minor_units(w.amount, w.currency.scale())
        .and_then(|m| u128::try_from(m).ok())
        .ok_or("payment amount has more decimals than its currency")?;
    let state = match (w.status, w.paid_at, w.expired_at, w.cancelled_at) {
        (PaymentStatus::Unpaid, ..) => PaymentState::Unpaid,
        (PaymentStatus::Paid, Some(paid_at), ..) => PaymentState::Paid { paid_at },
        (PaymentStatus::Expired, _, Some(expired_at), _) => PaymentState::Expired { expired_at },
        (PaymentStatus::Cancelled, _, _, Some(cancelled_at)) => {
            PaymentState::Cancelled { cancelled_at }
        }
        (status, ..) => return Err(format!("payment status {status:?} without its time")),
    };
    let sats = match target {
        TargetCurrency::Sats => Some(w.target_amount),
        TargetCurrency::Btc => w
            .target_amount
            .checked_mul(Decimal::from(crate::money::SATS_PER_BTC)),
    }
    .ok_or("target_amount out of range")?;
    if !sats.fract().is_zero() {
        return Err("target_amount is not a whole number of sats".into());
    }
    let sats = u64::try_from(sats).map_err(|_| "target_amount out of range".to_string())?;
    let rate = ExchangeRate::new(
        w.currency,
        w.target_currency,
        w.exchange_rate,
        w.exchange_rate_source,
        w.exchange_rate_fetched_at,
    )
    .map_err(|e| e.to_string())?;
    // JSON drops trailing zeros; show the due amount at its currency's scale again.
    let mut due = w.amount;
    due.rescale(w.currency.scale());
    Ok(Payment {
        id: w.id,
        due,
        due_minor,
        target: Sats::checked(sats).map_err(|e| e.to_string())?,
        rate,
        request: PaymentRequest {
            lightning: w
                .payment_method_options
                .lightning
                .map(|l| LightningInvoice {
                    payment_request: l.payment_request,
                    payment_hash: l.payment_hash,
                    expires_at: l.expires_at,
                }),
            onchain_address: w.payment_method_options.onchain.map(|o| o.address),
        },
        state,
        created: w.created,
        modified: w.modified.unwrap_or(w.created),
        expires_at: w.expires_at,
    })
}

/// Refuses payments where one but the newest is unpaid: the commands never make such a
/// session (a quote is issued only once the one before is no longer open), and the
/// session relies on it to look for the open quote at the newest alone.
fn only_newest_unpaid(payments: &[std::sync::Arc<Payment>]) -> Result<(), String> {
    match payments.iter().rev().skip(1).find(|p| p.state.is_unpaid()) {
        Some(p) => Err(format!("payment {} is unpaid but not the newest", p.id)),
        None => Ok(()),
    }
}

fn session_from_wire(w: SessionWire) -> Result<CheckoutSession, String> {
    let state = match (w.status, w.paid_at, w.deactivated_at) {
        (SessionStatus::Active, ..) => SessionState::Active,
        (SessionStatus::Paid, Some(paid_at), _) => SessionState::Paid { paid_at },
        (SessionStatus::Deactivated, _, Some(deactivated_at)) => {
            SessionState::Deactivated { deactivated_at }
        }
        (status, ..) => return Err(format!("session status {status:?} without its time")),
    };
    let methods: BTreeSet<PaymentMethod> = w
        .payment_methods
        .into_iter()
        .filter_map(|m| match m {
            MethodWire::Known(m) => Some(m),
            MethodWire::Other(_) => None,
        })
        .collect();
    let target = w.target_currency;
    // A session's payments are in its own currencies, each listed once; they are kept in
    // the order they were issued whatever order the JSON lists them in.
    if w.payments.iter().any(|p| {
        p.currency != w.currency || p.target_currency != target || p.checkout_session != w.id
    }) {
        return Err("a payment is in other currencies or of another session".into());
    }
    let mut payments = w
        .payments
        .into_iter()
        .map(|p| payment_from_wire(p, target).map(std::sync::Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    payments.sort_by_key(|p| (p.created, p.id));
    only_newest_unpaid(&payments)?;
    if payments.windows(2).any(|w| w[0].id == w[1].id) {
        return Err("a payment is listed twice".into());
    }
    let amount = w
        .currency
        .validate_amount(w.amount)
        .map_err(|e| e.to_string())?;
    // The same limits as creation: a stored session outside them cannot be trusted.
    if !(super::MIN_TTL_SECS..=super::MAX_TTL_SECS).contains(&w.ttl) {
        return Err(Error::InvalidTtl(w.ttl).to_string());
    }
    if w.amount_paid_tolerance < Decimal::ZERO || w.amount_paid_tolerance >= Decimal::ONE_HUNDRED {
        return Err(Error::InvalidTolerance(w.amount_paid_tolerance).to_string());
    }
    let session = CheckoutSession {
        id: w.id,
        livemode: w.livemode,
        amount,
        currency: w.currency,
        target_currency: target,
        payment_methods: methods,
        ttl_secs: w.ttl,
        tolerance: w.amount_paid_tolerance,
        limits: super::accounting::Limits::of(amount, w.currency.scale(), w.amount_paid_tolerance),
        confirmations: w.confirmations,
        statement_descriptor: w.statement_descriptor,
        source: w.source,
        source_id: w.source_id,
        details: Details {
            description: w.description,
            metadata: w.metadata,
            success_url: w.success_url,
            success_message: w.success_message,
            cancel_url: w.cancel_url,
            branding: Branding {
                title: w.title,
                title_description: w.title_description,
                title_image: w.title_image,
            },
        },
        state,
        payments: payments.into(),
        transfers: Default::default(),
        ledger: Default::default(),
        onchain_address: w.onchain_address,
        link: w.link,
        created: w.created,
        modified: w.modified,
        version: w.version,
    };
    let mut session = session;
    session.ledger.make_room(session.payments.len());
    session.add_transfers(w.transfers)?;
    Ok(session)
}

impl<'de> Deserialize<'de> for CheckoutSession {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = SessionWire::deserialize(d)?;
        session_from_wire(wire).map_err(serde::de::Error::custom)
    }
}
