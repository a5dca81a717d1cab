//! Every route's success shape, auth and mode rules, idempotency, lenient input,
//! pagination.

use bitcoin_checkout::http::api::RateLimit;
use bitcoin_checkout::http::keys::KeyRecord;
use bitcoin_checkout::request::lightning::parse_invoice;
use bitcoin_checkout::{Msats, PaymentHash, TransferReport};
use serde_json::Value;

use crate::support::{Options, SESSION, Server, basic, basic_raw};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[test]
fn sessions_create_retrieve_update_list_deactivate() {
    let server = Server::start();
    let c = server.client();
    let k = &server.keys.secret_test;
    let created = c.ok("/checkout-sessions", k, SESSION);
    let sid = id(&created);
    assert!(sid.starts_with("cs_"));
    assert_eq!(created["object"], "checkout_session");
    assert_eq!(created["status"], "active");
    assert_eq!(created["livemode"], false);
    assert_eq!(created["url"], format!("{}/pay/{sid}", server.base));
    assert!(!created["url"].as_str().unwrap().contains('?'));
    assert_eq!(created["payments"][0]["status"], "unpaid");
    assert_eq!(created["payments"][0]["target_amount"].to_string(), "25000");

    let read = c.read(&format!("/checkout-sessions/{sid}"), k);
    assert_eq!(read["id"], created["id"]);
    assert_eq!(read["payments"][0]["id"], created["payments"][0]["id"]);

    let updated = c.ok(
        &format!("/checkout-sessions/{sid}"),
        k,
        r#"{"metadata":{"note":"gift"},"description":"Two bags"}"#,
    );
    assert_eq!(updated["metadata"]["order"], "1001");
    assert_eq!(updated["metadata"]["note"], "gift");
    assert_eq!(updated["description"], "Two bags");

    let second = id(&c.ok("/checkout-sessions", k, SESSION));
    let third = id(&c.ok(
        "/checkout-sessions",
        k,
        r#"{"currency":"USD","amount":3,"metadata":{"order":"7"}}"#,
    ));
    let page = c.read("/checkout-sessions?limit=2", k);
    assert_eq!(page["object"], "list");
    let ids: Vec<String> = page["data"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, [third.clone(), second.clone()]);
    assert_eq!(page["has_more"], true);
    let rest = c.read(
        &format!("/checkout-sessions?limit=2&starting_after={second}"),
        k,
    );
    assert_eq!(rest["data"][0]["id"], sid.as_str());
    assert_eq!(rest["has_more"], false);
    let back = c.read(&format!("/checkout-sessions?ending_before={sid}"), k);
    assert_eq!(back["data"].as_array().unwrap().len(), 2);
    let by_meta = c.read("/checkout-sessions?metadata%5Border%5D=7", k);
    assert_eq!(by_meta["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_meta["data"][0]["id"], third.as_str());

    let gone = c.ok(&format!("/checkout-sessions/{sid}/deactivate"), k, "");
    assert_eq!(gone["status"], "deactivated");
    assert_eq!(gone["payments"][0]["status"], "cancelled");
    c.post(&format!("/checkout-sessions/{sid}/deactivate"), k, "")
        .assert_error(409, "conflict");
    let active = c.read("/checkout-sessions?status=active", k);
    assert_eq!(active["data"].as_array().unwrap().len(), 2);
    // The live key sees none of it.
    let live = c.read("/checkout-sessions", &server.keys.secret_live);
    assert_eq!(live["data"].as_array().unwrap().len(), 0);
}

#[test]
fn auth_kinds_and_modes() {
    let server = Server::start();
    let c = server.client();
    let keys = &server.keys;
    let sid = id(&c.ok("/checkout-sessions", &keys.secret_test, SESSION));
    let path = format!("/checkout-sessions/{sid}");

    c.send("GET", &path, &[], None)
        .assert_error(401, "authentication_error");
    let unknown =
        bitcoin_checkout::http::keys::ApiKey::parse("sk_test_00000000000000000000000000000000")
            .unwrap();
    c.get(&path, &unknown)
        .assert_error(401, "authentication_error");
    c.send(
        "GET",
        &path,
        &[("authorization", basic_raw("garbage"))],
        None,
    )
    .assert_error(401, "authentication_error");
    c.get(&path, &keys.revoked_test)
        .assert_error(401, "authentication_error");
    // The bare key, without the colon, is accepted too.
    let bare = basic_raw(keys.secret_test.expose());
    assert_eq!(
        c.send("GET", &path, &[("authorization", bare)], None)
            .status,
        200
    );

    c.get(&path, &keys.publishable_test)
        .assert_error(403, "permission_error");
    c.post("/checkout-sessions", &keys.publishable_test, SESSION)
        .assert_error(403, "permission_error");
    c.get(&path, &keys.secret_live)
        .assert_error(404, "not_found");
    c.post(&format!("{path}/deactivate"), &keys.secret_live, "")
        .assert_error(404, "not_found");

    // A restricted key does what it was granted and nothing else.
    let r = &keys.restricted_test;
    c.post("/checkout-sessions", r, SESSION)
        .assert_error(403, "permission_error");
    assert_eq!(c.get("/events", r).status, 200);
    let payment = c.ok("/payments", r, r#"{"currency":"USD","amount":1}"#);
    assert_eq!(c.get(&format!("/payments/{}", id(&payment)), r).status, 200);

    // A publishable key makes payment pages, as Speed's plugins do.
    let page = c.ok("/payment-page", &keys.publishable_test, SESSION);
    assert_eq!(page["object"], "checkout_session");
    // Nothing the secret key did changed the session.
    assert_eq!(c.read(&path, &keys.secret_test)["status"], "active");
}

#[test]
fn idempotent_retries_replay_the_first_answer() {
    let server = Server::start();
    let c = server.client();
    let k = &server.keys.secret_test;
    let send = |key: &str, body: &str| {
        c.send(
            "POST",
            "/checkout-sessions",
            &[
                ("authorization", basic(k)),
                ("idempotency-key", key.to_owned()),
            ],
            Some(body),
        )
    };
    let first = send("order-1001", SESSION);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = send("order-1001", SESSION);
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["id"], first.json()["id"]);
    send("order-1001", r#"{"currency":"USD","amount":26}"#).assert_error(400, "idempotency_error");
    send(&"x".repeat(256), SESSION).assert_error(400, "invalid_request_error");
    // A refused request keeps nothing: fixed, it runs with the same key.
    send("order-1002", r#"{"currency":"USD"}"#).assert_error(400, "invalid_request_error");
    assert_eq!(send("order-1002", SESSION).status, 200);
    // Other API keys have their own key space.
    let live = c.send(
        "POST",
        "/checkout-sessions",
        &[
            ("authorization", basic(&server.keys.secret_live)),
            ("idempotency-key", "order-1001".into()),
        ],
        Some(SESSION),
    );
    assert_eq!(live.status, 200);
    assert_ne!(live.json()["id"], first.json()["id"]);
    let all = c.read("/checkout-sessions", k);
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
}

#[test]
fn lenient_inputs_and_versions() {
    let server = Server::start();
    let c = server.client();
    let k = &server.keys.secret_test;
    let loose = c.ok(
        "/checkout-sessions",
        k,
        r#"{"currency":"usd","amount":"49.99","ttl":"600","source":"Speed Magento2","source_id":1001}"#,
    );
    assert_eq!(loose["amount"].to_string(), "49.99");
    assert_eq!(loose["currency"], "USD");
    assert_eq!(loose["ttl"], 600);
    assert_eq!(loose["source_id"], 1001);
    let again = c.read(&format!("/checkout-sessions/{}", id(&loose)), k);
    assert_eq!(again["source_id"], 1001);
    let text = c.ok(
        "/checkout-sessions",
        k,
        r#"{"currency":"USD","amount":1,"ttl":null,"source_id":"A-7"}"#,
    );
    assert_eq!(text["source_id"], "A-7");
    assert_eq!(text["ttl"], 600);

    let old = |body: &str| {
        c.send(
            "POST",
            "/checkout-sessions",
            &[
                ("authorization", basic(k)),
                ("speed-version", "2022-04-15".into()),
            ],
            Some(body),
        )
    };
    let lightning_only = old(SESSION);
    assert_eq!(
        lightning_only.json()["payment_methods"],
        serde_json::json!(["lightning"])
    );
    old(r#"{"currency":"USD","amount":1,"payment_methods":["onchain"]}"#)
        .assert_error(400, "invalid_request_error");
    c.send(
        "GET",
        "/checkout-sessions",
        &[
            ("authorization", basic(k)),
            ("speed-version", "2030-01-01".into()),
        ],
        None,
    )
    .assert_error(400, "invalid_request_error");
}

#[test]
fn payments_standalone_and_by_id() {
    let server = Server::start();
    let c = server.client();
    let k = &server.keys.secret_test;
    let payment = c.ok(
        "/payments",
        k,
        r#"{"currency":"USD","amount":2,"target_currency":"SATS","payment_methods":["lightning"]}"#,
    );
    assert_eq!(payment["object"], "payment");
    assert_eq!(payment["status"], "unpaid");
    let invoice = payment["payment_method_options"]["lightning"]["payment_request"]
        .as_str()
        .expect("invoice");
    let parsed = parse_invoice(invoice).expect("BOLT11");
    assert_eq!(parsed.amount, Some(Msats::new(2_000_000)));
    let pid = id(&payment);
    let path = format!("/payments/{pid}");
    assert_eq!(c.read(&path, k)["status"], "unpaid");
    c.get(&path, &server.keys.secret_live)
        .assert_error(404, "not_found");
    // Half the amount arrives: Speed calls that payment paid (partially).
    let hash: PaymentHash = parsed.payment_hash;
    server
        .checkout
        .record_transfer(TransferReport::lightning(hash, Msats::new(1_000_000)))
        .expect("recorded");
    let paid = c.read(&path, k);
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["target_amount_paid"].to_string(), "1000");
    // A session's quote is a payment too.
    let session = c.ok("/checkout-sessions", k, SESSION);
    let quote = session["payments"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.read(&format!("/payments/{quote}"), k)["checkout_session"],
        session["id"]
    );
}

#[test]
fn links_create_retrieve_list_deactivate() {
    let server = Server::start();
    let c = server.client();
    let k = &server.keys.secret_test;
    let checkout_link = c.ok("/checkout-links", k, SESSION);
    let clink = id(&checkout_link);
    assert!(clink.starts_with("clink_"));
    assert_eq!(checkout_link["object"], "checkout.link");
    assert_eq!(checkout_link["url"], format!("{}/pay/{clink}", server.base));
    let plink = id(&c.ok("/payment-links", k, SESSION));
    let second = id(&c.ok("/payment-links", k, SESSION));
    assert_eq!(
        c.read(&format!("/checkout-links/{clink}"), k)["status"],
        "active"
    );
    c.get(&format!("/checkout-links/{plink}"), k)
        .assert_error(404, "not_found");
    c.get(&format!("/payment-links/{plink}"), &server.keys.secret_live)
        .assert_error(404, "not_found");
    let list = c.read("/payment-links?limit=1", k);
    assert_eq!(list["data"][0]["id"], second.as_str());
    assert_eq!(list["has_more"], true);
    let next = c.read(&format!("/payment-links?starting_after={second}"), k);
    assert_eq!(next["data"][0]["id"], plink.as_str());
    assert_eq!(
        c.read("/checkout-links", k)["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let gone = c.ok(&format!("/payment-links/{plink}/deactivate"), k, "");
    assert_eq!(gone["status"], "deactivated");
    c.post(&format!("/payment-links/{plink}/deactivate"), k, "")
        .assert_error(409, "conflict");
}

#[test]
fn events_newest_first_in_the_keys_mode() {
    let server = Server::start();
    let c = server.client();
    let k = &server.keys.secret_test;
    for _ in 0..3 {
        c.ok("/checkout-sessions", k, SESSION);
    }
    c.ok("/checkout-sessions", &server.keys.secret_live, SESSION);
    let all = c.read("/events?limit=100", k);
    let events = all["data"].as_array().unwrap();
    // checkout_session.created and payment.created for each of the three test sessions.
    assert_eq!(events.len(), 6, "{all}");
    assert!(events.iter().all(|e| e["livemode"] == false));
    let created: Vec<u64> = events
        .iter()
        .map(|e| e["created"].as_u64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]));
    let first = c.read("/events?limit=2", k);
    assert_eq!(first["data"][0]["id"], events[0]["id"]);
    assert_eq!(first["has_more"], true);
    let cursor = first["data"][1]["id"].as_str().unwrap();
    let next = c.read(&format!("/events?limit=2&starting_after={cursor}"), k);
    assert_eq!(next["data"][0]["id"], events[2]["id"]);
    let back = c.read(
        &format!(
            "/events?limit=2&ending_before={}",
            events[2]["id"].as_str().unwrap()
        ),
        k,
    );
    assert_eq!(back["data"][0]["id"], events[0]["id"]);
    assert_eq!(back["data"][1]["id"], events[1]["id"]);
    assert_eq!(back["has_more"], false);
    let typed = c.read("/events?limit=100&event_type=payment.created", k);
    assert_eq!(typed["data"].as_array().unwrap().len(), 3);
    let one = c.read(&format!("/events/{}", events[0]["id"].as_str().unwrap()), k);
    assert_eq!(one["id"], events[0]["id"]);
    assert_eq!(one["object"], "events");
    c.get(
        &format!("/events/{}", events[0]["id"].as_str().unwrap()),
        &server.keys.secret_live,
    )
    .assert_error(404, "not_found");
    assert_eq!(
        c.read("/events", &server.keys.secret_live)["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn webhook_endpoints_through_their_life() {
    let server = Server::start();
    let c = server.client();
    let k = &server.keys.secret_test;
    let url = "https://shop.example.com/speed/webhook";
    let created = c.ok(
        "/webhooks",
        k,
        &format!(r#"{{"url":"{url}","enabled_events":["checkout_session.paid"]}}"#),
    );
    let we = id(&created);
    assert!(we.starts_with("we_"));
    assert_eq!(created["object"], "webhook.endpoint");
    assert_eq!(created["status"], "active");
    assert_eq!(created["signatures"], "single");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("wsec_"));
    let listed = c.read("/webhooks", k);
    assert_eq!(listed["data"][0]["id"], we.as_str());
    assert!(listed["data"][0].get("secret").is_none());
    assert_eq!(
        c.read(&format!("/webhooks/{we}"), k)["secret"],
        secret.as_str()
    );
    assert!(
        c.read("/webhooks", &server.keys.secret_live)["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let verify = |key, secret: &str| {
        c.post(
            "/webhooks/verify-secret",
            key,
            &format!(r#"{{"url":"{url}","secret":"{secret}"}}"#),
        )
    };
    let ok = verify(&server.keys.publishable_test, &secret);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["exists"], true);
    assert_eq!(ok.json()["status"], "active");
    assert_eq!(
        verify(&server.keys.publishable_live, &secret).json()["exists"],
        false
    );

    let off = c.ok(
        &format!("/webhooks/{we}"),
        k,
        r#"{"status":"deactivated","description":"old"}"#,
    );
    assert_eq!(off["status"], "deactivated");
    assert_eq!(off["description"], "old");
    assert_eq!(
        verify(&server.keys.publishable_test, &secret).json()["status"],
        "deactivated"
    );

    let rotated = c.ok(&format!("/webhooks/{we}/rotate-secret"), k, "");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(
        verify(&server.keys.publishable_test, &secret).json()["exists"],
        false
    );
    assert_eq!(
        verify(&server.keys.publishable_test, new_secret).json()["exists"],
        true
    );

    let deleted = c.delete(&format!("/webhooks/{we}"), k);
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["deleted"], true);
    c.get(&format!("/webhooks/{we}"), k)
        .assert_error(404, "not_found");
    assert_eq!(
        verify(&server.keys.publishable_test, new_secret).json()["exists"],
        false
    );
    // A publishable key may verify but not read endpoints.
    c.get("/webhooks", &server.keys.publishable_test)
        .assert_error(403, "permission_error");
}

struct Refuse;

impl RateLimit for Refuse {
    fn check(&self, key: &KeyRecord) -> Result<(), u64> {
        if key.livemode { Ok(()) } else { Err(7) }
    }
}

#[test]
fn the_rate_limit_hook_answers_429() {
    let server = Server::start_with(Options {
        limiter: Some(Box::new(|| Box::new(Refuse))),
        ..Options::default()
    });
    let c = server.client();
    let refused = c.get("/checkout-sessions", &server.keys.secret_test);
    refused.assert_error(429, "rate_limit_error");
    assert_eq!(refused.header("retry-after"), Some("7"));
    assert_eq!(
        c.get("/checkout-sessions", &server.keys.secret_live).status,
        200
    );
}
