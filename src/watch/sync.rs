//! One pass of the watcher against the service: new views given, saved, recorded.

use super::{ChainWatcher, OutputView, WatchError};
use crate::clock::Clock;
use crate::error::Error;
use crate::id::SessionId;
use crate::rates::RateSource;
use crate::request::{AddressIndex, PaymentRequestGenerator};
use crate::service::{Checkout, ServiceError};
use crate::store::{ResumeStore, Store};

/// What one [`sync`](ChainWatcher::sync) did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WatchPass {
    /// Views recorded, with the session each went to, by output.
    pub recorded: Vec<(OutputView, SessionId)>,
    /// Views of outputs whose address no session has (kept in
    /// [`unmatched`](ChainWatcher::unmatched)).
    pub unmatched: Vec<OutputView>,
    /// Views their session refused, with why (kept in [`refused`](ChainWatcher::refused)).
    pub refused: Vec<(OutputView, Error)>,
    /// The best block's height after the pass.
    pub tip: u32,
}

impl ChainWatcher {
    /// Watches up to the last address `index` handed out for the watcher's descriptor,
    /// gives a view to every output that changed since the last pass, saves the state
    /// (so no view's sequence number is ever given twice), records the views on their
    /// sessions, and saves again.
    ///
    /// A failure while recording (the store down) keeps the views not recorded yet, saved,
    /// for the next pass; [`WatchError::is_retryable`] says whether it may succeed.
    /// [`WatchError::Conflict`] means another watcher saved first: [`load`](Self::load)
    /// the state again.
    pub fn sync<S, R, G, C>(
        &mut self,
        checkout: &Checkout<S, R, G, C>,
        index: &impl AddressIndex,
    ) -> Result<WatchPass, WatchError>
    where
        S: Store + ResumeStore,
        R: RateSource,
        G: PaymentRequestGenerator,
        C: Clock,
    {
        if let Some(last) = index.reserved(&self.deriver.descriptor())? {
            self.watch_up_to(last);
        }
        self.refresh_views();
        let store = checkout.store();
        self.save(store)?;
        let mut pass = WatchPass {
            tip: self.chain.tip().height(),
            ..WatchPass::default()
        };
        let views: Vec<OutputView> = self.outbox.values().cloned().collect();
        for view in views {
            match checkout.record_transfer(view.report()) {
                Ok(session) => pass.recorded.push((view.clone(), session.id())),
                Err(ServiceError::Core(Error::UnknownPaymentRequest)) => {
                    self.unmatched.insert(view.outpoint, view.clone());
                    pass.unmatched.push(view.clone());
                }
                // The core's answer to this view; recording it again gives the same one.
                Err(ServiceError::Core(e)) => {
                    self.refused
                        .insert(view.outpoint, (view.clone(), e.to_string()));
                    pass.refused.push((view.clone(), e));
                }
                Err(e) => {
                    // What was recorded is out of the outbox; the rest waits, saved.
                    let _ = self.save(store);
                    return Err(e.into());
                }
            }
            self.outbox.remove(&view.outpoint);
        }
        self.save(store)?;
        Ok(pass)
    }
}
