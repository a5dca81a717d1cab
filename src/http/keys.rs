//! API keys: Speed's three kinds, their mode and permissions, and the key-store port.
//!
//! A key is `{pk|sk|rk}_{test|live}_` followed by 32 or more letters and digits. The prefix
//! says what the key may do ([`KeyKind`]) and which objects it sees (`livemode`): objects
//! of one mode are invisible to keys of the other. Keys are the application's: it mints
//! them with [`ApiKey::generate`], shows the key once to its merchant, and keeps only the
//! [`KeyRecord`] (with the key's SHA-256, never the key) in a [`KeyStore`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::ResumePoint;
use crate::store::{Corruption, ResumeStore, StoreError};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// `pk_…`: safe in a browser or a plugin; may only create payment pages and verify
    /// webhook secrets ([`Resource::PaymentPage`] and [`Resource::VerifySecret`]).
    Publishable,
    /// `sk_…`: everything.
    Secret,
    /// `rk_…`: what its [`KeyRecord::permissions`] grant.
    Restricted,
}

impl KeyKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Publishable => "pk",
            Self::Secret => "sk",
            Self::Restricted => "rk",
        }
    }
}

/// A group of routes a permission covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resource {
    /// `/checkout-sessions`.
    CheckoutSessions,
    /// `/payments`.
    Payments,
    /// `/checkout-links` and `/payment-links`.
    Links,
    /// `/events`.
    Events,
    /// `/webhooks` (endpoints) and `/webhooks/verify-secret`.
    Webhooks,
    /// `POST /payment-page`.
    PaymentPage,
    /// `POST /webhooks/verify-secret` (says only whether a URL and secret match).
    VerifySecret,
}

/// Reading, or reading and writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `GET` routes.
    Read,
    /// Every route of the resource (write implies read).
    Write,
}

/// What a restricted key may do: resources with their access.
pub type Permissions = BTreeSet<(Resource, Access)>;

/// An API key in clear: what the merchant's client sends. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Why a text is not an API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not an API key: expected pk_/sk_/rk_ then test_ or live_ then at least 32 letters or digits"
)]
pub struct InvalidKey;

const MIN_KEY_BODY: usize = 32;
const MAX_KEY_LEN: usize = 200;

impl ApiKey {
    /// Reads a key as a client sends it.
    pub fn parse(text: &str) -> Result<Self, InvalidKey> {
        Self::split(text)
            .map(|_| Self(text.to_owned()))
            .ok_or(InvalidKey)
    }

    fn split(text: &str) -> Option<(KeyKind, bool)> {
        if text.len() > MAX_KEY_LEN {
            return None;
        }
        let (kind, rest) = [KeyKind::Publishable, KeyKind::Secret, KeyKind::Restricted]
            .into_iter()
            .find_map(|k| Some((k, text.strip_prefix(k.prefix())?.strip_prefix('_')?)))?;
        let (livemode, body) = if let Some(body) = rest.strip_prefix("test_") {
            (false, body)
        } else {
            (true, rest.strip_prefix("live_")?)
        };
        (body.len() >= MIN_KEY_BODY && body.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then_some((kind, livemode))
    }

    /// A new random key of this kind and mode, with the record to store for it (the key
    /// itself is not kept: show it to the merchant once).
    pub fn generate(kind: KeyKind, livemode: bool, name: impl Into<String>) -> (Self, KeyRecord) {
        let mode = if livemode { "live" } else { "test" };
        let body: String = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .map(|u| u.simple().to_string())
            .collect();
        let key = Self(format!("{}_{mode}_{body}", kind.prefix()));
        let record = KeyRecord::new(&key, name);
        (key, record)
    }

    /// The key's kind, from its prefix.
    pub fn kind(&self) -> KeyKind {
        Self::split(&self.0).map_or(KeyKind::Publishable, |(k, _)| k)
    }

    /// Whether it is a live key (`_live_`).
    pub fn livemode(&self) -> bool {
        Self::split(&self.0).is_some_and(|(_, live)| live)
    }

    /// The key's SHA-256: what a [`KeyStore`] finds it by.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The key in clear, to show once or to send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let visible: String = self.0.chars().take(8).collect();
        write!(f, "ApiKey({visible}…)")
    }
}

