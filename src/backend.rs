//! The Lightning backend port: the node or wallet server that makes a quote's invoice and
//! learns when it is paid.
//!
//! A [`LightningBackend`] does four things, each one call to the backend:
//!
//! * [`create_invoice`](LightningBackend::create_invoice) makes the invoice of one quote
//!   from an [`InvoiceOrder`]: exactly its amount in msat, its description (text, or the
//!   hash of a longer one), and an expiry no later than the quote's. The crate calls it once
//!   per quote and **never retries it**: a call that timed out may have made an invoice,
//!   which then expires unused, while a retried one could leave two payable invoices for one
//!   quote. The invoice returned must be checked against the order (amount, network, expiry)
//!   before it is handed out.
//! * [`lookup_invoice`](LightningBackend::lookup_invoice) reads one invoice's state.
//! * [`cancel_invoice`](LightningBackend::cancel_invoice) stops an unpaid invoice from being
//!   paid, where the backend can; a backend that cannot answers
//!   [`Cancellation::Unsupported`] rather than pretending.
//! * [`settlements_after`](LightningBackend::settlements_after) lists the invoices settled
//!   after a [`ResumePoint`] (all when `None`) and the resume point that follows them. The
//!   list is **at least once**: it may repeat a settlement already listed, never leave one
//!   out between the resume point given and the one returned. The resume point is the
//!   backend's own index or cursor (LND's `settle_index`, Core Lightning's `pay_index`,
//!   LNbits' `updated_at`), opaque to the crate, which keeps it in its store
//!   ([`ResumeStore`](crate::store::ResumeStore)) once the settlements are recorded.
//!
//! Errors are [`RequestError`]s whose `is_retryable` says whether asking again may help.
//! The settlement listener (`listener`) turns settlements into recorded transfers;
//! `docs/lightning.md` maps LND, Core Lightning and LDK Node onto these four calls, and
//! [`LnbitsBackend`](crate::request::lnbits::LnbitsBackend) (feature `lnbits`) is the
//! worked example.

use time::OffsetDateTime;

use crate::hash::{Hash32, PaymentHash};
use crate::money::Msats;
use crate::payment::LightningInvoice;
use crate::request::{InvoiceSource, RequestError};
use crate::session::{CheckoutSession, QuoteTerms};

/// What an invoice describes: a text shown by the payer's wallet, or the SHA-256 of a
/// longer description given elsewhere (BOLT11 `h`, as LNURL-pay asks).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvoiceDescription {
    /// A short text (BOLT11 `d`).
    Text(String),
    /// The hash of a description (BOLT11 `h`).
    Hash(Hash32),
}

/// The invoice one quote needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvoiceOrder {
    /// Exactly what the invoice asks.
    pub amount: Msats,
    /// What it describes.
    pub description: InvoiceDescription,
    /// It must expire no later than this (the quote's end).
    pub expires_at: OffsetDateTime,
    /// When it is asked for (the quote's issue time); `expires_at - now` is the most
    /// expiry the backend may give it.
    pub now: OffsetDateTime,
}

impl InvoiceOrder {
    /// An order for `amount` described by `description`, valid from `now` to `expires_at`.
    pub fn new(
        amount: Msats,
        description: InvoiceDescription,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            amount,
            description,
            expires_at,
            now,
        }
    }

    /// The order for a quote: its amount and times, described by the session's statement
    /// descriptor (or `Checkout <session id>` when it has none).
    pub fn for_quote(session: &CheckoutSession, terms: &QuoteTerms) -> Self {
        Self::new(
            terms.target_msats(),
            InvoiceDescription::Text(crate::request::quote_memo(session)),
            terms.expires_at(),
            terms.issued_at(),
        )
    }
}

/// The state of one invoice at the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvoiceState {
    /// Not paid yet, and still payable.
    Open,
    /// Paid: `amount` was received.
    Settled {
        /// What it received, in msats.
        amount: Msats,
    },
    /// Expired or cancelled unpaid: it can no longer be paid.
    Closed,
}

/// What asking to cancel an invoice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancellation {
    /// The invoice can no longer be paid.
    Cancelled,
    /// It was paid before the cancel: record the settlement.
    AlreadySettled,
    /// This backend cannot cancel an ordinary invoice; it stays payable until it expires.
    Unsupported,
}

/// Where a listing of settlements resumes: the backend's own index or cursor, written as
/// text. Opaque to the crate, which only keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResumePoint(String);

impl ResumePoint {
    /// A resume point as the backend writes it.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ResumePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One settled invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settlement {
    /// The invoice's payment hash.
    pub payment_hash: PaymentHash,
    /// What it received, in msats.
    pub amount: Msats,
}

impl Settlement {
    /// `amount` received by the invoice with `payment_hash`.
    pub fn new(payment_hash: PaymentHash, amount: Msats) -> Self {
        Self {
            payment_hash,
            amount,
        }
    }
}

/// Settlements listed after a resume point, oldest first, with the resume point that
/// follows them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SettlementBatch {
    /// Every settlement after the resume point given, possibly with some already listed.
    pub settlements: Vec<Settlement>,
    /// Where the next listing resumes (the one given when nothing is newer); save it only
    /// once the settlements are recorded.
    pub resume_point: Option<ResumePoint>,
}

impl SettlementBatch {
    /// `settlements` (oldest first), followed by `resume_point`.
    pub fn new(settlements: Vec<Settlement>, resume_point: Option<ResumePoint>) -> Self {
        Self {
            settlements,
            resume_point,
        }
    }
}

/// A Lightning node or wallet server. See the module docs for the contract.
pub trait LightningBackend: Send + Sync {
    /// Makes the invoice of one quote; called once per quote, never retried.
    fn create_invoice(&self, order: &InvoiceOrder) -> Result<LightningInvoice, RequestError>;

    /// The state of the invoice with `hash`, `None` if the backend does not know it.
    fn lookup_invoice(&self, hash: &PaymentHash) -> Result<Option<InvoiceState>, RequestError>;

    /// Stops the unpaid invoice with `hash` from being paid, where the backend can.
    fn cancel_invoice(&self, hash: &PaymentHash) -> Result<Cancellation, RequestError>;

    /// Settlements after `resume` (all when `None`), oldest first, at least once.
    fn settlements_after(
        &self,
        resume: Option<&ResumePoint>,
    ) -> Result<SettlementBatch, RequestError>;
}

forward_port!(LightningBackend {
    fn create_invoice(&self, order: &InvoiceOrder) -> Result<LightningInvoice, RequestError>;
    fn lookup_invoice(&self, hash: &PaymentHash) -> Result<Option<InvoiceState>, RequestError>;
    fn cancel_invoice(&self, hash: &PaymentHash) -> Result<Cancellation, RequestError>;
    fn settlements_after(&self, resume: Option<&ResumePoint>) -> Result<SettlementBatch, RequestError>;
});

/// Any [`LightningBackend`] as the [`InvoiceSource`] of a
/// [`RequestGenerator`](crate::request::RequestGenerator): each quote's invoice is
/// [`InvoiceOrder::for_quote`].
#[derive(Debug, Clone)]
pub struct BackendInvoices<B>(pub B);

impl<B: LightningBackend> InvoiceSource for BackendInvoices<B> {
    fn invoice(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<LightningInvoice, RequestError> {
        self.0
            .create_invoice(&InvoiceOrder::for_quote(session, terms))
    }
}
