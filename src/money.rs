//! Exact money: currencies, decimal amounts, integer sats and msats, exchange rates.
//!
//! # Rounding rules
//!
//! There are exactly three places where money is rounded, and each rounds in the
//! merchant's favour by less than one unit of the smaller side:
//!
//! 1. **Quoting** (base currency → sats): `target = ceil(due × rate)` in whole sats. A quote
//!    always covers its due amount; the customer pays at most 1 sat more than the exact
//!    value. Whole sats (not msats) because on-chain outputs cannot carry msats.
//! 2. **Crediting** (msats received on a quote → base currency):
//!    `credit = floor(due × received / target)` in the base currency's minor units. Paying
//!    exactly a quote's target credits exactly its due amount, so the sub-sat round-up of
//!    rule 1 never shows up as an overpayment.
//! 3. **Tolerance**: the paid threshold is `amount − floor(amount × tolerance / 100)` in minor
//!    units: the allowance is rounded down, so the threshold is never below what the stated
//!    percentage allows.
//!
//! Amounts given by callers are never rounded: an amount with more decimals than its
//! currency allows is an error ([`Error::TooManyDecimals`]).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::error::Error;

/// Millisatoshis per satoshi.
pub const MSATS_PER_SAT: u64 = 1_000;
/// Satoshis per bitcoin.
pub const SATS_PER_BTC: u64 = 100_000_000;
/// The most bitcoin that will ever exist, in sats: no amount in this crate may exceed it.
pub const MAX_MONEY_SATS: u64 = 21_000_000 * SATS_PER_BTC;

/// An amount of millisatoshis (1/1000 sat), the unit Lightning settles in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Msats(u64);

/// An amount of whole satoshis, the unit on-chain outputs carry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Sats(u64);

impl Msats {
    /// Zero msats.
    pub const ZERO: Self = Self(0);

    /// Wraps a raw msat count. Use [`Msats::checked`] for values from outside.
    pub const fn new(msats: u64) -> Self {
        Self(msats)
    }

    /// Wraps a raw msat count after checking it does not exceed 21 million BTC.
    pub fn checked(msats: u64) -> Result<Self, Error> {
        if msats > MAX_MONEY_SATS * MSATS_PER_SAT {
            return Err(Error::AmountTooLarge);
        }
        Ok(Self(msats))
    }

    /// The raw msat count.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whole sats, rounded down: the part below one sat is dropped.
    pub const fn to_sats_floor(self) -> Sats {
        Sats(self.0 / MSATS_PER_SAT)
    }

    /// Adds, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// Subtracts, or `None` if `other` is larger.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// Subtracts, stopping at zero.
    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// Adds, stopping at the largest amount.
    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// The amount in BTC, exactly (11 decimals at most).
    pub fn to_btc(self) -> Decimal {
        Decimal::from(self.0) / Decimal::from(SATS_PER_BTC * MSATS_PER_SAT)
    }
}

impl Sats {
    /// Zero sats.
    pub const ZERO: Self = Self(0);

    /// Wraps a raw sat count. Use [`Sats::checked`] for values from outside.
    pub const fn new(sats: u64) -> Self {
        Self(sats)
    }

    /// Wraps a raw sat count after checking it does not exceed 21 million BTC.
    pub fn checked(sats: u64) -> Result<Self, Error> {
        if sats > MAX_MONEY_SATS {
            return Err(Error::AmountTooLarge);
        }
        Ok(Self(sats))
    }

    /// The raw sat count.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The same amount in msats. Saturates for counts no real amount reaches (a `Sats`
    /// made with [`Sats::new`] is unchecked), and such an amount is then refused where it is
    /// checked ([`Msats::checked`]).
    pub const fn to_msats(self) -> Msats {
        Msats(self.0.saturating_mul(MSATS_PER_SAT))
    }

    /// The amount in BTC, exactly (8 decimals at most).
    pub fn to_btc(self) -> Decimal {
        Decimal::from(self.0) / Decimal::from(SATS_PER_BTC)
    }
}

impl fmt::Display for Msats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} msat", self.0)
    }
}

impl fmt::Display for Sats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sat", self.0)
    }
}

