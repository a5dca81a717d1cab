//! The test kit used the way a user of the crate would: property tests of an integration
//! against the reference model, and proof that the harness catches integrations that get
//! the lifecycle wrong.
#![cfg(feature = "testkit")]

use std::collections::HashSet;

use bitcoin_checkout::request::Hash32;
use bitcoin_checkout::session::{FlagResolution, SessionChange};
use bitcoin_checkout::testkit::model::{RateSpec, ReferenceSession, SessionSpec};
use bitcoin_checkout::testkit::strategies::{
    self, Amount, Command, Harness, Integration, Pick, SESSION_ID, start_time,
};
use bitcoin_checkout::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use time::OffsetDateTime;

type Outcome = Result<Vec<SessionEvent>, Error>;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

// ---------------------------------------------------------------------------------------
// A correct integration: the session is stored as JSON between commands
// ---------------------------------------------------------------------------------------

/// What an application does: load the session, apply the command, store it again.
#[derive(Debug, Clone)]
struct JsonStored {
    json: String,
}

impl JsonStored {
    fn create(
        id: SessionId,
        params: SessionParams,
        now: OffsetDateTime,
    ) -> Result<(Self, Vec<SessionEvent>), Error> {
        let (session, change) = CheckoutSession::create(id, params, now)?;
        let json = session.to_json();
        Ok((Self { json }, change.into_events()))
    }

    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut CheckoutSession) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut session = CheckoutSession::from_json(&self.json)?;
        let out = f(&mut session)?;
        self.json = session.to_json();
        Ok(out)
    }
}

impl Integration for JsonStored {
    fn next_quote(
        &mut self,
        payment_id: PaymentId,
        rate: ExchangeRate,
        now: OffsetDateTime,
    ) -> Result<QuoteTerms, Error> {
        CheckoutSession::from_json(&self.json)?.next_quote(payment_id, rate, now)
    }

    fn issue_quote(
        &mut self,
        terms: QuoteTerms,
        request: PaymentRequest,
        now: OffsetDateTime,
    ) -> Outcome {
        self.with(|s| s.issue_quote(terms, request, now))
            .map(SessionChange::into_events)
    }

    fn record_transfer(&mut self, report: TransferReport, now: OffsetDateTime) -> Outcome {
        self.with(|s| s.record_transfer(report, now))
            .map(SessionChange::into_events)
    }

    fn expire_quotes(&mut self, now: OffsetDateTime) -> Outcome {
        self.with(|s| s.expire_quotes(now))
            .map(SessionChange::into_events)
    }

    fn update(&mut self, update: &SessionUpdate, now: OffsetDateTime) -> Outcome {
        self.with(|s| s.update(update, now))
            .map(SessionChange::into_events)
    }

    fn deactivate(&mut self, now: OffsetDateTime) -> Outcome {
        self.with(|s| s.deactivate(now))
            .map(SessionChange::into_events)
    }

    fn resolve_flag(&mut self, resolution: &FlagResolution, now: OffsetDateTime) -> Outcome {
        self.with(|s| s.resolve_flag(resolution, now))
            .map(SessionChange::into_events)
    }

    fn session(&self) -> Result<CheckoutSession, Error> {
        CheckoutSession::from_json(&self.json)
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Random sessions and command sequences: the stored integration behaves like the model.
    #[test]
    fn a_json_stored_session_behaves_like_the_model(scenario in strategies::scenario(1..=25)) {
        scenario.run_with(JsonStored::create)?;
    }

    /// One fixed session, random commands, a quote whenever one is needed.
    #[test]
    fn a_usd_session_behaves_like_the_model(commands in strategies::command_sequence(1..=25)) {
        let mut spec = SessionSpec::new(4999, usd());
        spec.tolerance_hundredths = 50;
        let mut harness = Harness::new(&spec)?.auto_quote(vec![RateSpec::new(1150, 0)?]);
        harness.run(&commands)?;
        prop_assert_eq!(harness.model().status(), harness.session().status());
        prop_assert_eq!(harness.model().flags(), harness.session().flags());
    }
}

// ---------------------------------------------------------------------------------------
// Wrong integrations: the harness must notice
// ---------------------------------------------------------------------------------------

/// A buggy deduplication: every second report of a transfer it has already seen is taken
/// for a new transfer (an on-chain output gets another index, a Lightning payment another
/// hash), as an integration keying transfers by the wrong id would.
#[derive(Debug, Clone)]
struct ForgetfulDedup {
    session: CheckoutSession,
    seen: HashSet<TransferKey>,
    known_reports: u32,
}

impl ForgetfulDedup {
    fn create(
        id: SessionId,
        params: SessionParams,
        now: OffsetDateTime,
    ) -> Result<(Self, Vec<SessionEvent>), Error> {
        let (session, change) = CheckoutSession::create(id, params, now)?;
        let events = change.into_events();
        let dedup = Self {
            session,
            seen: HashSet::new(),
            known_reports: 0,
        };
        Ok((dedup, events))
    }
}

impl Integration for ForgetfulDedup {
    fn next_quote(
        &mut self,
        payment_id: PaymentId,
        rate: ExchangeRate,
        now: OffsetDateTime,
    ) -> Result<QuoteTerms, Error> {
        self.session.next_quote(payment_id, rate, now)
    }

