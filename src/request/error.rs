//! Errors of payment-request generation and parsing.

/// Why a payment request could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Placeholder until the generators land.
    #[error("invalid payment request")]
    Invalid,
}
