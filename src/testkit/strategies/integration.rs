//! The integration under test: the [`Integration`] trait and its implementation for
//! [`CheckoutSession`].

use time::OffsetDateTime;

use crate::error::Error;
use crate::event::SessionEvent;
use crate::id::PaymentId;
use crate::money::ExchangeRate;
use crate::request::PaymentRequest;
use crate::session::{CheckoutSession, FlagResolution, QuoteTerms, SessionChange, SessionUpdate};
use crate::transfer::TransferReport;

/// What the harness drives: the commands of a [`CheckoutSession`], and a way to read the
/// session's current state.
///
/// [`CheckoutSession`] implements it directly. Implement it for your own code around the
/// core (a wrapper that persists the session after each command, deduplicates reports,
/// caches…) to check that it behaves exactly like the specification.
pub trait Integration {
    /// [`CheckoutSession::next_quote`]; it must not change the session.
    fn next_quote(
        &mut self,
        payment_id: PaymentId,
        rate: ExchangeRate,
        now: OffsetDateTime,
    ) -> Result<QuoteTerms, Error>;

    /// [`CheckoutSession::issue_quote`].
    fn issue_quote(
        &mut self,
        terms: QuoteTerms,
        request: PaymentRequest,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::record_transfer`].
    fn record_transfer(
        &mut self,
        report: TransferReport,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::expire_quotes`].
    fn expire_quotes(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::update`].
    fn update(
        &mut self,
        update: &SessionUpdate,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::deactivate`].
    fn deactivate(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error>;

    /// [`CheckoutSession::resolve_flag`].
    fn resolve_flag(
        &mut self,
        resolution: &FlagResolution,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error>;

    /// The session as it is now (for a persisting integration: as stored).
    fn session(&self) -> Result<CheckoutSession, Error>;
}

impl Integration for CheckoutSession {
    fn next_quote(
        &mut self,
        payment_id: PaymentId,
        rate: ExchangeRate,
        now: OffsetDateTime,
    ) -> Result<QuoteTerms, Error> {
        CheckoutSession::next_quote(self, payment_id, rate, now)
    }

    fn issue_quote(
        &mut self,
        terms: QuoteTerms,
        request: PaymentRequest,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::issue_quote(self, terms, request, now).map(SessionChange::into_events)
    }

    fn record_transfer(
        &mut self,
        report: TransferReport,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::record_transfer(self, report, now).map(SessionChange::into_events)
    }

    fn expire_quotes(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::expire_quotes(self, now).map(SessionChange::into_events)
    }

    fn update(
        &mut self,
        update: &SessionUpdate,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::update(self, update, now).map(SessionChange::into_events)
    }

    fn resolve_flag(
        &mut self,
        resolution: &FlagResolution,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::resolve_flag(self, resolution, now).map(SessionChange::into_events)
    }

    fn deactivate(&mut self, now: OffsetDateTime) -> Result<Vec<SessionEvent>, Error> {
        CheckoutSession::deactivate(self, now).map(SessionChange::into_events)
    }

    fn session(&self) -> Result<CheckoutSession, Error> {
        Ok(self.clone())
    }
}
