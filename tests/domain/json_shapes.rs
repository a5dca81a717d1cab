//! The JSON shapes of sessions, payments, events and error messages, pinned with insta
//! snapshots, plus the exactness and tolerance rules of the JSON.
//!
//! Snapshots are the crate's own compact JSON re-indented by `pretty` below, which only
//! adds whitespace outside strings: numbers keep their exact text (nothing goes through
//! `f64` or `serde_json::Value`).

use crate::common;

use std::collections::BTreeMap;

use bitcoin_checkout::session::SessionChange;
use bitcoin_checkout::store::rows::{decode_session, session_rows};
use bitcoin_checkout::*;
use common::*;
use time::Duration;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Indents compact JSON by two spaces, touching nothing but whitespace outside strings.
fn pretty(json: &str) -> String {
    fn newline(out: &mut String, indent: usize) {
        out.push('\n');
        out.push_str(&"  ".repeat(indent));
    }
    let mut out = String::new();
    let mut indent = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                if let Some(&close) = chars.peek().filter(|n| matches!(n, '}' | ']')) {
                    chars.next();
                    out.push(close);
                } else {
                    indent += 1;
                    newline(&mut out, indent);
                }
            }
            '}' | ']' => {
                indent -= 1;
                newline(&mut out, indent);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, indent);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    assert_eq!(compact(&out), json, "pretty() must only add whitespace");
    out
}

