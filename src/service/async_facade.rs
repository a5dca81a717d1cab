//! The service for async (tokio) applications: every call runs on tokio's blocking pool,
//! so a slow store or node never stalls the executor, unless the service never blocks
//! ([`Checkout::never_blocks`]): then it runs in place. Reads run in place too when the
//! store's reads never block ([`Checkout::reads_never_block`]): the listings, the event
//! reads, links, and `get` of a session that needs no write.

use std::sync::Arc;

use super::{Checkout, ServiceError, SweepReport};
use crate::clock::Clock;
use time::OffsetDateTime;

use crate::id::{LinkId, SessionId};
use crate::link::Link;
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::session::{CheckoutSession, FlagResolution, SessionParams, SessionUpdate};
use crate::store::{LinkStore, ListQuery, Page, Store, StoredEvent};
use crate::transfer::TransferReport;

/// A cheaply cloneable async handle on a [`Checkout`].
pub struct AsyncCheckout<S, R, G, C> {
    inner: Arc<Checkout<S, R, G, C>>,
}

impl<S, R, G, C> Clone for AsyncCheckout<S, R, G, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S, R, G, C> std::fmt::Debug for AsyncCheckout<S, R, G, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncCheckout").finish_non_exhaustive()
    }
}

impl<S, R, G, C> AsyncCheckout<S, R, G, C>
where
    S: Store + 'static,
    R: RateSource + 'static,
    G: PaymentRequestGenerator + 'static,
    C: Clock + 'static,
{
    /// Wraps a service.
    pub fn new(checkout: Checkout<S, R, G, C>) -> Self {
        Self {
            inner: Arc::new(checkout),
        }
    }

    /// The synchronous service inside.
    pub fn blocking(&self) -> &Checkout<S, R, G, C> {
        &self.inner
    }

    /// A call of the service: in place when it never blocks (memory store, fixed rates,
    /// offline requests), where the trip to the pool would cost more than the call.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Checkout<S, R, G, C>) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        self.run_in_place_if(self.inner.never_blocks(), f).await
    }

    /// A call that only reads the store: in place when its reads never block.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Checkout<S, R, G, C>) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        self.run_in_place_if(self.inner.reads_never_block(), f)
            .await
    }

    async fn run_in_place_if<T: Send + 'static>(
        &self,
        in_place: bool,
        f: impl FnOnce(&Checkout<S, R, G, C>) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        if in_place {
            return f(&self.inner);
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| {
                ServiceError::Store(crate::store::StoreError::Backend {
                    message: format!("blocking task failed: {e}"),
                    retryable: false,
                })
            })?
    }

    /// See [`Checkout::create`].
    pub async fn create(
        &self,
        params: SessionParams,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutSession, ServiceError> {
        // Owned before the blocking task starts: the key's borrow ends with this call.
        let key = idempotency_key.map(str::to_owned);
        self.run(move |c| c.create(params, key.as_deref())).await
    }

    /// See [`Checkout::record_transfer`].
    pub async fn record_transfer(
        &self,
        report: TransferReport,
    ) -> Result<CheckoutSession, ServiceError> {
        self.run(move |c| c.record_transfer(report)).await
    }

    /// See [`Checkout::update`].
    pub async fn update(
        &self,
        id: SessionId,
        update: SessionUpdate,
    ) -> Result<CheckoutSession, ServiceError> {
        self.run(move |c| c.update(id, &update)).await
    }

    /// See [`Checkout::deactivate`].
    pub async fn deactivate(&self, id: SessionId) -> Result<CheckoutSession, ServiceError> {
        self.run(move |c| c.deactivate(id)).await
    }

    /// See [`Checkout::resolve_flag`].
    pub async fn resolve_flag(
        &self,
        id: SessionId,
        resolution: FlagResolution,
    ) -> Result<CheckoutSession, ServiceError> {
        self.run(move |c| c.resolve_flag(id, &resolution)).await
    }

    /// See [`Checkout::get`].
    pub async fn get(&self, id: SessionId) -> Result<CheckoutSession, ServiceError> {
        if let Some(session) = self.inner.get_in_place(id)? {
            return Ok(session);
        }
        self.run(move |c| c.get(id)).await
    }

    /// See [`Checkout::list`].
    pub async fn list(&self, query: ListQuery) -> Result<Page, ServiceError> {
        self.read(move |c| c.list(&query)).await
    }

    /// See [`Checkout::events_after`].
    pub async fn events_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, ServiceError> {
        self.read(move |c| c.events_after(after, limit)).await
    }

    /// See [`Checkout::timeline`].
    pub async fn timeline(&self, id: SessionId) -> Result<Vec<StoredEvent>, ServiceError> {
        self.read(move |c| c.timeline(id)).await
    }

    /// See [`Checkout::sweep`].
    pub async fn sweep(&self, limit: usize) -> Result<SweepReport, ServiceError> {
        self.run(move |c| c.sweep(limit)).await
    }

    /// See [`Checkout::refresh`].
    pub async fn refresh(&self, id: SessionId) -> Result<bool, ServiceError> {
        self.run(move |c| c.refresh(id)).await
    }
}

impl<S, R, G, C> AsyncCheckout<S, R, G, C>
where
    S: LinkStore + 'static,
    R: RateSource + 'static,
    G: PaymentRequestGenerator + 'static,
    C: Clock + 'static,
{
    /// See [`Checkout::create_checkout_link`].
    pub async fn create_checkout_link(
        &self,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Link, ServiceError> {
        self.run(move |c| c.create_checkout_link(params, expires_at))
            .await
    }

    /// See [`Checkout::create_payment_link`].
    pub async fn create_payment_link(
        &self,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Link, ServiceError> {
        self.run(move |c| c.create_payment_link(params, expires_at))
            .await
    }

    /// See [`Checkout::get_link`].
    pub async fn get_link(&self, id: LinkId) -> Result<Link, ServiceError> {
        self.read(move |c| c.get_link(id)).await
    }

    /// See [`Checkout::open_link`].
    pub async fn open_link(
        &self,
        id: LinkId,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutSession, ServiceError> {
        let key = idempotency_key.map(str::to_owned);
        self.run(move |c| c.open_link(id, key.as_deref())).await
    }

    /// See [`Checkout::deactivate_link`].
    pub async fn deactivate_link(&self, id: LinkId) -> Result<Link, ServiceError> {
        self.run(move |c| c.deactivate_link(id)).await
    }
}
