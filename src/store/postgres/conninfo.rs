//! The TLS parameters of a connection string, taken out before tokio-postgres reads it.
//!
//! `tokio_postgres::Config` knows `sslmode` only as `disable`, `prefer` and `require`, and
//! knows neither `sslrootcert` nor the client-certificate keys: it refuses the string. So
//! the store takes those keys out of both forms of a connection string (libpq's
//! `key=value` pairs and the `postgres://` URL's query), leaves every other byte as it was,
//! and hands the rest to `Config::from_str`. The parsers below follow tokio-postgres's own
//! (which follow libpq), so that what is left means what it meant.

use super::fatal;
use crate::store::StoreError;

/// The TLS keys of a connection string and the string without them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ConnInfo {
    /// The connection string with the keys below removed.
    pub(super) rest: String,
    /// `sslmode`, as written.
    pub(super) sslmode: Option<String>,
    /// `sslrootcert`, as written (a file, or `system`).
    pub(super) sslrootcert: Option<String>,
    /// A client-certificate key (`sslcert`, `sslkey`, `sslpassword`, `sslcrl`, …) that was
    /// present: the store refuses those rather than ignoring them.
    pub(super) unsupported: Option<&'static str>,
}

/// The keys taken out; each other key goes to tokio-postgres.
const TAKEN: &[&str] = &["sslmode", "sslrootcert"];
const UNSUPPORTED: &[&str] = &[
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslcertmode",
];

fn invalid() -> StoreError {
    // Pieces of a malformed string may be a password: none of it is quoted.
    fatal("invalid connection string (details withheld: it may contain a password)".to_owned())
}

impl ConnInfo {
    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        for prefix in ["postgres://", "postgresql://"] {
            if let Some(body) = s.strip_prefix(prefix) {
                return parse_url(prefix, body);
            }
        }
        parse_pairs(s)
    }

    /// Records a key: `true` if it is taken out of the string.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => {
                if let Some(k) = UNSUPPORTED.iter().find(|k| **k == key) {
                    self.unsupported.get_or_insert(k);
                    return true;
                }
                return false;
            }
        }
        debug_assert!(TAKEN.contains(&key));
        true
    }
}

/// The URL form: the TLS keys are query parameters (`?sslmode=…&sslrootcert=…`).
fn parse_url(prefix: &str, body: &str) -> Result<ConnInfo, StoreError> {
    let mut info = ConnInfo::default();
    // As tokio-postgres (and libpq) read it: the credentials run to the first `@`, so a
    // `?` inside a password does not start the query.
    let after_credentials = body.find('@').map_or(0, |i| i + 1);
    let Some(q) = body[after_credentials..]
        .find('?')
        .map(|i| after_credentials + i)
    else {
        info.rest = format!("{prefix}{body}");
        return Ok(info);
    };
    let mut kept = Vec::new();
    for pair in body[q + 1..].split('&') {
        // tokio-postgres refuses a parameter without `=`: leave it for it to refuse.
        let Some((key, value)) = pair.split_once('=') else {
            kept.push(pair);
            continue;
        };
        let key = percent_decode(key)?;
        if !info.take(&key, percent_decode(value)?) {
            kept.push(pair);
        }
    }
    info.rest = format!("{prefix}{}", &body[..q]);
    if !kept.is_empty() {
        info.rest.push('?');
        info.rest.push_str(&kept.join("&"));
    }
    Ok(info)
}

/// libpq's `%XX` decoding (no `+` for a space), to UTF-8.
fn percent_decode(s: &str) -> Result<String, StoreError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| {
            char::from(b)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        match bytes[i] {
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                    }
                    // As percent_encoding does: a stray `%` stays as it is.
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid())
}

/// The `key=value` form, with libpq's quoting (`'…'`, backslash escapes).
fn parse_pairs(s: &str) -> Result<ConnInfo, StoreError> {
    let mut info = ConnInfo::default();
    let mut kept: Vec<&str> = Vec::new();
    let mut p = Pairs { s, at: 0 };
    while let Some((start, key, value)) = p.next_pair()? {
        if !info.take(key, value) {
            kept.push(&s[start..p.at]);
        }
    }
    info.rest = kept.join(" ");
    Ok(info)
}

struct Pairs<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Pairs<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// The next `key = value`: where it starts, its key and its unquoted value.
    fn next_pair(&mut self) -> Result<Option<(usize, &'a str, String)>, StoreError> {
        self.skip_ws();
        let start = self.at;
        while self.peek().is_some_and(|c| !c.is_whitespace() && c != '=') {
            self.bump();
        }
        if self.at == start {
            return match self.peek() {
                None => Ok(None),
                Some(_) => Err(invalid()),
            };
        }
        let key = &self.s[start..self.at];
        self.skip_ws();
        if self.bump() != Some('=') {
            return Err(invalid());
        }
        self.skip_ws();
        let mut value = String::new();
        if self.peek() == Some('\'') {
            self.bump();
            loop {
                match self.bump() {
                    None => return Err(invalid()),
                    Some('\'') => break,
                    Some('\\') => value.extend(self.bump()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = self.peek().filter(|c| !c.is_whitespace()) {
                self.bump();
                if c == '\\' {
                    value.extend(self.bump());
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(invalid());
            }
        }
        Ok(Some((start, key, value)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pairs_lose_the_tls_keys_and_keep_the_rest_verbatim() {
        let info = ConnInfo::parse(
            "host=localhost  sslmode = verify-full password='a b\\'c' sslrootcert='/t/ca 1.pem' dbname=d",
        )
        .unwrap();
        assert_eq!(info.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(info.sslrootcert.as_deref(), Some("/t/ca 1.pem"));
        assert_eq!(info.rest, "host=localhost password='a b\\'c' dbname=d");
        assert!(info.unsupported.is_none());
    }

    #[test]
    fn urls_lose_the_tls_parameters() {
        let info = ConnInfo::parse(
            "postgres://u:p%3Fw?d@localhost:5432/db?sslmode=verify-ca&application_name=x&sslrootcert=%2Ft%2Fca.pem",
        )
        .unwrap();
        assert_eq!(info.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(info.sslrootcert.as_deref(), Some("/t/ca.pem"));
        assert_eq!(
            info.rest,
            "postgres://u:p%3Fw?d@localhost:5432/db?application_name=x"
        );
        let plain = ConnInfo::parse("postgresql://localhost/db?sslmode=disable").unwrap();
        assert_eq!(plain.rest, "postgresql://localhost/db");
        let none = ConnInfo::parse("postgres://localhost/db").unwrap();
        assert_eq!(none.rest, "postgres://localhost/db");
        assert_eq!(none.sslmode, None);
    }

    #[test]
    fn client_certificates_are_noticed_and_malformed_strings_refused() {
        let info = ConnInfo::parse("host=h sslcert=/c.pem sslkey=/k.pem").unwrap();
        assert_eq!(info.unsupported, Some("sslcert"));
        assert_eq!(info.rest, "host=h");
        for bad in ["host=h password='open", "host=h bogus", "=x"] {
            let e = ConnInfo::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("open"), "{e}");
        }
    }
}
