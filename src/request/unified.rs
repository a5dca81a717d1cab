//! BIP21 unified URIs: one QR code a wallet can pay on-chain or over Lightning.
//!
//! [`UnifiedUri::to_uri`] writes, depending on what the request has:
//!
//! | request               | URI                                                    |
//! |-----------------------|--------------------------------------------------------|
//! | address + invoice     | `bitcoin:<ADDRESS>?amount=<BTC>&lightning=<BOLT11>`    |
//! | address only          | `bitcoin:<ADDRESS>?amount=<BTC>`                       |
//! | invoice only          | `lightning:<BOLT11>`                                   |
//!
//! The scheme and the parameter names are lowercase, the widest-supported form. Bech32
//! addresses and BOLT11 invoices are UPPERCASED: both are case-insensitive, and uppercase
//! letters and digits fit the QR alphanumeric mode, which makes the code markedly smaller
//! than byte mode. Base58 addresses (`1…`, `3…`, `m…`, `n…`, `2…`) are case-sensitive and
//! written as given.
//!
//! The `amount` is in BTC, written exactly from an integer number of sats (no floating
//! point, no trailing zeros). On-chain outputs cannot carry millisatoshis, so an amount in
//! msats that is not a whole number of sats is **rounded up** to the next sat for the
//! on-chain `amount` ([`onchain_amount`]); the Lightning invoice keeps its exact msats.
//!
//! [`UnifiedUri::parse`] reads such URIs back, from any wallet: scheme and parameter names
//! case-insensitive, `label`/`message` percent-decoded, unknown parameters ignored, and
//! unknown `req-` parameters rejected as BIP21 requires. It checks the form only; with the
//! `onchain` feature, check the address with `onchain::validate_address`, and with
//! `lightning` the invoice with `lightning::parse_invoice`.
//!
//! ```
//! use bitcoin_checkout::money::Sats;
//! use bitcoin_checkout::request::unified::UnifiedUri;
//!
//! let uri = UnifiedUri {
//!     address: Some("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu".into()),
//!     amount: Some(Sats::new(150_000)),
//!     lightning: Some("lnbc1500n1example".into()),
//!     ..UnifiedUri::default()
//! };
//! let text = uri.to_uri()?;
//! assert_eq!(
//!     text,
//!     "bitcoin:BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU?amount=0.0015&lightning=LNBC1500N1EXAMPLE"
//! );
//! assert_eq!(UnifiedUri::parse(&text)?, uri);
//! # Ok::<(), bitcoin_checkout::request::RequestError>(())
//! ```

use crate::money::{MAX_MONEY_SATS, MSATS_PER_SAT, Msats, SATS_PER_BTC, Sats};
use crate::request::PaymentRequest;
use crate::request::error::{RequestError, truncate};

/// A BIP21 payment URI, with the `lightning` parameter of unified QR codes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnifiedUri {
    /// The on-chain address. Parsing lowercases bech32 addresses; base58 ones are kept as is.
    pub address: Option<String>,
    /// The on-chain amount, in whole sats (BIP21 `amount`, written in BTC).
    pub amount: Option<Sats>,
    /// The BOLT11 invoice, lowercase after parsing.
    pub lightning: Option<String>,
    /// BIP21 `label`: who is paid (a shop name).
    pub label: Option<String>,
    /// BIP21 `message`: what is paid for.
    pub message: Option<String>,
}

impl UnifiedUri {
    /// The URI for a quote's payment request, for `amount` (the quote's target).
    ///
    /// The on-chain `amount` is `amount` rounded **up** to whole sats ([`onchain_amount`]).
    ///
    /// ```
    /// use bitcoin_checkout::money::Msats;
    /// use bitcoin_checkout::request::PaymentRequest;
    /// use bitcoin_checkout::request::unified::UnifiedUri;
    ///
    /// let request = PaymentRequest {
    ///     lightning: None,
    ///     onchain_address: Some("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu".into()),
    /// };
    /// let uri = UnifiedUri::from_request(&request, Msats::new(2_500_001))?;
    /// assert_eq!(uri.to_uri()?, "bitcoin:BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU?amount=0.00002501");
    /// # Ok::<(), bitcoin_checkout::request::RequestError>(())
    /// ```
    pub fn from_request(request: &PaymentRequest, amount: Msats) -> Result<Self, RequestError> {
        if request.lightning.is_none() && request.onchain_address.is_none() {
            return Err(RequestError::NothingToPay);
        }
        Ok(Self {
            address: request.onchain_address.clone(),
            amount: Some(onchain_amount(amount)?),
            lightning: request
                .lightning
                .as_ref()
                .map(|l| l.payment_request.clone()),
            label: None,
            message: None,
        })
    }

