//! BOLT11 invoices: signed offline with a node key, or checked when a node made them.
//!
//! # Two ways to get an invoice for a quote
//!
//! **Offline, with [`Bolt11Signer`].** The application gives the secret key of the node
//! that will receive the payment; the signer writes and signs the BOLT11 invoice itself,
//! with no network access. The application supplies the 32-byte preimage and payment
//! secret, which **must come from a cryptographically secure random generator** (e.g.
//! `getrandom`/`OsRng`): anyone who can guess the preimage can claim the payment, and this
//! library deliberately holds no RNG. The returned [`SignedInvoice`] pairs the invoice with
//! its preimage: the receiving node needs that preimage to settle the payment, so hand it
//! to the node (e.g. LND's `AddHoldInvoice`/settle, or a custom LDK payment store).
//!
//! **From a real Lightning node (LND, Core Lightning, LDK).** An adapter calls the node's
//! create-invoice RPC with
//!
//! * the quote's amount **in msat** (`value_msat` for LND `AddInvoice`, `amount_msat` for
//!   CLN `invoice`, `amount_msats` for LDK `create_bolt11_invoice`),
//! * a description (LND `memo`, CLN `description`, LDK `description`),
//! * an expiry of `quote.expires_at − now` in whole seconds, rounded **down** (LND `expiry`,
//!   CLN `expiry`, LDK `invoice_expiry_delta_secs`), so the invoice is never payable after
//!   its quote,
//!
//! and returns the node's BOLT11 string and payment hash as a
//! [`LightningInvoice`]. The node keeps the preimage. A node
//! whose clock runs ahead, or that applies a minimum expiry, can still issue an invoice that
//! outlives the quote: [`parse_invoice`] + [`ParsedInvoice::for_quote`] check the signature,
//! network, amount and expiry of what came back.
//!
//! ```
//! use bitcoin_checkout::money::Msats;
//! use bitcoin_checkout::request::LightningInvoice;
//! use bitcoin_checkout::request::lightning::{parse_invoice, Network};
//! use time::OffsetDateTime;
//!
//! /// What the application's node client offers (an LND, CLN or LDK wrapper).
//! trait NodeClient {
//!     /// Creates an invoice; returns the BOLT11 string and the payment hash.
//!     fn add_invoice(&self, msat: u64, memo: &str, expiry_secs: u64) -> Result<(String, [u8; 32]), String>;
//! }
//!
//! /// The adapter: one invoice per quote, checked before it is shown to a customer.
//! fn invoice_for_quote(
//!     node: &dyn NodeClient,
//!     network: Network,
//!     amount: Msats,
//!     memo: &str,
//!     quote_expires_at: OffsetDateTime,
//!     now: OffsetDateTime,
//! ) -> Result<LightningInvoice, String> {
//!     // Whole seconds, rounded down: the invoice must not outlive the quote.
//!     let expiry_secs = u64::try_from((quote_expires_at - now).whole_seconds())
//!         .ok()
//!         .filter(|s| *s > 0)
//!         .ok_or("quote already expired")?;
//!     let (bolt11, hash) = node.add_invoice(amount.get(), memo, expiry_secs)?;
//!     let invoice = parse_invoice(&bolt11)
//!         .and_then(|parsed| parsed.for_quote(network, amount, quote_expires_at))
//!         .map_err(|e| e.to_string())?;
//!     if invoice.payment_hash.to_bytes() != hash {
//!         return Err("node returned a payment hash that is not the invoice's".into());
//!     }
//!     Ok(invoice)
//! }
//! # use bitcoin_checkout::request::lightning::{Bolt11Signer, InvoiceDescription};
//! # use bitcoin::secp256k1::SecretKey;
//! # // A stand-in node for this example: it signs locally instead of calling an RPC.
//! # struct LocalNode(Bolt11Signer, OffsetDateTime);
//! # impl NodeClient for LocalNode {
//! #     fn add_invoice(&self, msat: u64, memo: &str, expiry_secs: u64) -> Result<(String, [u8; 32]), String> {
//! #         let expires = self.1 + time::Duration::seconds(expiry_secs as i64);
//! #         let signed = self.0.invoice(Msats::new(msat), InvoiceDescription::Direct(memo.into()),
//! #             expires, self.1, [7; 32], [9; 32]).map_err(|e| e.to_string())?;
//! #         Ok((signed.invoice.payment_request, signed.invoice.payment_hash.to_bytes()))
//! #     }
//! # }
//! # let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
//! # let key = SecretKey::from_slice(&[1; 32]).unwrap();
//! # let node = LocalNode(Bolt11Signer::new(key, Network::Regtest), now);
//! let expires = now + time::Duration::minutes(10);
//! let invoice = invoice_for_quote(&node, Network::Regtest, Msats::new(25_000_000), "Order 42", expires, now)?;
//! assert!(invoice.payment_request.starts_with("lnbcrt250u1"));
//! assert_eq!(invoice.expires_at, expires);
//! # Ok::<(), String>(())
//! ```

