//! Readable lifecycle scenarios: each asserts statuses, totals, flags and the exact list of
//! events of every step, with exact sats, msats and decimals.

use crate::common;

use bitcoin_checkout::*;
use common::*;
use rust_decimal::Decimal;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The last four bytes of an id or hash, as the fixtures number them.
fn tail(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"))
}

/// Events as short lines: `type[ p<payment>][ <transfer>][ <msat>]`, with `ln#n` for the
/// invoice of quote n and `tx#n:vout` for on-chain outputs. Also checks every event's time.
fn evs(events: &[SessionEvent], now: OffsetDateTime) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            assert_eq!(e.at, now, "event time of {}", e.event_type);
            let mut line = e.event_type.as_str().to_owned();
            if let Some(p) = e.payment_id {
                line += &format!(" p{}", tail(p.as_uuid().as_bytes()));
            }
            match e.transfer {
                Some(TransferKey::Lightning(h)) => line += &format!(" ln#{}", tail(&h.to_bytes())),
                Some(TransferKey::Onchain(OutPoint { txid, vout })) => {
                    // The fixture's number is in the last digits shown: the first bytes kept.
                    let mut shown = txid.to_byte_array();
                    shown.reverse();
                    line += &format!(" tx#{}:{vout}", tail(&shown))
                }
                None => {}
            }
            if let Some(a) = e.amount {
                line += &format!(" {}", a.get());
            }
            line
        })
        .collect()
}

fn ln(n: u32, msat: u64) -> TransferReport {
    TransferReport::lightning(hash(n), Msats::new(msat))
}

fn chain(tx: u32, sats: u64, confirmations: u32) -> TransferReport {
    TransferReport::onchain(OutPoint::new(txid(tx), 0), ADDRESS, Sats::new(sats))
        .confirmations(confirmations)
}

/// Records a report that must be accepted; returns its events as lines.
fn record(s: &mut CheckoutSession, report: TransferReport, now: OffsetDateTime) -> Vec<String> {
    let events = s.record_transfer(report, now).expect("transfer accepted");
    evs(events.events(), now)
}

/// Issues quote `n` at `rate` (any currency pair) and returns its events as lines.
fn quote_at(
    s: &mut CheckoutSession,
    n: u32,
    rate: ExchangeRate,
    now: OffsetDateTime,
) -> Vec<String> {
    let terms = s.next_quote(pid(n), rate, now).expect("terms");
    let req = request_for(s, &terms, n);
    let events = s.issue_quote(terms, req, now).expect("issue");
    evs(events.events(), now)
}

fn usd_quote(
    s: &mut CheckoutSession,
    n: u32,
    sats_per_usd: &str,
    now: OffsetDateTime,
) -> Vec<String> {
    quote_at(s, n, rate(sats_per_usd, now), now)
}

fn assert_totals(s: &CheckoutSession, counted: u64, pending: u64, paid: &str, received: &str) {
    let t = s.totals();
    assert_eq!(t.counted, Msats::new(counted), "counted");
    assert_eq!(t.pending, Msats::new(pending), "pending");
    assert_eq!(t.amount_paid, dec(paid), "amount_paid");
    assert_eq!(t.amount_received, dec(received), "amount_received");
}

fn flags(s: &CheckoutSession) -> Vec<(FlagKind, u64)> {
    s.flags().iter().map(|f| (f.kind, f.amount.get())).collect()
}

fn statuses(s: &CheckoutSession) -> Vec<PaymentStatus> {
    s.payments().iter().map(|p| p.status()).collect()
}

/// The session reads back from its JSON as the same session.
fn assert_round_trip(s: &CheckoutSession) {
    let json = s.to_json();
    let back = CheckoutSession::from_json(&json).expect("reads back");
    assert_eq!(back.to_json(), json);
    // A reversal trips the ledger equality bug shown in json_shapes.rs; the facts (the JSON
    // text) are still equal.
    if !s.transfers().any(|t| t.reversed) {
        assert_eq!(&back, s);
    }
}

/// Runs `f` on a clone and checks it fails with `want`, leaving the session unchanged.
fn assert_refused<T: std::fmt::Debug>(
    s: &mut CheckoutSession,
    want: Error,
    f: impl FnOnce(&mut CheckoutSession) -> Result<T, Error>,
) {
    let before = s.clone();
    let got = f(s);
    assert_eq!(got.err(), Some(want));
    assert_eq!(*s, before, "a refused command changed the session");
}

fn usd_session(amount: &str) -> (CheckoutSession, Vec<SessionEvent>) {
    session_with(SessionParams::new(dec(amount), usd()))
}

// ---------------------------------------------------------------------------------------
// Lifecycles
// ---------------------------------------------------------------------------------------

#[test]
fn full_payment() {
    let (mut s, events) = usd_session("25.00");
    assert_eq!(
        evs(&events, t0()),
        ["checkout_session.created", "payment.created p1"]
    );
    let p = s.open_payment().expect("open").clone();
    assert_eq!(p.due(), dec("25.00"));
    assert_eq!(p.target(), Sats::new(25_000));
    assert_eq!(p.expires_at(), at(600));
    assert_eq!(s.onchain_address(), Some(ADDRESS));
    assert!(!s.needs_quote(at(1)));

    let events = record(&mut s, ln(1, 25_000_000), at(10));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 ln#1 25000000",
            "payment.paid p1",
            "checkout_session.payment_paid p1",
            "checkout_session.paid",
        ]
    );
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(10) });
    assert_eq!(statuses(&s), [PaymentStatus::Paid]);
    assert_totals(&s, 25_000_000, 0, "25.00", "25.00");
    assert_eq!(flags(&s), []);
    assert!(!s.needs_quote(at(10)));
    assert_eq!(s.version(), 2);

    // The node reports it again: nothing happens.
    let before = s.clone();
    assert_eq!(
        record(&mut s, ln(1, 25_000_000), at(20)),
        Vec::<String>::new()
    );
    assert_eq!(s, before);
    assert_round_trip(&s);
}

