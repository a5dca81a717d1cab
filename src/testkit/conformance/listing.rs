//! Checks of reading back: listing, due sessions, the outbox (`events_after`), a session's
//! events and events round-tripping exactly.

use serde_json::value::RawValue;
use time::{Duration, OffsetDateTime};

use super::fixtures::{Ck, Draft, dollars, events_of, ids, t0, usd};
use crate::event::EventType;
use crate::id::{EventId, SessionId};
use crate::money::Msats;
use crate::outbox::Event;
use crate::session::{CheckoutSession, SessionParams, SessionStatus, SessionUpdate};
use crate::store::{ListQuery, Store, StoredEvent};
use crate::transfer::TransferReport;

/// `list`: newest first (creation time, then id), status filter, default page of 10,
/// pages of up to 100 (others are refused: [`check_list_refusals`](super::check_list_refusals)), `starting_after` and `ending_before` pages with the right
/// `has_more` in both directions, and an empty page for an unknown cursor.
pub fn check_list<S: Store>(store: &S) {
    let ck = Ck::new("check_list", store);
    const N: usize = 105;
    // Newer than anything stored, so that these sessions are the first pages.
    let newest = ck.list(ListQuery {
        limit: Some(1),
        ..Default::default()
    });
    let base = newest.data.first().map_or(t0(), CheckoutSession::created) + Duration::days(1);
    let mut sessions = Vec::with_capacity(N);
    for i in 0..N {
        // Two sessions share one creation time: the id breaks the tie.
        let offset = i64::try_from(i).unwrap_or(0) - i64::from(i == 51);
        let created = base + Duration::seconds(offset);
        let cents = 1_000 + i64::try_from(i).unwrap_or(0);
        let mut d = Draft::new(SessionParams::new(dollars(cents), usd()), created);
        if i % 3 == 0 {
            d.pay(created);
        } else if i % 5 == 1 {
            d.deactivate(created);
        }
        ck.commit(&mut d);
        sessions.push(d.session);
    }
    let mut expected = sessions;
    expected.sort_by_key(|s| std::cmp::Reverse((s.created(), s.id())));
    let q = |limit: Option<usize>| ListQuery {
        limit,
        ..Default::default()
    };

    let page = ck.list(q(None));
    ck.eq("default page", ids(&page.data), ids(&expected[..10]));
    ck.eq(
        "default page (sessions)",
        page.data,
        expected[..10].to_vec(),
    );
    ck.that(page.has_more, "default page: has_more");
    let page = ck.list(q(Some(100)));
    ck.eq("limit 100", ids(&page.data), ids(&expected[..100]));
    ck.that(page.has_more, "limit 100: has_more");

    // Forward, 7 at a time (N is a multiple of 7).
    let older_exists = !ck
        .list(ListQuery {
            limit: Some(1),
            starting_after: Some(expected[N - 1].id()),
            ..Default::default()
        })
        .data
        .is_empty();
    let mut cursor = None;
    let mut seen = 0;
    while seen < N {
        let page = ck.list(ListQuery {
            limit: Some(7),
            starting_after: cursor,
            ..Default::default()
        });
        ck.eq(
            &format!("forward page from {seen}"),
            ids(&page.data),
            ids(&expected[seen..seen + 7]),
        );
        seen += 7;
        let more = seen < N || older_exists;
        ck.eq(
            &format!("forward page from {}: has_more", seen - 7),
            page.has_more,
            more,
        );
        cursor = page.data.last().map(CheckoutSession::id);
    }

    // Backward from the oldest, 7 at a time.
    let mut end = N - 1;
    while end > 0 {
        let page = ck.list(ListQuery {
            limit: Some(7),
            ending_before: Some(expected[end].id()),
            ..Default::default()
        });
        let start = end.saturating_sub(7);
        ck.eq(
            &format!("backward page ending before {end}"),
            ids(&page.data),
            ids(&expected[start..end]),
        );
        ck.eq(
            &format!("backward page ending before {end}: has_more"),
            page.has_more,
            start > 0,
        );
        end = start;
    }
    let page = ck.list(ListQuery {
        ending_before: Some(expected[0].id()),
        ..Default::default()
    });
    ck.eq("page before the newest", page.data.len(), 0);
    ck.that(!page.has_more, "page before the newest: has_more");

    // Status filter.
    for status in [
        SessionStatus::Paid,
        SessionStatus::Active,
        SessionStatus::Deactivated,
    ] {
        let mine: Vec<CheckoutSession> = expected
            .iter()
            .filter(|s| s.status() == status)
            .cloned()
            .collect();
        let what = |s: &str| format!("status {}: {s}", status.as_str());
        let page = ck.list(ListQuery {
            status: Some(status),
            ..Default::default()
        });
        ck.eq(&what("first page"), ids(&page.data), ids(&mine[..10]));
        ck.that(page.has_more, what("first page: has_more"));
        let page = ck.list(ListQuery {
            status: Some(status),
            limit: Some(5),
            starting_after: Some(mine[4].id()),
            ..Default::default()
        });
        ck.eq(&what("second page"), ids(&page.data), ids(&mine[5..10]));
        ck.that(page.has_more, what("second page: has_more"));
        let page = ck.list(ListQuery {
            status: Some(status),
            limit: Some(5),
            ending_before: Some(mine[12].id()),
            ..Default::default()
        });
        ck.eq(&what("page back"), ids(&page.data), ids(&mine[7..12]));
        ck.that(page.has_more, what("page back: has_more"));
        let page = ck.list(ListQuery {
            status: Some(status),
            limit: Some(10),
            ending_before: Some(mine[3].id()),
            ..Default::default()
        });
        ck.eq(&what("first page back"), ids(&page.data), ids(&mine[..3]));
        ck.that(!page.has_more, what("first page back: has_more"));
        ck.that(
            page.data.iter().all(|s| s.status() == status),
            what("every session has the status"),
        );
    }
    // A cursor of another status than the filter still marks a position.
    let cursor = expected
        .iter()
        .position(|s| s.status() == SessionStatus::Active)
        .unwrap_or(0);
    let page = ck.list(ListQuery {
        status: Some(SessionStatus::Paid),
        limit: Some(3),
        starting_after: Some(expected[cursor].id()),
        ..Default::default()
    });
    let want: Vec<CheckoutSession> = expected[cursor + 1..]
        .iter()
        .filter(|s| s.status() == SessionStatus::Paid)
        .take(3)
        .cloned()
        .collect();
    ck.eq(
        "paid sessions after an active one",
        ids(&page.data),
        ids(&want),
    );

    // Unknown cursors.
    for query in [
        ListQuery {
            starting_after: Some(SessionId::generate()),
            ..Default::default()
        },
        ListQuery {
            ending_before: Some(SessionId::generate()),
            ..Default::default()
        },
    ] {
        let page = ck.list(query.clone());
        ck.eq(&format!("{query:?}: data"), page.data.len(), 0);
        ck.that(!page.has_more, format!("{query:?}: has_more"));
    }
}

