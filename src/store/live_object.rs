//! Event objects kept by the session's live rows (ADR 22).
//!
//! A commit's session events carry the session as it is after the commit, and its row
//! holds exactly that: the event object is the row head (`"payments":[]`) with the newest
//! payments' bodies listed in place of the empty list (both are written by the same
//! serialiser). So a store can keep no copy of the object at all while the session stays at
//! that version: [`listing`] makes the object from the head and the listed payments' bodies
//! at commit time (the events whose object is exactly that name it), and [`splice`] puts it
//! back from the rows the same way.
//!
//! When the session moves on, the commit that moves it keeps the older object as a
//! [`checked_diff`] against the newer one (a few hundred bytes: a commit changes a dozen fields),
//! and a reader walks back from the live rows through those deltas with [`apply`]. Every
//! step is checked where it is made: an event whose object is not exactly the listing's
//! keeps its object, and a delta that does not give the older object back is not used
//! (the object is kept whole instead).

/// The payments a session object lists, as (id, JSON) in order.
pub(super) struct Listing<'a> {
    /// The listed payments, in order, as (id, JSON).
    pub(super) payments: Vec<(&'a str, &'a str)>,
}

impl Listing<'_> {
    /// The ids of the listed payments as a row column keeps them (`,`-separated, in order).
    pub(super) fn ids(&self) -> String {
        let ids: Vec<&str> = self.payments.iter().map(|(id, _)| *id).collect();
        ids.join(",")
    }
}

/// Where the empty listing of a row head is, as (end of the prefix, start of the suffix).
fn listing_slot(head: &str) -> Option<(usize, usize)> {
    const KEY: &str = r#""payments":[]"#;
    // The top-level key: JSON text inside a string is escaped, so an unescaped `"payments":`
    // is a key; the session's own comes after its metadata, so it is the last one.
    let at = head.rfind(KEY)?;
    let open = at + KEY.len() - 2;
    Some((open, open + 2))
}

/// The object `head` (a row head) makes with `payments` ((id, body), in order) listed in
/// place of its empty list, with that listing: `None` if the head has no empty list or an
/// id cannot be kept in the ids column (empty, or holding its `,`).
pub(super) fn listing<'a>(
    head: &str,
    payments: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<(String, Listing<'a>)> {
    let payments: Vec<(&str, &str)> = payments.into_iter().collect();
    if payments
        .iter()
        .any(|(id, _)| id.is_empty() || id.contains(','))
    {
        return None;
    }
    let bodies: Vec<&str> = payments.iter().map(|(_, body)| *body).collect();
    Some((splice(head, &bodies)?, Listing { payments }))
}

/// The object a row head and the bodies of its listed payments (in order) make.
pub(super) fn splice(head: &str, bodies: &[&str]) -> Option<String> {
    let (open, close) = listing_slot(head)?;
    let mut out =
        String::with_capacity(head.len() + bodies.iter().map(|b| b.len() + 1).sum::<usize>());
    out.push_str(&head[..open]);
    out.push('[');
    out.push_str(&bodies.join(","));
    out.push(']');
    out.push_str(&head[close..]);
    Some(out)
}

#[cfg(feature = "sqlite")]
/// The most edits (pieces skipped plus pieces inserted) a delta may take before the texts
/// count as unrelated and the older object is kept whole. A commit changes a dozen fields
/// and adds at most a payment (about 30 pieces); the search keeps one frontier per edit,
/// so this also bounds its memory to about 260,000 positions.
const MAX_EDITS: usize = 511;

#[cfg(feature = "sqlite")]
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

#[cfg(all(test, feature = "sqlite"))]
/// A delta that turns `base` into `target`: the pieces of `target` that `base` lacks, in
/// the text form [`apply`] reads (`=n;` copies n pieces of the base, `-n;` skips n, `+len:`
/// inserts the next len bytes). `None` when the texts are too large to compare, or when
/// the delta would not be smaller than `target` itself.
pub(super) fn diff(base: &str, target: &str) -> Option<String> {
    diff_pieces(&segments(base), &segments(target), target.len())
}