/// The currency a session is priced in: an ISO 4217 fiat currency, BTC or SATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Currency {
    /// An ISO 4217 currency with a defined number of minor units (USD, EUR, JPY, …).
    Fiat(iso_currency::Currency),
    /// Bitcoin, with 8 decimals.
    Btc,
    /// Satoshis, whole numbers only.
    Sats,
}

impl Currency {
    /// Parses a currency code (`"USD"`, `"BTC"`, `"SATS"`; case-sensitive like ISO 4217).
    pub fn from_code(code: &str) -> Result<Self, Error> {
        match code {
            "BTC" => Ok(Self::Btc),
            "SATS" => Ok(Self::Sats),
            other => match iso_currency::Currency::from_code(other) {
                // Codes without minor units (gold, SDR, testing codes) are not prices.
                Some(c) if c.exponent().is_some() => Ok(Self::Fiat(c)),
                _ => Err(Error::UnsupportedCurrency {
                    code: truncate_for_error(other),
                }),
            },
        }
    }

    /// The currency code as used in JSON.
    pub fn code(self) -> &'static str {
        match self {
            Self::Fiat(c) => c.code(),
            Self::Btc => "BTC",
            Self::Sats => "SATS",
        }
    }

    /// Number of decimals an amount in this currency may have.
    pub fn scale(self) -> u32 {
        match self {
            Self::Fiat(c) => u32::from(c.exponent().unwrap_or(0)),
            Self::Btc => 8,
            Self::Sats => 0,
        }
    }

    /// Whether this is a fiat currency (the default quote ttl depends on it).
    pub fn is_fiat(self) -> bool {
        matches!(self, Self::Fiat(_))
    }

    /// Checks that `value` is a valid positive amount in this currency, without rounding.
    pub fn validate_amount(self, value: Decimal) -> Result<Decimal, Error> {
        if value <= Decimal::ZERO {
            return Err(Error::AmountNotPositive);
        }
        let normalized = value.normalize();
        if normalized.scale() > self.scale() {
            return Err(Error::TooManyDecimals {
                currency: self.code(),
                max: self.scale(),
            });
        }
        let minor = to_minor_units(normalized, self.scale()).ok_or(Error::AmountTooLarge)?;
        // A price above 21 million BTC can never be paid.
        let too_big = match self {
            Self::Btc => minor > i128::from(MAX_MONEY_SATS),
            Self::Sats => minor > i128::from(MAX_MONEY_SATS),
            Self::Fiat(_) => false,
        };
        if too_big {
            return Err(Error::AmountTooLarge);
        }
        let mut v = normalized;
        v.rescale(self.scale());
        // rescale saturates when the digits do not fit: such an amount has no exact value
        // in minor units, so it is refused rather than silently changed.
        if v.scale() != self.scale() || v != normalized {
            return Err(Error::AmountTooLarge);
        }
        Ok(v)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Self::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// The currency a customer pays in: SATS or BTC (both settle as bitcoin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TargetCurrency {
    /// Satoshis (the default, as at Speed).
    #[default]
    #[serde(rename = "SATS")]
    Sats,
    /// Bitcoin.
    #[serde(rename = "BTC")]
    Btc,
}

impl TargetCurrency {
    /// The currency code as used in JSON.
    pub fn code(self) -> &'static str {
        match self {
            Self::Sats => "SATS",
            Self::Btc => "BTC",
        }
    }

    /// Sats in one unit of this currency.
    fn sats_per_unit(self) -> Decimal {
        match self {
            Self::Sats => Decimal::ONE,
            Self::Btc => Decimal::from(SATS_PER_BTC),
        }
    }

    /// Expresses msats in this currency, exactly (as Speed's `target_amount`).
    pub fn from_msats(self, msats: Msats) -> Decimal {
        match self {
            Self::Sats => Decimal::from(msats.get()) / Decimal::from(MSATS_PER_SAT),
            Self::Btc => msats.to_btc(),
        }
        .normalize()
    }
}

/// An exchange rate: how many units of the target currency one unit of the base buys,
/// where it came from and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeRate {
    base: Currency,
    target: TargetCurrency,
    #[serde(with = "crate::json::decimal_number")]
    rate: Decimal,
    source: String,
    #[serde(with = "crate::json::millis")]
    fetched_at: OffsetDateTime,
}

