//! [Standard Webhooks](https://www.standardwebhooks.com/) signing and verification.
//!
//! A message carries three headers: `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature`, a space-separated list of `v1,<base64>` entries, each the
//! HMAC-SHA256 of `{id}.{timestamp}.{body}` under one secret. The library never reads the
//! clock: the receiver passes `now`.
//!
//! ```
//! use bitcoin_checkout::webhook::{SignatureHeader, Verifier, WebhookSecret};
//! use time::OffsetDateTime;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")?;
//! let body = br#"{"type":"checkout.paid"}"#;
//! let now = OffsetDateTime::from_unix_timestamp(1_700_000_000)?;
//!
//! // Sender: sign, then send the three headers with the body.
//! let headers = SignatureHeader::new(&secret, "msg_1", now.unix_timestamp(), body)?
//!     .into_headers();
//! for (name, value) in headers.pairs() {
//!     println!("{name}: {value}");
//! }
//!
//! // Receiver: verify the raw body against the headers received.
//! let verifier = Verifier::new(secret);
//! verifier.verify_raw(
//!     Some(&headers.id),
//!     Some(&headers.timestamp.to_string()),
//!     Some(&headers.signature),
//!     body,
//!     now,
//! )?;
//! assert!(verifier.verify(&headers, b"tampered", now).is_err());
//! # Ok(())
//! # }
//! ```

mod breaker;
pub mod delivery;
mod dispatch;
mod secret;
mod sign;
mod verify;

pub use breaker::{BreakerSchedule, EndpointHealth};
pub use delivery::{
    Attempt, Delivery, DeliveryStatus, DeliveryStore, Endpoint, RetrySchedule, SignatureScheme,
};
pub use dispatch::{
    DEFAULT_LANES, DEFAULT_PER_ENDPOINT, DispatchError, DispatchReport, Dispatcher, SendOutcome,
    WebhookSender,
};
pub use secret::{SecretError, WebhookSecret};
pub use sign::{SignError, Signature, SignatureHeader, sign};
pub use verify::{Verifier, VerifyError};

/// Name of the header with the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Name of the header with the signing time in unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Name of the header with the space-separated signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The three Standard Webhooks headers of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `webhook-id`: the message id, the same on every retry.
    pub id: String,
    /// `webhook-timestamp`: when the message was signed, unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`: space-separated `v1,<base64>` entries.
    pub signature: String,
}

impl WebhookHeaders {
    /// Reads raw header values; `None` means the header was absent.
    pub fn from_raw(
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Self, VerifyError> {
        let missing = |name| VerifyError::MissingHeader { name };
        let id = id.ok_or(missing(HEADER_ID))?;
        let timestamp = timestamp.ok_or(missing(HEADER_TIMESTAMP))?;
        let signature = signature.ok_or(missing(HEADER_SIGNATURE))?;
        Ok(Self {
            id: id.to_owned(),
            timestamp: timestamp
                .parse()
                .map_err(|_| VerifyError::InvalidTimestamp)?,
            signature: signature.to_owned(),
        })
    }

    /// `(name, value)` pairs to set on the outgoing request, in the order id, timestamp,
    /// signature.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}
