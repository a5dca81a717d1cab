//! Building a payment-request generator from an invoice source and an address source.
//!
//! [`RequestGenerator`] implements [`PaymentRequestGenerator`] by asking an
//! [`InvoiceSource`] for each quote's invoice and an [`AddressSource`] for each session's
//! address. The crate ships [`OfflineInvoices`](crate::request::lightning::OfflineInvoices)
//! (feature `lightning`) and [`DerivedAddresses`](crate::request::onchain::DerivedAddresses)
//! (feature `onchain`); a Lightning node adapter implements [`InvoiceSource`] itself.

use std::collections::HashMap;
use std::sync::Mutex;

use super::generator::PaymentRequestGenerator;
use super::{LightningInvoice, PaymentRequest, RequestError};
use crate::session::{CheckoutSession, QuoteTerms};
use crate::transfer::PaymentMethod;

/// Makes the Lightning invoice of a quote.
///
/// The invoice must be for exactly [`QuoteTerms::target_msats`], expire no later than
/// [`QuoteTerms::expires_at`] and have a payment hash never used before. A node adapter
/// calls the node's create-invoice RPC (LND `AddInvoice`, Core Lightning `invoice`, LDK
/// `create_invoice_from_channelmanager`) with the amount, the session's statement
/// descriptor as memo, and an expiry of `expires_at − issued_at` seconds, then returns the
/// BOLT11 string with its payment hash.
pub trait InvoiceSource: Send + Sync {
    /// The invoice for `terms`.
    fn invoice(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<LightningInvoice, RequestError>;
}

/// The text a quote's invoice describes itself with: the session's statement descriptor,
/// or `Checkout <session id>` when it has none (one rule for every invoice source).
pub(crate) fn quote_memo(session: &CheckoutSession) -> String {
    session
        .statement_descriptor()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Checkout {}", session.id()))
}

/// Gives each session its own on-chain address.
pub trait AddressSource: Send + Sync {
    /// A fresh address for `session`, never handed to any other session. Implementations
    /// reserve it durably before returning it.
    fn fresh_address(&self, session: &CheckoutSession) -> Result<String, RequestError>;
}

/// Durable reservation of derivation indexes: the next unused index of a descriptor.
///
/// `reserve` must never return the same index twice for one descriptor, across threads,
/// processes and restarts; an index reserved and then not used is simply skipped (a gap
/// wallets tolerate within their gap limit).
pub trait AddressIndex: Send + Sync {
    /// Reserves and returns the next index for `descriptor`.
    fn reserve(&self, descriptor: &str) -> Result<u32, RequestError>;

    /// The highest index reserved so far for `descriptor` (`None`: none yet), read without
    /// reserving one. A chain watcher follows it to watch every address handed out; it may
    /// lag a reservation in flight, never run ahead of one.
    fn reserved(&self, descriptor: &str) -> Result<Option<u32>, RequestError>;
}

/// Indexes kept in memory: for tests and single-process demos only (they restart at 0).
#[derive(Debug, Default)]
pub struct MemoryAddressIndex {
    next: Mutex<HashMap<String, u32>>,
}

impl MemoryAddressIndex {
    /// Starts every descriptor at index 0.
    pub fn new() -> Self {
        Self::default()
    }
}

impl AddressIndex for MemoryAddressIndex {
    fn reserve(&self, descriptor: &str) -> Result<u32, RequestError> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.entry(descriptor.to_owned()).or_insert(0);
        let index = *slot;
        *slot = index.checked_add(1).ok_or(RequestError::IndexesExhausted)?;
        Ok(index)
    }

    fn reserved(&self, descriptor: &str) -> Result<Option<u32>, RequestError> {
        let next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        Ok(next.get(descriptor).and_then(|n| n.checked_sub(1)))
    }
}

forward_port!(InvoiceSource {
    fn invoice(&self, session: &CheckoutSession, terms: &QuoteTerms) -> Result<LightningInvoice, RequestError>;
});
forward_port!(AddressSource {
    fn fresh_address(&self, session: &CheckoutSession) -> Result<String, RequestError>;
});
forward_port!(AddressIndex {
    fn reserve(&self, descriptor: &str) -> Result<u32, RequestError>;
    fn reserved(&self, descriptor: &str) -> Result<Option<u32>, RequestError>;
});

/// Placeholder source for a generator without that method: always fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disabled;

impl InvoiceSource for Disabled {
    fn invoice(
        &self,
        _: &CheckoutSession,
        _: &QuoteTerms,
    ) -> Result<LightningInvoice, RequestError> {
        Err(RequestError::MethodDisabled("lightning"))
    }
}

impl AddressSource for Disabled {
    fn fresh_address(&self, _: &CheckoutSession) -> Result<String, RequestError> {
        Err(RequestError::MethodDisabled("onchain"))
    }
}

/// A [`PaymentRequestGenerator`] from an invoice source and an address source.
#[derive(Debug, Clone, Default)]
pub struct RequestGenerator<L = Disabled, A = Disabled> {
    lightning: L,
    onchain: A,
}

impl RequestGenerator {
    /// A generator with neither method (add them with the setters).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<L, A> RequestGenerator<L, A> {
    /// Uses `source` for Lightning invoices.
    pub fn lightning<L2: InvoiceSource>(self, source: L2) -> RequestGenerator<L2, A> {
        RequestGenerator {
            lightning: source,
            onchain: self.onchain,
        }
    }

    /// Uses `source` for on-chain addresses.
    pub fn onchain<A2: AddressSource>(self, source: A2) -> RequestGenerator<L, A2> {
        RequestGenerator {
            lightning: self.lightning,
            onchain: source,
        }
    }
}

impl<L: InvoiceSource, A: AddressSource> PaymentRequestGenerator for RequestGenerator<L, A> {
    fn generate(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<PaymentRequest, RequestError> {
        // The address first: it is reserved once per session and reused by later quotes.
        let onchain_address = if session.accepts(PaymentMethod::Onchain) {
            Some(match session.onchain_address() {
                Some(a) => a.to_owned(),
                None => self.onchain.fresh_address(session)?,
            })
        } else {
            None
        };
        let lightning = if session.accepts(PaymentMethod::Lightning) {
            let invoice = self.lightning.invoice(session, terms)?;
            if invoice.expires_at > terms.expires_at() {
                return Err(RequestError::InvoiceOutlivesQuote {
                    excess_secs: (invoice.expires_at - terms.expires_at()).whole_seconds(),
                });
            }
            Some(invoice)
        } else {
            None
        };
        Ok(PaymentRequest {
            lightning,
            onchain_address,
        })
    }
}
