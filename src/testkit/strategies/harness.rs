//! The [`Harness`]: its state, creation, accessors, running steps and the checks after every
//! step.

use std::fmt;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::commands::Command;
use super::failure::{Failure, Outcome};
use super::fixtures::{SESSION_ID, start_time};
use super::integration::Integration;
use crate::error::Error;
use crate::event::{EventType, SessionEvent};
use crate::id::{PaymentId, SessionId};
use crate::payment::{PaymentState, PaymentStatus};
use crate::session::{CheckoutSession, SessionParams, SessionState, SessionStatus};
use crate::testkit::model::{
    Mismatch, RateSpec, ReferenceSession, ReportSpec, SessionSpec, check_accounting,
    check_round_trips, mul_div_floor,
};

/// Applies [`Command`]s to an [`Integration`] and to the [`ReferenceSession`] and checks
/// them against each other after every step (see the [module docs](super)).
///
/// ```
/// use bitcoin_checkout::testkit::model::{RateSpec, SessionSpec};
/// use bitcoin_checkout::testkit::strategies::{Amount, Command, Harness, Pick};
/// use bitcoin_checkout::{Currency, SessionStatus};
///
/// let mut spec = SessionSpec::new(10_000, Currency::from_code("USD")?); // 100.00 USD
/// spec.lightning = false; // on-chain only, one confirmation
/// let mut harness = Harness::new(&spec)?;
/// harness.step(&Command::IssueQuote(RateSpec::new(1000, 0)?))?;
/// harness.step(&Command::PayOnchain {
///     amount: Amount::Exact,
///     confirmations: 0,
///     rbf: false,
///     vout: 0,
///     reversed: false,
/// })?;
/// assert_eq!(harness.model().status(), SessionStatus::Active); // pending
/// harness.step(&Command::Confirm { transfer: Pick(0), more: 1 })?;
/// assert_eq!(harness.model().status(), SessionStatus::Paid);
/// assert_eq!(harness.integration().status(), SessionStatus::Paid);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Harness<I = CheckoutSession> {
    pub(super) integration: I,
    pub(super) model: ReferenceSession,
    pub(super) spec: SessionSpec,
    pub(super) now: OffsetDateTime,
    pub(super) accepted: Vec<ReportSpec>,
    pub(super) next_tx: u32,
    pub(super) events: Vec<SessionEvent>,
    reached: bool,
    auto_quote: Vec<RateSpec>,
    steps: usize,
    pub(super) last: Option<Outcome>,
    pub(super) log: Vec<String>,
}

/// Runs `commands` on a new [`CheckoutSession`] for `spec` and the model; the harness is
/// returned for further checks.
pub fn run(spec: &SessionSpec, commands: &[Command]) -> Result<Harness, Failure> {
    let mut harness = Harness::new(spec)?;
    harness.run(commands)?;
    Ok(harness)
}

impl Harness<CheckoutSession> {
    /// A harness on a new [`CheckoutSession`] for `spec`, created at [`start_time`].
    pub fn new(spec: &SessionSpec) -> Result<Self, Failure> {
        Self::with_integration(spec, CheckoutSession::create)
    }
}

/// The session's threshold in minor units, from its public fields (rule 3).
fn threshold_of(session: &CheckoutSession) -> Option<u128> {
    let scale = session.currency().scale();
    let mut amount = session.amount();
    amount.rescale(scale);
    let minor = u128::try_from(amount.mantissa()).ok()?;
    let allowance = Decimal::from_i128_with_scale(i128::try_from(minor).ok()?, 0)
        .checked_mul(session.tolerance())?
        .checked_div(Decimal::ONE_HUNDRED)?
        .floor();
    minor.checked_sub(u128::try_from(i128::try_from(allowance).ok()?).ok()?)
}

/// Counted credit in minor units, recomputed from `payments()` and `transfers()`.
fn counted_credit_of(session: &CheckoutSession) -> u128 {
    let policy = session.confirmation_policy();
    let scale = session.currency().scale();
    session
        .payments()
        .iter()
        .map(|p| {
            let msats: u128 = session
                .transfers()
                .filter(|t| t.payment_id == p.id() && t.counts(policy))
                .map(|t| u128::from(t.amount.get()))
                .sum();
            let mut due = p.due();
            due.rescale(scale);
            let due = u128::try_from(due.mantissa()).unwrap_or(0);
            mul_div_floor(due, msats, u128::from(p.target_msats().get()))
        })
        .fold(0u128, u128::saturating_add)
}

pub(super) fn same<T: PartialEq + fmt::Debug>(
    field: &str,
    expected: T,
    found: T,
) -> Result<(), Mismatch> {
    if expected == found {
        Ok(())
    } else {
        Err(Mismatch::new(field, expected, found))
    }
}