/// Removes whitespace outside strings.
fn compact(json: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

fn ln(n: u32, msat: u64) -> TransferReport {
    TransferReport::lightning(hash(n), Msats::new(msat))
}

fn chain(tx: u32, sats: u64, confirmations: u32) -> TransferReport {
    TransferReport::onchain(OutPoint::new(txid(tx), 0), ADDRESS, Sats::new(sats))
        .confirmations(confirmations)
}

/// A $25.00 session with everything optional set, and its first quote at 1000 sats/USD.
fn rich_session() -> CheckoutSession {
    let metadata = Metadata::from_pairs([
        ("order_id", MetadataValue::from("1001")),
        ("gift", MetadataValue::from(true)),
        ("items", MetadataValue::from(3)),
    ])
    .expect("metadata");
    let params = SessionParams::new(dec("25.00"), usd())
        .tolerance(dec("0.5"))
        .description("Order #1001")
        .metadata(metadata)
        .success_url("https://shop.example/thanks")
        .cancel_url("https://shop.example/cart")
        .branding(Branding {
            title: Some("Coffee Shop".into()),
            title_description: None,
            title_image: Some("https://shop.example/logo.png".into()),
        })
        .statement_descriptor("COFFEE SHOP")
        .source("woocommerce", "wc_1001");
    session_with(params).0
}

fn assert_reads_back(s: &CheckoutSession) {
    let back = CheckoutSession::from_json(&s.to_json()).expect("reads back");
    assert_eq!(&back, s);
}

// ---------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------

#[test]
fn snapshot_new_session_with_an_unpaid_quote() {
    let s = rich_session();
    assert_reads_back(&s);
    insta::assert_snapshot!("new_session", pretty(&s.to_json()));
}

#[test]
fn snapshot_partially_paid_session() {
    let mut s = rich_session();
    // $10.00 over Lightning, then 5000 sats on-chain waiting for its confirmation.
    let _ = s.record_transfer(ln(1, 10_000_000), at(30)).expect("ln");
    let _ = s
        .record_transfer(chain(1, 5_000, 0), at(45))
        .expect("chain");
    assert_eq!(s.status(), SessionStatus::Active);
    assert_reads_back(&s);
    insta::assert_snapshot!("partially_paid_session", pretty(&s.to_json()));
}

#[test]
fn snapshot_paid_session_with_an_overpayment() {
    let mut s = rich_session();
    let _ = s.record_transfer(ln(1, 26_500_000), at(30)).expect("ln");
    assert_eq!(s.status(), SessionStatus::Paid);
    assert_eq!(s.flagged(FlagKind::Overpaid), Msats::new(1_500_000));
    assert_reads_back(&s);
    insta::assert_snapshot!("paid_overpaid_session", pretty(&s.to_json()));
}

#[test]
fn snapshot_deactivated_session() {
    let mut s = rich_session();
    let _ = s
        .record_transfer(ln(1, 5_000_000), at(30))
        .expect("partial");
    let terms = s
        .next_quote(pid(2), rate("1100", at(60)), at(60))
        .expect("terms");
    let req = request_for(&s, &terms, 2);
    let _ = s.issue_quote(terms, req, at(60)).expect("issue");
    let _ = s.deactivate(at(120)).expect("deactivate");
    let _ = s.record_transfer(ln(2, 1_000_000), at(180)).expect("late");
    assert_reads_back(&s);
    insta::assert_snapshot!("deactivated_session", pretty(&s.to_json()));
}

#[test]
fn snapshot_payment_object() {
    let mut s = rich_session();
    let _ = s.record_transfer(ln(1, 10_000_000), at(30)).expect("ln");
    let json = s.payment_json(pid(1)).expect("payment");
    insta::assert_snapshot!("payment", pretty(&json));
    assert_eq!(s.payment_json(pid(99)), None);
}

#[test]
fn snapshot_session_events() {
    let mut s = rich_session();
    let mut events = s
        .record_transfer(ln(1, 26_500_000), at(30))
        .expect("ln")
        .into_events();
    events.extend(
        s.record_transfer(chain(7, 1_000, 0), at(40))
            .expect("chain")
            .into_events(),
    );
    let json = serde_json::to_string(&events).expect("events JSON");
    insta::assert_snapshot!("session_events", pretty(&json));
    let back: Vec<SessionEvent> = serde_json::from_str(&json).expect("events read back");
    assert_eq!(back, events);
}

#[test]
fn snapshot_error_messages() {
    let errors = [
        Error::AmountNotPositive,
        Error::TooManyDecimals {
            currency: "USD",
            max: 2,
        },
        Error::AmountTooLarge,
        Error::AmountBelowOneSat,
        Currency::from_code("ABC").expect_err("unsupported"),
        Error::InvalidTolerance(dec("100")),
        Error::InvalidTtl(299),
        Error::InvalidUrl {
            field: "success_url",
        },
        Error::SuccessUrlAndMessage,
        Error::TooManyMetadataKeys { count: 51 },
        Error::InvalidMetadataKey { chars: 41 },
        Error::MetadataKeyControlCharacter {
            key: "order\nid".into(),
        },
        Error::MetadataValueTooLong {
            key: "note".into(),
            chars: 501,
        },
        ConfirmationPolicy::from_confirmations(3).expect_err("3"),
        Error::RateMismatch {
            want_base: "USD",
            want_target: "SATS",
            got_base: "EUR",
            got_target: "SATS",
        },
        Error::QuoteAlreadyOpen(pid(1)),
        Error::InvalidTransition {
            action: "deactivate",
            status: "paid",
        },
        Error::ImmutableField("amount"),
        Error::UnknownPaymentRequest,
        Error::MethodNotEnabled("onchain"),
        Error::TransferAmountMismatch {
            first: 1_000,
            again: 2_000,
        },
        Error::ClockWentBackwards {
            now_ms: 1_767_225_599_999,
            last_ms: 1_767_225_600_000,
        },
        Error::RequestMismatch("invoice outlives its quote"),
    ];
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("error_messages", text.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Exact decimals
// ---------------------------------------------------------------------------------------

#[test]
fn amounts_are_json_numbers_read_exactly() {
    let params: SessionParams =
        serde_json::from_str(r#"{"amount": 0.1, "currency": "USD"}"#).expect("params");
    let (s, _) = CheckoutSession::create(sid(2), params.clone(), t0()).expect("create");
    assert_eq!(s.amount(), dec("0.10"));
    assert!(
        serde_json::to_string(&params)
            .expect("params JSON")
            .starts_with(r#"{"amount":0.1,"#)
    );
    assert!(s.to_json().contains(r#""currency":"USD","amount":0.1,"#));
    assert_reads_back(&s);

    // Beyond f64's 15-17 significant digits.
    let big = r#"{"amount": 12345678901234567890.12, "currency": "USD"}"#;
    let params: SessionParams = serde_json::from_str(big).expect("params");
    let (s, _) = CheckoutSession::create(sid(3), params.clone(), t0()).expect("create");
    assert_eq!(s.amount(), dec("12345678901234567890.12"));
    assert!(
        serde_json::to_string(&params)
            .expect("json")
            .starts_with(r#"{"amount":12345678901234567890.12,"#)
    );
    let json = s.to_json();
    assert!(
        json.contains(r#""amount":12345678901234567890.12,"#),
        "{json}"
    );
    let back = CheckoutSession::from_json(&json).expect("reads back");
    assert_eq!(back.amount(), dec("12345678901234567890.12"));
    assert_eq!(back, s);

    // A string holding a number is read too; anything else is refused.
    let params: SessionParams =
        serde_json::from_str(r#"{"amount": "0.1", "currency": "USD"}"#).expect("string amount");
    assert_eq!(
        CheckoutSession::create(sid(4), params, t0()).map(|(s, _)| s.amount()),
        Ok(dec("0.10"))
    );
    assert!(
        serde_json::from_str::<SessionParams>(r#"{"amount": "ten", "currency": "USD"}"#).is_err()
    );
    assert!(
        serde_json::from_str::<SessionParams>(r#"{"amount": true, "currency": "USD"}"#).is_err()
    );
}

#[test]
fn totals_and_rates_are_exact_numbers() {
    let mut s = rich_session();
    // $0.10 at 1000 sats/USD, then $0.20 at 1000.0001 sats/USD.
    let _ = s.record_transfer(ln(1, 100_000), at(1)).expect("ln");
    let terms = s
        .next_quote(pid(2), rate("1000.0001", at(2)), at(2))
        .expect("terms");
    assert_eq!(terms.target(), Sats::new(24_901)); // ceil(24.90 × 1000.0001) = ceil(24900.002490)
    let req = request_for(&s, &terms, 2);
    let _ = s.issue_quote(terms, req, at(2)).expect("issue");
    // The least that credits 20 cents: ceil(20 × 24_901_000 / 2490) = 200_009 msat.
    let mut probe = s.clone();
    let _ = probe.record_transfer(ln(2, 200_008), at(3)).expect("ln");
    assert_eq!(probe.totals().amount_paid, dec("0.29"));
    let _ = s.record_transfer(ln(2, 200_009), at(3)).expect("ln");
    let json = s.to_json();
    assert!(
        json.contains(r#""amount_paid":0.3,"target_amount_paid":300.009,"#),
        "{json}"
    );
    assert!(json.contains(r#""exchange_rate":1000.0001,"#), "{json}");
    let totals = serde_json::to_string(&s.totals()).expect("totals");
    assert_eq!(
        totals,
        r#"{"counted":300009,"pending":0,"amount_paid":0.3,"amount_received":0.3}"#
    );
    assert_reads_back(&s);
}

// ---------------------------------------------------------------------------------------
// Tolerant reading
// ---------------------------------------------------------------------------------------

// Unknown fields, statuses and payment methods: `tests/domain/fidelity.rs` (the domain
// types refuse them with a typed error, the snapshots keep them).

#[test]
fn unknown_event_types_and_statuses_parse_to_unknown() {
    let e: SessionEvent = serde_json::from_str(
        r#"{"event_type": "checkout_session.refunded", "at": 1767225600000, "extra": 1}"#,
    )
    .expect("event");
    assert_eq!(
        e.event_type,
        EventType::Unknown("checkout_session.refunded".into())
    );
    assert_eq!(e.event_type.as_str(), "checkout_session.refunded");
    assert_eq!(e.at, t0());
    assert_eq!(
        serde_json::to_string(&e).expect("json"),
        r#"{"event_type":"checkout_session.refunded","at":1767225600000}"#
    );
    assert_eq!(
        "payment.paid".parse::<EventType>(),
        Ok(EventType::PaymentPaid)
    );
    for t in EventType::ALL {
        assert_eq!(t.as_str().parse::<EventType>().as_ref(), Ok(t));
    }

    assert_eq!(
        serde_json::from_str::<json::MaybeKnown<SessionStatus>>(r#""archived""#).ok(),
        Some(json::MaybeKnown::Unknown("archived".into()))
    );
    assert!(serde_json::from_str::<SessionStatus>(r#""archived""#).is_err());
    assert_eq!(
        serde_json::from_str::<SessionStatus>(r#""paid""#).ok(),
        Some(SessionStatus::Paid)
    );
    assert_eq!(
        serde_json::from_str::<json::MaybeKnown<PaymentStatus>>(r#""refunded""#).ok(),
        Some(json::MaybeKnown::Unknown("refunded".into()))
    );
    assert_eq!(
        serde_json::from_str::<PaymentStatus>(r#""cancelled""#).ok(),
        Some(PaymentStatus::Cancelled)
    );
}

#[test]
fn timestamps_are_unix_milliseconds() {
    let created = t0() + Duration::milliseconds(1_234);
    let (mut s, events) =
        CheckoutSession::create(sid(6), SessionParams::new(dec("1.00"), usd()), created)
            .expect("create");
    assert_eq!(
        serde_json::to_string(&events.events()[0]).expect("event"),
        r#"{"event_type":"checkout_session.created","at":1767225601234}"#
    );
    let json = s.to_json();
    assert!(
        json.ends_with(r#""created":1767225601234,"modified":1767225601234,"version":0}"#),
        "{json}"
    );
    // Sub-millisecond parts are dropped on the way in, so the session still reads back equal.
    let later = created + Duration::nanoseconds(5_999_999);
    let terms = s
        .next_quote(pid(1), rate("1000", later), later)
        .expect("terms");
    let req = request_for(&s, &terms, 1);
    let _ = s.issue_quote(terms, req, later).expect("issue");
    assert_eq!(s.modified(), t0() + Duration::milliseconds(1_239));
    assert!(s.to_json().contains(
        r#""created":1767225601239,"modified":1767225601239,"expires_at":1767226201239"#
    ));
    assert_reads_back(&s);
}

// ---------------------------------------------------------------------------------------
// Suspected bugs (kept, ignored so the suite builds green)
// ---------------------------------------------------------------------------------------

/// After a counted transfer is reversed, the session read back from its own JSON is not
/// `==` to it: the live session's ledger cache keeps an all-zero `per_payment` entry for
/// the payment (`Ledger::swap` subtracts the old contribution but never removes the entry,
/// and `apply` creates no entry for a reversed transfer), while the ledger rebuilt from JSON
/// has none. The JSON texts are equal.
#[test]
fn round_trip_after_a_reversal_equals_the_original() {
    let (mut s, _) = session_with(SessionParams::new(dec("25.00"), usd()));
    let _ = s.record_transfer(ln(1, 25_000_000), at(1)).expect("pay");
    let _ = s
        .record_transfer(ln(1, 25_000_000).reversed(), at(2))
        .expect("reverse");
    let back = CheckoutSession::from_json(&s.to_json()).expect("reads back");
    assert_eq!(back.to_json(), s.to_json());
    assert_eq!(back, s);
}

/// `flags` is a derived field, documented as written for readers and ignored when read, and
/// the changelog promises that unknown enum values are tolerated; yet a flag kind from a
/// newer version makes the whole session unreadable (`FlagKind` has no catch-all and the
/// derived list is still deserialized).
#[test]
fn unknown_flag_kinds_in_the_derived_flags_are_tolerated() {
    let (mut s, _) = session_with(SessionParams::new(dec("10.00"), usd()));
    let _ = s
        .record_transfer(ln(1, 12_000_000), at(1))
        .expect("overpay");
    let json = s.to_json();
    let newer = json.replacen(
        r#""flags":[{"kind":"overpaid""#,
        r#""flags":[{"kind":"chargeback","amount_msat":1},{"kind":"overpaid""#,
        1,
    );
    assert_ne!(newer, json);
    let back = CheckoutSession::from_json(&newer);
    assert_eq!(back.as_ref().err(), None);
    assert_eq!(back.ok(), Some(s));
}

#[test]
fn pretty_only_adds_whitespace() {
    let json = r#"{"a":[1,{"b":"x,y:{[\"]}"},[]],"c":{},"d":-0.5e3}"#;
    assert_eq!(
        pretty(json),
        "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"x,y:{[\\\"]}\"\n    },\n    []\n  ],\n  \"c\": {},\n  \"d\": -0.5e3\n}"
    );
}

/// Stores that keep payments and transfers as rows rebuild the same session, and each
/// change names exactly the payment rows it touched.
#[test]
fn storage_rows_rebuild_the_session_and_changes_name_their_payments() {
    // What a store with payment and transfer rows holds, written change by change: the
    // rows each change names, nothing else.
    #[derive(Default)]
    struct Rows {
        payments: BTreeMap<PaymentId, String>,
        transfers: BTreeMap<String, String>,
    }
    impl Rows {
        fn save(&mut self, s: &CheckoutSession, change: &SessionChange) {
            let all = session_rows(s).expect("rows");
            for id in change.payments() {
                let row = all.payments.iter().find(|p| p.id == id.to_string());
                let row = row.expect("a named payment is in the session");
                self.payments.insert(*id, row.body.clone());
            }
            for key in change.transfers() {
                let row = all.transfers.iter().find(|t| t.key == key.to_string());
                let row = row.expect("a named transfer is in the session");
                self.transfers.insert(row.key.clone(), row.body.clone());
            }
            // Exactly: the rows no change named are still what the session holds.
            for p in &all.payments {
                let id: PaymentId = p.id.parse().expect("payment id");
                assert_eq!(self.payments.get(&id), Some(&p.body), "payment row {id}");
            }
            for t in &all.transfers {
                assert_eq!(
                    self.transfers.get(&t.key),
                    Some(&t.body),
                    "transfer row {}",
                    t.key
                );
            }
        }
    }
    let (mut s, mut change) =
        CheckoutSession::create(sid(1), SessionParams::new(dec("30.00"), usd()), t0())
            .expect("create");
    change.merge(quote_at(&mut s, 1, t0()));
    let mut rows = Rows::default();
    assert_eq!(change.payments(), [pid(1)], "the new quote");
    rows.save(&s, &change);
    let change = s
        .record_transfer(
            TransferReport::lightning(hash(1), Msats::new(10_000_000)),
            at(10),
        )
        .expect("partial");
    assert_eq!(change.payments(), [pid(1)], "the paid quote");
    rows.save(&s, &change);
    let change = quote_at(&mut s, 2, at(11));
    assert_eq!(change.payments(), [pid(2)]);
    rows.save(&s, &change);
    let change = s
        .record_transfer(
            TransferReport::onchain(OutPoint::new(txid(1), 0), ADDRESS, Sats::new(20_000))
                .confirmations(1),
            at(20),
        )
        .expect("rest");
    rows.save(&s, &change);
    let head = session_rows(&s).expect("rows").session;
    let back = decode_session(
        &head.id,
        head.version,
        &head.head,
        rows.payments.values().map(String::as_str),
        rows.transfers.iter().map(|(k, b)| (k.as_str(), b.as_str())),
    )
    .expect("rebuilt");
    assert_eq!(back, s);
    assert_eq!(back.status(), SessionStatus::Paid);
    // The storage row itself carries no payment or transfer list.
    assert!(
        head.head.contains(r#""payments":[],"payments_count":2"#),
        "{}",
        head.head
    );
    assert!(!head.head.contains(r#""transfers""#), "{}", head.head);
    // Event payloads list only the newest payments: no longer than the session's JSON
    // without its transfers (with both payments, as here, the same object).
    let mut without_transfers: serde_json::Value =
        serde_json::from_str(&s.to_json()).expect("session JSON");
    without_transfers
        .as_object_mut()
        .expect("an object")
        .remove("transfers")
        .expect("a transfer list");
    let payload: serde_json::Value = serde_json::from_str(&s.event_json()).expect("payload");
    assert_eq!(payload, without_transfers);
    assert!(s.event_json().len() < s.to_json().len());
}

/// An event's payload stays under 20 kB with 50 metadata keys, however many partial
/// payments the session had (it lists only the newest few).
#[test]
fn event_payloads_stay_small_with_fifty_metadata_keys() {
    let metadata = Metadata::from_pairs((0..50).map(|i| {
        (
            format!("metadata_key_{i:02}_{}", "k".repeat(23)),
            "v".repeat(100),
        )
    }))
    .expect("50 keys");
    let (mut s, _) = session_with(SessionParams::new(dec("1000.00"), usd()).metadata(metadata));
    for n in 1..=20u32 {
        let quote = s.open_payment().expect("open quote").clone();
        let hash = quote
            .request()
            .lightning
            .as_ref()
            .expect("invoice")
            .payment_hash;
        let _ = s
            .record_transfer(
                TransferReport::lightning(hash, Msats::new(1_000_000)),
                at(i64::from(n) * 10),
            )
            .expect("partial");
        let _ = quote_at(&mut s, n + 1, at(i64::from(n) * 10));
    }
    assert_eq!(s.payments().len(), 21);
    let events = s
        .update(&SessionUpdate::new().description("still paying"), at(400))
        .expect("update");
    let event = Event::for_session(EventId::generate(), &events.events()[0], &s);
    let json = event.to_json();
    assert!(json.len() < 20_000, "{} bytes", json.len());
    assert!(json.contains(r#""payments_count":21"#));
}

fn quote_at(s: &mut CheckoutSession, n: u32, now: OffsetDateTime) -> SessionChange {
    let terms = s.next_quote(pid(n), rate("1000", now), now).expect("terms");
    let req = request_for(s, &terms, n);
    s.issue_quote(terms, req, now).expect("issue")
}

#[test]
fn a_session_whose_older_payment_is_unpaid_is_refused() {
    // A partial payment, then a second quote: the first is paid, the second open.
    let mut s = rich_session();
    let _ = s.record_transfer(ln(1, 10_000_000), at(30)).expect("ln");
    let _ = quote_at(&mut s, 2, at(31));
    assert_eq!(s.payments().len(), 2);
    assert_reads_back(&s);
    // Mark the older one unpaid, as no sequence of commands can.
    let mut v: serde_json::Value = serde_json::from_str(&s.to_json()).expect("json");
    let older = &mut v["payments"][0];
    assert_eq!(older["status"], "paid");
    older["status"] = "unpaid".into();
    let err = CheckoutSession::from_json(&v.to_string()).expect_err("refused");
    assert!(
        err.to_string().contains("unpaid but not the newest"),
        "{err}"
    );
}

/// Each payment's JSON is remembered by the session and its copies (ADR 27): whatever was
/// written before for a copy, the JSON always says what the payment and its transfers say
/// now, as a session read back from JSON (which remembers nothing) writes it.
#[test]
fn remembered_payment_json_follows_every_change_of_every_copy() {
    fn fresh(s: &CheckoutSession) -> CheckoutSession {
        CheckoutSession::from_json(&s.to_json()).expect("reads back")
    }
    let (mut s, _) = session_with(SessionParams::new(dec("25.00"), usd()));
    let pid = s.payments()[0].id();
    let before = s.clone();
    let unpaid = s.payment_json(pid).expect("payment");
    assert!(unpaid.contains(r#""status":"unpaid""#), "{unpaid}");
    // Paid in part: the payment changes, its copy made before does not.
    let _ = s.record_transfer(ln(1, 10_000_000), at(1)).expect("pay");
    let paid = s.payment_json(pid).expect("payment");
    assert_ne!(paid, unpaid);
    assert_eq!(paid, fresh(&s).payment_json(pid).expect("payment"));
    assert_eq!(before.payment_json(pid).expect("payment"), unpaid);
    assert_eq!(s.event_json(), fresh(&s).event_json());
    // A reversal changes what the payment received, not the payment itself.
    let copy = s.clone();
    let _ = s
        .record_transfer(ln(1, 10_000_000).reversed(), at(2))
        .expect("reverse");
    let reversed = s.payment_json(pid).expect("payment");
    assert_ne!(reversed, paid, "target_amount_paid follows the reversal");
    assert_eq!(reversed, fresh(&s).payment_json(pid).expect("payment"));
    assert_eq!(copy.payment_json(pid).expect("payment"), paid);
    assert_eq!(s.event_json(), fresh(&s).event_json());
    assert_eq!(copy.event_json(), fresh(&copy).event_json());
    assert_eq!(before.event_json(), fresh(&before).event_json());
}
