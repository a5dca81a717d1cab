//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json`.
//!
//! It is written by hand next to the router; the test suite compares its paths and
//! methods with [`route_table`](super::route_table) and the router's answers, so a route
//! missing from the document (or a documented route the router lacks) fails CI.

use axum::response::Response;

/// The document, as served.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

pub(crate) async fn serve() -> Response {
    super::json(OPENAPI_JSON.to_owned())
}
