//! JSON helpers: decimal amounts as exact JSON numbers and Unix-millisecond timestamps.
//!
//! Decimals are written as JSON numbers (`450.5`) and read from a number or a string
//! without ever passing through binary floating point: the number's text is captured with
//! `serde_json::value::RawValue` and parsed by `rust_decimal`. This works with
//! `serde_json::from_str`/`from_slice`/`from_reader`, which is how this crate's JSON is
//! meant to be read.

use crate::error::Error;

/// `Decimal` as an exact JSON number.
pub mod decimal_number {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    /// Writes the decimal as a JSON number, exactly as `Decimal` prints it.
    pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let value = value.normalize();
        // A whole number prints as the integer it is (amounts in sats, rates, most fiat
        // amounts): written directly, without printing it into a string and having
        // serde_json parse that string back to check it is JSON (about a fifth of the
        // time a session's and its payments' JSON took).
        if value.scale() == 0
            && let Ok(whole) = i64::try_from(value.mantissa())
        {
            return s.serialize_i64(whole);
        }
        let raw = RawValue::from_string(value.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    /// Reads a JSON number (or a string holding one) into a decimal, exactly: a number a
    /// `Decimal` cannot hold exactly is refused ([`Error::InexactDecimal`](crate::Error)),
    /// never rounded.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let raw = <Box<RawValue>>::deserialize(d)?;
        super::exact_decimal(raw.get()).map_err(super::refuse)
    }
}

/// Reads the text of a JSON number, or of a string holding one, into the decimal it
/// denotes, or refuses it: [`Error::NotADecimal`] for anything but a number,
/// [`Error::InexactDecimal`] for a number a `Decimal` cannot hold exactly (more than 28
/// decimal places after dropping trailing zeros, or a coefficient beyond 96 bits).
///
/// `rust_decimal`'s own parser rounds such numbers (`9.99…9` with 31 nines becomes 10);
/// for amounts and rates that is a silent change of what the caller wrote.
pub(crate) fn exact_decimal(text: &str) -> Result<rust_decimal::Decimal, Error> {
    use rust_decimal::Decimal;
    let text = text.trim();
    let unquoted = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner,
        None => text,
    };
    let not_a_decimal = || Error::NotADecimal {
        got: crate::money::truncate_for_error(text),
    };
    let inexact = || Error::InexactDecimal {
        number: crate::money::truncate_for_error(unquoted),
    };
    let (negative, body) = match unquoted.as_bytes().first() {
        Some(b'-') => (true, &unquoted[1..]),
        Some(b'+') => (false, &unquoted[1..]),
        _ => (false, unquoted),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() && frac_part.is_empty()
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(not_a_decimal());
    }
    // The exponent: digits with an optional sign; a huge one is out of range either way.
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) {
                return Err(not_a_decimal());
            }
            match e.parse::<i64>() {
                Ok(v) if v.unsigned_abs() <= 1_000 => v,
                // Only zero survives an exponent this large; anything else cannot fit.
                _ if int_part.bytes().chain(frac_part.bytes()).all(|b| b == b'0') => 0,
                _ => return Err(inexact()),
            }
        }
    };
    // The coefficient's digits, without the leading zeros and with the scale they imply.
    let digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(Decimal::ZERO);
    }
    let mut scale = i64::try_from(frac_part.len()).map_err(|_| inexact())? - exponent;
    let mut digits = digits.to_owned();
    // Trailing zeros of the fraction say nothing: dropping them is exact.
    while scale > 0 && digits.ends_with('0') {
        digits.pop();
        scale -= 1;
    }
    if scale < 0 {
        let zeros = usize::try_from(-scale).map_err(|_| inexact())?;
        if digits.len() + zeros > 29 {
            return Err(inexact());
        }
        digits.extend(std::iter::repeat_n('0', zeros));
        scale = 0;
    }
    let scale = u32::try_from(scale).map_err(|_| inexact())?;
    if digits.len() > 29 || scale > 28 {
        return Err(inexact());
    }
    let coefficient: i128 = digits.parse().map_err(|_| inexact())?;
    let signed = if negative { -coefficient } else { coefficient };
    // Beyond 96 bits of coefficient `Decimal` cannot hold the number at all.
    Decimal::try_from_i128_with_scale(signed, scale).map_err(|_| inexact())
}

/// Reads `T` borrowing from `text` (raw values, field maps), with [`read`]'s errors.
pub(crate) fn read_borrowed<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, Error> {
    REFUSED.with(|slot| slot.borrow_mut().take());
    serde_json::from_str(text).map_err(|e| {
        REFUSED
            .with(|slot| slot.borrow_mut().take())
            .unwrap_or_else(|| Error::Json(e.to_string()))
    })
}

thread_local! {
    /// The typed error behind the last [`refuse`] on this thread, for [`read`].
    static REFUSED: std::cell::RefCell<Option<Error>> = const { std::cell::RefCell::new(None) };
}

/// A deserializer error for `error` that [`read`] turns back into `error` itself (serde
/// carries only its message; the typed value waits here, on the deserializing thread).
pub(crate) fn refuse<E: serde::de::Error>(error: Error) -> E {
    let message = error.to_string();
    REFUSED.with(|slot| *slot.borrow_mut() = Some(error));
    E::custom(message)
}

/// Reads `T` from JSON text: the first typed refusal of the crate's own deserializers
/// (an inexact decimal, an unknown status, …) as itself, any other failure as
/// [`Error::Json`] with the parser's message.
pub(crate) fn read<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    read_borrowed(text)
}

