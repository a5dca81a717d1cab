//! Merchant metadata: a flat map of up to 50 keys to strings, exact numbers or booleans.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::Error;

/// Most keys a metadata map may hold.
pub const MAX_KEYS: usize = 50;
/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 40;
/// Longest string value, in characters (numbers: their JSON text).
pub const MAX_VALUE_CHARS: usize = 500;

/// One metadata value. Numbers keep their exact JSON text (they never pass through binary floating point).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataValue {
    /// A string.
    String(String),
    /// A JSON number, exactly as written (`1234`, `12.50`).
    Number(String),
    /// A boolean.
    Bool(bool),
}

impl MetadataValue {
    /// The value as written: a string's text, a number's digits, `true` or `false` (what a
    /// listing's metadata filter compares).
    pub fn text(&self) -> &str {
        match self {
            Self::String(s) | Self::Number(s) => s,
            Self::Bool(true) => "true",
            Self::Bool(false) => "false",
        }
    }

    fn char_len(&self) -> usize {
        match self {
            Self::String(s) | Self::Number(s) => s.chars().count(),
            Self::Bool(_) => 5,
        }
    }
}

impl From<&str> for MetadataValue {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for MetadataValue {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<bool> for MetadataValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for MetadataValue {
    fn from(n: i64) -> Self {
        Self::Number(n.to_string())
    }
}

impl Serialize for MetadataValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::String(v) => s.serialize_str(v),
            Self::Bool(b) => s.serialize_bool(*b),
            Self::Number(text) => RawValue::from_string(text.clone())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for MetadataValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(d)?;
        parse_value(raw.get())
            .map_err(D::Error::custom)?
            .ok_or_else(|| D::Error::custom("metadata values may not be null here"))
    }
}

/// Reads one JSON value as metadata: `Ok(None)` for `null` (which removes a key in updates).
fn parse_value(text: &str) -> Result<Option<MetadataValue>, String> {
    let text = text.trim();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text)
            .map(|s| Some(MetadataValue::String(s)))
            .map_err(|e| e.to_string()),
        Some(b't') if text == "true" => Ok(Some(MetadataValue::Bool(true))),
        Some(b'f') if text == "false" => Ok(Some(MetadataValue::Bool(false))),
        Some(b'n') if text == "null" => Ok(None),
        Some(b'-' | b'0'..=b'9') => Ok(Some(MetadataValue::Number(text.to_owned()))),
        Some(b'{' | b'[') => {
            Err("metadata values must be strings, numbers or booleans, not nested".into())
        }
        _ => Err("invalid metadata value".into()),
    }
}

/// A validated metadata map (keys sorted, so JSON output is stable).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, MetadataValue>);

impl Metadata {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from pairs, checking every limit.
    pub fn from_pairs<K: Into<String>, V: Into<MetadataValue>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            map.insert(k.into(), v.into());
        }
        let m = Self(map);
        m.validate()?;
        Ok(m)
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.0.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Checks the limits: at most 50 keys, keys 1–40 characters without control
    /// characters, values at most 500 characters.
    pub fn validate(&self) -> Result<(), Error> {
        if self.0.len() > MAX_KEYS {
            return Err(Error::TooManyMetadataKeys {
                count: self.0.len(),
            });
        }
        for (k, v) in &self.0 {
            let key_len = k.chars().count();
            if key_len == 0 || key_len > MAX_KEY_CHARS {
                return Err(Error::InvalidMetadataKey { chars: key_len });
            }
            if k.chars().any(char::is_control) {
                return Err(Error::MetadataKeyControlCharacter {
                    key: crate::money::truncate_for_error(k),
                });
            }
            let value_len = v.char_len();
            if value_len > MAX_VALUE_CHARS {
                return Err(Error::MetadataValueTooLong {
                    key: crate::money::truncate_for_error(k),
                    chars: value_len,
                });
            }
        }
        Ok(())
    }

    /// Merges a patch: a `Some` value sets the key, `None` removes it. The result is
    /// validated; on error `self` is unchanged.
    pub fn merged(&self, patch: &MetadataPatch) -> Result<Self, Error> {
        let mut next = self.0.clone();
        for (k, v) in &patch.0 {
            match v {
                Some(v) => {
                    next.insert(k.clone(), v.clone());
                }
                None => {
                    next.remove(k);
                }
            }
        }
        let m = Self(next);
        m.validate()?;
        Ok(m)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, MetadataValue>::deserialize(d)?;
        let m = Self(map);
        m.validate().map_err(D::Error::custom)?;
        Ok(m)
    }
}

/// Changes to metadata: `Some(value)` sets a key, `None` (JSON `null`) removes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataPatch(BTreeMap<String, Option<MetadataValue>>);

impl MetadataPatch {
    /// An empty patch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<MetadataValue>) -> Self {
        self.0.insert(key.into(), Some(value.into()));
        self
    }

    /// Removes `key`.
    pub fn remove(mut self, key: impl Into<String>) -> Self {
        self.0.insert(key.into(), None);
        self
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for MetadataPatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, Box<RawValue>>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            out.insert(k, parse_value(v.get()).map_err(D::Error::custom)?);
        }
        Ok(Self(out))
    }
}

impl Serialize for MetadataPatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
