//! The core's error: what the domain itself refuses (bad values, broken limits, commands
//! a state does not allow).
//!
//! Failures of the ports have errors of their own ([`StoreError`](crate::store::StoreError),
//! [`RequestError`](crate::request::RequestError), [`RateError`](crate::rates::RateError)),
//! and the service's [`ServiceError`](crate::service::ServiceError) wraps them all with a
//! [`kind`](crate::service::ServiceError::kind) a caller can act on.

use rust_decimal::Decimal;

use crate::id::PaymentId;

/// What the core refuses, as a value to match on.
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

    // ---- session parameters ------------------------------------------------------------
    /// Tolerance outside [0, 100).
    #[error("amount_paid_tolerance must be in [0, 100), got {0}")]
    InvalidTolerance(Decimal),
    /// ttl outside 300 s ..= 1 year.
    #[error("ttl must be between 300 and 31536000 seconds, got {0}")]
    InvalidTtl(i64),
    /// A session's `expires_at` was less than 5 minutes or more than a year after its
    /// creation.
    #[error(
        "expires_at must be between 5 minutes and 1 year after creation, got {expires_at_ms} ms for a session created at {created_ms} ms"
    )]
    InvalidExpiry {
        /// The `expires_at` given, Unix ms.
        expires_at_ms: i64,
        /// The creation time, Unix ms.
        created_ms: i64,
    },
    /// No payment method, or one this build cannot serve.
    #[error("at least one payment method (lightning, onchain) is required")]
    NoPaymentMethod,
    /// A URL did not parse, or was not an absolute `http://` or `https://` URL with a host
    /// and no user info.
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
    /// Metadata had more than 50 keys.
    #[error("metadata has {count} keys, at most 50 are allowed")]
    TooManyMetadataKeys {
        /// How many keys were given.
        count: usize,
    },
    /// A metadata key was empty or longer than 40 characters.
    #[error("metadata keys must be 1 to 40 characters, got one of {chars}")]
    InvalidMetadataKey {
        /// Its length in characters.
        chars: usize,
    },
    /// A metadata value was longer than 500 characters.
    #[error("metadata value of {key:?} is {chars} characters long, at most 500 are allowed")]
    MetadataValueTooLong {
        /// The key (truncated).
        key: String,
        /// Its length in characters.
        chars: usize,
    },
    /// A metadata key held a control character.
    #[error("metadata key {key:?} holds a control character")]
    MetadataKeyControlCharacter {
        /// The key (truncated, control characters escaped by `Debug`).
        key: String,
    },
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
    /// A payment hash was not 64 hex digits.
    #[error("invalid hash {got:?}: expected 64 hex digits")]
    InvalidHash {
        /// What was given (truncated).
        got: String,
    },
    /// A txid was not 64 hex digits.
    #[error("invalid txid {got:?}: expected 64 hex digits")]
    InvalidTxid {
        /// What was given (truncated).
        got: String,
    },
    /// An outpoint was not `<txid>:<vout>` (a valid txid, a colon, a decimal `u32`).
    #[error("invalid outpoint {got:?}: expected <64 hex digits>:<output index>")]
    InvalidOutPoint {
        /// What was given (truncated).
        got: String,
    },
    /// The link expired and opens no more sessions.
    #[error("the link has expired")]
    LinkExpired,
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
    /// A quote's invoice, read from its own string, does not ask what the quote asks (its
    /// amount, payment hash or expiry differ from the quote's or the stated ones, or it
    /// does not decode).
    #[error("the invoice's {field} should be {expected}, it is {found}")]
    InvoiceMismatch {
        /// Which part: `amount_msat`, `payment_hash`, `expires_at`, `payment_request`.
        field: &'static str,
        /// What the quote (or the generator's stated fields) requires.
        expected: String,
        /// What the invoice says.
        found: String,
    },
    /// A field that never changes was given to update.
    #[error("{0} cannot be changed after creation")]
    ImmutableField(&'static str),
    /// A transfer came in over a method the session does not accept.
    #[error("transfer method {0} is not enabled for this session")]
    MethodNotEnabled(&'static str),
    /// The session has issued as many quotes as its limit allows
    /// ([`SessionLimits`](crate::session::SessionLimits)): no further quote is made.
    #[error("the session has issued its limit of {max} quotes")]
    QuoteLimitReached {
        /// The limit.
        max: u32,
    },
    /// The same transfer id was reported again with another amount.
    #[error("transfer reported again with another amount ({first} then {again} msat)")]
    TransferAmountMismatch {
        /// Amount first recorded, msat.
        first: u64,
        /// Amount in the new report, msat.
        again: u64,
    },
    /// A flag resolution asked for more than the flag's unresolved amount.
    #[error("cannot resolve {requested} msat of the {kind} flag: {unresolved} msat are unresolved")]
    ResolutionExceedsFlag {
        /// The flag kind (`overpaid`, …).
        kind: &'static str,
        /// The amount given, msat.
        requested: u64,
        /// What is unresolved, msat.
        unresolved: u64,
    },
    /// The time given is before the session's last change (clock went backwards).
    #[error("time went backwards: command at {now_ms} ms, session last changed at {last_ms} ms")]
    ClockWentBackwards {
        /// The `now` given, Unix ms.
        now_ms: i128,
        /// The session's modified time, Unix ms.
        last_ms: i128,
    },

    // ---- time and JSON -------------------------------------------------------------------
    /// A time computed from the given one falls outside the representable range.
    #[error("time is out of range")]
    TimeOutOfRange,

    /// A value that should be a decimal number was something else.
    #[error("expected a decimal number, got {got}")]
    NotADecimal {
        /// What was given (truncated).
        got: String,
    },
    /// A decimal number has more digits than a `Decimal` holds (28 decimal places, 96 bits
    /// of coefficient): refused, because reading it would round it.
    #[error(
        "{number} cannot be held exactly (at most 28 decimal places and 29 digits); it is refused, not rounded"
    )]
    InexactDecimal {
        /// The number as written (truncated).
        number: String,
    },
    /// A status, payment method or other enumerated value this version does not know (an
    /// object from a newer API version). [`SessionSnapshot`](crate::snapshot::SessionSnapshot)
    /// and its siblings read such objects without this error.
    #[error("unknown {field} {value:?} (from a newer API version?); read it as a snapshot")]
    UnknownValue {
        /// The field (`status`, `payment_methods`, …).
        field: &'static str,
        /// The value as written (truncated).
        value: String,
    },
    /// An object had a field this version does not know; reading it into a domain type
    /// would drop it. The snapshot types keep every field.
    #[error("unknown field {field:?} in a {object} object; read it as a snapshot")]
    UnknownField {
        /// The object (`checkout_session`, `payment`).
        object: &'static str,
        /// The field's name (truncated).
        field: String,
    },
    /// A field derived from the session's facts (a total, the number of payments) does not
    /// match what the facts give: the JSON is not a whole session (a webhook payload lists
    /// only the newest payments and no transfers) or was edited.
    #[error(
        "{field} is {written} in the JSON but {derived} from its payments and transfers; not a whole session (a webhook payload? read it as a snapshot)"
    )]
    DerivedMismatch {
        /// The derived field.
        field: &'static str,
        /// What the JSON says (`null` when absent).
        written: String,
        /// What the facts give.
        derived: String,
    },

    /// JSON could not be read into the type (the parser's message).
    #[error("invalid JSON: {0}")]
    Json(String),
}
