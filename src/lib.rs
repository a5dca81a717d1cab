//! bitcoin-checkout (work in progress)
#![deny(missing_docs)]

pub mod error;
pub mod id;
pub mod json;
pub mod money;
pub mod request;

pub use error::Error;
