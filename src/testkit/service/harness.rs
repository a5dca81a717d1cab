//! The [`ServiceHarness`]: the reference model compared with the [`Checkout`] service over
//! any store, rate source and payment-request generator.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::commands::{ServiceCase, ServiceCommand};
use crate::clock::{Clock, ManualClock, SeededIds};
use crate::error::Error;
use crate::event::SessionEvent;
use crate::id::SessionId;
use crate::money::MSATS_PER_SAT;
use crate::rates::{FixedRates, RateSource};
use crate::request::{PaymentRequestGenerator, TestRequestGenerator};
use crate::service::{Checkout, ServiceError};
use crate::session::CheckoutSession;
use crate::store::Store;
use crate::testkit::model::{
    Mismatch, RateSpec, ReferenceSession, ReportSpec, SessionSpec, check_invariants,
};
use crate::testkit::strategies::{Failure, Pick, known_report, msats_for, start_time, txid};

/// Runs [`ServiceCommand`]s on a [`Checkout`] (with a [`ManualClock`] and [`SeededIds`])
/// and on the [`ReferenceSession`], and after every step compares the session **as the
/// store holds it** (loaded afresh, past the service's cache) with the model: every field,
/// every quote (the model prices each at the case's rate, so a rate source that rounds or
/// inverts is caught at its first quote), every transfer, the invariants, and the outbox
/// timeline (the type and time of every event, in order).
///
/// Quotes are the service's own: when the model says a quote is due (after a fetch, a
/// payment, a creation), the harness hands the service's new payment (its id and request)
/// to the model, which checks it the way the core does.
///
/// ```
/// use bitcoin_checkout::store::MemoryStore;
/// use bitcoin_checkout::testkit::model::{RateSpec, SessionSpec};
/// use bitcoin_checkout::testkit::service::{ServiceCommand, ServiceHarness};
/// use bitcoin_checkout::testkit::strategies::{Amount, Pick};
/// use bitcoin_checkout::{Currency, SessionStatus};
///
/// let spec = SessionSpec::new(2500, Currency::from_code("USD")?);
/// let rate = RateSpec::new(1000, 0)?; // 1,000 sats per dollar
/// let mut harness = ServiceHarness::with_store(&spec, rate, MemoryStore::new())?;
/// harness.run(&[ServiceCommand::PayLightning { quote: Pick(0), amount: Amount::Exact }])?;
/// assert_eq!(harness.session()?.status(), SessionStatus::Paid);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ServiceHarness<S, R, G> {
    checkout: Checkout<S, R, G, Arc<ManualClock>>,
    clock: Arc<ManualClock>,
    id: SessionId,
    model: ReferenceSession,
    rate: RateSpec,
    events: Vec<SessionEvent>,
    accepted: Vec<ReportSpec>,
    next_tx: u32,
    steps: usize,
    log: Vec<String>,
}

impl<S, R, G> std::fmt::Debug for ServiceHarness<S, R, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHarness")
            .field("session", &self.id)
            .field("steps", &self.steps)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl<S: Store> ServiceHarness<S, FixedRates, TestRequestGenerator> {
    /// A harness on `store`, with [`FixedRates`] answering `rate` for the spec's pair and
    /// the [`TestRequestGenerator`]: what a store author needs.
    pub fn with_store(spec: &SessionSpec, rate: RateSpec, store: S) -> Result<Self, Failure> {
        let rates = FixedRates::new().with(spec.currency, spec.target_currency, rate.to_decimal());
        Self::new(spec, rate, store, rates, TestRequestGenerator)
    }
}

impl<S: Store, R: RateSource, G: PaymentRequestGenerator> ServiceHarness<S, R, G> {
    /// Creates the session of `spec` through a [`Checkout`] on `store`, `rates` and
    /// `generator`; `rate` is what `rates` must answer for the spec's pair.
    pub fn new(
        spec: &SessionSpec,
        rate: RateSpec,
        store: S,
        rates: R,
        generator: G,
    ) -> Result<Self, Failure> {
        let clock = Arc::new(ManualClock::new(start_time()));
        let checkout = Checkout::new(store, rates, generator)
            .with_clock(Arc::clone(&clock))
            .with_ids(SeededIds::new(0x5eed));
        let now = clock.now();
        let fail = |m| Failure::new(None, None, m, Vec::new());
        let (model, events) = ReferenceSession::create(spec, now)
            .map_err(|e| fail(Mismatch::new("the spec", "a valid SessionSpec", e)))?;
        let created = checkout
            .create(spec.params(), None)
            .map_err(|e| fail(Mismatch::new("create", "a session", e)))?;
        let mut harness = Self {
            checkout,
            clock,
            id: created.id(),
            model,
            rate,
            events,
            accepted: Vec::new(),
            next_tx: 1,
            steps: 0,
            log: vec![format!("create {spec:?} at {rate}")],
        };
        harness
            .follow(now, true)
            .map_err(|m| Failure::new(None, None, m, harness.log.clone()))?;
        Ok(harness)
    }

