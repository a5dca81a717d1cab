//! The [`LinkStore`] suite: [`run_links`] and its checks (checkout links and payment links).

use std::sync::Barrier;

use serde_json::value::RawValue;
use time::{Duration, OffsetDateTime};

use super::fixtures::{Ck, Draft, dollars, events_of, rates, t0, usd};
#[cfg(doc)]
use super::run_all;
use super::{Check, run_checks};
use crate::clock::ManualClock;
use crate::event::{EventType, SessionEvent};
use crate::id::{CheckoutLinkId, EventId, PaymentLinkId, SessionId};
use crate::link::{Link, LinkId, Opening};
use crate::outbox::Event;
use crate::request::TestRequestGenerator;
use crate::service::{Checkout, ServiceError};
use crate::session::{SessionParams, SessionStatus, SessionUpdate};
#[cfg(doc)]
use crate::store::Store;
use crate::store::{LinkCommit, LinkStore};
use crate::transfer::TransferReport;

/// Every link check, by name.
fn link_checks<S: LinkStore>() -> Vec<(&'static str, Check<S>)> {
    crate::__link_checks!(list(S))
}

/// Runs every link check (the contract of [`LinkStore`]), each on a fresh store from
/// `fresh`, then all of them on one more fresh store. Panics on the first violation,
/// naming the check. Run [`run_all`] too: a link store is a [`Store`].
pub fn run_links<S: LinkStore>(fresh: impl FnMut() -> S) {
    run_checks(&link_checks::<S>(), fresh);
}

/// The events a link's commit carries, as the service makes them (no session).
pub(super) fn link_events(link: &Link, events: &[SessionEvent]) -> Vec<Event> {
    let json = link.to_json(None);
    events
        .iter()
        .map(|e| Event {
            id: EventId::generate(),
            event_type: e.event_type.clone(),
            session_id: None,
            livemode: link.params().livemode,
            created: e.at,
            object: RawValue::from_string(json.clone()).expect("link JSON"),
        })
        .collect()
}

/// A new link of either kind with its creation events.
fn new_link(payment: bool, now: OffsetDateTime) -> (Link, Vec<Event>) {
    let id = if payment {
        LinkId::Payment(PaymentLinkId::generate())
    } else {
        LinkId::Checkout(CheckoutLinkId::generate())
    };
    let params = SessionParams::new(dollars(1250), usd()).description("link — ☕ \"x\"");
    let (link, events) =
        Link::create(id, params, Some(now + Duration::days(30)), now).expect("core: link");
    let events = link_events(&link, &events);
    (link, events)
}

/// A session opened by `link` at `now` (the link is opened for it).
fn open_draft(link: &mut Link, now: OffsetDateTime) -> Draft {
    let mut params = link.params().clone();
    params.link = Some(link.id());
    let d = Draft::new(params, now);
    match link.open(d.id(), now).expect("core: open link") {
        Opening::NewSession(id) if id == d.id() => {}
        other => panic!("fixture: opening the link gave {other:?}"),
    }
    d
}

impl<S: LinkStore> Ck<'_, S> {
    #[track_caller]
    pub(super) fn load_link(&self, id: LinkId) -> Option<Link> {
        self.ok("load_link", self.store.load_link(id))
    }

    #[track_caller]
    fn link_sessions(&self, id: LinkId) -> Vec<SessionId> {
        self.ok("link_sessions", self.store.link_sessions(id))
    }

    /// Inserts a link with its events.
    #[track_caller]
    pub(super) fn insert_link(&self, link: &Link, events: Vec<Event>) {
        let commit = LinkCommit {
            link: link.clone(),
            expected_version: None,
            events,
            sessions: Vec::new(),
        };
        self.ok("commit_link (insert)", self.store.commit_link(&commit));
    }

    /// Opens the stored `link` for a new session at `now` and commits both.
    #[track_caller]
    pub(super) fn open_link(&self, link: &mut Link, now: OffsetDateTime) -> Draft {
        let expected = link.version();
        let mut d = open_draft(link, now);
        let commit = LinkCommit {
            link: link.clone(),
            expected_version: Some(expected),
            events: Vec::new(),
            sessions: vec![d.to_commit()],
        };
        self.ok("commit_link (open)", self.store.commit_link(&commit));
        d.committed();
        d
    }
}

