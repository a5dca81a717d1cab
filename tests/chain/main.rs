//! The chain watcher against synthetic regtest chains built in the test (tests/support/chain.rs):
//! real blocks and transactions fed through BDK's chain engine to checkout sessions.

// Tests assert by unwrapping, expecting and panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/chain.rs"]
mod chain;
#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

mod bad_input;
mod outage;
mod property;
mod scenarios;
mod shop;
mod sources;
