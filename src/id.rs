//! Typed ids: `cs_…` sessions, `pi_…` payments, `evt_…` events, `clink_…` and `plink_…`
//! links, `we_…` webhook endpoints.
//!
//! Each id wraps a UUID (v7 in production: time-ordered, so ids sort by creation) and is
//! written as its prefix followed by the 32 lowercase hex digits of the UUID. Ids are minted
//! by the caller ([`SessionId::from_uuid`]) or by the service; the core never makes one up.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::Error;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Wraps a UUID (use a v7 UUID so that ids sort by creation time).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// A new time-ordered id from the system clock and randomness.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                with_text($prefix, &self.0, |text| f.write_str(text))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                parse_prefixed(s, $prefix).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                with_text($prefix, &self.0, |text| s.serialize_str(text))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Calls `f` with an id's text (`prefix` and the UUID's 32 lowercase hex digits), written
/// on the stack: ids are printed in every row and JSON object, and going through
/// `fmt::write` for the two parts cost more than writing them.
fn with_text<R>(prefix: &'static str, uuid: &Uuid, f: impl FnOnce(&str) -> R) -> R {
    const HEX: usize = uuid::fmt::Simple::LENGTH;
    let mut buf = [0u8; 16 + HEX];
    let end = prefix.len() + HEX;
    // Every prefix is a few ASCII letters and `_`, so this always fits and is text; a
    // longer prefix (there is none) would still print, through the formatter.
    let text = buf.get_mut(..end).and_then(|text| {
        let (head, hex) = text.split_at_mut(prefix.len());
        head.copy_from_slice(prefix.as_bytes());
        uuid.simple().encode_lower(hex);
        std::str::from_utf8(text).ok()
    });
    match text {
        Some(text) => f(text),
        None => f(&format!("{prefix}{}", uuid.simple())),
    }
}

fn parse_prefixed(s: &str, prefix: &'static str) -> Result<Uuid, Error> {
    let invalid = || Error::InvalidId {
        expected_prefix: prefix,
        got: crate::money::truncate_for_error(s),
    };
    let rest = s.strip_prefix(prefix).ok_or_else(invalid)?;
    // Only the canonical form we print is accepted, so an id has one spelling.
    if rest.len() != 32 || !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid());
    }
    Uuid::try_parse(rest).map_err(|_| invalid())
}

prefixed_id!(
    /// Identifies a checkout session (`cs_…`).
    SessionId, "cs_"
);
prefixed_id!(
    /// Identifies a payment, one rate-locked quote of a session (`pi_…`).
    PaymentId, "pi_"
);
prefixed_id!(
    /// Identifies an event (`evt_…`).
    EventId, "evt_"
);
prefixed_id!(
    /// Identifies a checkout link (`clink_…`), which yields exactly one session.
    CheckoutLinkId, "clink_"
);
prefixed_id!(
    /// Identifies a payment link (`plink_…`), which yields a new session per open.
    PaymentLinkId, "plink_"
);
prefixed_id!(
    /// Identifies a webhook endpoint (`we_…`).
    EndpointId, "we_"
);

/// The id of either kind of link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkId {
    /// A checkout link: one session.
    Checkout(CheckoutLinkId),
    /// A payment link: a session per open.
    Payment(PaymentLinkId),
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Checkout(id) => id.fmt(f),
            Self::Payment(id) => id.fmt(f),
        }
    }
}

impl FromStr for LinkId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.starts_with(CheckoutLinkId::PREFIX) {
            s.parse().map(Self::Checkout)
        } else {
            s.parse().map(Self::Payment)
        }
    }
}

impl Serialize for LinkId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LinkId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
