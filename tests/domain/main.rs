//! The domain core through its public API: shapes, properties, scenarios, hostile input, fuzz regressions, chain data types, URL validation and the layering of the crate.
//!
//! One test binary per area (each file a module), so CI links the crate a few times
//! instead of once per file.

// Tests assert by unwrapping, expecting and panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

mod chain_types;
mod fidelity;
mod fuzz_regressions;
mod hostile_inputs;
mod json_shapes;
mod layers;
mod limits;
mod properties;
mod resolutions;
mod scenarios;
mod smoke;
mod urls;