    /// The service under test.
    pub fn checkout(&self) -> &Checkout<S, R, G, Arc<ManualClock>> {
        &self.checkout
    }

    /// The model.
    pub fn model(&self) -> &ReferenceSession {
        &self.model
    }

    /// The session as the store holds it now.
    pub fn session(&self) -> Result<CheckoutSession, Failure> {
        self.load()
            .map_err(|m| Failure::new(Some(self.steps), None, m, self.log.clone()))
    }

    /// What happened so far, one line per call.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Runs `commands` in order, stopping at the first failure.
    pub fn run(&mut self, commands: &[ServiceCommand]) -> Result<(), Failure> {
        commands.iter().try_for_each(|c| self.step(c))
    }

    /// Applies one command to the service and the model and compares them.
    pub fn step(&mut self, command: &ServiceCommand) -> Result<(), Failure> {
        self.steps += 1;
        self.step_inner(command).map_err(|m| {
            Failure::new(
                Some(self.steps),
                Some(command.to_string()),
                m,
                self.log.clone(),
            )
        })
    }

    fn load(&self) -> Result<CheckoutSession, Mismatch> {
        match self.checkout.store().load(self.id) {
            Ok(Some(s)) => Ok(s),
            other => Err(Mismatch::new("the stored session", "the session", other)),
        }
    }

    fn step_inner(&mut self, command: &ServiceCommand) -> Result<(), Mismatch> {
        let now = self.clock.now();
        match command {
            ServiceCommand::Fetch => {
                let got = self.checkout.get(self.id).map(|_| ());
                self.log.push(format!("fetch -> {got:?}"));
                got.map_err(|e| Mismatch::new("get", "the session", e))?;
                self.follow(now, true)
            }
            ServiceCommand::Sweep => {
                let report = self.checkout.sweep(1000);
                self.log.push(format!("sweep -> {report:?}"));
                match report {
                    Ok(r) if r.failed.is_empty() => self.follow(now, false),
                    other => Err(Mismatch::new("sweep", "no failure", other)),
                }
            }
            ServiceCommand::PayLightning { quote, amount } => {
                let n = self.model.payments().len();
                let Some(p) = (n > 0)
                    .then(|| quote.index(n + 1).min(n - 1))
                    .and_then(|k| self.model.payments().get(k))
                else {
                    return self.skip("no quote to pay");
                };
                let Some(hash) = p.invoice() else {
                    return self.skip("no invoice");
                };
                let msats = msats_for(&self.model, Some(p), *amount);
                self.record(
                    ReportSpec::Lightning {
                        hash,
                        msats,
                        reversed: false,
                    },
                    now,
                )
            }
            ServiceCommand::PayOnchain {
                amount,
                confirmations,
            } => {
                let Some(address) = self.model.onchain_address().map(str::to_owned) else {
                    return self.skip("no address");
                };
                let payment = self.model.onchain_payment_at(now);
                let sats = msats_for(&self.model, payment, *amount)
                    .div_ceil(MSATS_PER_SAT)
                    .max(1);
                let txid = txid(self.next_tx);
                self.next_tx = self.next_tx.wrapping_add(1);
                self.record(
                    ReportSpec::Onchain {
                        txid,
                        vout: 0,
                        address,
                        sats,
                        confirmations: *confirmations,
                        rbf: false,
                        reversed: false,
                    },
                    now,
                )
            }
            ServiceCommand::Confirm { transfer, more } => {
                match self.known(*transfer).and_then(|r| r.confirmed(*more)) {
                    Some(report) => self.record(report, now),
                    None => self.skip("no on-chain transfer"),
                }
            }
            ServiceCommand::Reverse { transfer } => match self.known(*transfer) {
                Some(report) => self.record(report.reversed(), now),
                None => self.skip("no transfer"),
            },
            ServiceCommand::Duplicate { report } => {
                if self.accepted.is_empty() {
                    return self.skip("no report yet");
                }
                // The replay itself changes nothing; the service may still expire and
                // re-quote in the same call, which the model follows.
                let r = self.accepted[report.index(self.accepted.len())].clone();
                self.record(r, now)
            }
            ServiceCommand::AdvanceTime { millis } => {
                self.clock
                    .advance(Duration::milliseconds(i64::from(*millis)));
                self.log.push(format!("wait {millis} ms"));
                Ok(())
            }
            ServiceCommand::ToQuoteExpiry => {
                if let Some(p) = self.model.payments().last() {
                    let t = p.expires_at() + Duration::milliseconds(1);
                    if t > now {
                        self.clock.set(t);
                        self.log.push("to the quote's expiry".into());
                    }
                }
                Ok(())
            }
            ServiceCommand::Update(spec) => {
                let got = self.checkout.update(self.id, &spec.to_update());
                let want = self.model.clone().update(spec, now);
                let applied = self.compare(format!("update {spec:?}"), got, want, |m| {
                    m.update(spec, now)
                })?;
                self.after(applied, now, false)
            }
            ServiceCommand::Deactivate => {
                let got = self.checkout.deactivate(self.id);
                let want = self.model.clone().deactivate(now);
                let applied =
                    self.compare("deactivate".into(), got, want, |m| m.deactivate(now))?;
                self.after(applied, now, false)
            }
        }
    }

