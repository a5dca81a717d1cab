//! Names for the usual service types, so an application can keep a `Checkout` in a struct
//! field or pass it to a function without spelling four type parameters.
//!
//! The ports other than the store are boxed trait objects here: a rate lookup, a payment
//! request and a clock reading cost far more than one dynamic call, and the store stays a
//! concrete type because it is the one port an application calls directly (`store()`).

use super::Checkout;
use crate::clock::{Clock, SystemClock};
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;

/// Any rate source, boxed.
pub type DynRates = Box<dyn RateSource>;

/// Any payment-request generator, boxed.
pub type DynGenerator = Box<dyn PaymentRequestGenerator>;

/// Any clock, boxed.
pub type DynClock = Box<dyn Clock>;

/// The service over store `S` with its other ports boxed; build it with
/// [`Checkout::boxed`].
pub type DynCheckout<S> = Checkout<S, DynRates, DynGenerator, DynClock>;

/// The service over the in-memory store, ports boxed.
pub type MemoryCheckout = DynCheckout<crate::store::MemoryStore>;

/// The service over the embedded default store, ports boxed.
///
/// ```
/// use bitcoin_checkout::rates::FixedRates;
/// use bitcoin_checkout::request::TestRequestGenerator;
/// use bitcoin_checkout::service::SqliteCheckout;
/// use bitcoin_checkout::store::SqliteStore;
/// use bitcoin_checkout::{Checkout, Currency, Decimal, SessionParams, TargetCurrency};
///
/// struct App {
///     checkout: SqliteCheckout,
/// }
///
/// let usd = Currency::from_code("USD")?;
/// let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
/// let app = App {
///     checkout: Checkout::boxed(SqliteStore::open_in_memory()?, rates, TestRequestGenerator),
/// };
/// let session = app.checkout.create(SessionParams::new(Decimal::ONE, usd), None)?;
/// assert_eq!(session.amount(), Decimal::ONE);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "sqlite")]
pub type SqliteCheckout = DynCheckout<crate::store::SqliteStore>;

/// The service over PostgreSQL, ports boxed.
#[cfg(feature = "postgres")]
pub type PostgresCheckout = DynCheckout<crate::store::PostgresStore>;

impl<S> DynCheckout<S> {
    /// A service over `store` with the other ports boxed (the system clock, random ids):
    /// its type is [`DynCheckout<S>`], e.g. [`SqliteCheckout`].
    pub fn boxed(
        store: S,
        rates: impl RateSource + 'static,
        generator: impl PaymentRequestGenerator + 'static,
    ) -> Self {
        Checkout::new(
            store,
            Box::new(rates) as DynRates,
            Box::new(generator) as DynGenerator,
        )
        .with_clock(Box::new(SystemClock) as DynClock)
    }

    /// The same service with another clock, keeping its type.
    pub fn with_boxed_clock(self, clock: impl Clock + 'static) -> Self {
        self.with_clock(Box::new(clock) as DynClock)
    }
}
