//! Quotes with real LNbits invoices, against the LNbits server scripts/lnbits starts
//! (FakeWallet funding source): the invoice a session shows decodes and matches its quote,
//! a second wallet pays it and LNbits reports it paid, and a stopped server gives typed,
//! retryable errors. These tests fail (never skip) without the server.
#![cfg(feature = "lnbits")]

use std::sync::{Mutex, MutexGuard};

use bitcoin_checkout::backend::{InvoiceDescription, InvoiceOrder, InvoiceState, LightningBackend};
use bitcoin_checkout::clock::SystemClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::lightning::{
    Network, parse_invoice, parse_invoice_without_features,
};
use bitcoin_checkout::request::lnbits::LnbitsBackend;
use bitcoin_checkout::request::{RequestError, RequestGenerator};
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::{Checkout, Decimal, Msats, PaymentMethod, SessionParams, TargetCurrency};
use time::{Duration, OffsetDateTime};

use crate::common::usd;

pub(crate) use crate::lnbits_api::{pay, server, wallet};

/// One test at a time talks to the server (the outage test stops it).
pub(crate) fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The adapter as the FakeWallet test backend needs it: its invoices carry no BOLT11
/// feature field, which real funding sources write.
pub(crate) fn fake_wallet(source: LnbitsBackend) -> LnbitsBackend {
    source.allow_invoices_without_features()
}

/// A wallet with `sats` to pay with (credited by the super user).
pub(crate) fn funded_wallet(sats: u64) -> String {
    let (id, admin, _) = wallet("payer");
    crate::lnbits_api::credit(&id, sats);
    admin
}

fn lnbits_checkout(
    invoice_key: &str,
) -> Checkout<MemoryStore, FixedRates, RequestGenerator<LnbitsBackend>, SystemClock> {
    let (url, _) = server();
    let rates = FixedRates::new().with(usd(), TargetCurrency::Sats, Decimal::from(1_000));
    let generator = RequestGenerator::new().lightning(fake_wallet(LnbitsBackend::new(
        &url,
        invoice_key,
        Network::Bitcoin,
    )));
    // LNbits dates invoices with its own clock: the service's must tell the real time.
    Checkout::new(MemoryStore::new(), rates, generator).with_clock(SystemClock)
}

#[test]
fn a_session_shows_an_lnbits_invoice_that_matches_its_quote_and_is_paid() {
    let _one = exclusive();
    let (_, _, shop_inkey) = wallet("shop");
    let checkout = lnbits_checkout(&shop_inkey);
    let params = SessionParams::new(Decimal::new(2_500, 2), usd())
        .payment_methods([PaymentMethod::Lightning])
        .ttl_secs(600);
    let session = checkout
        .create(params, None)
        .expect("a session with an LNbits invoice");
    let payment = session.current_payment().expect("a quote");
    let invoice = payment.request().lightning.clone().expect("an invoice");

    // The BOLT11 is LNbits' own, signed, for exactly the quote, expiring within it.
    let parsed = parse_invoice_without_features(&invoice.payment_request).unwrap();
    // FakeWallet writes no feature field: the strict parser (what LDK wallets do) refuses it.
    assert!(parse_invoice(&invoice.payment_request).is_err());
    assert_eq!(parsed.amount, Some(Msats::new(25_000_000)));
    assert_eq!(payment.target_msats(), Msats::new(25_000_000));
    assert_eq!(parsed.payment_hash, invoice.payment_hash);
    assert_eq!(parsed.expires_at, invoice.expires_at);
    assert!(invoice.expires_at <= payment.expires_at());
    assert!(
        invoice.expires_at >= payment.expires_at() - Duration::seconds(10),
        "{invoice:?}"
    );

    // A second wallet pays it; LNbits reports it paid, for the amount.
    let source = fake_wallet(LnbitsBackend::new(
        &server().0,
        &shop_inkey,
        Network::Bitcoin,
    ));
    let before = source
        .lookup_invoice(&invoice.payment_hash)
        .unwrap()
        .expect("LNbits knows it");
    assert_eq!(before, InvoiceState::Open);
    let payer = funded_wallet(100_000);
    pay(&payer, &invoice.payment_request);
    let after = source
        .lookup_invoice(&invoice.payment_hash)
        .unwrap()
        .expect("LNbits knows it");
    assert_eq!(
        after,
        InvoiceState::Settled {
            amount: Msats::new(25_000_000)
        }
    );
}

