//! Build a complete payment request for a price: on-chain address, signed BOLT11 invoice,
//! unified BIP21 URI and its QR code, printed as JSON.
//!
//! ```text
//! cargo run --example payment_request --features lightning,onchain,qr-png -- \
//!     --amount 25 --currency USD --rate 0.00001 --qr-png out.png --qr-svg out.svg
//! ```
//!
//! Flags:
//!
//! * `--amount <decimal>`   price in `--currency` (required), e.g. `25` or `19.99`
//! * `--currency <code>`    ISO 4217 code, `BTC` or `SATS` (default `USD`); used here only to
//!   check the amount's decimals and to label the output
//! * `--rate <decimal>`     BTC per one unit of the currency (required), e.g. `0.00001`
//! * `--network <name>`     `mainnet`, `testnet`, `testnet4`, `signet` or `regtest`
//!   (default `regtest`)
//! * `--descriptor <text>`  output descriptor or account xpub/tpub/zpub/vpub to derive the
//!   address from (default: the BIP84 test-vector account key, see below)
//! * `--qr-png <path>`      write the QR code as PNG (needs the `qr-png` feature)
//! * `--qr-svg <path>`      write the QR code as SVG
//! * `--qr-terminal`        also draw the QR code on stderr
//!
//! It creates a checkout session (in memory) and prints the session's current payment: the
//! target is `ceil(amount × rate × 10^8)` sats, computed with exact decimals.
//!
//! **DEMO ONLY.** The default descriptor is the account key of the public "abandon abandon
//! … about" test mnemonic, and the invoice is signed with a fixed node key and a fixed
//! preimage: anyone can spend or settle them. A real application derives from its own xpub,
//! signs with its node's key (or asks its node, see `request::lightning`) and takes the
//! preimage and payment secret from a CSPRNG for every invoice.

use std::process::ExitCode;
use std::str::FromStr;

use bitcoin::secp256k1::SecretKey;
use bitcoin_checkout::Checkout;
use bitcoin_checkout::money::{Currency, TargetCurrency};
use bitcoin_checkout::qr;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::RequestError;
use bitcoin_checkout::request::lightning::{Bolt11Signer, OfflineInvoices};
use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses, Network};
use bitcoin_checkout::request::unified::UnifiedUri;
use bitcoin_checkout::request::{MemoryAddressIndex, RequestGenerator};
use bitcoin_checkout::service::ServiceError;
use bitcoin_checkout::session::SessionParams;
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::{Decimal, Duration, OffsetDateTime};
use serde::Serialize;

/// BIP84 account 0 of the public test mnemonic (m/84'/0'/0'); DEMO ONLY.
const DEMO_MAINNET_DESCRIPTOR: &str = "wpkh([73c5da0a/84h/0h/0h]xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V/0/*)";
/// The same mnemonic's test-network account (m/84'/1'/0'); DEMO ONLY.
const DEMO_TEST_DESCRIPTOR: &str = "wpkh([73c5da0a/84h/1h/0h]tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M/0/*)";
/// A fixed node key, and fixed bytes for every preimage and payment secret; DEMO ONLY: real
/// ones are secret and come from a CSPRNG for every invoice.
const DEMO_NODE_KEY: [u8; 32] = [0x01; 32];
const DEMO_PREIMAGE: [u8; 32] = [0x02; 32];
/// How long the invoice (the quote) stays payable.
const QUOTE_TTL: Duration = Duration::seconds(600);
/// PNG pixels per QR module.
const PNG_MODULE_PX: u32 = 8;

const USAGE: &str = "usage: payment_request --amount <decimal> --rate <BTC per unit> [--currency USD] \
[--network regtest] [--descriptor <descriptor or xpub>] [--qr-png <path>] [--qr-svg <path>] [--qr-terminal]";