/// `due(now, limit)`: the sessions whose `wake_at` is at or before `now`, in wake order
/// (an open quote to expire, or a session reaching its `expires_at`), at most `limit`;
/// never paid or deactivated sessions, nor those waking later.
pub fn check_due<S: Store>(store: &S) {
    let ck = Ck::new("check_due", store);
    // 1971: before any session of the other checks (or of a real application).
    let base = OffsetDateTime::UNIX_EPOCH + Duration::days(365);
    let at = |secs: i64| base + Duration::seconds(secs);
    let params = |ttl: i64| SessionParams::new(dollars(500), usd()).ttl_secs(ttl);
    let mut a = Draft::new(params(3_600), at(0));
    let mut b = Draft::new(params(300), at(100));
    let mut c = Draft::new(params(600), at(200));
    let mut paid = Draft::new(params(300), at(300));
    paid.pay(at(301));
    let mut gone = Draft::new(params(300), at(400));
    gone.deactivate(at(401));
    // The session itself expires at 900, before its quote would (at 1100): its quote is
    // cut to 900, and it wakes then to be deactivated.
    let mut f = Draft::new(params(600).expires_at(at(900)), at(500));
    let mut g = Draft::new(params(300), at(1_000));
    for d in [&mut a, &mut b, &mut c, &mut paid, &mut gone, &mut f, &mut g] {
        ck.commit(d);
    }
    let wakes: Vec<Option<OffsetDateTime>> = [&a, &b, &c, &paid, &gone, &f, &g]
        .iter()
        .map(|d| d.session.wake_at())
        .collect();
    ck.eq(
        "fixture: wake times",
        wakes,
        vec![
            Some(at(3_600)),
            Some(at(400)),
            Some(at(800)),
            None,
            None,
            Some(at(900)),
            Some(at(1_300)),
        ],
    );
    let due = |now: OffsetDateTime, limit: usize| ck.ok("due", store.due(now, limit));
    ck.eq("due before any wake time", due(at(399), 100), vec![]);
    ck.eq("due at a wake time", due(at(400), 100), vec![b.id()]);
    ck.eq(
        "due at 900",
        due(at(900), 100),
        vec![b.id(), c.id(), f.id()],
    );
    ck.eq("due at 900, limit 2", due(at(900), 2), vec![b.id(), c.id()]);
    ck.eq("due with limit 0", due(at(900), 0), vec![]);
    ck.eq(
        "due when every quote ran out",
        due(at(3_600), 100),
        vec![b.id(), c.id(), f.id(), g.id(), a.id()],
    );

    // Deactivated sessions are never due: clean up for the checks that follow.
    for d in [&mut a, &mut b, &mut c, &mut f, &mut g] {
        d.deactivate(at(4_000));
        ck.commit(d);
    }
    ck.eq("due after deactivation", due(at(4_000), 100), vec![]);
}