/// `Option<Decimal>` as an exact JSON number or `null`.
pub mod decimal_number_option {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::value::RawValue;

    /// Writes the decimal as a JSON number, or `null`.
    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::decimal_number::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// Reads a JSON number, a string holding one, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let raw = <Option<Box<RawValue>>>::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(r) if r.get().trim() == "null" => Ok(None),
            Some(r) => super::exact_decimal(r.get())
                .map(Some)
                .map_err(super::refuse),
        }
    }
}

/// `OffsetDateTime` as integer Unix milliseconds.
pub mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Writes the time as Unix milliseconds.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(to_millis(*t))
    }

    /// Reads Unix milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let ms = i64::deserialize(d)?;
        from_millis(ms).map_err(serde::de::Error::custom)
    }

    /// Unix milliseconds of a time (sub-millisecond parts are dropped).
    pub fn to_millis(t: OffsetDateTime) -> i64 {
        // Times in this crate are within ±9999 years, far inside i64 milliseconds; the
        // sub-second part is never negative, so this floors.
        t.unix_timestamp() * 1_000 + i64::from(t.millisecond())
    }

    /// The time with everything below the millisecond dropped: the precision JSON keeps,
    /// applied on the way in so that a session read back from JSON equals the original.
    pub fn truncate(t: OffsetDateTime) -> OffsetDateTime {
        t.replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
            .unwrap_or(t)
    }

    /// A time from Unix milliseconds.
    pub fn from_millis(ms: i64) -> Result<OffsetDateTime, String> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map_err(|_| format!("timestamp {ms} ms is out of range"))
    }
}

/// `Option<OffsetDateTime>` as Unix milliseconds or `null`.
pub mod millis_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Writes the time as Unix milliseconds, or `null`.
    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::millis::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    /// Reads Unix milliseconds or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        match Option::<i64>::deserialize(d)? {
            Some(ms) => super::millis::from_millis(ms)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// A value of an enumeration as read from JSON: one this version knows, or the text of
/// one it does not (a status or payment method added by a newer API version).
///
/// The read-only [snapshots](crate::snapshot) hold enumerations this way, so an object from
/// a newer version reads without error and writes back unchanged. Domain types refuse an
/// unknown value instead ([`Error::UnknownValue`]): a session cannot run commands in a
/// state it does not know.
///
/// ```
/// use bitcoin_checkout::json::MaybeKnown;
/// use bitcoin_checkout::SessionStatus;
///
/// let known: MaybeKnown<SessionStatus> = serde_json::from_str(r#""paid""#)?;
/// assert_eq!(known, MaybeKnown::Known(SessionStatus::Paid));
/// let newer: MaybeKnown<SessionStatus> = serde_json::from_str(r#""processing""#)?;
/// assert_eq!(newer, MaybeKnown::Unknown("processing".into()));
/// assert_eq!(serde_json::to_string(&newer)?, r#""processing""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MaybeKnown<T> {
    /// A value this version knows.
    Known(T),
    /// The text of a value it does not know.
    Unknown(String),
}

impl<T> MaybeKnown<T> {
    /// The known value, or [`Error::UnknownValue`] naming `field` and the text.
    pub fn known(self, field: &'static str) -> Result<T, Error> {
        match self {
            Self::Known(value) => Ok(value),
            Self::Unknown(value) => Err(Error::UnknownValue {
                field,
                value: crate::money::truncate_for_error(&value),
            }),
        }
    }

    /// The known value, if it is one.
    pub fn as_known(&self) -> Option<&T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Unknown(_) => None,
        }
    }
}

impl<T: serde::Serialize> serde::Serialize for MaybeKnown<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(value) => value.serialize(s),
            Self::Unknown(text) => s.serialize_str(text),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> serde::Deserialize<'de> for MaybeKnown<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<T: serde::de::DeserializeOwned> serde::de::Visitor<'_> for Visit<T> {
            type Value = MaybeKnown<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                use serde::de::IntoDeserializer;
                // The enumerations are unit variants named by strings: a string
                // deserializer tries the known names without buffering anything.
                let known = T::deserialize(
                    IntoDeserializer::<serde::de::value::Error>::into_deserializer(v),
                );
                Ok(match known {
                    Ok(value) => MaybeKnown::Known(value),
                    Err(_) => MaybeKnown::Unknown(v.to_owned()),
                })
            }
        }
        d.deserialize_str(Visit(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    #[derive(serde::Serialize)]
    struct Number(#[serde(with = "super::decimal_number")] Decimal);

    #[test]
    fn a_decimal_is_written_as_it_prints_whole_or_not() -> Result<(), Box<dyn std::error::Error>> {
        for text in [
            "0",
            "-0",
            "25",
            "-25",
            "25.00",
            "2500e-2",
            "1000",
            "0.001",
            "-1.50",
            "19.99",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "79228162514264337593543950335",
            "0.0000000000000000000000000001",
        ] {
            let value = match text.parse::<Decimal>() {
                Ok(value) => value,
                Err(_) => Decimal::from_scientific(text)?,
            };
            let printed = value.normalize().to_string();
            assert_eq!(serde_json::to_string(&Number(value))?, printed, "{text}");
            // And it reads back as the same number.
            assert_eq!(super::exact_decimal(&printed).ok(), Some(value), "{text}");
        }
        Ok(())
    }
}