use std::fmt;
use std::time::Duration;

use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{All, Secp256k1};
use lightning_invoice::{
    Bolt11Invoice, Bolt11InvoiceDescription, Bolt11InvoiceDescriptionRef, Bolt11SemanticError,
    CreationError, Currency, Description, InvoiceBuilder, MAX_TIMESTAMP, ParseOrSemanticError,
    PaymentSecret, Sha256, SignedRawBolt11Invoice,
};
use time::OffsetDateTime;

use crate::money::{MAX_MONEY_SATS, MSATS_PER_SAT, Msats};
use crate::request::error::network_name;
use crate::request::{Hash32, LightningInvoice, PaymentHash, RequestError};

/// The network an invoice is for (rust-bitcoin's; `Bitcoin` is mainnet).
pub use bitcoin::Network;
/// Node keys, re-exported from the `bitcoin` crate this module uses.
pub use bitcoin::secp256k1::{PublicKey, SecretKey};

/// The default `min_final_cltv_expiry_delta`, in blocks: BOLT11's default.
pub const DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA: u16 = 18;

/// What an invoice says it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceDescription {
    /// A text shown by the payer's wallet (at most 639 bytes).
    Direct(String),
    /// The SHA-256 of a description given out of band (e.g. LNURL metadata).
    Hash([u8; 32]),
}

/// A payment preimage: whoever knows it can settle the payment. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Preimage([u8; 32]);

impl Preimage {
    /// Wraps 32 bytes; they must come from a secure random generator.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, to give to the node that settles the payment.
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// `sha256(preimage)`, the payment hash the invoice is locked to.
    pub fn payment_hash(&self) -> PaymentHash {
        Hash32::from_bytes(sha256::Hash::hash(&self.0).to_byte_array())
    }
}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Preimage(<redacted>)")
    }
}

/// An invoice signed by [`Bolt11Signer`], with the secrets the receiving node needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInvoice {
    /// The invoice to show the customer.
    pub invoice: LightningInvoice,
    /// The preimage of `invoice.payment_hash`; keep it secret until the payment settles.
    pub preimage: Preimage,
    /// The payment secret written in the invoice (the node checks incoming HTLCs carry it).
    pub payment_secret: [u8; 32],
}

/// Signs BOLT11 invoices offline with an application-supplied node key.
///
/// ```
/// use bitcoin::secp256k1::SecretKey;
/// use bitcoin_checkout::money::Msats;
/// use bitcoin_checkout::request::lightning::{parse_invoice, Bolt11Signer, InvoiceDescription, Network};
/// use time::{Duration, OffsetDateTime};
///
/// let key = SecretKey::from_slice(&[0x11; 32])?; // from the node's key store, not a constant
/// let signer = Bolt11Signer::new(key, Network::Bitcoin);
/// let now = OffsetDateTime::from_unix_timestamp(1_700_000_000)?;
/// // Preimage and payment secret: 32 random bytes each from a CSPRNG in real use.
/// let signed = signer.invoice(
///     Msats::new(1_500_000),
///     InvoiceDescription::Direct("Coffee".into()),
///     now + Duration::minutes(10),
///     now,
///     [0x22; 32],
///     [0x33; 32],
/// )?;
/// let parsed = parse_invoice(&signed.invoice.payment_request)?;
/// assert_eq!(parsed.payee, signer.node_id());
/// assert_eq!(parsed.payment_hash, signed.preimage.payment_hash());
/// assert_eq!(parsed.expiry_secs, 600);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Bolt11Signer {
    secret: SecretKey,
    node_id: PublicKey,
    network: Network,
    min_final_cltv_expiry_delta: u16,
    secp: Secp256k1<All>,
}