/// `events_after`: every committed event in commit order, with strictly increasing
/// sequence numbers; paging with the last sequence number seen as cursor returns each
/// event exactly once.
pub fn check_events_after<S: Store>(store: &S) {
    let ck = Ck::new("check_events_after", store);
    let cursor = ck.last_seq();
    let (expected, _, _) = interleaved(&ck);
    let got = ck.events_since(cursor);
    ck.eq("events after the cursor", events_of(&got), expected.clone());
    ck.eq(
        "events as JSON",
        got.iter().map(|e| e.event.to_json()).collect::<Vec<_>>(),
        expected.iter().map(Event::to_json).collect::<Vec<_>>(),
    );
    ck.that(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequence numbers strictly increase",
    );
    ck.that(
        got.first().is_none_or(|e| cursor.is_none_or(|c| e.seq > c)),
        "sequence numbers are above the cursor",
    );
    for limit in [1, 2, 3, 5] {
        let mut paged = Vec::new();
        let mut after = cursor;
        loop {
            let page = ck.ok("events_after", store.events_after(after, limit));
            ck.that(
                page.len() <= limit,
                format!("a page of limit {limit} is longer"),
            );
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            paged.extend(page);
        }
        ck.eq(
            &format!("events paged {limit} at a time"),
            paged.clone(),
            got.clone(),
        );
    }
    let last = got.last().map(|e| e.seq);
    ck.eq(
        "events after the last",
        ck.ok("events_after", store.events_after(last, 10)).len(),
        0,
    );
    ck.eq(
        "events_after with limit 0",
        ck.ok("events_after", store.events_after(cursor, 0)).len(),
        0,
    );
    let from_start = ck.ok("events_after", store.events_after(None, 1));
    ck.that(
        from_start.first().map(|e| e.seq) <= got.first().map(|e| e.seq),
        "events_after(None) starts at the beginning",
    );
    if cursor.is_none() {
        ck.eq(
            "events_after(None) on an empty outbox",
            ck.events_since(None),
            got,
        );
    }
}

/// `session_events`: one session's events in order, with the same sequence numbers as in
/// the outbox, and none of another session's.
pub fn check_session_events<S: Store>(store: &S) {
    let ck = Ck::new("check_session_events", store);
    let cursor = ck.last_seq();
    let (_, a, b) = interleaved(&ck);
    let all = ck.events_since(cursor);
    for (name, id) in [("a", a), ("b", b)] {
        let timeline = ck.ok("session_events", store.session_events(id));
        let want: Vec<StoredEvent> = all
            .iter()
            .filter(|e| e.event.session_id == Some(id))
            .cloned()
            .collect();
        ck.that(!want.is_empty(), "fixture: events for each session");
        ck.eq(&format!("timeline of {name}"), timeline, want);
    }
}

/// Commits two sessions' changes interleaved; returns the events in commit order.
pub(super) fn interleaved<S: Store>(ck: &Ck<'_, S>) -> (Vec<Event>, SessionId, SessionId) {
    let t = t0();
    let mut expected = Vec::new();
    let mut a = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    expected.extend(ck.commit(&mut a));
    let mut b = Draft::new(SessionParams::new(dollars(1200), usd()), t);
    expected.extend(ck.commit(&mut b));
    let t1 = t + Duration::seconds(1);
    a.record(
        TransferReport::lightning(a.open_hash(), Msats::new(5_000_000)),
        t1,
    );
    a.quote(t1);
    expected.extend(ck.commit(&mut a));
    b.update(&SessionUpdate::new().description("gift wrap"), t1);
    expected.extend(ck.commit(&mut b));
    a.pay(t + Duration::seconds(2));
    expected.extend(ck.commit(&mut a));
    b.deactivate(t + Duration::seconds(3));
    expected.extend(ck.commit(&mut b));
    (expected, a.id(), b.id())
}

/// Events come back exactly: the JSON text of `object` byte for byte (whitespace, number
/// spelling, escapes), unknown event types, events without a session, live mode.
pub fn check_event_round_trip<S: Store>(store: &S) {
    let ck = Ck::new("check_event_round_trip", store);
    let t = t0() + Duration::milliseconds(999);
    let cursor = ck.last_seq();
    let mut d = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    let odd = r#"{ "amount" : 10.10, "big": 123456789012345678901234567890.000000001,
        "tiny": 1e-7, "text": "é \u00e9 \"q\" \\ 🚀 \u2028", "list": [1, 2.50, null, true],
        "empty": {} }"#;
    let raw = |text: &str| RawValue::from_string(text.to_owned()).expect("fixture JSON");
    d.events.push(Event {
        id: EventId::generate(),
        event_type: EventType::Unknown("vendor.custom_event".into()),
        session_id: None,
        livemode: true,
        created: t,
        object: raw(odd),
    });
    d.events.push(Event {
        id: EventId::generate(),
        event_type: EventType::CheckoutLinkCreated,
        session_id: Some(d.id()),
        livemode: false,
        created: t + Duration::milliseconds(1),
        object: raw("[]"),
    });
    let expected = ck.commit(&mut d);
    let got = ck.events_since(cursor);
    ck.eq("events", events_of(&got), expected.clone());
    for (g, e) in got.iter().zip(&expected) {
        ck.eq("object text", g.event.object.get(), e.object.get());
        ck.eq("event JSON", g.event.to_json(), e.to_json());
        ck.eq(
            "event type",
            g.event.event_type.as_str(),
            e.event_type.as_str(),
        );
    }
}
