//! Checkout links and payment links through the service (stores implementing
//! [`LinkStore`]).

use time::OffsetDateTime;

use super::idempotency::Claim;
use super::transact::{QuoteMemo, outcome_unknown};
use super::{Checkout, ServiceError};
use crate::clock::Clock;
use crate::event::{EventType, SessionEvent};
use crate::id::{CheckoutLinkId, EventId, LinkId, PaymentLinkId, SessionId};
use crate::link::{Link, Opening};
use crate::outbox::Event;
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::session::{CheckoutSession, SessionParams, SessionStatus};
use crate::store::{Commit, LinkCommit, LinkStore, StoreError};

impl<S: LinkStore, R: RateSource, G: PaymentRequestGenerator, C: Clock> Checkout<S, R, G, C> {
    /// Creates a checkout link: opening it creates one session, and opening it again
    /// returns that session.
    pub fn create_checkout_link(
        &self,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Link, ServiceError> {
        let _op = super::operation("create_checkout_link", None);
        let now = self.clock.now();
        let id = LinkId::Checkout(CheckoutLinkId::from_uuid(self.ids.next_uuid(now)));
        self.insert_link(id, params, expires_at, now)
    }

    /// Creates a payment link: every open creates a new session.
    pub fn create_payment_link(
        &self,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Link, ServiceError> {
        let _op = super::operation("create_payment_link", None);
        let now = self.clock.now();
        let id = LinkId::Payment(PaymentLinkId::from_uuid(self.ids.next_uuid(now)));
        self.insert_link(id, params, expires_at, now)
    }

    fn insert_link(
        &self,
        id: LinkId,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Link, ServiceError> {
        let (link, events) = Link::create(id, params, expires_at, now)?;
        let commit = LinkCommit {
            events: self.link_events(&events, &link, None, now),
            link,
            expected_version: None,
            sessions: Vec::new(),
        };
        self.transact(|_| match self.st().commit_link(&commit) {
            Ok(()) => Ok(()),
            // The id is minted here, so a link already holding it is this one, inserted by
            // an attempt whose outcome the store could not tell.
            Err(StoreError::Conflict)
                if self.st().load_link(id)?.as_ref() == Some(&commit.link) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        })?;
        Ok(commit.link)
    }

    /// The link with this id.
    pub fn get_link(&self, id: LinkId) -> Result<Link, ServiceError> {
        let _op = super::operation("get_link", None);
        self.retry_store(|| self.st().load_link(id))?
            .ok_or(ServiceError::UnknownLink(id))
    }

    /// Opens a link: a checkout link's one session (created on the first open, even when
    /// many customers open it at once), or a new session of a payment link.
    ///
    /// With an idempotency key (the same keys as [`create`](Checkout::create)'s), opening
    /// a payment link again with the key returns the session the first open made instead
    /// of a new one, so a client may retry an open whose answer it lost. A checkout link
    /// has one session whoever opens it, so there the key is checked but not stored.
    ///
    /// ```
    /// # use bitcoin_checkout::rates::FixedRates;
    /// # use bitcoin_checkout::request::TestRequestGenerator;
    /// # use bitcoin_checkout::store::MemoryStore;
    /// # use bitcoin_checkout::{Checkout, Currency, Decimal, SessionParams, TargetCurrency};
    /// # let usd = Currency::from_code("USD")?;
    /// # let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    /// let checkout = Checkout::new(MemoryStore::new(), rates, TestRequestGenerator);
    /// let link = checkout.create_payment_link(SessionParams::new(Decimal::ONE, usd), None)?;
    /// let first = checkout.open_link(link.id(), Some("cart-77"))?;
    /// let retried = checkout.open_link(link.id(), Some("cart-77"))?;
    /// assert_eq!(retried.id(), first.id());
    /// let other = checkout.open_link(link.id(), None)?;
    /// assert_ne!(other.id(), first.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_link(
        &self,
        id: LinkId,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutSession, ServiceError> {
        let _op = super::operation("open_link", None);
        let now = self.clock.now();
        if let Some(key) = idempotency_key {
            super::idempotency::check_idempotency_key(key)?;
        }
        // A checkout link's one session needs no key to be found again.
        let key = idempotency_key.filter(|_| matches!(id, LinkId::Payment(_)));
        let request = || serde_json::json!({ "open_link": id.to_string() }).to_string();
        let (candidate, claim) = match self.claim_or_mint(key, request, now)? {
            Claim::Replay(session) => return Ok(*session),
            Claim::Create(candidate, claim) => (candidate, claim),
        };
        let opened = self.open_as(id, candidate);
        self.release_unused(claim.as_ref(), &opened);
        opened
    }

    /// Opens link `id`, making its new session (if it makes one) with id `candidate`.
    fn open_as(&self, id: LinkId, candidate: SessionId) -> Result<CheckoutSession, ServiceError> {
        let mut memo = QuoteMemo::default();
        // Set when a commit's outcome was unknown. The candidate id is minted by this call
        // alone, so a session with it in the store is the one that commit made.
        let mut unsure = false;
        self.transact(|_| {
            if unsure && let Some(session) = self.st().load(candidate)? {
                return Ok(session);
            }
            let mut link = self
                .st()
                .load_link(id)?
                .ok_or(ServiceError::UnknownLink(id))?;
            let expected = link.version();
            let now = self.clock.now();
            let session_id = match link.open(candidate, now)? {
                Opening::Existing(existing) => {
                    return self
                        .st()
                        .load(existing)?
                        .ok_or(ServiceError::UnknownSession(existing));
                }
                Opening::NewSession(new) => new,
            };
            let mut params = link.params().clone();
            params.link = Some(id);
            let (mut session, mut change) = CheckoutSession::create(session_id, params, now)?;
            self.quote(&mut session, now, &mut memo, &mut change)?;
            let events = self.envelopes(change.events(), &session, now);
            let mut commit = LinkCommit {
                events: Vec::new(),
                link,
                expected_version: Some(expected),
                sessions: vec![Commit::new(session, None, &change, events)],
            };
            if let Err(e) = self.st().commit_link(&commit) {
                unsure |= outcome_unknown(&e);
                return Err(e.into());
            }
            let opened = commit.sessions.pop().map(|c| c.session);
            opened.ok_or(ServiceError::UnknownSession(session_id))
        })
    }

    /// Deactivates a link and, in the same commit, every active session it opened (their
    /// open quotes are cancelled).
    ///
    /// When the store could not tell whether an attempt's commit landed (a connection cut
    /// during COMMIT) and the retry finds the link deactivated exactly as that commit left
    /// it, the commit is taken as this call's and the link returned, not the refusal a
    /// second deactivation meets. A deactivated link never changes again, so the stored
    /// link equals the committed one exactly when that commit (or an identical one, made
    /// by a concurrent request in the same millisecond) landed.
    pub fn deactivate_link(&self, id: LinkId) -> Result<Link, ServiceError> {
        let _op = super::operation("deactivate_link", None);
        let mut unsure: Option<Link> = None;
        self.transact(|_| {
            let mut link = self
                .st()
                .load_link(id)?
                .ok_or(ServiceError::UnknownLink(id))?;
            if unsure.as_ref() == Some(&link) {
                return Ok(link);
            }
            let expected = link.version();
            let now = self.clock.now();
            let deactivated = link.deactivate(now)?;
            let mut sessions = Vec::new();
            for sid in self.st().link_sessions(id)? {
                let mut session = self
                    .st()
                    .load(sid)?
                    .ok_or(ServiceError::UnknownSession(sid))?;
                if session.state().is_terminal() {
                    continue;
                }
                let before = session.version();
                let at = now.max(session.modified());
                let change = session.deactivate(at)?;
                let events = self.envelopes(change.events(), &session, at);
                sessions.push(Commit::new(session, Some(before), &change, events));
            }
            let session_status = self.link_session_status(&link, &sessions)?;
            let commit = LinkCommit {
                events: self.link_events(&deactivated, &link, session_status, now),
                link,
                expected_version: Some(expected),
                sessions,
            };
            if let Err(e) = self.st().commit_link(&commit) {
                if outcome_unknown(&e) {
                    unsure = Some(commit.link);
                }
                return Err(e.into());
            }
            Ok(commit.link)
        })
    }

    /// The status of a checkout link's session after the commit, for the link's JSON.
    fn link_session_status(
        &self,
        link: &Link,
        sessions: &[Commit],
    ) -> Result<Option<SessionStatus>, ServiceError> {
        let Some(sid) = link.session() else {
            return Ok(None);
        };
        if let Some(c) = sessions.iter().find(|c| c.session.id() == sid) {
            return Ok(Some(c.session.status()));
        }
        Ok(self.st().load(sid)?.map(|s| s.status()))
    }

    fn link_events(
        &self,
        events: &[SessionEvent],
        link: &Link,
        session: Option<SessionStatus>,
        now: OffsetDateTime,
    ) -> Vec<Event> {
        let json = link.to_json(session);
        events
            .iter()
            .map(|e| Event {
                id: self.event_id(now),
                event_type: e.event_type.clone(),
                session_id: None,
                livemode: link.params().livemode,
                created: e.at,
                object: crate::outbox::raw_or_null(json.clone()),
            })
            .collect()
    }
}

/// The `checkout_link.paid` event (with an id from `id`, minted only when there is an
/// event) for a session of a checkout link that just got paid.
pub(super) fn checkout_link_paid(
    session: &CheckoutSession,
    at: OffsetDateTime,
    id: impl FnOnce() -> EventId,
) -> Option<Event> {
    let LinkId::Checkout(link) = session.link()? else {
        return None;
    };
    let json = serde_json::json!({
        "id": link.to_string(),
        "object": "checkout.link",
        "status": "paid",
        "checkout_session": session.id().to_string(),
    });
    Some(Event {
        id: id(),
        event_type: EventType::CheckoutLinkPaid,
        session_id: Some(session.id()),
        livemode: session.livemode(),
        created: at,
        object: crate::outbox::raw_or_null(json.to_string()),
    })
}