impl fmt::Debug for Bolt11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The node id is public; the secret key never appears.
        f.debug_struct("Bolt11Signer")
            .field("node_id", &self.node_id)
            .field("network", &self.network)
            .field(
                "min_final_cltv_expiry_delta",
                &self.min_final_cltv_expiry_delta,
            )
            .finish_non_exhaustive()
    }
}

impl Bolt11Signer {
    /// A signer for `network` with the node's secret key.
    pub fn new(node_secret: SecretKey, network: Network) -> Self {
        let secp = Secp256k1::new();
        let node_id = PublicKey::from_secret_key(&secp, &node_secret);
        Self {
            secret: node_secret,
            node_id,
            network,
            min_final_cltv_expiry_delta: DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
            secp,
        }
    }

    /// Sets the `min_final_cltv_expiry_delta` written in invoices; use the receiving node's
    /// own minimum (LDK nodes, for instance, require at least 24).
    pub fn with_min_final_cltv_expiry_delta(mut self, blocks: u16) -> Self {
        self.min_final_cltv_expiry_delta = blocks;
        self
    }

    /// The node's public key (the payee recovered from every invoice's signature).
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    /// The network invoices are for.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Signs an invoice for `amount`, payable from `now` until `expires_at`.
    ///
    /// The invoice timestamp is `now` rounded down to the second and its expiry is
    /// `expires_at` rounded down minus that, so it is never payable after `expires_at`;
    /// the returned [`LightningInvoice::expires_at`] is that exact instant. `preimage` and
    /// `payment_secret` must be fresh random bytes for every invoice.
    ///
    /// Amounts must be positive and at most 21 million BTC; BOLT11 as encoded by
    /// lightning-invoice (u64 pico-BTC) stops at about 18.4 million BTC, and larger amounts
    /// are [`RequestError::AmountTooLarge`] too.
    pub fn invoice(
        &self,
        amount: Msats,
        description: InvoiceDescription,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        preimage: [u8; 32],
        payment_secret: [u8; 32],
    ) -> Result<SignedInvoice, RequestError> {
        check_amount(amount)?;
        let created = u64::try_from(now.unix_timestamp())
            .ok()
            .filter(|s| *s <= MAX_TIMESTAMP)
            .ok_or(RequestError::TimestampOutOfRange)?;
        let expiry = u64::try_from(expires_at.unix_timestamp() - now.unix_timestamp())
            .ok()
            .filter(|s| *s > 0)
            .ok_or(RequestError::ExpiryNotInFuture)?;
        let preimage = Preimage::from_bytes(preimage);
        let payment_hash = preimage.payment_hash();
        let invoice = InvoiceBuilder::new(currency(self.network))
            .amount_milli_satoshis(amount.get())
            .invoice_description(bolt11_description(description)?)
            .payment_hash(sha256::Hash::from_byte_array(payment_hash.to_bytes()))
            .payment_secret(PaymentSecret(payment_secret))
            .duration_since_epoch(Duration::from_secs(created))
            .expiry_time(Duration::from_secs(expiry))
            .min_final_cltv_expiry_delta(u64::from(self.min_final_cltv_expiry_delta))
            .build_signed(|message| self.secp.sign_ecdsa_recoverable(message, &self.secret))
            .map_err(creation_error)?;
        Ok(SignedInvoice {
            invoice: LightningInvoice {
                payment_request: invoice.to_string(),
                payment_hash,
                expires_at: unix_time(created.saturating_add(expiry)),
            },
            preimage,
            payment_secret,
        })
    }
}

