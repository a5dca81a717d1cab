//! Property tests over random sessions and random command sequences, written with the crate's
//! own test kit (`bitcoin_checkout::testkit`), so the kit is exercised by this suite.
//!
//! `random_command_sequences` drives a real [`CheckoutSession`] and the kit's reference model
//! (`testkit::model::ReferenceSession`: integer math from the specification, no code shared
//! with the core's accounting) side by side through the kit's `Harness` and, after every step,
//! checks that they agree (statuses, quotes, transfers, totals, flags, events, errors) and
//! that the listed properties hold: totals recomputed from `transfers()` (1), idempotent
//! replays (2), terminal statuses (4), paid iff the threshold was reached (5), the rounding
//! rules and no satoshi created or lost (7), event bookkeeping (8), errors leave the session
//! unchanged (9), and JSON round-trips (10). Sessions come in every currency the kit
//! generates (USD, EUR, JPY, KWD, BTC, SATS; paid in SATS or BTC).
//!
//! The other properties are targeted: reordering of reports to one quote (3), the exact
//! payment / threshold boundary (6), and partial payments followed by an exact payment; they
//! run through the harness too, so every step of them is also checked against the model.
//!
//! The number of cases can be raised with `PROPTEST_CASES=…` for a deeper run.
#![cfg(feature = "testkit")]

use std::collections::BTreeMap;

use bitcoin_checkout::session::SessionChange;
use bitcoin_checkout::testkit::model::{RateSpec, ReportSpec, SessionSpec, check_invariants};
use bitcoin_checkout::testkit::strategies::{
    self, ADDRESS, Command, Harness, invoice_hash, rate_for, reorderings, session_spec, txid,
};
use bitcoin_checkout::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        // Do not write regression files next to the tests (the file list is fixed).
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The event types of the last command the harness applied.
fn last_types(h: &Harness) -> Vec<String> {
    match h.last_outcome() {
        Some(Ok(events)) => events
            .iter()
            .map(|e| e.event_type.as_str().to_owned())
            .collect(),
        other => vec![format!("{other:?}")],
    }
}

/// Records `report` `millis` after the previous step; it must be accepted.
fn record(h: &mut Harness, millis: u32, report: ReportSpec) -> Result<(), TestCaseError> {
    h.step(&Command::AdvanceTime { millis })?;
    h.step(&Command::Report(report))?;
    prop_assert!(
        matches!(h.last_outcome(), Some(Ok(_))),
        "report refused: {:?}",
        h.last_outcome()
    );
    Ok(())
}

/// A spec from the kit with `adjust` applied, and a rate that fits it.
fn spec_and_rate(adjust: fn(&mut SessionSpec)) -> impl Strategy<Value = (SessionSpec, RateSpec)> {
    spec_and_rates(adjust, 0).prop_map(|(spec, rate, _)| (spec, rate))
}

/// A spec from the kit with `adjust` applied, a rate that fits it and `more` other such rates.
fn spec_and_rates(
    adjust: fn(&mut SessionSpec),
    more: impl Into<prop::collection::SizeRange>,
) -> impl Strategy<Value = (SessionSpec, RateSpec, Vec<RateSpec>)> {
    let more = more.into();
    session_spec().prop_flat_map(move |mut spec| {
        adjust(&mut spec);
        let rate = rate_for(spec.currency, spec.target_currency);
        (
            Just(spec),
            rate.clone(),
            prop::collection::vec(rate, more.clone()),
        )
    })
}

// ---------------------------------------------------------------------------------------
// Properties 1, 2, 4, 5, 7, 8, 9 and 10: random command sequences
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// A first quote, then 1 to 30 random commands (payments, duplicates, confirmations,
    /// reversals, time passing and quotes expiring, updates, deactivation, bad commands);
    /// half the runs re-quote whenever a quote is needed, as the service's sweep does.
    #[test]
    fn random_command_sequences(scenario in strategies::scenario(1..=30)) {
        scenario.run()?;
    }
}

// ---------------------------------------------------------------------------------------
// Property 3: reordering reports to one quote
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Reorder {
    spec: SessionSpec,
    rate: RateSpec,
    /// Lightning payment to the quote, in per mille of its target.
    ln_permille: Option<u16>,
    /// On-chain transfers: (per mille of the target, rbf, confirmation levels reported).
    chain: Vec<(u16, bool, Vec<u32>)>,
}

