//! The HTTP API over real HTTP on loopback: every route, Speed's conventions, idempotent
//! retries, bad input, the wire contract of real Speed clients, the OpenAPI document, and
//! webhook delivery isolation with the crate's HTTP sender.

// Tests assert by unwrapping, expecting and panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

mod api;
mod bad_input;
mod compat;
mod delivery;
mod many_servers;
mod openapi;
mod support;
