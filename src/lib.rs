#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

#[macro_use]
mod forward;

pub mod backend;
pub mod chain;
pub mod clock;
mod digits;
pub mod error;
pub mod event;
pub mod hash;
#[cfg(feature = "http")]
pub mod http;
pub mod id;
mod invoice;
pub mod json;
pub mod lease;
pub mod link;
pub mod listener;
pub mod metadata;
pub mod metrics;
pub mod money;
pub mod outbox;
pub mod payment;
pub mod qr;
pub mod rates;
pub mod request;
#[cfg(feature = "runner")]
pub mod runner;
pub mod service;
pub mod session;
pub mod snapshot;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod transfer;
#[cfg(feature = "watcher")]
pub mod watch;
#[cfg(feature = "webhooks")]
pub mod webhook;

pub use chain::{OutPoint, Txid};
// The public API takes and returns these; re-exported so an application need not depend
// on `rust_decimal` and `time` itself (and cannot pick an incompatible version).
pub use rust_decimal::Decimal;
pub use time::{Duration, OffsetDateTime};

pub use error::Error;
pub use event::{EventType, SessionEvent};
pub use id::{CheckoutLinkId, EndpointId, EventId, PaymentId, PaymentLinkId, SessionId};
pub use metadata::{Metadata, MetadataPatch, MetadataValue};
pub use money::{Currency, ExchangeRate, Msats, Sats, TargetCurrency};
pub use outbox::Event;
pub use payment::{Payment, PaymentState, PaymentStatus};
pub use request::{LightningInvoice, PaymentHash, PaymentRequest};
pub use service::{Checkout, ServiceError};
pub use session::{
    Branding, CheckoutSession, DeactivationReason, Flag, FlagKind, QuoteTerms, SessionParams,
    SessionState, SessionStatus, SessionUpdate, Totals,
};
pub use transfer::{
    Arrival, ConfirmationPolicy, PaymentMethod, Transfer, TransferKey, TransferReport,
};
