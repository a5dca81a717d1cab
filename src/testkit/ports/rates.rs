//! The rate-source suite: what every [`RateSource`] must do, whatever feeds it.

use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use super::fail;
use crate::money::{Currency, ExchangeRate, SATS_PER_BTC, TargetCurrency};
use crate::rates::{RateError, RateSource};

/// A rate source under test, with what it promises: the pairs it knows (each with a
/// reference rate to check its units against), a pair it does not know, and how old the
/// rates it gives may be.
#[derive(Debug)]
pub struct RateSubject<R> {
    source: R,
    now: OffsetDateTime,
    max_age: Duration,
    known: Vec<(Currency, TargetCurrency, Decimal)>,
    unknown: (Currency, TargetCurrency),
    tolerance: Decimal,
}

impl<R: RateSource> RateSubject<R> {
    /// `source`, asked at `now`, promising rates at most `max_age` old. Add the pairs it
    /// knows with [`knows`](Self::knows); the unknown pair is XTS (ISO 4217's code for
    /// testing) to SATS unless set with [`unknown`](Self::unknown).
    pub fn new(source: R, now: OffsetDateTime, max_age: Duration) -> Self {
        Self {
            source,
            now,
            max_age,
            known: Vec::new(),
            unknown: (
                Currency::Fiat(iso_currency::Currency::XTS),
                TargetCurrency::Sats,
            ),
            tolerance: Decimal::TWO,
        }
    }

    /// A pair the source knows, with a reference rate (target units per base unit, e.g.
    /// about 1,000 SATS per USD in 2026) its answer must be within the tolerance of.
    pub fn knows(mut self, base: Currency, target: TargetCurrency, reference: Decimal) -> Self {
        self.known.push((base, target, reference));
        self
    }

    /// A pair the source does not know.
    pub fn unknown(mut self, base: Currency, target: TargetCurrency) -> Self {
        self.unknown = (base, target);
        self
    }

    /// How far (as a factor, either way) a rate may be from its reference; 2 by default,
    /// wide enough for a volatile market and narrow enough to catch units off by 100 or by
    /// 10⁸ (BTC for sats) and inverted rates.
    pub fn tolerance(mut self, factor: Decimal) -> Self {
        self.tolerance = factor.max(Decimal::ONE);
        self
    }

    fn ask(
        &self,
        name: &str,
        base: Currency,
        target: TargetCurrency,
        at: OffsetDateTime,
    ) -> ExchangeRate {
        match self.source.rate(base, target, at) {
            Ok(rate) => rate,
            Err(e) => fail(
                name,
                format_args!("{}->{}: {e}", base.code(), target.code()),
            ),
        }
    }

    fn require_known(&self, name: &str) {
        if self.known.is_empty() {
            fail(
                name,
                "the subject names no pair the source knows (RateSubject::knows)",
            );
        }
    }
}

/// A pair the source does not know is an error, never a default rate.
pub fn check_rate_unknown_pair_is_an_error<R: RateSource>(subject: &RateSubject<R>) {
    let name = "check_rate_unknown_pair_is_an_error";
    let (base, target) = subject.unknown;
    match subject.source.rate(base, target, subject.now) {
        Err(
            RateError::Unavailable { .. }
            | RateError::Stale { .. }
            | RateError::Disagreement { .. },
        ) => {}
        Err(other) => fail(
            name,
            format_args!(
                "{}->{} failed with {other:?}; a pair the source does not know is RateError::Unavailable",
                base.code(),
                target.code()
            ),
        ),
        Ok(rate) => fail(
            name,
            format_args!(
                "gave {} ({}) for {}->{}, a pair it does not know: a source must fail, never fall back to a default",
                rate.rate(),
                rate.source(),
                base.code(),
                target.code()
            ),
        ),
    }
}

/// Every known pair is answered with a rate for that pair (not another one) that names its
/// source.
pub fn check_rate_answers_the_pair_asked<R: RateSource>(subject: &RateSubject<R>) {
    let name = "check_rate_answers_the_pair_asked";
    subject.require_known(name);
    for &(base, target, _) in &subject.known {
        let rate = subject.ask(name, base, target, subject.now);
        if rate.base() != base || rate.target() != target {
            fail(
                name,
                format_args!(
                    "asked {}->{}, got a rate for {}->{}",
                    base.code(),
                    target.code(),
                    rate.base().code(),
                    rate.target().code()
                ),
            );
        }
        if rate.source().trim().is_empty() {
            fail(
                name,
                format_args!(
                    "the rate for {}->{} names no source",
                    base.code(),
                    target.code()
                ),
            );
        }
    }
}

