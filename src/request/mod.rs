//! Payment requests: what a customer's wallet pays (BOLT11 invoice, on-chain address, or
//! one unified BIP21 URI), and the port that generates them for a quote.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::error::Error;

/// A 32-byte hash written as 64 lowercase hex digits (payment hashes, txids).
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

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
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
        let invalid = || Error::InvalidHash {
            got: crate::money::truncate_for_error(s),
        };
        // Only hex digits: `from_str_radix` alone would also take a leading `+`.
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|_| invalid())?;
            out[i] = u8::from_str_radix(hex, 16).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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

/// A BOLT11 invoice issued for one quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightningInvoice {
    /// The BOLT11 string (`lnbc…`).
    pub payment_request: String,
    /// The invoice's payment hash: a payment to it is reported under this key.
    pub payment_hash: PaymentHash,
    /// When the invoice stops being payable; never after its quote's `expires_at`.
    #[serde(with = "crate::json::millis")]
    pub expires_at: OffsetDateTime,
}

/// What a customer can pay for one quote: a Lightning invoice, an on-chain address, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// The quote's own invoice, when Lightning is enabled.
    pub lightning: Option<LightningInvoice>,
    /// The session's on-chain address, when on-chain is enabled (shared by its quotes).
    pub onchain_address: Option<String>,
}

mod error;
mod generator;
mod sources;
pub use error::RequestError;
pub use generator::{PaymentRequestGenerator, TestRequestGenerator};
pub use sources::{
    AddressIndex, AddressSource, Disabled, InvoiceSource, MemoryAddressIndex, RequestGenerator,
};

#[cfg(feature = "lightning")]
pub mod lightning;
#[cfg(feature = "onchain")]
pub mod onchain;
pub mod unified;