impl<I: Integration> Harness<I> {
    /// A harness on the integration `create` makes from the session's id, parameters and
    /// creation time (pass [`CheckoutSession::create`] or your own constructor); the
    /// creation events must be the model's. `create` returns the events, or anything that
    /// turns into them (a [`SessionChange`](crate::session::SessionChange)).
    pub fn with_integration<F, E>(spec: &SessionSpec, create: F) -> Result<Self, Failure>
    where
        F: FnOnce(SessionId, SessionParams, OffsetDateTime) -> Result<(I, E), Error>,
        E: Into<Vec<SessionEvent>>,
    {
        let now = start_time();
        let failure = |mismatch| Failure::new(None, None, mismatch, Vec::new());
        let expected = ReferenceSession::create(spec, now);
        let got = create(SESSION_ID, spec.params(), now).map(|(i, e)| (i, e.into()));
        let (model, integration, events) = match (expected, got) {
            (Ok((model, expected)), Ok((integration, events))) => {
                same("events of create", &expected, &events).map_err(failure)?;
                (model, integration, events)
            }
            (Err(e), Err(g)) if e == g => {
                return Err(failure(Mismatch::new(
                    "create (both refused the spec)",
                    "a valid SessionSpec",
                    g,
                )));
            }
            (e, g) => {
                return Err(failure(Mismatch::new(
                    "outcome of create",
                    e.map(|(_, events)| events),
                    g.map(|(_, events)| events),
                )));
            }
        };
        let harness = Self {
            integration,
            model,
            spec: spec.clone(),
            now,
            accepted: Vec::new(),
            next_tx: 1,
            events,
            reached: false,
            auto_quote: Vec::new(),
            steps: 0,
            last: None,
            log: vec![format!("create {spec:?}")],
        };
        let checked = harness.snapshot().and_then(|s| harness.check(&s, true));
        match checked {
            Ok(()) => Ok(harness),
            Err(m) => Err(Failure::new(None, None, m, harness.log.clone())),
        }
    }

    /// After every command of [`run`](Self::run) that leaves the session needing a quote,
    /// issues one at the next of `rates` (none when empty, the default).
    pub fn auto_quote(mut self, rates: Vec<RateSpec>) -> Self {
        self.auto_quote = rates;
        self
    }

    /// The integration under test.
    pub fn integration(&self) -> &I {
        &self.integration
    }

    /// Gives the integration back.
    pub fn into_integration(self) -> I {
        self.integration
    }

    /// The model.
    pub fn model(&self) -> &ReferenceSession {
        &self.model
    }

    /// The session's spec.
    pub fn spec(&self) -> &SessionSpec {
        &self.spec
    }

    /// The run's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Every event the integration returned so far, creation included.
    pub fn events(&self) -> &[SessionEvent] {
        &self.events
    }

    /// The reports accepted so far (what [`Command::Duplicate`] picks from).
    pub fn accepted_reports(&self) -> &[ReportSpec] {
        &self.accepted
    }

    /// The outcome of the last command applied (`None` if the last step applied none, e.g.
    /// [`Command::AdvanceTime`]).
    pub fn last_outcome(&self) -> Option<&Outcome> {
        self.last.as_ref()
    }

    /// What happened so far, one line per operation.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Applies `commands` in order (with [automatic quotes](Self::auto_quote)), stopping at
    /// the first failure.
    pub fn run(&mut self, commands: &[Command]) -> Result<(), Failure> {
        for (i, command) in commands.iter().enumerate() {
            self.step(command)?;
            if !self.auto_quote.is_empty() && self.model.needs_quote(self.now) {
                let rate = self.auto_quote[i % self.auto_quote.len()];
                self.step(&Command::IssueQuote(rate))?;
            }
        }
        Ok(())
    }

    /// Applies one command to the integration and the model, then checks everything.
    ///
    /// After a failure the two sides may differ for good: start a new harness rather than
    /// stepping this one further.
    pub fn step(&mut self, command: &Command) -> Result<(), Failure> {
        self.steps += 1;
        self.last = None;
        match self.step_inner(command) {
            Ok(()) => Ok(()),
            Err(mismatch) => Err(Failure::new(
                Some(self.steps),
                Some(format!("{command:?}")),
                mismatch,
                self.log.clone(),
            )),
        }
    }

    pub(super) fn snapshot(&self) -> Result<CheckoutSession, Mismatch> {
        self.integration
            .session()
            .map_err(|e| Mismatch::new("integration.session()", "the session", e))
    }

    pub(super) fn unchanged(&self, what: &str, before: &CheckoutSession) -> Result<(), Mismatch> {
        let after = self.snapshot()?;
        if &after == before {
            return Ok(());
        }
        Err(Mismatch::new(
            format!("session after {what} (must be unchanged)"),
            before.to_json(),
            after.to_json(),
        ))
    }