    /// Writes the URI (see the [module docs](self) for the three forms).
    ///
    /// Without an address, the `lightning:` form carries the invoice alone: the invoice has
    /// its own amount and description, so `amount`, `label` and `message` are left out.
    pub fn to_uri(&self) -> Result<String, RequestError> {
        let lightning = self.lightning.as_deref().map(checked_bech32).transpose()?;
        let Some(address) = self.address.as_deref() else {
            return match lightning {
                Some(invoice) => Ok(format!("lightning:{invoice}")),
                None => Err(RequestError::NothingToPay),
            };
        };
        let mut params = Vec::new();
        if let Some(sats) = self.amount {
            params.push(format!("amount={}", btc_amount(checked_sats(sats.get())?)));
        }
        if let Some(label) = &self.label {
            params.push(format!("label={}", percent_encode(label)));
        }
        if let Some(message) = &self.message {
            params.push(format!("message={}", percent_encode(message)));
        }
        if let Some(invoice) = lightning {
            params.push(format!("lightning={invoice}"));
        }
        let mut uri = format!("bitcoin:{}", qr_address(address)?);
        if !params.is_empty() {
            uri.push('?');
            uri.push_str(&params.join("&"));
        }
        Ok(uri)
    }

    /// Reads a `bitcoin:` (BIP21, with optional `lightning=`) or `lightning:` URI.
    ///
    /// ```
    /// use bitcoin_checkout::money::Sats;
    /// use bitcoin_checkout::request::unified::UnifiedUri;
    ///
    /// let uri = UnifiedUri::parse(
    ///     "bitcoin:175tWpb8K1S7NmH4Zx6rewF9WQrcZv245W?amount=50&label=Luke-Jr&message=Donation%20for%20project%20xyz",
    /// )?;
    /// assert_eq!(uri.amount, Some(Sats::new(5_000_000_000)));
    /// assert_eq!(uri.message.as_deref(), Some("Donation for project xyz"));
    /// # Ok::<(), bitcoin_checkout::request::RequestError>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or(RequestError::InvalidUri("missing scheme"))?;
        if scheme.eq_ignore_ascii_case("lightning") {
            return Ok(Self {
                lightning: Some(checked_bech32(rest)?.to_ascii_lowercase()),
                ..Self::default()
            });
        }
        if !scheme.eq_ignore_ascii_case("bitcoin") {
            return Err(RequestError::InvalidUri(
                "scheme is neither bitcoin: nor lightning:",
            ));
        }
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Self {
            // `bitcoin:?lightning=…` (no address) is used by Lightning-only wallets.
            address: match address {
                "" => None,
                a => Some(normalize_address(a)?),
            },
            ..Self::default()
        };
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            uri.apply_param(&key.to_ascii_lowercase(), value)?;
        }
        if uri.address.is_none() && uri.lightning.is_none() {
            return Err(RequestError::NothingToPay);
        }
        Ok(uri)
    }

    /// Records one `key=value` parameter (key already lowercased).
    fn apply_param(&mut self, key: &str, value: &str) -> Result<(), RequestError> {
        match key {
            "amount" => set_once(&mut self.amount, "amount", parse_btc_amount(value)?),
            "label" => set_once(&mut self.label, "label", percent_decode(value)?),
            "message" => set_once(&mut self.message, "message", percent_decode(value)?),
            "lightning" => {
                let invoice = checked_bech32(&percent_decode(value)?)?.to_ascii_lowercase();
                set_once(&mut self.lightning, "lightning", invoice)
            }
            // BIP21: a `req-` parameter the reader does not understand invalidates the URI.
            k if k.starts_with("req-") => {
                Err(RequestError::UnsupportedRequiredParam { key: truncate(k) })
            }
            // Other unknown parameters (pj=, lno=, …) are optional by definition.
            _ => Ok(()),
        }
    }
}

/// The on-chain amount for a Lightning amount: whole sats, rounded **up**, so the on-chain
/// payment never falls short of the quote by a fraction of a sat.
///
/// ```
/// use bitcoin_checkout::money::{Msats, Sats};
/// use bitcoin_checkout::request::unified::onchain_amount;
///
/// assert_eq!(onchain_amount(Msats::new(1_000))?, Sats::new(1));
/// assert_eq!(onchain_amount(Msats::new(1_001))?, Sats::new(2));
/// # Ok::<(), bitcoin_checkout::request::RequestError>(())
/// ```
pub fn onchain_amount(amount: Msats) -> Result<Sats, RequestError> {
    let sats = amount.get().div_ceil(MSATS_PER_SAT);
    checked_sats(sats)
}

