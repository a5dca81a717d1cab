//! On-chain receive addresses, derived from the merchant's public keys only.
//!
//! An [`AddressDeriver`] holds an output descriptor with a `/*` wildcard, such as
//! `wpkh([73c5da0a/84'/0'/0']xpub…/0/*)` or `tr(xpub…/0/*)`, and derives the address at
//! each index: one fresh address per checkout session, spendable by the wallet the
//! descriptor was exported from. It never sees a private key: descriptors or extended keys
//! that contain one are refused (and never echoed in errors).
//!
//! A bare account key is read as the BIP84 receive chain, `wpkh(<key>/0/*)`. SLIP-132
//! keys (`zpub`/`vpub`, `ypub`/`upub`) are accepted too, with the script type they stand
//! for (native segwit or nested segwit).
//!
//! ```
//! use bitcoin_checkout::request::onchain::{AddressDeriver, Network};
//!
//! // BIP84 test vector: account 0 of "abandon abandon … about".
//! let zpub = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
//! let deriver = AddressDeriver::new(zpub, Network::Bitcoin)?;
//! assert_eq!(deriver.address_at(0)?, "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu");
//! # Ok::<(), bitcoin_checkout::request::RequestError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use bitcoin::address::NetworkUnchecked;
use bitcoin::bip32::Xpub;
use bitcoin::secp256k1::{Secp256k1, VerifyOnly};
use bitcoin::{Address, NetworkKind};
use miniscript::descriptor::Wildcard;
use miniscript::{Descriptor, DescriptorPublicKey, ForEachKey};

use crate::request::RequestError;
use crate::request::error::network_name;

/// The bitcoin network addresses are for (rust-bitcoin's; `Bitcoin` is mainnet).
pub use bitcoin::Network;

/// Derives receive addresses from a public output descriptor.
#[derive(Clone)]
pub struct AddressDeriver {
    descriptor: Descriptor<DescriptorPublicKey>,
    network: Network,
    // Derivation needs elliptic-curve arithmetic; a verification context is enough.
    secp: Secp256k1<VerifyOnly>,
}

impl fmt::Debug for AddressDeriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressDeriver")
            .field("descriptor", &self.descriptor.to_string())
            .field("network", &self.network)
            .finish()
    }
}

impl AddressDeriver {
    /// From an output descriptor (anything with a `(`) or a bare extended public key.
    pub fn new(descriptor_or_xpub: &str, network: Network) -> Result<Self, RequestError> {
        if descriptor_or_xpub.contains('(') {
            Self::from_descriptor(descriptor_or_xpub, network)
        } else {
            Self::from_xpub(descriptor_or_xpub, network)
        }
    }

    /// From an output descriptor with one unhardened `/*` wildcard, checksum optional.
    ///
    /// ```
    /// use bitcoin_checkout::request::RequestError;
    /// use bitcoin_checkout::request::onchain::{AddressDeriver, Network};
    ///
    /// let xpub = "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V";
    /// let change = AddressDeriver::from_descriptor(&format!("wpkh([73c5da0a/84h/0h/0h]{xpub}/1/*)"), Network::Bitcoin)?;
    /// assert_eq!(change.address_at(0)?, "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el");
    ///
    /// let fixed = AddressDeriver::from_descriptor(&format!("wpkh({xpub}/0/0)"), Network::Bitcoin);
    /// assert_eq!(fixed.unwrap_err(), RequestError::NoWildcard);
    /// # Ok::<(), RequestError>(())
    /// ```
    pub fn from_descriptor(descriptor: &str, network: Network) -> Result<Self, RequestError> {
        let descriptor = descriptor.trim();
        let parsed = Descriptor::<DescriptorPublicKey>::from_str(descriptor)
            .map_err(|e| descriptor_error(descriptor, &e))?;
        if parsed.is_multipath() {
            return Err(RequestError::MultipathDescriptor);
        }
        if !parsed.has_wildcard() {
            return Err(RequestError::NoWildcard);
        }
        check_keys(&parsed, network)?;
        let deriver = Self {
            descriptor: parsed,
            network,
            secp: Secp256k1::verification_only(),
        };
        // Fails now, not at the first checkout, for descriptors without an address (`pk()`).
        deriver.address_at(0)?;
        Ok(deriver)
    }