    fn step_inner(&mut self, command: &Command) -> Result<(), Mismatch> {
        let before = self.snapshot()?;
        self.apply_command(command, &before)?;
        // Active when the command ran: a session past its own expiry at that moment is
        // deactivated by the command before any funds it records count (the snapshot
        // still says active when no command touched it since it expired).
        let was_active = matches!(before.state(), SessionState::Active)
            && before.expires_at().is_none_or(|e| self.now < e);
        let after = self.snapshot()?;

        // Terminal statuses never change; quotes are never removed.
        if before.state().is_terminal() {
            same(
                "a terminal session's state never changes",
                before.state(),
                after.state(),
            )?;
        }
        if after.payments().len() < before.payments().len() {
            return Err(Mismatch::new(
                "quotes are never removed",
                before.payments().len(),
                after.payments().len(),
            ));
        }
        for (old, new) in before.payments().iter().zip(after.payments()) {
            same("a quote's id never changes", old.id(), new.id())?;
            if !matches!(old.state(), PaymentState::Unpaid) {
                same(
                    "a terminal quote's state never changes",
                    old.state(),
                    new.state(),
                )?;
            }
        }
        if was_active && threshold_of(&after).is_some_and(|t| counted_credit_of(&after) >= t) {
            self.reached = true;
        }
        self.check(&after, after != before)
    }

    /// Everything that must hold after every step. The JSON round-trips are only checked
    /// when the session `changed` (an equal session was checked before).
    fn check(&self, session: &CheckoutSession, changed: bool) -> Result<(), Mismatch> {
        self.model.check_against_at(session, self.now)?;
        check_accounting(session, self.now)?;
        if changed {
            check_round_trips(session)?;
        }
        same(
            "paid iff the counted funds reached the threshold while active",
            self.reached,
            session.status() == SessionStatus::Paid,
        )?;

        // The events so far add up.
        let count = |t: &EventType, p: Option<PaymentId>| {
            self.events
                .iter()
                .filter(|e| &e.event_type == t && (p.is_none() || e.payment_id == p))
                .count()
        };
        let is = |s: SessionStatus| usize::from(session.status() == s);
        same(
            "events: one checkout_session.created",
            1,
            count(&EventType::CheckoutSessionCreated, None),
        )?;
        same(
            "events: one checkout_session.paid iff paid",
            is(SessionStatus::Paid),
            count(&EventType::CheckoutSessionPaid, None),
        )?;
        same(
            "events: one checkout_session.deactivated iff deactivated",
            is(SessionStatus::Deactivated),
            count(&EventType::CheckoutSessionDeactivated, None),
        )?;
        for pay in session.payments() {
            let id = Some(pay.id());
            let is = |s: PaymentStatus| usize::from(pay.status() == s);
            let field = |what: &str| format!("events: {what} of payment {}", pay.id());
            let check = |what: &str, t: EventType, want: usize| {
                let n = count(&t, id);
                if n == want {
                    Ok(())
                } else {
                    Err(Mismatch::new(field(what), want, n))
                }
            };
            check("one payment.created", EventType::PaymentCreated, 1)?;
            check(
                "payment.expired iff expired",
                EventType::PaymentExpired,
                is(PaymentStatus::Expired),
            )?;
            check(
                "payment.cancelled iff cancelled",
                EventType::PaymentCancelled,
                is(PaymentStatus::Cancelled),
            )?;
            check(
                "payment.paid iff paid",
                EventType::PaymentPaid,
                is(PaymentStatus::Paid),
            )?;
            check(
                "checkout_session.payment_paid iff paid",
                EventType::CheckoutSessionPaymentPaid,
                is(PaymentStatus::Paid),
            )?;
        }
        for t in session.transfers() {
            let n = |ty: EventType| {
                self.events
                    .iter()
                    .filter(|e| e.event_type == ty && e.transfer == Some(t.key))
                    .count()
            };
            let field = |what: &str| format!("events: {what} of transfer {}", t.key);
            let received = n(EventType::TransferReceived);
            if received != 1 {
                return Err(Mismatch::new(field("one transfer_received"), 1, received));
            }
            let reversed = n(EventType::TransferReversed);
            if reversed != usize::from(t.reversed) {
                return Err(Mismatch::new(
                    field("transfer_reversed iff reversed"),
                    usize::from(t.reversed),
                    reversed,
                ));
            }
            let confirmed = n(EventType::TransferConfirmed);
            if confirmed > 1 {
                return Err(Mismatch::new(
                    field("at most one transfer_confirmed"),
                    "<= 1",
                    confirmed,
                ));
            }
        }
        Ok(())
    }
}

impl Harness<CheckoutSession> {
    /// The session under test.
    pub fn session(&self) -> &CheckoutSession {
        &self.integration
    }
}
