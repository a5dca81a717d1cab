//! The service's error: what the core refused, what a port failed with, and what the
//! service itself decides (unknown ids, idempotency), with a [`kind`](ServiceError::kind)
//! a caller can act on.

use crate::error::Error;
use crate::id::{LinkId, SessionId};
use crate::rates::RateError;
use crate::request::RequestError;
use crate::store::StoreError;

/// Why a service operation failed. Nothing was changed unless the operation's docs say
/// otherwise (a transfer is committed even when the re-quote after it fails).
///
/// ```
/// use bitcoin_checkout::service::{ErrorKind, ServiceError};
/// use bitcoin_checkout::SessionId;
///
/// let err = ServiceError::UnknownSession(SessionId::generate());
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.kind().http_status(), 404);
/// assert!(!err.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The core refused the command or its input (see [`Error`]).
    #[error(transparent)]
    Core(#[from] Error),
    /// The store failed (see [`StoreError::is_retryable`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The payment request for a quote could not be made.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No exchange rate could be had for a quote.
    #[error(transparent)]
    Rate(#[from] RateError),
    /// No session with this id.
    #[error("no checkout session {0}")]
    UnknownSession(SessionId),
    /// No link with this id.
    #[error("no link {0}")]
    UnknownLink(LinkId),
    /// The idempotency key was used before with different parameters.
    #[error("idempotency key was already used with different parameters")]
    IdempotencyConflict,
    /// Another request with this idempotency key is still being processed; retry later.
    #[error("another request with this idempotency key is in progress")]
    IdempotencyKeyInUse,
    /// The idempotency key is empty or longer than 255 characters.
    #[error("idempotency key must be 1 to 255 characters")]
    InvalidIdempotencyKey,
    /// The session cannot be archived yet: it is still active, or has flagged money no
    /// resolution covers.
    #[error("checkout session {id} cannot be archived: {reason}")]
    NotArchivable {
        /// The session.
        id: SessionId,
        /// Why (`"active"`, `"unresolved flags"`).
        reason: &'static str,
    },
}

/// What a caller can do about a [`ServiceError`]; each kind maps to one HTTP status.
///
/// | kind | HTTP | meaning |
/// | --- | --- | --- |
/// | [`InvalidInput`](Self::InvalidInput) | 400 | the request is wrong; do not retry it unchanged |
/// | [`NotFound`](Self::NotFound) | 404 | no object with that id (or invoice, or address) |
/// | [`Conflict`](Self::Conflict) | 409 | the object's state does not allow it, or a concurrent request holds it |
/// | [`Unavailable`](Self::Unavailable) | 503 | a backend is down or busy; retry later |
/// | [`Internal`](Self::Internal) | 500 | a bug or corrupt data; retrying will not help |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is wrong.
    InvalidInput,
    /// The object does not exist.
    NotFound,
    /// The object's state does not allow the request.
    Conflict,
    /// A backend is unavailable.
    Unavailable,
    /// A bug or corrupt data.
    Internal,
}

impl ErrorKind {
    /// The HTTP status code for this kind (see the table on [`ErrorKind`]).
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidInput => 400,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl ServiceError {
    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Core(e) => core_kind(e),
            Self::Store(e) => match e {
                StoreError::Conflict => ErrorKind::Conflict,
                StoreError::Closed => ErrorKind::Unavailable,
                StoreError::Backend { retryable, .. } if *retryable => ErrorKind::Unavailable,
                StoreError::InvalidQuery(_) => ErrorKind::InvalidInput,
                _ => ErrorKind::Internal,
            },
            Self::Request(e) if e.is_retryable() => ErrorKind::Unavailable,
            // A generator that cannot make a request is misconfigured.
            Self::Request(_) => ErrorKind::Internal,
            Self::Rate(e) if e.is_retryable() => ErrorKind::Unavailable,
            Self::Rate(_) => ErrorKind::Internal,
            Self::UnknownSession(_) | Self::UnknownLink(_) => ErrorKind::NotFound,
            Self::IdempotencyConflict | Self::InvalidIdempotencyKey => ErrorKind::InvalidInput,
            Self::IdempotencyKeyInUse | Self::NotArchivable { .. } => ErrorKind::Conflict,
        }
    }

    /// Whether the same call may succeed later unchanged: a store conflict that outlasted
    /// the service's attempts, a backend that is down, a rate not yet refreshed, a
    /// concurrent request with the same idempotency key.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Request(e) => e.is_retryable(),
            Self::Rate(e) => e.is_retryable(),
            Self::IdempotencyKeyInUse => true,
            _ => false,
        }
    }
}

fn core_kind(e: &Error) -> ErrorKind {
    match e {
        Error::InvalidTransition { .. }
        | Error::QuoteAlreadyOpen(_)
        | Error::TransferAmountMismatch { .. }
        | Error::QuoteLimitReached { .. }
        | Error::LinkExpired => ErrorKind::Conflict,
        Error::UnknownPaymentRequest => ErrorKind::NotFound,
        // The generator's request does not fit the quote, or the clock ran backwards past
        // what the service corrects: neither is the caller's doing.
        Error::RequestMismatch(_) | Error::ClockWentBackwards { .. } => ErrorKind::Internal,
        _ => ErrorKind::InvalidInput,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;

    #[test]
    fn each_failure_has_the_kind_and_status_its_docs_say() {
        let store = |e| ServiceError::Store(e);
        let backend = |retryable| StoreError::Backend {
            message: String::new(),
            retryable,
        };
        let cases: Vec<(ServiceError, ErrorKind, u16, bool)> = vec![
            (
                Error::AmountTooLarge.into(),
                ErrorKind::InvalidInput,
                400,
                false,
            ),
            (
                Error::InvalidTransition {
                    action: "deactivate",
                    status: "paid",
                }
                .into(),
                ErrorKind::Conflict,
                409,
                false,
            ),
            (
                Error::UnknownPaymentRequest.into(),
                ErrorKind::NotFound,
                404,
                false,
            ),
            (
                Error::RequestMismatch("x").into(),
                ErrorKind::Internal,
                500,
                false,
            ),
            (
                ServiceError::UnknownSession(SessionId::generate()),
                ErrorKind::NotFound,
                404,
                false,
            ),
            (
                ServiceError::IdempotencyConflict,
                ErrorKind::InvalidInput,
                400,
                false,
            ),
            (
                ServiceError::IdempotencyKeyInUse,
                ErrorKind::Conflict,
                409,
                true,
            ),
            (store(StoreError::Conflict), ErrorKind::Conflict, 409, true),
            (store(backend(true)), ErrorKind::Unavailable, 503, true),
            (store(backend(false)), ErrorKind::Internal, 500, false),
            (
                store(crate::store::ListQueryError::ConflictingCursors.into()),
                ErrorKind::InvalidInput,
                400,
                false,
            ),
            (
                store(StoreError::Closed),
                ErrorKind::Unavailable,
                503,
                false,
            ),
            (
                RateError::Unavailable {
                    base: "USD",
                    target: "SATS",
                }
                .into(),
                ErrorKind::Unavailable,
                503,
                true,
            ),
            (
                RequestError::Backend {
                    message: String::new(),
                    retryable: true,
                }
                .into(),
                ErrorKind::Unavailable,
                503,
                true,
            ),
            (
                RequestError::IndexesExhausted.into(),
                ErrorKind::Internal,
                500,
                false,
            ),
        ];
        for (error, kind, status, retryable) in cases {
            assert_eq!(error.kind(), kind, "{error:?}");
            assert_eq!(error.kind().http_status(), status, "{error:?}");
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
        }
    }
}
