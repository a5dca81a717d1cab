//! Checks of the reads an HTTP API makes: a session by one of its payments' ids, an
//! outbox event by its id, and the outbox newest first (`events_before`).

use serde_json::value::RawValue;
use time::Duration;

use super::fixtures::{Ck, Draft, dollars, events_of, t0, usd};
use super::listing::interleaved;
use crate::event::EventType;
use crate::id::{EventId, PaymentId};
use crate::money::Msats;
use crate::outbox::Event;
use crate::session::SessionParams;
use crate::store::{Reload, Store, StoredEvent};
use crate::transfer::TransferReport;

/// The ids of every payment (quote) of the draft's session, oldest first.
fn payment_ids(d: &Draft) -> Vec<PaymentId> {
    d.session.payments().iter().map(|p| p.id()).collect()
}

/// `find_by_payment`: every payment of a session finds it, the first quote and the ones
/// issued later (a re-quote after the first ran out, one after a partial payment), open,
/// expired or paid, before and after the session changes again; a payment of another
/// session finds that one; an unknown id, or a quote not committed yet, finds nothing.
pub fn check_find_by_payment<S: Store>(store: &S) {
    let ck = Ck::new("check_find_by_payment", store);
    let t = t0();
    let find = |id: PaymentId| ck.ok("find_by_payment", store.find_by_payment(id));
    ck.eq("an unknown payment id", find(PaymentId::generate()), None);
    let params = |cents: i64| SessionParams::new(dollars(cents), usd()).ttl_secs(300);
    let mut a = Draft::new(params(2500), t);
    let mut b = Draft::new(params(1200), t);
    ck.commit(&mut a);
    ck.commit(&mut b);
    let finds_all = |what: &str, d: &Draft| {
        for (i, id) in payment_ids(d).into_iter().enumerate() {
            ck.eq(
                &format!("{what}: payment {i} ({id})"),
                find(id),
                Some(d.id()),
            );
        }
    };
    ck.eq("fixture: one quote each", payment_ids(&a).len(), 1);
    finds_all("a's first quote", &a);
    finds_all("b's first quote", &b);

    // a's quote runs out: a re-quote, found once committed.
    let later = t + Duration::seconds(301);
    a.quote(later);
    let ids = payment_ids(&a);
    ck.eq("fixture: a re-quote after expiry", ids.len(), 2);
    let requote = ids[1];
    ck.eq("a re-quote not committed yet", find(requote), None);
    ck.commit(&mut a);
    finds_all("a after its re-quote", &a);

    // b paid in part: the quote for the rest.
    let t1 = t + Duration::seconds(1);
    let part = TransferReport::lightning(b.open_hash(), Msats::new(b.open_msats().get() / 4));
    b.record(part, t1);
    b.quote(t1);
    ck.eq(
        "fixture: a re-quote after a partial payment",
        payment_ids(&b).len(),
        2,
    );
    ck.commit(&mut b);
    finds_all("b after its re-quote", &b);
    ck.that(
        payment_ids(&a)
            .iter()
            .all(|id| !payment_ids(&b).contains(id)),
        "fixture: the sessions' payments differ",
    );

    // Later changes keep every payment found.
    b.pay(t + Duration::seconds(2));
    ck.commit(&mut b);
    finds_all("b paid", &b);
    a.deactivate(later + Duration::seconds(1));
    ck.commit(&mut a);
    finds_all("a deactivated", &a);
    ck.eq(
        "still an unknown payment id",
        find(PaymentId::generate()),
        None,
    );
}

