//! The settlement listener: turns a Lightning backend's settlements into recorded
//! transfers, exactly once, across restarts and outages.
//!
//! One [`SettlementListener::poll`] is one pass:
//!
//! 1. read the listener's resume point from the store ([`ResumeStore`]);
//! 2. ask the backend for the settlements after it
//!    ([`LightningBackend::settlements_after`]);
//! 3. record each on the session whose quote has its payment hash, unless that transfer is
//!    recorded already ([`Store::find_by_transfer`]);
//! 4. save the backend's next resume point with compare-and-swap.
//!
//! The resume point moves only after every settlement before it is recorded, and
//! recording is idempotent by payment hash, so a pass cut short anywhere (the backend
//! down, the store down, the process killed) loses nothing and counts nothing twice: the
//! next pass lists again from the old point. A settlement whose hash no session knows
//! (another application's invoice in the same wallet) is reported in
//! [`ListenerPass::unmatched`] and does not stall the listener; one the session refuses
//! (the same hash recorded before with another amount) is reported in
//! [`ListenerPass::refused`]. Any other failure ends the pass with the error before the
//! resume point moves. A late payment of an expired or superseded quote is recorded like
//! any other and flagged by its session as money nobody expected.
//!
//! Several listeners (one per server) may poll one backend into one store: each records at
//! least once and the store keeps each transfer once; a save that loses the race to
//! another listener's is left alone ([`ListenerPass::resume_saved`] is `false`).
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use bitcoin_checkout::backend::{
//!     Cancellation, InvoiceOrder, InvoiceState, LightningBackend, ResumePoint, Settlement,
//!     SettlementBatch,
//! };
//! use bitcoin_checkout::listener::SettlementListener;
//! use bitcoin_checkout::request::{LightningInvoice, PaymentHash, RequestError};
//! use bitcoin_checkout::store::{MemoryStore, ResumeStore};
//! # use bitcoin_checkout::{rates::FixedRates, request::TestRequestGenerator, Checkout};
//!
//! /// A backend with nothing settled yet (a real one calls its node here).
//! struct Quiet;
//!
//! impl LightningBackend for Quiet {
//!     fn create_invoice(&self, _: &InvoiceOrder) -> Result<LightningInvoice, RequestError> {
//!         Err(RequestError::MethodDisabled("lightning"))
//!     }
//!     fn lookup_invoice(&self, _: &PaymentHash) -> Result<Option<InvoiceState>, RequestError> {
//!         Ok(None)
//!     }
//!     fn cancel_invoice(&self, _: &PaymentHash) -> Result<Cancellation, RequestError> {
//!         Ok(Cancellation::Unsupported)
//!     }
//!     fn settlements_after(
//!         &self,
//!         resume: Option<&ResumePoint>,
//!     ) -> Result<SettlementBatch, RequestError> {
//!         Ok(SettlementBatch::new(Vec::new(), Some(ResumePoint::new("7"))))
//!     }
//! }
//!
//! let checkout = Checkout::new(MemoryStore::new(), FixedRates::new(), TestRequestGenerator);
//! let listener = SettlementListener::new("quiet", Quiet);
//! let pass = listener.poll(&checkout)?;
//! assert!(pass.recorded.is_empty());
//! assert_eq!(checkout.store().resume_point("quiet")?, Some(ResumePoint::new("7")));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::backend::{LightningBackend, ResumePoint, Settlement};
use crate::clock::Clock;
use crate::error::Error;
use crate::id::SessionId;
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::service::{Checkout, ServiceError};
use crate::store::{ResumeStore, Store, StoreError};
use crate::transfer::{TransferKey, TransferReport};

/// Polls one Lightning backend for settlements and records them. See the module docs.
#[derive(Debug, Clone)]
pub struct SettlementListener<B> {
    name: String,
    backend: B,
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerPass {
    /// Settlements recorded by this pass, with the session each went to, oldest first.
    pub recorded: Vec<(Settlement, SessionId)>,
    /// Settlements listed again that were recorded before (by an earlier pass or another
    /// listener).
    pub already_recorded: usize,
    /// Settlements whose payment hash no session's quote has.
    pub unmatched: Vec<Settlement>,
    /// Settlements their session refused, with why (none is lost silently: each is listed
    /// here on every pass that sees it).
    pub refused: Vec<(Settlement, Error)>,
    /// The resume point after the pass.
    pub resume_point: Option<ResumePoint>,
    /// Whether this pass saved a new resume point (`false` when there was nothing newer or
    /// another listener saved one first).
    pub resume_saved: bool,
}

impl<B: LightningBackend> SettlementListener<B> {
    /// A listener for `backend`, keeping its resume point under `name` (one name per
    /// backend wallet or node, e.g. `lnbits:<wallet id>`; listeners sharing a name share
    /// the point).
    pub fn new(name: impl Into<String>, backend: B) -> Self {
        Self {
            name: name.into(),
            backend,
        }
    }

    /// The name its resume point is kept under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend it polls.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// One pass: records the settlements after the saved resume point, then saves the
    /// next one. An error leaves the resume point where it was (see the module docs);
    /// [`ServiceError::is_retryable`] says whether the next pass may succeed.
    pub fn poll<S, R, G, C>(
        &self,
        checkout: &Checkout<S, R, G, C>,
    ) -> Result<ListenerPass, ServiceError>
    where
        S: Store + ResumeStore,
        R: RateSource,
        G: PaymentRequestGenerator,
        C: Clock,
    {
        let store = checkout.store();
        let saved = store.resume_point(&self.name)?;
        let batch = self.backend.settlements_after(saved.as_ref())?;
        let mut pass = ListenerPass {
            recorded: Vec::new(),
            already_recorded: 0,
            unmatched: Vec::new(),
            refused: Vec::new(),
            resume_point: saved.clone(),
            resume_saved: false,
        };
        for settlement in batch.settlements {
            let key = TransferKey::Lightning(settlement.payment_hash);
            if store.find_by_transfer(&key)?.is_some() {
                pass.already_recorded += 1;
                continue;
            }
            let report = TransferReport::lightning(settlement.payment_hash, settlement.amount);
            match checkout.record_transfer_first(report) {
                Ok((session, true)) => pass.recorded.push((settlement, session.id())),
                // A listener racing this one recorded it between the lookup and now.
                Ok((_, false)) => pass.already_recorded += 1,
                Err(ServiceError::Core(Error::UnknownPaymentRequest)) => {
                    pass.unmatched.push(settlement)
                }
                // The core's answer to this settlement; asking again gives the same one.
                Err(ServiceError::Core(e)) => pass.refused.push((settlement, e)),
                Err(e) => return Err(e),
            }
        }
        if let Some(next) = batch.resume_point
            && Some(&next) != saved.as_ref()
        {
            match store.save_resume_point(&self.name, saved.as_ref(), &next) {
                Ok(()) => {
                    pass.resume_point = Some(next);
                    pass.resume_saved = true;
                }
                // Another listener recorded at least as far and saved first.
                Err(StoreError::Conflict) => {
                    pass.resume_point = store.resume_point(&self.name)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(pass)
    }
}
