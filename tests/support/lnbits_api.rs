//! A client of the LNbits server `scripts/lnbits` starts, for the tests and the rails
//! benchmark (not the crate's adapter): its address, raw API calls, new wallets and credit.

use serde_json::{Value, json};

/// The server's base URL and super-user token; panics with how to start it.
pub fn server() -> (String, String) {
    match (
        std::env::var("BITCOIN_CHECKOUT_LNBITS"),
        std::env::var("BITCOIN_CHECKOUT_LNBITS_TOKEN"),
    ) {
        (Ok(url), Ok(token)) if !url.trim().is_empty() => (url, token),
        _ => panic!(
            "BITCOIN_CHECKOUT_LNBITS is not set: this needs the LNbits server. Run \
             `scripts/test` (or `scripts/bench-report`), or `eval \"$(scripts/lnbits start)\"` \
             first."
        ),
    }
}

/// One call to the server's API with an optional wallet key and bearer token; panics
/// unless it answers 2xx with JSON.
pub fn api(
    method: &str,
    path: &str,
    key: Option<&str>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Value {
    let (url, _) = server();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into();
    let full = format!("{url}{path}");
    let mut request = match method {
        "POST" => agent.post(&full),
        "PUT" => agent.put(&full),
        "PATCH" => agent.patch(&full),
        _ => panic!("method {method}"),
    };
    if let Some(k) = key {
        request = request.header("X-Api-Key", k);
    }
    if let Some(b) = bearer {
        request = request.header("Authorization", &format!("Bearer {b}"));
    }
    let text = body.unwrap_or(json!({})).to_string();
    let mut response = request
        .header("content-type", "application/json")
        .send(text.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let answer = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert!(status < 300, "{method} {path}: HTTP {status}: {answer}");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method} {path}: {e}: {answer}"))
}

/// A new LNbits wallet: (id, admin key, invoice key), with fiat conversion off (it would
/// ask public price APIs, unreachable offline).
pub fn wallet(name: &str) -> (String, String, String) {
    let w = api(
        "POST",
        "/api/v1/account",
        None,
        None,
        Some(json!({ "name": name })),
    );
    let key = |k: &str| {
        w[k].as_str()
            .unwrap_or_else(|| panic!("a new wallet without {k}: {w}"))
            .to_owned()
    };
    api(
        "PATCH",
        "/api/v1/wallet",
        Some(&key("adminkey")),
        None,
        Some(json!({ "currency": "" })),
    );
    (key("id"), key("adminkey"), key("inkey"))
}

/// Credits `sats` to a wallet as the super user, in steps LNbits accepts (10 M at most).
pub fn credit(wallet_id: &str, sats: u64) {
    let (_, token) = server();
    let mut owed = sats;
    while owed > 0 {
        let step = owed.min(10_000_000);
        api(
            "PUT",
            "/users/api/v1/balance",
            None,
            Some(&token),
            Some(json!({ "id": wallet_id, "amount": step })),
        );
        owed -= step;
    }
}

/// Pays a BOLT11 invoice from the wallet whose admin key is `payer`.
pub fn pay(payer: &str, bolt11: &str) {
    api(
        "POST",
        "/api/v1/payments",
        Some(payer),
        None,
        Some(json!({ "out": true, "bolt11": bolt11 })),
    );
}
