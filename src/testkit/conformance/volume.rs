//! Checks at volume and under concurrent writers: bugs that show only after hundreds of
//! commits (a store losing every Nth row) or only while others write (an outbox reader
//! finding an event appear behind its cursor).

use std::collections::BTreeMap;

use time::Duration;

use super::fixtures::{Ck, Draft, dollars, events_of, fresh_txid, t0, usd};
use crate::chain::OutPoint;
use crate::money::Sats;
use crate::outbox::Event;
use crate::session::{SessionParams, SessionUpdate};
use crate::store::{Store, StoredEvent};
use crate::transfer::TransferReport;

/// Sessions, commits per session and transfers per commit of [`check_volume`].
const SESSIONS: usize = 120;
const COMMITS: usize = 5;
const TRANSFERS: usize = 6;

/// Thousands of rows across many sessions, every one read back: 120 sessions, each
/// committed 6 times with 6 on-chain transfers and a description update per commit (3,600
/// transfers and several thousand events in all). Every session loads back equal to what
/// was committed, every transfer is found by its key, and the outbox returns every event,
/// once, in commit order. A store that loses one row in a thousand fails here.
pub fn check_volume<S: Store>(store: &S) {
    let ck = Ck::new("check_volume", store);
    let cursor = ck.last_seq();
    let t = t0() + Duration::days(3);
    let mut expected: Vec<Event> = Vec::new();
    let mut drafts: Vec<Draft> = (0..SESSIONS)
        .map(|_| {
            // Many transfers each: above the default cap, which would hold them apart.
            let limits = crate::session::SessionLimits::new().max_transfers(u32::MAX);
            let params = SessionParams::new(dollars(10_000_000), usd()).limits(limits);
            let mut d = Draft::new(params, t);
            expected.extend(ck.commit(&mut d));
            d
        })
        .collect();
    for round in 0..COMMITS {
        let now = t + Duration::seconds(i64::try_from(round).unwrap_or(0) + 1);
        for d in &mut drafts {
            for vout in 0..TRANSFERS {
                let outpoint = OutPoint::new(fresh_txid(), u32::try_from(vout).unwrap_or(0));
                let report = TransferReport::onchain(outpoint, d.address(), Sats::new(1_000))
                    .confirmations(1);
                d.record(report, now);
            }
            d.update(
                &SessionUpdate::new().description(format!("round {round}")),
                now,
            );
            expected.extend(ck.commit(d));
        }
    }
    for (i, d) in drafts.iter().enumerate() {
        ck.loads_as(&format!("session {i} of {SESSIONS}"), d);
        for (n, transfer) in d.session.transfers().enumerate() {
            let found = ck.ok("find_by_transfer", store.find_by_transfer(&transfer.key));
            ck.eq(
                &format!(
                    "session {i}: find_by_transfer of transfer {n} ({})",
                    transfer.key
                ),
                found,
                Some(d.id()),
            );
        }
    }
    let transfers: usize = drafts.iter().map(|d| d.session.transfers().count()).sum();
    ck.eq(
        "transfers written",
        transfers,
        SESSIONS * COMMITS * TRANSFERS,
    );
    let got = ck.events_since(cursor);
    ck.eq(
        "every event, once, in commit order",
        events_of(&got),
        expected,
    );
    strictly_increasing(&ck, &got);
}

/// Writers on 4 threads commit sessions while a reader polls `events_after` from one
/// cursor: every poll returns what the previous one did followed by newer events (an event
/// never appears below a sequence number already seen), and the last poll returns every
/// event committed, each writer's in its commit order.
pub fn check_events_after_under_writers<S: Store>(store: &S) {
    let ck = Ck::new("check_events_after_under_writers", store);
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 12;
    let cursor = ck.last_seq();
    let t = t0() + Duration::days(4);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let (written, seen, polls) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (ck, done) = (&ck, &done);
                scope.spawn(move || {
                    let mut events = Vec::new();
                    for i in 0..PER_WRITER {
                        let now = t + Duration::milliseconds(i64::try_from(i).unwrap_or(0));
                        let mut d = Draft::new(SessionParams::new(dollars(2_500), usd()), now);
                        events.extend(ck.commit(&mut d));
                        d.pay(now + Duration::seconds(1));
                        events.extend(ck.commit(&mut d));
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    events
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            let mut seen: Vec<StoredEvent> = Vec::new();
            let mut polls = 0usize;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
                let now = ck.events_since(cursor);
                polls += 1;
                let kept = now.len() >= seen.len() && now[..seen.len()] == seen[..];
                if !kept {
                    let at = seen.iter().zip(&now).position(|(a, b)| a != b).unwrap_or(seen.len().min(now.len()));
                    let describe = |e: Option<&StoredEvent>| {
                        e.map_or("nothing".to_owned(), |e| format!("seq {} ({})", e.seq, e.event.id))
                    };
                    ck.that(
                        false,
                        format!(
                            "poll {polls}: position {at} of the outbox was {} and is now {}: an event appeared below a sequence number already seen, or one vanished",
                            describe(seen.get(at)),
                            describe(now.get(at))
                        ),
                    );
                }
                seen = now;
                if finished {
                    break (seen, polls);
                }
            }
        });
        let written: Vec<Vec<Event>> = writers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        let (seen, polls) = reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (written, seen, polls)
    });
    strictly_increasing(&ck, &seen);
    let total: usize = written.iter().map(Vec::len).sum();
    ck.eq("events read after the writers finished", seen.len(), total);
    let position: BTreeMap<_, _> = seen
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event.id, i))
        .collect();
    for (w, events) in written.iter().enumerate() {
        let order: Vec<Option<usize>> = events
            .iter()
            .map(|e| position.get(&e.id).copied())
            .collect();
        ck.that(
            order.iter().all(Option::is_some) && order.windows(2).all(|p| p[0] < p[1]),
            format!("writer {w}'s events are all there, in its commit order ({polls} polls)"),
        );
    }
}

fn strictly_increasing<S: Store>(ck: &Ck<'_, S>, events: &[StoredEvent]) {
    if let Some(i) = events.windows(2).position(|w| w[0].seq >= w[1].seq) {
        ck.that(
            false,
            format!(
                "sequence numbers strictly increase: event {} has seq {}, the next {}",
                i,
                events[i].seq,
                events[i + 1].seq
            ),
        );
    }
}