    /// From an account extended public key: `xpub`/`tpub` and `zpub`/`vpub` give
    /// `wpkh(<key>/0/*)` (BIP84), `ypub`/`upub` give `sh(wpkh(<key>/0/*))` (BIP49).
    pub fn from_xpub(xpub: &str, network: Network) -> Result<Self, RequestError> {
        let invalid = |reason| RequestError::InvalidExtendedKey { reason };
        let mut data = bitcoin::base58::decode_check(xpub.trim())
            .map_err(|_| invalid("not a base58check extended key"))?;
        if data.len() != 78 {
            return Err(invalid("wrong length for an extended key"));
        }
        let (standard, nested) = match [data[0], data[1], data[2], data[3]] {
            XPUB | ZPUB => (XPUB, false),
            YPUB => (XPUB, true),
            TPUB | VPUB => (TPUB, false),
            UPUB => (TPUB, true),
            v if PRIVATE_VERSIONS.contains(&v) => return Err(RequestError::SecretKeyGiven),
            _ => {
                return Err(invalid(
                    "unknown version: expected xpub, ypub, zpub, tpub, upub or vpub",
                ));
            }
        };
        data[..4].copy_from_slice(&standard);
        let key = Xpub::decode(&data).map_err(|_| invalid("not a valid public key"))?;
        let descriptor = match nested {
            false => format!("wpkh({key}/0/*)"),
            true => format!("sh(wpkh({key}/0/*))"),
        };
        Self::from_descriptor(&descriptor, network)
    }

    /// The address at `index` (below 2^31), in its canonical (lowercase for bech32) form.
    pub fn address_at(&self, index: u32) -> Result<String, RequestError> {
        if index >= 1 << 31 {
            return Err(RequestError::IndexOutOfRange(index));
        }
        // Both errors are excluded by the checks in `from_descriptor`; map them anyway.
        let derived = self
            .descriptor
            .at_derivation_index(index)
            .and_then(|d| d.derived_descriptor(&self.secp))
            .map_err(|_| RequestError::HardenedDerivation)?;
        let address = derived
            .address(self.network)
            .map_err(|_| RequestError::NoAddressForm)?;
        Ok(address.to_string())
    }

    /// The descriptor, with its checksum (public information: safe to log).
    pub fn descriptor(&self) -> String {
        self.descriptor.to_string()
    }

    /// The network addresses are derived for.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The parsed descriptor, for the chain watcher's index.
    #[cfg(feature = "watcher")]
    pub(crate) fn descriptor_value(&self) -> &Descriptor<DescriptorPublicKey> {
        &self.descriptor
    }
}

/// Checks an address for `network` and returns its canonical form.
///
/// ```
/// use bitcoin_checkout::request::RequestError;
/// use bitcoin_checkout::request::onchain::{validate_address, Network};
///
/// let addr = "BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU";
/// assert_eq!(validate_address(addr, Network::Bitcoin)?, addr.to_lowercase());
/// assert!(matches!(validate_address(addr, Network::Regtest), Err(RequestError::NetworkMismatch { .. })));
/// # Ok::<(), RequestError>(())
/// ```
pub fn validate_address(address: &str, network: Network) -> Result<String, RequestError> {
    let parsed: Address<NetworkUnchecked> =
        address
            .trim()
            .parse()
            .map_err(
                |e: bitcoin::address::ParseError| RequestError::InvalidAddress {
                    reason: e.to_string(),
                },
            )?;
    if !parsed.is_valid_for_network(network) {
        return Err(RequestError::NetworkMismatch {
            expected: network_name(network),
            found: address_network(&parsed),
        });
    }
    let checked = parsed.assume_checked();
    // Future witness versions parse but wallets will not pay them: refuse to show one.
    if checked.address_type().is_none() {
        return Err(RequestError::InvalidAddress {
            reason: "not a standard address type".into(),
        });
    }
    Ok(checked.to_string())
}

