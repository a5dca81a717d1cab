//! The shared HMAC key of a webhook endpoint.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// HMAC-SHA256, the `v1` scheme of Standard Webhooks.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Standard base64 that accepts input with or without `=` padding; senders differ on it.
pub(crate) const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe twin of [`BASE64_LENIENT`], tried for secrets only when the standard alphabet fails.
const BASE64_URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook secret was rejected. Messages never include the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The string does not start with `whsec_` (Standard Webhooks) or `wsec_` (Speed).
    #[error("webhook secret must start with \"whsec_\" or \"wsec_\"")]
    MissingPrefix,
    /// Nothing after the prefix (or no bytes given).
    #[error("webhook secret is empty")]
    Empty,
    /// The part after the prefix is not base64.
    #[error("webhook secret is not valid base64 after its prefix")]
    NotBase64,
    /// The key is shorter than [`WebhookSecret::MIN_LEN`] bytes.
    #[error("webhook secret is {len} bytes, at least {min} are required")]
    TooShort {
        /// Length of the decoded key in bytes.
        len: usize,
        /// The minimum accepted.
        min: usize,
    },
}

/// The key that signs and verifies webhooks of one endpoint.
///
/// Written as `whsec_<base64 key>` (Standard Webhooks, Svix) or `wsec_<base64 key>` (Speed).
/// Standard Webhooks asks senders for 24 to 64 random bytes; keys of at least
/// [`MIN_LEN`](Self::MIN_LEN) bytes are accepted so that secrets issued by other providers
/// still work. The crate never generates keys: take them from a CSPRNG.
///
/// `Debug` prints `WebhookSecret(<redacted>)`; there is deliberately no `Display`. Use
/// [`to_whsec_string`](Self::to_whsec_string) where the owner must be shown the secret.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
    /// Keyed once here so that signing and verifying cannot fail later.
    mac: HmacSha256,
}

impl WebhookSecret {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// Parses `whsec_<base64>` or `wsec_<base64>`; the HMAC key is the decoded bytes.
    ///
    /// Surrounding whitespace (such as the newline of a secret read from a file) is ignored.
    /// Padding is optional, and the URL-safe alphabet is accepted as well.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let s = s.trim();
        let encoded = s
            .strip_prefix("whsec_")
            .or_else(|| s.strip_prefix("wsec_"))
            .ok_or(SecretError::MissingPrefix)?;
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = BASE64_LENIENT
            .decode(encoded)
            .or_else(|_| BASE64_URL_LENIENT.decode(encoded))
            .map_err(|_| SecretError::NotBase64)?;
        Self::from_bytes(&key)
    }

    /// Uses `key` as the HMAC key directly (at least [`MIN_LEN`](Self::MIN_LEN) bytes).
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        if key.len() < Self::MIN_LEN {
            return Err(SecretError::TooShort {
                len: key.len(),
                min: Self::MIN_LEN,
            });
        }
        // HMAC takes keys of any length, so this error cannot happen; mapped, not unwrapped.
        let mac = HmacSha256::new_from_slice(key).map_err(|_| SecretError::Empty)?;
        Ok(Self {
            key: key.to_vec(),
            mac,
        })
    }

    /// The secret as `whsec_<base64>`, for showing it to its owner. Handle with care.
    ///
    /// A secret parsed from `wsec_…` comes back as `whsec_…` with the same key.
    pub fn to_whsec_string(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.key))
    }

    /// The secret as Speed writes it, `wsec_<base64>` (the same key as
    /// [`to_whsec_string`](Self::to_whsec_string)). Handle with care.
    pub fn to_wsec_string(&self) -> String {
        format!("wsec_{}", STANDARD.encode(&self.key))
    }

    /// Whether `other` holds the same key, compared in constant time (for checking a
    /// secret a client presents).
    pub fn same_key(&self, other: &WebhookSecret) -> bool {
        self.key.len() == other.key.len()
            && self
                .key
                .iter()
                .zip(&other.key)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The HMAC state after absorbing the signed content `{id}.{timestamp}.{body}`.
    pub(crate) fn mac_for(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, SecretError> {
        Self::parse(s)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}