/// A link inserted (with no expected version) loads back equal; opening it commits the
/// link's new version and the new session together; the session names its link, and a
/// later plain commit of it keeps it among the link's sessions. Inserting an existing link
/// again is `Conflict`. Unknown links load as `None` with no sessions.
pub fn check_link_round_trip<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_round_trip", store);
    let t = t0() + Duration::milliseconds(5);
    let unknown = LinkId::Payment(PaymentLinkId::generate());
    ck.eq("load_link of an unknown id", ck.load_link(unknown), None);
    ck.eq(
        "link_sessions of an unknown link",
        ck.link_sessions(unknown),
        vec![],
    );
    for payment in [false, true] {
        let (link, events) = new_link(payment, t);
        let id = link.id();
        ck.insert_link(&link, events);
        ck.eq(
            "load_link after insert",
            ck.load_link(id),
            Some(link.clone()),
        );
        ck.eq("link_sessions of a new link", ck.link_sessions(id), vec![]);

        let mut opened = link.clone();
        let t1 = t + Duration::seconds(1);
        let mut d = ck.open_link(&mut opened, t1);
        ck.eq(
            "load_link after open",
            ck.load_link(id),
            Some(opened.clone()),
        );
        ck.eq(
            "the opened link's version",
            opened.version(),
            link.version() + 1,
        );
        ck.loads_as("the link's session", &d);
        ck.eq(
            "the session's link",
            ck.load(d.id()).and_then(|s| s.link()),
            Some(id),
        );
        ck.eq(
            "link_sessions after open",
            ck.link_sessions(id),
            vec![d.id()],
        );

        // A plain commit of the session keeps it with its link.
        d.pay(t + Duration::seconds(2));
        ck.commit(&mut d);
        ck.loads_as("the link's session after a payment", &d);
        ck.eq(
            "link_sessions after a session commit",
            ck.link_sessions(id),
            vec![d.id()],
        );

        let again = LinkCommit {
            link: link.clone(),
            expected_version: None,
            events: Vec::new(),
            sessions: Vec::new(),
        };
        ck.conflict("insert of an existing link", store.commit_link(&again));
        ck.eq(
            "load_link after a refused insert",
            ck.load_link(id),
            Some(opened),
        );
    }
}

/// A link commit whose expected link version is stale (or names a link never stored) is
/// `Conflict` and writes nothing: neither the link, nor its events, nor any of its session
/// commits (inserts, updates, idempotency records, lookups).
pub fn check_link_conflict_writes_nothing<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_conflict_writes_nothing", store);
    let t = t0();
    let (link, events) = new_link(true, t);
    ck.insert_link(&link, events);
    let stale_link = link.clone();
    let mut current = link.clone();
    let a = ck.open_link(&mut current, t + Duration::seconds(1));
    let cursor = ck.last_seq();

    // From the stale version: open for b (with an idempotency record), deactivate a, and
    // a link event of its own.
    let t2 = t + Duration::seconds(2);
    let mut stale = stale_link.clone();
    let b = open_draft(&mut stale, t2);
    let b_hash = b.open_hash();
    let mut a2 = a.clone();
    a2.deactivate(t2);
    let note = SessionEvent::new(EventType::Unknown("vendor.link_note".into()), t2);
    let mut commit = LinkCommit {
        events: link_events(&stale, &[note]),
        link: stale,
        expected_version: Some(stale_link.version()),
        sessions: vec![b.to_commit(), a2.to_commit()],
    };
    ck.conflict(
        "link commit from a stale link version",
        store.commit_link(&commit),
    );
    let unchanged = |what: &str| {
        ck.eq(
            &format!("{what}: the link"),
            ck.load_link(link.id()),
            Some(current.clone()),
        );
        ck.loads_as(&format!("{what}: session a"), &a);
        ck.eq(&format!("{what}: session b"), ck.load(b.id()), None);
        ck.eq(
            &format!("{what}: link_sessions"),
            ck.link_sessions(link.id()),
            vec![a.id()],
        );
        ck.eq(&format!("{what}: events"), ck.events_since(cursor).len(), 0);
        ck.eq(
            &format!("{what}: b's invoice"),
            ck.ok("find_by_payment_hash", store.find_by_payment_hash(&b_hash)),
            None,
        );
    };
    unchanged("after a stale link commit");

    commit.expected_version = Some(current.version() + 5);
    ck.conflict(
        "link commit expecting a future version",
        store.commit_link(&commit),
    );
    unchanged("after a link commit from the future");

    // Updating a link never stored.
    let (ghost, _) = new_link(false, t);
    let mut ghost_open = ghost.clone();
    let g = open_draft(&mut ghost_open, t2);
    let commit = LinkCommit {
        link: ghost_open,
        expected_version: Some(ghost.version()),
        events: Vec::new(),
        sessions: vec![g.to_commit()],
    };
    ck.conflict("update of a link never stored", store.commit_link(&commit));
    ck.eq("the never-stored link", ck.load_link(ghost.id()), None);
    ck.eq("the never-stored link's session", ck.load(g.id()), None);
    unchanged("after an update of a link never stored");
}

