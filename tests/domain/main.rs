//! The domain core through its public API: shapes, properties, scenarios, hostile input, fuzz regressions and the layering of the crate.
//!
//! One test binary per area (each file a module), so CI links the crate a few times
//! instead of once per file.

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

mod smoke;
mod json_shapes;
mod properties;
mod scenarios;
mod hostile_inputs;
mod fuzz_regressions;
mod layers;