#[test]
fn three_partial_payments_then_paid() {
    let (mut s, _) = usd_session("30.00");
    // 1. $10 of $30 over Lightning at 1000 sats/USD.
    let events = record(&mut s, ln(1, 10_000_000), at(10));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 ln#1 10000000",
            "payment.paid p1",
            "checkout_session.payment_paid p1",
        ]
    );
    assert_eq!(s.status(), SessionStatus::Active);
    assert_totals(&s, 10_000_000, 0, "10.00", "10.00");
    assert!(s.needs_quote(at(10)));

    // 2. The rest ($20) at 2000 sats/USD; half of it arrives on-chain, confirmed.
    assert_eq!(usd_quote(&mut s, 2, "2000", at(20)), ["payment.created p2"]);
    let p2 = s.open_payment().expect("open").clone();
    assert_eq!((p2.due(), p2.target()), (dec("20.00"), Sats::new(40_000)));
    let events = record(&mut s, chain(1, 20_000, 1), at(30));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p2 tx#1:0 20000000",
            "payment.paid p2",
            "checkout_session.payment_paid p2",
        ]
    );
    assert_totals(&s, 30_000_000, 0, "20.00", "20.00");

    // 3. The last $10 at 1500 sats/USD.
    assert_eq!(usd_quote(&mut s, 3, "1500", at(40)), ["payment.created p3"]);
    let p3 = s.open_payment().expect("open").clone();
    assert_eq!((p3.due(), p3.target()), (dec("10.00"), Sats::new(15_000)));
    let events = record(&mut s, ln(3, 15_000_000), at(50));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p3 ln#3 15000000",
            "payment.paid p3",
            "checkout_session.payment_paid p3",
            "checkout_session.paid",
        ]
    );
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(50) });
    assert_eq!(statuses(&s), [PaymentStatus::Paid; 3]);
    assert_totals(&s, 45_000_000, 0, "30.00", "30.00");
    assert_eq!(flags(&s), []);
    assert_round_trip(&s);
}

#[test]
fn partial_payment_then_deactivated() {
    let (mut s, _) = usd_session("10.00");
    record(&mut s, ln(1, 4_000_000), at(10));
    assert_eq!(usd_quote(&mut s, 2, "1000", at(60)), ["payment.created p2"]);
    assert_eq!(
        s.open_payment().map(|p| (p.due(), p.target())),
        Some((dec("6.00"), Sats::new(6_000)))
    );

    let events = s.deactivate(at(120)).expect("deactivate");
    assert_eq!(
        evs(events.events(), at(120)),
        ["payment.cancelled p2", "checkout_session.deactivated"]
    );
    assert_eq!(
        s.state(),
        SessionState::Deactivated {
            deactivated_at: at(120),
            reason: DeactivationReason::Requested,
        }
    );
    assert_eq!(
        s.payments().iter().map(|p| p.state()).collect::<Vec<_>>(),
        [
            PaymentState::Paid { paid_at: at(10) },
            PaymentState::Cancelled {
                cancelled_at: at(120)
            }
        ]
    );
    assert_totals(&s, 4_000_000, 0, "4.00", "4.00");
    assert_eq!(flags(&s), [(FlagKind::RefundDue, 4_000_000)]);
    assert!(!s.needs_quote(at(120)));

    // Final: a second deactivation and a quote are refused.
    let deactivated = Error::InvalidTransition {
        action: "deactivate",
        status: "deactivated",
    };
    assert_refused(&mut s, deactivated, |s| s.deactivate(at(130)));
    assert_refused(
        &mut s,
        Error::InvalidTransition {
            action: "quote",
            status: "deactivated",
        },
        |s| s.next_quote(pid(3), rate("1000", at(130)), at(130)),
    );
    assert_round_trip(&s);
}

#[test]
fn quote_expiry_then_requote_at_a_new_rate_then_paid() {
    let (mut s, _) = usd_session("20.00");
    assert_eq!(
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(20_000))
    );
    // Not yet: the quote runs until 600 s.
    assert_eq!(s.expire_quotes(at(599)).expect("expire").into_events(), []);
    assert!(!s.needs_quote(at(599)));
    assert!(s.needs_quote(at(600)));
    assert_refused(&mut s, Error::QuoteAlreadyOpen(pid(1)), |s| {
        s.next_quote(pid(2), rate("1250", at(599)), at(599))
    });

    // At 600 s the new quote first expires the old one.
    assert_eq!(
        usd_quote(&mut s, 2, "1250", at(600)),
        ["payment.expired p1", "payment.created p2"]
    );
    assert_eq!(
        s.payments()[0].state(),
        PaymentState::Expired {
            expired_at: at(600)
        }
    );
    let p2 = s.open_payment().expect("open").clone();
    assert_eq!((p2.due(), p2.target()), (dec("20.00"), Sats::new(25_000)));

    let events = record(&mut s, ln(2, 25_000_000), at(700));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p2 ln#2 25000000",
            "payment.paid p2",
            "checkout_session.payment_paid p2",
            "checkout_session.paid",
        ]
    );
    assert_eq!(statuses(&s), [PaymentStatus::Expired, PaymentStatus::Paid]);
    assert_totals(&s, 25_000_000, 0, "20.00", "20.00");
    assert_eq!(flags(&s), []);
    assert_round_trip(&s);
}

#[test]
fn expire_quotes_alone_emits_payment_expired_once() {
    let (mut s, _) = usd_session("20.00");
    let events = s.expire_quotes(at(900)).expect("expire");
    assert_eq!(evs(events.events(), at(900)), ["payment.expired p1"]);
    assert_eq!(
        s.payments()[0].state(),
        PaymentState::Expired {
            expired_at: at(600)
        }
    );
    assert_eq!(s.version(), 2);
    // Again: nothing more, no version bump.
    assert_eq!(s.expire_quotes(at(1000)).expect("expire").into_events(), []);
    assert_eq!(s.version(), 2);
    assert!(s.needs_quote(at(1000)));
}

#[test]
fn overpayment_is_flagged_exactly() {
    let (mut s, _) = usd_session("10.00");
    let events = record(&mut s, ln(1, 12_345_678), at(10));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 ln#1 12345678",
            "payment.paid p1",
            "checkout_session.payment_paid p1",
            "checkout_session.paid",
            "checkout_session.overpaid 2345678",
        ]
    );
    // floor(1000 cents × 12_345_678 / 10_000_000) = 1234 cents.
    assert_totals(&s, 12_345_678, 0, "12.34", "12.34");
    assert_eq!(flags(&s), [(FlagKind::Overpaid, 2_345_678)]);
    assert_round_trip(&s);
}