/// `event`: each committed event by its id, exactly as `events_after` returns it (its
/// sequence number and its JSON byte for byte), events without a session and in live
/// mode included; an unknown id is `None`.
pub fn check_event_by_id<S: Store>(store: &S) {
    let ck = Ck::new("check_event_by_id", store);
    let t = t0() + Duration::milliseconds(7);
    let event = |id: EventId| ck.ok("event", store.event(id));
    ck.eq("an unknown event id", event(EventId::generate()), None);
    let cursor = ck.last_seq();
    let mut d = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    let object = RawValue::from_string(r#"{ "amount" : 10.10, "text": "é \"q\"" }"#.into())
        .expect("fixture JSON");
    d.events.push(Event {
        id: EventId::generate(),
        event_type: EventType::Unknown("vendor.custom_event".into()),
        session_id: None,
        livemode: true,
        created: t,
        object,
    });
    let mut expected = ck.commit(&mut d);
    d.pay(t + Duration::seconds(1));
    expected.extend(ck.commit(&mut d));
    let got = ck.events_since(cursor);
    ck.eq("fixture: the events committed", events_of(&got), expected);
    for e in &got {
        let found = event(e.event.id);
        ck.eq(
            &format!("event {}", e.event.id),
            found.clone(),
            Some(e.clone()),
        );
        ck.eq(
            &format!("event {}: JSON", e.event.id),
            found.map(|f| f.event.to_json()),
            Some(e.event.to_json()),
        );
    }
    ck.eq(
        "still an unknown event id",
        event(EventId::generate()),
        None,
    );
}

/// `events_before`: the outbox newest first. `events_before(None, n)` is the last `n` of
/// `events_after` reversed; a bound is exclusive (an event's own number is below the
/// bound only from the next number up); paging down with the last (smallest) number seen
/// returns each event once; a bound at or below the first event's number, or a limit of
/// 0, gives nothing, and a bound above every number is no bound.
pub fn check_events_before<S: Store>(store: &S) {
    let ck = Ck::new("check_events_before", store);
    let before = |b: Option<u64>, limit: usize| {
        ck.ok(
            &format!("events_before({b:?}, {limit})"),
            store.events_before(b, limit),
        )
    };
    let cursor = ck.last_seq();
    let (expected, _, _) = interleaved(&ck);
    let all = ck.events_since(None);
    let new: Vec<StoredEvent> = all
        .iter()
        .filter(|e| cursor.is_none_or(|c| e.seq > c))
        .cloned()
        .collect();
    ck.eq("fixture: the events committed", events_of(&new), expected);
    let n = new.len();
    let newest_first = |events: &[StoredEvent]| events.iter().rev().cloned().collect::<Vec<_>>();
    let want = newest_first(&new);
    ck.eq("events_before(None, n)", before(None, n), want.clone());
    for k in [1, 2, 5] {
        ck.eq(
            &format!("events_before(None, {k}): the last {k} reversed"),
            before(None, k),
            newest_first(&all[all.len() - k..]),
        );
    }
    for limit in [1, 2, 3, 5] {
        let mut paged: Vec<StoredEvent> = Vec::new();
        let mut bound = None;
        while paged.len() < n {
            let page = before(bound, limit);
            ck.that(
                page.len() <= limit,
                format!("a page of limit {limit} is longer"),
            );
            let Some(last) = page.last() else { break };
            bound = Some(last.seq);
            paged.extend(page);
        }
        paged.truncate(n);
        ck.eq(
            &format!("events paged down {limit} at a time"),
            paged,
            want.clone(),
        );
    }
    let middle = &new[n / 2];
    let below: Vec<StoredEvent> = all
        .iter()
        .rev()
        .filter(|e| e.seq < middle.seq)
        .take(3)
        .cloned()
        .collect();
    ck.eq(
        "below an event's number: strictly below",
        before(Some(middle.seq), 3),
        below,
    );
    let newest = &want[0];
    ck.eq(
        "below the newest's number + 1: the newest",
        before(Some(newest.seq + 1), 1),
        vec![newest.clone()],
    );
    ck.eq(
        "a bound above every number",
        before(Some(u64::MAX), n),
        want.clone(),
    );
    let first = all.first().map_or(1, |e| e.seq);
    ck.eq("below the first event", before(Some(first), 10), vec![]);
    ck.eq("below 1", before(Some(1), 10), vec![]);
    ck.eq("below 0", before(Some(0), 10), vec![]);
    ck.eq("limit 0", before(None, 0), vec![]);
    // The two directions meet: what lies below the middle and above it is the outbox.
    let above = ck.ok("events_after", store.events_after(Some(middle.seq - 1), n));
    ck.eq("events_after from the middle", above, new[n / 2..].to_vec());
}

/// `load_if_changed`: a session still at the version asked about is
/// [`Reload::Unchanged`]; at another version it is exactly what `load` gives; an unknown
/// id is [`Reload::Gone`].
pub fn check_load_if_changed<S: Store>(store: &S) {
    let ck = Ck::new("check_load_if_changed", store);
    let t = t0();
    let reload = |id, version| ck.ok("load_if_changed", store.load_if_changed(id, version));
    ck.eq(
        "an unknown session",
        reload(crate::id::SessionId::generate(), 1),
        Reload::Gone,
    );
    let mut d = Draft::new(SessionParams::new(dollars(2500), usd()), t);
    ck.commit(&mut d);
    let first = d.session.version();
    ck.eq("at its version", reload(d.id(), first), Reload::Unchanged);
    let hash = d.open_hash();
    d.record(TransferReport::lightning(hash, Msats::new(5_000_000)), t);
    ck.commit(&mut d);
    let now = d.session.version();
    ck.that(now != first, "the transfer moved the version");
    ck.eq(
        "moved on from the version asked about",
        reload(d.id(), first),
        Reload::Changed(d.session.clone()),
    );
    ck.eq(
        "a version it never had",
        reload(d.id(), now + 7),
        Reload::Changed(d.session.clone()),
    );
    ck.eq("at its new version", reload(d.id(), now), Reload::Unchanged);
}
