//! Checkout sessions: one customer's attempt to pay, as a deterministic state machine.
//!
//! A [`CheckoutSession`] is a plain value. Its commands ([`create`](CheckoutSession::create),
//! [`next_quote`](CheckoutSession::next_quote) + [`issue_quote`](CheckoutSession::issue_quote),
//! [`record_transfer`](CheckoutSession::record_transfer),
//! [`expire_quotes`](CheckoutSession::expire_quotes), [`update`](CheckoutSession::update),
//! [`deactivate`](CheckoutSession::deactivate)) take the time (and a rate where one is
//! needed) as arguments and return the [`SessionEvent`](crate::SessionEvent)s they caused. The core never reads
//! a clock, calls a trait or does I/O.
//!
//! Every command either applies completely or returns an error and leaves the session
//! exactly as it was. Every command first expires the quotes that ran out at `now`, so the
//! outcome depends only on the session, the command and `now`.

mod accounting;
mod change;
mod commands;
mod json;
mod ledger;
mod limits;
mod params;
mod resolutions;
mod strict;
mod text;
mod transfers;
#[cfg(feature = "webhooks")]
pub(crate) use text::check_url;
mod update;

use std::collections::{BTreeSet, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub(crate) use accounting::Limits;
pub use accounting::{Flag, FlagKind, Totals};
pub use change::SessionChange;
pub use commands::QuoteTerms;
pub use json::EVENT_PAYMENTS;
pub use limits::{
    DEFAULT_MAX_QUOTES, DEFAULT_MAX_TRANSFERS, HeldTotals, HeldTransfer, SessionLimits,
};
pub use params::{Branding, DEFAULT_FIAT_TTL_SECS, MAX_TTL_SECS, MIN_TTL_SECS, SessionParams};
pub use resolutions::{FlagOutcome, FlagResolution, MAX_REFERENCE_CHARS, Resolution};
pub use update::SessionUpdate;

use crate::id::SessionId;
use crate::metadata::Metadata;
use crate::money::{Currency, TargetCurrency};
use crate::payment::Payment;
use crate::transfer::{ConfirmationPolicy, PaymentMethod, Transfer, TransferKey};

/// Where a session stands. `Active` is the only state that changes; `Paid` and
/// `Deactivated` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Waiting for funds.
    Active,
    /// Counted funds reached the amount within the tolerance.
    Paid {
        /// When the threshold was reached.
        paid_at: OffsetDateTime,
    },
    /// Closed before it was paid: by hand, by its link, or at its expiry.
    Deactivated {
        /// When it was deactivated (for an expiry: the session's `expires_at`).
        deactivated_at: OffsetDateTime,
        /// Why.
        reason: DeactivationReason,
    },
}

/// Why a session was deactivated (`deactivation_reason` in its JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeactivationReason {
    /// Deactivated through the API, or by deactivating the link that opened it.
    Requested,
    /// Its `expires_at` passed before it was paid.
    Expired,
}

impl SessionState {
    /// The status name as in JSON.
    pub fn status(&self) -> SessionStatus {
        match self {
            Self::Active => SessionStatus::Active,
            Self::Paid { .. } => SessionStatus::Paid,
            Self::Deactivated { .. } => SessionStatus::Deactivated,
        }
    }

    /// Whether the state is final.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::Active)
    }
}

/// A session's status, as Speed names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SessionStatus {
    /// Waiting for funds.
    Active,
    /// Paid.
    Paid,
    /// Deactivated.
    Deactivated,
}

impl SessionStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paid => "paid",
            Self::Deactivated => "deactivated",
        }
    }
}

/// The fields of a session that may change at any time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Details {
    pub(crate) description: Option<String>,
    pub(crate) metadata: Metadata,
    pub(crate) success_url: Option<String>,
    pub(crate) success_message: Option<String>,
    pub(crate) cancel_url: Option<String>,
    pub(crate) branding: Branding,
}