#[test]
fn late_payment_after_deactivation() {
    let (mut s, _) = usd_session("10.00");
    let events = s.deactivate(at(10)).expect("deactivate");
    assert_eq!(
        evs(events.events(), at(10)),
        ["payment.cancelled p1", "checkout_session.deactivated"]
    );

    let events = record(&mut s, ln(1, 10_000_000), at(20));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 ln#1 10000000",
            "checkout_session.late_payment 10000000"
        ]
    );
    assert_eq!(statuses(&s), [PaymentStatus::Cancelled]);
    assert_eq!(
        s.transfer(&TransferKey::Lightning(hash(1)))
            .map(|t| t.arrival),
        Some(Arrival::AfterDeactivated)
    );
    // Late money never counts towards the price.
    assert_totals(&s, 0, 0, "0", "0");
    assert_eq!(flags(&s), [(FlagKind::Late, 10_000_000)]);

    // On-chain money to the address is late too (attributed to the latest quote).
    let events = record(&mut s, chain(1, 5_000, 0), at(30));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 tx#1:0 5000000",
            "checkout_session.late_payment 5000000"
        ]
    );
    assert_eq!(flags(&s), [(FlagKind::Late, 15_000_000)]);
    assert_eq!(
        s.state(),
        SessionState::Deactivated {
            deactivated_at: at(10),
            reason: DeactivationReason::Requested,
        }
    );
    assert_round_trip(&s);
}

#[test]
fn payment_after_paid_is_overpaid() {
    let (mut s, _) = usd_session("10.00");
    record(&mut s, ln(1, 10_000_000), at(10));
    assert_eq!(s.status(), SessionStatus::Paid);

    // Unconfirmed on-chain money after the session was paid: flagged at once.
    let events = record(&mut s, chain(1, 3_000, 0), at(20));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 tx#1:0 3000000",
            "checkout_session.overpaid 3000000"
        ]
    );
    assert_eq!(
        s.transfer(&TransferKey::Onchain(OutPoint::new(txid(1), 0)))
            .map(|t| t.arrival),
        Some(Arrival::AfterPaid)
    );
    assert_totals(&s, 10_000_000, 0, "10.00", "10.00");
    assert_eq!(flags(&s), [(FlagKind::Overpaid, 3_000_000)]);

    // Its confirmation changes no flag.
    let events = record(&mut s, chain(1, 3_000, 1), at(30));
    assert_eq!(
        events,
        ["checkout_session.transfer_confirmed p1 tx#1:0 3000000"]
    );
    assert_eq!(flags(&s), [(FlagKind::Overpaid, 3_000_000)]);
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(10) });
    assert_round_trip(&s);
}

#[test]
fn lightning_payment_to_an_expired_invoice_while_a_newer_quote_is_open() {
    let (mut s, _) = usd_session("20.00");
    // The quote at 1000 sats/USD expires; the next one is at 800 sats/USD.
    assert_eq!(
        usd_quote(&mut s, 2, "800", at(600)),
        ["payment.expired p1", "payment.created p2"]
    );
    assert_eq!(
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(16_000))
    );

    // Half of the old invoice's amount arrives on it anyway: it counts at the old rate,
    // $10.00 (at the new rate it would be worth $12.50), and is flagged.
    let events = record(&mut s, ln(1, 10_000_000), at(650));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 ln#1 10000000",
            "checkout_session.paid_after_expiry 10000000",
        ]
    );
    assert_eq!(
        statuses(&s),
        [PaymentStatus::Expired, PaymentStatus::Unpaid]
    );
    assert_eq!(
        s.transfer(&TransferKey::Lightning(hash(1)))
            .map(|t| t.arrival),
        Some(Arrival::AfterQuoteExpiry)
    );
    assert_totals(&s, 10_000_000, 0, "10.00", "10.00");
    assert_eq!(flags(&s), [(FlagKind::PaidAfterExpiry, 10_000_000)]);
    assert!(!s.needs_quote(at(650)));

    // The open quote is left as it is; half of it pays the remaining $10.00.
    let events = record(&mut s, ln(2, 8_000_000), at(700));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p2 ln#2 8000000",
            "payment.paid p2",
            "checkout_session.payment_paid p2",
            "checkout_session.paid",
        ]
    );
    assert_totals(&s, 18_000_000, 0, "20.00", "20.00");
    assert_eq!(flags(&s), [(FlagKind::PaidAfterExpiry, 10_000_000)]);
    assert_round_trip(&s);
}

#[test]
fn a_late_payment_on_an_expired_invoice_can_complete_the_session() {
    let (mut s, _) = usd_session("20.00");
    usd_quote(&mut s, 2, "800", at(600));
    let events = record(&mut s, ln(1, 20_000_000), at(650));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 ln#1 20000000",
            "checkout_session.paid",
            "payment.expired p2",
            "checkout_session.paid_after_expiry 20000000",
        ]
    );
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(650) });
    // The newer quote ends with the payment: nothing more is due.
    assert_eq!(
        statuses(&s),
        [PaymentStatus::Expired, PaymentStatus::Expired]
    );
    let events = s.expire_quotes(at(1200)).expect("expire");
    assert!(events.is_empty(), "already expired: {events:?}");
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(650) });
    assert_round_trip(&s);
}

// ---------------------------------------------------------------------------------------
// On-chain confirmations
// ---------------------------------------------------------------------------------------

fn onchain_session(policy: u32) -> CheckoutSession {
    let params = SessionParams::new(dec("10.00"), usd())
        .confirmations(ConfirmationPolicy::from_confirmations(policy).expect("policy"));
    session_with(params).0
}

const RECEIVED: [&str; 3] = [
    "checkout_session.transfer_received p1 tx#1:0 10000000",
    "payment.paid p1",
    "checkout_session.payment_paid p1",
];

#[test]
fn onchain_zero_conf_policy_counts_on_sight() {
    let mut s = onchain_session(0);
    let events = record(&mut s, chain(1, 10_000, 0), at(10));
    assert_eq!(events, [&RECEIVED[..], &["checkout_session.paid"]].concat());
    assert_totals(&s, 10_000_000, 0, "10.00", "10.00");
    // Later confirmations are recorded and raise `transfer_updated`.
    assert_eq!(
        record(&mut s, chain(1, 10_000, 1), at(20)),
        vec!["checkout_session.transfer_updated p1 tx#1:0 10000000".to_owned()]
    );
    assert_eq!(
        record(&mut s, chain(1, 10_000, 6), at(30)),
        vec!["checkout_session.transfer_updated p1 tx#1:0 10000000".to_owned()]
    );
    assert_eq!(
        s.transfers()
            .next()
            .map(|t| (t.confirmations, t.counted_at)),
        Some((6, Some(at(10))))
    );
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(10) });
    assert_round_trip(&s);
}

