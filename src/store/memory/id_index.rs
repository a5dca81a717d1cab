//! A compact index from 128-bit ids (payment ids, event ids) to 32-bit numbers (a
//! session's slot, an event's position), for the lookups by id.
//!
//! A hash map of whole ids costs about 40 bytes an id at the load factors it grows
//! through; a fresh session has three such ids (its quote and its two creation events),
//! which would add a tenth to the store's size. Here an id costs 12 bytes: its two halves
//! folded into a 64-bit key, kept with its number in a sorted run, plus a hash map of the
//! newest keys that is merged into the run whenever it holds an eighth as many (so each
//! entry is moved a bounded number of times on average). Different ids may fold alike, so
//! a lookup yields every number filed under the key and the caller keeps those that hold
//! the id.

use std::collections::HashMap;

/// The ids' numbers, by folded key.
#[derive(Default)]
pub(super) struct IdIndex {
    /// The sorted run: keys ascending (repeats allowed), each key's number beside it.
    keys: Vec<u64>,
    values: Vec<u32>,
    /// The newest keys, each once.
    recent: HashMap<u64, u32>,
}

/// The newest keys are merged into the run once there are this many and an eighth of it.
const MIN_RECENT: usize = 1_024;

fn fold(id: u128) -> u64 {
    // Truncations on purpose: the high and the low half.
    ((id >> 64) as u64) ^ (id as u64)
}

impl IdIndex {
    /// Every number filed under `id`'s key: the one of `id` (if it was filed) among those of
    /// ids that fold alike.
    pub(super) fn candidates(&self, id: u128) -> impl Iterator<Item = u32> + '_ {
        let key = fold(id);
        let start = self.keys.partition_point(|k| *k < key);
        let len = self.keys[start..].partition_point(|k| *k == key);
        self.values[start..start + len]
            .iter()
            .copied()
            .chain(self.recent.get(&key).copied())
    }

    /// Files `value` under `id` (beside any number filed under it before).
    pub(super) fn insert(&mut self, id: u128, value: u32) {
        let key = fold(id);
        if self.recent.contains_key(&key) {
            self.merge();
        }
        self.recent.insert(key, value);
        if self.recent.len() > MIN_RECENT.max(self.keys.len() / 8) {
            self.merge();
        }
    }

    /// Moves the newest keys into the sorted run, merging from the back in place.
    fn merge(&mut self) {
        let mut recent: Vec<(u64, u32)> = self.recent.drain().collect();
        recent.sort_unstable();
        let (old, new) = (self.keys.len(), recent.len());
        self.keys.reserve_exact(new);
        self.values.reserve_exact(new);
        self.keys.resize(old + new, 0);
        self.values.resize(old + new, 0);
        let (mut i, mut j) = (old, new);
        for w in (0..old + new).rev() {
            // Take the larger of the run's last unmerged key and the newest keys' last.
            let from_run = j == 0 || (i > 0 && self.keys[i - 1] > recent[j - 1].0);
            if from_run {
                i -= 1;
                self.keys[w] = self.keys[i];
                self.values[w] = self.values[i];
            } else {
                j -= 1;
                (self.keys[w], self.values[w]) = recent[j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_finds_its_numbers_through_merges_and_folded_collisions() {
        let mut index = IdIndex::default();
        // Ids that fold alike: the same halves swapped, and equal halves (fold 0).
        let a = (7u128 << 64) | 9;
        let b = (9u128 << 64) | 7;
        let (c, d) = ((5u128 << 64) | 5, (6u128 << 64) | 6);
        let spread =
            |n: u32| u128::from(n + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        for n in 0..5_000u32 {
            index.insert(spread(n), n);
        }
        for (id, value) in [(a, 1), (b, 2), (c, 3), (d, 4), (a, 5)] {
            index.insert(id, 10_000 + value);
        }
        for n in 5_000..20_000u32 {
            index.insert(spread(n), n);
        }
        for n in (0..20_000u32).step_by(7) {
            assert!(index.candidates(spread(n)).any(|v| v == n), "{n}");
        }
        let of = |id| {
            let mut found: Vec<u32> = index.candidates(id).collect();
            found.sort_unstable();
            found
        };
        assert_eq!(of(a), vec![10_001, 10_002, 10_005]);
        assert_eq!(of(c), vec![10_003, 10_004]);
        assert_eq!(of(spread(20_001)).len(), 0);
    }
}
