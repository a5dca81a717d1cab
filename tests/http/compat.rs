//! What real Speed clients send and read (speed-clients.md), replayed byte for byte
//! where the wire fixes it, and a webhook verified exactly as those clients verify it.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bitcoin_checkout::clock::SystemClock;
use bitcoin_checkout::http::HttpSender;
use bitcoin_checkout::request::lightning::parse_invoice;
use bitcoin_checkout::webhook::Dispatcher;
use bitcoin_checkout::{Msats, TransferReport};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::support::{Server, basic, basic_raw};

/// The Magento 2 plugin's payment page call: publishable key, `speed-version:
/// 2022-10-15`, amount as a string, `source_id` an integer, `ttl` a string.
const MAGENTO_PAGE: &str = r#"{"currency":"USD","amount":"49.99","statement_descriptor":"Magento order 000000042","description":"Order #000000042","success_url":"https://shop.example.com/checkout/onepage/success/?order=42","cancel_url":"https://shop.example.com/checkout/cart/?cancelled=1","source":"Speed Magento2","source_id":42,"title":"Example shop","title_description":"Order #000000042","ttl":"600"}"#;

#[test]
fn magento_payment_page_and_verify_secret() {
    let server = Server::start();
    let c = server.client();
    let pk = &server.keys.publishable_test;
    let headers = [
        ("authorization", basic(pk)),
        ("content-type", "application/json".to_owned()),
        ("speed-version", "2022-10-15".to_owned()),
    ];
    let answer = c.send("POST", "/payment-page", &headers, Some(MAGENTO_PAGE));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let page = answer.json();
    let url = page["url"].as_str().expect("url");
    // The plugin appends its own query.
    assert!(!url.contains('?'));
    let redirect = format!("{url}?source_type=magento2");
    assert!(redirect.starts_with(&server.base));
    assert_eq!(page["source"], "Speed Magento2");
    assert_eq!(page["source_id"], 42);
    assert_eq!(page["amount"].to_string(), "49.99");
    assert_eq!(
        page["success_url"],
        "https://shop.example.com/checkout/onepage/success/?order=42"
    );

    // The endpoint the merchant made in the dashboard (here: with the secret key).
    let url = "https://shop.example.com/speed/webhook/index";
    let endpoint = c.ok(
        "/webhooks",
        &server.keys.secret_test,
        &format!(r#"{{"url":"{url}"}}"#),
    );
    let secret = endpoint["secret"].as_str().unwrap();
    let verify = c.send(
        "POST",
        "/webhooks/verify-secret",
        &headers,
        Some(&format!(r#"{{"url":"{url}","secret":"{secret}"}}"#)),
    );
    // The plugin needs exactly 200, `exists: true` as a boolean and `status: "active"`.
    assert_eq!(verify.status, 200);
    let v = verify.json();
    assert_eq!(v["exists"], serde_json::Value::Bool(true));
    assert_eq!(v["status"], "active");
    let wrong = c.send(
        "POST",
        "/webhooks/verify-secret",
        &headers,
        Some(&format!(
            r#"{{"url":"{url}","secret":"wsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}"#
        )),
    );
    assert_eq!(wrong.json()["exists"], false);
}

#[test]
fn a_node_service_creates_a_checkout_session() {
    let server = Server::start();
    let c = server.client();
    let body = r#"{"currency":"USD","amount":10,"payment_methods":["lightning"],"amount_paid_tolerance":1,"metadata":{"user_id":"u_1","plan":"pro"},"success_url":"https://app.example.com/paid","cancel_url":"https://app.example.com/cancel"}"#;
    let answer = c.send(
        "POST",
        "/checkout-sessions",
        &[
            ("authorization", basic(&server.keys.secret_test)),
            ("content-type", "application/json".to_owned()),
            ("speed-version", "2022-04-15".to_owned()),
        ],
        Some(body),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let url = answer.json()["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/pay/cs_", server.base)));
}

#[test]
fn the_agentic_sdk_creates_and_reads_a_payment() {
    let server = Server::start();
    let c = server.client();
    // Restricted key, no speed-version, the bare key without a colon.
    let auth = basic_raw(server.keys.restricted_test.expose());
    let answer = c.send(
        "POST",
        "/payments",
        &[
            ("authorization", auth.clone()),
            ("content-type", "application/json".to_owned()),
        ],
        Some(r#"{"currency":"USD","amount":0.5,"target_currency":"SATS","payment_methods":["lightning"]}"#),
    );
    assert!((200..300).contains(&answer.status), "{}", answer.text);
    let payment = answer.json();
    let invoice = payment["payment_method_options"]["lightning"]["payment_request"]
        .as_str()
        .unwrap();
    let parsed = parse_invoice(invoice).expect("BOLT11");
    assert_eq!(parsed.amount, Some(Msats::new(500_000)));
    server
        .checkout
        .record_transfer(TransferReport::lightning(
            parsed.payment_hash,
            Msats::new(500_000),
        ))
        .unwrap();
    let read = c.send(
        "GET",
        &format!("/payments/{}", payment["id"].as_str().unwrap()),
        &[("authorization", auth)],
        None,
    );
    assert_eq!(read.json()["status"], "paid");
}

type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver that keeps what it gets and answers 200.
fn receiver(runtime: &tokio::runtime::Runtime) -> (String, Received) {
    let got: Received = Arc::default();
    let keep = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let keep = Arc::clone(&keep);
            async move {
                keep.lock().unwrap().push((headers, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// The Magento helper: one signature, split at the first comma.
fn magento_verifies(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Ok(key) = STANDARD.decode(secret.trim_start_matches("wsec_")) else {
        return false;
    };
    let signed = format!("{}.{}.{body}", h("webhook-id"), h("webhook-timestamp"));
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    let header = h("webhook-signature");
    let magento = header.split_once(',').map(|(_, s)| s) == Some(expected.as_str());
    let node = header.replace("v1,", "") == expected;
    assert!(h("webhook-timestamp").bytes().all(|b| b.is_ascii_digit()));
    magento && node
}

#[test]
fn webhooks_verify_as_speed_clients_verify_them() {
    let server = Server::start();
    let c = server.client();
    let sk = &server.keys.secret_test;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, got) = receiver(&runtime);
    let single = c.ok(
        "/webhooks",
        sk,
        &format!(r#"{{"url":"{url}","enabled_events":["checkout_session.paid"]}}"#),
    );
    let secret = single["secret"].as_str().unwrap().to_owned();
    let session = c.ok("/payment-page", &server.keys.publishable_test, MAGENTO_PAGE);
    let invoice = session["payments"][0]["payment_method_options"]["lightning"]["payment_request"]
        .as_str()
        .unwrap();
    let parsed = parse_invoice(invoice).unwrap();
    server
        .checkout
        .record_transfer(TransferReport::lightning(
            parsed.payment_hash,
            parsed.amount.unwrap(),
        ))
        .unwrap();
    let dispatcher = Dispatcher::new(
        Arc::clone(server.checkout.store()),
        HttpSender::default(),
        SystemClock,
    );
    let report = dispatcher.run_once().unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let (headers, body) = got.lock().unwrap().pop().unwrap();
    assert!(magento_verifies(&secret, &headers, &body));
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event_type"], "checkout_session.paid");
    let object = &event["data"]["object"];
    assert_eq!(object["id"], session["id"]);
    assert_eq!(object["source_id"], 42);
    assert_eq!(object["amount"].to_string(), "49.99");
    assert_eq!(object["currency"], "USD");
    assert_eq!(object["amount_paid"].to_string(), "49.99");
    assert_eq!(object["target_currency"], "SATS");
    let payment = &object["payments"][0];
    assert!(payment["id"].as_str().unwrap().starts_with("pi_"));
    assert_eq!(payment["target_amount_paid"].to_string(), "49990");
    assert_eq!(payment["target_currency"], "SATS");
    assert_eq!(payment["exchange_rate"].to_string(), "1000");

    // A rotating endpoint signs with both secrets after a rotation: Standard Webhooks
    // receivers accept it; Speed's one-signature clients would not, which is why the
    // default is `single`.
    let rotating = c.ok("/webhooks", sk, &format!(r#"{{"url":"{url}","signatures":"rotating","enabled_events":["checkout_session.deactivated"]}}"#));
    let we = rotating["id"].as_str().unwrap();
    let old = rotating["secret"].as_str().unwrap().to_owned();
    let new = c.ok(&format!("/webhooks/{we}/rotate-secret"), sk, "")["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = c.ok("/checkout-sessions", sk, crate::support::SESSION);
    c.ok(
        &format!(
            "/checkout-sessions/{}/deactivate",
            other["id"].as_str().unwrap()
        ),
        sk,
        "",
    );
    assert_eq!(dispatcher.run_once().unwrap().delivered, 1);
    let (headers, body) = got.lock().unwrap().pop().unwrap();
    let signature = headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert!(!magento_verifies(&new, &headers, &body));
    for secret in [&old, &new] {
        let wh = standardwebhooks::Webhook::new(secret.trim_start_matches("wsec_")).unwrap();
        wh.verify(body.as_bytes(), &headers)
            .expect("standard webhooks verifies");
    }
}
