//! Who is calling: the API key from HTTP Basic, its record, its mode, the API version it
//! asks for, and the rate-limit hook.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::ApiError;
use super::{ApiState, ApiStore};
use crate::http::keys::{Access, ApiKey, KeyRecord, Resource};

/// A per-key rate limit, asked before every API call. Return `Err(seconds)` to refuse the
/// call with 429 and `Retry-After: seconds`.
///
/// ```
/// use bitcoin_checkout::http::api::RateLimit;
/// use bitcoin_checkout::http::keys::KeyRecord;
///
/// /// Refuses every call of test keys (a real limiter counts calls per key hash).
/// struct NoTestTraffic;
/// impl RateLimit for NoTestTraffic {
///     fn check(&self, key: &KeyRecord) -> Result<(), u64> {
///         if key.livemode { Ok(()) } else { Err(60) }
///     }
/// }
/// ```
pub trait RateLimit: Send + Sync + 'static {
    /// Whether `key` may make one more call now.
    fn check(&self, key: &KeyRecord) -> Result<(), u64>;
}

/// No limit (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl RateLimit for Unlimited {
    fn check(&self, _key: &KeyRecord) -> Result<(), u64> {
        Ok(())
    }
}

/// The `speed-version` a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `2022-04-15`: Lightning only.
    V20220415,
    /// `2022-10-15`, also when the header is absent.
    V20221015,
}

impl ApiVersion {
    /// The date as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V20220415 => "2022-04-15",
            Self::V20221015 => "2022-10-15",
        }
    }

    fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        match headers.get("speed-version").map(|v| v.to_str()) {
            None => Ok(Self::V20221015),
            Some(Ok("2022-10-15")) => Ok(Self::V20221015),
            Some(Ok("2022-04-15")) => Ok(Self::V20220415),
            Some(_) => Err(ApiError::invalid(
                "speed-version must be 2022-04-15 or 2022-10-15",
            )),
        }
    }
}

/// The authenticated caller of an API route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's record.
    pub key: KeyRecord,
    /// The API version asked for.
    pub version: ApiVersion,
}

impl Caller {
    /// Whether objects of this mode are the caller's (the other mode's are invisible).
    pub fn sees(&self, livemode: bool) -> bool {
        self.key.livemode == livemode
    }

    /// Refuses with 403 unless the key may do `access` on `resource`.
    pub fn require(&self, resource: Resource, access: Access) -> Result<(), ApiError> {
        if self.key.allows(resource, access) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this {:?} key may not {} {}",
                self.key.kind,
                match access {
                    Access::Read => "read",
                    Access::Write => "write",
                },
                resource_name(resource)
            )))
        }
    }
}

fn resource_name(resource: Resource) -> &'static str {
    match resource {
        Resource::CheckoutSessions => "checkout sessions",
        Resource::Payments => "payments",
        Resource::Links => "links",
        Resource::Events => "events",
        Resource::Webhooks => "webhook endpoints",
        Resource::PaymentPage => "payment pages",
        _ => "webhook secrets",
    }
}

/// The key a request presents, if its `Authorization` header is HTTP Basic with the key
/// as user name (`key:` or the bare key encoded).
pub(crate) fn presented_key(headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    let missing =
        || ApiError::unauthenticated("no API key: use HTTP Basic with the key as user name");
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(missing)?;
    let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
    ApiKey::parse(user).map_err(|_| ApiError::unauthenticated("invalid API key"))
}

impl<S: ApiStore> FromRequestParts<Arc<ApiState<S>>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState<S>>,
    ) -> Result<Self, ApiError> {
        let key = presented_key(&parts.headers)?;
        let version = ApiVersion::from_headers(&parts.headers)?;
        let keys = Arc::clone(&state.keys);
        let hash = key.hash();
        let inline = keys.never_blocks();
        let record = crate::http::off_executor(inline, move || keys.find(&hash))
            .await
            .ok_or_else(|| ApiError::internal(false))?
            .map_err(|e| ApiError::internal(e.is_retryable()))?
            // A key nobody issued, or one revoked, is refused the same way.
            .filter(|r| !r.revoked && r.kind == key.kind() && r.livemode == key.livemode())
            .ok_or_else(|| ApiError::unauthenticated("invalid API key"))?;
        state
            .limiter
            .check(&record)
            .map_err(ApiError::rate_limited)?;
        Ok(Self {
            key: record,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(text: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(text));
        headers.insert(axum::http::header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_auth_with_or_without_the_colon() {
        let key = "sk_test_0123456789abcdef0123456789abcdef";
        for form in [format!("{key}:"), key.to_owned()] {
            assert_eq!(presented_key(&basic(&form)).unwrap().expose(), key);
        }
        assert_eq!(
            presented_key(&HeaderMap::new()).unwrap_err().status(),
            axum::http::StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            presented_key(&basic("nope:")).unwrap_err().status(),
            axum::http::StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn versions() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            ApiVersion::from_headers(&headers).unwrap(),
            ApiVersion::V20221015
        );
        headers.insert("speed-version", "2022-04-15".parse().unwrap());
        assert_eq!(
            ApiVersion::from_headers(&headers).unwrap(),
            ApiVersion::V20220415
        );
        headers.insert("speed-version", "2023-01-01".parse().unwrap());
        assert!(ApiVersion::from_headers(&headers).is_err());
    }
}
