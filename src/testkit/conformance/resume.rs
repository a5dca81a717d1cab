//! The [`ResumeStore`] suite: [`run_resume_store`] and its checks.

use std::sync::Barrier;

use super::{Check, run_checks};
use crate::backend::ResumePoint;
use crate::id::EventId;
use crate::store::{ResumeStore, StoreError};

/// Runs every [`ResumeStore`] check, each on a fresh store from `fresh`, then all of them
/// on one more. Panics on the first violation.
pub fn run_resume_store<S: ResumeStore>(fresh: impl FnMut() -> S) {
    let all: Vec<(&'static str, Check<S>)> = crate::__resume_store_checks!(list(S));
    run_checks(&all, fresh);
}

/// A listener name no other check uses.
fn fresh_name() -> String {
    format!("lnbits:{}", EventId::generate())
}

fn point(text: &str) -> ResumePoint {
    ResumePoint::new(text)
}

/// A name starts with no point; a point saved with the right expectation is read back;
/// a save that expects anything but the stored point (nothing, an older one, another)
/// is a conflict and changes nothing; names are independent.
pub fn check_resume_point_compare_and_swap<S: ResumeStore>(store: &S) {
    let name = "check_resume_point_compare_and_swap";
    let (a, b) = (fresh_name(), fresh_name());
    let read = |n: &str| {
        store
            .resume_point(n)
            .unwrap_or_else(|e| panic!("{name}: resume_point: unexpected error: {e:?}"))
    };
    assert_eq!(read(&a), None, "{name}: a new name has no point");
    let first = point("2026-12-03T11:18:46.865941+00:00");
    let second = point("2026-12-03T11:18:47.000001+00:00");
    store
        .save_resume_point(&a, None, &first)
        .unwrap_or_else(|e| panic!("{name}: the first save: {e:?}"));
    assert_eq!(read(&a), Some(first.clone()), "{name}: the first point");
    assert_eq!(read(&b), None, "{name}: another name is untouched");
    for (expected, what) in [
        (None, "nothing stored"),
        (Some(&second), "a point never stored"),
    ] {
        assert_eq!(
            store.save_resume_point(&a, expected, &point("x")),
            Err(StoreError::Conflict),
            "{name}: a save expecting {what}"
        );
        assert_eq!(
            read(&a),
            Some(first.clone()),
            "{name}: unchanged after a conflict"
        );
    }
    store
        .save_resume_point(&a, Some(&first), &second)
        .unwrap_or_else(|e| panic!("{name}: the second save: {e:?}"));
    assert_eq!(read(&a), Some(second.clone()), "{name}: the second point");
    assert_eq!(
        store.save_resume_point(&a, Some(&first), &point("older")),
        Err(StoreError::Conflict),
        "{name}: a save expecting the replaced point"
    );
    assert_eq!(read(&a), Some(second), "{name}: never moved back");
}

/// 8 threads each trying to move one point from the same expected value: exactly one
/// succeeds, every other gets a conflict, and the stored point is the winner's.
pub fn check_resume_point_races<S: ResumeStore>(store: &S) {
    const THREADS: usize = 8;
    let name = "check_resume_point_races";
    let listener = fresh_name();
    let start = point("0");
    store
        .save_resume_point(&listener, None, &start)
        .unwrap_or_else(|e| panic!("{name}: the first save: {e:?}"));
    let barrier = Barrier::new(THREADS);
    let outcomes: Vec<(usize, Result<(), StoreError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (barrier, listener, start) = (&barrier, &listener, &start);
                scope.spawn(move || {
                    barrier.wait();
                    let mine = point(&format!("{}", i + 1));
                    (i, store.save_resume_point(listener, Some(start), &mine))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a saving thread panicked"))
            .collect()
    });
    let winners: Vec<usize> = outcomes
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{name}: winners {outcomes:?}");
    for (i, r) in &outcomes {
        if !winners.contains(i) {
            assert_eq!(r, &Err(StoreError::Conflict), "{name}: thread {i}");
        }
    }
    let stored = store
        .resume_point(&listener)
        .unwrap_or_else(|e| panic!("{name}: resume_point: {e:?}"));
    assert_eq!(
        stored,
        Some(point(&format!("{}", winners[0] + 1))),
        "{name}: the winner's point"
    );
}

/// `resume_points` lists the points of one prefix in name order, a page at a time after a
/// name, and nothing of other prefixes; `delete_resume_point` deletes only the expected
/// point.
pub fn check_resume_points_listed_and_deleted<S: ResumeStore>(store: &S) {
    let name = "check_resume_points_listed_and_deleted";
    // A prefix of its own, so a store shared with other checks lists only these.
    let prefix = format!("family-{}:", EventId::generate());
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| format!("{prefix}{n}"))
        .collect();
    for n in names.iter().rev() {
        store
            .save_resume_point(n, None, &point(n))
            .unwrap_or_else(|e| panic!("{name}: save: {e:?}"));
    }
    let neighbour = format!("{}x", &prefix[..prefix.len() - 1]);
    store
        .save_resume_point(&neighbour, None, &point("other"))
        .unwrap_or_else(|e| panic!("{name}: save: {e:?}"));
    let list = |after: Option<&str>, limit| {
        store
            .resume_points(&prefix, after, limit)
            .unwrap_or_else(|e| panic!("{name}: resume_points: {e:?}"))
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    };
    assert_eq!(list(None, 10), names, "{name}: the family in name order");
    assert_eq!(list(None, 2), names[..2], "{name}: a first page");
    assert_eq!(
        list(Some(&names[1]), 10),
        names[2..],
        "{name}: the page after b"
    );
    assert_eq!(
        store.delete_resume_point(&names[0], &point("not it")),
        Err(StoreError::Conflict),
        "{name}: deleting with another point"
    );
    assert_eq!(
        list(None, 10),
        names,
        "{name}: nothing deleted by the conflict"
    );
    store
        .delete_resume_point(&names[0], &point(&names[0]))
        .unwrap_or_else(|e| panic!("{name}: delete: {e:?}"));
    assert_eq!(list(None, 10), names[1..], "{name}: a deleted");
    assert_eq!(
        store.resume_point(&neighbour).ok().flatten(),
        Some(point("other")),
        "{name}: another prefix is untouched"
    );
}