/// A checkout session with its payments (quotes) and transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub(crate) id: SessionId,
    pub(crate) livemode: bool,
    pub(crate) amount: Decimal,
    pub(crate) currency: Currency,
    pub(crate) target_currency: TargetCurrency,
    pub(crate) payment_methods: BTreeSet<PaymentMethod>,
    pub(crate) ttl_secs: i64,
    pub(crate) tolerance: Decimal,
    pub(crate) limits: Limits,
    /// The caps on quotes and transfers (see [`SessionLimits`]).
    pub(crate) caps: SessionLimits,
    /// Transfers beyond the transfer cap, kept apart: their count and sum (their facts are
    /// in the store, not loaded with the session).
    pub(crate) held: HeldTotals,
    pub(crate) confirmations: ConfirmationPolicy,
    pub(crate) statement_descriptor: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) source_id: Option<String>,
    /// `source_id` is written as a JSON integer (it was given as one).
    pub(crate) source_id_integer: bool,
    pub(crate) details: Details,
    pub(crate) state: SessionState,
    /// Shared (`Arc`) so that copying a session, as the service's cache does on every
    /// change, copies neither the list nor every quote's strings: a change copies only
    /// what it touches, and the list only if a copy made before is still alive (a session
    /// re-quoted after each of many partial payments has many quotes).
    pub(crate) payments: std::sync::Arc<Vec<std::sync::Arc<Payment>>>,
    /// Shared like the payments: a change copies the map only if a copy of the session
    /// made before it is still alive.
    pub(crate) transfers: std::sync::Arc<HashMap<TransferKey, Transfer>>,
    pub(crate) ledger: ledger::Ledger,
    /// What the merchant did about flagged money: facts, insert-only.
    pub(crate) resolutions: std::sync::Arc<Vec<Resolution>>,
    pub(crate) onchain_address: Option<String>,
    pub(crate) link: Option<crate::id::LinkId>,
    /// When the session deactivates itself if it is not paid by then (optional).
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) created: OffsetDateTime,
    pub(crate) modified: OffsetDateTime,
    pub(crate) version: u64,
    /// The payments' JSON as last written, shared by copies: not part of the value
    /// (ADR 27).
    pub(crate) texts: json::PaymentTexts,
}

impl CheckoutSession {
    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Whether it is a live (real money) session.
    pub fn livemode(&self) -> bool {
        self.livemode
    }

    /// The price, in the base currency, at the currency's scale.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The base currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The currency the customer pays in.
    pub fn target_currency(&self) -> TargetCurrency {
        self.target_currency
    }

    /// The accepted payment methods.
    pub fn payment_methods(&self) -> &BTreeSet<PaymentMethod> {
        &self.payment_methods
    }

    /// Whether `method` is accepted.
    pub fn accepts(&self, method: PaymentMethod) -> bool {
        self.payment_methods.contains(&method)
    }

    /// Lifetime of each quote, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Underpayment tolerance, percent.
    pub fn tolerance(&self) -> Decimal {
        self.tolerance
    }

    /// Confirmations on-chain transfers need.
    pub fn confirmation_policy(&self) -> ConfirmationPolicy {
        self.confirmations
    }

    /// Text put into Lightning invoices.
    pub fn statement_descriptor(&self) -> Option<&str> {
        self.statement_descriptor.as_deref()
    }

    /// Integration tag.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Order id within the integration.
    pub fn source_id(&self) -> Option<&str> {
        self.source_id.as_deref()
    }

    /// Whether `source_id` is written as a JSON integer (it was given as one; see
    /// [`SessionParams::integer_source_id`]).
    pub fn source_id_is_integer(&self) -> bool {
        self.source_id_integer
    }

    /// Description for the merchant.
    pub fn description(&self) -> Option<&str> {
        self.details.description.as_deref()
    }

