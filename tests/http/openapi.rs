//! The OpenAPI document describes exactly the routes the router serves.

use std::collections::BTreeSet;

use bitcoin_checkout::http::api::{OPENAPI_JSON, route_table};
use serde_json::Value;

use crate::support::Server;

#[test]
fn the_document_lists_every_route_and_nothing_else() {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = route_table()
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, served);
    // Every documented operation has a summary and responses.
    for (method, path) in &documented {
        let op = &doc["paths"][path][method];
        assert!(op["summary"].is_string(), "{method} {path}");
        assert!(op["responses"].is_object(), "{method} {path}");
    }
}

/// The route table is the router's: each (method, path) answers something other than
/// the unknown-route or wrong-method fallbacks.
#[test]
fn the_router_serves_every_route_in_the_table() {
    let server = Server::start();
    let c = server.client();
    let zeros = "0".repeat(32);
    for (method, path) in route_table() {
        let concrete = path.replace(
            "{id}",
            &match path.split('/').nth(1).unwrap_or("") {
                "checkout-sessions" => format!("cs_{zeros}"),
                "payments" => format!("pi_{zeros}"),
                "checkout-links" => format!("clink_{zeros}"),
                "payment-links" => format!("plink_{zeros}"),
                "events" => format!("evt_{zeros}"),
                _ => format!("we_{zeros}"),
            },
        );
        let answer = c.send(&method.to_uppercase(), &concrete, &[], Some("{}"));
        let fallback =
            answer.status == 405 || (answer.status == 404 && answer.text.contains("no such route"));
        assert!(!fallback, "{method} {path} is not routed: {}", answer.text);
    }
    let doc = c.send("GET", "/openapi.json", &[], None);
    assert_eq!(doc.status, 200);
    assert_eq!(doc.text, OPENAPI_JSON);
}
