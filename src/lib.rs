//! bitcoin-checkout (work in progress)
#![deny(missing_docs)]

pub mod error;
pub mod id;
pub mod json;
pub mod money;
pub mod qr;
pub mod request;
#[cfg(feature = "webhooks")]
pub mod webhook;

pub use error::Error;
