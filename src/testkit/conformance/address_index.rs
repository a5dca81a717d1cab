//! The [`AddressIndex`] suite: [`run_address_index`] and its checks.

use std::collections::BTreeSet;
use std::sync::Barrier;

use super::{Check, run_checks};
use crate::id::EventId;
use crate::request::AddressIndex;

/// Runs every [`AddressIndex`] check, each on a fresh index
/// from `fresh`, then all of them on one more. Panics on the first violation.
pub fn run_address_index<I: AddressIndex>(fresh: impl FnMut() -> I) {
    let all: Vec<(&'static str, Check<I>)> = crate::__address_index_checks!(list(I));
    run_checks(&all, fresh);
}

/// A descriptor no other check uses.
fn fresh_descriptor() -> String {
    format!(
        "wpkh([d34db33f/84'/1'/0']tpubD6NzVbkrYhZ4X/0/*)#{}",
        EventId::generate()
    )
}

#[track_caller]
fn reserve<I: AddressIndex>(name: &str, index: &I, descriptor: &str) -> u32 {
    index
        .reserve(descriptor)
        .unwrap_or_else(|e| panic!("{name}: reserve: unexpected error: {e:?}"))
}

/// A new descriptor starts at index 0 and each reservation gives the next one; each
/// descriptor counts on its own.
pub fn check_address_index_sequence<I: AddressIndex>(index: &I) {
    let name = "check_address_index_sequence";
    let (a, b) = (fresh_descriptor(), fresh_descriptor());
    let got: Vec<u32> = (0..3).map(|_| reserve(name, index, &a)).collect();
    assert_eq!(got, [0, 1, 2], "{name}: the first reservations");
    assert_eq!(reserve(name, index, &b), 0, "{name}: another descriptor");
    assert_eq!(reserve(name, index, &a), 3, "{name}: the first one again");
    assert_eq!(reserve(name, index, &b), 1, "{name}: the other again");
}

/// `reserved` answers the highest index handed out, `None` before the first, and reading
/// it reserves nothing.
pub fn check_address_index_reserved<I: AddressIndex>(index: &I) {
    let name = "check_address_index_reserved";
    let (a, b) = (fresh_descriptor(), fresh_descriptor());
    let reserved = |d: &str| {
        index
            .reserved(d)
            .unwrap_or_else(|e| panic!("{name}: reserved: unexpected error: {e:?}"))
    };
    assert_eq!(reserved(&a), None, "{name}: nothing reserved yet");
    assert_eq!(reserved(&a), None, "{name}: reading reserved nothing");
    reserve(name, index, &a);
    assert_eq!(reserved(&a), Some(0), "{name}: after the first");
    reserve(name, index, &a);
    reserve(name, index, &b);
    assert_eq!(reserved(&a), Some(1), "{name}: after the second");
    assert_eq!(reserved(&b), Some(0), "{name}: another descriptor");
    assert_eq!(
        reserve(name, index, &a),
        2,
        "{name}: reading reserved nothing"
    );
}

/// 8 threads reserving 100 indexes each of one descriptor get 800 distinct indexes:
/// exactly 0 to 799.
pub fn check_address_index_threads<I: AddressIndex>(index: &I) {
    const THREADS: u32 = 8;
    const EACH: u32 = 100;
    let name = "check_address_index_threads";
    let descriptor = fresh_descriptor();
    let barrier = Barrier::new(THREADS as usize);
    let all: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (barrier, descriptor) = (&barrier, &descriptor);
                scope.spawn(move || {
                    barrier.wait();
                    (0..EACH)
                        .map(|_| reserve(name, index, descriptor))
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a reserving thread panicked"))
            .collect()
    });
    let distinct: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "{name}: an index was reserved twice"
    );
    assert_eq!(
        distinct,
        (0..THREADS * EACH).collect::<BTreeSet<u32>>(),
        "{name}: the indexes reserved"
    );
}