fn reorder_strategy() -> impl Strategy<Value = Reorder> {
    (
        spec_and_rate(|spec| {
            spec.lightning = true;
            spec.onchain = true;
        }),
        prop::option::of(1u16..=1500),
        prop::collection::vec(
            (
                1u16..=1200,
                prop::bool::weighted(0.3),
                prop::sample::subsequence(vec![0u32, 1, 2, 3, 6, 7], 1..=4),
            ),
            1..=3,
        ),
    )
        .prop_map(|((spec, rate), ln_permille, chain)| Reorder {
            spec,
            rate,
            ln_permille,
            chain,
        })
}

/// The reports of a reorder case, in their natural order.
fn reorder_reports(case: &Reorder, target_sats: u64) -> Vec<ReportSpec> {
    let mut reports = Vec::new();
    if let Some(k) = case.ln_permille {
        let msats = (u128::from(target_sats) * u128::from(k)).max(1);
        let report = ReportSpec::Lightning {
            hash: invoice_hash(1),
            msats: u64::try_from(msats).unwrap(),
            reversed: false,
        };
        // The node may report the same payment twice.
        reports.push(report.clone());
        reports.push(report);
    }
    for (i, (k, rbf, levels)) in case.chain.iter().enumerate() {
        let sats = (target_sats * u64::from(*k) / 1000).max(1);
        for confirmations in levels {
            reports.push(ReportSpec::Onchain {
                txid: txid(100 + u32::try_from(i).unwrap()),
                vout: 1,
                address: ADDRESS.into(),
                sats,
                confirmations: *confirmations,
                rbf: *rbf,
                reversed: false,
            });
        }
    }
    reports
}