// SLIP-132 version bytes. Only the public ones are accepted.
const XPUB: [u8; 4] = [0x04, 0x88, 0xb2, 0x1e];
const YPUB: [u8; 4] = [0x04, 0x9d, 0x7c, 0xb2];
const ZPUB: [u8; 4] = [0x04, 0xb2, 0x47, 0x46];
const TPUB: [u8; 4] = [0x04, 0x35, 0x87, 0xcf];
const UPUB: [u8; 4] = [0x04, 0x4a, 0x52, 0x62];
const VPUB: [u8; 4] = [0x04, 0x5f, 0x1c, 0xf6];
/// xprv, yprv, zprv, tprv, uprv, vprv.
const PRIVATE_VERSIONS: [[u8; 4]; 6] = [
    [0x04, 0x88, 0xad, 0xe4],
    [0x04, 0x9d, 0x78, 0x78],
    [0x04, 0xb2, 0x43, 0x0c],
    [0x04, 0x35, 0x83, 0x94],
    [0x04, 0x4a, 0x4e, 0x28],
    [0x04, 0x5f, 0x18, 0xbc],
];

/// Refuses hardened steps after an xpub and xpubs of the other network kind.
fn check_keys(
    descriptor: &Descriptor<DescriptorPublicKey>,
    network: Network,
) -> Result<(), RequestError> {
    let mut result = Ok(());
    descriptor.for_each_key(|key| {
        if let DescriptorPublicKey::XPub(xkey) = key {
            if xkey.wildcard == Wildcard::Hardened || key.has_hardened_step() {
                result = Err(RequestError::HardenedDerivation);
            } else if xkey.xkey.network != NetworkKind::from(network) {
                result = Err(RequestError::NetworkMismatch {
                    expected: network_name(network),
                    found: match xkey.xkey.network {
                        NetworkKind::Main => "mainnet (xpub)",
                        NetworkKind::Test => "a test network (tpub)",
                    },
                });
            }
        }
        result.is_ok()
    });
    result
}

/// The error for a descriptor that did not parse as a public descriptor.
fn descriptor_error(descriptor: &str, error: &miniscript::Error) -> RequestError {
    // Parsing again with secret keys allowed tells "has an xprv/WIF" from "malformed".
    if Descriptor::parse_descriptor(&Secp256k1::signing_only(), descriptor).is_ok() {
        return RequestError::SecretKeyGiven;
    }
    RequestError::InvalidDescriptor {
        reason: error.to_string().chars().take(120).collect(),
    }
}

/// The network an address that failed `is_valid_for_network` is for, in words.
fn address_network(address: &Address<NetworkUnchecked>) -> &'static str {
    if address.is_valid_for_network(Network::Bitcoin) {
        "mainnet"
    } else if address.is_valid_for_network(Network::Regtest) {
        "regtest"
    } else {
        "testnet or signet"
    }
}

/// An [`AddressSource`](crate::request::AddressSource) that derives each session's address
/// from a descriptor at an index reserved durably in an
/// [`AddressIndex`](crate::request::AddressIndex), so no address is handed to two sessions.
#[derive(Debug)]
pub struct DerivedAddresses<I> {
    deriver: AddressDeriver,
    index: I,
}

impl<I: crate::request::AddressIndex> DerivedAddresses<I> {
    /// Addresses from `deriver`, with indexes reserved in `index`.
    pub fn new(deriver: AddressDeriver, index: I) -> Self {
        Self { deriver, index }
    }
}

impl<I: crate::request::AddressIndex> crate::request::AddressSource for DerivedAddresses<I> {
    fn fresh_address(
        &self,
        _session: &crate::session::CheckoutSession,
    ) -> Result<String, RequestError> {
        // The descriptor string (public keys only) names the index sequence.
        let index = self.index.reserve(&self.deriver.descriptor())?;
        self.deriver.address_at(index)
    }
}
