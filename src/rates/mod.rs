//! The exchange-rate port, and the sources shipped with the crate: a fixed rate, a
//! fallback chain, a staleness limit, a spread and the median of several sources with an
//! outlier guard; with the feature `rates-live`, exchanges' public tickers kept fresh in
//! the background ([`live`]).
//!
//! A rate source is synchronous and should answer from a cache (refresh it in the
//! background in your application): quoting must not wait on an exchange's API. A
//! missing or stale rate is always an error, never a silent default.

use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::money::{Currency, ExchangeRate, TargetCurrency};

#[cfg(feature = "rates-live")]
pub mod live;
mod median;

/// The examples of `docs/rates.md`, compiled as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/rates.md")]
pub struct RatesGuide;

pub use median::MedianRates;

/// Gives the rate for a currency pair.
pub trait RateSource: Send + Sync {
    /// The current rate for `base → target`, as known at `now`.
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError>;

    /// Whether [`rate`](Self::rate) returns without I/O (fixed rates, a cache refreshed in
    /// the background): see [`Store::never_blocks`](crate::store::Store::never_blocks).
    /// Default `false`.
    fn never_blocks(&self) -> bool {
        false
    }
}

forward_port!(RateSource {
    fn rate(&self, base: Currency, target: TargetCurrency, now: OffsetDateTime) -> Result<ExchangeRate, RateError>;
    fn never_blocks(&self) -> bool;
});

/// Why no rate could be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateError {
    /// No source knows the pair (or every source of a chain failed with this).
    #[error("no exchange rate for {base}->{target}")]
    Unavailable {
        /// Base currency code.
        base: &'static str,
        /// Target currency code.
        target: &'static str,
    },
    /// The rate is older than the staleness limit (or dated too far in the future).
    #[error("exchange rate from {source_name} is {age_secs} s old, limit {limit_secs} s")]
    Stale {
        /// The source that gave it.
        source_name: String,
        /// Its age in seconds.
        age_secs: i64,
        /// The limit in seconds.
        limit_secs: i64,
    },
    /// The source gave a value the core refuses (zero, negative, out of exact range).
    #[error("the rate source gave an invalid rate: {0}")]
    Invalid(#[from] Error),
    /// Too few sources agree ([`MedianRates`]): fewer than a majority answered, or the
    /// answers are too far apart.
    #[error("{agreeing} of {sources} rate sources agree on {base}->{target}, {needed} needed")]
    Disagreement {
        /// Base currency code.
        base: &'static str,
        /// Target currency code.
        target: &'static str,
        /// How many sources were asked.
        sources: usize,
        /// How many gave a rate within the deviation limit of the median.
        agreeing: usize,
        /// How many must agree (a majority of `sources`).
        needed: usize,
    },
}

impl RateError {
    /// Whether asking again later may succeed: a missing or stale rate may be there once
    /// the source refreshes; an invalid one is a bug of the source.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Stale { .. } | Self::Disagreement { .. }
        )
    }
}

fn unavailable(base: Currency, target: TargetCurrency) -> RateError {
    RateError::Unavailable {
        base: base.code(),
        target: target.code(),
    }
}

/// Fixed rates, for tests, demos and prices pegged by the merchant. Rates are reported as
/// fetched at the time they are asked for.
#[derive(Debug, Clone, Default)]
pub struct FixedRates {
    rates: Vec<(Currency, TargetCurrency, Decimal)>,
}

impl FixedRates {
    /// No rates yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the rate for a pair: `rate` target units per base unit.
    pub fn with(mut self, base: Currency, target: TargetCurrency, rate: Decimal) -> Self {
        self.rates.retain(|(b, t, _)| !(*b == base && *t == target));
        self.rates.push((base, target, rate));
        self
    }
}

impl RateSource for FixedRates {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        let same = |b: Currency, t: TargetCurrency| b == base && t == target;
        if let Some((_, _, r)) = self.rates.iter().find(|(b, t, _)| same(*b, *t)) {
            return Ok(ExchangeRate::new(base, target, *r, "fixed", now)?);
        }
        // Bitcoin-denominated prices need no market rate.
        let identity = match (base, target) {
            (Currency::Sats, TargetCurrency::Sats) | (Currency::Btc, TargetCurrency::Btc) => {
                Some(Decimal::ONE)
            }
            (Currency::Btc, TargetCurrency::Sats) => {
                Some(Decimal::from(crate::money::SATS_PER_BTC))
            }
            (Currency::Sats, TargetCurrency::Btc) => Some(Decimal::new(1, 8)),
            _ => None,
        };
        match identity {
            Some(r) => Ok(ExchangeRate::new(base, target, r, "unit", now)?),
            None => Err(unavailable(base, target)),
        }
    }

    fn never_blocks(&self) -> bool {
        true
    }
}

/// Asks each source in turn and returns the first rate one gives.
#[derive(Default)]
pub struct FallbackRates {
    sources: Vec<Box<dyn RateSource>>,
}

impl FallbackRates {
    /// An empty chain (which always fails).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a source, asked after those already in the chain.
    pub fn or(mut self, source: impl RateSource + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }
}

impl std::fmt::Debug for FallbackRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FallbackRates({} sources)", self.sources.len())
    }
}

impl RateSource for FallbackRates {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        let mut last = unavailable(base, target);
        for s in &self.sources {
            match s.rate(base, target, now) {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// Refuses rates older than `max_age` (and rates from the future beyond it).
#[derive(Debug, Clone)]
pub struct MaxAge<R> {
    inner: R,
    max_age: Duration,
}

impl<R> MaxAge<R> {
    /// Wraps `inner`, refusing its rates once they are older than `max_age`.
    pub fn new(inner: R, max_age: Duration) -> Self {
        Self { inner, max_age }
    }
}

impl<R: RateSource> RateSource for MaxAge<R> {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        let r = self.inner.rate(base, target, now)?;
        let age = now - r.fetched_at();
        if age.abs() > self.max_age {
            return Err(RateError::Stale {
                source_name: r.source().to_owned(),
                age_secs: age.whole_seconds(),
                limit_secs: self.max_age.whole_seconds(),
            });
        }
        Ok(r)
    }
}

/// Adds a spread: quotes ask `percent` % more of the target per base unit, covering the
/// merchant's conversion costs and rate movement during the quote.
#[derive(Debug, Clone)]
pub struct Spread<R> {
    inner: R,
    percent: Decimal,
}

impl<R> Spread<R> {
    /// Wraps `inner` with a spread of `percent` (0 to 100).
    pub fn new(inner: R, percent: Decimal) -> Result<Self, Error> {
        if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
            return Err(Error::InvalidRate);
        }
        Ok(Self { inner, percent })
    }
}

impl<R: RateSource> RateSource for Spread<R> {
    fn rate(
        &self,
        base: Currency,
        target: TargetCurrency,
        now: OffsetDateTime,
    ) -> Result<ExchangeRate, RateError> {
        let r = self.inner.rate(base, target, now)?;
        let factor = Decimal::ONE + self.percent / Decimal::ONE_HUNDRED;
        let spread = r.rate().checked_mul(factor).ok_or(Error::InvalidRate)?;
        Ok(ExchangeRate::new(
            base,
            target,
            spread,
            format!("{}+{}%", r.source(), self.percent),
            r.fetched_at(),
        )?)
    }
}