/// Sats as an exact BTC decimal: at most 8 decimals and no trailing zeros (`0.0015`, `50`).
///
/// ```
/// use bitcoin_checkout::money::Sats;
/// use bitcoin_checkout::request::unified::btc_amount;
///
/// assert_eq!(btc_amount(Sats::new(1)), "0.00000001");
/// assert_eq!(btc_amount(Sats::new(2_030_000_000)), "20.3");
/// assert_eq!(btc_amount(Sats::new(5_000_000_000)), "50");
/// ```
pub fn btc_amount(sats: Sats) -> String {
    let (whole, frac) = (sats.get() / SATS_PER_BTC, sats.get() % SATS_PER_BTC);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:08}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Reads a BIP21 amount (`*digit [ "." *digit ]`, in BTC) into sats, exactly.
///
/// ```
/// use bitcoin_checkout::money::Sats;
/// use bitcoin_checkout::request::RequestError;
/// use bitcoin_checkout::request::unified::parse_btc_amount;
///
/// assert_eq!(parse_btc_amount("20.3")?, Sats::new(2_030_000_000));
/// assert_eq!(parse_btc_amount("0.000000001"), Err(RequestError::TooManyDecimals));
/// assert_eq!(parse_btc_amount("21000000.00000001"), Err(RequestError::AmountTooLarge));
/// # Ok::<(), RequestError>(())
/// ```
pub fn parse_btc_amount(s: &str) -> Result<Sats, RequestError> {
    let invalid = || RequestError::InvalidAmount { got: truncate(s) };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + frac.len() == 0 || !all_digits(whole) || !all_digits(frac) {
        return Err(invalid());
    }
    if frac.len() > 8 {
        return Err(RequestError::TooManyDecimals);
    }
    let whole = whole.trim_start_matches('0');
    // 21 000 000 has 8 digits: anything longer is too large, and short enough never overflows.
    if whole.len() > 8 {
        return Err(RequestError::AmountTooLarge);
    }
    let parse = |p: &str| {
        if p.is_empty() {
            Ok(0)
        } else {
            p.parse::<u64>().map_err(|_| invalid())
        }
    };
    let frac_sats = parse(&format!("{frac:0<8}"))?;
    let sats = parse(whole)? * SATS_PER_BTC + frac_sats;
    checked_sats(sats)
}

/// Sats that are a payable amount: positive and at most 21 million BTC.
fn checked_sats(sats: u64) -> Result<Sats, RequestError> {
    match sats {
        0 => Err(RequestError::AmountNotPositive),
        s if s > MAX_MONEY_SATS => Err(RequestError::AmountTooLarge),
        s => Ok(Sats::new(s)),
    }
}

fn set_once<T>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), RequestError> {
    if slot.is_some() {
        return Err(RequestError::DuplicateParam { key });
    }
    *slot = Some(value);
    Ok(())
}

/// Bech32 addresses start with one of these human-readable parts (case-insensitively).
const BECH32_ADDRESS_PREFIXES: [&str; 3] = ["bc1", "tb1", "bcrt1"];

fn is_bech32_address(address: &str) -> bool {
    let lower = address.to_ascii_lowercase();
    BECH32_ADDRESS_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// An address in the form to put in a QR code: bech32 uppercased, base58 untouched.
fn qr_address(address: &str) -> Result<String, RequestError> {
    if address.is_empty() || !address.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(RequestError::InvalidUri(
            "address must be letters and digits",
        ));
    }
    Ok(if is_bech32_address(address) {
        address.to_ascii_uppercase()
    } else {
        address.to_owned()
    })
}

/// An address as read from a URI: bech32 lowercased (its canonical form), base58 untouched.
fn normalize_address(address: &str) -> Result<String, RequestError> {
    qr_address(address)?;
    Ok(if is_bech32_address(address) {
        address.to_ascii_lowercase()
    } else {
        address.to_owned()
    })
}

/// A BOLT11 invoice, uppercased for the QR code, after a character check.
fn checked_bech32(invoice: &str) -> Result<String, RequestError> {
    if invoice.is_empty() || !invoice.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(RequestError::InvalidUri(
            "Lightning invoice must be letters and digits",
        ));
    }
    Ok(invoice.to_ascii_uppercase())
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding; `+` stays a plus (RFC 3986 URIs, not HTML forms).
fn percent_decode(text: &str) -> Result<String, RequestError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Both digits checked: `from_str_radix` alone would accept a sign (`%+1`).
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let byte = hex.and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            out.push(byte.ok_or(RequestError::InvalidUri("bad percent-encoding"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RequestError::InvalidUri("parameter is not UTF-8"))
}