/// No rate is dated after the time it was asked at: a `fetched_at` in the future would
/// make a stale rate look fresh.
pub fn check_rate_not_dated_ahead<R: RateSource>(subject: &RateSubject<R>) {
    let name = "check_rate_not_dated_ahead";
    subject.require_known(name);
    for &(base, target, _) in &subject.known {
        let rate = subject.ask(name, base, target, subject.now);
        // Rates are kept to the millisecond.
        if rate.fetched_at() > crate::json::millis::truncate(subject.now) {
            fail(
                name,
                format_args!(
                    "the rate for {}->{} asked at {} is dated {}, in the future",
                    base.code(),
                    target.code(),
                    subject.now,
                    rate.fetched_at()
                ),
            );
        }
    }
}

/// Every rate given is at most the promised maximum age old, also when asked once the
/// source's last fetch has grown older than that (then it fails with
/// [`RateError::Stale`] or has fetched a new rate).
pub fn check_rate_is_fresh<R: RateSource>(subject: &RateSubject<R>) {
    let name = "check_rate_is_fresh";
    subject.require_known(name);
    let later = subject.now + subject.max_age + Duration::seconds(1);
    for &(base, target, _) in &subject.known {
        for at in [subject.now, later] {
            let rate = match subject.source.rate(base, target, at) {
                Ok(rate) => rate,
                Err(
                    RateError::Stale { .. }
                    | RateError::Unavailable { .. }
                    | RateError::Disagreement { .. },
                ) if at == later => {
                    continue;
                }
                Err(e) => fail(
                    name,
                    format_args!("{}->{} at {at}: {e}", base.code(), target.code()),
                ),
            };
            let age = at - rate.fetched_at();
            if age > subject.max_age {
                fail(
                    name,
                    format_args!(
                        "the rate for {}->{} asked at {at} was fetched at {}, {} s old; the source promises at most {} s",
                        base.code(),
                        target.code(),
                        rate.fetched_at(),
                        age.whole_seconds(),
                        subject.max_age.whole_seconds()
                    ),
                );
            }
        }
    }
}

/// Every known pair's rate is within the tolerance of its reference, neither above nor
/// below (catching inverted rates and units off by powers of ten), and a base known in
/// both SATS and BTC has rates 10⁸ apart.
pub fn check_rate_units_match_the_reference<R: RateSource>(subject: &RateSubject<R>) {
    let name = "check_rate_units_match_the_reference";
    subject.require_known(name);
    let mut answers = Vec::new();
    for &(base, target, reference) in &subject.known {
        let rate = subject.ask(name, base, target, subject.now).rate();
        let pair = format!("{}->{}", base.code(), target.code());
        if let Some(problem) = off_reference(rate, reference, subject.tolerance) {
            fail(
                name,
                format_args!("{pair} is {rate}, reference {reference}: {problem}"),
            );
        }
        answers.push((base, target, rate));
    }
    for &(base, target, rate) in &answers {
        let btc = answers.iter().find(|(b, t, _)| {
            *b == base && target == TargetCurrency::Sats && *t == TargetCurrency::Btc
        });
        if let Some(&(_, _, per_btc)) = btc {
            let as_sats = per_btc * Decimal::from(SATS_PER_BTC);
            if off_reference(rate, as_sats, subject.tolerance).is_some() {
                fail(
                    name,
                    format_args!(
                        "{0}->SATS is {rate} but {0}->BTC is {per_btc} ({as_sats} sats): the two targets disagree",
                        base.code()
                    ),
                );
            }
        }
    }
}

/// What is wrong with `rate` against `reference` (a factor `tolerance` either way), if
/// anything.
fn off_reference(rate: Decimal, reference: Decimal, tolerance: Decimal) -> Option<String> {
    if reference <= Decimal::ZERO {
        return Some("the reference must be positive".into());
    }
    let ratio = rate.checked_div(reference)?;
    if ratio <= tolerance && ratio * tolerance >= Decimal::ONE {
        return None;
    }
    let inverted = rate
        .checked_mul(reference)
        .is_some_and(|p| p <= tolerance && p * tolerance >= Decimal::ONE);
    let sats_per_btc = Decimal::from(SATS_PER_BTC);
    let by_1e8 = [ratio * sats_per_btc, ratio / sats_per_btc]
        .iter()
        .any(|r| *r <= tolerance && *r * tolerance >= Decimal::ONE);
    let hint = if inverted {
        "it looks inverted (base units per target unit)".to_owned()
    } else if by_1e8 {
        "off by 10⁸ (BTC where sats are meant, or the reverse)".to_owned()
    } else if ratio > Decimal::ONE {
        format!("{}× too high (units?)", ratio.round_dp(2))
    } else {
        format!("{}× too low (units?)", (Decimal::ONE / ratio).round_dp(2))
    };
    Some(hint)
}

/// Runs every check of the rate-source suite on `subject`.
pub fn run_rate_source<R: RateSource>(subject: &RateSubject<R>) {
    check_rate_unknown_pair_is_an_error(subject);
    check_rate_answers_the_pair_asked(subject);
    check_rate_not_dated_ahead(subject);
    check_rate_is_fresh(subject);
    check_rate_units_match_the_reference(subject);
}
