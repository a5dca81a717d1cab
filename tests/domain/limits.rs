//! The caps on quotes and transfers per session: transfers beyond the cap are held apart,
//! counted in the totals, flagged and never counted toward the amount; quotes beyond the
//! cap are refused with a typed error.

use bitcoin_checkout::session::{FlagKind, FlagResolution, SessionLimits};
use bitcoin_checkout::*;
use time::Duration;

use crate::common::*;

fn capped(transfers: u32) -> CheckoutSession {
    let params = SessionParams::new(dec("100.00"), usd())
        .payment_methods([PaymentMethod::Onchain])
        .confirmations(ConfirmationPolicy::from_confirmations(0).unwrap())
        .limits(SessionLimits::new().max_transfers(transfers));
    session_with(params).0
}

fn dust(n: u32) -> TransferReport {
    TransferReport::onchain(OutPoint::new(txid(n), 0), ADDRESS, Sats::new(1_000))
}

/// Records dust transfers 1 and 2, a second apart.
fn record_two(s: &mut CheckoutSession) {
    for n in 1..=2 {
        let _ = s
            .record_transfer(dust(n), t0() + Duration::seconds(i64::from(n)))
            .unwrap();
    }
}

#[test]
fn transfers_beyond_the_cap_are_held_flagged_and_never_counted() {
    let mut s = capped(3);
    let at = |n: i64| t0() + Duration::seconds(n);
    for n in 1..=3 {
        let change = s.record_transfer(dust(n), at(i64::from(n))).unwrap();
        assert!(change.held().is_none());
    }
    let counted = s.totals().counted;
    assert_eq!(s.transfers().count(), 3);

    let first = s.record_transfer(dust(4), at(4)).unwrap();
    let held = first.held().expect("the fourth is held");
    assert_eq!(held.key, dust(4).key());
    assert_eq!(held.amount, Msats::new(1_000_000));
    assert_eq!(types(first.events()), ["checkout_session.transfers_held"]);
    let second = s.record_transfer(dust(5), at(5)).unwrap();
    assert!(second.held().is_some());
    assert!(
        second.events().is_empty(),
        "one event, at the first held transfer"
    );
    assert!(!second.is_empty(), "a held transfer is a change to commit");

    assert_eq!(s.transfers().count(), 3, "held transfers are not listed");
    assert_eq!(s.totals().counted, counted, "nor counted");
    assert_eq!(s.status(), SessionStatus::Active);
    let totals = s.held_transfers();
    assert_eq!((totals.count, totals.amount), (2, Msats::new(2_000_000)));
    assert_eq!(s.flagged(FlagKind::Held), Msats::new(2_000_000));
    assert!(s.has_unresolved_flags());

    // The session's JSON says so, and reads back whole.
    let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(json["held_transfers"]["count"], 2);
    assert_eq!(json["held_transfers"]["amount_msat"], 2_000_000);
    assert_eq!(json["limits"]["max_transfers"], 3);
    assert!(
        json["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "held" && f["amount_msat"] == 2_000_000)
    );
    assert_eq!(CheckoutSession::from_json(&s.to_json()).unwrap(), s);
}

#[test]
fn known_transfers_still_change_at_the_cap() {
    let mut s = capped(2);
    record_two(&mut s);
    // A reversal of a kept transfer is applied, not held.
    let reversed = s
        .record_transfer(dust(2).reversed(), t0() + Duration::seconds(3))
        .unwrap();
    assert!(reversed.held().is_none());
    assert_eq!(
        types(reversed.events()),
        ["checkout_session.transfer_reversed"]
    );
    assert_eq!(s.held_transfers().count, 0);
}

#[test]
fn held_money_is_resolved_like_other_flags() {
    let mut s = capped(1);
    record_two(&mut s);
    let refund = FlagResolution::refunded(FlagKind::Held, Msats::new(1_000_000), "re_dust");
    let _ = s
        .resolve_flag(&refund, t0() + Duration::seconds(3))
        .unwrap();
    assert_eq!(s.unresolved(FlagKind::Held), Msats::ZERO);
    assert!(!s.has_unresolved_flags());
}

#[test]
fn quotes_stop_at_the_quote_cap_with_a_typed_error() {
    let params = SessionParams::new(dec("10.00"), usd())
        .ttl_secs(300)
        .limits(SessionLimits::new().max_quotes(2));
    let (mut s, _) = session_with(params);
    let later = t0() + Duration::seconds(301);
    let _ = s.expire_quotes(later).unwrap();
    quote(&mut s, 2, "1000", later);
    let last = later + Duration::seconds(301);
    let _ = s.expire_quotes(last).unwrap();
    assert!(s.needs_quote(last));
    assert_eq!(
        s.next_quote(pid(3), rate("1000", last), last),
        Err(Error::QuoteLimitReached { max: 2 })
    );
    assert_eq!(
        s.check_quote_limit(),
        Err(Error::QuoteLimitReached { max: 2 })
    );
    assert_eq!(s.payments().len(), 2);
}

#[test]
fn limits_are_at_least_one_and_the_defaults_are_documented() {
    let none = SessionLimits::new().max_quotes(0).max_transfers(0);
    assert_eq!((none.quotes(), none.transfers()), (1, 1));
    let d = SessionLimits::default();
    assert_eq!(
        (d.quotes(), d.transfers()),
        (session::DEFAULT_MAX_QUOTES, session::DEFAULT_MAX_TRANSFERS)
    );
    // A session with the default limits does not show them.
    let s = session_with(SessionParams::new(dec("1.00"), usd())).0;
    let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert!(json.get("limits").is_none());
    assert!(json.get("held_transfers").is_none());
}
