//! The median of several rate sources, with a guard against an outlier.

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::{RateError, RateSource};
use crate::money::{Currency, ExchangeRate, TargetCurrency};

/// Asks every source and quotes the median of the rates that agree with it.
///
/// A rate further than `max_deviation` percent from the median of all answers is an
/// outlier and is left out; the rate given is the median of the rest, provided they are a
/// majority of *all* sources (answers, errors and outliers alike). Otherwise the pair fails
/// with [`RateError::Disagreement`]: a quote is never made from a minority, however loud.
/// The rate names every source it came from (`median(coinbase,kraken,bitstamp)`) and is
/// dated at the oldest of their fetch times, so a staleness limit applies to the oldest.
pub struct MedianRates {
    sources: Vec<Box<dyn RateSource>>,
    max_deviation: Decimal,
}

impl std::fmt::Debug for MedianRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MedianRates")
            .field("sources", &self.sources.len())
            .field("max_deviation", &self.max_deviation)
            .finish()
    }
}

impl MedianRates {
    /// No sources yet, with outliers beyond `max_deviation` percent of the median left out
    /// (1 to 5 is usual for BTC prices across large exchanges).
    pub fn new(max_deviation: Decimal) -> Self {
        Self {
            sources: Vec::new(),
            max_deviation: max_deviation.max(Decimal::ZERO),
        }
    }

    /// Adds a source.
    pub fn with(mut self, source: impl RateSource + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }
}

impl RateSource for MedianRates {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        let answers: Vec<ExchangeRate> = self
            .sources
            .iter()
            .filter_map(|s| s.rate(base, target, now).ok())
            .filter(|r| r.base() == base && r.target() == target)
            .collect();
        let needed = self.sources.len() / 2 + 1;
        let disagreement = |agreeing: usize| RateError::Disagreement {
            base: base.code(),
            target: target.code(),
            sources: self.sources.len(),
            agreeing,
            needed,
        };
        let all: Vec<Decimal> = answers.iter().map(ExchangeRate::rate).collect();
        let Some(middle) = median(all) else {
            return Err(disagreement(0));
        };
        let limit = middle * self.max_deviation / Decimal::ONE_HUNDRED;
        let agreeing: Vec<&ExchangeRate> = answers
            .iter()
            .filter(|r| (r.rate() - middle).abs() <= limit)
            .collect();
        if agreeing.len() < needed {
            return Err(disagreement(agreeing.len()));
        }
        let rate =
            median(agreeing.iter().map(|r| r.rate()).collect()).ok_or_else(|| disagreement(0))?;
        let fetched_at = agreeing.iter().map(|r| r.fetched_at()).min().unwrap_or(now);
        let names: Vec<&str> = agreeing.iter().map(|r| r.source()).collect();
        Ok(ExchangeRate::new(
            base,
            target,
            rate,
            format!("median({})", names.join(",")),
            fetched_at,
        )?)
    }
}

/// The median: the middle value, or the mean of the two middle values (exact: a decimal
/// halved has at most one more digit).
fn median(mut values: Vec<Decimal>) -> Option<Decimal> {
    values.sort();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => values.get(n / 2).copied(),
        _ => {
            let (a, b) = (values.get(n / 2 - 1)?, values.get(n / 2)?);
            a.checked_add(*b).map(|s| s / Decimal::TWO)
        }
    }
}
