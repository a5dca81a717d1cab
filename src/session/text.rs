//! Validation of the free-text and URL fields of a session.

use crate::error::Error;

/// Longest URL accepted, in bytes.
pub(crate) const MAX_URL_LEN: usize = 2048;

/// Checks an optional text field: at most `max` characters, no control characters other
/// than newline and tab when `multiline`.
pub(crate) fn check_text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
) -> Result<(), Error> {
    let Some(v) = value else { return Ok(()) };
    if v.chars().count() > max {
        return Err(Error::InvalidText {
            field,
            reason: "too long",
        });
    }
    let bad_control = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\t'));
    if v.chars().any(bad_control) {
        return Err(Error::InvalidText {
            field,
            reason: "contains control characters",
        });
    }
    Ok(())
}

/// Checks an optional URL: absolute `http://` or `https://` with a host, no whitespace or
/// control characters, at most 2048 bytes.
///
/// This is deliberately stricter than a general URL parser: redirect targets shown to
/// customers should be plain absolute web URLs.
pub(crate) fn check_url(field: &'static str, value: Option<&str>) -> Result<(), Error> {
    let Some(v) = value else { return Ok(()) };
    let invalid = Error::InvalidUrl { field };
    if v.len() > MAX_URL_LEN || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid);
    }
    let lower = v.get(..8).unwrap_or(v).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &v[8..]
    } else if lower.starts_with("http://") {
        &v[7..]
    } else {
        return Err(invalid);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']'));
    if host_ok { Ok(()) } else { Err(invalid) }
}