    fn issue_quote(
        &mut self,
        terms: QuoteTerms,
        request: PaymentRequest,
        now: OffsetDateTime,
    ) -> Outcome {
        self.session
            .issue_quote(terms, request, now)
            .map(SessionChange::into_events)
    }

    fn record_transfer(&mut self, report: TransferReport, now: OffsetDateTime) -> Outcome {
        let key = report.key();
        let mut report = report;
        if self.seen.contains(&key) {
            self.known_reports += 1;
            if self.known_reports.is_multiple_of(2) {
                report = match key {
                    TransferKey::Onchain(OutPoint { txid, vout }) => TransferReport::onchain(
                        OutPoint::new(txid, vout + 1000),
                        report.address().unwrap_or_default(),
                        report.amount().to_sats_floor(),
                    )
                    .confirmations(6),
                    TransferKey::Lightning(hash) => {
                        let mut bytes = hash.to_bytes();
                        bytes[0] ^= 0xff;
                        TransferReport::lightning(Hash32::from_bytes(bytes), report.amount())
                    }
                };
            }
        }
        let out = self
            .session
            .record_transfer(report, now)
            .map(SessionChange::into_events);
        if out.is_ok() {
            self.seen.insert(key);
        }
        out
    }

    fn expire_quotes(&mut self, now: OffsetDateTime) -> Outcome {
        self.session
            .expire_quotes(now)
            .map(SessionChange::into_events)
    }

    fn update(&mut self, update: &SessionUpdate, now: OffsetDateTime) -> Outcome {
        self.session
            .update(update, now)
            .map(SessionChange::into_events)
    }

    fn deactivate(&mut self, now: OffsetDateTime) -> Outcome {
        self.session.deactivate(now).map(SessionChange::into_events)
    }

    fn resolve_flag(&mut self, resolution: &FlagResolution, now: OffsetDateTime) -> Outcome {
        self.session
            .resolve_flag(resolution, now)
            .map(SessionChange::into_events)
    }

    fn session(&self) -> Result<CheckoutSession, Error> {
        Ok(self.session.clone())
    }
}

#[test]
fn the_harness_catches_a_dropped_duplicate_check() {
    let mut spec = SessionSpec::new(10_000, usd());
    spec.lightning = false;
    let mut harness = Harness::with_integration(&spec, ForgetfulDedup::create).unwrap();
    let pay = Command::PayOnchain {
        amount: Amount::Partial { permille: 400 },
        confirmations: 1,
        rbf: false,
        vout: 0,
        reversed: false,
    };
    harness
        .run(&[
            Command::IssueQuote(RateSpec::new(1000, 0).unwrap()),
            pay,
            // The first duplicate goes through the check...
            Command::Duplicate { report: Pick(0) },
        ])
        .unwrap();
    // ...the second is counted again.
    let failure = harness
        .step(&Command::Duplicate { report: Pick(0) })
        .unwrap_err();
    assert_eq!(failure.step(), Some(4));
    assert_eq!(failure.mismatch().field(), "outcome");
    assert_eq!(failure.mismatch().expected(), "Ok([])");
    assert!(
        failure
            .mismatch()
            .found()
            .contains("checkout_session.transfer_received"),
        "{failure}"
    );
    let message = failure.to_string();
    assert!(
        message.starts_with("step 4 (Duplicate { report: Pick(0) }): outcome: expected Ok([])")
    );
    assert!(message.contains("history:"), "{message}");
}

#[test]
fn random_sequences_find_the_dropped_duplicate_check() {
    // A fixed seed: the search is reproducible (and finds the bug within a few cases).
    let config = Config {
        cases: 256,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&strategies::scenario(1..=30), |scenario| {
        scenario.run_with(ForgetfulDedup::create)?;
        Ok(())
    });
    match result {
        Err(TestError::Fail(reason, minimal)) => {
            // Shrinking keeps a quote, a payment and two more reports of it.
            assert!(minimal.commands.len() <= 6, "{minimal:#?}");
            assert!(reason.message().contains("step "), "{reason}");
        }
        other => panic!("the harness did not catch the bug: {other:?}"),
    }
}

/// An integration that reports success for commands the core refused.
#[derive(Debug, Clone)]
struct SwallowsErrors(CheckoutSession);

impl Integration for SwallowsErrors {
    fn next_quote(
        &mut self,
        payment_id: PaymentId,
        rate: ExchangeRate,
        now: OffsetDateTime,
    ) -> Result<QuoteTerms, Error> {
        self.0.next_quote(payment_id, rate, now)
    }

