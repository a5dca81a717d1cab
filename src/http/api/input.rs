//! Request bodies as Speed's clients send them: lenient types made exact before the
//! core's strict parser sees them.
//!
//! Every field is kept as its raw JSON text (never through `f64`), then:
//! * `amount` and `amount_paid_tolerance` may be a JSON number or a decimal string
//!   (`"49.99"`); the string becomes the number with the same digits;
//! * `ttl` may be a number, a string of digits, or `null` (the default);
//! * `source_id` may be a string or an integer; an integer is kept as its digits and
//!   echoed back as an integer;
//! * `currency` and `target_currency` are upper-cased;
//! * `livemode` is the key's, never the body's.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::error::ApiError;
use crate::session::{SessionParams, SessionUpdate};

/// A JSON object body, field by field, each as its exact text.
pub(crate) struct Fields(BTreeMap<String, Box<RawValue>>);

impl Fields {
    /// Reads a body that must be a JSON object (an empty body is an empty object).
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(BTreeMap::new()));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::invalid("request body is not UTF-8"))?;
        serde_json::from_str(text)
            .map(Self)
            .map_err(|e| ApiError::invalid(format!("request body is not a JSON object: {e}")))
    }

    /// The raw text of a field.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.get())
    }

    /// Whether a field is present and not `null`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.raw(name).is_some_and(|raw| raw != "null")
    }

    /// A field as a string, if present and a string.
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.raw(name) {
            None | Some("null") => Ok(None),
            Some(raw) => serde_json::from_str::<String>(raw)
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("{name} must be a string"))),
        }
    }

    fn set(&mut self, name: &str, json: String) -> Result<(), ApiError> {
        let raw =
            RawValue::from_string(json).map_err(|e| ApiError::invalid(format!("{name}: {e}")))?;
        self.0.insert(name.to_owned(), raw);
        Ok(())
    }

    fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    /// A number field that may come as a decimal string: made a JSON number.
    fn number_or_string(&mut self, name: &str, integer: bool) -> Result<(), ApiError> {
        let Some(text) = self.string_value(name) else {
            return Ok(());
        };
        let text = text.trim().to_owned();
        let valid = if integer {
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
        } else {
            is_decimal(&text)
        };
        if !valid {
            let what = if integer { "an integer" } else { "a decimal" };
            return Err(ApiError::invalid(format!(
                "{name} must be {what}, as a number or a string"
            )));
        }
        self.set(name, text)
    }

    /// The content of a field that is a JSON string.
    fn string_value(&self, name: &str) -> Option<String> {
        let raw = self.raw(name)?;
        raw.starts_with('"')
            .then(|| serde_json::from_str::<String>(raw).ok())
            .flatten()
    }

    fn upper(&mut self, name: &str) -> Result<(), ApiError> {
        match self.string_value(name) {
            Some(code) => self.set(name, quote(&code.to_ascii_uppercase())),
            None => Ok(()),
        }
    }

    /// Normalises `source_id`; says whether it came as an integer.
    fn source_id(&mut self) -> Result<bool, ApiError> {
        let Some(raw) = self.raw("source_id").map(str::to_owned) else {
            return Ok(false);
        };
        if raw == "null" || raw.starts_with('"') {
            return Ok(false);
        }
        let digits = raw.strip_prefix('-').unwrap_or(&raw);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || raw.len() > 20 {
            return Err(ApiError::invalid(
                "source_id must be a string or an integer",
            ));
        }
        self.set("source_id", quote(&raw))?;
        Ok(true)
    }

    fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (name, raw)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&quote(name));
            out.push(':');
            out.push_str(raw.get());
        }
        out.push('}');
        out
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// `-`? digits, optionally `.` digits: what a JSON number of a decimal amount looks like.
fn is_decimal(text: &str) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    let (whole, frac) = body.split_once('.').unwrap_or((body, "0"));
    !whole.is_empty()
        && !frac.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// What a create body said beyond the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Given {
    /// `source_id` came as a JSON integer.
    pub(crate) integer_source_id: bool,
}

/// Speed's create body (checkout session, payment page, payment, link) as parameters for
/// a session of the key's mode.
pub(crate) fn session_params(
    mut fields: Fields,
    livemode: bool,
) -> Result<(SessionParams, Given), ApiError> {
    fields.number_or_string("amount", false)?;
    fields.number_or_string("amount_paid_tolerance", false)?;
    if fields.raw("ttl") == Some("null") {
        fields.remove("ttl");
    }
    fields.number_or_string("ttl", true)?;
    fields.upper("currency")?;
    fields.upper("target_currency")?;
    let integer_source_id = fields.source_id()?;
    fields.remove("livemode");
    // Fields the core sets itself or that this API does not take in a body.
    fields.remove("expires_at");
    let params = SessionParams::from_json(&fields.to_json())?.livemode(livemode);
    Ok((params, Given { integer_source_id }))
}

/// Speed's update body.
pub(crate) fn session_update(fields: &Fields) -> Result<SessionUpdate, ApiError> {
    Ok(SessionUpdate::from_json(&fields.to_json())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn params(body: &str) -> Result<(SessionParams, Given), ApiError> {
        session_params(Fields::parse(body.as_bytes())?, false)
    }

    #[test]
    fn lenient_types_become_exact_parameters() {
        let (from_string, given) = params(
            r#"{"currency":"usd","amount":"49.99","ttl":"600","source_id":1001,"livemode":true}"#,
        )
        .unwrap();
        let (from_number, _) =
            params(r#"{"currency":"USD","amount":49.99,"ttl":600,"source_id":"1001"}"#).unwrap();
        assert_eq!(from_string, from_number);
        assert!(given.integer_source_id);
        assert_eq!(from_string.amount, Decimal::new(4999, 2));
        let (null_ttl, _) = params(r#"{"currency":"USD","amount":"1","ttl":null}"#).unwrap();
        assert_eq!(null_ttl.ttl, None);
    }

    #[test]
    fn wrong_types_are_refused() {
        for body in [
            r#"{"currency":"USD","amount":"4,99"}"#,
            r#"{"currency":"USD","amount":"1e3"}"#,
            r#"{"currency":"USD","amount":true}"#,
            r#"{"currency":"USD","amount":1,"ttl":"ten"}"#,
            r#"{"currency":"USD","amount":1,"source_id":1.5}"#,
            r#"{"currency":"USD","amount":1,"source_id":{}}"#,
            r#"[1,2]"#,
            r#"{"currency":"USD","#,
        ] {
            assert_eq!(
                params(body).unwrap_err().status(),
                axum::http::StatusCode::BAD_REQUEST,
                "{body}"
            );
        }
    }
}