/// A BOLT11 invoice whose signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedInvoice {
    /// The invoice in canonical (lowercase) form.
    pub payment_request: String,
    /// Its network.
    pub network: Network,
    /// Its amount (`None` for an any-amount invoice).
    pub amount: Option<Msats>,
    /// The payment hash.
    pub payment_hash: PaymentHash,
    /// The payment secret.
    pub payment_secret: [u8; 32],
    /// The payee: the node key that signed it.
    pub payee: PublicKey,
    /// Creation time (the invoice timestamp).
    pub created_at: OffsetDateTime,
    /// Seconds from creation until it expires.
    pub expiry_secs: u64,
    /// When it expires (`created_at + expiry_secs`, capped at the year 9999).
    pub expires_at: OffsetDateTime,
    /// Its description or description hash.
    pub description: InvoiceDescription,
    /// Blocks the final HTLC must have left.
    pub min_final_cltv_expiry_delta: u64,
}

/// Parses a BOLT11 invoice (a `lightning:` prefix is allowed) and checks its signature.
///
/// ```
/// use bitcoin_checkout::request::RequestError;
/// use bitcoin_checkout::request::lightning::parse_invoice;
///
/// assert!(matches!(parse_invoice("lnbc1garbage"), Err(RequestError::InvalidInvoice { .. })));
/// ```
pub fn parse_invoice(bolt11: &str) -> Result<ParsedInvoice, RequestError> {
    parse(bolt11, true)
}

/// Like [`parse_invoice`], but also takes an invoice with no feature field (`9`) at all.
///
/// BOLT11 requires writers to set the field (with the payment-secret feature), and
/// wallets built on LDK refuse an invoice without it; LNbits' FakeWallet test backend
/// omits it. Use this only for invoices from a backend you trust to be payable, such as
/// a test server; everything else (signature, amount, hash, secret, expiry) is checked
/// as strictly.
pub fn parse_invoice_without_features(bolt11: &str) -> Result<ParsedInvoice, RequestError> {
    parse(bolt11, false)
}

fn parse(bolt11: &str, require_features: bool) -> Result<ParsedInvoice, RequestError> {
    let text = bolt11.trim();
    let text = match text.get(..10) {
        Some(prefix) if prefix.eq_ignore_ascii_case("lightning:") => &text[10..],
        _ => text,
    };
    // `from_str` checks the signature (it must recover a key, or match the `n` field).
    let invoice: Bolt11Invoice = match text.parse() {
        Ok(invoice) => invoice,
        Err(ParseOrSemanticError::SemanticError(Bolt11SemanticError::InvalidFeatures))
            if !require_features =>
        {
            return parse_featureless(text);
        }
        Err(e) => return Err(invalid(e)),
    };
    let network = network_of(invoice.currency())?;
    let amount = match invoice.amount_milli_satoshis() {
        Some(msat) => Some(check_amount(Msats::new(msat))?),
        None => None,
    };
    let created_secs = invoice.duration_since_epoch().as_secs();
    let expiry_secs = invoice.expiry_time().as_secs();
    Ok(ParsedInvoice {
        payment_request: invoice.to_string(),
        network,
        amount,
        payment_hash: Hash32::from_bytes(invoice.payment_hash().to_byte_array()),
        payment_secret: invoice.payment_secret().0,
        payee: invoice.recover_payee_pub_key(),
        created_at: unix_time(created_secs),
        expiry_secs,
        expires_at: unix_time(created_secs.saturating_add(expiry_secs)),
        description: match invoice.description() {
            Bolt11InvoiceDescriptionRef::Direct(d) => {
                InvoiceDescription::Direct(d.as_inner().0.clone())
            }
            Bolt11InvoiceDescriptionRef::Hash(h) => InvoiceDescription::Hash(h.0.to_byte_array()),
        },
        min_final_cltv_expiry_delta: invoice.min_final_cltv_expiry_delta(),
    })
}

fn invalid(e: ParseOrSemanticError) -> RequestError {
    match e {
        ParseOrSemanticError::SemanticError(Bolt11SemanticError::InvalidSignature) => {
            RequestError::InvalidInvoiceSignature
        }
        other => RequestError::InvalidInvoice {
            reason: other.to_string(),
        },
    }
}

fn network_of(currency: Currency) -> Result<Network, RequestError> {
    Ok(match currency {
        Currency::Bitcoin => Network::Bitcoin,
        Currency::BitcoinTestnet => Network::Testnet,
        Currency::Signet => Network::Signet,
        Currency::Regtest => Network::Regtest,
        Currency::Simnet => return Err(RequestError::UnsupportedNetwork("simnet")),
    })
}