/// A link commit whose link version is right but one of whose session commits is stale
/// (or inserts a session that exists) is `Conflict` and writes nothing: not the link, not
/// its events, not the other sessions' commits. The same commit from fresh versions then
/// applies whole.
pub fn check_link_stale_session_writes_nothing<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_stale_session_writes_nothing", store);
    let t = t0();
    let (link, events) = new_link(true, t);
    ck.insert_link(&link, events);
    let mut current = link.clone();
    let a = ck.open_link(&mut current, t + Duration::seconds(1));
    let mut b = ck.open_link(&mut current, t + Duration::seconds(2));
    let stale_b = b.clone();
    // Someone else changes b.
    b.update(
        &SessionUpdate::new().description("changed meanwhile"),
        t + Duration::seconds(3),
    );
    ck.commit(&mut b);
    let cursor = ck.last_seq();

    let t4 = t + Duration::seconds(4);
    let deactivation = |b: &Draft| {
        let mut l = current.clone();
        let events = l.deactivate(t4).expect("core: deactivate link");
        let mut a2 = a.clone();
        a2.deactivate(t4);
        let mut b2 = b.clone();
        b2.deactivate(t4);
        let commit = LinkCommit {
            events: link_events(&l, &events),
            link: l,
            expected_version: Some(current.version()),
            sessions: vec![a2.to_commit(), b2.to_commit()],
        };
        (commit, a2, b2)
    };
    let unchanged = |what: &str| {
        ck.eq(
            &format!("{what}: the link"),
            ck.load_link(link.id()),
            Some(current.clone()),
        );
        ck.loads_as(&format!("{what}: session a"), &a);
        ck.loads_as(&format!("{what}: session b"), &b);
        ck.eq(&format!("{what}: events"), ck.events_since(cursor).len(), 0);
    };

    let (commit, _, _) = deactivation(&stale_b);
    ck.conflict(
        "link commit with a stale session version",
        store.commit_link(&commit),
    );
    unchanged("after a link commit with a stale session");

    // A session insert of an id that exists.
    let mut opened = current.clone();
    let c = open_draft(&mut opened, t4);
    let mut dup = b.to_commit();
    dup.expected_version = None;
    let commit = LinkCommit {
        link: opened,
        expected_version: Some(current.version()),
        events: Vec::new(),
        sessions: vec![c.to_commit(), dup],
    };
    ck.conflict(
        "link commit inserting an existing session",
        store.commit_link(&commit),
    );
    ck.eq("the refused commit's new session", ck.load(c.id()), None);
    unchanged("after a link commit inserting an existing session");

    // From fresh versions, the whole commit applies.
    let (commit, mut a2, mut b2) = deactivation(&b);
    ck.ok("fresh link commit", store.commit_link(&commit));
    a2.committed();
    b2.committed();
    ck.eq(
        "the deactivated link",
        ck.load_link(link.id()),
        Some(commit.link.clone()),
    );
    ck.loads_as("session a deactivated", &a2);
    ck.loads_as("session b deactivated", &b2);
    let mut want = commit.events.clone();
    for s in &commit.sessions {
        want.extend(s.events.iter().cloned());
    }
    ck.eq(
        "events of the link commit, link first",
        events_of(&ck.events_since(cursor)),
        want,
    );
}

/// `link_sessions`: the sessions whose `link()` is the link, oldest first (by creation
/// time, then id), whatever order they were committed in; not another link's sessions nor
/// sessions without a link.
pub fn check_link_sessions_order<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_sessions_order", store);
    let t = t0();
    let (link, events) = new_link(true, t);
    ck.insert_link(&link, events);
    let (other, events) = new_link(false, t);
    ck.insert_link(&other, events);
    let mut current = link.clone();
    let mut mine = Vec::new();
    // Committed in the order 3 s, 1 s, 2 s, 2 s: the listing sorts by creation.
    for secs in [3, 1, 2, 2] {
        let d = ck.open_link(&mut current, t + Duration::seconds(secs));
        mine.push((d.session.created(), d.id()));
    }
    let mut other_link = other.clone();
    let o = ck.open_link(&mut other_link, t + Duration::seconds(1));
    let mut plain = Draft::new(SessionParams::new(dollars(1250), usd()), t);
    ck.commit(&mut plain);
    mine.sort();
    ck.eq(
        "link_sessions, oldest first",
        ck.link_sessions(link.id()),
        mine.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
    );
    ck.eq(
        "link_sessions of the other link",
        ck.link_sessions(other.id()),
        vec![o.id()],
    );
    ck.eq(
        "the link's sessions_opened",
        ck.load_link(link.id()).map(|l| l.sessions_opened()),
        Some(4),
    );
}