    /// Merchant metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.details.metadata
    }

    /// Redirect after payment.
    pub fn success_url(&self) -> Option<&str> {
        self.details.success_url.as_deref()
    }

    /// Message after payment.
    pub fn success_message(&self) -> Option<&str> {
        self.details.success_message.as_deref()
    }

    /// Where the cancel button goes.
    pub fn cancel_url(&self) -> Option<&str> {
        self.details.cancel_url.as_deref()
    }

    /// Payment page branding.
    pub fn branding(&self) -> &Branding {
        &self.details.branding
    }

    /// The state, with its data.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The status name.
    pub fn status(&self) -> SessionStatus {
        self.state.status()
    }

    /// The quotes, oldest first.
    pub fn payments(&self) -> &[std::sync::Arc<Payment>] {
        &self.payments
    }

    /// The open (unpaid) quote, if any.
    pub fn open_payment(&self) -> Option<&Payment> {
        self.unpaid_index().map(|i| &*self.payments[i])
    }

    /// The index of the unpaid payment. Only the newest can be unpaid: a quote is issued
    /// only once the one before is paid or expired, and decoding refuses sessions where an
    /// older one is unpaid. So the searches for it look at the newest alone, and a report
    /// costs the same after a thousand partial payments (a thousand quotes) as after one.
    pub(crate) fn unpaid_index(&self) -> Option<usize> {
        let last = self.payments.len().checked_sub(1)?;
        self.payments[last].state.is_unpaid().then_some(last)
    }

    /// The most recent quote.
    pub fn current_payment(&self) -> Option<&Payment> {
        self.payments.last().map(|p| &**p)
    }

    /// Every transfer recorded, in no particular order (the JSON lists them by first sight).
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    /// One transfer by its key.
    pub fn transfer(&self, key: &TransferKey) -> Option<&Transfer> {
        self.transfers.get(key)
    }

    /// The session's on-chain address (shared by its quotes), once issued.
    pub fn onchain_address(&self) -> Option<&str> {
        self.onchain_address.as_deref()
    }

    /// When the session deactivates itself if not paid by then (`None`: never, as on
    /// Speed).
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
    }

    /// The checkout link or payment link that opened it, if any.
    pub fn link(&self) -> Option<crate::id::LinkId> {
        self.link
    }

    /// When it was created.
    pub fn created(&self) -> OffsetDateTime {
        self.created
    }

    /// When it last changed.
    pub fn modified(&self) -> OffsetDateTime {
        self.modified
    }

    /// Counts the changes applied since creation (0 when new); stores use it for
    /// compare-and-swap.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Inserts or replaces a transfer as part of `change`, keeping the ledger in step.
    pub(crate) fn put_transfer(&mut self, t: Transfer, change: &mut SessionChange) {
        change.touch_transfer(t.key);
        self.put_transfer_fact(t);
    }

    /// Inserts or replaces a transfer, keeping the ledger in step (for decoding: what is
    /// read back is no change).
    pub(crate) fn put_transfer_fact(&mut self, t: Transfer) {
        use std::collections::hash_map::Entry;
        let id = t.payment_id;
        let before = self.ledger.sums(id);
        // One lookup (hashing the key is a good part of the cost of a report).
        match std::sync::Arc::make_mut(&mut self.transfers).entry(t.key) {
            Entry::Occupied(mut slot) => {
                self.ledger.swap(Some(slot.get()), &t, self.confirmations);
                slot.insert(t);
            }
            Entry::Vacant(slot) => {
                self.ledger.swap(None, &t, self.confirmations);
                slot.insert(t);
            }
        }
        self.recredit(id, before);
    }

    /// Recomputes payment `id`'s credits after its sums changed from `before`. Only this
    /// payment's credit can have changed: recomputing it alone keeps the cost of a
    /// transfer independent of the number of payments.
    fn recredit(&mut self, id: crate::id::PaymentId, before: ledger::PaymentSums) {
        let sums = self.ledger.sums(id);
        // Newest first: funds usually go to the newest quote.
        if let Some(p) = self.payments.iter().rev().find(|p| p.id == id) {
            let (received, counted) = (self.credit(p, sums.received), self.credit(p, sums.counted));
            self.ledger.set_credits(id, before, received, counted);
        }
    }

    /// Recomputes the ledger from the transfers, without touching them (for stores that
    /// keep the transfers apart and rebuild the session around them).
    pub(crate) fn rebuild_ledger(&mut self) {
        self.ledger = Default::default();
        self.ledger.make_room(self.payments.len());
        let transfers = std::sync::Arc::clone(&self.transfers);
        for t in transfers.values() {
            let before = self.ledger.sums(t.payment_id);
            self.ledger.swap(None, t, self.confirmations);
            self.recredit(t.payment_id, before);
        }
    }

    /// The payments, to change them (copies the list first if a copy of the session
    /// shares it).
    pub(crate) fn payments_mut(&mut self) -> &mut Vec<std::sync::Arc<Payment>> {
        std::sync::Arc::make_mut(&mut self.payments)
    }

    /// One payment, to change it as part of `change` (copied first if it is shared).
    pub(crate) fn payment_mut(
        &mut self,
        index: usize,
        change: &mut SessionChange,
    ) -> Option<&mut Payment> {
        let payment = self
            .payments_mut()
            .get_mut(index)
            .map(std::sync::Arc::make_mut)?;
        change.touch_payment(payment.id);
        Some(payment)
    }

    /// Marks one applied change.
    pub(crate) fn touch(&mut self, now: OffsetDateTime) {
        self.modified = now;
        self.version += 1;
    }
}