proptest! {
    #![proptest_config(config(128))]

    /// Property 3: Lightning payments to one quote and confirmation updates of on-chain
    /// transfers give the same totals, flags and status in any order (among orders in which
    /// every transfer arrives while the session is active; the status in every order).
    #[test]
    fn reordering_reports_to_one_quote(
        (case, orders) in reorder_strategy().prop_flat_map(|case| {
            let n = reorder_reports(&case, 1).len();
            (Just(case), reorderings((0..n).collect::<Vec<usize>>(), 1..=6))
        })
    ) {
        let mut base = Harness::new(&case.spec)?;
        base.step(&Command::IssueQuote(case.rate))?;
        prop_assume!(base.session().payments().len() == 1);
        let p = base.session().payments()[0].clone();
        let reports = reorder_reports(&case, p.target().get());
        let policy = case.spec.confirmations;

        // What every order must end with.
        let mut finals: BTreeMap<TransferKey, (u64, u32, bool)> = BTreeMap::new();
        for r in &reports {
            let msats = u64::try_from(r.msats()).unwrap();
            let e = finals.entry(r.key()).or_insert((msats, 0, r.rbf()));
            e.1 = e.1.max(r.confirmations());
        }
        let confirmed = |(_, conf, rbf): &(u64, u32, bool)| *conf >= policy.required(*rbf);
        let total: u64 = finals.values().map(|f| f.0).sum();
        let counted: u64 = finals
            .iter()
            .filter(|(k, f)| matches!(k, TransferKey::Lightning(_)) || confirmed(f))
            .map(|(_, f)| f.0)
            .sum();
        let target_msat = u128::from(p.target_msats().get());
        let due = u128::from(case.spec.amount_minor);
        let counted_credit = due * u128::from(counted) / target_msat;
        let want_paid = counted_credit >= base.model().threshold_minor();
        let want_overpaid = u64::try_from(u128::from(total).saturating_sub(target_msat)).unwrap();
        let amount_paid = base.model().decimal(counted_credit).unwrap();

        let mut reference: Option<(Totals, Vec<Flag>)> = None;
        for order in &orders {
            // The session and the model, side by side; compared once the order is done.
            let (mut s, mut model) = (base.session().clone(), base.model().clone());
            let mut now = base.now();
            for &i in order {
                now += Duration::seconds(1);
                let events = s
                    .record_transfer(reports[i].to_transfer_report(), now)
                    .map(SessionChange::into_events);
                prop_assert!(events.is_ok(), "report refused: {:?}", events);
                prop_assert_eq!(events, model.record(&reports[i], now));
            }
            model.check_against_at(&s, now)?;
            check_invariants(&s, now)?;
            let status = if want_paid { SessionStatus::Paid } else { SessionStatus::Active };
            prop_assert_eq!(s.status(), status, "status for order {:?}", order);
            prop_assert!(s.transfers().all(|t| t.payment_id == p.id()));
            if s.transfers().all(|t| t.arrival == Arrival::Expected) {
                let totals = s.totals();
                prop_assert_eq!(totals.counted.get(), counted);
                prop_assert_eq!(totals.pending.get(), total - counted);
                prop_assert_eq!(totals.amount_paid, amount_paid);
                prop_assert_eq!(s.flagged(FlagKind::Overpaid).get(), want_overpaid);
                let flags = s.flags();
                prop_assert!(flags.iter().all(|f| f.kind == FlagKind::Overpaid));
                match &reference {
                    None => reference = Some((totals, flags)),
                    Some((t, f)) => {
                        prop_assert_eq!(&totals, t);
                        prop_assert_eq!(&flags, f);
                    }
                }
            } else {
                // Money that arrived after the session was paid is flagged in full.
                let after_paid: u64 = s
                    .transfers()
                    .filter(|t| t.arrival == Arrival::AfterPaid)
                    .map(|t| t.amount.get())
                    .sum();
                prop_assert!(s.flagged(FlagKind::Overpaid).get() >= after_paid);
                prop_assert_eq!(s.status(), SessionStatus::Paid);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Property 6 (and part of 7): the exact-payment boundary
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Paying a fresh quote's target pays (crediting exactly the amount, with no flags);
    /// one msat less than the threshold never does; the threshold amount does.
    #[test]
    fn exact_payment_and_threshold_boundary(
        (spec, rate) in spec_and_rate(|spec| {
            spec.lightning = true;
            spec.onchain = true;
            spec.confirmations = ConfirmationPolicy::One;
            spec.ttl_secs = 600;
        }),
    ) {
        let mut fresh = Harness::new(&spec)?;
        fresh.step(&Command::IssueQuote(rate))?;
        // Prices worth less than one sat are refused (and the model agrees): skip those.
        prop_assume!(fresh.session().payments().len() == 1);
        let p = fresh.session().payments()[0].clone();
        prop_assert_eq!(p.due(), spec.amount());
        let target_msat = u128::from(p.target_msats().get());
        let due = u128::from(spec.amount_minor);
        let thr = due - due * u128::from(spec.tolerance_hundredths) / 10_000;
        prop_assert_eq!(thr, fresh.model().threshold_minor());
        let min_msat = (thr * target_msat).div_ceil(due);
        prop_assert!(min_msat <= target_msat);
        let ln = |msats: u128| ReportSpec::Lightning {
            hash: invoice_hash(1),
            msats: u64::try_from(msats).unwrap(),
            reversed: false,
        };

        // Exactly the target.
        let mut h = fresh.clone();
        record(&mut h, 1000, ln(target_msat))?;
        prop_assert_eq!(
            last_types(&h),
            vec![
                "checkout_session.transfer_received",
                "payment.paid",
                "checkout_session.payment_paid",
                "checkout_session.paid"
            ]
        );
        let s = h.session();
        prop_assert_eq!(s.status(), SessionStatus::Paid);
        prop_assert_eq!(s.totals().amount_paid, p.due());
        prop_assert_eq!(s.totals().counted, p.target_msats());
        prop_assert!(s.flags().is_empty());

        // The least that reaches the threshold.
        let mut h = fresh.clone();
        record(&mut h, 1000, ln(min_msat))?;
        prop_assert_eq!(h.session().status(), SessionStatus::Paid);
        prop_assert!(h.session().flags().is_empty());

        // One msat less.
        if min_msat > 1 {
            let mut h = fresh.clone();
            record(&mut h, 1000, ln(min_msat - 1))?;
            let s = h.session();
            prop_assert_eq!(s.status(), SessionStatus::Active);
            prop_assert_eq!(
                last_types(&h),
                vec![
                    "checkout_session.transfer_received",
                    "payment.paid",
                    "checkout_session.payment_paid"
                ]
            );
            prop_assert!(s.totals().amount_paid < fresh.model().decimal(thr).unwrap());
            prop_assert!(s.flags().is_empty());
            prop_assert!(s.needs_quote(h.now()));
        }
    }

    /// Partial payments, each below its quote's target, then the last quote paid exactly:
    /// the session is paid with exactly its amount credited and nothing flagged.
    #[test]
    fn partial_payments_then_exact_payment_credit_exactly_the_amount(
        (spec, rate, rates) in spec_and_rates(|spec| {
            spec.tolerance_hundredths = 0;
            spec.lightning = true;
            spec.onchain = false;
            spec.confirmations = ConfirmationPolicy::One;
            spec.ttl_secs = 600;
        }, 1..=4),
        parts in prop::collection::vec(1u16..1000, 1..=4),
    ) {
        let mut h = Harness::new(&spec)?;
        h.step(&Command::IssueQuote(rate))?;
        prop_assume!(!h.session().payments().is_empty());
        let mut q = 1u32;
        for (k, rate) in parts.iter().zip(rates.iter().cycle()) {
            let p = h.session().payments().last().unwrap().clone();
            let msats = (u128::from(p.target_msats().get()) * u128::from(*k) / 1000).max(1);
            record(&mut h, 10_000, ReportSpec::Lightning {
                hash: invoice_hash(q),
                msats: u64::try_from(msats).unwrap(),
                reversed: false,
            })?;
            if !h.session().needs_quote(h.now()) {
                break;
            }
            h.step(&Command::IssueQuote(*rate))?;
            q += 1;
            prop_assert_eq!(h.session().payments().len(), q as usize, "quote issued");
        }
        if h.session().status() == SessionStatus::Active {
            let p = h.session().open_payment().expect("a quote is open").clone();
            record(&mut h, 10_000, ReportSpec::Lightning {
                hash: invoice_hash(q),
                msats: p.target_msats().get(),
                reversed: false,
            })?;
        }
        let s = h.session();
        prop_assert_eq!(s.status(), SessionStatus::Paid);
        prop_assert_eq!(s.totals().amount_paid, s.amount());
        prop_assert!(s.flags().is_empty(), "flags {:?}", s.flags());
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Hashes are written as 64 lowercase hex digits (the same as formatting each byte with
    /// `{:02x}`), read back equal in either case, and only hex digits are read.
    #[test]
    fn hash_hex_round_trips(bytes in proptest::array::uniform32(any::<u8>()), pos in 0usize..64, junk in any::<char>()) {
        use std::str::FromStr;
        let hash = request::Hash32::from_bytes(bytes);
        let text = hash.to_string();
        let reference: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        prop_assert_eq!(&text, &reference);
        prop_assert_eq!(serde_json::to_string(&hash).unwrap(), format!("\"{reference}\""));
        prop_assert_eq!(request::Hash32::from_str(&text).unwrap(), hash);
        prop_assert_eq!(request::Hash32::from_str(&text.to_uppercase()).unwrap(), hash);
        prop_assume!(!junk.is_ascii_hexdigit());
        let mut bad: Vec<char> = text.chars().collect();
        bad[pos] = junk;
        let bad: String = bad.into_iter().collect();
        prop_assert!(request::Hash32::from_str(&bad).is_err());
    }
}

/// Found by `random_command_sequences`: funds confirmed at the very instant the session
/// expires count on a session that the same command deactivates first (a late payment),
/// so it is not paid. The harness's "paid iff" rule judges activity at the command's
/// time, not at the last snapshot's.
#[test]
fn funds_confirmed_at_the_session_expiry_do_not_pay_it() {
    use bitcoin_checkout::testkit::strategies::{Amount, Pick, Scenario};
    let mut session = SessionSpec::new(7_445_842, Currency::from_code("KWD").unwrap());
    session.tolerance_hundredths = 9_483;
    session.lightning = false;
    session.ttl_secs = 709;
    session.expires_at = Some(strategies::start_time() + Duration::seconds(535));
    let scenario = Scenario {
        session,
        commands: vec![
            Command::IssueQuote(RateSpec::new(1, 0).unwrap()),
            Command::PayOnchain {
                amount: Amount::Exact,
                confirmations: 0,
                rbf: false,
                vout: 0,
                reversed: false,
            },
            Command::ToQuoteExpiry { offset_millis: 0 },
            Command::Confirm {
                transfer: Pick(0),
                more: 1,
            },
        ],
        auto_quote: Vec::new(),
    };
    let harness = scenario.run().unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(harness.session().status(), SessionStatus::Deactivated);
}
