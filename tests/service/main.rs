//! The service and its ports: the checkout service, links, quoting once, webhooks, payment requests and the test kit.
//!
//! One test binary per area (each file a module), so CI links the crate a few times
//! instead of once per file.

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

mod service;
mod async_service;
mod links;
mod quote_once;
mod webhook_delivery;
mod webhook_signing;
mod real_requests;
mod payment_requests;
mod testkit;