/// An invoice whose only defect is a missing feature field: the other semantic checks of
/// lightning-invoice, done on the raw fields (the signature first).
fn parse_featureless(text: &str) -> Result<ParsedInvoice, RequestError> {
    let semantic = |e| invalid(ParseOrSemanticError::SemanticError(e));
    let signed: SignedRawBolt11Invoice =
        text.parse().map_err(|e| RequestError::InvalidInvoice {
            reason: format!("{e}"),
        })?;
    let raw = signed.raw_invoice();
    if raw.features().is_some() {
        // Features present but unacceptable: refused as by the strict parser.
        return Err(semantic(Bolt11SemanticError::InvalidFeatures));
    }
    if !signed.check_signature() {
        return Err(RequestError::InvalidInvoiceSignature);
    }
    let payee = match raw.payee_pub_key() {
        Some(key) => key.0,
        None => {
            signed
                .recover_payee_pub_key()
                .map_err(|_| semantic(Bolt11SemanticError::InvalidSignature))?
                .0
        }
    };
    let payment_hash = raw
        .payment_hash()
        .ok_or_else(|| semantic(Bolt11SemanticError::NoPaymentHash))?;
    let payment_secret = raw
        .payment_secret()
        .ok_or_else(|| semantic(Bolt11SemanticError::NoPaymentSecret))?;
    let description = match (raw.description(), raw.description_hash()) {
        (Some(d), None) => InvoiceDescription::Direct(d.as_inner().0.clone()),
        (None, Some(h)) => InvoiceDescription::Hash(h.0.to_byte_array()),
        (None, None) => return Err(semantic(Bolt11SemanticError::NoDescription)),
        (Some(_), Some(_)) => return Err(semantic(Bolt11SemanticError::MultipleDescriptions)),
    };
    let amount = match raw.amount_pico_btc() {
        // 10 pico-BTC per msat; a fraction of a msat is refused, never rounded.
        Some(pico) if !pico.is_multiple_of(10) => {
            return Err(semantic(Bolt11SemanticError::ImpreciseAmount));
        }
        Some(pico) => Some(check_amount(Msats::new(pico / 10))?),
        None => None,
    };
    let created_secs = raw.data.timestamp.as_unix_timestamp();
    // BOLT11 defaults: an hour of expiry, 18 blocks of final CLTV delta.
    let expiry_secs = raw.expiry_time().map_or(3_600, |e| e.as_seconds());
    let min_final = raw
        .min_final_cltv_expiry_delta()
        .map_or(u64::from(DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA), |d| d.0);
    Ok(ParsedInvoice {
        payment_request: signed.to_string(),
        network: network_of(raw.currency())?,
        amount,
        payment_hash: Hash32::from_bytes(payment_hash.0.to_byte_array()),
        payment_secret: payment_secret.0,
        payee,
        created_at: unix_time(created_secs),
        expiry_secs,
        expires_at: unix_time(created_secs.saturating_add(expiry_secs)),
        description,
        min_final_cltv_expiry_delta: min_final,
    })
}

impl ParsedInvoice {
    /// The invoice as a quote's [`LightningInvoice`], after checking it is for `network`,
    /// asks exactly `amount`, and expires no later than the quote (`quote_expires_at`).
    pub fn for_quote(
        self,
        network: Network,
        amount: Msats,
        quote_expires_at: OffsetDateTime,
    ) -> Result<LightningInvoice, RequestError> {
        if currency(self.network) != currency(network) {
            return Err(RequestError::NetworkMismatch {
                expected: network_name(network),
                found: network_name(self.network),
            });
        }
        if self.amount != Some(amount) {
            return Err(RequestError::InvoiceAmountMismatch {
                expected: amount.get(),
                found: self.amount.map(Msats::get),
            });
        }
        if self.expires_at > quote_expires_at {
            let excess = self.expires_at - quote_expires_at;
            let round_up = i64::from(excess.subsec_nanoseconds() > 0);
            return Err(RequestError::InvoiceOutlivesQuote {
                excess_secs: excess.whole_seconds() + round_up,
            });
        }
        Ok(LightningInvoice {
            payment_request: self.payment_request,
            payment_hash: self.payment_hash,
            expires_at: self.expires_at,
        })
    }
}