#[test]
fn bad_input_and_unknown_invoices_are_typed() {
    let _one = exclusive();
    let (url, _) = server();
    let (_, _, inkey) = wallet("shop-bad-input");
    let source = fake_wallet(LnbitsBackend::new(&url, &inkey, Network::Bitcoin));
    let now = OffsetDateTime::now_utc();
    // A sub-sat amount is refused before any call.
    assert!(matches!(
        source.create_invoice(&order(
            Msats::new(1_500),
            "x",
            now + Duration::minutes(10),
            now
        )),
        Err(RequestError::InvalidAmount { .. })
    ));
    // A quote about to expire gets no invoice.
    assert!(matches!(
        source.create_invoice(&order(
            Msats::new(1_000),
            "x",
            now + Duration::seconds(3),
            now
        )),
        Err(RequestError::Backend {
            retryable: false,
            ..
        })
    ));
    // Another network than the server's invoices.
    assert!(matches!(
        fake_wallet(LnbitsBackend::new(&url, &inkey, Network::Regtest)).create_invoice(&order(
            Msats::new(1_000),
            "x",
            now + Duration::minutes(10),
            now
        )),
        Err(RequestError::NetworkMismatch { .. })
    ));
    // A wrong key: refused, not retryable, and the key is in no message.
    let err = LnbitsBackend::new(&url, "not-a-key-0000", Network::Bitcoin)
        .create_invoice(&order(
            Msats::new(1_000),
            "x",
            now + Duration::minutes(10),
            now,
        ))
        .unwrap_err();
    assert!(
        matches!(
            err,
            RequestError::Backend {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-a-key-0000"));
    assert!(
        !format!("{source:?}").contains(&inkey),
        "no key in Debug output"
    );
    // An invoice LNbits does not know.
    let unknown = bitcoin_checkout::request::Hash32::from_bytes([7; 32]);
    assert_eq!(source.lookup_invoice(&unknown).unwrap(), None);
}

#[test]
fn a_stopped_server_gives_retryable_errors_and_nothing_is_quoted() {
    let _one = exclusive();
    let (_, _, inkey) = wallet("shop-outage");
    let checkout = lnbits_checkout(&inkey);
    run("pause");
    let params =
        SessionParams::new(Decimal::from(10), usd()).payment_methods([PaymentMethod::Lightning]);
    let failed = checkout.create(params.clone(), None);
    run("resume");
    let err = failed.expect_err("no invoice while LNbits is down");
    assert!(err.is_retryable(), "{err:?}");
    // Back up: the same call succeeds.
    let session = checkout.create(params, None).expect("LNbits is back");
    assert!(session.current_payment().is_some());
}

/// An invoice order described by `memo`.
pub(crate) fn order(
    amount: Msats,
    memo: &str,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> InvoiceOrder {
    InvoiceOrder::new(
        amount,
        InvoiceDescription::Text(memo.to_owned()),
        expires_at,
        now,
    )
}

/// Runs `scripts/lnbits <arg>` (`pause` makes an outage, `resume` ends it).
pub(crate) fn run(arg: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lnbits");
    let status = std::process::Command::new(script)
        .arg(arg)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/lnbits {arg}");
}

/// An invoice LNbits' FakeWallet wrote (2,500 sats, no feature field), kept as a fixture.
const FAKE_WALLET_INVOICE: &str = "lnbc25u1p43zrmpdq4gd5x2cmtda6hggr5v4ehgxqzjcsp507jc3wv2kq9k8dd6fsw93dpmyvj8taq2j3nd0ua2j7fkn5m2607spp57fqefc7909kqcw8fnnx6xlx2qjvdsld0987uuwfyxy6n8sfgvrqsa7vcvkjz6fc5097vqvklz70parxn2ddwa4cx98z7czr6jk753gz9k9sz7rxsunxe6czyqsradjc3f8safxw9yv27tffk6ytnq4md5dcqfv2w5l";

#[test]
fn an_invoice_without_features_is_read_only_when_allowed_and_still_checked() {
    assert!(matches!(
        parse_invoice(FAKE_WALLET_INVOICE),
        Err(RequestError::InvalidInvoice { .. })
    ));
    let parsed = parse_invoice_without_features(FAKE_WALLET_INVOICE).unwrap();
    assert_eq!(parsed.amount, Some(Msats::new(2_500_000)));
    assert_eq!(
        parsed.payment_hash.to_string(),
        "f24194e3c5796c0c38e99ccda37cca0498d87daf29fdce3924313533c12860c1"
    );
    assert_eq!(parsed.expiry_secs, 600);
    assert_eq!(parsed.network, Network::Bitcoin);
    // One character changed: the checksum (or the signature) fails; never read as valid.
    let mut bent = FAKE_WALLET_INVOICE.to_owned();
    bent.replace_range(20..21, if &bent[20..21] == "q" { "p" } else { "q" });
    assert!(parse_invoice_without_features(&bent).is_err());
}

#[test]
fn settlements_are_listed_from_a_resume_point_oldest_first_and_only_when_paid() {
    let _one = exclusive();
    let (_, _, shop_inkey) = wallet("shop-settlements");
    let shop = fake_wallet(LnbitsBackend::new(
        &server().0,
        &shop_inkey,
        Network::Bitcoin,
    ));
    let payer = funded_wallet(100_000);
    let now = OffsetDateTime::now_utc();
    let invoice = |sats: u64| {
        shop.create_invoice(&order(
            Msats::new(sats * 1_000),
            "settlement test",
            now + Duration::minutes(10),
            now,
        ))
        .unwrap()
    };
    let pay = |bolt11: &str| pay(&payer, bolt11);
    // A new wallet has no settlements (its credit went to the payer's wallet).
    let empty = shop.settled_since(None, Duration::ZERO).unwrap();
    assert!(empty.settlements.is_empty(), "{empty:?}");
    assert_eq!(empty.resume_at, None);

    let first = invoice(100);
    let second = invoice(200);
    let unpaid = invoice(300);
    pay(&first.payment_request);
    pay(&second.payment_request);
    let all = shop.settled_since(None, Duration::ZERO).unwrap();
    let hashes: Vec<_> = all.settlements.iter().map(|s| s.payment_hash).collect();
    assert_eq!(hashes, [first.payment_hash, second.payment_hash], "{all:?}");
    assert_eq!(all.settlements[0].amount, Msats::new(100_000));
    assert_eq!(all.settlements[1].amount, Msats::new(200_000));
    assert!(!hashes.contains(&unpaid.payment_hash));
    let resume = all.resume_at.expect("a resume point");
    assert_eq!(resume, all.settlements[1].updated_at);

    // From the resume point: the newest already seen may come again, the older does not;
    // a later payment does.
    std::thread::sleep(std::time::Duration::from_millis(20));
    pay(&unpaid.payment_request);
    let next = shop.settled_since(Some(resume), Duration::ZERO).unwrap();
    let hashes: Vec<_> = next.settlements.iter().map(|s| s.payment_hash).collect();
    assert_eq!(hashes.last(), Some(&unpaid.payment_hash), "{next:?}");
    assert!(!hashes.contains(&first.payment_hash), "{next:?}");
    assert!(next.resume_at > Some(resume));
    // With an overlap wider than the whole history, everything comes again.
    let wide = shop
        .settled_since(next.resume_at, Duration::hours(1))
        .unwrap();
    assert_eq!(wide.settlements.len(), 3, "{wide:?}");
    assert_eq!(wide.resume_at, next.resume_at);
}

#[test]
fn a_stopped_server_fails_the_settlement_list_with_a_retryable_error() {
    let _one = exclusive();
    let (_, _, inkey) = wallet("shop-settlements-outage");
    let shop = fake_wallet(LnbitsBackend::new(&server().0, &inkey, Network::Bitcoin));
    run("pause");
    let failed = shop.settled_since(None, Duration::ZERO);
    run("resume");
    match failed {
        Err(RequestError::Backend { retryable, .. }) => assert!(retryable),
        other => panic!("want a retryable backend error, got {other:?}"),
    }
    assert!(shop.settled_since(None, Duration::ZERO).is_ok());
}