#[cfg(feature = "sqlite")]
/// A delta that turns `a` into `b` (texts cut into [`segments`]; `target_len`: the length
/// of `b`'s text), as [`checked_diff`] checks it.
fn diff_pieces(a: &[&str], b: &[&str], target_len: usize) -> Option<String> {
    // What the texts share at both ends is copied as it is; only the middle is compared.
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    let mut out = Delta::default();
    (0..prefix).for_each(|_| out.copy());
    if a.len() == b.len() {
        // As many pieces on both sides: fields that changed value in place (the usual
        // step from one version of an object to the next), compared piece by piece
        // instead of every piece with every other.
        for (x, y) in a.iter().zip(b) {
            if x == y {
                out.copy();
            } else {
                out.insert(y);
                out.skip();
            }
        }
    } else {
        shortest_edits(a, b, &mut out)?;
    }
    (0..suffix).for_each(|_| out.copy());
    let delta = out.finish();
    (delta.len() < target_len).then_some(delta)
}

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
/// The delta being written: runs of copies and skips, then inserted text.
#[derive(Default)]
struct Delta {
    text: String,
    run: Option<(char, usize)>,
}

#[cfg(feature = "sqlite")]
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
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(self.text, "+{}:{piece}", piece.len());
    }

    fn flush(&mut self) {
        if let Some((op, n)) = self.run.take() {
            use std::fmt::Write as _;
            let _ = write!(self.text, "{op}{n};");
        }
    }

    fn finish(mut self) -> String {
        self.flush();
        self.text
    }
}

#[cfg(feature = "sqlite")]
/// `base` with `delta` ([`checked_diff`]'s text) applied; the error says what does not fit.
pub(super) fn apply(delta: &str, base: &str) -> Result<String, String> {
    apply_pieces(delta, &segments(base), base.len())
}

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
/// The delta keeping `older` against `newer`, checked: `None` when no delta is smaller
/// than `older` or one would not give it back.
pub(super) fn checked_diff(newer: &str, older: &str) -> Option<String> {
    // The newer object is cut once, for the delta and for its check.
    let base = segments(newer);
    let delta = diff_pieces(&base, &segments(older), older.len())?;
    (apply_pieces(&delta, &base, newer.len()).ok()? == older).then_some(delta)
}

#[cfg(feature = "sqlite")]
/// Where the walk back to an older object starts.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Start<'a> {
    /// From an object kept whole.
    Whole(&'a str),
    /// From the object the session's rows keep now.
    Live,
}

#[cfg(feature = "sqlite")]
/// The way back to the object of `version` through the kept older objects `past`
/// (`(version, base, body)`, any order): where it starts and the deltas to apply, the last
/// one first ([`rebuild`]). `live_version` is the session's version now.
pub(super) fn walk(
    version: i64,
    past: &[(i64, Option<i64>, String)],
    live_version: i64,
) -> Result<(Start<'_>, Vec<&str>), String> {
    let mut deltas = Vec::new();
    let mut at = version;
    loop {
        let (_, base, body) = past
            .iter()
            .find(|(v, _, _)| *v == at)
            .ok_or_else(|| format!("no object is kept for version {at}"))?;
        match *base {
            None => return Ok((Start::Whole(body), deltas)),
            Some(base) if base <= at || base > live_version => {
                return Err(format!(
                    "the object of version {at} has a delta against {base}"
                ));
            }
            Some(base) => {
                deltas.push(body.as_str());
                if base == live_version {
                    return Ok((Start::Live, deltas));
                }
                at = base;
            }
        }
    }
}

