//! Verifying incoming webhooks.

use base64::Engine as _;
use hmac::Mac as _;
use time::{Duration, OffsetDateTime};

use super::WebhookHeaders;
use super::secret::{BASE64_LENIENT, SecretError, WebhookSecret};

/// Why an incoming webhook was rejected. Messages never include secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {name}")]
    MissingHeader {
        /// The header name, e.g. `webhook-id`.
        name: &'static str,
    },
    /// `webhook-timestamp` is not an integer number of seconds.
    #[error("webhook-timestamp is not an integer number of unix seconds")]
    InvalidTimestamp,
    /// The message is older than the tolerance allows (a possible replay).
    #[error("webhook timestamp is {age_secs} s in the past, beyond the tolerance")]
    TimestampTooOld {
        /// How far the timestamp lies before `now`, in seconds.
        age_secs: i64,
    },
    /// The message is dated further ahead than the tolerance allows.
    #[error("webhook timestamp is {ahead_secs} s in the future, beyond the tolerance")]
    TimestampInFuture {
        /// How far the timestamp lies after `now`, in seconds.
        ahead_secs: i64,
    },
    /// `webhook-signature` has no `v1,…` entry.
    #[error("webhook-signature has no v1 signature")]
    NoSignature,
    /// No `v1` entry matches any of the secrets.
    #[error("no webhook signature matches the configured secret(s)")]
    SignatureMismatch,
    /// A secret could not be parsed (produced by `?` on a [`SecretError`]).
    #[error("invalid webhook secret: {0}")]
    InvalidSecret(#[from] SecretError),
}

/// Checks incoming webhooks against one or more secrets and a timestamp tolerance.
///
/// A message is accepted if any `v1` entry of its signature header matches any secret, so
/// both the old and the new secret can be configured while a key is being rotated.
#[derive(Clone, Debug)]
pub struct Verifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
}

impl Verifier {
    /// Tolerance used unless [`with_tolerance`](Self::with_tolerance) says otherwise.
    pub const DEFAULT_TOLERANCE: Duration = Duration::minutes(5);

    /// A verifier for `secret` with the default tolerance of ±5 minutes.
    pub fn new(secret: WebhookSecret) -> Self {
        Self {
            secrets: vec![secret],
            tolerance: Self::DEFAULT_TOLERANCE,
        }
    }

    /// Also accepts signatures made with `secret`.
    #[must_use]
    pub fn with_secret(mut self, secret: WebhookSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Accepts timestamps at most `tolerance` before or after `now` (whole seconds; a
    /// negative value counts as zero).
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance.max(Duration::ZERO);
        self
    }

    /// The timestamp tolerance in use.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Verifies a message: timestamp within the tolerance of `now`, then signature.
    ///
    /// `body` must be the raw bytes as received, before any JSON parsing.
    pub fn verify(
        &self,
        headers: &WebhookHeaders,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        self.check_timestamp(headers.timestamp, now)?;

        let mut saw_v1 = false;
        // Malformed entries are skipped: another entry may still verify.
        let tags: Vec<Vec<u8>> = headers
            .signature
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .inspect(|_| saw_v1 = true)
            .filter_map(|(_, tag)| BASE64_LENIENT.decode(tag).ok())
            .collect();
        if !saw_v1 {
            return Err(VerifyError::NoSignature);
        }

        let matched = self.secrets.iter().any(|secret| {
            // The body is absorbed once per secret; each entry only costs a finalization.
            let mac = secret.mac_for(&headers.id, headers.timestamp, body);
            tags.iter().any(|tag| mac.clone().verify_slice(tag).is_ok())
        });
        if matched {
            Ok(())
        } else {
            Err(VerifyError::SignatureMismatch)
        }
    }

    /// [`verify`](Self::verify) from raw header values, as an HTTP framework hands them out:
    /// `None` for an absent header gives [`VerifyError::MissingHeader`].
    pub fn verify_raw(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let headers = WebhookHeaders::from_raw(id, timestamp, signature)?;
        self.verify(&headers, body, now)
    }

    fn check_timestamp(&self, timestamp: i64, now: OffsetDateTime) -> Result<(), VerifyError> {
        let tolerance = self.tolerance.whole_seconds();
        let age_secs = now.unix_timestamp().saturating_sub(timestamp);
        if age_secs > tolerance {
            Err(VerifyError::TimestampTooOld { age_secs })
        } else if age_secs < tolerance.saturating_neg() {
            Err(VerifyError::TimestampInFuture {
                ahead_secs: age_secs.saturating_neg(),
            })
        } else {
            Ok(())
        }
    }
}
