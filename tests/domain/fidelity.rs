//! Nothing read is silently changed (issue 13, points 1–3): decimals exact or refused,
//! objects from newer API versions read by the snapshots and refused with a typed error by
//! the domain types, webhook payloads never read back as sessions with other totals.

use crate::common;

use bitcoin_checkout::json::MaybeKnown;
use bitcoin_checkout::snapshot::{ObjectSnapshot, SessionSnapshot, Snapshot};
use bitcoin_checkout::*;
use common::*;
use proptest::prelude::*;

fn ln(n: u32, msat: u64) -> TransferReport {
    TransferReport::lightning(hash(n), Msats::new(msat))
}

/// A $24 session paid in eight partial payments (each a new quote), as a busy shop's
/// webhook payloads show it: more payments than an event lists.
fn paid_in_eight() -> (CheckoutSession, Vec<Event>) {
    let (mut s, first) = session_with(SessionParams::new(dec("24.00"), usd()));
    let mut events: Vec<SessionEvent> = first;
    for n in 1..=8u32 {
        if n > 1 {
            events.extend(quote(&mut s, n, "1000", at(i64::from(n) * 10)));
        }
        // 3,000 sats a time: 8 × 3,000 = 24,000 sats = $24.00 at 1000 sats/USD.
        let change = s
            .record_transfer(ln(n, 3_000_000), at(i64::from(n) * 10 + 1))
            .expect("a partial payment");
        events.extend(change.into_events());
    }
    assert_eq!(s.status(), SessionStatus::Paid);
    assert_eq!(s.payments().len(), 8);
    let mut n = 0u32;
    let envelopes = Event::all_for_session(&events, &s, || {
        n += 1;
        format!("evt_{n:032x}").parse().expect("event id")
    });
    (s, envelopes)
}

// ---- 1. decimals exact or refused ---------------------------------------------------------

#[test]
fn an_amount_with_more_digits_than_a_decimal_holds_is_refused_not_rounded() {
    // rust_decimal's parser rounds this to 10: a $10.00 session for a $9.99… request.
    let err = SessionParams::from_json(
        r#"{"amount": 9.9999999999999999999999999999999, "currency": "USD"}"#,
    )
    .expect_err("refused");
    assert!(matches!(err, Error::InexactDecimal { .. }), "{err:?}");
    assert!(err.to_string().contains("9.99999999"), "{err}");
    // Through serde directly, the refusal is there too (as serde's error).
    assert!(
        serde_json::from_str::<SessionParams>(
            r#"{"amount": 9.9999999999999999999999999999999, "currency": "USD"}"#
        )
        .is_err()
    );
}

#[test]
fn a_rate_with_more_digits_than_a_decimal_holds_is_refused() {
    let json = r#"{"base":"USD","target":"SATS","rate":0.1000000000000000055511151231257827,"source":"x","fetched_at":1767225600000}"#;
    let err = serde_json::from_str::<ExchangeRate>(json).expect_err("refused");
    assert!(err.to_string().contains("refused, not rounded"), "{err}");
    // In a stored session, the same: the payment's rate is refused, the session with it.
    let (s, _) = session_with(SessionParams::new(dec("25.00"), usd()));
    let json = s.to_json().replacen(
        r#""exchange_rate":1000,"#,
        r#""exchange_rate":0.1000000000000000055511151231257827,"#,
        1,
    );
    assert_ne!(json, s.to_json());
    let err = CheckoutSession::from_json(&json).expect_err("refused");
    assert!(matches!(err, Error::InexactDecimal { .. }), "{err:?}");
}