#[test]
fn onchain_one_conf_policy() {
    let mut s = onchain_session(1);
    assert_eq!(record(&mut s, chain(1, 10_000, 0), at(10)), RECEIVED);
    assert_eq!(s.status(), SessionStatus::Active);
    // Pending funds reduce the remaining due (no new quote is needed) but do not pay.
    assert_totals(&s, 0, 10_000_000, "0", "10.00");
    assert!(!s.needs_quote(at(10)));

    let events = record(&mut s, chain(1, 10_000, 1), at(20));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_confirmed p1 tx#1:0 10000000",
            "checkout_session.paid"
        ]
    );
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(20) });
    assert_totals(&s, 10_000_000, 0, "10.00", "10.00");

    assert_eq!(
        record(&mut s, chain(1, 10_000, 6), at(30)),
        vec!["checkout_session.transfer_updated p1 tx#1:0 10000000".to_owned()]
    );
    // Fewer confirmations than known change nothing.
    let before = s.clone();
    assert_eq!(
        record(&mut s, chain(1, 10_000, 2), at(40)),
        Vec::<String>::new()
    );
    assert_eq!(s, before);
    assert_round_trip(&s);
}

#[test]
fn onchain_six_conf_policy() {
    let mut s = onchain_session(6);
    assert_eq!(record(&mut s, chain(1, 10_000, 0), at(10)), RECEIVED);
    assert_eq!(
        record(&mut s, chain(1, 10_000, 1), at(20)),
        vec!["checkout_session.transfer_updated p1 tx#1:0 10000000".to_owned()]
    );
    assert_eq!(
        record(&mut s, chain(1, 10_000, 5), at(30)),
        vec!["checkout_session.transfer_updated p1 tx#1:0 10000000".to_owned()]
    );
    assert_eq!(s.status(), SessionStatus::Active);
    assert_totals(&s, 0, 10_000_000, "0", "10.00");
    let events = record(&mut s, chain(1, 10_000, 6), at(40));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_confirmed p1 tx#1:0 10000000",
            "checkout_session.paid"
        ]
    );
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(40) });
    assert_round_trip(&s);
}

#[test]
fn rbf_transaction_needs_one_confirmation_under_zero_conf_policy() {
    let mut s = onchain_session(0);
    let events = record(&mut s, chain(1, 10_000, 0).signals_rbf(true), at(10));
    assert_eq!(events, RECEIVED);
    assert_eq!(s.status(), SessionStatus::Active);
    assert_totals(&s, 0, 10_000_000, "0", "10.00");
    let events = record(&mut s, chain(1, 10_000, 1).signals_rbf(true), at(20));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_confirmed p1 tx#1:0 10000000",
            "checkout_session.paid"
        ]
    );
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(20) });
    assert_round_trip(&s);
}

/// A transfer that counted on sight (0 conf, zero-conf policy) is reported again with the RBF
/// signal (e.g. learned later through an unconfirmed parent, BIP125 inherited signalling).
/// `update_transfer` ORs the flag in, `meets()` now needs 1 confirmation, and the ledger
/// moves the funds from counted back to pending: the session stays paid with
/// `amount_paid` 0, `counted_at` stays set, and no event or flag tells anyone. Funds that
/// counted should stop counting only through a reversal (flagged `reversed`).
#[test]
fn a_later_rbf_signal_does_not_silently_uncount_a_counted_transfer() {
    let mut s = onchain_session(0);
    record(&mut s, chain(1, 10_000, 0), at(10));
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(10) });
    let events = record(&mut s, chain(1, 10_000, 0).signals_rbf(true), at(20));
    assert!(s.transfers().all(|t| t.counted_at == Some(at(10))));
    assert_eq!(
        (s.totals().counted, events.len()),
        (Msats::new(10_000_000), 1),
        "counted funds dropped to pending without any event or flag: {:?}",
        s.flags()
    );
}

#[test]
fn onchain_transfer_to_another_address_is_refused() {
    let mut s = onchain_session(1);
    let report = TransferReport::onchain(
        OutPoint::new(txid(1), 0),
        "bcrt1qsomebodyelse",
        Sats::new(10_000),
    )
    .confirmations(1);
    assert_refused(&mut s, Error::UnknownPaymentRequest, |s| {
        s.record_transfer(report, at(10))
    });
    record(&mut s, chain(1, 10_000, 0), at(20));
    // A known output reported to another address is refused too.
    let report = TransferReport::onchain(
        OutPoint::new(txid(1), 0),
        "bcrt1qsomebodyelse",
        Sats::new(10_000),
    )
    .confirmations(1);
    assert_refused(&mut s, Error::UnknownPaymentRequest, |s| {
        s.record_transfer(report, at(30))
    });
}

// ---------------------------------------------------------------------------------------
// Reversals
// ---------------------------------------------------------------------------------------

#[test]
fn reversal_before_counting() {
    let mut s = onchain_session(1);
    record(&mut s, chain(1, 10_000, 0), at(10));
    assert!(!s.needs_quote(at(10)));

    let events = record(&mut s, chain(1, 10_000, 0).reversed(), at(20));
    assert_eq!(
        events,
        ["checkout_session.transfer_reversed p1 tx#1:0 10000000"]
    );
    // It never counted: no Reversed flag. The due goes back up and a quote is needed.
    assert_eq!(flags(&s), []);
    assert_totals(&s, 0, 0, "0", "0");
    assert_eq!(s.status(), SessionStatus::Active);
    assert_eq!(statuses(&s), [PaymentStatus::Paid]);
    assert!(s.needs_quote(at(20)));
    let terms = s
        .next_quote(pid(2), rate("1000", at(20)), at(20))
        .expect("terms");
    assert_eq!(
        (terms.due(), terms.target()),
        (dec("10.00"), Sats::new(10_000))
    );

    // A reversal is final: a later confirmation does not bring it back.
    assert_eq!(
        record(&mut s, chain(1, 10_000, 3), at(30)),
        Vec::<String>::new()
    );
    assert_totals(&s, 0, 0, "0", "0");
    assert_eq!(flags(&s), []);
    assert!(s.transfers().all(|t| t.reversed && t.counted_at.is_none()));
    assert_round_trip(&s);
}

#[test]
fn reversal_after_counting() {
    let (mut s, _) = usd_session("10.00");
    record(&mut s, ln(1, 10_000_000), at(10));
    let events = record(&mut s, ln(1, 10_000_000).reversed(), at(20));
    assert_eq!(
        events,
        ["checkout_session.transfer_reversed p1 ln#1 10000000"]
    );
    // The paid session stays paid; the flag tells the merchant.
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(10) });
    assert_eq!(flags(&s), [(FlagKind::Reversed, 10_000_000)]);
    assert_totals(&s, 0, 0, "0", "0");
    assert!(!s.needs_quote(at(20)));
    // Reporting the reversal again changes nothing.
    let before = s.clone();
    assert_eq!(
        record(&mut s, ln(1, 10_000_000).reversed(), at(30)),
        Vec::<String>::new()
    );
    assert_eq!(s, before);
    assert_round_trip(&s);
}

