//! A real server on loopback serving the API router over a real store, real BOLT11
//! invoices and derived addresses, and a small HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bitcoin_checkout::http::api::{ApiRouter, RateLimit};
use bitcoin_checkout::http::keys::{
    Access, ApiKey, KeyKind, KeyRecord, KeyStore, Resource, StoredKeys,
};
use bitcoin_checkout::http::{HttpConfig, SharedCheckout};
use bitcoin_checkout::rates::FixedRates;
use bitcoin_checkout::request::lightning::{Bolt11Signer, OfflineInvoices, SecretKey};
use bitcoin_checkout::request::onchain::{AddressDeriver, DerivedAddresses, Network};
use bitcoin_checkout::request::{MemoryAddressIndex, RequestGenerator};
use bitcoin_checkout::store::MemoryStore;
use bitcoin_checkout::{Checkout, Currency, Decimal, TargetCurrency};
use serde_json::Value;

pub const TPUB: &str = "wpkh([73c5da0a/84h/1h/0h]tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M/0/*)";

pub type Store = Arc<MemoryStore>;

/// The keys every test server knows.
pub struct Keys {
    pub secret_test: ApiKey,
    pub secret_live: ApiKey,
    pub publishable_test: ApiKey,
    pub publishable_live: ApiKey,
    /// May write payments and read events, nothing else.
    pub restricted_test: ApiKey,
    pub revoked_test: ApiKey,
}

pub struct Server {
    pub base: String,
    pub checkout: SharedCheckout<Store>,
    pub keys: Keys,
    _runtime: tokio::runtime::Runtime,
}

/// How a server is built.
#[derive(Default)]
pub struct Options {
    pub body_limit: Option<usize>,
    pub limiter: Option<Box<dyn Fn() -> Box<dyn RateLimit> + Send>>,
}

fn generator() -> RequestGenerator<OfflineInvoices, DerivedAddresses<MemoryAddressIndex>> {
    let key = SecretKey::from_slice(&[0x42; 32]).expect("key");
    let counter = AtomicU8::new(0);
    let entropy = move || {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [n; 32];
        bytes[0] = 0x5a;
        bytes[1] = n.wrapping_mul(7);
        bytes
    };
    RequestGenerator::new()
        .lightning(OfflineInvoices::new(
            Bolt11Signer::new(key, Network::Regtest),
            entropy,
            |_| Ok(()),
        ))
        .onchain(DerivedAddresses::new(
            AddressDeriver::new(TPUB, Network::Regtest).expect("descriptor"),
            MemoryAddressIndex::new(),
        ))
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let store: Store = Arc::new(MemoryStore::new());
        let usd = Currency::from_code("USD").expect("USD");
        let eur = Currency::from_code("EUR").expect("EUR");
        let rates = FixedRates::new()
            .with(usd, TargetCurrency::Sats, Decimal::from(1_000))
            .with(eur, TargetCurrency::Sats, Decimal::from(1_100));
        let checkout: SharedCheckout<Store> =
            Arc::new(Checkout::boxed(Arc::clone(&store), rates, generator()));
        // Keys kept in the same store, hashed, as an application keeps them.
        let key_store = StoredKeys::new(Arc::clone(&store));
        let issue = |kind, live, grant: &dyn Fn(KeyRecord) -> KeyRecord| {
            let (key, record) = ApiKey::generate(kind, live, "test");
            key_store.save(&grant(record)).expect("key saved");
            key
        };
        let same = |r: KeyRecord| r;
        let keys = Keys {
            secret_test: issue(KeyKind::Secret, false, &same),
            secret_live: issue(KeyKind::Secret, true, &same),
            publishable_test: issue(KeyKind::Publishable, false, &same),
            publishable_live: issue(KeyKind::Publishable, true, &same),
            restricted_test: issue(KeyKind::Restricted, false, &|r| {
                r.grant(Resource::Payments, Access::Write)
                    .grant(Resource::Events, Access::Read)
            }),
            revoked_test: issue(KeyKind::Secret, false, &|mut r| {
                r.revoked = true;
                r
            }),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))))
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = HttpConfig::new(&format!("{base}/")).expect("config");
        if let Some(limit) = options.body_limit {
            config = config.with_body_limit(limit).expect("limit");
        }
        let mut api = ApiRouter::new(Arc::clone(&checkout), key_store, config);
        if let Some(limiter) = options.limiter {
            api = api.with_rate_limit(BoxedLimit(limiter()));
        }
        let router = api.router();
        runtime.spawn(async move { axum::serve(listener, router).await });
        Server {
            base,
            checkout,
            keys,
            _runtime: runtime,
        }
    }

    pub fn client(&self) -> Client {
        Client {
            base: self.base.clone(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .new_agent(),
        }
    }
}

struct BoxedLimit(Box<dyn RateLimit>);

impl RateLimit for BoxedLimit {
    fn check(&self, key: &KeyRecord) -> Result<(), u64> {
        self.0.check(key)
    }
}

/// HTTP Basic with the key as user name and an empty password (`key:`).
pub fn basic(key: &ApiKey) -> String {
    basic_raw(&format!("{}:", key.expose()))
}

pub fn basic_raw(user_pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a Speed error: the status, JSON `errors[0]` with a type and a message.
    pub fn assert_error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["errors"][0]["type"], kind, "{}", self.text);
        let message = v["errors"][0]["message"].as_str().expect("message");
        assert!(!message.is_empty());
        message.to_owned()
    }
}

pub struct Client {
    pub base: String,
    agent: ureq::Agent,
}

impl Client {
    /// Sends `method path` with these headers and body (none for GET/DELETE).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let result = match method {
            "GET" | "DELETE" => {
                let mut request = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                for (name, value) in headers {
                    request = request.header(*name, value);
                }
                request.call()
            }
            _ => {
                let mut request = self.agent.post(&url);
                for (name, value) in headers {
                    request = request.header(*name, value);
                }
                match body {
                    Some(body) => request.send(body),
                    None => request.send_empty(),
                }
            }
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let text = response.body_mut().read_to_string().expect("body");
        Answer {
            status,
            headers,
            text,
        }
    }

    pub fn get(&self, path: &str, key: &ApiKey) -> Answer {
        self.send("GET", path, &[("authorization", basic(key))], None)
    }

    pub fn post(&self, path: &str, key: &ApiKey, body: &str) -> Answer {
        self.send(
            "POST",
            path,
            &[
                ("authorization", basic(key)),
                ("content-type", "application/json".into()),
            ],
            Some(body),
        )
    }

    pub fn delete(&self, path: &str, key: &ApiKey) -> Answer {
        self.send("DELETE", path, &[("authorization", basic(key))], None)
    }

    /// POST expecting 200; the answer's JSON.
    pub fn ok(&self, path: &str, key: &ApiKey, body: &str) -> Value {
        let answer = self.post(path, key, body);
        assert_eq!(answer.status, 200, "POST {path}: {}", answer.text);
        answer.json()
    }

    /// GET expecting 200; the answer's JSON.
    pub fn read(&self, path: &str, key: &ApiKey) -> Value {
        let answer = self.get(path, key);
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
        answer.json()
    }
}

pub const SESSION: &str = r#"{"currency":"USD","amount":25,"metadata":{"order":"1001"}}"#;