/// A link's events go to the outbox in commit order with `session_id` `None`, before the
/// events of the session commits they came with, and into no session's timeline.
pub fn check_link_events_in_outbox<S: LinkStore>(store: &S) {
    let ck = Ck::new("check_link_events_in_outbox", store);
    let t = t0() + Duration::milliseconds(77);
    let cursor = ck.last_seq();
    let (link, created) = new_link(false, t);
    ck.insert_link(&link, created.clone());
    let got = ck.events_since(cursor);
    ck.eq(
        "the link's creation events",
        events_of(&got),
        created.clone(),
    );
    ck.that(
        got.iter().all(|e| e.event.session_id.is_none()),
        "link events have no session",
    );

    let mut opened = link.clone();
    let t1 = t + Duration::seconds(1);
    let mut d = open_draft(&mut opened, t1);
    let note = SessionEvent::new(EventType::Unknown("vendor.link_opened".into()), t1);
    let link_side = link_events(&opened, &[note]);
    let commit = LinkCommit {
        link: opened,
        expected_version: Some(link.version()),
        events: link_side.clone(),
        sessions: vec![d.to_commit()],
    };
    ck.ok("commit_link", store.commit_link(&commit));
    let session_side = d.committed();
    let mut want = created;
    want.extend(link_side);
    want.extend(session_side.clone());
    let got = ck.events_since(cursor);
    ck.eq("the outbox", events_of(&got), want);
    ck.that(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequence numbers strictly increase",
    );
    ck.eq(
        "the session's timeline holds only its own events",
        events_of(&ck.ok("session_events", store.session_events(d.id()))),
        session_side,
    );
}

/// Links through the service: a checkout link opened by several threads at once gets one
/// session; a payment link opens a session per call; deactivating it deactivates its
/// active sessions (cancelling their quotes) and leaves paid ones, with its events.
pub fn check_link_service<S: LinkStore>(store: &S) {
    const THREADS: usize = 4;
    let ck = Ck::new("check_link_service", store);
    let clock = ManualClock::new(t0() + Duration::milliseconds(500));
    let checkout = Checkout::new(store, rates(), TestRequestGenerator).with_clock(&clock);
    let params = SessionParams::new(dollars(300), usd());
    let link = ck.svc(
        "create_checkout_link",
        checkout.create_checkout_link(params.clone(), None),
    );
    let barrier = Barrier::new(THREADS);
    let opened: Vec<Result<SessionId, ServiceError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (checkout, barrier, id) = (&checkout, &barrier, link.id());
                scope.spawn(move || {
                    barrier.wait();
                    checkout.open_link(id, None).map(|s| s.id())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an opening thread panicked"))
            .collect()
    });
    let ids: Vec<SessionId> = opened.into_iter().map(|r| ck.svc("open_link", r)).collect();
    ck.that(
        ids.windows(2).all(|w| w[0] == w[1]),
        format!("concurrent opens of a checkout link gave several sessions: {ids:?}"),
    );
    ck.eq(
        "the checkout link's sessions",
        ck.link_sessions(link.id()),
        vec![ids[0]],
    );
    ck.eq(
        "the checkout link's session",
        ck.load_link(link.id()).and_then(|l| l.session()),
        Some(ids[0]),
    );

    let plink = ck.svc(
        "create_payment_link",
        checkout.create_payment_link(params, None),
    );
    let a = ck.svc("open a", checkout.open_link(plink.id(), None));
    let b = ck.svc("open b", checkout.open_link(plink.id(), None));
    ck.that(a.id() != b.id(), "a payment link opens a session per call");
    let hash = TestRequestGenerator::payment_hash(b.payments()[0].id());
    ck.svc(
        "pay b",
        checkout.record_transfer(TransferReport::lightning(
            hash,
            b.payments()[0].target_msats(),
        )),
    );
    clock.advance(Duration::seconds(5));
    let cursor = ck.last_seq();
    let done = ck.svc("deactivate_link", checkout.deactivate_link(plink.id()));
    ck.that(done.is_deactivated(), "the link is deactivated");
    ck.eq(
        "a after deactivation",
        ck.load(a.id()).map(|s| s.status()),
        Some(SessionStatus::Deactivated),
    );
    ck.eq(
        "b after deactivation",
        ck.load(b.id()).map(|s| s.status()),
        Some(SessionStatus::Paid),
    );
    let types: Vec<String> = ck
        .events_since(cursor)
        .iter()
        .map(|e| e.event.event_type.as_str().to_owned())
        .collect();
    ck.eq(
        "events of the deactivation",
        types,
        vec![
            "payment_link.deactivated".to_owned(),
            "payment.cancelled".to_owned(),
            "checkout_session.deactivated".to_owned(),
        ],
    );
}
