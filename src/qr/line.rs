//! [`Line`]: one row or column of a symbol as bits, so that the mask penalties are counted
//! 64 modules at a time.

use std::ops::{BitAnd, BitOr, BitXor, Not};

/// Light modules kept on each side of a line: the quiet zone, so that the finder-like rule
/// can look four modules past either edge without a bounds check.
pub(super) const PAD: usize = 4;

/// Words in a line: the largest symbol (177 modules) plus both pads is 185 bits.
const WORDS: usize = 3;

/// The modules of one line, bit `PAD + i` for module `i`: set for dark in a line of the
/// symbol, or for "flip" in a mask or a data-region line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Line([u64; WORDS]);

impl Line {
    /// Bits `PAD .. PAD + width` set: the modules of a symbol `width` wide.
    pub(super) fn span(width: usize) -> Self {
        let mut line = Self::default();
        for i in 0..width {
            line.set(i);
        }
        line
    }

    /// Whether module `i` is set.
    pub(super) fn get(&self, i: usize) -> bool {
        let bit = PAD + i;
        self.0[bit / 64] >> (bit % 64) & 1 == 1
    }

    /// Sets module `i`.
    pub(super) fn set(&mut self, i: usize) {
        let bit = PAD + i;
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    /// Sets module `i` to `on`.
    pub(super) fn put(&mut self, i: usize, on: bool) {
        let bit = PAD + i;
        let word = &mut self.0[bit / 64];
        *word = (*word & !(1 << (bit % 64))) | (u64::from(on) << (bit % 64));
    }

    /// The line moved toward module 0 by `n` (1 to 63): bit `k` of the result is bit
    /// `k + n` of this line, so `a & a.next(1)` marks modules equal to their right-hand
    /// neighbour.
    pub(super) fn next(self, n: u32) -> Self {
        let [a, b, c] = self.0;
        Self([a >> n | b << (64 - n), b >> n | c << (64 - n), c >> n])
    }

    /// The line moved away from module 0 by `n` (1 to 63): bit `k` of the result is bit
    /// `k - n` of this line (zero below `n`).
    pub(super) fn prev(self, n: u32) -> Self {
        let [a, b, c] = self.0;
        Self([a << n, b << n | a >> (64 - n), c << n | b >> (64 - n)])
    }

    /// How many bits are set.
    pub(super) fn count(self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// The positions of the runs of set bits in modules `0 .. width`, as (first, length).
    pub(super) fn runs(self, width: usize) -> impl Iterator<Item = (usize, usize)> {
        let mut x = 0;
        std::iter::from_fn(move || {
            while x < width && !self.get(x) {
                x += 1;
            }
            if x >= width {
                return None;
            }
            let start = x;
            while x < width && self.get(x) {
                x += 1;
            }
            Some((start, x - start))
        })
    }
}

impl BitAnd for Line {
    type Output = Self;
    fn bitand(self, o: Self) -> Self {
        Self([self.0[0] & o.0[0], self.0[1] & o.0[1], self.0[2] & o.0[2]])
    }
}

impl BitOr for Line {
    type Output = Self;
    fn bitor(self, o: Self) -> Self {
        Self([self.0[0] | o.0[0], self.0[1] | o.0[1], self.0[2] | o.0[2]])
    }
}

impl BitXor for Line {
    type Output = Self;
    fn bitxor(self, o: Self) -> Self {
        Self([self.0[0] ^ o.0[0], self.0[1] ^ o.0[1], self.0[2] ^ o.0[2]])
    }
}

impl Not for Line {
    type Output = Self;
    fn not(self) -> Self {
        Self([!self.0[0], !self.0[1], !self.0[2]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_cross_words_both_ways() {
        let mut line = Line::default();
        line.set(60); // bit 64: the first of the second word
        assert!(line.next(1).get(59) && line.next(1).count() == 1);
        assert!(line.prev(63).get(123) && line.prev(63).count() == 1);
        assert!(line.next(63).count() == 1 && line.next(63).0[0] == 2);
    }

    #[test]
    fn runs_and_put() {
        let mut line = Line::default();
        for x in [0, 1, 2, 5, 176] {
            line.set(x);
        }
        line.put(1, false);
        line.put(7, true);
        let runs: Vec<_> = line.runs(177).collect();
        assert_eq!(runs, [(0, 1), (2, 1), (5, 1), (7, 1), (176, 1)]);
        assert_eq!(Line::span(177).count(), 177);
    }
}
