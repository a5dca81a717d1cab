//! Generators that repeat themselves or lie: a payment hash or an address another session
//! holds is refused with a typed error and the first session keeps it (funds sent to it
//! are credited there, never to the newcomer); an invoice whose BOLT11 asks another amount,
//! pays another hash or expires at another time than stated is refused before any
//! customer sees it.

use crate::common;

use std::sync::Mutex;

use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::{PaymentRequestGenerator, RequestError, TestRequestGenerator};
use bitcoin_checkout::store::{MemoryStore, RoutingKey, Store, StoreError};
use bitcoin_checkout::*;
use common::*;

/// What a faulty generator changes in [`TestRequestGenerator`]'s requests.
#[derive(Debug, Clone, Copy)]
enum Repeat {
    /// Every invoice gets the payment hash of the first one it made.
    Hash,
    /// Every session gets the address of the first one it made.
    Address,
}

struct Repeating {
    what: Repeat,
    first: Mutex<Option<PaymentRequest>>,
}

impl Repeating {
    fn new(what: Repeat) -> Self {
        Self {
            what,
            first: Mutex::new(None),
        }
    }
}

impl PaymentRequestGenerator for Repeating {
    fn generate(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<PaymentRequest, RequestError> {
        let mut request = TestRequestGenerator.generate(session, terms)?;
        let mut first = self.first.lock().expect("lock");
        let Some(first) = first.as_ref() else {
            *first = Some(request.clone());
            return Ok(request);
        };
        match self.what {
            Repeat::Hash => {
                if let (Some(inv), Some(held)) = (request.lightning.as_mut(), &first.lightning) {
                    inv.payment_hash = held.payment_hash;
                }
            }
            Repeat::Address => request.onchain_address = first.onchain_address.clone(),
        }
        Ok(request)
    }
}

fn rates() -> FixedRates {
    FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000))
}

fn both_methods() -> SessionParams {
    SessionParams::new(dec("25.00"), usd())
        .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain])
}

