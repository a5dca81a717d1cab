//! Sessions whose quotes carry real BOLT11 invoices and derived addresses, driven through
//! the service: every request is attributable back to its session and quote.
#![cfg(all(feature = "lightning", feature = "onchain"))]

use crate::common;

use std::sync::{Arc, Mutex};

use bitcoin_checkout::clock::ManualClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::lightning::{
    Bolt11Signer, OfflineInvoices, SecretKey, SignedInvoice, parse_invoice,
};
use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses, Network};
use bitcoin_checkout::request::{MemoryAddressIndex, RequestGenerator, unified::UnifiedUri};
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::*;
use common::*;
use time::Duration;

const TPUB: &str = "wpkh([73c5da0a/84h/1h/0h]tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M/0/*)";

type Kept = Arc<Mutex<Vec<SignedInvoice>>>;

type Generator = RequestGenerator<OfflineInvoices, DerivedAddresses<MemoryAddressIndex>>;
type Service = Checkout<MemoryStore, FixedRates, Generator, Arc<ManualClock>>;

fn checkout() -> (
    impl Fn(SessionParams) -> CheckoutSession,
    Arc<Service>,
    Kept,
) {
    let key = SecretKey::from_slice(&[0x42; 32]).expect("key");
    let counter = Arc::new(Mutex::new(0u8));
    let entropy = move || {
        let mut n = counter.lock().expect("counter");
        *n += 1;
        [*n; 32]
    };
    let kept: Kept = Arc::default();
    let keep = {
        let kept = Arc::clone(&kept);
        move |s: &SignedInvoice| {
            kept.lock().map_err(|e| e.to_string())?.push(s.clone());
            Ok(())
        }
    };
    let generator = RequestGenerator::new()
        .lightning(OfflineInvoices::new(
            Bolt11Signer::new(key, Network::Regtest),
            entropy,
            keep,
        ))
        .onchain(DerivedAddresses::new(
            AddressDeriver::new(TPUB, Network::Regtest).expect("descriptor"),
            MemoryAddressIndex::new(),
        ));
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, dec("1500.5"));
    let clock = Arc::new(ManualClock::new(t0()));
    let c = Arc::new(Checkout::new(MemoryStore::new(), rates, generator).with_clock(clock));
    let create = {
        let c = Arc::clone(&c);
        move |p: SessionParams| c.create(p, None).expect("created")
    };
    (create, c, kept)
}

#[test]
fn invoices_match_their_quotes_and_payments_find_their_session() {
    let (create, c, kept) = checkout();
    let s = create(SessionParams::new(dec("12.34"), usd()).statement_descriptor("Coffee shop"));
    let quote = s.open_payment().expect("quote");
    // ceil(12.34 × 1500.5) = ceil(18516.17) = 18517 sats.
    assert_eq!(quote.target(), Sats::new(18_517));
    let invoice = quote.request().lightning.as_ref().expect("invoice");
    let parsed = parse_invoice(&invoice.payment_request).expect("parses with a valid signature");
    assert_eq!(parsed.amount, Some(Msats::new(18_517_000)));
    assert_eq!(parsed.payment_hash, invoice.payment_hash);
    assert!(invoice.expires_at <= quote.expires_at());
    assert_eq!(parsed.expiry_secs, 600);
    assert_eq!(
        kept.lock().expect("kept")[0].preimage.payment_hash(),
        invoice.payment_hash
    );

    let uri = UnifiedUri::from_request(quote.request(), quote.target_msats())
        .expect("uri")
        .to_uri()
        .expect("uri");
    assert!(uri.starts_with("bitcoin:BCRT1"), "{uri}");
    assert!(uri.contains("amount=0.00018517"), "{uri}");
    assert!(uri.contains("&lightning=LNBCRT"), "{uri}");

    let paid = c
        .record_transfer(TransferReport::lightning(
            invoice.payment_hash,
            quote.target_msats(),
        ))
        .expect("recorded");
    assert_eq!(paid.status(), SessionStatus::Paid);
}

#[test]
fn each_session_gets_its_own_address_and_quotes_share_it() {
    let (create, c, _) = checkout();
    let a = create(SessionParams::new(dec("1.00"), usd()));
    let b = create(SessionParams::new(dec("2.00"), usd()));
    let (addr_a, addr_b) = (
        a.onchain_address().expect("a"),
        b.onchain_address().expect("b"),
    );
    assert_ne!(addr_a, addr_b);
    // Receive addresses 0 and 1 of the BIP84 test account ("abandon … about", m/84'/1'/0'),
    // whose testnet forms are tb1q6rz28mcfaxtmd6v789l9rrlrusdprr9pqcpvkl and
    // tb1qd7spv5q28348xl4myc8zmh983w5jx32cs707jh: same witness programs, regtest prefix.
    assert_eq!(addr_a, "bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk");
    assert!(
        addr_b.starts_with("bcrt1qd7spv5q28348xl4myc8zmh983w5jx32c"),
        "{addr_b}"
    );
    // A partial on-chain payment, then the rest to the same address on the next quote.
    let half =
        TransferReport::onchain(OutPoint::new(txid(1), 0), addr_a, Sats::new(750)).confirmations(1);
    let s = c.record_transfer(half).expect("recorded");
    let next = s.open_payment().expect("re-quoted");
    assert_eq!(next.request().onchain_address.as_deref(), Some(addr_a));
    assert_ne!(
        next.request().lightning.as_ref().map(|l| l.payment_hash),
        s.payments()[0]
            .request()
            .lightning
            .as_ref()
            .map(|l| l.payment_hash)
    );
    let rest =
        TransferReport::onchain(OutPoint::new(txid(2), 1), addr_a, next.target()).confirmations(1);
    assert_eq!(
        c.record_transfer(rest).expect("recorded").status(),
        SessionStatus::Paid
    );
}

#[test]
fn invoices_never_outlive_their_quote() {
    let (create, c, _) = checkout();
    let s = create(SessionParams::new(dec("5.00"), usd()).ttl_secs(300));
    let quote = s.open_payment().expect("quote");
    let inv = quote.request().lightning.as_ref().expect("invoice");
    assert!(inv.expires_at <= quote.expires_at());
    assert_eq!(quote.expires_at() - quote.created(), Duration::seconds(300));
    let _ = c;
}
