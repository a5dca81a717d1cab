//! The stores: conformance, concurrency, crash safety, several processes, PostgreSQL pool and TLS (the PostgreSQL fault test, which restarts the server, is a binary of its own), stress, determinism across stores and row tampering.
//!
//! One test binary per area (each file a module), so CI links the crate a few times
//! instead of once per file.

// Tests assert by unwrapping, expecting and panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

mod api_migrations;
mod api_reads_negatives;
mod conformance_negatives;
mod crash_sqlite;
mod determinism;
mod event_lists;
mod memory_store;
mod outbox_seq;
mod packed_rows;
mod postgres_pool;
mod postgres_processes;
mod postgres_store;
mod postgres_tls;
mod row_tampering;
mod service_model;
mod sqlite_links_delivery;
mod sqlite_processes;
mod store_concurrency;
mod store_conformance;
mod stress;
mod thin_events;
mod transfer_lists;
