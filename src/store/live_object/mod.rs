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
mod delta;
#[cfg(feature = "sqlite")]
pub(super) use delta::{apply, checked_diff};

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
}
