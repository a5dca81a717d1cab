//! The delta format of the older objects (ADR 22): a text cut into pieces after each
//! comma, and the edits (copy, skip, insert) that turn one text into another.

use crate::digits::push_number;

/// The most edits (pieces skipped plus pieces inserted) a delta may take before the texts
/// count as unrelated and the older object is kept whole. A commit changes a dozen fields
/// and adds at most a payment (about 30 pieces); the search keeps one frontier per edit,
/// so this also bounds its memory to about 260,000 positions.
const MAX_EDITS: usize = 511;

/// `text` cut after each comma (the last piece may have none), so the pieces join back to it.
fn segments(text: &str) -> Vec<&str> {
    // Commas are found 32 bytes at a time, as a bit mask the compiler can build with vector
    // instructions: cutting at each short piece's comma with `split_inclusive` (a search
    // per piece) cost more than the whole diff. A comma is one byte in UTF-8 and never
    // inside another character's bytes, so each cut is at a character boundary.
    const LANES: usize = 32;
    let bytes = text.as_bytes();
    let mut pieces = Vec::with_capacity(text.len() / 12 + 1);
    let mut start = 0;
    for (chunk_at, chunk) in bytes.chunks(LANES).enumerate() {
        let mut commas = chunk
            .iter()
            .enumerate()
            .fold(0u32, |mask, (i, &b)| mask | (u32::from(b == b',') << i));
        while commas != 0 {
            let at = chunk_at * LANES + commas.trailing_zeros() as usize;
            pieces.push(&text[start..=at]);
            start = at + 1;
            commas &= commas - 1;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
/// A delta that turns `base` into `target`: the pieces of `target` that `base` lacks, in
/// the text form [`apply`] reads (`=n;` copies n pieces of the base, `-n;` skips n, `+len:`
/// inserts the next len bytes). `None` when the texts are too large to compare, or when
/// the delta would not be smaller than `target` itself.
pub(super) fn diff(base: &str, target: &str) -> Option<String> {
    diff_pieces(&segments(base), &segments(target), target.len())
}

/// The most pieces a [`one_block`] alignment may leave differing in place for its delta to
/// be taken without the search: a commit changes a dozen fields. Such a delta takes at
/// most twice as many edits beyond the fewest (each differing piece is a skip and an
/// insert, which the search might have matched elsewhere).
const MAX_IN_PLACE: usize = 32;

/// How many pieces the texts `a` and `b` share at their start and at their end (without
/// overlapping): only the middle between them is compared.
fn shared_ends(a: &[&str], b: &[&str]) -> (usize, usize) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (prefix, suffix)
}

/// The best alignment of `a` and `b` as one run of pieces that only the longer has, the
/// rest compared in place: where the run starts and how many pieces differ in place
/// there (the start where the fewest do, the first of them on a tie); `None` when they
/// have as many pieces. The usual step from one version of an object to the next: a
/// payment added to the list and a few fields changed. Linear: the pieces that differ
/// before each start are counted forwards, those after it backwards.
fn one_block(a: &[&str], b: &[&str]) -> Option<(usize, usize)> {
    let (long, short) = match a.len().cmp(&b.len()) {
        std::cmp::Ordering::Equal => return None,
        std::cmp::Ordering::Greater => (a, b),
        std::cmp::Ordering::Less => (b, a),
    };
    let run = long.len() - short.len();
    // after[p]: the pieces of short[p..] that differ from those of long after the run.
    let mut after = vec![0usize; short.len() + 1];
    for i in (0..short.len()).rev() {
        after[i] = after[i + 1] + usize::from(short[i] != long[i + run]);
    }
    let mut best = (0, after[0]);
    let mut before = 0;
    for p in 1..=short.len() {
        before += usize::from(short[p - 1] != long[p - 1]);
        if before + after[p] < best.1 {
            best = (p, before + after[p]);
        }
    }
    Some(best)
}

/// Writes to `out` the steps from `a` to `b`, which have as many pieces, compared in place.
fn in_place(a: &[&str], b: &[&str], out: &mut Delta) {
    for (x, y) in a.iter().zip(b) {
        if x == y {
            out.copy();
        } else {
            out.insert(y);
            out.skip();
        }
    }
}

/// A delta that turns `a` into `b` (texts cut into [`segments`]; `target_len`: the length
/// of `b`'s text), as [`checked_diff`] checks it.
fn diff_pieces(a: &[&str], b: &[&str], target_len: usize) -> Option<String> {
    // What the texts share at both ends is copied as it is; only the middle is compared.
    let (prefix, suffix) = shared_ends(a, b);
    let (a, b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut out = Delta::default();
    (0..prefix).for_each(|_| out.copy());
    match one_block(a, b) {
        // As many pieces on both sides: fields that changed value in place, compared
        // piece by piece instead of every piece with every other.
        None => in_place(a, b, &mut out),
        // A run only one side has, the rest nearly in place: compared so, in linear
        // time, where the search's cost grows with the square of the edits (the run's
        // pieces count as edits: a payment is about 25).
        Some((at, differing)) if differing <= MAX_IN_PLACE => {
            if a.len() > b.len() {
                let run = a.len() - b.len();
                in_place(&a[..at], &b[..at], &mut out);
                (0..run).for_each(|_| out.skip());
                in_place(&a[at + run..], &b[at..], &mut out);
            } else {
                let run = b.len() - a.len();
                in_place(&a[..at], &b[..at], &mut out);
                b[at..at + run].iter().for_each(|piece| out.insert(piece));
                in_place(&a[at..], &b[at + run..], &mut out);
            }
        }
        Some(_) => shortest_edits(a, b, &mut out)?,
    }
    (0..suffix).for_each(|_| out.copy());
    let delta = out.finish();
    (delta.len() < target_len).then_some(delta)
}

/// One step of an edit script from `a` to `b`.
#[derive(Clone, Copy)]
enum Step {
    /// The next piece of `a` is kept.
    Copy,
    /// The next piece of `a` is dropped.
    Skip,
    /// The next piece of `b` (at this index) is inserted.
    Insert(usize),
}

/// Writes to `out` a shortest edit script from `a` to `b` (Myers' greedy search: its cost
/// grows with the number of edits, not with the product of the lengths, so a large
/// session with a small change is cheap); `None` beyond [`MAX_EDITS`].
fn shortest_edits(a: &[&str], b: &[&str], out: &mut Delta) -> Option<()> {
    let (n, m) = (a.len(), b.len());
    let limit = MAX_EDITS.min(n + m);
    // Diagonal k (x - y, from -d to d) is stored at k + d; `far[k]` is the furthest x
    // reached on it with the edits made so far. `trace[d]` keeps the frontier after d
    // edits, from diagonal -d to d, for the walk back.
    let mut far = vec![0usize; 2 * limit + 2];
    let centre = limit + 1;
    let mut trace: Vec<Vec<usize>> = Vec::new();
    for d in 0..=limit {
        let mut reached = None;
        for k in (0..=2 * d).step_by(2) {
            let diagonal = centre + k - d;
            // Down from the diagonal above (an insert) or right from the one below (a
            // skip), whichever got further.
            let mut x = if k == 0 || (k != 2 * d && far[diagonal - 1] < far[diagonal + 1]) {
                far[diagonal + 1]
            } else {
                far[diagonal - 1] + 1
            };
            // x - (k - d) without leaving the unsigned range: y = x + d - k.
            let mut y = (x + d).checked_sub(k)?;
            while x < n && y < m && a[x] == b[y] {
                x += 1;
                y += 1;
            }
            far[diagonal] = x;
            if x >= n && y >= m {
                reached = Some(());
            }
        }
        trace.push(far[centre - d..=centre + d].to_vec());
        if reached.is_some() {
            return write_steps(&trace, a, b, out);
        }
    }
    None
}

/// Walks `trace` ([`shortest_edits`]'s frontiers) back from the end of both texts and
/// writes the steps from `a` to `b` to `out`, in order; `None` if the trace does not lead
/// back to the start (it always does; checked rather than trusted, as the delta is).
fn write_steps(trace: &[Vec<usize>], a: &[&str], b: &[&str], out: &mut Delta) -> Option<()> {
    let mut steps = Vec::with_capacity(a.len() + b.len());
    let (mut x, mut y) = (a.len(), b.len());
    for d in (1..trace.len()).rev() {
        let before = &trace[d - 1];
        // The diagonal x - y as an index into `trace[d]` (centred on d): x - y + d.
        let k = (x + d).checked_sub(y)?;
        // The forward search's choice there: down from the diagonal above (an insert,
        // `before[k]`) or right from the one below (a skip, `before[k - 2]`).
        let down = k == 0 || (k != 2 * d && before.get(k.checked_sub(2)?)? < before.get(k)?);
        let from_x = if down {
            *before.get(k)?
        } else {
            before.get(k.checked_sub(2)?)? + 1
        };
        // Where the edit left the walk, on this diagonal: the snake runs from there.
        let from_y = (from_x + d).checked_sub(k)?;
        while x > from_x && y > from_y {
            steps.push(Step::Copy);
            x -= 1;
            y -= 1;
        }
        if down {
            y = y.checked_sub(1)?;
            steps.push(Step::Insert(y));
        } else {
            x = x.checked_sub(1)?;
            steps.push(Step::Skip);
        }
    }
    if x != y {
        return None;
    }
    steps.extend(std::iter::repeat_n(Step::Copy, x));
    for step in steps.into_iter().rev() {
        match step {
            Step::Copy => out.copy(),
            Step::Skip => out.skip(),
            Step::Insert(j) => out.insert(b.get(j)?),
        }
    }
    Some(())
}

/// The delta being written: runs of copies and skips, then inserted text.
#[derive(Default)]
struct Delta {
    text: String,
    run: Option<(char, usize)>,
}

impl Delta {
    fn push_run(&mut self, op: char) {
        match &mut self.run {
            Some((o, n)) if *o == op => *n += 1,
            _ => {
                self.flush();
                self.run = Some((op, 1));
            }
        }
    }

    fn copy(&mut self) {
        self.push_run('=');
    }

    fn skip(&mut self) {
        self.push_run('-');
    }

    fn insert(&mut self, piece: &str) {
        self.flush();
        self.text.push('+');
        push_number(&mut self.text, piece.len());
        self.text.push(':');
        self.text.push_str(piece);
    }

    fn flush(&mut self) {
        if let Some((op, n)) = self.run.take() {
            self.text.push(op);
            push_number(&mut self.text, n);
            self.text.push(';');
        }
    }

    fn finish(mut self) -> String {
        self.flush();
        self.text
    }
}

/// `base` with `delta` ([`checked_diff`]'s text) applied; the error says what does not fit.
pub(in crate::store) fn apply(delta: &str, base: &str) -> Result<String, String> {
    apply_pieces(delta, &segments(base), base.len())
}

/// [`apply`] to a base already cut into [`segments`] (`base_len`: the base's length).
fn apply_pieces(delta: &str, pieces: &[&str], base_len: usize) -> Result<String, String> {
    let mut next = 0;
    let mut out = String::with_capacity(base_len + delta.len());
    let mut rest = delta;
    while let Some(op) = rest.chars().next() {
        rest = &rest[op.len_utf8()..];
        match op {
            '=' | '-' => {
                let end = rest.find(';').ok_or("a run without its end")?;
                let count: usize = rest[..end].parse().map_err(|_| "a bad run length")?;
                rest = &rest[end + 1..];
                let upto = next + count;
                let run = pieces.get(next..upto).ok_or("a run beyond the base")?;
                if op == '=' {
                    run.iter().for_each(|p| out.push_str(p));
                }
                next = upto;
            }
            '+' => {
                let end = rest.find(':').ok_or("an insert without its length")?;
                let len: usize = rest[..end].parse().map_err(|_| "a bad insert length")?;
                let piece = rest
                    .get(end + 1..end + 1 + len)
                    .ok_or("an insert beyond the delta")?;
                out.push_str(piece);
                rest = &rest[end + 1 + len..];
            }
            other => return Err(format!("an unknown operation {other:?}")),
        }
    }
    if next != pieces.len() {
        return Err("the delta leaves part of the base unread".into());
    }
    Ok(out)
}

/// The delta keeping `older` against `newer`, checked: `None` when no delta is smaller
/// than `older` or one would not give it back.
pub(in crate::store) fn checked_diff(newer: &str, older: &str) -> Option<String> {
    // The newer object is cut once, for the delta and for its check.
    let base = segments(newer);
    let delta = diff_pieces(&base, &segments(older), older.len())?;
    (apply_pieces(&delta, &base, newer.len()).ok()? == older).then_some(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_gives_the_older_object_back() {
        let newer = r#"{"id":"cs_1","status":"paid","amount_paid":25,"description":"a, b","paid_at":17,"payments":[{"id":"pi_1","status":"paid"}],"version":2}"#;
        let older = r#"{"id":"cs_1","status":"active","amount_paid":0,"description":"a, b","paid_at":null,"payments":[{"id":"pi_1","status":"unpaid"}],"version":1}"#;
        let delta = checked_diff(newer, older).unwrap();
        assert!(delta.len() < older.len(), "{delta}");
        assert_eq!(apply(&delta, newer).unwrap(), older);
        // Whole texts, empty ones and texts with nothing in common.
        for (a, b) in [
            ("", "x,y"),
            ("x,y", ""),
            ("a,b,c", "d,e,f"),
            ("é,ü", "é,ö,"),
            ("a,b,c,d", "a,x,b,c,d"),
            ("a,b,c,d,e", "a,c,d,e"),
            ("p,a,b,s", "p,b,a,s"),
            ("a,a,a", "a,a"),
        ] {
            if let Some(d) = diff(a, b) {
                assert_eq!(apply(&d, a).unwrap(), b);
            }
        }
        // Pieces added or removed in the middle (the piece counts differ): the common
        // subsequence keeps the delta to the change.
        let long: Vec<String> = (0..60).map(|i| format!("\"field_{i}\":{i}")).collect();
        let base = long.join(",");
        let mut grown = long.clone();
        grown.insert(30, r#""flags":[{"kind":"overpaid"}]"#.to_owned());
        grown[45] = r#""field_44":"changed""#.to_owned();
        let grown = grown.join(",");
        for (a, b) in [(&base, &grown), (&grown, &base)] {
            let d = checked_diff(a, b).unwrap();
            assert!(d.len() < 80, "{d}");
            assert_eq!(apply(&d, a).unwrap(), *b);
        }
    }

    #[test]
    fn a_large_object_with_a_few_changes_still_gets_a_short_delta() {
        // 700 pieces a side: far beyond what a table of every piece against every other
        // could compare, a handful of edits for the greedy search.
        let pieces: Vec<String> = (0..700).map(|i| format!("\"f{i}\":{i}")).collect();
        let base = pieces.join(",");
        let mut edited = pieces.clone();
        edited.remove(650);
        edited.insert(400, r#""flags":[{"kind":"late"}]"#.to_owned());
        edited[10] = r#""f10":"x""#.to_owned();
        edited.insert(5, r#""new":1"#.to_owned());
        let edited = edited.join(",");
        for (a, b) in [(&base, &edited), (&edited, &base)] {
            let d = checked_diff(a, b).unwrap();
            assert!(d.len() < 120, "{d}");
        }
        // Unrelated texts beyond the edit limit are kept whole.
        let other: Vec<String> = (0..700).map(|i| format!("\"g{i}\":{i}")).collect();
        assert!(diff(&base, &other.join(",")).is_none());
    }

    /// The pieces a delta skips or inserts (`None` for a delta `apply` would refuse).
    fn edits(delta: &str) -> Option<usize> {
        let mut count = 0;
        let mut rest = delta;
        while let Some(op) = rest.chars().next() {
            rest = &rest[1..];
            if op == '+' {
                let end = rest.find(':')?;
                let len: usize = rest[..end].parse().ok()?;
                rest = rest.get(end + 1 + len..)?;
                count += 1;
            } else {
                let end = rest.find(';')?;
                if op == '-' {
                    count += rest[..end].parse::<usize>().ok()?;
                }
                rest = &rest[end + 1..];
            }
        }
        Some(count)
    }

    /// The fewest pieces skipped plus inserted that turn `a` into `b`, by the table of
    /// every piece against every other.
    fn fewest_edits(a: &str, b: &str) -> usize {
        let (a, b) = (segments(a), segments(b));
        let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        a.len() + b.len() - 2 * lcs[0][0]
    }

    #[test]
    fn every_delta_between_mixed_texts_gives_the_target_back() {
        // Deterministic pseudo-random pairs over a small alphabet, so that pieces repeat
        // and the search has many equal choices to make.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        // Both ways of comparing pieces counts that differ are taken, each checked.
        let (mut aligned, mut searched) = (0, 0);
        for _ in 0..500 {
            // A text and an edited copy of it: a few pieces added, dropped or changed
            // anywhere (the texts a commit relates), and now and then an unrelated one.
            let pieces = ["a,", "b,", "cc,", "d", "é,", ","];
            let mut a: Vec<&str> = (0..next(160)).map(|_| pieces[next(6) as usize]).collect();
            let mut b = a.clone();
            for _ in 0..next(24) {
                let at = next(b.len() as u64 + 1) as usize;
                match next(3) {
                    0 => b.insert(at, pieces[next(6) as usize]),
                    _ if at == b.len() => {}
                    1 => drop(b.remove(at)),
                    _ => b[at] = pieces[next(6) as usize],
                }
            }
            if next(10) == 0 {
                a.reverse();
            }
            let (a, b) = (a.concat(), b.concat());
            let d = diff(&a, &b);
            if let Some(d) = &d {
                assert_eq!(apply(d, &a).unwrap(), b, "{a:?} -> {b:?} by {d:?}");
                // Shortest when the search ran; a one-block alignment takes its run
                // and two edits per piece differing in place (texts of as many pieces
                // are compared in place).
                let (sa, sb) = (segments(&a), segments(&b));
                let (prefix, suffix) = shared_ends(&sa, &sb);
                let (ma, mb) = (
                    &sa[prefix..sa.len() - suffix],
                    &sb[prefix..sb.len() - suffix],
                );
                let fewest = fewest_edits(&a, &b);
                match one_block(ma, mb) {
                    Some((_, differing)) if differing <= MAX_IN_PLACE => {
                        let run = ma.len().abs_diff(mb.len());
                        assert_eq!(edits(d), Some(run + 2 * differing), "{a:?} -> {b:?}");
                        assert!(run + 2 * differing >= fewest, "{a:?} -> {b:?}");
                        aligned += 1;
                    }
                    Some(_) => {
                        assert_eq!(edits(d), Some(fewest), "{a:?} -> {b:?} by {d:?}");
                        searched += 1;
                    }
                    None => {}
                }
            }
            assert_eq!(checked_diff(&a, &b), d);
        }
        assert!(
            aligned > 20 && searched > 20,
            "{aligned} aligned, {searched} searched"
        );
    }

    #[test]
    fn a_damaged_delta_is_refused() {
        for bad in ["=5;", "=x;", "+9:ab", "+2ab", "?", "é", "-1;=1"] {
            assert!(apply(bad, "a,b,").is_err(), "{bad}");
        }
        assert!(
            apply("=1;", "a,b,").is_err(),
            "the base must be read to its end"
        );
    }
}