/// The SHA-256 of a key: keys are stored and found by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..12])
    }
}

impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not a key hash"))
    }
}

/// What is kept about a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyRecord {
    /// The key's SHA-256.
    pub hash: KeyHash,
    /// Its kind (as its prefix says).
    pub kind: KeyKind,
    /// Its mode (as its prefix says).
    pub livemode: bool,
    /// A name for people ("Magento plugin").
    pub name: String,
    /// For a restricted key: what it may do. Ignored for the other kinds.
    #[serde(default)]
    pub permissions: Permissions,
    /// A revoked key is refused (401).
    #[serde(default)]
    pub revoked: bool,
}

impl KeyRecord {
    /// The record of a key the merchant already has (e.g. one configured in a plugin):
    /// its hash, kind and mode, no permissions, not revoked.
    ///
    /// ```
    /// use bitcoin_checkout::http::keys::{ApiKey, KeyKind, KeyRecord};
    ///
    /// let key = ApiKey::parse("sk_test_0123456789abcdef0123456789abcdef")?;
    /// let record = KeyRecord::new(&key, "Magento plugin");
    /// assert_eq!((record.kind, record.livemode), (KeyKind::Secret, false));
    /// assert_eq!(record.hash, key.hash());
    /// # Ok::<(), bitcoin_checkout::http::keys::InvalidKey>(())
    /// ```
    pub fn new(key: &ApiKey, name: impl Into<String>) -> Self {
        Self {
            hash: key.hash(),
            kind: key.kind(),
            livemode: key.livemode(),
            name: name.into(),
            permissions: Permissions::new(),
            revoked: false,
        }
    }

    /// The same record granting `access` on `resource` (restricted keys).
    pub fn grant(mut self, resource: Resource, access: Access) -> Self {
        self.permissions.insert((resource, access));
        self
    }

    /// Whether the key may do `access` on `resource`.
    pub fn allows(&self, resource: Resource, access: Access) -> bool {
        match self.kind {
            KeyKind::Secret => true,
            KeyKind::Publishable => matches!(
                (resource, access),
                (
                    Resource::PaymentPage | Resource::VerifySecret,
                    Access::Write
                )
            ),
            KeyKind::Restricted => {
                self.permissions.contains(&(resource, Access::Write))
                    || (access == Access::Read && self.permissions.contains(&(resource, access)))
            }
        }
    }
}

