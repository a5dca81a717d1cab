//! The clock and id ports: the service's only sources of time and of new ids (the core
//! takes `now` and ids as arguments).
//!
//! With a [`ManualClock`] and [`SeededIds`], the same commands give byte-identical sessions
//! and events, on every store: ids are minted from the service's clock and the id source's
//! sequence alone, never from the operating system.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Tells the time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

forward_port!(Clock {
    fn now(&self) -> OffsetDateTime;
});

/// The system clock (UTC).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward (or backward) by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    /// Sets the time.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Mints the UUIDs inside new ids (`cs_`, `pi_`, `evt_`, `clink_`, `plink_`).
///
/// Contract: every UUID returned is unique (across threads, and across processes sharing a
/// store) and should be a version 7 UUID whose timestamp is `now`, so that ids sort by the
/// time they were minted; `now` is the service's clock reading for the operation. Ids one
/// source mints at the same millisecond sort in the order it minted them (so a list newest
/// first shows two objects made in one millisecond in the order they were made).
pub trait IdSource: Send + Sync {
    /// A new UUID for an id minted at `now`.
    fn next_uuid(&self, now: OffsetDateTime) -> Uuid;
}

forward_port!(IdSource {
    fn next_uuid(&self, now: OffsetDateTime) -> Uuid;
});

/// Version 7 UUIDs at the service's time with random bits from the operating system: the
/// default, unique across processes.
#[derive(Debug, Default)]
pub struct RandomIds {
    order: MintOrder,
}

impl RandomIds {
    /// A new source.
    pub fn new() -> Self {
        Self::default()
    }
}

impl IdSource for RandomIds {
    fn next_uuid(&self, now: OffsetDateTime) -> Uuid {
        self.order.after(Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            unix_secs(now),
            now.nanosecond(),
        )))
    }
}

/// Keeps the ids of one source in minting order within a millisecond: a fresh id of the
/// last id's millisecond that would sort before it becomes the last id's successor. Of the
/// 74 random bits of a version 7 UUID, the high 42 are then a counter, one more than the
/// last id's, and the low 32 stay the fresh id's own random bits, so that the successor of
/// an id is never simply the id plus one (which other code may also mint, e.g. a quote's
/// id after its session's newest). Ids of another millisecond pass unchanged, so every id
/// carries its time, even when the clock steps back.
#[derive(Debug, Default)]
struct MintOrder(Mutex<Option<Uuid>>);

impl MintOrder {
    const fn new() -> Self {
        Self(Mutex::new(None))
    }

    fn after(&self, fresh: Uuid) -> Uuid {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let id = match *last {
            Some(prev) if millis_of(prev) == millis_of(fresh) && fresh <= prev => {
                successor(prev, fresh).unwrap_or(fresh)
            }
            _ => fresh,
        };
        *last = Some(id);
        id
    }
}

/// The 48-bit millisecond timestamp of a version 7 UUID.
fn millis_of(id: Uuid) -> u128 {
    id.as_u128() >> 80
}

/// The id after `prev` in its millisecond: its counter (the 12 bits of `rand_a` and the
/// high 30 of `rand_b`, counted as one number over the version and variant bits between
/// them) plus one, with the low 32 bits of `fresh`; `None` when the counter is full.
fn successor(prev: Uuid, fresh: Uuid) -> Option<Uuid> {
    const TAIL: u128 = (1 << 32) - 1;
    const COUNTER_B: u128 = ((1 << 62) - 1) & !TAIL;
    const RAND_A: u128 = 0xfff << 64;
    let v = prev.as_u128();
    let bumped = if v & COUNTER_B != COUNTER_B {
        v + (1 << 32)
    } else if v & RAND_A != RAND_A {
        (v & !COUNTER_B) + (1 << 64)
    } else {
        return None;
    };
    Some(Uuid::from_u128((bumped & !TAIL) | (fresh.as_u128() & TAIL)))
}

/// Version 7 UUIDs at the service's time with bits from a seeded sequence (SplitMix64):
/// for tests, simulations and replays. Two sources with one seed, asked in the same order,
/// give the same ids. 74 bits of each id come from the sequence, so ids of one source do not
/// collide in practice; never share a seed between processes that write one store.
#[derive(Debug)]
pub struct SeededIds {
    state: AtomicU64,
    order: MintOrder,
}

impl SeededIds {
    /// A sequence starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
            order: MintOrder::new(),
        }
    }

    fn next_u64(&self) -> u64 {
        // SplitMix64: a counter stepped by the golden gamma, then mixed (a bijection of the
        // counter, so no two calls of one source return the same value).
        const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl IdSource for SeededIds {
    fn next_uuid(&self, now: OffsetDateTime) -> Uuid {
        let (a, b) = (self.next_u64().to_be_bytes(), self.next_u64().to_be_bytes());
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&a);
        random[8..].copy_from_slice(&b[..2]);
        let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        self.order
            .after(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }
}

/// Whole seconds since the epoch, 0 before it (v7 UUIDs cannot hold earlier times).
fn unix_secs(now: OffsetDateTime) -> u64 {
    u64::try_from(now.unix_timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_counts_above_a_random_tail() {
        let id = uuid::Builder::from_unix_timestamp_millis(7, &[0; 10]).into_uuid();
        let fresh = Uuid::from_u128(id.as_u128() | 0xdead_beef);
        let next = successor(id, fresh).unwrap();
        assert_eq!(next.as_u128(), id.as_u128() + (1 << 32) + 0xdead_beef);
        // The counter's rand_b part full: the carry goes into rand_a, over the variant bits.
        let full_b = Uuid::from_u128(id.as_u128() | (((1 << 62) - 1) & !((1 << 32) - 1)));
        let carried = successor(full_b, fresh).unwrap();
        assert!(carried > full_b);
        assert_eq!(carried.get_version_num(), 7);
        assert_eq!(carried.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(millis_of(carried), 7);
        assert_eq!(carried.as_u128() & 0xffff_ffff, 0xdead_beef);
        // The whole counter full: no successor in this millisecond.
        let full = Uuid::from_u128(full_b.as_u128() | (0xfff << 64));
        assert_eq!(successor(full, fresh), None);
    }

    #[test]
    fn a_successor_is_never_the_last_id_plus_one() {
        let order = MintOrder::new();
        let first = uuid::Builder::from_unix_timestamp_millis(9, &[0x80; 10]).into_uuid();
        assert_eq!(order.after(first), first);
        let low = uuid::Builder::from_unix_timestamp_millis(9, &[0x01; 10]).into_uuid();
        let next = order.after(low);
        assert!(next > first);
        assert_ne!(next.as_u128(), first.as_u128() + 1);
    }

    #[test]
    fn a_step_back_in_time_keeps_the_id_time() {
        let order = MintOrder::new();
        let later = uuid::Builder::from_unix_timestamp_millis(9, &[0xff; 10]).into_uuid();
        let earlier = uuid::Builder::from_unix_timestamp_millis(8, &[0; 10]).into_uuid();
        assert_eq!(order.after(later), later);
        assert_eq!(order.after(earlier), earlier);
    }
}