/// Everything that can stop the example, printed as `error: …`.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error(transparent)]
    Money(#[from] bitcoin_checkout::Error),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Checkout(#[from] ServiceError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("demo node key rejected: {0}")]
    DemoKey(bitcoin::secp256k1::Error),
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The command line after parsing.
struct Options {
    amount: Decimal,
    currency: Currency,
    rate: Decimal,
    network: Network,
    descriptor: Option<String>,
    qr_png: Option<String>,
    qr_svg: Option<String>,
    qr_terminal: bool,
}

/// The JSON printed on stdout.
#[derive(Serialize)]
struct Output {
    checkout_session: String,
    payment: String,
    lightning: LightningOut,
    onchain: OnchainOut,
    unified_uri: String,
    /// BTC to pay.
    #[serde(with = "bitcoin_checkout::json::decimal_number")]
    target_amount: Decimal,
    /// The same in sats.
    target_amount_sats: u64,
    target_currency: &'static str,
    #[serde(with = "bitcoin_checkout::json::decimal_number")]
    amount: Decimal,
    currency: &'static str,
    /// BTC per unit of `currency`.
    #[serde(with = "bitcoin_checkout::json::decimal_number")]
    exchange_rate: Decimal,
    /// Unix milliseconds.
    #[serde(with = "bitcoin_checkout::json::millis")]
    expires_at: OffsetDateTime,
}

#[derive(Serialize)]
struct LightningOut {
    payment_request: String,
    payment_hash: String,
}

#[derive(Serialize)]
struct OnchainOut {
    address: String,
    network: String,
    descriptor: String,
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), AppError> {
    let options = parse_args(args)?;

    // A checkout session priced in `--currency`, paid in BTC at the given rate.
    let rates = FixedRates::new().with(options.currency, TargetCurrency::Btc, options.rate);
    let descriptor = options
        .descriptor
        .clone()
        .unwrap_or_else(|| default_descriptor(options.network).into());
    let deriver = AddressDeriver::new(&descriptor, options.network)?;
    let descriptor = deriver.descriptor();
    // DEMO ONLY: a fixed node key and fixed secrets (see the top of the file).
    let node_key = SecretKey::from_slice(&DEMO_NODE_KEY).map_err(AppError::DemoKey)?;
    let invoices = OfflineInvoices::new(
        Bolt11Signer::new(node_key, options.network),
        || DEMO_PREIMAGE,
        |_signed| Ok(()),
    );
    let generator = RequestGenerator::new()
        .lightning(invoices)
        .onchain(DerivedAddresses::new(deriver, MemoryAddressIndex::new()));
    let checkout = Checkout::new(MemoryStore::new(), rates, generator);
    let params = SessionParams::new(options.amount, options.currency)
        .target_currency(TargetCurrency::Btc)
        .ttl_secs(QUOTE_TTL.whole_seconds())
        .statement_descriptor(format!(
            "{} {} (demo)",
            options.amount,
            options.currency.code()
        ));
    let session = checkout.create(params, None)?;
    let payment = session
        .open_payment()
        .ok_or(AppError::Usage("the session has no open payment".into()))?;
    let request = payment.request();
    let invoice = request
        .lightning
        .clone()
        .ok_or(AppError::Usage("no invoice".into()))?;
    let address = request
        .onchain_address
        .clone()
        .ok_or(AppError::Usage("no address".into()))?;
    let uri = UnifiedUri::from_request(request, payment.target_msats())?.to_uri()?;
    write_qr_codes(&options, &uri)?;

    let output = Output {
        checkout_session: session.id().to_string(),
        payment: payment.id().to_string(),
        lightning: LightningOut {
            payment_request: invoice.payment_request,
            payment_hash: invoice.payment_hash.to_string(),
        },
        onchain: OnchainOut {
            address,
            network: options.network.to_string(),
            descriptor,
        },
        unified_uri: uri,
        target_amount: payment.target().to_btc(),
        target_amount_sats: payment.target().get(),
        target_currency: TargetCurrency::Btc.code(),
        amount: session.amount(),
        currency: options.currency.code(),
        exchange_rate: payment.rate().rate(),
        expires_at: payment.expires_at(),
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

fn default_descriptor(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => DEMO_MAINNET_DESCRIPTOR,
        _ => DEMO_TEST_DESCRIPTOR,
    }
}

fn write_qr_codes(options: &Options, uri: &str) -> Result<(), AppError> {
    let write = |path: &str, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|source| AppError::Write {
            path: path.into(),
            source,
        })
    };
    if let Some(path) = &options.qr_svg {
        write(path, qr::render_svg(uri)?.as_bytes())?;
    }
    if let Some(path) = &options.qr_png {
        #[cfg(feature = "qr-png")]
        write(path, &qr::render_png(uri, PNG_MODULE_PX)?)?;
        #[cfg(not(feature = "qr-png"))]
        eprintln!(
            "note: {path} not written: PNG needs the qr-png feature \
             (--features lightning,onchain,qr-png); --qr-svg works without it ({PNG_MODULE_PX} px modules)"
        );
    }
    if options.qr_terminal {
        eprintln!("{}", qr::render_terminal(uri)?);
    }
    Ok(())
}

fn parse_args(args: Vec<String>) -> Result<Options, AppError> {
    let mut amount = None;
    let mut currency = "USD".to_string();
    let mut rate = None;
    let mut network = Network::Regtest;
    let (mut descriptor, mut qr_png, mut qr_svg, mut qr_terminal) = (None, None, None, false);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--qr-terminal" {
            qr_terminal = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(AppError::Usage("help requested".into()));
        }
        let value = args
            .next()
            .ok_or_else(|| AppError::Usage(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--amount" => amount = Some(decimal("--amount", &value)?),
            "--currency" => currency = value,
            "--rate" => rate = Some(decimal("--rate", &value)?),
            "--network" => network = parse_network(&value)?,
            "--descriptor" => descriptor = Some(value),
            "--qr-png" => qr_png = Some(value),
            "--qr-svg" => qr_svg = Some(value),
            other => return Err(AppError::Usage(format!("unknown flag {other}"))),
        }
    }
    Ok(Options {
        amount: amount.ok_or_else(|| AppError::Usage("--amount is required".into()))?,
        currency: Currency::from_code(&currency)?,
        rate: rate.ok_or_else(|| AppError::Usage("--rate is required".into()))?,
        network,
        descriptor,
        qr_png,
        qr_svg,
        qr_terminal,
    })
}

/// A plain decimal (no exponent, no float).
fn decimal(flag: &str, value: &str) -> Result<Decimal, AppError> {
    Decimal::from_str(value)
        .map_err(|_| AppError::Usage(format!("{flag}: {value:?} is not a decimal number")))
}

fn parse_network(value: &str) -> Result<Network, AppError> {
    match value {
        "mainnet" | "bitcoin" => Ok(Network::Bitcoin),
        other => Network::from_str(other).map_err(|_| {
            AppError::Usage(format!(
                "--network: {other:?} is not mainnet, testnet, testnet4, signet or regtest"
            ))
        }),
    }
}
