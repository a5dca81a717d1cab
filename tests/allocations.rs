//! How many heap allocations the core's hot command makes: recording a transfer should
//! cost the transfer's own slot and the vectors of the change it returns (its events, the
//! ids of the payments and the keys of the transfers it touched), nothing more (the ledger
//! makes room for a payment's sums when the quote is issued). A count, not a timing, so it
//! holds on any machine; the benches show what it means in nanoseconds.

// Tests assert by unwrapping, expecting and panicking. The counting global allocator
// forwards to the system allocator: the unsafe code is its `GlobalAlloc` impl.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bitcoin_checkout::session::SessionChange;
use bitcoin_checkout::*;
use time::Duration;

#[path = "support/quoted_session.rs"]
mod fixture;
use fixture::{onchain, quoted_session as session, t0};

struct Counting;

thread_local! {
    // Per thread, so the test harness's other threads do not count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the counter may already be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards to the system allocator and only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The heap buffers a returned change holds: one per non-empty list (events, payments,
/// transfers); an empty list allocates nothing.
/// How many of the change's lists are filled (events, touched payments, touched
/// transfers); only the events live on the heap, the touched ids are kept inline.
fn change_buffers(change: &SessionChange) -> usize {
    usize::from(!change.events().is_empty())
        + usize::from(!change.payments().is_empty())
        + usize::from(!change.transfers().is_empty())
}

/// Allocations `f` makes on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

#[test]
fn a_first_transfer_allocates_its_slot_and_the_change_only() {
    let mut s = session();
    let now = t0() + Duration::seconds(10);
    let report = onchain(7, 1_000);
    let (n, change) = allocations(|| s.record_transfer(report, now));
    let change = change.unwrap();
    // The change: its events, the payment credited and the new transfer.
    assert_eq!(change_buffers(&change), 3, "{change:?}");
    assert_eq!(
        change
            .into_events()
            .into_iter()
            .map(|e| e.event_type)
            .collect::<Vec<_>>(),
        [
            EventType::TransferReceived,
            EventType::PaymentPaid,
            EventType::CheckoutSessionPaymentPaid
        ]
    );
    // The transfer map's table and the returned events.
    assert_eq!(n, 2, "allocations for the first transfer");
}

#[test]
fn a_later_transfer_allocates_the_change_only() {
    let mut s = session();
    let now = t0() + Duration::seconds(10);
    let _ = s.record_transfer(onchain(7, 1_000), now).unwrap();
    let report = onchain(8, 1_000);
    let (n, change) = allocations(|| s.record_transfer(report, now));
    let change = change.unwrap();
    assert_eq!(change.events().len(), 1);
    assert_eq!(change_buffers(&change), 3, "{change:?}");
    // The returned events; the transfer map has room already and the touched ids are
    // kept inline.
    assert_eq!(n, 1, "allocations for the second transfer");
}

#[test]
fn the_transfer_that_pays_the_session_fits_the_first_allocation() {
    let mut s = session();
    let now = t0() + Duration::seconds(10);
    let report = onchain(7, 25_000);
    let (n, change) = allocations(|| s.record_transfer(report, now));
    let change = change.unwrap();
    assert_eq!(change_buffers(&change), 3, "{change:?}");
    let types: Vec<_> = change
        .into_events()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types.len(), 4, "{types:?}");
    assert_eq!(types.last(), Some(&EventType::CheckoutSessionPaid));
    // Four events fit the events list's first allocation: no reallocation.
    assert_eq!(n, 2, "allocations for the paying transfer");
    assert_eq!(s.status(), SessionStatus::Paid);
}

#[test]
fn a_repeated_report_allocates_nothing() {
    let mut s = session();
    let now = t0() + Duration::seconds(10);
    let _ = s.record_transfer(onchain(7, 1_000), now).unwrap();
    let report = onchain(7, 1_000);
    let (n, change) = allocations(|| s.record_transfer(report, now));
    let change = change.unwrap();
    assert!(change.events().is_empty());
    // Nothing touched either: the duplicate changes nothing a store would write.
    assert!(change.is_empty(), "{change:?}");
    // The report's own address string was allocated before; dropping it is free.
    assert_eq!(n, 0, "allocations for a duplicate report");
}

#[test]
fn a_session_read_back_from_json_has_room_for_its_sums_too() {
    let s = session();
    let mut back = CheckoutSession::from_json(&s.to_json()).unwrap();
    assert_eq!(back, s);
    let now = t0() + Duration::seconds(10);
    let report = onchain(7, 1_000);
    let (n, change) = allocations(|| back.record_transfer(report, now));
    let change = change.unwrap();
    assert_eq!(change.events().len(), 3);
    assert_eq!(change_buffers(&change), 3, "{change:?}");
    assert_eq!(n, 2, "allocations for the first transfer after a read");
}
