//! The payment-request port: turns a quote's terms into what the customer pays.

use crate::request::{Hash32, LightningInvoice, PaymentRequest, RequestError};
use crate::session::{CheckoutSession, QuoteTerms};
use crate::transfer::PaymentMethod;

/// Makes the payment request for a quote.
///
/// Contract:
/// * when the session accepts Lightning, return an invoice for exactly
///   [`QuoteTerms::target_msats`] that expires no later than [`QuoteTerms::expires_at`]
///   (issuing is refused otherwise), with a payment hash never used before;
/// * when it accepts on-chain, return the session's address if it has one
///   ([`CheckoutSession::onchain_address`]), else a fresh address never handed to another
///   session (reserve it durably before returning it);
/// * fail with an error rather than return a partial request.
///
/// Implementations backed by a Lightning node call its create-invoice RPC here; see
/// `request::lightning` for the offline signer and an adapter example.
pub trait PaymentRequestGenerator: Send + Sync {
    /// The request for the quote `terms` of `session`.
    fn generate(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<PaymentRequest, RequestError>;

    /// Whether [`generate`](Self::generate) returns without I/O (an offline signer, the
    /// test generator): see [`Store::never_blocks`](crate::store::Store::never_blocks).
    /// Default `false`.
    fn never_blocks(&self) -> bool {
        false
    }
}

forward_port!(PaymentRequestGenerator {
    fn generate(&self, session: &CheckoutSession, terms: &QuoteTerms) -> Result<PaymentRequest, RequestError>;
    fn never_blocks(&self) -> bool;
});

/// **For tests only**: makes fake, unpayable requests deterministically from the ids.
///
/// The invoice string is `lntest<msats>n1<payment id's 32 hex digits>` (letters and digits
/// only, so it fits in a unified URI) and its payment hash is the payment id's UUID bytes
/// twice; the address is `bcrt1qtest<session id hex>`. No wallet can pay
/// these; use them to drive sessions with [`TransferReport`](crate::TransferReport)s.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestRequestGenerator;

impl TestRequestGenerator {
    /// The payment hash this generator gives the invoice of payment `id`.
    pub fn payment_hash(id: crate::id::PaymentId) -> Hash32 {
        let b = id.as_uuid().into_bytes();
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&b);
        out[16..].copy_from_slice(&b);
        Hash32::from_bytes(out)
    }

    /// The address this generator gives session `id`.
    pub fn address(id: crate::id::SessionId) -> String {
        format!("bcrt1qtest{}", id.as_uuid().simple())
    }
}

impl PaymentRequestGenerator for TestRequestGenerator {
    fn generate(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<PaymentRequest, RequestError> {
        let lightning = session
            .accepts(PaymentMethod::Lightning)
            .then(|| LightningInvoice {
                payment_request: format!(
                    "lntest{}n1{}",
                    terms.target_msats().get(),
                    terms.payment_id().as_uuid().simple()
                ),
                payment_hash: Self::payment_hash(terms.payment_id()),
                expires_at: terms.expires_at(),
            });
        let onchain_address = session.accepts(PaymentMethod::Onchain).then(|| {
            session
                .onchain_address()
                .map_or_else(|| Self::address(session.id()), str::to_owned)
        });
        Ok(PaymentRequest {
            lightning,
            onchain_address,
        })
    }

    fn never_blocks(&self) -> bool {
        true
    }
}