#[cfg(feature = "sqlite")]
/// The object `deltas` ([`walk`]'s) make of `start`.
pub(super) fn rebuild(start: &str, deltas: &[&str]) -> Result<String, String> {
    let mut text = start.to_owned();
    for delta in deltas.iter().rev() {
        text = apply(delta, &text)?;
    }
    Ok(text)
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    const HEAD: &str = r#"{"id":"cs_1","metadata":{"payments":"[]"},"status":"active","payments":[],"payments_count":2,"version":3}"#;

    #[test]
    fn a_listing_fills_the_heads_empty_list_and_splices_back() {
        let p1 = r#"{"id":"pi_1","amount":1,"status":"paid"}"#;
        let p2 = r#"{"id":"pi_2","amount":2.5,"status":"unpaid"}"#;
        let object = HEAD.replace(r#""payments":[],"#, &format!(r#""payments":[{p1},{p2}],"#));
        let (made, listed) = listing(HEAD, [("pi_1", p1), ("pi_2", p2)]).unwrap();
        assert_eq!(made, object);
        assert_eq!(listed.ids(), "pi_1,pi_2");
        assert_eq!(listed.payments[1].1, p2);
        assert_eq!(splice(HEAD, &[p1, p2]).unwrap(), object);
        assert_eq!(splice(HEAD, &[]).unwrap(), HEAD);
        assert_eq!(listing(HEAD, []).unwrap().0, HEAD);
    }

    #[test]
    fn a_head_without_an_empty_list_or_an_id_the_column_cannot_keep_has_no_listing() {
        let p1 = r#"{"id":"pi_1"}"#;
        assert!(
            listing(
                r#"{"id":"cs_1","payments":[{"id":"pi_1"}]}"#,
                [("pi_1", p1)]
            )
            .is_none()
        );
        assert!(listing(r#"{"id":"cs_1"}"#, [("pi_1", p1)]).is_none());
        assert!(listing(HEAD, [("pi_1,pi_2", p1)]).is_none());
        assert!(listing(HEAD, [("", p1)]).is_none());
    }

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
        for _ in 0..500 {
            let mut text = || -> String {
                let len = next(40);
                (0..len)
                    .map(|_| ["a,", "b,", "cc,", "d", "é,", ","][next(6) as usize])
                    .collect()
            };
            let (a, b) = (text(), text());
            let d = diff(&a, &b);
            if let Some(d) = &d {
                assert_eq!(apply(d, &a).unwrap(), b, "{a:?} -> {b:?} by {d:?}");
                // Shortest when the search ran (texts of as many pieces are compared in
                // place instead).
                if segments(&a).len() != segments(&b).len() {
                    assert_eq!(
                        edits(d),
                        Some(fewest_edits(&a, &b)),
                        "{a:?} -> {b:?} by {d:?}"
                    );
                }
            }
            assert_eq!(checked_diff(&a, &b), d);
        }
    }

    #[test]
    fn the_walk_back_follows_the_deltas_to_the_live_object() {
        let shared = r#""currency":"USD","description":"Satoshi's Coffee","success_url":null"#;
        let v1 = format!(r#"{{"status":"active","amount_paid":0,{shared},"version":1}}"#);
        let v2 = format!(r#"{{"status":"active","amount_paid":5,{shared},"version":2}}"#);
        let v3 = format!(r#"{{"status":"paid","amount_paid":25,{shared},"version":3}}"#);
        let (v1, v2, v3) = (v1.as_str(), v2.as_str(), v3.as_str());
        let past = vec![
            (1, Some(2), checked_diff(v2, v1).unwrap()),
            (2, Some(3), checked_diff(v3, v2).unwrap()),
        ];
        let (start, deltas) = walk(1, &past, 3).unwrap();
        assert_eq!(start, Start::Live);
        assert_eq!(rebuild(v3, &deltas).unwrap(), v1);
        let whole = vec![(1, Some(2), past[0].2.clone()), (2, None, v2.to_owned())];
        let (start, deltas) = walk(1, &whole, 3).unwrap();
        assert_eq!(start, Start::Whole(v2));
        assert_eq!(rebuild(v2, &deltas).unwrap(), v1);
        assert!(walk(1, &past[1..], 3).is_err(), "a missing step");
        assert!(
            walk(2, &[(2, Some(1), String::new())], 3).is_err(),
            "a step back"
        );
        assert!(
            walk(2, &[(2, Some(4), String::new())], 3).is_err(),
            "beyond the live one"
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
