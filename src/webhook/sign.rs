//! Signing outgoing webhooks.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;

use super::WebhookHeaders;
use super::secret::WebhookSecret;

/// Why a message could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The message id is empty.
    #[error("webhook message id is empty")]
    EmptyId,
    /// The message id contains `.`, the separator of the signed content.
    #[error("webhook message id must not contain '.'")]
    IdContainsDot,
    /// The message id contains whitespace, a control or a non-ASCII character, so it cannot
    /// travel as an HTTP header value unchanged.
    #[error("webhook message id must be visible ASCII (no spaces or control characters)")]
    IdNotHeaderSafe,
}

/// One `v1,<base64>` signature, as one entry of the `webhook-signature` header.
///
/// There is deliberately no `PartialEq`: check signatures with
/// [`Verifier`](super::Verifier), which compares in constant time.
#[derive(Clone, Debug)]
pub struct Signature(String);

impl Signature {
    /// The entry, `v1,<base64 of HMAC-SHA256>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The entry as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Signs `{msg_id}.{timestamp}.{body}` with `secret`: `v1,<base64(HMAC-SHA256)>`.
///
/// `timestamp` is in unix seconds; `body` is the exact bytes that will be sent.
pub fn sign(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Signature, SignError> {
    check_msg_id(msg_id)?;
    Ok(sign_unchecked(secret, msg_id, timestamp, body))
}

/// The `webhook-signature` header of one message, signed with one or more secrets.
///
/// During key rotation a sender signs with both the old and the new secret, so receivers
/// holding either one accept the message.
#[derive(Clone, Debug)]
pub struct SignatureHeader<'a> {
    msg_id: &'a str,
    timestamp: i64,
    body: &'a [u8],
    value: String,
}

impl<'a> SignatureHeader<'a> {
    /// Starts the header with a signature by `secret`.
    pub fn new(
        secret: &WebhookSecret,
        msg_id: &'a str,
        timestamp: i64,
        body: &'a [u8],
    ) -> Result<Self, SignError> {
        let first = sign(secret, msg_id, timestamp, body)?;
        Ok(Self {
            msg_id,
            timestamp,
            body,
            value: first.into_string(),
        })
    }

    /// Adds a signature of the same message by another secret.
    #[must_use]
    pub fn signed_with(mut self, secret: &WebhookSecret) -> Self {
        let next = sign_unchecked(secret, self.msg_id, self.timestamp, self.body);
        self.value.push(' ');
        self.value.push_str(next.as_str());
        self
    }

    /// The header value: the signatures separated by single spaces.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The three headers of the message (id, timestamp and these signatures).
    pub fn into_headers(self) -> WebhookHeaders {
        WebhookHeaders {
            id: self.msg_id.to_owned(),
            timestamp: self.timestamp,
            signature: self.value,
        }
    }
}

impl fmt::Display for SignatureHeader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

fn check_msg_id(msg_id: &str) -> Result<(), SignError> {
    if msg_id.is_empty() {
        return Err(SignError::EmptyId);
    }
    // A dot in the id would let `id.ts.body` be split another way, i.e. let a signature
    // for one (id, timestamp, body) pass for a different one.
    if msg_id.contains('.') {
        return Err(SignError::IdContainsDot);
    }
    if !msg_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SignError::IdNotHeaderSafe);
    }
    Ok(())
}

fn sign_unchecked(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> Signature {
    let tag = secret
        .mac_for(msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    Signature(format!("v1,{}", STANDARD.encode(tag)))
}
