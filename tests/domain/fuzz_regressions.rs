//! Regression tests for bugs in `src/` found while fuzzing (`scripts/fuzz`, targets in
//! `fuzz/fuzz_targets/`). Each test is the smallest reproducer of one finding, written against
//! the public API so it keeps guarding once the fuzz run is gone.
//!
//! A test marked `#[ignore = "bug: …"]` reproduces a bug that is not fixed yet: it fails
//! today. Remove the `ignore` together with the fix; `cargo test --test fuzz_regressions --
//! --ignored` runs them. The fuzz targets skip the shape of each open bug unless
//! `FUZZ_STRICT=1` is set, so a fuzz run keeps looking for new ones (drop the skip with the
//! fix too: search the targets for the test's name).

use crate::common;

use bitcoin_checkout::store::rows::{decode_session, session_rows};
use bitcoin_checkout::*;
use common::*;

/// A minimal session as `CheckoutSession::to_json` writes it (USD 25, one quote), with the
/// session's target currency and ttl and the quote's `target_amount` left to fill in.
fn session_json(target_currency: &str, ttl: &str, target_amount: &str) -> String {
    format!(
        r#"{{"id":"cs_01010101010101010101010101010101","object":"checkout_session","livemode":false,
        "status":"active","currency":"USD","amount":25,"target_currency":"{target_currency}","ttl":{ttl},
        "payment_methods":["lightning"],"confirmations":1,"amount_paid_tolerance":0,"payments":[
        {{"id":"pi_00000000000000000000000000000001","object":"payment","status":"expired",
        "checkout_session":"cs_01010101010101010101010101010101","currency":"USD","amount":25,
        "exchange_rate":1000,"exchange_rate_source":"fixed","exchange_rate_fetched_at":1767225600000,
        "target_currency":"{target_currency}","target_amount":{target_amount},"created":1767225600000,
        "expires_at":1767226200000,"expired_at":1767226200000}}],
        "created":1767225600000,"modified":1767226200000}}"#
    )
}

/// Found by reading `payment_from_wire` while writing the `json_session` target and
/// confirmed with its binary; fixed meanwhile in 694652f (found independently by the hostile
/// inputs work): for a session whose target currency is BTC, reading a payment computed
/// `target_amount * 100_000_000` with `Decimal`'s `*`, which panics on overflow, so any
/// session JSON with a BTC `target_amount` above about 7.9e20 crashed `from_json`.
#[test]
fn from_json_refuses_a_huge_btc_target_amount() {
    let json = session_json("BTC", "600", "79228162514264337593543950335");
    assert!(CheckoutSession::from_json(&json).is_err());
}

/// Found like the one above, fixed in the same commit: `from_json` took any `i64` ttl and
/// `next_quote` then computed `now + Duration::seconds(ttl)`, which panics out of range, so a
/// stored session with a corrupt ttl crashed the service on its next quote.
#[test]
fn a_session_read_with_a_huge_ttl_does_not_panic_on_its_next_quote() {
    for ttl in ["9223372036854775807", "-9223372036854775808"] {
        let json = session_json("SATS", ttl, "25000");
        let Ok(session) = CheckoutSession::from_json(&json) else {
            continue; // refused when read: fixed that way
        };
        let now = at(3600);
        let _ = session.next_quote(pid(2), rate("1000", now), now);
    }
}

/// Found by the `json_event` target in its first seconds: `SessionUpdate`'s `Serialize`
/// skips `clear_metadata`, so `{"metadata": null}` (clear every key) is written as `{}` and
/// reads back as an update that changes nothing.
#[test]

