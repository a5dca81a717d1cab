//! Payment requests: what a customer's wallet pays (BOLT11 invoice, on-chain address, or
//! one unified BIP21 URI), and the port that generates them for a quote.
//!
//! The values a quote holds ([`PaymentRequest`], [`LightningInvoice`], [`PaymentHash`])
//! belong to the core ([`crate::payment`], [`crate::hash`]) and are re-exported here; this
//! module holds the port and its adapters.

pub use crate::hash::{Hash32, PaymentHash};
pub use crate::payment::{LightningInvoice, PaymentRequest};

mod error;
mod generator;
mod sources;
pub use error::RequestError;
pub use generator::{PaymentRequestGenerator, TestRequestGenerator};
pub(crate) use sources::quote_memo;
pub use sources::{
    AddressIndex, AddressSource, Disabled, InvoiceSource, MemoryAddressIndex, RequestGenerator,
};

#[cfg(feature = "lightning")]
pub mod lightning;
#[cfg(feature = "lnbits")]
pub mod lnbits;
#[cfg(feature = "onchain")]
pub mod onchain;
pub mod unified;
