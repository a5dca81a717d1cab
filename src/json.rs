//! JSON helpers: decimal amounts as exact JSON numbers and Unix-millisecond timestamps.
//!
//! Decimals are written as JSON numbers (`450.5`) and read from a number or a string
//! without ever passing through binary floating point: the number's text is captured with
//! `serde_json::value::RawValue` and parsed by `rust_decimal`. This works with
//! `serde_json::from_str`/`from_slice`/`from_reader`, which is how this crate's JSON is
//! meant to be read.

/// `Decimal` as an exact JSON number.
pub mod decimal_number {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    /// Writes the decimal as a JSON number, exactly as `Decimal` prints it.
    pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(value.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    /// Reads a JSON number (or a string holding one) into a decimal, exactly.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let raw = <Box<RawValue>>::deserialize(d)?;
        parse(raw.get()).map_err(serde::de::Error::custom)
    }

    pub(crate) fn parse(text: &str) -> Result<Decimal, String> {
        let text = text.trim();
        let unquoted = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => inner,
            None => text,
        };
        let looks_numeric = !unquoted.is_empty()
            && unquoted
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
        if !looks_numeric {
            return Err(format!("expected a decimal number, got {}", short(text)));
        }
        let parsed = if unquoted.contains(['e', 'E']) {
            Decimal::from_scientific(unquoted)
        } else {
            unquoted.parse::<Decimal>()
        };
        parsed.map_err(|_| format!("number out of exact decimal range: {}", short(text)))
    }

    fn short(s: &str) -> String {
        s.chars().take(40).collect()
    }
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
            Some(r) => super::decimal_number::parse(r.get())
                .map(Some)
                .map_err(serde::de::Error::custom),
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
