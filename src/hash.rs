//! 32-byte hashes as the core keeps them: Lightning payment hashes, written as 64 lowercase
//! hex digits in byte order. Txids have their own type, shown in reversed byte order
//! ([`crate::chain::Txid`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A 32-byte hash written as 64 lowercase hex digits in byte order (payment hashes).
///
/// Not for txids: those are [`Txid`](crate::chain::Txid), whose text is the reversed byte
/// order wallets and explorers show.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash32([u8; 32]);

impl Hash32 {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }
}

/// Calls `f` with the 64 lowercase hex digits of `bytes`, written without the formatting
/// machinery (hashes and txids are in every stored transfer and event). `reversed` writes
/// the last byte first, as txids are shown.
pub(crate) fn with_hex<R>(bytes: &[u8; 32], reversed: bool, f: impl FnOnce(&str) -> R) -> R {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = *bytes;
    if reversed {
        bytes.reverse();
    }
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    // Always ASCII; the fallback is unreachable but keeps this total.
    f(std::str::from_utf8(&out).unwrap_or_default())
}

/// The 32 bytes written by 64 hex digits (either case), or `None`. `reversed` reads the
/// last byte first, as txids are shown.
pub(crate) fn parse_hex(s: &str, reversed: bool) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    if reversed {
        out.reverse();
    }
    Some(out)
}

/// The value of one hex digit.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        with_hex(&self.0, false, |hex| f.write_str(hex))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Hash32 {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        parse_hex(s, false)
            .map(Self)
            .ok_or_else(|| Error::InvalidHash {
                got: crate::money::truncate_for_error(s),
            })
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        with_hex(&self.0, false, |hex| s.serialize_str(hex))
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The hash a Lightning payment is locked to; it identifies the invoice and its payment.
pub type PaymentHash = Hash32;
