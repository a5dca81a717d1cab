//! Chain data in its own types: transaction ids and outpoints, with one byte order.
//!
//! A txid is 32 bytes kept in the **internal (wire) byte order**, the order
//! `bitcoin::Txid::to_byte_array` gives and transactions are hashed in. Its text (`Display`,
//! `FromStr`, serde) is those bytes **reversed**, as 64 lowercase hex digits: what explorers,
//! wallets, Bitcoin Core's RPC and `bitcoin::Txid`'s `Display` show. So a txid obtained from
//! the `bitcoin` crate, from its bytes or from its text is the same value, and the transfer
//! key of an output does not depend on how a watcher obtained its txid.
//!
//! ```
//! use bitcoin_checkout::chain::{OutPoint, Txid};
//!
//! // The genesis coinbase transaction, as explorers show it.
//! let shown = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";
//! let txid: Txid = shown.parse()?;
//! assert_eq!(txid.to_string(), shown);
//! // The internal byte order is the reverse: it starts with the last digits shown.
//! assert_eq!(txid.to_byte_array()[0], 0x3b);
//! assert_eq!(Txid::from_byte_array(txid.to_byte_array()), txid);
//!
//! let outpoint: OutPoint = format!("{shown}:0").parse()?;
//! assert_eq!(outpoint, OutPoint::new(txid, 0));
//! # Ok::<(), bitcoin_checkout::Error>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::hash::{parse_hex, with_hex};

/// `Debug` as `Display`, and serde as the display string read back by `FromStr`: chain
/// data has one text, in logs and in JSON alike.
macro_rules! text_form {
    ($($ty:ty),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

text_form!(Txid, OutPoint);

/// A transaction id: 32 bytes in internal (wire) byte order, written in reversed hex.
///
/// See the [module documentation](self) for the byte order. Serde writes it as its
/// display string.
///
/// ```
/// use bitcoin_checkout::chain::Txid;
///
/// let mut bytes = [0u8; 32];
/// bytes[0] = 0x01; // the first byte in wire order is the last one shown
/// let txid = Txid::from_byte_array(bytes);
/// assert_eq!(txid.to_string(), format!("{}01", "0".repeat(62)));
/// assert_eq!(serde_json::to_string(&txid)?, format!("\"{txid}\""));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Txid([u8; 32]);

impl Txid {
    /// The txid with these bytes in internal (wire) byte order, as
    /// `bitcoin::Txid::to_byte_array` gives them.
    ///
    /// ```
    /// use bitcoin_checkout::chain::Txid;
    ///
    /// let txid = Txid::from_byte_array([7; 32]);
    /// assert_eq!(txid.to_byte_array(), [7; 32]);
    /// ```
    pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The bytes in internal (wire) byte order (the reverse of the order shown).
    ///
    /// ```
    /// use bitcoin_checkout::chain::Txid;
    ///
    /// let txid: Txid = format!("ff{}", "0".repeat(62)).parse()?;
    /// assert_eq!(txid.to_byte_array()[31], 0xff);
    /// # Ok::<(), bitcoin_checkout::Error>(())
    /// ```
    pub const fn to_byte_array(self) -> [u8; 32] {
        self.0
    }
}

/// Txids sort as their text does (reversed bytes), so a list sorted by txid reads sorted.
impl Ord for Txid {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for Txid {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Txid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        with_hex(&self.0, true, |hex| f.write_str(hex))
    }
}

/// Reads 64 hex digits (either case) in the order shown; anything else is
/// [`Error::InvalidTxid`].
impl FromStr for Txid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        parse_hex(s, true)
            .map(Self)
            .ok_or_else(|| Error::InvalidTxid {
                got: crate::money::truncate_for_error(s),
            })
    }
}

