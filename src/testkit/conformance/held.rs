//! The checks of what limits a store's growth: held transfers (beyond a session's
//! transfer cap, see [`SessionLimits`](crate::session::SessionLimits)) kept apart from the
//! session, found by their key and recorded once; idempotency records pruned by age; a
//! session's timeline read a page at a time; the outbox pruned up to a sequence number,
//! or one session's events (archiving it).

use time::Duration;

use super::fixtures::{Ck, Draft, dollars, fresh_txid, t0, usd};
use crate::chain::OutPoint;
use crate::id::SessionId;
use crate::money::Sats;
use crate::session::{SessionLimits, SessionParams};
use crate::store::{IdempotencyRecord, RoutingKey, Store, StoreError};
use crate::transfer::{PaymentMethod, TransferReport};

/// A committed session that keeps at most `cap` transfers, paid on chain in `cap` parts.
fn at_cap<S: Store>(ck: &Ck<'_, S>, cap: u32) -> Draft {
    let params = SessionParams::new(dollars(2500), usd())
        .payment_methods([PaymentMethod::Onchain])
        .limits(SessionLimits::new().max_transfers(cap));
    let mut d = Draft::new(params, t0());
    ck.commit(&mut d);
    for i in 0..cap {
        let at = t0() + Duration::seconds(i64::from(i) + 1);
        let address = d.address();
        d.record(
            TransferReport::onchain(OutPoint::new(fresh_txid(), 0), &address, Sats::new(1_000)),
            at,
        );
        ck.commit(&mut d);
    }
    d
}

/// A transfer beyond the cap is held: the session's load leaves it out (and says how many
/// it holds), [`Store::held_transfers`] lists it, [`Store::find_by_transfer`] finds its
/// session. Holding it again, on the same session (a racing report) or on another, is
/// refused and writes nothing.
pub fn check_held_transfers<S: Store>(store: &S) {
    let ck = Ck::new("check_held_transfers", store);
    let mut a = at_cap(&ck, 2);
    let at = t0() + Duration::minutes(1);
    let output = OutPoint::new(fresh_txid(), 1);
    let address = a.address();
    let report = TransferReport::onchain(output, &address, Sats::new(700));
    a.record(report.clone(), at);
    ck.that(a.change.held().is_some(), "the third transfer is held");
    let held = a.change.held().cloned();
    ck.commit(&mut a);
    ck.loads_as("the session with a held transfer", &a);
    let loaded = ck.load(a.id());
    ck.eq(
        "transfers loaded with the session",
        loaded.as_ref().map(|s| s.transfers().count()),
        Some(2),
    );
    ck.eq(
        "held transfers counted by the loaded session",
        loaded.map(|s| s.held_transfers().count),
        Some(1),
    );
    ck.eq(
        "held_transfers",
        ck.ok("held_transfers", store.held_transfers(a.id(), 10)),
        held.into_iter().collect(),
    );
    ck.eq(
        "find_by_transfer of a held transfer",
        ck.ok("find_by_transfer", store.find_by_transfer(&report.key())),
        Some(a.id()),
    );

    // The same report again, applied to the current session (its copy does not list held
    // transfers, so it holds it again): the store refuses the second copy.
    let version = a.session.version();
    a.record(report.clone(), at + Duration::seconds(1));
    ck.conflict(
        "holding a held transfer again",
        store.commit(&a.to_commit()),
    );
    ck.eq(
        "the version after the refused copy",
        ck.load(a.id()).map(|s| s.version()),
        Some(version),
    );
    ck.eq(
        "held transfers after the refused copy",
        ck.ok("held_transfers", store.held_transfers(a.id(), 10))
            .len(),
        1,
    );

    // Another session holding the same output (reported to its address) is refused.
    let mut b = at_cap(&ck, 1);
    let b_version = b.session.version();
    let b_address = b.address();
    b.record(
        TransferReport::onchain(output, &b_address, Sats::new(700)),
        at,
    );
    ck.that(b.change.held().is_some(), "b holds the output");
    match store.commit(&b.to_commit()) {
        Err(StoreError::KeyTaken {
            key: RoutingKey::Transfer(key),
            holder,
        }) => {
            ck.eq("the taken key", key, report.key());
            ck.eq("its holder", holder, a.id());
        }
        other => ck.that(
            false,
            format!("holding another session's transfer: {other:?}, not KeyTaken"),
        ),
    }
    ck.eq(
        "b after the refusal",
        ck.load(b.id()).map(|s| s.version()),
        Some(b_version),
    );
    ck.eq(
        "b holds nothing",
        ck.ok("held_transfers", store.held_transfers(b.id(), 10))
            .len(),
        0,
    );
}

