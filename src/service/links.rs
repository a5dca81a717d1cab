//! Checkout links and payment links through the service (stores implementing
//! [`LinkStore`]).

use time::OffsetDateTime;

use super::Checkout;
use crate::clock::Clock;
use crate::error::Error;
use crate::event::{Event, EventType, SessionEvent};
use crate::id::{CheckoutLinkId, EventId, PaymentLinkId, SessionId};
use crate::link::{Link, LinkId, Opening};
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::session::{CheckoutSession, SessionParams};
use crate::store::{Commit, LinkCommit, LinkStore, StoreError};

impl<S: LinkStore, R: RateSource, G: PaymentRequestGenerator, C: Clock> Checkout<S, R, G, C> {
    /// Creates a checkout link: opening it creates one session, and opening it again
    /// returns that session.
    pub fn create_checkout_link(
        &self,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Link, Error> {
        self.insert_link(
            LinkId::Checkout(CheckoutLinkId::generate()),
            params,
            expires_at,
        )
    }

    /// Creates a payment link: every open creates a new session.
    pub fn create_payment_link(
        &self,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Link, Error> {
        self.insert_link(
            LinkId::Payment(PaymentLinkId::generate()),
            params,
            expires_at,
        )
    }

    fn insert_link(
        &self,
        id: LinkId,
        params: SessionParams,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Link, Error> {
        let now = self.clock.now();
        let (link, events) = Link::create(id, params, expires_at, now)?;
        let commit = LinkCommit {
            events: link_events(&events, &link, None),
            link,
            expected_version: None,
            sessions: Vec::new(),
        };
        self.store.commit_link(&commit)?;
        Ok(commit.link)
    }

    /// The link with this id.
    pub fn get_link(&self, id: LinkId) -> Result<Link, Error> {
        self.store
            .load_link(id)?
            .ok_or_else(|| Error::UnknownLink(id.to_string()))
    }

    /// Opens a link: a checkout link's one session (created on the first open, even when
    /// many customers open it at once), or a new session of a payment link.
    pub fn open_link(&self, id: LinkId) -> Result<CheckoutSession, Error> {
        let mut last = Error::Store(StoreError::Conflict);
        for attempt in 0..self.max_attempts {
            let mut link = self.get_link(id)?;
            let expected = link.version();
            let now = self.clock.now();
            let session_id = match link.open(SessionId::generate(), now)? {
                Opening::Existing(existing) => return self.get(existing),
                Opening::NewSession(new) => new,
            };
            let mut params = link.params().clone();
            params.link = Some(id);
            let (mut session, mut events) = CheckoutSession::create(session_id, params, now)?;
            self.quote(&mut session, now, &mut events)?;
            let commit = LinkCommit {
                events: Vec::new(),
                link,
                expected_version: Some(expected),
                sessions: vec![Commit {
                    expected_version: None,
                    changed_transfers: Vec::new(),
                    events: self.envelopes(&events, &session),
                    idempotency: None,
                    session,
                }],
            };
            match self.store.commit_link(&commit) {
                Ok(()) => {
                    return commit
                        .sessions
                        .into_iter()
                        .next()
                        .map(|c| c.session)
                        .ok_or(last);
                }
                Err(e) if e.is_retryable() => {
                    super::backoff(attempt, &e);
                    last = Error::Store(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last)
    }

    /// Deactivates a link and, in the same commit, every active session it opened (their
    /// open quotes are cancelled).
    pub fn deactivate_link(&self, id: LinkId) -> Result<Link, Error> {
        let mut last = Error::Store(StoreError::Conflict);
        for attempt in 0..self.max_attempts {
            let mut link = self.get_link(id)?;
            let expected = link.version();
            let now = self.clock.now();
            let deactivated = link.deactivate(now)?;
            let mut sessions = Vec::new();
            for sid in self.store.link_sessions(id)? {
                let mut session = self.get(sid)?;
                if session.state().is_terminal() {
                    continue;
                }
                let before = session.version();
                let at = now.max(session.modified());
                let events = session.deactivate(at)?;
                sessions.push(Commit {
                    expected_version: Some(before),
                    changed_transfers: Vec::new(),
                    events: self.envelopes(&events, &session),
                    idempotency: None,
                    session,
                });
            }
            let session_status = link_session_status(&link, &sessions, self)?;
            let commit = LinkCommit {
                events: link_events(&deactivated, &link, session_status),
                link,
                expected_version: Some(expected),
                sessions,
            };
            match self.store.commit_link(&commit) {
                Ok(()) => return Ok(commit.link),
                Err(e) if e.is_retryable() => {
                    super::backoff(attempt, &e);
                    last = Error::Store(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last)
    }
}

/// The status of a checkout link's session after the commit, for the link's JSON.
fn link_session_status<S: LinkStore, R, G, C>(
    link: &Link,
    sessions: &[Commit],
    checkout: &Checkout<S, R, G, C>,
) -> Result<Option<crate::session::SessionStatus>, Error> {
    let Some(sid) = link.session() else {
        return Ok(None);
    };
    if let Some(c) = sessions.iter().find(|c| c.session.id() == sid) {
        return Ok(Some(c.session.status()));
    }
    Ok(checkout.store.load(sid)?.map(|s| s.status()))
}

fn link_events(
    events: &[SessionEvent],
    link: &Link,
    session: Option<crate::session::SessionStatus>,
) -> Vec<Event> {
    let json = link.to_json(session);
    events
        .iter()
        .map(|e| Event {
            id: EventId::generate(),
            event_type: e.event_type.clone(),
            session_id: None,
            livemode: link.params().livemode,
            created: e.at,
            object: crate::event::raw_or_null(json.clone()),
        })
        .collect()
}

/// The `checkout_link.paid` event for a session of a checkout link that just got paid.
pub(crate) fn checkout_link_paid(session: &CheckoutSession, at: OffsetDateTime) -> Option<Event> {
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
        id: EventId::generate(),
        event_type: EventType::CheckoutLinkPaid,
        session_id: Some(session.id()),
        livemode: session.livemode(),
        created: at,
        object: crate::event::raw_or_null(json.to_string()),
    })
}