fn session_update_json_keeps_a_metadata_clear() {
    let update: SessionUpdate = serde_json::from_str(r#"{"metadata":null}"#).expect("parses");
    let json = serde_json::to_string(&update).expect("serializes");
    let back: SessionUpdate = serde_json::from_str(&json).expect("reads its own JSON");
    assert_eq!(back, update, "{json}");
}

/// Found by the `json_event` target: `SessionUpdate`'s `Serialize` also skips the immutable
/// field it was given, so an update that `CheckoutSession::update` refuses
/// (`Error::ImmutableField`) becomes, once written to JSON and read back, one it accepts.
#[test]

fn session_update_json_keeps_an_immutable_field() {
    let update: SessionUpdate =
        serde_json::from_str(r#"{"amount":30,"description":"x"}"#).expect("parses");
    let json = serde_json::to_string(&update).expect("serializes");
    let back: SessionUpdate = serde_json::from_str(&json).expect("reads its own JSON");
    let (session, _) = session_with(SessionParams::new(dec("25"), usd()));
    for u in [&update, &back] {
        let result = session.clone().update(u, at(1));
        assert!(
            matches!(result, Err(Error::ImmutableField("amount"))),
            "{u:?} gives {result:?} (JSON {json})"
        );
    }
}

/// Rebuilds `session` the way a store with payment and transfer rows does (the stores' one
/// row mapping, `store::rows`).
fn through_storage(session: &CheckoutSession) -> CheckoutSession {
    let rows = session_rows(session).expect("session_rows");
    decode_session(
        &rows.session.id,
        rows.session.version,
        &rows.session.head,
        rows.payments.iter().map(|p| p.body.as_str()),
        rows.transfers
            .iter()
            .map(|t| (t.key.as_str(), t.body.as_str())),
    )
    .expect("decode_session")
}

/// Found by the `json_session` target in its first seconds: `from_json` accepts two payments
/// with the same id, which no command can make (`issue_quote` refuses a used id), and such a
/// session does not survive the storage form: `payment_json(id)` finds the first payment
/// twice, so the second is replaced by a copy of the first. Fix: refuse duplicate payment
/// ids in `from_json` (the test accepts that too).
#[test]

fn from_json_with_duplicate_payment_ids_survives_storage_or_is_refused() {
    let (mut s, _) = session_with(SessionParams::new(dec("25"), usd()));
    let _ = s.expire_quotes(at(700)).expect("expire");
    quote(&mut s, 2, "1100", at(700));
    let json = s.to_json().replace(
        &pid(2).to_string(),
        &pid(1).to_string(), // both payments now pi_…01
    );
    if let Ok(session) = CheckoutSession::from_json(&json) {
        assert_eq!(through_storage(&session), session);
    }
}

/// Found by the `json_session` target: `from_json` keeps payments in the order listed, while
/// the storage form (`from_storage` then, `store::rows::decode_session` now) sorts them by
/// creation time (`open_payment`, `current_payment` and event payloads depend on that
/// order). JSON listing the newest payment first, as APIs often do, gives a session that
/// the storage form silently reorders. Fix: sort (or refuse unsorted) payments in
/// `from_json` as the storage form does.
#[test]

fn from_json_with_payments_newest_first_survives_storage_or_is_refused() {
    let (mut s, _) = session_with(SessionParams::new(dec("25"), usd()));
    let _ = s.expire_quotes(at(700)).expect("expire");
    quote(&mut s, 2, "1100", at(700));
    let mut value: serde_json::Value = serde_json::from_str(&s.to_json()).expect("JSON");
    if let Some(payments) = value["payments"].as_array_mut() {
        payments.reverse();
    }
    if let Ok(session) = CheckoutSession::from_json(&value.to_string()) {
        assert_eq!(through_storage(&session), session);
    }
}

/// Found by the `json_session` target (after the ledger started caching credits per
/// payment): `from_json` accepts a transfer key listed twice. The second entry replaces the
/// first (`put_transfer`), but when the two name different payments only the new payment's
/// credit is recomputed (`Ledger::set_credits`); the old payment keeps the credit of money
/// that is no longer recorded. Totals (`amount_paid`), the paid threshold and the flags then
/// count phantom funds until the session is read again; `from_json(to_json(s))` differs.
/// Fix: refuse duplicate transfer keys in `from_json` and the storage forms, or
/// recompute the old payment's credit in `put_transfer` when the payment changes.
#[test]

fn from_json_with_a_transfer_listed_twice_keeps_its_totals_or_is_refused() {
    let (mut s, _) = session_with(SessionParams::new(dec("25"), usd()));
    let _ = s
        .record_transfer(
            TransferReport::lightning(hash(1), Msats::new(5_000_000)),
            at(30),
        )
        .expect("a partial payment");
    quote(&mut s, 2, "1100", at(60));
    let mut value: serde_json::Value = serde_json::from_str(&s.to_json()).expect("JSON");
    let transfers = value["transfers"].as_array_mut().expect("transfers");
    let mut again = transfers[0].clone();
    again["payment_id"] = serde_json::Value::String(pid(2).to_string());
    again["amount_msat"] = serde_json::Value::from(1_000_000u64);
    transfers.push(again);
    if let Ok(session) = CheckoutSession::from_json(&value.to_string()) {
        let reread = CheckoutSession::from_json(&session.to_json()).expect("its own JSON");
        assert_eq!(reread.totals(), session.totals());
        assert_eq!(reread, session);
    }
}

/// Found by the `json_session` target: `from_json` reads a payment's own `currency` and
/// `target_currency` (its rate's pair, and the scale of its due in minor units) but
/// `to_json` writes the session's, and nothing checks that they agree. A USD session whose
/// payment says JPY credits that payment in yen units: paying its whole target credits
/// 25 minor units (0.25 USD) instead of 2500, and the session never becomes paid; once
/// written and read back the same payment credits 2500. Fix: refuse a payment whose currency
/// or target currency differs from its session's.
#[test]

fn from_json_with_a_payment_in_another_currency_round_trips_or_is_refused() {
    let (s, _) = session_with(SessionParams::new(dec("25"), usd()));
    let mut value: serde_json::Value = serde_json::from_str(&s.to_json()).expect("JSON");
    value["payments"][0]["currency"] = serde_json::Value::from("JPY");
    if let Ok(session) = CheckoutSession::from_json(&value.to_string()) {
        let reread = CheckoutSession::from_json(&session.to_json()).expect("its own JSON");
        assert_eq!(reread, session);
    }
}