// ---------------------------------------------------------------------------------------
// Tolerance
// ---------------------------------------------------------------------------------------

#[test]
fn one_percent_tolerance_pays_at_99_percent_and_not_one_msat_below() {
    let params = SessionParams::new(dec("100.00"), usd()).tolerance(dec("1"));
    let (fresh, _) = session_with(params);
    assert_eq!(
        fresh.open_payment().map(|p| p.target()),
        Some(Sats::new(100_000))
    );

    // The threshold is 99.00 USD: ceil(9900 × 100_000_000 / 10_000) = 99_000_000 msat.
    let mut s = fresh.clone();
    let events = record(&mut s, ln(1, 99_000_000), at(10));
    assert_eq!(
        events,
        [
            "checkout_session.transfer_received p1 ln#1 99000000",
            "payment.paid p1",
            "checkout_session.payment_paid p1",
            "checkout_session.paid",
        ]
    );
    assert_totals(&s, 99_000_000, 0, "99.00", "99.00");
    assert_eq!(flags(&s), []);
    assert!(!s.needs_quote(at(10)));

    let mut s = fresh.clone();
    let events = record(&mut s, ln(1, 98_999_999), at(10));
    assert_eq!(events.len(), 3, "no checkout_session.paid: {events:?}");
    assert_eq!(s.status(), SessionStatus::Active);
    assert_totals(&s, 98_999_999, 0, "98.99", "98.99");
    // The next quote asks for the full remainder, not just up to the threshold.
    assert!(s.needs_quote(at(10)));
    let terms = s
        .next_quote(pid(2), rate("1000", at(10)), at(10))
        .expect("terms");
    assert_eq!(
        (terms.due(), terms.target()),
        (dec("1.01"), Sats::new(1_010))
    );
}

// ---------------------------------------------------------------------------------------
// Other currencies
// ---------------------------------------------------------------------------------------

#[test]
fn btc_priced_session() {
    let params = SessionParams::new(dec("0.0005"), Currency::Btc);
    let (mut s, _) = CheckoutSession::create(sid(2), params, t0()).expect("create");
    assert_eq!(s.ttl_secs(), 31_536_000);
    let btc_sats = ExchangeRate::new(
        Currency::Btc,
        TargetCurrency::Sats,
        dec("100000000"),
        "fixed",
        t0(),
    )
    .expect("rate");
    // A USD rate is refused.
    let want = Error::RateMismatch {
        want_base: "BTC",
        want_target: "SATS",
        got_base: "USD",
        got_target: "SATS",
    };
    assert_eq!(
        s.next_quote(pid(1), rate("1000", t0()), t0()).err(),
        Some(want)
    );
    assert_eq!(quote_at(&mut s, 1, btc_sats, t0()), ["payment.created p1"]);
    let p = s.open_payment().expect("open").clone();
    assert_eq!((p.due(), p.target()), (dec("0.0005"), Sats::new(50_000)));

    // Half, then the rest.
    record(&mut s, ln(1, 25_000_000), at(10));
    assert_totals(&s, 25_000_000, 0, "0.00025", "0.00025");
    let btc_sats = ExchangeRate::new(
        Currency::Btc,
        TargetCurrency::Sats,
        dec("100000000"),
        "fixed",
        at(20),
    )
    .expect("rate");
    quote_at(&mut s, 2, btc_sats, at(20));
    assert_eq!(
        s.open_payment().map(|p| (p.due(), p.target())),
        Some((dec("0.00025"), Sats::new(25_000)))
    );
    let events = record(&mut s, ln(2, 25_000_000), at(30));
    assert_eq!(
        events.last().map(String::as_str),
        Some("checkout_session.paid")
    );
    assert_totals(&s, 50_000_000, 0, "0.0005", "0.0005");
    assert!(
        s.to_json()
            .contains(r#""currency":"BTC","amount":0.0005,"target_currency":"SATS""#)
    );
    assert_round_trip(&s);
}

#[test]
fn sats_priced_session() {
    let sats = Currency::from_code("SATS").expect("SATS");
    let (mut s, _) = CheckoutSession::create(sid(3), SessionParams::new(dec("21000"), sats), t0())
        .expect("create");
    let one =
        ExchangeRate::new(sats, TargetCurrency::Sats, Decimal::ONE, "fixed", t0()).expect("rate");
    quote_at(&mut s, 1, one, t0());
    assert_eq!(
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(21_000))
    );
    // floor(21000 × 10_500_500 / 21_000_000) = 10500 sats credited.
    record(&mut s, ln(1, 10_500_500), at(10));
    assert_totals(&s, 10_500_500, 0, "10500", "10500");
    let one =
        ExchangeRate::new(sats, TargetCurrency::Sats, Decimal::ONE, "fixed", at(20)).expect("rate");
    quote_at(&mut s, 2, one, at(20));
    assert_eq!(
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(10_500))
    );
    record(&mut s, chain(1, 10_500, 1), at(30));
    assert_eq!(s.status(), SessionStatus::Paid);
    assert_totals(&s, 21_000_500, 0, "21000", "21000");
    // The half sat paid beyond the first part's credit is lost to rule 2's rounding down;
    // it is less than one minor unit (1 sat) and is not flagged as an overpayment.
    assert_eq!(flags(&s), []);
    assert_round_trip(&s);
}

