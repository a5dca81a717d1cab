//! The stores: conformance, concurrency, crash safety, several processes, PostgreSQL faults, stress, determinism across stores and row tampering.
//!
//! One test binary per area (each file a module), so CI links the crate a few times
//! instead of once per file.

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

mod store_conformance;
mod conformance_negatives;
mod memory_store;
mod store_concurrency;
mod sqlite_links_delivery;
mod crash_sqlite;
mod sqlite_processes;
mod postgres_store;
mod postgres_faults;
mod postgres_processes;
mod stress;
mod determinism;
mod row_tampering;
