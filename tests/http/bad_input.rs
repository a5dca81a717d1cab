//! Bad input gets a typed JSON error and changes nothing.

use crate::support::{Options, SESSION, Server, basic};

#[test]
fn malformed_bodies_wrong_types_and_oversized_bodies() {
    let server = Server::start_with(Options {
        body_limit: Some(2048),
        ..Options::default()
    });
    let c = server.client();
    let k = &server.keys.secret_test;
    for body in [
        "{",
        "[]",
        "\"text\"",
        r#"{"currency":"USD","amount":"ten"}"#,
        r#"{"currency":"USD","amount":true}"#,
        r#"{"currency":"USD","amount":1,"ttl":"soon"}"#,
        r#"{"currency":"USD","amount":1,"ttl":10}"#,
        r#"{"currency":"XYZ","amount":1}"#,
        r#"{"currency":"USD","amount":1,"success_url":"not a url"}"#,
        r#"{"currency":"USD","amount":1,"metadata":"x"}"#,
        r#"{"currency":"USD","amount":0.001}"#,
        r#"{"currency":"USD","amount":99999999999999999999999999999999}"#,
    ] {
        let answer = c.post("/checkout-sessions", k, body);
        answer.assert_error(400, "invalid_request_error");
    }
    let big = format!(
        r#"{{"currency":"USD","amount":1,"description":"{}"}}"#,
        "x".repeat(4096)
    );
    c.post("/checkout-sessions", k, &big)
        .assert_error(413, "invalid_request_error");
    // The same with an Idempotency-Key (the middleware reads the body itself).
    c.send(
        "POST",
        "/checkout-sessions",
        &[
            ("authorization", basic(k)),
            ("idempotency-key", "k1".into()),
        ],
        Some(&big),
    )
    .assert_error(413, "invalid_request_error");
    c.post("/checkout-sessions/cs_x", k, r#"{"amount":2}"#)
        .assert_error(404, "not_found");
    // Nothing was created by any of it.
    assert_eq!(
        c.read("/checkout-sessions", k)["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(c.read("/events", k)["data"].as_array().unwrap().len(), 0);
}

#[test]
fn unknown_routes_methods_and_ids() {
    let server = Server::start();
    let c = server.client();
    let k = &server.keys.secret_test;
    c.get("/nope", k).assert_error(404, "not_found");
    c.send("GET", "/nope", &[], None)
        .assert_error(404, "not_found");
    c.delete("/checkout-sessions", k)
        .assert_error(405, "invalid_request_error");
    let zeros = "0".repeat(32);
    for path in [
        format!("/checkout-sessions/cs_{zeros}"),
        "/checkout-sessions/cs_nothex".to_owned(),
        format!("/checkout-sessions/pi_{zeros}"),
        format!("/payments/pi_{zeros}"),
        "/payments/cs_1".to_owned(),
        format!("/checkout-links/clink_{zeros}"),
        format!("/payment-links/plink_{zeros}"),
        format!("/payment-links/clink_{zeros}"),
        format!("/events/evt_{zeros}"),
        format!("/webhooks/we_{zeros}"),
        "/webhooks/evt_1".to_owned(),
    ] {
        c.get(&path, k).assert_error(404, "not_found");
    }
    for path in [
        format!("/checkout-sessions/cs_{zeros}/deactivate"),
        format!("/checkout-links/clink_{zeros}/deactivate"),
        format!("/webhooks/we_{zeros}/rotate-secret"),
    ] {
        c.post(&path, k, "").assert_error(404, "not_found");
    }
    for query in ["limit=0", "limit=101", "colour=red", "starting_after=pi_1"] {
        c.get(&format!("/checkout-sessions?{query}"), k)
            .assert_error(400, "invalid_request_error");
        c.get(&format!("/events?{query}"), k)
            .assert_error(400, "invalid_request_error");
    }
    c.post("/webhooks", k, r#"{"url":"ftp://x"}"#)
        .assert_error(400, "invalid_request_error");
    c.post(
        "/webhooks",
        k,
        r#"{"url":"https://x.example","enabled_events":"all"}"#,
    )
    .assert_error(400, "invalid_request_error");
    c.post(
        "/webhooks/verify-secret",
        &server.keys.publishable_test,
        r#"{"url":"https://x.example","secret":"nope"}"#,
    )
    .assert_error(400, "invalid_request_error");
    // A key of the wrong kind, on each kind of route.
    let pk = &server.keys.publishable_test;
    for (method, path) in [
        ("GET", "/checkout-sessions"),
        ("GET", "/events"),
        ("POST", "/webhooks"),
        ("POST", "/payments"),
        ("POST", "/checkout-links"),
    ] {
        let answer = if method == "GET" {
            c.get(path, pk)
        } else {
            c.post(path, pk, SESSION)
        };
        answer.assert_error(403, "permission_error");
    }
    assert_eq!(
        c.read("/checkout-sessions", k)["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
