//! BIP21 / unified URIs as scanned from any wallet's QR code.
//!
//! Invariants, for every URI `UnifiedUri::parse` accepts:
//! * `to_uri()` succeeds and its output parses back to the same value — except that the
//!   `lightning:` form (no address) carries the invoice alone, so `amount`, `label` and
//!   `message` are dropped there, as the module documents;
//! * writing is then stable: `to_uri(parse(to_uri(u))) == to_uri(u)`;
//! * the parsed value is in canonical form: bech32 addresses and invoices lowercase, the
//!   amount a payable number of sats.
#![no_main]

use bitcoin_checkout::money::MAX_MONEY_SATS;
use bitcoin_checkout::request::unified::UnifiedUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = UnifiedUri::parse(text) else {
        return;
    };
    assert!(
        uri.address.is_some() || uri.lightning.is_some(),
        "parsed a URI with nothing to pay: {uri:?}"
    );
    if let Some(invoice) = &uri.lightning {
        assert!(
            !invoice.is_empty() && !invoice.bytes().any(|b| b.is_ascii_uppercase()),
            "invoice not canonical: {uri:?}"
        );
    }
    if let Some(amount) = uri.amount {
        assert!(
            amount.get() > 0 && amount.get() <= MAX_MONEY_SATS,
            "unpayable amount: {uri:?}"
        );
    }

    let written = uri
        .to_uri()
        .unwrap_or_else(|e| panic!("to_uri fails on a parsed URI: {e}\n{text:?} -> {uri:?}"));
    let back = UnifiedUri::parse(&written)
        .unwrap_or_else(|e| panic!("parse rejects to_uri's output: {e}\n{text:?} -> {written:?}"));
    let expected = if uri.address.is_some() {
        uri.clone()
    } else {
        UnifiedUri {
            lightning: uri.lightning.clone(),
            ..UnifiedUri::default()
        }
    };
    assert_eq!(
        back, expected,
        "parse(to_uri(u)) != u\n{text:?} -> {written:?}"
    );
    let rewritten = back
        .to_uri()
        .unwrap_or_else(|e| panic!("to_uri fails on its own output: {e}\n{written:?}"));
    assert_eq!(rewritten, written, "to_uri not stable\n{text:?}");
});