    fn skip(&mut self, why: &str) -> Result<(), Mismatch> {
        self.log.push(format!("skipped: {why}"));
        Ok(())
    }

    /// A known transfer, as the report that repeats it (current confirmations, not reversed).
    fn known(&self, pick: Pick) -> Option<ReportSpec> {
        let address = self.model.onchain_address().unwrap_or_default();
        known_report(&self.model, pick, address)
    }

    fn record(&mut self, report: ReportSpec, now: OffsetDateTime) -> Result<(), Mismatch> {
        let got = self.checkout.record_transfer(report.to_transfer_report());
        let want = self.model.clone().record(&report, now);
        let applied = self.compare(format!("record {report:?}"), got, want, |m| {
            m.record(&report, now)
        })?;
        if applied {
            self.accepted.push(report);
        }
        // A payment is quoted again at once, as the service does.
        self.after(applied, now, true)
    }

    /// Compares a service call's result with the model's (`want`, computed on a copy), and
    /// applies the model's command for real when both succeeded.
    fn compare(
        &mut self,
        what: String,
        got: Result<CheckoutSession, ServiceError>,
        want: Result<Vec<SessionEvent>, Error>,
        apply: impl FnOnce(&mut ReferenceSession) -> Result<Vec<SessionEvent>, Error>,
    ) -> Result<bool, Mismatch> {
        self.log.push(format!(
            "{what} -> {}",
            match &got {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{e:?}"),
            }
        ));
        match (got, want) {
            (Ok(_), Ok(_)) => {
                if let Ok(events) = apply(&mut self.model) {
                    self.events.extend(events);
                }
                Ok(true)
            }
            (Err(ServiceError::Core(g)), Err(w)) if g == w => Ok(false),
            (g, w) => Err(Mismatch::new(
                format!("outcome of {what}"),
                w.map(|_| "ok"),
                g.map(|_| "ok"),
            )),
        }
    }

    /// After a command: if it was `applied`, the service also expired (and, `quoting`,
    /// quoted) in the same commit; a refused command wrote nothing at all.
    fn after(&mut self, applied: bool, now: OffsetDateTime, quoting: bool) -> Result<(), Mismatch> {
        if applied {
            return self.follow(now, quoting);
        }
        let got = self.load()?;
        self.check(&got, now)
    }

    /// After a service call at `now`: the model expires what ran out and, when `quoting`
    /// and a quote is due, takes the service's new quote; then everything is compared.
    fn follow(&mut self, now: OffsetDateTime, quoting: bool) -> Result<(), Mismatch> {
        let got = self.load()?;
        if let Ok(events) = self.model.expire(now) {
            self.events.extend(events);
        }
        if quoting && self.model.needs_quote(now) {
            let n = self.model.payments().len();
            let Some(p) = got.payments().get(n) else {
                return Err(Mismatch::new(
                    "a quote the service should have issued",
                    format!("payment {}", n + 1),
                    "none",
                ));
            };
            let events = self
                .model
                .issue_quote(p.id(), &self.rate, p.request(), now)
                .map_err(|e| {
                    Mismatch::new("the service's quote, checked by the model", "accepted", e)
                })?;
            self.events.extend(events);
        }
        self.check(&got, now)
    }

    fn check(&self, session: &CheckoutSession, now: OffsetDateTime) -> Result<(), Mismatch> {
        self.model.check_against_at(session, now)?;
        check_invariants(session, now)?;
        let timeline = self
            .checkout
            .timeline(self.id)
            .map_err(|e| Mismatch::new("the timeline", "the session's events", e))?;
        let got: Vec<_> = timeline
            .iter()
            .map(|e| (e.event.event_type.clone(), e.event.created))
            .collect();
        let want: Vec<_> = self
            .events
            .iter()
            .map(|e| (e.event_type.clone(), e.at))
            .collect();
        if let Some(i) = (0..got.len().max(want.len())).find(|i| got.get(*i) != want.get(*i)) {
            return Err(Mismatch::new(
                format!("timeline event {i} (type, time) of {}", want.len()),
                want.get(i),
                got.get(i),
            ));
        }
        Ok(())
    }
}

/// Runs `case` on a fresh harness over `store` (with [`FixedRates`] at the case's rate and
/// the [`TestRequestGenerator`]).
pub fn run_case<S: Store>(case: &ServiceCase, store: S) -> Result<(), Failure> {
    ServiceHarness::with_store(&case.spec, case.rate, store)?.run(&case.commands)
}
