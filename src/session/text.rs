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

/// Checks an optional URL: an absolute `http://` or `https://` URL that the WHATWG URL
/// parser (the `url` crate, what browsers use) reads, with a host and no user info, at most
/// 2048 bytes, no whitespace, control characters or backslashes.
///
/// The URL is stored as given, not in the parser's normalised form: the parser only
/// decides, so what the merchant wrote is what they read back. Because of that, what the
/// parser would silently repair is refused instead, so the stored text means the same to
/// every reader: whitespace and control characters (the parser strips or drops them), a
/// backslash (it reads it as `/`), and a scheme not followed by `//` and a host
/// (`http:shop.example` and `http:///shop.example` parse as `http://shop.example/`). User
/// info (`https://user:pw@host/`, even an empty one) is refused: it puts credentials where
/// every page and webhook shows them, and `https://shop.example@evil.example/` is a classic
/// phishing form.
pub(crate) fn check_url(field: &'static str, value: Option<&str>) -> Result<(), Error> {
    let Some(v) = value else { return Ok(()) };
    let invalid = Error::InvalidUrl { field };
    if v.len() > MAX_URL_LEN
        || v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(invalid);
    }
    let Ok(url) = url::Url::parse(v) else {
        return Err(invalid);
    };
    // The authority as written: `http:///host` and `http:host` parse as `http://host/`, and
    // `https://@host/` as `https://host/` (an empty user info is still one).
    let authority = v
        .get(url.scheme().len()..)
        .and_then(|rest| rest.strip_prefix("://"))
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .unwrap_or_default();
    let ok = matches!(url.scheme(), "http" | "https")
        && !authority.is_empty()
        && !authority.contains('@')
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none();
    if ok { Ok(()) } else { Err(invalid) }
}
