//! Sign or verify a Standard Webhooks message by hand, for debugging an integration.
//!
//! ```text
//! printf '%s' "$BODY" | cargo run --example webhook --features webhooks -- \
//!     sign --secret whsec_… --id msg_… --timestamp 1649367553
//! printf '%s' "$BODY" | cargo run --example webhook --features webhooks -- \
//!     verify --secret whsec_… [--secret whsec_…] --id msg_… --timestamp 1649367553 \
//!     --signature 'v1,…' [--now 1649367553]
//! ```
//!
//! The body is read from stdin byte for byte: `echo` adds a newline that changes the
//! signature, so use `printf` or `echo -n`. Secrets given as arguments are visible to other
//! local users (e.g. in `ps`); use this on test secrets or a private machine.

use std::io::Read;
use std::process::ExitCode;

use bitcoin_checkout::OffsetDateTime;
use bitcoin_checkout::webhook::{SignatureHeader, Verifier, WebhookHeaders, WebhookSecret};

const USAGE: &str = "\
usage: webhook sign   --secret <whsec_…> [--secret <…>] --id <msg id> --timestamp <unix s>
       webhook verify --secret <whsec_…> [--secret <…>] --id <msg id> --timestamp <unix s>
                      --signature '<webhook-signature header>' [--now <unix s>]
The raw body is read from stdin.
sign prints the webhook-signature header value.
verify prints `ok` and exits 0, or prints the reason to stderr and exits 1.
Usage errors exit 2.";

/// The command line after parsing; options are checked per command in `run`.
#[derive(Default)]
struct Args {
    command: String,
    secrets: Vec<WebhookSecret>,
    id: Option<String>,
    timestamp: Option<i64>,
    signature: Option<String>,
    now: Option<i64>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match parse_args(&args).and_then(run) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let (command, rest) = args.split_first().ok_or("missing command")?;
    if command != "sign" && command != "verify" {
        return Err(format!("unknown command {command:?}"));
    }
    let mut parsed = Args {
        command: command.clone(),
        ..Args::default()
    };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--secret" => parsed.secrets.push(
                // The error never contains the secret, so it is safe to print.
                WebhookSecret::parse(value).map_err(|e| e.to_string())?,
            ),
            "--id" => parsed.id = Some(value.clone()),
            "--timestamp" => parsed.timestamp = Some(parse_unix(flag, value)?),
            "--signature" => parsed.signature = Some(value.clone()),
            "--now" => parsed.now = Some(parse_unix(flag, value)?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(parsed)
}

fn parse_unix(flag: &str, value: &str) -> Result<i64, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} must be an integer number of unix seconds"))
}

fn run(args: Args) -> Result<ExitCode, String> {
    // Required options are checked before stdin is read, so forgetting one never waits for input.
    let mut secrets = args.secrets.into_iter();
    let first = secrets.next().ok_or("--secret is required")?;
    let id = args.id.ok_or("--id is required")?;
    let timestamp = args.timestamp.ok_or("--timestamp is required")?;

    if args.command == "sign" {
        if args.signature.is_some() || args.now.is_some() {
            return Err("sign takes no --signature or --now".into());
        }
        let body = read_body()?;
        let header =
            SignatureHeader::new(&first, &id, timestamp, &body).map_err(|e| e.to_string())?;
        let header = secrets.fold(header, |h, s| h.signed_with(&s));
        println!("{header}");
        return Ok(ExitCode::SUCCESS);
    }

    let signature = args.signature.ok_or("--signature is required")?;
    let now = match args.now {
        Some(secs) => OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|_| "--now is out of range".to_string())?,
        None => OffsetDateTime::now_utc(),
    };
    let verifier = secrets.fold(Verifier::new(first), Verifier::with_secret);
    let headers = WebhookHeaders {
        id,
        timestamp,
        signature,
    };
    let body = read_body()?;
    match verifier.verify(&headers, &body, now) {
        Ok(()) => {
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("{reason}");
            Ok(ExitCode::from(1))
        }
    }
}

fn read_body() -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|e| format!("cannot read the body from stdin: {e}"))?;
    Ok(body)
}
