//! The clock and id-source suites.

use std::collections::BTreeSet;

use time::{Duration, OffsetDateTime, UtcOffset};

use super::{fail, on_threads};
use crate::clock::{Clock, IdSource};

/// Readings per thread.
const READS: usize = 2_000;
const THREADS: usize = 4;

/// Readings on every thread never go back. Holds for clocks that promise it (a
/// [`ManualClock`](crate::clock::ManualClock) nobody sets back, a monotone wall clock); the
/// service also copes with a clock that does go back (it refuses to move a session's
/// time backwards), so run this only on clocks that promise monotone time.
pub fn check_clock_is_monotone<C: Clock>(clock: &C) {
    let name = "check_clock_is_monotone";
    on_threads(THREADS, |t| {
        let mut last = clock.now();
        for i in 0..READS {
            let now = clock.now();
            if now < last {
                fail(
                    name,
                    format_args!("thread {t}, reading {i}: {now} after {last}"),
                );
            }
            last = now;
        }
    });
}

/// Readings are in UTC (stores and JSON keep UTC instants).
pub fn check_clock_is_utc<C: Clock>(clock: &C) {
    let name = "check_clock_is_utc";
    let now = clock.now();
    if now.offset() != UtcOffset::UTC {
        fail(
            name,
            format_args!("the clock reads {now}, at offset {}", now.offset()),
        );
    }
}

/// 4 threads minting 2,000 ids each at one instant get 8,000 distinct UUIDs.
pub fn check_ids_unique_across_threads<I: IdSource>(ids: &I) {
    let name = "check_ids_unique_across_threads";
    let now = OffsetDateTime::now_utc();
    let minted = on_threads(THREADS, |_| {
        (0..READS).map(|_| ids.next_uuid(now)).collect::<Vec<_>>()
    });
    let mut seen = BTreeSet::new();
    for (t, uuid) in minted
        .into_iter()
        .enumerate()
        .flat_map(|(t, v)| v.into_iter().map(move |u| (t, u)))
    {
        if !seen.insert(uuid) {
            fail(
                name,
                format_args!("thread {t} minted {uuid} twice (or another thread did)"),
            );
        }
    }
}

/// Every UUID is version 7 and carries the millisecond it was minted at.
pub fn check_ids_carry_their_time<I: IdSource>(ids: &I) {
    let name = "check_ids_carry_their_time";
    let base = OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_767_225_600);
    for offset_ms in [0_i64, 1, 999, 86_400_000, 3_153_600_000_000] {
        let now = base + Duration::milliseconds(offset_ms);
        let uuid = ids.next_uuid(now);
        if uuid.get_version_num() != 7 {
            fail(
                name,
                format_args!("{uuid} is version {}, not 7", uuid.get_version_num()),
            );
        }
        let want = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let got = uuid.get_timestamp().map(|t| {
            let (secs, nanos) = t.to_unix();
            secs * 1_000 + u64::from(nanos / 1_000_000)
        });
        if got != Some(want) {
            fail(
                name,
                format_args!("{uuid} minted at {now} carries {got:?} ms, not {want}"),
            );
        }
    }
}

/// Ids minted at later times sort after earlier ones (stores list by them).
pub fn check_ids_sort_by_time<I: IdSource>(ids: &I) {
    let name = "check_ids_sort_by_time";
    let base = OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_767_225_600);
    let mut last = None;
    for i in 0..1_000 {
        let now = base + Duration::milliseconds(i);
        let uuid = ids.next_uuid(now);
        if last.is_some_and(|l| uuid <= l) {
            fail(
                name,
                format_args!(
                    "{uuid} minted at {now} sorts before an id minted a millisecond earlier"
                ),
            );
        }
        last = Some(uuid);
    }
}

/// Ids minted at one millisecond sort in the order they were minted.
pub fn check_ids_sort_in_minting_order<I: IdSource>(ids: &I) {
    let name = "check_ids_sort_in_minting_order";
    let now = OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_767_225_601);
    let mut last = ids.next_uuid(now);
    for _ in 0..1_000 {
        let uuid = ids.next_uuid(now);
        if uuid <= last {
            fail(
                name,
                format_args!("{uuid} minted at {now} sorts before {last}, minted before it"),
            );
        }
        last = uuid;
    }
}

/// Runs every check of the clock suite on `clock`.
pub fn run_clock<C: Clock>(clock: &C) {
    check_clock_is_monotone(clock);
    check_clock_is_utc(clock);
}

/// Runs every check of the id-source suite on `ids`.
pub fn run_id_source<I: IdSource>(ids: &I) {
    check_ids_unique_across_threads(ids);
    check_ids_carry_their_time(ids);
    check_ids_sort_by_time(ids);
    check_ids_sort_in_minting_order(ids);
}