#[test]
fn btc_target_currency() {
    let params = SessionParams::new(dec("25.00"), usd()).target_currency(TargetCurrency::Btc);
    let (mut s, _) = CheckoutSession::create(sid(4), params, t0()).expect("create");
    let usd_btc =
        ExchangeRate::new(usd(), TargetCurrency::Btc, dec("0.00001"), "fixed", t0()).expect("rate");
    quote_at(&mut s, 1, usd_btc, t0());
    assert_eq!(
        s.open_payment().map(|p| p.target()),
        Some(Sats::new(25_000))
    );
    let payment = s.payment_json(pid(1)).expect("payment json");
    assert!(
        payment.contains(
            r#""target_currency":"BTC","target_amount":0.00025,"target_amount_paid":null"#
        ),
        "{payment}"
    );

    record(&mut s, ln(1, 25_000_000), at(10));
    assert_eq!(s.status(), SessionStatus::Paid);
    let json = s.to_json();
    assert!(json.contains(r#""target_currency":"BTC""#));
    assert!(
        json.contains(
            r#""amount_paid":25,"target_amount_paid":0.00025,"target_amount_pending":null"#
        ),
        "{json}"
    );
    assert_round_trip(&s);
}

// ---------------------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------------------

fn update_session() -> CheckoutSession {
    let metadata = Metadata::from_pairs([
        ("a", MetadataValue::from("1")),
        ("b", MetadataValue::from(true)),
    ])
    .expect("metadata");
    let params = SessionParams::new(dec("10.00"), usd())
        .description("Order #1")
        .metadata(metadata)
        .success_message("Thanks!");
    session_with(params).0
}

fn json_update(text: &str) -> SessionUpdate {
    serde_json::from_str(text).expect("update JSON")
}

#[test]
fn update_merges_metadata_and_changes_the_description() {
    let mut s = update_session();
    let u = json_update(
        r#"{"description": "Order #1 (gift)", "metadata": {"a": null, "c": 5, "d": "x"}}"#,
    );
    let events = s.update(&u, at(10)).expect("update");
    assert_eq!(evs(events.events(), at(10)), ["checkout_session.updated"]);
    assert_eq!(s.description(), Some("Order #1 (gift)"));
    let meta: Vec<(&str, MetadataValue)> =
        s.metadata().iter().map(|(k, v)| (k, v.clone())).collect();
    assert_eq!(
        meta,
        [
            ("b", MetadataValue::from(true)),
            ("c", MetadataValue::from(5)),
            ("d", MetadataValue::from("x")),
        ]
    );
    assert_eq!(s.version(), 2);
    assert!(
        s.to_json()
            .contains(r#""metadata":{"b":true,"c":5,"d":"x"}"#)
    );

    // The same update again changes nothing: no event, no version bump.
    assert_eq!(s.update(&u, at(20)).expect("update").into_events(), []);
    assert_eq!(s.version(), 2);
    assert_eq!(
        s.update(&SessionUpdate::new(), at(20))
            .expect("update")
            .into_events(),
        []
    );
    assert_round_trip(&s);
}

#[test]
fn update_clears_the_success_message_then_sets_a_success_url() {
    let mut s = update_session();
    assert_refused(&mut s, Error::SuccessUrlAndMessage, |s| {
        s.update(
            &SessionUpdate::new().success_url("https://shop.example/done"),
            at(10),
        )
    });
    let events = s
        .update(&json_update(r#"{"success_message": null}"#), at(20))
        .expect("update");
    assert_eq!(evs(events.events(), at(20)), ["checkout_session.updated"]);
    assert_eq!(s.success_message(), None);
    let events = s
        .update(
            &SessionUpdate::new().success_url("https://shop.example/done"),
            at(30),
        )
        .expect("update");
    assert_eq!(evs(events.events(), at(30)), ["checkout_session.updated"]);
    assert_eq!(s.success_url(), Some("https://shop.example/done"));
    // Both at once are refused, even when they replace each other.
    let both = SessionUpdate::new()
        .success_url("https://shop.example/x")
        .success_message("Hi");
    assert_refused(&mut s, Error::SuccessUrlAndMessage, |s| {
        s.update(&both, at(40))
    });
    assert_refused(
        &mut s,
        Error::InvalidUrl {
            field: "success_url",
        },
        |s| {
            s.update(
                &SessionUpdate::new().success_url("ftp://shop.example/"),
                at(40),
            )
        },
    );
}

#[test]
fn update_refuses_immutable_fields() {
    let mut s = update_session();
    for (text, field) in [
        (r#"{"amount": 5}"#, "amount"),
        (r#"{"currency": "EUR"}"#, "currency"),
        (r#"{"ttl": 900}"#, "ttl"),
        (
            r#"{"description": "new", "payment_methods": ["lightning"]}"#,
            "payment_methods",
        ),
    ] {
        let u = json_update(text);
        assert_refused(&mut s, Error::ImmutableField(field), |s| {
            s.update(&u, at(10))
        });
    }
    // Unknown fields from newer versions are tolerated.
    let events = s
        .update(
            &json_update(r#"{"description": "new", "future_field": {"x": 1}}"#),
            at(20),
        )
        .expect("update");
    assert_eq!(evs(events.events(), at(20)), ["checkout_session.updated"]);
}

#[test]
fn update_rejects_over_limit_metadata_and_changes_nothing() {
    let mut s = update_session();
    // Two keys already; 49 more make 51.
    let patch = (0..49).fold(MetadataPatch::new(), |p, i| {
        p.set(format!("k{i}"), i64::from(i))
    });
    let u = SessionUpdate::new().description("changed").metadata(patch);
    assert_refused(&mut s, Error::TooManyMetadataKeys { count: 51 }, |s| {
        s.update(&u, at(10))
    });
    let long_key = SessionUpdate::new().metadata(MetadataPatch::new().set("k".repeat(41), "v"));
    assert_refused(&mut s, Error::InvalidMetadataKey { chars: 41 }, |s| {
        s.update(&long_key, at(30))
    });
    let long_value = SessionUpdate::new().metadata(MetadataPatch::new().set("a", "v".repeat(501)));
    assert_refused(
        &mut s,
        Error::MetadataValueTooLong {
            key: "a".into(),
            chars: 501,
        },
        |s| s.update(&long_value, at(30)),
    );
    // 48 more make exactly 50: accepted.
    let patch = (0..48).fold(MetadataPatch::new(), |p, i| {
        p.set(format!("k{i}"), i64::from(i))
    });
    let _ = s
        .update(&SessionUpdate::new().metadata(patch), at(20))
        .expect("50 keys");
    assert_eq!(s.metadata().len(), 50);

    // Nested values are refused when the JSON is read.
    assert!(serde_json::from_str::<SessionUpdate>(r#"{"metadata": {"a": {"b": 1}}}"#).is_err());
}

#[test]
fn updates_are_allowed_in_every_status() {
    let mut s = update_session();
    record(&mut s, ln(1, 10_000_000), at(10));
    let events = s
        .update(&SessionUpdate::new().description("paid order"), at(20))
        .expect("update");
    assert_eq!(evs(events.events(), at(20)), ["checkout_session.updated"]);
    let mut s = update_session();
    let _ = s.deactivate(at(10)).expect("deactivate");
    let events = s
        .update(&SessionUpdate::new().description("cancelled order"), at(20))
        .expect("update");
    assert_eq!(evs(events.events(), at(20)), ["checkout_session.updated"]);
}

// ---------------------------------------------------------------------------------------
// Bad commands
// ---------------------------------------------------------------------------------------

#[test]
fn bad_commands_are_refused_and_change_nothing() {
    let (mut s, _) = usd_session("10.00");
    record(&mut s, ln(1, 4_000_000), at(10));

    assert_refused(&mut s, Error::UnknownPaymentRequest, |s| {
        s.record_transfer(ln(77, 1_000), at(20))
    });
    assert_refused(&mut s, Error::AmountNotPositive, |s| {
        s.record_transfer(ln(1, 0), at(20))
    });
    assert_refused(
        &mut s,
        Error::TransferAmountMismatch {
            first: 4_000_000,
            again: 4_000_001,
        },
        |s| s.record_transfer(ln(1, 4_000_001), at(20)),
    );
    assert_refused(
        &mut s,
        Error::ClockWentBackwards {
            now_ms: 1_767_225_609_999,
            last_ms: 1_767_225_610_000,
        },
        |s| s.record_transfer(ln(1, 4_000_000), at(10) - Duration::milliseconds(1)),
    );
    assert_refused(&mut s, Error::AmountTooLarge, |s| {
        s.record_transfer(ln(1, 2_100_000_000_000_000_001), at(20))
    });

    // A quote while one is open; then stale terms.
    usd_quote(&mut s, 2, "1000", at(20));
    assert_refused(&mut s, Error::QuoteAlreadyOpen(pid(2)), |s| {
        s.next_quote(pid(3), rate("1000", at(30)), at(30))
    });

    // Terms computed when the first quote ran out go stale when money arrives before they
    // are issued (it counts on the expired quote and lowers the due to $9.00).
    let (mut fresh, _) = usd_session("10.00");
    let terms = fresh
        .next_quote(pid(2), rate("1000", at(600)), at(600))
        .expect("terms");
    assert_eq!(terms.due(), dec("10.00"));
    let req = request_for(&fresh, &terms, 2);
    record(&mut fresh, chain(1, 1_000, 0), at(600));
    assert_refused(
        &mut fresh,
        Error::RequestMismatch("quote terms are stale; compute them again"),
        |s| s.issue_quote(terms, req, at(600)),
    );
    assert_eq!(
        fresh
            .next_quote(pid(2), rate("1000", at(600)), at(600))
            .map(|t| t.due()),
        Ok(dec("9.00"))
    );

    // Lightning is not enabled on an on-chain-only session.
    let params = SessionParams::new(dec("10.00"), usd()).payment_methods([PaymentMethod::Onchain]);
    let (mut oc, _) = session_with(params);
    assert_refused(&mut oc, Error::MethodNotEnabled("lightning"), |s| {
        s.record_transfer(ln(1, 1_000), at(10))
    });
}

#[test]
fn exactly_one_paid_event_per_session() {
    let (mut s, mut all) = usd_session("10.00");
    for (i, report) in [
        ln(1, 6_000_000),
        chain(1, 5_000, 1),
        chain(2, 5_000, 1),
        ln(1, 6_000_000),
    ]
    .into_iter()
    .enumerate()
    {
        all.extend(
            s.record_transfer(report, at(10 + i64::try_from(i).unwrap()))
                .expect("record")
                .into_events(),
        );
    }
    let paid = all
        .iter()
        .filter(|e| e.event_type == EventType::CheckoutSessionPaid)
        .count();
    assert_eq!(paid, 1);
    assert_eq!(s.state(), SessionState::Paid { paid_at: at(11) });
    // $6 + $5 on the $10 quote is $1 (1_000_000 msat) beyond the price; the second output
    // arrived after the session was paid (5_000_000 msat); the duplicate counts once.
    assert_eq!(flags(&s), [(FlagKind::Overpaid, 6_000_000)]);
    let overpaid: Vec<u64> = all
        .iter()
        .filter(|e| e.event_type == EventType::Overpaid)
        .filter_map(|e| e.amount.map(Msats::get))
        .collect();
    assert_eq!(overpaid, [1_000_000, 5_000_000]);
}

// ---------------------------------------------------------------------------------------
// Validation at creation
// ---------------------------------------------------------------------------------------

fn create(params: SessionParams) -> Result<CheckoutSession, Error> {
    CheckoutSession::create(sid(9), params, t0()).map(|(s, _)| s)
}

fn usd_params(amount: &str) -> SessionParams {
    SessionParams::new(dec(amount), usd())
}

#[test]
fn create_rejects_bad_amounts() {
    assert_eq!(
        create(usd_params("0")).err(),
        Some(Error::AmountNotPositive)
    );
    assert_eq!(
        create(usd_params("-1.00")).err(),
        Some(Error::AmountNotPositive)
    );
    assert_eq!(
        create(usd_params("1.001")).err(),
        Some(Error::TooManyDecimals {
            currency: "USD",
            max: 2
        })
    );
    let jpy = Currency::from_code("JPY").expect("JPY");
    assert_eq!(
        create(SessionParams::new(dec("0.5"), jpy)).err(),
        Some(Error::TooManyDecimals {
            currency: "JPY",
            max: 0
        })
    );
    // Trailing zeros are not extra decimals.
    assert_eq!(
        create(usd_params("1.500")).map(|s| s.amount()),
        Ok(dec("1.50"))
    );
    assert_eq!(
        create(SessionParams::new(dec("500"), jpy)).map(|s| s.amount()),
        Ok(dec("500"))
    );
    // Bitcoin prices stop at 21 million BTC.
    assert!(create(SessionParams::new(dec("21000000"), Currency::Btc)).is_ok());
    assert_eq!(
        create(SessionParams::new(dec("21000000.00000001"), Currency::Btc)).err(),
        Some(Error::AmountTooLarge)
    );
    assert_eq!(
        create(SessionParams::new(dec("0.000000001"), Currency::Btc)).err(),
        Some(Error::TooManyDecimals {
            currency: "BTC",
            max: 8
        })
    );
    let sats = Currency::from_code("SATS").expect("SATS");
    assert_eq!(
        create(SessionParams::new(dec("2100000000000001"), sats)).err(),
        Some(Error::AmountTooLarge)
    );
}

/// Fiat prices have no upper bound in `Currency::validate_amount`, so `create` accepts a
/// price whose threshold `amount × tolerance / 100` overflows `Decimal`; `threshold_minor`
/// (accounting.rs) multiplies with `*`, which panics ("Multiplication overflowed") in
/// `needs_quote`, `next_quote` and every transfer. `Error::AmountTooLarge` is documented for
/// amounts "outside exact range", and commands are documented to return errors, not panic.
#[test]
fn huge_fiat_price_with_tolerance_is_refused_or_quotes_without_panicking() {
    let params = usd_params("792281625142643375935439503.35").tolerance(dec("50"));
    let Ok(s) = create(params) else {
        // Refusing it at creation is a fine fix too.
        assert_eq!(
            create(usd_params("792281625142643375935439503.35").tolerance(dec("50"))).err(),
            Some(Error::AmountTooLarge)
        );
        return;
    };
    let quote = std::panic::catch_unwind(|| {
        s.next_quote(pid(1), rate("1000", t0()), t0())
            .map(|t| t.target())
    });
    assert!(quote.is_ok(), "next_quote panicked");
    assert_eq!(
        quote.ok().and_then(Result::err),
        Some(Error::AmountTooLarge)
    );
    assert!(
        std::panic::catch_unwind(|| s.needs_quote(t0())).is_ok(),
        "needs_quote panicked"
    );
}

#[test]
fn huge_fiat_price_without_tolerance_cannot_be_quoted() {
    // Accepted (fiat has no 21M BTC bound), but no quote can cover it.
    let s = create(usd_params("12345678901234567890.12")).expect("create");
    assert_eq!(s.amount(), dec("12345678901234567890.12"));
    assert_eq!(
        s.next_quote(pid(1), rate("1000", t0()), t0()).err(),
        Some(Error::AmountTooLarge)
    );
}

#[test]
fn create_rejects_unsupported_currencies() {
    for code in ["ABC", "usd", "XAU", "", "SAT"] {
        assert_eq!(
            Currency::from_code(code).err(),
            Some(Error::UnsupportedCurrency {
                code: code.to_owned()
            }),
            "{code}"
        );
    }
    let err = serde_json::from_str::<SessionParams>(r#"{"amount": 1, "currency": "ABC"}"#)
        .expect_err("ABC");
    assert!(
        err.to_string().starts_with(r#"unsupported currency "ABC""#),
        "{err}"
    );
}

#[test]
fn create_rejects_bad_tolerance_and_ttl() {
    assert_eq!(
        create(usd_params("1.00").tolerance(dec("100"))).err(),
        Some(Error::InvalidTolerance(dec("100")))
    );
    assert_eq!(
        create(usd_params("1.00").tolerance(dec("-1"))).err(),
        Some(Error::InvalidTolerance(dec("-1")))
    );
    assert!(create(usd_params("1.00").tolerance(dec("99.99"))).is_ok());
    assert_eq!(
        create(usd_params("1.00").ttl_secs(299)).err(),
        Some(Error::InvalidTtl(299))
    );
    assert_eq!(
        create(usd_params("1.00").ttl_secs(31_536_001)).err(),
        Some(Error::InvalidTtl(31_536_001))
    );
    assert_eq!(
        create(usd_params("1.00").ttl_secs(300)).map(|s| s.ttl_secs()),
        Ok(300)
    );
    assert_eq!(
        create(usd_params("1.00").ttl_secs(31_536_000)).map(|s| s.ttl_secs()),
        Ok(31_536_000)
    );
}

#[test]
fn create_rejects_bad_urls_and_texts() {
    assert_eq!(
        create(usd_params("1.00").success_url("ftp://shop.example/")).err(),
        Some(Error::InvalidUrl {
            field: "success_url"
        })
    );
    assert_eq!(
        create(usd_params("1.00").cancel_url("/relative")).err(),
        Some(Error::InvalidUrl {
            field: "cancel_url"
        })
    );
    assert_eq!(
        create(
            usd_params("1.00")
                .success_url("https://shop.example/")
                .success_message("Thanks")
        )
        .err(),
        Some(Error::SuccessUrlAndMessage)
    );
    assert_eq!(
        create(usd_params("1.00").description("d".repeat(1001))).err(),
        Some(Error::InvalidText {
            field: "description",
            reason: "too long"
        })
    );
}

#[test]
fn create_rejects_metadata_over_the_limits() {
    let keys = |n: usize| {
        (0..n)
            .map(|i| (format!("k{i}"), MetadataValue::from("v")))
            .collect::<Vec<_>>()
    };
    assert!(Metadata::from_pairs(keys(50)).is_ok());
    assert_eq!(
        Metadata::from_pairs(keys(51)).err(),
        Some(Error::TooManyMetadataKeys { count: 51 })
    );
    assert!(Metadata::from_pairs([("k".repeat(40), "v")]).is_ok());
    assert_eq!(
        Metadata::from_pairs([("k".repeat(41), "v")]).err(),
        Some(Error::InvalidMetadataKey { chars: 41 })
    );
    assert!(Metadata::from_pairs([("k", "v".repeat(500))]).is_ok());
    assert_eq!(
        Metadata::from_pairs([("k", "v".repeat(501))]).err(),
        Some(Error::MetadataValueTooLong {
            key: "k".into(),
            chars: 501
        })
    );
    // Through JSON, the same limits apply to SessionParams.
    let many = (0..51)
        .map(|i| format!(r#""k{i}": 1"#))
        .collect::<Vec<_>>()
        .join(", ");
    let err = serde_json::from_str::<SessionParams>(&format!(
        r#"{{"amount": 1, "currency": "USD", "metadata": {{{many}}}}}"#
    ))
    .expect_err("51 keys");
    assert!(
        err.to_string()
            .starts_with("metadata has 51 keys, at most 50 are allowed"),
        "{err}"
    );
}

#[test]
fn create_rejects_bad_confirmations_and_no_methods() {
    assert_eq!(
        ConfirmationPolicy::from_confirmations(3).err(),
        Some(Error::InvalidConfirmationPolicy(3))
    );
    for (n, policy) in [
        (0, ConfirmationPolicy::ZeroConf),
        (1, ConfirmationPolicy::One),
        (2, ConfirmationPolicy::Two),
        (6, ConfirmationPolicy::Six),
    ] {
        assert_eq!(ConfirmationPolicy::from_confirmations(n), Ok(policy));
    }
    assert!(
        serde_json::from_str::<SessionParams>(
            r#"{"amount": 1, "currency": "USD", "confirmations": 3}"#
        )
        .is_err()
    );
    assert_eq!(
        create(usd_params("1.00").payment_methods([])).err(),
        Some(Error::NoPaymentMethod)
    );
}
