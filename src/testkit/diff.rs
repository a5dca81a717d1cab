//! Where two values first differ, for failure messages that point at a field or an index
//! instead of dumping both values whole.

use std::fmt::Debug;

use serde_json::Value;

/// The path of the first difference between two JSON texts and both values there, e.g.
/// `payments[1].status: got "paid", want "unpaid"`; `None` if they are equal as JSON.
///
/// ```
/// use bitcoin_checkout::testkit::diff::json_difference;
///
/// let got = r#"{"id":"cs_1","payments":[{"status":"paid"},{"status":"paid"}]}"#;
/// let want = r#"{"id":"cs_1","payments":[{"status":"paid"},{"status":"unpaid"}]}"#;
/// assert_eq!(
///     json_difference(got, want).as_deref(),
///     Some(r#"payments[1].status: got "paid", want "unpaid""#)
/// );
/// assert_eq!(json_difference(got, got), None);
/// ```
pub fn json_difference(got: &str, want: &str) -> Option<String> {
    match (
        serde_json::from_str::<Value>(got),
        serde_json::from_str::<Value>(want),
    ) {
        (Ok(g), Ok(w)) => first_json(&g, &w, String::new()),
        _ => (got != want).then(|| line_difference(got, want)),
    }
}

fn first_json(got: &Value, want: &Value, path: String) -> Option<String> {
    let here = |p: &str| {
        if p.is_empty() {
            "the value".to_owned()
        } else {
            p.to_owned()
        }
    };
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (key, wv) in w {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match g.get(key) {
                    Some(gv) => {
                        if let Some(d) = first_json(gv, wv, sub) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{sub}: missing, want {}", short(wv))),
                }
            }
            g.iter()
                .find(|(k, _)| !w.contains_key(*k))
                .map(|(k, v)| format!("{}: got {k} = {}, not expected", here(&path), short(v)))
        }
        (Value::Array(g), Value::Array(w)) => {
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                if let Some(d) = first_json(gv, wv, format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (g.len() != w.len())
                .then(|| format!("{}: {} items, want {}", here(&path), g.len(), w.len()))
        }
        _ if got == want => None,
        _ => Some(format!(
            "{}: got {}, want {}",
            here(&path),
            short(got),
            short(want)
        )),
    }
}

/// A value in at most 120 characters.
fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 120 {
        text
    } else {
        format!("{}…", text.chars().take(117).collect::<String>())
    }
}

/// The first difference between two values' pretty `Debug` forms: for sequences the first
/// differing index (or the lengths), else the first differing line with the fields that
/// enclose it.
///
/// ```
/// use bitcoin_checkout::testkit::diff::debug_difference;
///
/// let message = debug_difference(&vec![1, 2, 3, 4], &vec![1, 2, 5, 4]);
/// assert!(message.contains("[2]"), "{message}");
/// assert!(message.contains("got:  3,") && message.contains("want: 5,"), "{message}");
/// ```
pub fn debug_difference<T: Debug>(got: &T, want: &T) -> String {
    line_difference(&format!("{got:#?}"), &format!("{want:#?}"))
}

fn line_difference(got: &str, want: &str) -> String {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let Some(at) = (0..g.len().max(w.len())).find(|&i| g.get(i) != w.get(i)) else {
        return "no difference".to_owned();
    };
    // The path down to the differing line, counting it as an item of its sequence.
    let mut upto: Vec<&str> = w[..at.min(w.len())].to_vec();
    upto.extend(w.get(at).or(g.get(at)).copied());
    let path = enclosing(&upto);
    let line = |l: Option<&&str>| l.map_or("(end)".to_owned(), |l| l.trim().to_owned());
    format!(
        "first difference at {}line {}:\n  got:  {}\n  want: {}",
        if path.is_empty() {
            String::new()
        } else {
            format!("{path}, ")
        },
        at + 1,
        line(g.get(at)),
        line(w.get(at))
    )
}

/// The chain of open brackets (`field: [`, `Type {`) above the last line, with the index
/// of the item inside each sequence: `payments[1] > Payment`.
fn enclosing(lines: &[&str]) -> String {
    // (indent, label, items seen in it if a sequence)
    let mut stack: Vec<(usize, String, Option<usize>)> = Vec::new();
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        while stack.last().is_some_and(|(i, _, _)| *i >= indent) {
            stack.pop();
        }
        // A line one level inside a sequence starts a new item.
        let closing = text.starts_with(['}', ']', ')']);
        if let Some((_, _, Some(items))) = stack.last_mut()
            && !closing
        {
            *items += 1;
        }
        if text.ends_with('[') || text.ends_with('{') || text.ends_with('(') {
            let label = text
                .trim_end_matches(['[', '{', '('])
                .trim()
                .trim_end_matches(':')
                .to_owned();
            let sequence = text.ends_with('[');
            stack.push((indent, label, sequence.then_some(0)));
        }
    }
    stack
        .iter()
        .map(|(_, label, items)| match items {
            Some(n) if *n > 0 => format!("{label}[{}]", n - 1),
            _ => label.clone(),
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" > ")
}
