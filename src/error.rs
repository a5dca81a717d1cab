//! The one error type of the crate.

use rust_decimal::Decimal;

use crate::id::{PaymentId, SessionId};

/// Everything that can go wrong, as a value to match on.
///
/// Every variant leaves the state it was returned from unchanged: a command either
/// applies completely or not at all. New variants may be added in minor releases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- money -------------------------------------------------------------------------
    /// An amount was zero or negative.
    #[error("amount must be positive")]
    AmountNotPositive,
    /// An amount had more decimals than its currency allows; it is never rounded silently.
    #[error("{currency} amounts have at most {max} decimals")]
    TooManyDecimals {
        /// The currency code.
        currency: &'static str,
        /// Decimals allowed.
        max: u32,
    },
    /// An amount exceeded 21 million BTC (or the range of exact arithmetic).
    #[error("amount is too large (more than 21 million BTC or outside exact range)")]
    AmountTooLarge,
    /// An amount converted to less than one sat.
    #[error("amount is worth less than one sat at this rate")]
    AmountBelowOneSat,
    /// The currency code is not supported.
    #[error("unsupported currency {code:?}")]
    UnsupportedCurrency {
        /// The code given (truncated).
        code: String,
    },
    /// An exchange rate was zero or negative.
    #[error("exchange rate must be positive")]
    InvalidRate,
    /// A rate was given for another currency pair than the session's.
    #[error("rate is for {got_base}->{got_target}, session needs {want_base}->{want_target}")]
    RateMismatch {
        /// Base of the session.
        want_base: &'static str,
        /// Target of the session.
        want_target: &'static str,
        /// Base of the rate.
        got_base: &'static str,
        /// Target of the rate.
        got_target: &'static str,
    },
    /// No rate source could give a rate for the pair.
    #[error("no exchange rate for {base}->{target}")]
    RateUnavailable {
        /// Base currency code.
        base: &'static str,
        /// Target currency code.
        target: &'static str,
    },
    /// The rate is older than the staleness limit.
    #[error("exchange rate from {source_name} is {age_secs} s old, limit {limit_secs} s")]
    RateStale {
        /// The source that gave it.
        source_name: String,
        /// Its age in seconds.
        age_secs: i64,
        /// The limit in seconds.
        limit_secs: i64,
    },

    // ---- session parameters ------------------------------------------------------------
    /// Tolerance outside [0, 100).
    #[error("amount_paid_tolerance must be in [0, 100), got {0}")]
    InvalidTolerance(Decimal),
    /// ttl outside 300 s ..= 1 year.
    #[error("ttl must be between 300 and 31536000 seconds, got {0}")]
    InvalidTtl(i64),
    /// No payment method, or one this build cannot serve.
    #[error("at least one payment method (lightning, onchain) is required")]
    NoPaymentMethod,
    /// A URL was not an absolute http(s) URL.
    #[error("{field} must be an absolute http or https URL")]
    InvalidUrl {
        /// The field name.
        field: &'static str,
    },
    /// success_url and success_message were both set.
    #[error("success_url and success_message are mutually exclusive")]
    SuccessUrlAndMessage,
    /// A text field was too long or held control characters.
    #[error("{field} is invalid: {reason}")]
    InvalidText {
        /// The field name.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Metadata broke a limit (50 keys, 40-char keys, 500-char values, flat values).
    #[error("metadata: {0}")]
    InvalidMetadata(&'static str),
    /// The confirmation policy is not one of 0, 1, 2, 6.
    #[error("confirmations must be 0, 1, 2 or 6, got {0}")]
    InvalidConfirmationPolicy(u32),

    // ---- ids and lookups ---------------------------------------------------------------
    /// An id did not have the expected prefix and form.
    #[error("invalid id {got:?}: expected {expected_prefix}<32 hex digits>")]
    InvalidId {
        /// The prefix expected.
        expected_prefix: &'static str,
        /// What was given (truncated).
        got: String,
    },
    /// A hash or txid was not 64 hex digits.
    #[error("invalid hash {got:?}: expected 64 hex digits")]
    InvalidHash {
        /// What was given (truncated).
        got: String,
    },
    /// The link expired and opens no more sessions.
    #[error("the link has expired")]
    LinkExpired,
    /// No link with this id.
    #[error("no link {0}")]
    UnknownLink(String),
    /// No session with this id.
    #[error("no checkout session {0}")]
    UnknownSession(SessionId),
    /// A transfer's payment request belongs to no quote of the session.
    #[error("no payment of this session has that payment request")]
    UnknownPaymentRequest,

    // ---- transitions -------------------------------------------------------------------
    /// The command is not allowed in the session's current status.
    #[error("cannot {action} a {status} checkout session")]
    InvalidTransition {
        /// The command attempted.
        action: &'static str,
        /// The status the session is in.
        status: &'static str,
    },
    /// A quote was issued while another payment of the session is still unpaid.
    #[error("payment {0} is still open")]
    QuoteAlreadyOpen(PaymentId),
    /// A quote's payment request does not fit the quote (methods, expiry, address).
    #[error("payment request does not fit the quote: {0}")]
    RequestMismatch(&'static str),
    /// A field that never changes was given to update.
    #[error("{0} cannot be changed after creation")]
    ImmutableField(&'static str),
    /// A transfer came in over a method the session does not accept.
    #[error("transfer method {0} is not enabled for this session")]
    MethodNotEnabled(&'static str),
    /// The same transfer id was reported again with another amount.
    #[error("transfer reported again with another amount ({first} then {again} msat)")]
    TransferAmountMismatch {
        /// Amount first recorded, msat.
        first: u64,
        /// Amount in the new report, msat.
        again: u64,
    },
    /// The time given is before the session's last change (clock went backwards).
    #[error("time went backwards: command at {now_ms} ms, session last changed at {last_ms} ms")]
    ClockWentBackwards {
        /// The `now` given, Unix ms.
        now_ms: i128,
        /// The session's modified time, Unix ms.
        last_ms: i128,
    },

    // ---- service ------------------------------------------------------------------------
    /// The idempotency key was used before with different parameters.
    #[error("idempotency key was already used with different parameters")]
    IdempotencyConflict,
    /// The idempotency key is empty or longer than 255 characters.
    #[error("idempotency key must be 1 to 255 characters")]
    InvalidIdempotencyKey,
    /// The store failed (see [`StoreError::is_retryable`](crate::store::StoreError::is_retryable)).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A payment request could not be generated or read.
    #[error(transparent)]
    Request(#[from] crate::request::RequestError),

    /// A time computed from the given one falls outside the representable range.
    #[error("time is out of range")]
    TimeOutOfRange,

    // ---- JSON --------------------------------------------------------------------------
    /// JSON could not be read into the type.
    #[error("invalid JSON: {0}")]
    Json(String),
}
