//! How the [`Harness`] applies each [`Command`] to the integration and the model, and compares
//! the outcomes.

use time::{Duration, OffsetDateTime};

use super::commands::{Amount, ClockCommand, Command, Pick};
use super::failure::Outcome;
use super::fixtures::{
    ADDRESS, WRONG_ADDRESS, invoice_hash, payment_id, request_for, start_time, txid,
};
use super::harness::{Harness, same};
use super::integration::Integration;
use crate::chain::{OutPoint, Txid};
use crate::error::Error;
use crate::money::{MSATS_PER_SAT, Msats};
use crate::session::{CheckoutSession, FlagResolution};
use crate::testkit::model::{
    Mismatch, RateSpec, ReferenceSession, ReportSpec, UpdateSpec, unix_ms,
};
use crate::transfer::TransferKey;

/// A count as a `u32` (saturating).
fn number(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `t` moved by `millis`, or a mismatch if that leaves the supported range of times.
fn later(t: OffsetDateTime, millis: i64) -> Result<OffsetDateTime, Mismatch> {
    t.checked_add(Duration::milliseconds(millis))
        .ok_or_else(|| {
            Mismatch::new(
                "the run's time",
                "a time in the supported range",
                (t, millis),
            )
        })
}

/// Msats for `amount` on quote `p` (1,000,000 when there is no quote).
/// Transfer `pick` of `model`, as the report that would repeat it (current confirmations
/// and RBF signal, not reversed; on-chain ones to `address`).
pub(crate) fn known_report(
    model: &ReferenceSession,
    pick: Pick,
    address: &str,
) -> Option<ReportSpec> {
    let transfers = model.transfers();
    let t = transfers.get(pick.index(transfers.len()))?;
    Some(match t.key {
        TransferKey::Lightning(hash) => ReportSpec::Lightning {
            hash,
            msats: t.amount.get(),
            reversed: false,
        },
        TransferKey::Onchain(OutPoint { txid, vout }) => ReportSpec::Onchain {
            txid,
            vout,
            address: address.into(),
            sats: t.amount.get() / MSATS_PER_SAT,
            confirmations: t.confirmations,
            rbf: t.rbf,
            reversed: false,
        },
    })
}

pub(crate) fn msats_for(
    model: &ReferenceSession,
    p: Option<&crate::testkit::model::ModelPayment>,
    amount: Amount,
) -> u64 {
    let Some(p) = p else { return 1_000_000 };
    let t = p.target_msats();
    let v = match amount {
        Amount::Exact => t,
        Amount::Partial { permille } => (t * u128::from(permille) / 1000).max(1),
        Amount::Over { permille } => t + t * u128::from(permille) / 1000 + 1,
        Amount::OneLess => t.saturating_sub(1).max(1),
        Amount::Tiny { msats } => u128::from(msats),
        Amount::Threshold { short_by_one } => {
            let received = model.received_credit_minor();
            let need = model.threshold_minor().saturating_sub(received).max(1);
            let m = need.saturating_mul(t).div_ceil(p.due_minor().max(1));
            if short_by_one {
                m.saturating_sub(1).max(1)
            } else {
                m
            }
        }
    };
    u64::try_from(v).unwrap_or(u64::MAX)
}

impl<I: Integration> Harness<I> {
    /// Applies a command to both sides and compares the outcomes; on error (or a no-op),
    /// checks that the session did not change.
    fn apply(
        &mut self,
        what: String,
        integration: impl FnOnce(&mut I) -> Outcome,
        model: impl FnOnce(&mut ReferenceSession) -> Outcome,
    ) -> Result<Outcome, Mismatch> {
        let before = self.snapshot()?;
        let mut next = self.model.clone();
        let expected = model(&mut next);
        let got = integration(&mut self.integration);
        self.log.push(format!("{what} -> {got:?}"));
        self.last = Some(got.clone());
        same("outcome", &expected, &got)?;
        match &got {
            Ok(events) => {
                if next.version() == self.model.version() {
                    // A command the model says changes nothing must leave the session equal.
                    same("events of a command that changes nothing", 0, events.len())?;
                    self.unchanged(&what, &before)?;
                }
                self.model = next;
                self.events.extend(events.iter().cloned());
            }
            Err(_) => self.unchanged(&what, &before)?,
        }
        Ok(got)
    }

    fn record(&mut self, report: ReportSpec, now: OffsetDateTime) -> Result<Outcome, Mismatch> {
        let transfer = report.to_transfer_report();
        let what = format!(
            "record {report:?} at +{} ms",
            unix_ms(now) - unix_ms(start_time())
        );
        let for_model = report.clone();
        let out = self.apply(
            what,
            |i| i.record_transfer(transfer, now),
            |m| m.record(&for_model, now),
        )?;
        if out.is_ok() {
            self.accepted.push(report);
        }
        Ok(out)
    }

    /// Computes the next quote on both sides and, if allowed, issues it; returns the error
    /// it was refused with, if any.
    fn quote(&mut self, rate: RateSpec, now: OffsetDateTime) -> Result<Option<Error>, Mismatch> {
        let n = number(self.model.payments().len()).saturating_add(1);
        let id = payment_id(n);
        let exchange_rate = rate
            .exchange_rate(self.spec.currency, self.spec.target_currency, now)
            .map_err(|e| Mismatch::new("the exchange rate", rate, e))?;
        let before = self.snapshot()?;
        let expected = self.model.next_quote(&rate, now);
        let got = self.integration.next_quote(id, exchange_rate, now);
        self.unchanged("next_quote", &before)?;
        match (expected, got) {
            (Err(e), Err(g)) => {
                self.log.push(format!("quote {n} at {rate} -> {g:?}"));
                same("outcome of next_quote", &e, &g)?;
                self.last = Some(Err(g.clone()));
                Ok(Some(g))
            }
            (Ok(q), Ok(terms)) => {
                same("quote.payment_id", id, terms.payment_id())?;
                same(
                    "quote.due",
                    self.model.decimal(q.due_minor),
                    Some(terms.due()),
                )?;
                same("quote.target", q.target, terms.target())?;
                same(
                    "quote.target_msats",
                    u128::from(q.target.get()) * u128::from(MSATS_PER_SAT),
                    u128::from(terms.target_msats().get()),
                )?;
                same("quote.rate", rate.to_decimal(), terms.rate().rate())?;
                same("quote.issued_at", q.issued_at, terms.issued_at())?;
                same("quote.expires_at", q.expires_at, terms.expires_at())?;
                let request = request_for(&self.spec, &terms, n);
                let for_model = request.clone();
                let what = format!(
                    "issue quote {n} at {rate}: due {} minor units, {} sats",
                    q.due_minor,
                    q.target.get()
                );
                let out = self.apply(
                    what,
                    |i| i.issue_quote(terms, request, now),
                    |m| m.issue_quote(id, &rate, &for_model, now),
                )?;
                Ok(out.err())
            }
            (e, g) => Err(Mismatch::new("outcome of next_quote", e, g)),
        }
    }

    /// A known transfer, as the report that would repeat its first one (with its current
    /// confirmations and RBF signal, not reversed).
    fn pick_known(&self, pick: Pick) -> Option<ReportSpec> {
        known_report(&self.model, pick, ADDRESS)
    }

    fn next_txid(&mut self) -> Txid {
        let tx = txid(self.next_tx);
        self.next_tx = self.next_tx.wrapping_add(1);
        tx
    }

    /// `Ok` if `got` is `want`, naming the command's expectation otherwise.
    fn expect(what: &str, want: Outcome, got: &Outcome) -> Result<(), Mismatch> {
        same(what, &want, got)
    }

    pub(super) fn apply_command(
        &mut self,
        command: &Command,
        before: &CheckoutSession,
    ) -> Result<(), Mismatch> {
        let now = self.now;
        match command {
            Command::IssueQuote(rate) => {
                self.quote(*rate, now)?;
            }
            Command::PayLightning { quote, amount } => {
                let n = self.model.payments().len();
                // The last slot (and a session without quotes) means the latest quote.
                let index = (n > 0).then(|| quote.index(n + 1).min(n - 1));
                let payment = index.and_then(|k| self.model.payments().get(k));
                let hash = payment.and_then(|p| p.invoice()).unwrap_or_else(|| {
                    invoice_hash(index.map_or(1, |k| number(k).saturating_add(1)))
                });
                let msats = msats_for(&self.model, payment, *amount);
                let _ = self.record(
                    ReportSpec::Lightning {
                        hash,
                        msats,
                        reversed: false,
                    },
                    now,
                )?;
            }
            Command::PayOnchain {
                amount,
                confirmations,
                rbf,
                vout,
                reversed,
            } => {
                let payment = self.model.onchain_payment_at(now);
                let sats = msats_for(&self.model, payment, *amount)
                    .div_ceil(MSATS_PER_SAT)
                    .max(1);
                let txid = self.next_txid();
                let _ = self.record(
                    ReportSpec::Onchain {
                        txid,
                        vout: *vout,
                        address: ADDRESS.into(),
                        sats,
                        confirmations: *confirmations,
                        rbf: *rbf,
                        reversed: *reversed,
                    },
                    now,
                )?;
            }
            Command::Confirm { transfer, more } => {
                if let Some(report) = self.pick_known(*transfer).and_then(|r| r.confirmed(*more)) {
                    let _ = self.record(report, now)?;
                }
            }
            Command::ReportFewerConfirmations { transfer } => {
                if let Some(mut report) = self.pick_known(*transfer) {
                    if let ReportSpec::Onchain { confirmations, .. } = &mut report {
                        *confirmations = confirmations.saturating_sub(1);
                    }
                    let out = self.record(report, now)?;
                    Self::expect("fewer confirmations change nothing", Ok(Vec::new()), &out)?;
                    self.unchanged("fewer confirmations", before)?;
                }
            }
            Command::Reverse { transfer } => {
                if let Some(report) = self.pick_known(*transfer) {
                    let _ = self.record(report.reversed(), now)?;
                }
            }
            Command::Duplicate { report } => {
                if !self.accepted.is_empty() {
                    let report = self.accepted[report.index(self.accepted.len())].clone();
                    let out = self.record(report, now)?;
                    Self::expect("a replayed report returns no events", Ok(Vec::new()), &out)?;
                    self.unchanged("a replayed report", before)?;
                }
            }
            Command::Report(report) => {
                let _ = self.record(report.clone(), now)?;
            }
            Command::AdvanceTime { millis } => {
                self.now = later(now, i64::from(*millis))?;
                self.log.push(format!("advance {millis} ms"));
            }
            Command::ToQuoteExpiry { offset_millis } => {
                if let Some(p) = self.model.payments().last() {
                    let t = later(p.expires_at(), i64::from(*offset_millis))?;
                    if t > now {
                        self.now = t;
                        self.log
                            .push(format!("to quote expiry {offset_millis:+} ms"));
                    }
                }
            }
            Command::Expire => {
                let _ = self.apply("expire".into(), |i| i.expire_quotes(now), |m| m.expire(now))?;
            }
            Command::Update(spec) => {
                let update = spec.to_update();
                let _ = self.apply(
                    format!("update {spec:?}"),
                    |i| i.update(&update, now),
                    |m| m.update(spec, now),
                )?;
            }
            Command::Deactivate => {
                let _ = self.apply(
                    "deactivate".into(),
                    |i| i.deactivate(now),
                    |m| m.deactivate(now),
                )?;
            }
            Command::ResolveFlag {
                kind,
                permille,
                refunded,
            } => {
                let unresolved = self.model.unresolved(*kind).get();
                let amount = if *permille > 1000 {
                    unresolved.saturating_add(1)
                } else {
                    let share = u128::from(unresolved) * u128::from(*permille) / 1000;
                    u64::try_from(share).unwrap_or(u64::MAX)
                };
                let resolution = if *refunded {
                    FlagResolution::refunded(*kind, Msats::new(amount), "re_1")
                } else {
                    FlagResolution::accepted(*kind, Msats::new(amount))
                };
                let _ = self.apply(
                    format!(
                        "resolve {} msat of {} ({})",
                        amount,
                        kind.as_str(),
                        if *refunded { "refunded" } else { "accepted" }
                    ),
                    |i| i.resolve_flag(&resolution, now),
                    |m| m.resolve(*kind, amount, *refunded, now),
                )?;
            }
            Command::MismatchedAmount { transfer, extra } => {
                if let Some(mut report) = self.pick_known(*transfer) {
                    let first = report.msats();
                    match &mut report {
                        ReportSpec::Lightning { msats, .. } => {
                            *msats = msats.saturating_add(u64::from(*extra))
                        }
                        ReportSpec::Onchain { sats, .. } => {
                            *sats = sats.saturating_add(u64::from(*extra))
                        }
                    }
                    let again = report.msats();
                    let out = self.record(report, now)?;
                    if let (Ok(first), Ok(again)) = (u64::try_from(first), u64::try_from(again))
                        && first != again
                    {
                        Self::expect(
                            "a known transfer with another amount is refused",
                            Err(Error::TransferAmountMismatch { first, again }),
                            &out,
                        )?;
                    }
                }
            }
            Command::KnownTransferToWrongAddress { transfer } => {
                if let Some(ReportSpec::Onchain {
                    txid,
                    vout,
                    sats,
                    confirmations,
                    rbf,
                    ..
                }) = self.pick_known(*transfer)
                {
                    let out = self.record(
                        ReportSpec::Onchain {
                            txid,
                            vout,
                            address: WRONG_ADDRESS.into(),
                            sats,
                            confirmations: confirmations.saturating_add(1),
                            rbf,
                            reversed: false,
                        },
                        now,
                    )?;
                    Self::expect(
                        "a known transfer to another address is refused",
                        Err(Error::UnknownPaymentRequest),
                        &out,
                    )?;
                }
            }
            Command::UnknownInvoice => {
                let out = self.record(
                    ReportSpec::Lightning {
                        hash: invoice_hash(999_999),
                        msats: 1000,
                        reversed: false,
                    },
                    now,
                )?;
                let want = if self.spec.lightning {
                    Error::UnknownPaymentRequest
                } else {
                    Error::MethodNotEnabled("lightning")
                };
                Self::expect(
                    "a payment to an unknown invoice is refused",
                    Err(want),
                    &out,
                )?;
            }
            Command::UnknownAddress => {
                let txid = self.next_txid();
                let out = self.record(
                    ReportSpec::Onchain {
                        txid,
                        vout: 0,
                        address: WRONG_ADDRESS.into(),
                        sats: 1000,
                        confirmations: 1,
                        rbf: false,
                        reversed: false,
                    },
                    now,
                )?;
                let want = if self.spec.onchain {
                    Error::UnknownPaymentRequest
                } else {
                    Error::MethodNotEnabled("onchain")
                };
                Self::expect(
                    "a payment to an unknown address is refused",
                    Err(want),
                    &out,
                )?;
            }
            Command::ZeroAmount => {
                let out = self.record(
                    ReportSpec::Lightning {
                        hash: invoice_hash(1),
                        msats: 0,
                        reversed: false,
                    },
                    now,
                )?;
                Self::expect(
                    "a report of nothing is refused",
                    Err(Error::AmountNotPositive),
                    &out,
                )?;
            }
            Command::ClockBackwards(which) => {
                let modified = self.model.modified();
                let past = later(modified, -1)?;
                let want = Error::ClockWentBackwards {
                    now_ms: unix_ms(past),
                    last_ms: unix_ms(modified),
                };
                let got = match which {
                    ClockCommand::Record => self
                        .record(
                            ReportSpec::Lightning {
                                hash: invoice_hash(1),
                                msats: 1000,
                                reversed: false,
                            },
                            past,
                        )?
                        .err(),
                    ClockCommand::Deactivate => self
                        .apply(
                            "deactivate (clock backwards)".into(),
                            |i| i.deactivate(past),
                            |m| m.deactivate(past),
                        )?
                        .err(),
                    ClockCommand::Update => {
                        let spec = UpdateSpec::Description(0);
                        let update = spec.to_update();
                        self.apply(
                            "update (clock backwards)".into(),
                            |i| i.update(&update, past),
                            |m| m.update(&spec, past),
                        )?
                        .err()
                    }
                    ClockCommand::Expire => self
                        .apply(
                            "expire (clock backwards)".into(),
                            |i| i.expire_quotes(past),
                            |m| m.expire(past),
                        )?
                        .err(),
                    ClockCommand::Quote => self.quote(RateSpec::from_parts(1000, 0), past)?,
                };
                same("a command in the past is refused", Some(want), got)?;
            }
        }
        Ok(())
    }
}