/// `prune_idempotency` deletes the records created before a time, oldest first and at
/// most as many as asked, and nothing newer.
pub fn check_idempotency_prune<S: Store>(store: &S) {
    let ck = Ck::new("check_idempotency_prune", store);
    // Far older than anything the other checks make, so a shared store loses only these.
    let days_ago = |d: i64| t0() - Duration::days(d);
    let records: Vec<IdempotencyRecord> = [300, 200, 100]
        .into_iter()
        .map(|d| IdempotencyRecord {
            key: format!("prune-{d}-{}", SessionId::generate()),
            request: "{}".into(),
            session_id: SessionId::generate(),
            created: days_ago(d),
        })
        .collect();
    for r in &records {
        ck.eq(
            "claim_idempotency",
            ck.ok("claim_idempotency", store.claim_idempotency(r)),
            None,
        );
    }
    let kept = |r: &IdempotencyRecord| ck.ok("idempotency", store.idempotency(&r.key)).is_some();
    let prune = |before, limit| ck.ok("prune_idempotency", store.prune_idempotency(before, limit));
    ck.eq("pruned with a limit of 1", prune(days_ago(150), 1), 1);
    ck.that(
        !kept(&records[0]) && kept(&records[1]),
        "the oldest went first",
    );
    ck.eq("pruned again", prune(days_ago(150), 10), 1);
    ck.that(!kept(&records[1]), "the second is gone");
    ck.that(kept(&records[2]), "a newer record stays");
    ck.eq("pruned with a limit of 0", prune(days_ago(50), 0), 0);
    ck.eq("pruned up to 50 days ago", prune(days_ago(50), 10), 1);
    ck.that(!kept(&records[2]), "the last is gone");
}

/// `session_events_after` pages through a session's timeline: the pages, joined, are
/// [`Store::session_events`], each event once and in order.
pub fn check_session_events_paged<S: Store>(store: &S) {
    let ck = Ck::new("check_session_events_paged", store);
    let d = at_cap(&ck, 4);
    let whole = ck.ok("session_events", store.session_events(d.id()));
    ck.that(whole.len() >= 6, "a timeline of several events");
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = ck.ok(
            "session_events_after",
            store.session_events_after(d.id(), after, 2),
        );
        ck.that(page.len() <= 2, "a page holds at most the limit");
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        paged.extend(page);
    }
    ck.eq(
        "the pages joined",
        paged.iter().map(|e| e.event.to_json()).collect::<Vec<_>>(),
        whole.iter().map(|e| e.event.to_json()).collect::<Vec<_>>(),
    );
    ck.eq(
        "a limit of 0",
        ck.ok(
            "session_events_after",
            store.session_events_after(d.id(), None, 0),
        )
        .len(),
        0,
    );
}