fn stores() -> Vec<(&'static str, Box<dyn Store>)> {
    let mut out: Vec<(&'static str, Box<dyn Store>)> =
        vec![("memory", Box::new(MemoryStore::new()))];
    #[cfg(feature = "sqlite")]
    out.push((
        "sqlite",
        Box::new(store::SqliteStore::open_in_memory().expect("open")),
    ));
    out
}

#[test]
fn a_repeated_payment_hash_is_refused_and_paying_it_credits_the_first_session() {
    for (name, store) in stores() {
        let c = Checkout::new(store, rates(), Repeating::new(Repeat::Hash));
        let first = c.create(both_methods(), None).expect("first");
        let quote = first.open_payment().expect("quote");
        let hash = quote
            .request()
            .lightning
            .as_ref()
            .expect("invoice")
            .payment_hash;

        let second = c.create(both_methods(), Some("key-1"));
        assert_eq!(
            second.map(|s| s.id()),
            Err(ServiceError::Store(StoreError::KeyTaken {
                key: RoutingKey::PaymentHash(hash),
                holder: first.id(),
            })),
            "{name}"
        );
        // Nothing of the refused session was written, and its key was released.
        let listed = c.list(&store::ListQuery::new()).expect("list");
        assert_eq!(listed.data.len(), 1, "{name}");
        assert!(
            matches!(
                c.create(both_methods(), Some("key-1")),
                Err(ServiceError::Store(StoreError::KeyTaken { .. }))
            ),
            "{name}: a retry with the key is refused the same way, not kept waiting"
        );

        // The customer pays the hash: the first session is paid.
        let paid = c
            .record_transfer(TransferReport::lightning(hash, quote.target_msats()))
            .expect("recorded");
        assert_eq!(paid.id(), first.id(), "{name}");
        assert_eq!(paid.status(), SessionStatus::Paid, "{name}");
    }
}

#[test]
fn a_repeated_address_is_refused() {
    for (name, store) in stores() {
        let c = Checkout::new(store, rates(), Repeating::new(Repeat::Address));
        let onchain =
            || SessionParams::new(dec("25.00"), usd()).payment_methods([PaymentMethod::Onchain]);
        let first = c.create(onchain(), None).expect("first");
        let address = first.onchain_address().expect("address").to_owned();
        assert_eq!(
            c.create(onchain(), None).map(|s| s.id()),
            Err(ServiceError::Store(StoreError::KeyTaken {
                key: RoutingKey::Address(address.clone()),
                holder: first.id(),
            })),
            "{name}"
        );
        let outpoint = OutPoint::new(txid(7), 0);
        let paid = c
            .record_transfer(
                TransferReport::onchain(outpoint, address, Sats::new(25_000)).confirmations(6),
            )
            .expect("recorded");
        assert_eq!(paid.id(), first.id(), "{name}");
        assert_eq!(paid.status(), SessionStatus::Paid, "{name}");
    }
}

/// Lends the hash of another session's invoice to the next quote only.
struct StealNext {
    hash: Mutex<Option<PaymentHash>>,
}

impl PaymentRequestGenerator for StealNext {
    fn generate(
        &self,
        session: &CheckoutSession,
        terms: &QuoteTerms,
    ) -> Result<PaymentRequest, RequestError> {
        let mut request = TestRequestGenerator.generate(session, terms)?;
        if let (Some(inv), Some(hash)) =
            (request.lightning.as_mut(), *self.hash.lock().expect("lock"))
        {
            inv.payment_hash = hash;
        }
        Ok(request)
    }
}

#[test]
fn a_partial_payment_is_kept_when_the_quote_after_it_repeats_a_hash() {
    for (name, store) in stores() {
        let generator = StealNext {
            hash: Mutex::new(None),
        };
        let c = Checkout::new(store, rates(), &generator);
        let first = c.create(both_methods(), None).expect("first");
        let held = first
            .open_payment()
            .expect("quote")
            .request()
            .lightning
            .as_ref()
            .expect("invoice")
            .payment_hash;
        let second = c.create(both_methods(), None).expect("second");
        let own = second
            .open_payment()
            .expect("quote")
            .request()
            .lightning
            .as_ref()
            .expect("invoice")
            .payment_hash;

        *generator.hash.lock().expect("lock") = Some(held);
        let after = c
            .record_transfer(TransferReport::lightning(own, Msats::new(1_000_000)))
            .expect("the transfer is committed even though the re-quote is refused");
        assert_eq!(after.transfers().count(), 1, "{name}");
        assert!(
            after.open_payment().is_none(),
            "{name}: no quote with the held hash"
        );
        assert_eq!(
            c.refresh(second.id()),
            Err(ServiceError::Store(StoreError::KeyTaken {
                key: RoutingKey::PaymentHash(held),
                holder: first.id(),
            })),
            "{name}"
        );
        // Once the generator behaves, the next look re-quotes.
        *generator.hash.lock().expect("lock") = None;
        assert!(
            c.get(second.id()).expect("get").open_payment().is_some(),
            "{name}"
        );
    }
}

#[cfg(feature = "lightning")]
mod bolt11 {
    use super::*;

    use bitcoin_checkout::request::lightning::{Bolt11Signer, InvoiceDescription, SecretKey};
    use bitcoin_checkout::request::onchain::Network;

    /// What a lying invoice source gets wrong.
    #[derive(Debug, Clone, Copy)]
    enum Lie {
        /// Signs an invoice for a thousandth of the quote.
        Amount,
        /// States another payment hash than the invoice's.
        Hash,
        /// States a later expiry than the invoice's (still within the quote).
        Expiry,
    }

    struct Lying(Lie);

    impl PaymentRequestGenerator for Lying {
        fn generate(
            &self,
            _: &CheckoutSession,
            terms: &QuoteTerms,
        ) -> Result<PaymentRequest, RequestError> {
            let key = SecretKey::from_slice(&[0x42; 32]).expect("key");
            let signer = Bolt11Signer::new(key, Network::Regtest);
            let amount = match self.0 {
                Lie::Amount => Msats::new(terms.target_msats().get() / 1000),
                _ => terms.target_msats(),
            };
            let signed = signer.invoice(
                amount,
                InvoiceDescription::Direct("coffee".into()),
                terms.expires_at() - Duration::seconds(60),
                OffsetDateTime::now_utc(),
                [9; 32],
                [8; 32],
            )?;
            let mut invoice = signed.invoice;
            match self.0 {
                Lie::Hash => invoice.payment_hash = request::Hash32::from_bytes([1; 32]),
                Lie::Expiry => invoice.expires_at = terms.expires_at(),
                Lie::Amount => {}
            }
            Ok(PaymentRequest {
                lightning: Some(invoice),
                onchain_address: None,
            })
        }
    }

    #[test]
    fn an_invoice_that_does_not_say_what_its_quote_says_is_refused() {
        for (lie, field) in [
            (Lie::Amount, "amount_msat"),
            (Lie::Hash, "payment_hash"),
            (Lie::Expiry, "expires_at (unix seconds)"),
        ] {
            let c = Checkout::new(MemoryStore::new(), rates(), Lying(lie));
            let params =
                SessionParams::new(dec("25.00"), usd()).payment_methods([PaymentMethod::Lightning]);
            match c.create(params, None) {
                Err(ServiceError::Core(Error::InvoiceMismatch { field: f, .. })) => {
                    assert_eq!(f, field, "{lie:?}");
                }
                other => panic!("{lie:?}: expected an invoice mismatch, got {other:?}"),
            }
            let listed = c.list(&store::ListQuery::new()).expect("list");
            assert!(listed.data.is_empty(), "{lie:?}: nothing written");
        }
    }
}
