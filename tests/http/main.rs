//! The HTTP API over real HTTP on loopback: every route, Speed's conventions, idempotent
//! retries, bad input, the wire contract of real Speed clients, and the OpenAPI document.

// Tests assert by unwrapping, expecting and panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod bad_input;
mod compat;
mod openapi;
mod support;