/// `prune_events` deletes the events up to a sequence number (keeping a carrier that a
/// later event needs, and always the newest), leaves every later event as it was, and
/// never lets a sequence number be reused. Runs last on a shared store: it prunes what the
/// other checks wrote.
pub fn check_prune_events<S: Store>(store: &S) {
    let ck = Ck::new("check_prune_events", store);
    let a = at_cap(&ck, 2);
    let mut b = Draft::new(SessionParams::new(dollars(900), usd()), t0());
    ck.commit(&mut b);
    let c = at_cap(&ck, 1);
    let before = ck.events_since(None);
    // Cut right after b's first event: b's creation commit straddles the cut.
    let b_events = ck.ok("session_events", store.session_events(b.id()));
    let through = b_events.first().map_or(0, |e| e.seq);
    let pruned = ck.ok("prune_events", store.prune_events(through, 100_000));
    ck.that(pruned > 0, "events were pruned");
    let after = ck.events_since(None);
    let kept_low: Vec<_> = after.iter().filter(|e| e.seq <= through).collect();
    ck.that(
        kept_low.len() <= 1,
        format!(
            "at most the straddling carrier stays below the cut: {}",
            kept_low.len()
        ),
    );
    ck.eq(
        "the events above the cut, unchanged",
        after
            .iter()
            .filter(|e| e.seq > through)
            .map(|e| (e.seq, e.event.to_json()))
            .collect::<Vec<_>>(),
        before
            .iter()
            .filter(|e| e.seq > through)
            .map(|e| (e.seq, e.event.to_json()))
            .collect::<Vec<_>>(),
    );
    let first_of_a = ck.ok("session_events", store.session_events(a.id()));
    ck.that(first_of_a.is_empty(), "a's events are all below the cut");
    ck.that(
        !ck.ok("session_events", store.session_events(c.id()))
            .is_empty(),
        "c's events stay",
    );
    ck.eq(
        "pruning again to the same cut",
        ck.ok("prune_events", store.prune_events(through, 100_000)),
        0,
    );
    // Everything: the newest stays (with its commit's carrier, if it is thin), and the
    // next commit is numbered above it.
    let last = after.last().map_or(0, |e| e.seq);
    ck.ok("prune_events", store.prune_events(u64::MAX, 100_000));
    let left = ck.events_since(None);
    ck.eq(
        "the newest event after pruning everything",
        left.last().map(|e| e.seq),
        Some(last),
    );
    ck.that(
        left.iter().all(|e| e.event.session_id == Some(c.id())),
        "only the last commit's events are left",
    );
    let mut d = Draft::new(SessionParams::new(dollars(100), usd()), t0());
    ck.commit(&mut d);
    let next = ck.events_since(Some(last));
    ck.that(
        next.first().is_some_and(|e| e.seq > last),
        "the next event is numbered above the last pruned",
    );
}

/// `prune_session_events` deletes one session's events and nothing else: every other
/// event reads as before (pages skip the gap), the session itself still loads, and its
/// pruned events are not found by id.
pub fn check_prune_session_events<S: Store>(store: &S) {
    let ck = Ck::new("check_prune_session_events", store);
    let a = at_cap(&ck, 1);
    let b = at_cap(&ck, 2);
    let c = at_cap(&ck, 1);
    let before = ck.events_since(None);
    let b_events = ck.ok("session_events", store.session_events(b.id()));
    let pruned = ck.ok(
        "prune_session_events",
        store.prune_session_events(b.id(), u64::MAX),
    );
    ck.eq("events pruned", pruned, b_events.len());
    let after = ck.events_since(None);
    ck.eq(
        "every other event, unchanged",
        after
            .iter()
            .map(|e| (e.seq, e.event.to_json()))
            .collect::<Vec<_>>(),
        before
            .iter()
            .filter(|e| e.event.session_id != Some(b.id()))
            .map(|e| (e.seq, e.event.to_json()))
            .collect::<Vec<_>>(),
    );
    // Newest first, across the gap.
    let newest = ck.ok("events_before", store.events_before(None, after.len()));
    ck.eq(
        "events_before across the gap",
        newest.iter().rev().map(|e| e.seq).collect::<Vec<_>>(),
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
    );
    for e in &b_events {
        ck.eq(
            "a pruned event by id",
            ck.ok("event", store.event(e.event.id)).map(|e| e.seq),
            None,
        );
    }
    ck.loads_as("the session whose events were pruned", &b);
    for d in [&a, &c] {
        ck.that(
            !ck.ok("session_events", store.session_events(d.id()))
                .is_empty(),
            "other sessions keep their timelines",
        );
    }
}