/// Where key records live.
///
/// Contract: [`find`](Self::find) answers the record saved under the hash, or `None`;
/// [`save`](Self::save) inserts or replaces it (revoking is saving with `revoked`), visible
/// to every later `find` on any server sharing the store.
pub trait KeyStore: Send + Sync {
    /// The record of the key with this hash.
    fn find(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError>;
    /// Inserts or replaces a record.
    fn save(&self, record: &KeyRecord) -> Result<(), StoreError>;

    /// Whether `find` and `save` return without I/O (see
    /// [`Store::never_blocks`](crate::store::Store::never_blocks)). Default `false`.
    fn never_blocks(&self) -> bool {
        false
    }
}

forward_port!(KeyStore {
    fn find(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError>;
    fn save(&self, record: &KeyRecord) -> Result<(), StoreError>;
});

/// Keys in memory (tests, or keys the application loads from its configuration at start).
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: RwLock<HashMap<KeyHash, KeyRecord>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl KeyStore for MemoryKeyStore {
    fn never_blocks(&self) -> bool {
        true
    }

    fn find(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let keys = self.keys.read().map_err(|_| poisoned())?;
        Ok(keys.get(hash).cloned())
    }

    fn save(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let mut keys = self.keys.write().map_err(|_| poisoned())?;
        keys.insert(record.hash, record.clone());
        Ok(())
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend {
        message: "key store lock poisoned".to_owned(),
        retryable: false,
    }
}

/// Keys kept in the crate's store (any [`ResumeStore`]: memory, SQLite, PostgreSQL), under
/// `apikey:<sha256>`, so every server sharing the database knows them.
#[derive(Debug, Clone)]
pub struct StoredKeys<R> {
    store: R,
}

impl<R: ResumeStore> StoredKeys<R> {
    /// Keys in `store`.
    pub fn new(store: R) -> Self {
        Self { store }
    }

    fn name(hash: &KeyHash) -> String {
        format!("apikey:{}", hash.to_hex())
    }
}

impl<R: ResumeStore> KeyStore for StoredKeys<R> {
    fn find(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let Some(point) = self.store.resume_point(&Self::name(hash))? else {
            return Ok(None);
        };
        let record: KeyRecord = serde_json::from_str(point.as_str())
            .map_err(|e| Corruption::undecodable("api key record", e))?;
        Ok(Some(record))
    }

    fn save(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let name = Self::name(&record.hash);
        let text = serde_json::to_string(record)
            .map_err(|e| Corruption::undecodable("api key record", e))?;
        // Compare-and-swap on what is there: a concurrent save of the same key wins or
        // loses whole, and the loser retries on the new value.
        for _ in 0..5 {
            let current = self.store.resume_point(&name)?;
            match self.store.save_resume_point(
                &name,
                current.as_ref(),
                &ResumePoint::new(text.clone()),
            ) {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn keys_parse_by_prefix_and_hide_in_debug() {
        let (key, record) = ApiKey::generate(KeyKind::Restricted, true, "agent");
        assert!(key.expose().starts_with("rk_live_"));
        assert_eq!((key.kind(), key.livemode()), (KeyKind::Restricted, true));
        assert_eq!(record.hash, key.hash());
        assert!(!format!("{key:?}").contains(&key.expose()[8..]));
        let parsed = ApiKey::parse(key.expose()).unwrap();
        assert_eq!(parsed, key);
        for bad in [
            "",
            "sk_test_short",
            "xk_test_0123456789abcdef0123456789abcdef",
            "sk_prod_0123456789abcdef0123456789abcdef",
            "sk_test_0123456789abcdef0123456789abcde!",
        ] {
            assert_eq!(ApiKey::parse(bad), Err(InvalidKey), "{bad}");
        }
        let pk = ApiKey::parse("pk_test_0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!((pk.kind(), pk.livemode()), (KeyKind::Publishable, false));
    }

    #[test]
    fn permissions_follow_the_kind() {
        let (_, secret) = ApiKey::generate(KeyKind::Secret, false, "s");
        let (_, public) = ApiKey::generate(KeyKind::Publishable, false, "p");
        let (_, restricted) = ApiKey::generate(KeyKind::Restricted, false, "r");
        let restricted = restricted
            .grant(Resource::Payments, Access::Write)
            .grant(Resource::Events, Access::Read);
        assert!(secret.allows(Resource::Webhooks, Access::Write));
        assert!(public.allows(Resource::PaymentPage, Access::Write));
        assert!(!public.allows(Resource::CheckoutSessions, Access::Read));
        assert!(restricted.allows(Resource::Payments, Access::Read));
        assert!(restricted.allows(Resource::Events, Access::Read));
        assert!(!restricted.allows(Resource::Events, Access::Write));
        assert!(!restricted.allows(Resource::CheckoutSessions, Access::Read));
    }

    #[test]
    fn both_stores_find_saved_keys_by_hash() {
        let stores: Vec<Box<dyn KeyStore>> = vec![
            Box::new(MemoryKeyStore::new()),
            Box::new(StoredKeys::new(MemoryStore::new())),
        ];
        for store in stores {
            let (key, mut record) = ApiKey::generate(KeyKind::Secret, false, "s");
            assert_eq!(store.find(&key.hash()).unwrap(), None);
            store.save(&record).unwrap();
            assert_eq!(store.find(&key.hash()).unwrap(), Some(record.clone()));
            record.revoked = true;
            store.save(&record).unwrap();
            assert!(store.find(&key.hash()).unwrap().unwrap().revoked);
        }
    }
}