impl ExchangeRate {
    /// A rate of `rate` target units per base unit. The rate must be positive.
    pub fn new(
        base: Currency,
        target: TargetCurrency,
        rate: Decimal,
        source: impl Into<String>,
        fetched_at: OffsetDateTime,
    ) -> Result<Self, Error> {
        if rate <= Decimal::ZERO {
            return Err(Error::InvalidRate);
        }
        Ok(Self {
            base,
            target,
            rate: rate.normalize(),
            source: source.into(),
            fetched_at: crate::json::millis::truncate(fetched_at),
        })
    }

    /// The base currency.
    pub fn base(&self) -> Currency {
        self.base
    }

    /// The target currency.
    pub fn target(&self) -> TargetCurrency {
        self.target
    }

    /// Target units per base unit.
    pub fn rate(&self) -> Decimal {
        self.rate
    }

    /// Name of the source (exchange, oracle, "fixed").
    pub fn source(&self) -> &str {
        &self.source
    }

    /// When the source produced the rate.
    pub fn fetched_at(&self) -> OffsetDateTime {
        self.fetched_at
    }

    /// Refuses a price worth less than one sat at this rate (before any rounding).
    pub fn check_at_least_one_sat(&self, base_amount: Decimal) -> Result<(), Error> {
        let exact = base_amount
            .checked_mul(self.rate)
            .and_then(|v| v.checked_mul(self.target.sats_per_unit()))
            .ok_or(Error::AmountTooLarge)?;
        if exact < Decimal::ONE {
            return Err(Error::AmountBelowOneSat);
        }
        Ok(())
    }

    /// Converts a base amount to whole sats, rounding up (rule 1 of the module docs).
    pub fn quote_sats(&self, base_amount: Decimal) -> Result<Sats, Error> {
        let exact = base_amount
            .checked_mul(self.rate)
            .and_then(|v| v.checked_mul(self.target.sats_per_unit()))
            .ok_or(Error::AmountTooLarge)?;
        let rounded = exact.ceil();
        let sats = u64::try_from(rounded).map_err(|_| Error::AmountTooLarge)?;
        if sats == 0 {
            // A price worth less than one sat cannot be paid on any rail.
            return Err(Error::AmountBelowOneSat);
        }
        Sats::checked(sats)
    }
}

/// `value` in minor units of a currency with `scale` decimals, if it is an exact multiple.
pub(crate) fn to_minor_units(value: Decimal, scale: u32) -> Option<i128> {
    let mut v = value.normalize();
    if v.scale() > scale {
        return None;
    }
    v.rescale(scale);
    // mantissa of a value with exactly `scale` decimals is its count of minor units.
    Some(v.mantissa())
}

/// A count of minor units back to a decimal with `scale` decimals.
pub(crate) fn from_minor_units(minor: i128, scale: u32) -> Decimal {
    Decimal::from_i128_with_scale(minor, scale)
}

/// Keeps error messages short whatever the caller passed in.
pub(crate) fn truncate_for_error(s: &str) -> String {
    s.chars().take(16).collect()
}

/// `floor(a × b / c)` without overflow for `a`, `b`, `c` < 2^127, or `None` if the result does not fit.
pub(crate) fn mul_div_floor(a: u128, b: u128, c: u128) -> Option<u128> {
    if c == 0 {
        return None;
    }
    // Fast path: everyday amounts multiply within 64 bits, and 64-bit division is far
    // cheaper than 128-bit.
    if let (Ok(a), Ok(b), Ok(c)) = (u64::try_from(a), u64::try_from(b), u64::try_from(c))
        && let Some(p) = a.checked_mul(b)
    {
        return Some(u128::from(p / c));
    }
    let (q, r) = (a / c, a % c);
    // a×b/c = q×b + r×b/c, and r×b stays below c×b.
    q.checked_mul(b)?.checked_add(r.checked_mul(b)? / c)
}

/// `ceil(a × b / c)`, or `None` on overflow.
pub(crate) fn mul_div_ceil(a: u128, b: u128, c: u128) -> Option<u128> {
    let floor = mul_div_floor(a, b, c)?;
    // The result is exact iff floor × c == a × b; a×b may overflow, so compare the
    // remainder instead: a×b = (a/c)×b×c + (a%c)×b, whose remainder by c is (a%c)×b mod c.
    let remainder = (a % c).checked_mul(b)? % c;
    if remainder == 0 {
        Some(floor)
    } else {
        floor.checked_add(1)
    }
}
