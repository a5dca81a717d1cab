//! The service and its ports: the checkout service, servers with skewed clocks, links, quoting once, webhooks, payment requests and the test kit.
//!
//! One test binary per area (each file a module), so CI links the crate a few times
//! instead of once per file.

// Tests assert by unwrapping, expecting and panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

#[cfg(feature = "lnbits")]
#[path = "../support/lnbits_api.rs"]
mod lnbits_api;

mod async_service;
mod cached_reads;
mod clock_skew;
mod flood;
mod key_claims;
mod links;
mod live_rates;
mod lnbits;
mod lnbits_listener;
mod lookups;
mod lost_commits;
mod observability;
mod on_demand;
mod payment_requests;
mod port_suites;
mod quote_once;
mod real_requests;
mod runner;
mod service;
mod testkit;
mod webhook_delivery;
mod webhook_signing;
