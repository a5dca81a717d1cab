//! Errors of payment-request generation and parsing.
//!
//! Messages never echo keys or descriptors given by the caller: a descriptor pasted by
//! mistake with an `xprv` in it must not end up in a log through an error message.

/// Why a payment request could not be made or read.
///
/// ```
/// use bitcoin_checkout::request::RequestError;
/// use bitcoin_checkout::request::unified::UnifiedUri;
///
/// let err = UnifiedUri::parse("bitcoin:175tWpb8K1S7NmH4Zx6rewF9WQrcZv245W?req-x=1").unwrap_err();
/// assert!(matches!(err, RequestError::UnsupportedRequiredParam { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    // ---- amounts -----------------------------------------------------------------------
    /// An amount was above 21 million BTC.
    #[error("amount is more than 21 million BTC")]
    AmountTooLarge,
    /// An amount was zero where a payable amount is needed.
    #[error("amount must be positive")]
    AmountNotPositive,
    /// A BTC amount had more than 8 decimals (a fraction of a sat).
    #[error("BTC amounts have at most 8 decimals")]
    TooManyDecimals,
    /// A BTC amount was not a plain decimal number.
    #[error("invalid BTC amount {got:?}")]
    InvalidAmount {
        /// What was given (truncated).
        got: String,
    },

    // ---- backends ----------------------------------------------------------------------
    /// The generator has no source for this method (a [`Disabled`](super::Disabled) source).
    #[error("no {0} source is configured")]
    MethodDisabled(&'static str),
    /// A descriptor's derivation indexes are used up.
    #[error("derivation indexes exhausted")]
    IndexesExhausted,
    /// The preimage of a new invoice could not be kept, so the invoice is not handed out.
    #[error("the invoice's preimage could not be kept")]
    PreimageNotKept,
    /// A backend (a Lightning node, the store that reserves derivation indexes) failed;
    /// `retryable` says whether the same call may succeed later.
    #[error("payment request backend error: {message}")]
    Backend {
        /// What the backend said (never contains credentials).
        message: String,
        /// Whether retrying may help.
        retryable: bool,
    },

    // ---- networks ----------------------------------------------------------------------
    /// A key, address or invoice belongs to another network than the one configured.
    #[error("expected a {expected} key, address or invoice, got one for {found}")]
    NetworkMismatch {
        /// The network configured.
        expected: &'static str,
        /// The network of the input.
        found: &'static str,
    },
    /// The network is not supported for this kind of request.
    #[error("network {0} is not supported here")]
    UnsupportedNetwork(&'static str),

    // ---- on-chain ----------------------------------------------------------------------
    /// The output descriptor could not be parsed.
    #[error("invalid output descriptor: {reason}")]
    InvalidDescriptor {
        /// The parser's reason (never the descriptor itself).
        reason: String,
    },
    /// A private key (xprv, WIF) was given; only public keys and descriptors are accepted.
    #[error("a private key was given: give the public key or descriptor (xpub/tpub) instead")]
    SecretKeyGiven,
    /// The extended public key could not be parsed.
    #[error("invalid extended public key: {reason}")]
    InvalidExtendedKey {
        /// What is wrong (never the key itself).
        reason: &'static str,
    },
    /// The descriptor has no `/*` wildcard, so it describes one address only.
    #[error("the descriptor has no /* wildcard: it cannot derive fresh addresses")]
    NoWildcard,
    /// The descriptor derives hardened children after the xpub, which needs private keys.
    #[error(
        "the descriptor derives hardened children (*h or h after the xpub): impossible from a public key"
    )]
    HardenedDerivation,
    /// The descriptor has a multipath expression (`<0;1>`); give one path.
    #[error("multipath descriptors (<0;1>) are not supported: give the receive path only")]
    MultipathDescriptor,
    /// The descriptor has no address form (e.g. bare `pk(...)`).
    #[error("the descriptor has no address form")]
    NoAddressForm,
    /// A derivation index was hardened (≥ 2^31).
    #[error("derivation index {0} is out of range (must be below 2^31)")]
    IndexOutOfRange(u32),
    /// An address could not be parsed or is not a standard address type.
    #[error("invalid bitcoin address: {reason}")]
    InvalidAddress {
        /// What is wrong.
        reason: String,
    },

    // ---- lightning ---------------------------------------------------------------------
    /// The expiry time is not after the creation time.
    #[error("the invoice expiry must be at least one second after now")]
    ExpiryNotInFuture,
    /// An invoice would stay payable after the quote it is for has expired.
    #[error("the invoice expires {excess_secs} s after its quote")]
    InvoiceOutlivesQuote {
        /// How many seconds too long it lives.
        excess_secs: i64,
    },
    /// A time was outside what BOLT11 can encode (before 1970 or after year 3058).
    #[error("time is outside the range a BOLT11 invoice can encode")]
    TimestampOutOfRange,
    /// The invoice description is longer than 639 bytes.
    #[error("invoice description is longer than 639 bytes")]
    DescriptionTooLong,
    /// The invoice could not be built (a lightning-invoice creation error).
    #[error("invoice could not be created: {0}")]
    InvoiceCreation(String),
    /// A BOLT11 string could not be parsed or violates BOLT11.
    #[error("invalid BOLT11 invoice: {reason}")]
    InvalidInvoice {
        /// The parser's reason.
        reason: String,
    },
    /// The invoice signature does not verify.
    #[error("invalid BOLT11 invoice signature")]
    InvalidInvoiceSignature,
    /// The invoice amount differs from the amount expected.
    #[error("invoice amount is {found:?} msat, expected {expected} msat")]
    InvoiceAmountMismatch {
        /// Expected, msat.
        expected: u64,
        /// In the invoice, msat (`None`: any-amount invoice).
        found: Option<u64>,
    },

    // ---- unified URIs ------------------------------------------------------------------
    /// The string is not a `bitcoin:` or `lightning:` URI, or is malformed.
    #[error("invalid payment URI: {0}")]
    InvalidUri(&'static str),
    /// A `req-` parameter the parser does not know; BIP21 requires rejecting the URI.
    #[error("unsupported required parameter {key:?}")]
    UnsupportedRequiredParam {
        /// The parameter name (truncated).
        key: String,
    },
    /// A known parameter appeared twice, which makes the URI ambiguous.
    #[error("parameter {key:?} appears more than once")]
    DuplicateParam {
        /// The parameter name.
        key: &'static str,
    },
    /// The URI has neither an on-chain address nor a Lightning invoice.
    #[error("the payment request has neither an address nor a Lightning invoice")]
    NothingToPay,

    // ---- QR codes ----------------------------------------------------------------------
    /// The payload does not fit in the largest QR code at error-correction level M.
    #[error("payload is too long for a QR code")]
    QrDataTooLong,
    /// The QR encoder failed for another reason.
    #[error("QR encoding failed: {0}")]
    QrEncoding(String),
    /// The module size in pixels is outside 1..=32.
    #[error("QR module size must be 1 to 32 pixels, got {0}")]
    InvalidModuleSize(u32),
    /// The PNG encoder failed.
    #[error("PNG encoding failed: {0}")]
    PngEncoding(String),
}

impl RequestError {
    /// Whether the same call may succeed later (a backend that is down); every other
    /// variant is a bad input or configuration.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                retryable: true,
                ..
            }
        )
    }
}

/// Keeps caller input in error messages short.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(24).collect()
}

/// A short name for a network, for error messages.
#[cfg(any(feature = "lightning", feature = "onchain"))]
pub(crate) fn network_name(network: bitcoin::Network) -> &'static str {
    match network {
        bitcoin::Network::Bitcoin => "mainnet",
        bitcoin::Network::Testnet => "testnet",
        bitcoin::Network::Testnet4 => "testnet4",
        bitcoin::Network::Signet => "signet",
        bitcoin::Network::Regtest => "regtest",
    }
}