    fn issue_quote(
        &mut self,
        terms: QuoteTerms,
        request: PaymentRequest,
        now: OffsetDateTime,
    ) -> Outcome {
        Ok(self
            .0
            .issue_quote(terms, request, now)
            .map(SessionChange::into_events)
            .unwrap_or_default())
    }

    fn record_transfer(&mut self, report: TransferReport, now: OffsetDateTime) -> Outcome {
        Ok(self
            .0
            .record_transfer(report, now)
            .map(SessionChange::into_events)
            .unwrap_or_default())
    }

    fn expire_quotes(&mut self, now: OffsetDateTime) -> Outcome {
        Ok(self
            .0
            .expire_quotes(now)
            .map(SessionChange::into_events)
            .unwrap_or_default())
    }

    fn update(&mut self, update: &SessionUpdate, now: OffsetDateTime) -> Outcome {
        Ok(self
            .0
            .update(update, now)
            .map(SessionChange::into_events)
            .unwrap_or_default())
    }

    fn deactivate(&mut self, now: OffsetDateTime) -> Outcome {
        Ok(self
            .0
            .deactivate(now)
            .map(SessionChange::into_events)
            .unwrap_or_default())
    }

    fn resolve_flag(&mut self, resolution: &FlagResolution, now: OffsetDateTime) -> Outcome {
        Ok(self
            .0
            .resolve_flag(resolution, now)
            .map(SessionChange::into_events)
            .unwrap_or_default())
    }

    fn session(&self) -> Result<CheckoutSession, Error> {
        Ok(self.0.clone())
    }
}

#[test]
fn the_harness_catches_swallowed_errors() {
    let spec = SessionSpec::new(2500, usd());
    let mut harness = Harness::with_integration(&spec, |id, params, now| {
        CheckoutSession::create(id, params, now)
            .map(|(s, change)| (SwallowsErrors(s), change.into_events()))
    })
    .unwrap();
    harness
        .step(&Command::IssueQuote(RateSpec::new(1000, 0).unwrap()))
        .unwrap();
    let failure = harness.step(&Command::ZeroAmount).unwrap_err();
    assert_eq!(failure.mismatch().field(), "outcome");
    assert_eq!(failure.mismatch().expected(), "Err(AmountNotPositive)");
    assert_eq!(failure.mismatch().found(), "Ok([])");
}

#[test]
fn check_against_names_the_field_that_differs() {
    let now = start_time();
    let spec = SessionSpec::new(2500, usd());
    let model = ReferenceSession::new(&spec, now).unwrap();
    let mut other = spec.clone();
    other.amount_minor = 2600;
    let (session, _) = CheckoutSession::create(SESSION_ID, other.params(), now).unwrap();
    let mismatch = model.check_against(&session).unwrap_err();
    assert_eq!(mismatch.field(), "amount");
    assert_eq!(
        mismatch.to_string(),
        "amount: expected Some(25.00), found Some(26.00)"
    );

    let (session, _) = CheckoutSession::create(SESSION_ID, spec.params(), now).unwrap();
    model.check_against_at(&session, now).unwrap();
}

#[test]
fn the_model_refuses_what_the_core_refuses() {
    let now = start_time();
    let mut cases = Vec::new();
    let mut spec = SessionSpec::new(0, usd());
    cases.push(spec.clone());
    spec.amount_minor = 100;
    spec.tolerance_hundredths = 10_000;
    cases.push(spec.clone());
    spec.tolerance_hundredths = 0;
    spec.ttl_secs = 299;
    cases.push(spec.clone());
    spec.ttl_secs = 600;
    spec.lightning = false;
    spec.onchain = false;
    cases.push(spec.clone());
    spec.onchain = true;
    spec.description = Some("bell\u{7}".into());
    cases.push(spec.clone());
    let mut btc = SessionSpec::new(21_000_000 * 100_000_000 + 1, Currency::Btc);
    btc.ttl_secs = 600;
    cases.push(btc);
    for spec in cases {
        let model = ReferenceSession::new(&spec, now).map(|_| ());
        let core = CheckoutSession::create(SESSION_ID, spec.params(), now).map(|_| ());
        assert!(model.is_err(), "{spec:?}");
        assert_eq!(model, core, "{spec:?}");
    }
}
