//! A merchant's webhook endpoint, end to end on this machine:
//!
//! * an HTTP server (axum) that verifies each request's Standard Webhooks signature over the
//!   raw body and fulfils the order on `checkout_session.paid`;
//! * a checkout that takes a payment, and the crate's dispatcher posting its events to the
//!   server with a real HTTP client (ureq).
//!
//! `cargo run --example webhook_receiver --features webhooks`

use std::error::Error;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bitcoin_checkout::clock::SystemClock;
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::TestRequestGenerator;
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::webhook::{
    Dispatcher, Endpoint, SendOutcome, Verifier, VerifyError, WebhookSecret, WebhookSender,
};
use bitcoin_checkout::{
    Checkout, Currency, Event, EventType, SessionParams, TargetCurrency, TransferReport,
};
use bitcoin_checkout::{Decimal, OffsetDateTime};
use tokio::sync::mpsc;

/// The receiving side: verify, then handle.
async fn receive(
    State((verifier, fulfilled)): State<(Arc<Verifier>, mpsc::UnboundedSender<String>)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Verify over the raw bytes: re-serialised JSON would not match the signature.
    let verified = verifier.verify_raw(
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        OffsetDateTime::now_utc(),
    );
    if let Err(e) = verified {
        eprintln!("receiver: rejected ({e})");
        return match e {
            VerifyError::MissingHeader { .. } | VerifyError::InvalidTimestamp => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::UNAUTHORIZED,
        };
    }
    let Ok(event) = std::str::from_utf8(&body)
        .map_err(|_| ())
        .and_then(|b| Event::from_json(b).map_err(|_| ()))
    else {
        return StatusCode::BAD_REQUEST;
    };
    println!("receiver: {} {}", event.event_type, event.id);
    if event.event_type == EventType::CheckoutSessionPaid {
        // Fulfil once per session: a real handler claims the order atomically (the same
        // event may be delivered twice).
        let session = event.session_id.map(|s| s.to_string()).unwrap_or_default();
        let _ = fulfilled.send(session);
    }
    StatusCode::NO_CONTENT
}

/// The sending side: the crate picks no HTTP client; this one uses ureq.
struct Ureq(ureq::Agent);

impl WebhookSender for Ureq {
    fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> SendOutcome {
        let mut request = self.0.post(url).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send(body) {
            Ok(response) => SendOutcome::Status(response.status().as_u16()),
            Err(ureq::Error::StatusCode(code)) => SendOutcome::Status(code),
            Err(e) => SendOutcome::Error(e.to_string()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    let (fulfilled_tx, mut fulfilled) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/webhooks", post(receive))
        .with_state((Arc::new(Verifier::new(secret.clone())), fulfilled_tx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("receiver listening on {url}");

    // The merchant's checkout, with the endpoint registered.
    let usd = Currency::from_code("USD")?;
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    let store = Arc::new(MemoryStore::new());
    let checkout = Checkout::new(Arc::clone(&store), rates, TestRequestGenerator);
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(15)))
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let dispatcher = Dispatcher::new(Arc::clone(&store), Ureq(agent), SystemClock);
    dispatcher.add_endpoint(&Endpoint::new(
        url.as_str(),
        secret,
        OffsetDateTime::now_utc() - time::Duration::seconds(1),
    )?)?;

    // A customer pays; the dispatcher delivers (on a blocking thread: ureq is synchronous).
    let session = checkout.create(SessionParams::new(Decimal::new(500, 2), usd), None)?;
    let quote = session.open_payment().ok_or("no quote")?;
    let hash = quote
        .request()
        .lightning
        .as_ref()
        .ok_or("no invoice")?
        .payment_hash;
    checkout.record_transfer(TransferReport::lightning(hash, quote.target().to_msats()))?;
    let report = tokio::task::spawn_blocking(move || dispatcher.run_once()).await??;
    println!(
        "dispatcher: {} delivered, {} to retry",
        report.delivered, report.retried
    );

    let paid = fulfilled
        .recv()
        .await
        .ok_or("checkout_session.paid never arrived")?;
    println!("order for {paid} fulfilled");
    Ok(())
}
