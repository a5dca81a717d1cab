//! Unexpected money gets an outcome (issue 13, point 6; ADR 9): a merchant records what
//! was done with flagged money, refunded (with a reference) or accepted, and sees what is
//! still unresolved.

use crate::common;

use bitcoin_checkout::session::FlagResolution;
use bitcoin_checkout::*;
use common::*;

fn ln(n: u32, msat: u64) -> TransferReport {
    TransferReport::lightning(hash(n), Msats::new(msat))
}

/// A $10.00 session paid 12,000 sats: 2,000 sats overpaid.
fn overpaid() -> CheckoutSession {
    let (mut s, _) = session_with(SessionParams::new(dec("10.00"), usd()));
    let _ = s
        .record_transfer(ln(1, 12_000_000), at(30))
        .expect("overpay");
    assert_eq!(s.flagged(FlagKind::Overpaid), Msats::new(2_000_000));
    assert!(s.has_unresolved_flags());
    s
}

#[test]
fn a_refund_and_an_acceptance_resolve_a_flag_with_events_and_json() {
    let mut s = overpaid();
    let refund = FlagResolution::refunded(FlagKind::Overpaid, Msats::new(1_500_000), "re_1001");
    let change = s.resolve_flag(&refund, at(60)).expect("refund recorded");
    let events = change.into_events();
    assert_eq!(types(&events), ["checkout_session.flag_resolved"]);
    assert_eq!(events[0].amount, Some(Msats::new(1_500_000)));
    assert_eq!(
        events[0].describe(),
        "checkout_session.flag_resolved amount=1500000 msat"
    );
    let flag = s.flags()[0];
    assert_eq!(
        (flag.kind, flag.amount, flag.resolved),
        (
            FlagKind::Overpaid,
            Msats::new(2_000_000),
            Msats::new(1_500_000)
        )
    );
    assert_eq!(flag.unresolved(), Msats::new(500_000));
    assert!(s.has_unresolved_flags());

    let _ = s
        .resolve_flag(
            &FlagResolution::accepted(FlagKind::Overpaid, Msats::new(500_000)).note("a tip"),
            at(90),
        )
        .expect("accepted");
    assert!(!s.has_unresolved_flags());
    assert_eq!(s.unresolved(FlagKind::Overpaid), Msats::ZERO);
    assert_eq!(s.resolutions().len(), 2);
    assert_eq!(s.resolutions()[0].reference.as_deref(), Some("re_1001"));

    let json = s.to_json();
    assert!(
        json.contains(
            r#""flags":[{"kind":"overpaid","amount_msat":2000000,"resolved_msat":2000000}]"#
        ),
        "{json}"
    );
    assert!(json.contains(r#""resolutions":[{"kind":"overpaid","amount_msat":1500000,"outcome":"refunded","reference":"re_1001","at":1767225660000},"#), "{json}");
    assert_eq!(CheckoutSession::from_json(&json).expect("reads back"), s);
}

#[test]
fn a_resolution_beyond_the_flag_or_without_what_it_needs_is_refused_and_changes_nothing() {
    let s = overpaid();
    let refused = |r: FlagResolution| {
        let mut copy = s.clone();
        let err = copy.resolve_flag(&r, at(60)).expect_err("refused");
        assert_eq!(copy, s, "nothing changed");
        err
    };
    assert_eq!(
        refused(FlagResolution::refunded(
            FlagKind::Overpaid,
            Msats::new(2_000_001),
            "re_1"
        )),
        Error::ResolutionExceedsFlag {
            kind: "overpaid",
            requested: 2_000_001,
            unresolved: 2_000_000
        }
    );
    assert!(matches!(
        refused(FlagResolution::accepted(FlagKind::Late, Msats::new(1))),
        Error::ResolutionExceedsFlag {
            kind: "late",
            unresolved: 0,
            ..
        }
    ));
    assert_eq!(
        refused(FlagResolution::accepted(FlagKind::Overpaid, Msats::ZERO)),
        Error::AmountNotPositive
    );
    assert!(matches!(
        refused(FlagResolution::refunded(
            FlagKind::Overpaid,
            Msats::new(1),
            ""
        )),
        Error::InvalidText {
            field: "reference",
            ..
        }
    ));
    assert!(matches!(
        refused(FlagResolution::refunded(
            FlagKind::Overpaid,
            Msats::new(1),
            "re\u{0}1"
        )),
        Error::InvalidText {
            field: "reference",
            ..
        }
    ));
    assert!(matches!(
        refused(FlagResolution::refunded(
            FlagKind::Overpaid,
            Msats::new(1),
            "r".repeat(201)
        )),
        Error::InvalidText {
            field: "reference",
            ..
        }
    ));
}

#[test]
fn money_that_arrives_after_a_resolution_is_unresolved_again() {
    // $10.00: 4,000 sats on the first quote, a second quote, then deactivated.
    let (mut s, _) = session_with(SessionParams::new(dec("10.00"), usd()));
    let _ = s
        .record_transfer(ln(1, 4_000_000), at(30))
        .expect("partial");
    let _ = quote(&mut s, 2, "1000", at(31));
    let _ = s.deactivate(at(40)).expect("deactivated");
    assert_eq!(s.unresolved(FlagKind::RefundDue), Msats::new(4_000_000));
    let _ = s
        .resolve_flag(
            &FlagResolution::refunded(FlagKind::RefundDue, Msats::new(4_000_000), "re_2"),
            at(50),
        )
        .expect("a refund recorded on a deactivated session");
    assert!(!s.has_unresolved_flags());
    // The customer pays the cancelled second quote's invoice anyway: new flagged money.
    let _ = s.record_transfer(ln(2, 6_000_000), at(60)).expect("late");
    assert!(s.has_unresolved_flags());
    assert_eq!(s.unresolved(FlagKind::Late), Msats::new(6_000_000));
    assert_eq!(s.unresolved(FlagKind::RefundDue), Msats::ZERO);
}