/// The BOLT11 currency (invoice prefix) of a network; testnet4 shares testnet's `lntb`.
fn currency(network: Network) -> Currency {
    match network {
        Network::Bitcoin => Currency::Bitcoin,
        Network::Testnet | Network::Testnet4 => Currency::BitcoinTestnet,
        Network::Signet => Currency::Signet,
        Network::Regtest => Currency::Regtest,
    }
}

/// A payable invoice amount: positive and at most 21 million BTC.
fn check_amount(amount: Msats) -> Result<Msats, RequestError> {
    match amount.get() {
        0 => Err(RequestError::AmountNotPositive),
        m if m > MAX_MONEY_SATS * MSATS_PER_SAT => Err(RequestError::AmountTooLarge),
        _ => Ok(amount),
    }
}

fn bolt11_description(
    description: InvoiceDescription,
) -> Result<Bolt11InvoiceDescription, RequestError> {
    Ok(match description {
        InvoiceDescription::Direct(text) => {
            Bolt11InvoiceDescription::Direct(Description::new(text).map_err(creation_error)?)
        }
        InvoiceDescription::Hash(hash) => {
            Bolt11InvoiceDescription::Hash(Sha256(sha256::Hash::from_byte_array(hash)))
        }
    })
}

fn creation_error(error: CreationError) -> RequestError {
    match error {
        CreationError::DescriptionTooLong => RequestError::DescriptionTooLong,
        CreationError::TimestampOutOfBounds => RequestError::TimestampOutOfRange,
        CreationError::InvalidAmount => RequestError::AmountTooLarge,
        other => RequestError::InvoiceCreation(other.to_string()),
    }
}

/// Unix seconds as a time, capped at the largest time `time` represents (year 9999): a
/// foreign invoice may carry an expiry of centuries.
fn unix_time(secs: u64) -> OffsetDateTime {
    let max = time::PrimitiveDateTime::MAX.assume_utc();
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or(max, |t| t.min(max))
}

/// An [`InvoiceSource`](crate::request::InvoiceSource) that signs each quote's invoice
/// offline with a [`Bolt11Signer`]: for regtest, demos and self-custodial nodes that hold
/// their own keys.
///
/// For every invoice it draws a preimage and a payment secret from `entropy` (which must be
/// a cryptographically secure generator) and hands the [`SignedInvoice`] to `keep` before
/// the invoice is shown, so the node that settles payments knows the preimage. If `keep`
/// fails, no invoice is issued.
pub struct OfflineInvoices {
    signer: Bolt11Signer,
    entropy: Box<dyn Fn() -> [u8; 32] + Send + Sync>,
    keep: Box<KeepFn>,
}

/// Receives each signed invoice (with its preimage) before the invoice is shown.
type KeepFn = dyn Fn(&SignedInvoice) -> Result<(), String> + Send + Sync;

impl OfflineInvoices {
    /// A source signing with `signer`, drawing secrets from `entropy` and handing each
    /// signed invoice to `keep`.
    pub fn new(
        signer: Bolt11Signer,
        entropy: impl Fn() -> [u8; 32] + Send + Sync + 'static,
        keep: impl Fn(&SignedInvoice) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            signer,
            entropy: Box::new(entropy),
            keep: Box::new(keep),
        }
    }
}

impl fmt::Debug for OfflineInvoices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflineInvoices")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl crate::request::InvoiceSource for OfflineInvoices {
    fn invoice(
        &self,
        session: &crate::session::CheckoutSession,
        terms: &crate::session::QuoteTerms,
    ) -> Result<LightningInvoice, RequestError> {
        let memo = crate::request::quote_memo(session);
        let signed = self.signer.invoice(
            terms.target_msats(),
            InvoiceDescription::Direct(memo),
            terms.expires_at(),
            terms.issued_at(),
            (self.entropy)(),
            (self.entropy)(),
        )?;
        (self.keep)(&signed).map_err(|_| RequestError::PreimageNotKept)?;
        Ok(signed.invoice)
    }
}