/// One output of a transaction: its txid and output index, written `<txid>:<vout>`.
///
/// Serde writes it as that string.
///
/// ```
/// use bitcoin_checkout::chain::{OutPoint, Txid};
///
/// let outpoint = OutPoint::new(Txid::from_byte_array([0xab; 32]), 1);
/// assert_eq!(outpoint.to_string(), format!("{}:1", "ab".repeat(32)));
/// assert_eq!(outpoint.to_string().parse::<OutPoint>()?, outpoint);
/// # Ok::<(), bitcoin_checkout::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutPoint {
    /// The transaction.
    pub txid: Txid,
    /// The index of the output in the transaction.
    pub vout: u32,
}

impl OutPoint {
    /// Output `vout` of transaction `txid`.
    ///
    /// ```
    /// use bitcoin_checkout::chain::{OutPoint, Txid};
    ///
    /// let txid = Txid::from_byte_array([1; 32]);
    /// assert_eq!(OutPoint::new(txid, 3).vout, 3);
    /// ```
    pub const fn new(txid: Txid, vout: u32) -> Self {
        Self { txid, vout }
    }
}

impl fmt::Display for OutPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.txid, self.vout)
    }
}

/// Reads `<txid>:<vout>`. The index is written in canonical decimal (no sign, no leading
/// zero), so one output has one text and one key; anything else is
/// [`Error::InvalidOutPoint`] (or [`Error::InvalidTxid`] for a bad txid).
impl FromStr for OutPoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidOutPoint {
            got: crate::money::truncate_for_error(s),
        };
        let (txid, vout) = s.split_once(':').ok_or_else(invalid)?;
        let canonical =
            vout.bytes().all(|b| b.is_ascii_digit()) && !(vout.len() > 1 && vout.starts_with('0'));
        if !canonical {
            return Err(invalid());
        }
        let vout = vout.parse::<u32>().map_err(|_| invalid())?;
        Ok(Self::new(txid.parse()?, vout))
    }
}

#[cfg(feature = "onchain")]
mod bitcoin_conversions {
    //! Conversions from and to the `bitcoin` crate's types: the same bytes, in the same
    //! (internal) order, so the text of both sides is the same too.

    use bitcoin::hashes::Hash as _;

    use super::{OutPoint, Txid};

    /// ```
    /// use bitcoin_checkout::chain::Txid;
    ///
    /// let theirs: bitcoin::Txid = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".parse()?;
    /// assert_eq!(Txid::from(theirs).to_string(), theirs.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    impl From<bitcoin::Txid> for Txid {
        fn from(txid: bitcoin::Txid) -> Self {
            Self(txid.to_byte_array())
        }
    }

    /// ```
    /// use bitcoin_checkout::chain::Txid;
    ///
    /// let ours = Txid::from_byte_array([9; 32]);
    /// assert_eq!(Txid::from(bitcoin::Txid::from(ours)), ours);
    /// ```
    impl From<Txid> for bitcoin::Txid {
        fn from(txid: Txid) -> Self {
            Self::from_byte_array(txid.0)
        }
    }

    /// ```
    /// use bitcoin::hashes::Hash as _;
    /// use bitcoin_checkout::chain::OutPoint;
    ///
    /// let theirs = bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([2; 32]), 5);
    /// assert_eq!(OutPoint::from(theirs).to_string(), theirs.to_string());
    /// ```
    impl From<bitcoin::OutPoint> for OutPoint {
        fn from(outpoint: bitcoin::OutPoint) -> Self {
            Self::new(outpoint.txid.into(), outpoint.vout)
        }
    }

    /// ```
    /// use bitcoin_checkout::chain::{OutPoint, Txid};
    ///
    /// let ours = OutPoint::new(Txid::from_byte_array([3; 32]), 1);
    /// assert_eq!(OutPoint::from(bitcoin::OutPoint::from(ours)), ours);
    /// ```
    impl From<OutPoint> for bitcoin::OutPoint {
        fn from(outpoint: OutPoint) -> Self {
            Self::new(outpoint.txid.into(), outpoint.vout)
        }
    }
}