#[test]
fn tolerance_and_totals_read_exactly_or_are_refused() {
    let err = SessionParams::from_json(
        r#"{"amount": 5, "currency": "USD", "amount_paid_tolerance": 0.00000000000000000000000000001}"#,
    )
    .expect_err("29 decimal places");
    assert!(matches!(err, Error::InexactDecimal { .. }), "{err:?}");
    // Trailing zeros, exponents and strings holding numbers are exact, so they are read.
    for (text, value) in [
        ("25.000000000000000000000000000000000000", "25"),
        ("2.5e1", "25"),
        ("\"25.50\"", "25.5"),
        ("2500e-2", "25"),
        (
            "0.0000000000000000000000000001",
            "0.0000000000000000000000000001",
        ),
    ] {
        let params =
            SessionParams::from_json(&format!(r#"{{"amount": {text}, "currency": "USD"}}"#))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(params, SessionParams::new(dec(value), usd()), "{text}");
    }
    // The last two found by the json_event fuzz target: an exponent of i64::MIN
    // overflowed `abs` (a panic on input).
    for text in [
        "1e29",
        "79228162514264337593543950336",
        "1e-29",
        "123456789012345678901.123456789",
        "5e-9223372036854775808",
        "5e9223372036854775807",
    ] {
        let err = SessionParams::from_json(&format!(r#"{{"amount": {text}, "currency": "USD"}}"#))
            .expect_err(text);
        assert!(
            matches!(err, Error::InexactDecimal { .. }),
            "{text}: {err:?}"
        );
    }
    for text in ["\"abc\"", "true", "\"1.2.3\"", "\"--1\"", "\"1e\""] {
        let err = SessionParams::from_json(&format!(r#"{{"amount": {text}, "currency": "USD"}}"#))
            .expect_err(text);
        assert!(matches!(err, Error::NotADecimal { .. }), "{text}: {err:?}");
    }
}

proptest! {
    /// Any decimal's text reads back as the same decimal, in plain and exponent form, and
    /// the same digits with one more significant digit than a Decimal holds are refused.
    #[test]
    fn decimal_text_reads_back_exactly(mantissa in any::<i64>(), scale in 0u32..=28) {
        let d = Decimal::new(mantissa, scale.min(18));
        let json = format!(r#"{{"amount": {d}, "currency": "USD"}}"#);
        if d > Decimal::ZERO && d.scale() <= 2 {
            let params = SessionParams::from_json(&json).expect("exact");
            prop_assert_eq!(params, SessionParams::new(d, usd()));
        }
        let snapshot = Snapshot::from_json(&json).expect("object");
        prop_assert_eq!(snapshot.decimal("amount").expect("exact"), Some(d));
        let long = format!(r#"{{"amount": {}1}}"#, "0.".to_owned() + &"0".repeat(28));
        let refused = Snapshot::from_json(&long).expect("object").decimal("amount");
        prop_assert!(matches!(refused, Err(Error::InexactDecimal { .. })), "{:?}", refused);
    }
}

// ---- 2. objects from newer API versions ---------------------------------------------------

#[test]
fn unknown_statuses_methods_and_fields_read_as_snapshots_and_write_back_unchanged() {
    let (mut s, _) = session_with(SessionParams::new(dec("25.00"), usd()));
    let _ = s.record_transfer(ln(1, 25_000_000), at(30)).expect("paid");
    let json = s.to_json();
    let newer = json
        .replacen(r#""status":"paid""#, r#""status":"processing""#, 1)
        .replacen(r#""status":"paid""#, r#""status":"refunded""#, 1)
        .replacen(
            r#""payment_methods":["lightning","onchain"]"#,
            r#""payment_methods":["lightning","onchain","liquid"]"#,
            1,
        )
        .replacen(
            r#"{"id":"cs_"#,
            r#"{"future":{"nested":[1,2.5e-3,"x"]},"id":"cs_"#,
            1,
        );
    assert_eq!(newer.matches("processing").count(), 1, "{newer}");
    assert_eq!(newer.matches("refunded").count(), 1, "{newer}");

    let snapshot = SessionSnapshot::from_json(&newer).expect("a snapshot reads anything");
    assert_eq!(snapshot.to_json(), newer, "written back unchanged");
    assert_eq!(
        snapshot.status().expect("status"),
        MaybeKnown::Unknown("processing".into())
    );
    assert_eq!(
        snapshot.payment_methods().expect("methods"),
        vec![
            MaybeKnown::Known(PaymentMethod::Lightning),
            MaybeKnown::Known(PaymentMethod::Onchain),
            MaybeKnown::Unknown("liquid".into()),
        ]
    );
    let payments = snapshot.payments().expect("payments");
    assert_eq!(payments.len(), 1);
    assert_eq!(
        payments[0].status().expect("status"),
        MaybeKnown::Unknown("refunded".into())
    );
    assert_eq!(payments[0].exchange_rate().expect("rate"), dec("1000"));
    assert_eq!(
        snapshot.amount_paid().expect("amount_paid"),
        Some(dec("25"))
    );
    assert_eq!(
        snapshot.fields().get("future").map(|v| v.get()),
        Some(r#"{"nested":[1,2.5e-3,"x"]}"#)
    );

    // The domain type refuses each, naming the value, instead of a silent change.
    let refused = |json: &str| CheckoutSession::from_json(json).expect_err("refused");
    let only = |from: &str, to: &str| json.replacen(from, to, 1);
    assert_eq!(
        refused(&only(r#""status":"paid""#, r#""status":"processing""#)),
        Error::UnknownValue {
            field: "status",
            value: "processing".into()
        }
    );
    let payment_refunded = json.replacen(
        r#""object":"payment","status":"paid""#,
        r#""object":"payment","status":"refunded""#,
        1,
    );
    assert_ne!(payment_refunded, json);
    assert_eq!(
        refused(&payment_refunded),
        Error::UnknownValue {
            field: "status",
            value: "refunded".into()
        }
    );
    assert_eq!(
        refused(&only(
            r#""payment_methods":["lightning","onchain"]"#,
            r#""payment_methods":["lightning","onchain","liquid"]"#
        )),
        Error::UnknownValue {
            field: "payment_methods",
            value: "liquid".into()
        }
    );
    assert_eq!(
        refused(&only(r#"{"id":"cs_"#, r#"{"future":1,"id":"cs_"#)),
        Error::UnknownField {
            object: "checkout_session",
            field: "future".into()
        }
    );
    assert_eq!(
        refused(&only(
            r#""object":"payment","#,
            r#""object":"payment","risk_score":0.25,"#
        )),
        Error::UnknownField {
            object: "payment",
            field: "risk_score".into()
        }
    );
    assert_eq!(
        refused(&only(
            r#""arrival":"expected","#,
            r#""arrival":"expected","fee_msat":12,"#
        )),
        Error::UnknownField {
            object: "transfer",
            field: "fee_msat".into()
        }
    );
    // What this version writes, it reads: the session itself round-trips.
    assert_eq!(CheckoutSession::from_json(&json).expect("its own JSON"), s);
    assert_eq!(
        snapshot.to_session().err(),
        Some(Error::UnknownField {
            object: "checkout_session",
            field: "future".into()
        })
    );
}

#[test]
fn a_snapshot_refuses_what_is_not_one_object() {
    for bad in ["[1]", "1", r#"{"a":1,"a":2}"#, "{", r#"{"a":1} x"#] {
        assert!(Snapshot::from_json(bad).is_err(), "{bad}");
    }
    let s = Snapshot::from_json(r#"{ "b" : 1.50 , "a" : [ 1 ] }"#).expect("object");
    // Field order and each value's text are kept; only the space between fields goes.
    assert_eq!(s.to_json(), r#"{"b":1.50,"a":[ 1 ]}"#);
}

// ---- 3. webhook payloads read back as what they say ----------------------------------------

#[test]
fn a_paid_sessions_webhook_payload_is_refused_as_a_session_and_read_as_a_snapshot() {
    let (s, events) = paid_in_eight();
    let paid = events
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::CheckoutSessionPaid)
        .expect("a checkout_session.paid event");
    let object = paid.object.get();
    // Today: read as a session with status paid, zero totals and five of eight payments.
    let err = CheckoutSession::from_json(object).expect_err("not a whole session");
    assert!(matches!(err, Error::DerivedMismatch { .. }), "{err:?}");

    let ObjectSnapshot::Session(snapshot) = ObjectSnapshot::of(paid).expect("object") else {
        panic!("a session object");
    };
    assert_eq!(snapshot.to_json(), object, "every field as sent");
    assert_eq!(snapshot.id().expect("id"), s.id());
    assert_eq!(
        snapshot.status().expect("status"),
        MaybeKnown::Known(SessionStatus::Paid)
    );
    assert_eq!(snapshot.amount_paid().expect("paid"), Some(dec("24")));
    assert_eq!(
        snapshot.target_amount_paid().expect("paid"),
        Some(dec("24000"))
    );
    assert_eq!(snapshot.payments_count().expect("count"), Some(8));
    assert_eq!(snapshot.payments().expect("payments").len(), 5);
    assert!(snapshot.to_session().is_err());

    // Payment events carry the payment object; its snapshot reads it exactly.
    let payment_paid = events
        .iter()
        .find(|e| e.event_type == EventType::PaymentPaid)
        .expect("a payment.paid event");
    let ObjectSnapshot::Payment(p) = ObjectSnapshot::of(payment_paid).expect("object") else {
        panic!("a payment object");
    };
    assert_eq!(p.target_amount_paid().expect("paid"), Some(dec("3000")));
    assert_eq!(p.checkout_session().expect("session"), s.id());
}

#[test]
fn a_payload_with_only_some_payments_or_edited_totals_is_refused() {
    let (s, _) = paid_in_eight();
    let json = s.to_json();
    // Totals that differ from the facts.
    let edited = json.replacen(r#""amount_paid":24,"#, r#""amount_paid":23,"#, 1);
    assert_ne!(edited, json);
    assert_eq!(
        CheckoutSession::from_json(&edited).expect_err("refused"),
        Error::DerivedMismatch {
            field: "amount_paid",
            written: "23".into(),
            derived: "24".into()
        }
    );
    // A count that says more payments exist than are listed.
    let counted = json.replacen(r#""payments_count":8,"#, r#""payments_count":9,"#, 1);
    assert_ne!(counted, json);
    assert!(matches!(
        CheckoutSession::from_json(&counted),
        Err(Error::DerivedMismatch {
            field: "payments_count",
            ..
        })
    ));
    assert_eq!(CheckoutSession::from_json(&json).expect("whole"), s);
}
