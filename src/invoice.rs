//! What a quote's invoice says in its own string, checked against the quote.
//!
//! A generator returns a [`LightningInvoice`] whose fields (`payment_hash`, `expires_at`) it
//! states itself; the string is what the customer's wallet pays. A generator with a bug
//! could state the quote's terms while its BOLT11 asks a thousandth of the amount, so the
//! core reads the string back before it issues the quote:
//!
//! * a BOLT11 invoice (feature `lightning`) must decode, carry a valid signature, ask
//!   exactly the quote's amount (an any-amount invoice is refused), pay to the stated
//!   payment hash and expire when it states, no later than the quote;
//! * a test invoice (`lntest<msats>n1…`, as [`TestRequestGenerator`] and the test kit make
//!   them; no wallet can pay one and no BOLT11 human-readable part starts so) must name the
//!   quote's amount;
//! * without the `lightning` feature any other string is taken as stated: the crate cannot
//!   decode BOLT11 then. Applications that issue real invoices enable the feature (every
//!   adapter that talks to a Lightning backend does).
//!
//! [`TestRequestGenerator`]: crate::request::TestRequestGenerator

use time::OffsetDateTime;

use crate::error::Error;
use crate::money::Msats;
use crate::payment::LightningInvoice;

/// The prefix of the crate's unpayable test invoices.
const TEST_PREFIX: &str = "lntest";

/// Checks that `invoice`'s string asks `target` and expires no later than `quote_expires_at`.
pub(crate) fn check(
    invoice: &LightningInvoice,
    target: Msats,
    quote_expires_at: OffsetDateTime,
) -> Result<(), Error> {
    if invoice.expires_at > quote_expires_at {
        return Err(mismatch(
            "expires_at",
            quote_expires_at,
            invoice.expires_at,
            "no later than",
        ));
    }
    let text = invoice.payment_request.as_str();
    if let Some(rest) = strip_prefix_ignore_case(text, TEST_PREFIX) {
        return check_test_invoice(rest, target);
    }
    check_bolt11(invoice, target)
}

/// `lntest<msats>n1<anything>`: the amount is the digits before `n1`.
fn check_test_invoice(rest: &str, target: Msats) -> Result<(), Error> {
    let digits = rest.split_once("n1").map_or(rest, |(amount, _)| amount);
    let amount = digits
        .parse::<u64>()
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()));
    match amount {
        Some(m) if m == target.get() => Ok(()),
        Some(m) => Err(mismatch("amount_msat", target.get(), m, "exactly")),
        None => Err(Error::InvoiceMismatch {
            field: "payment_request",
            expected: "a test invoice lntest<msats>n1…".into(),
            found: format!("{TEST_PREFIX}{rest}"),
        }),
    }
}

/// What the check reads from a BOLT11 string.
#[cfg(feature = "lightning")]
struct Bolt11Terms {
    amount_msat: Option<u64>,
    payment_hash: [u8; 32],
    /// Unix seconds of its expiry.
    expires_secs: u64,
}

/// Decodes a BOLT11 string, its signature checked. An invoice with no feature field at all
/// (LNbits' FakeWallet writes them) is read too: whether wallets will pay it is the
/// generator's concern (see `request::lightning::parse_invoice`); this check is about
/// whether it asks what the quote says.
#[cfg(feature = "lightning")]
fn decode_bolt11(text: &str) -> Result<Bolt11Terms, String> {
    use bitcoin::hashes::Hash as _;
    use lightning_invoice::{
        Bolt11Invoice, Bolt11SemanticError, ParseOrSemanticError, SignedRawBolt11Invoice,
    };

    match text.parse::<Bolt11Invoice>() {
        Ok(decoded) => Ok(Bolt11Terms {
            amount_msat: decoded.amount_milli_satoshis(),
            payment_hash: decoded.payment_hash().to_byte_array(),
            expires_secs: decoded
                .duration_since_epoch()
                .as_secs()
                .saturating_add(decoded.expiry_time().as_secs()),
        }),
        Err(ParseOrSemanticError::SemanticError(Bolt11SemanticError::InvalidFeatures)) => {
            let signed: SignedRawBolt11Invoice = text.parse().map_err(|e| format!("{e}"))?;
            let raw = signed.raw_invoice();
            if raw.features().is_some() || !signed.check_signature() {
                return Err(Bolt11SemanticError::InvalidFeatures.to_string());
            }
            let payment_hash = raw
                .payment_hash()
                .ok_or("no payment hash")?
                .0
                .to_byte_array();
            let amount_msat = match raw.amount_pico_btc() {
                Some(pico) if !pico.is_multiple_of(10) => return Err("a fraction of a msat".into()),
                other => other.map(|p| p / 10),
            };
            let expiry = raw.expiry_time().map_or(3_600, |e| e.as_seconds());
            Ok(Bolt11Terms {
                amount_msat,
                payment_hash,
                expires_secs: raw
                    .data
                    .timestamp
                    .as_unix_timestamp()
                    .saturating_add(expiry),
            })
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(feature = "lightning")]
fn check_bolt11(invoice: &LightningInvoice, target: Msats) -> Result<(), Error> {
    let decoded =
        decode_bolt11(invoice.payment_request.trim()).map_err(|found| Error::InvoiceMismatch {
            field: "payment_request",
            expected: "a BOLT11 invoice".into(),
            found,
        })?;
    match decoded.amount_msat {
        Some(m) if m == target.get() => {}
        Some(m) => return Err(mismatch("amount_msat", target.get(), m, "exactly")),
        None => {
            return Err(Error::InvoiceMismatch {
                field: "amount_msat",
                expected: format!("exactly {}", target.get()),
                found: "no amount (an any-amount invoice)".into(),
            });
        }
    }
    if decoded.payment_hash != invoice.payment_hash.to_bytes() {
        return Err(mismatch(
            "payment_hash",
            invoice.payment_hash,
            crate::hash::Hash32::from_bytes(decoded.payment_hash),
            "the stated",
        ));
    }
    // BOLT11 times are whole seconds; the stated expiry may carry milliseconds.
    let secs = decoded.expires_secs;
    let stated = invoice.expires_at.unix_timestamp();
    if i64::try_from(secs).ok() != Some(stated) {
        return Err(mismatch(
            "expires_at (unix seconds)",
            stated,
            secs,
            "the stated",
        ));
    }
    Ok(())
}

#[cfg(not(feature = "lightning"))]
fn check_bolt11(_: &LightningInvoice, _: Msats) -> Result<(), Error> {
    Ok(())
}

fn mismatch(
    field: &'static str,
    expected: impl std::fmt::Display,
    found: impl std::fmt::Display,
    relation: &str,
) -> Error {
    Error::InvoiceMismatch {
        field,
        expected: format!("{relation} {expected}"),
        found: found.to_string(),
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}
