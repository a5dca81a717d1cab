//! Shared fixtures for the integration tests: a fixed clock, fake payment requests and rates.

use bitcoin_checkout::*;
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

/// 2026-01-01T00:00:00Z.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("valid time")
}

pub fn at(secs: i64) -> OffsetDateTime {
    t0() + Duration::seconds(secs)
}

pub fn usd() -> Currency {
    Currency::from_code("USD").expect("USD")
}

pub fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal literal")
}

/// A rate of `sats_per_usd` sats per dollar, fetched at `when`.
pub fn rate(sats_per_usd: &str, when: OffsetDateTime) -> ExchangeRate {
    ExchangeRate::new(
        usd(),
        TargetCurrency::Sats,
        dec(sats_per_usd),
        "fixed",
        when,
    )
    .expect("rate")
}

pub fn sid(n: u8) -> SessionId {
    SessionId::from_uuid(uuid::Uuid::from_bytes([n; 16]))
}

pub fn pid(n: u32) -> PaymentId {
    let mut b = [0u8; 16];
    b[12..].copy_from_slice(&n.to_be_bytes());
    PaymentId::from_uuid(uuid::Uuid::from_bytes(b))
}

pub fn hash(n: u32) -> PaymentHash {
    let mut b = [0u8; 32];
    b[28..].copy_from_slice(&n.to_be_bytes());
    PaymentHash::from_bytes(b)
}

pub const ADDRESS: &str = "bcrt1qtestaddress0000000000000000000000000";

/// A fake request for a quote: invoice hash `n`, the session address.
pub fn request_for(session: &CheckoutSession, terms: &QuoteTerms, n: u32) -> PaymentRequest {
    PaymentRequest {
        lightning: session
            .accepts(PaymentMethod::Lightning)
            .then(|| LightningInvoice {
                payment_request: format!("lntest{}n1fake{n}", terms.target_msats().get()),
                payment_hash: hash(n),
                expires_at: terms.expires_at(),
            }),
        onchain_address: session
            .accepts(PaymentMethod::Onchain)
            .then(|| ADDRESS.to_owned()),
    }
}

/// Issues quote number `n` at `now` with `sats_per_usd`.
pub fn quote(
    session: &mut CheckoutSession,
    n: u32,
    sats_per_usd: &str,
    now: OffsetDateTime,
) -> Vec<SessionEvent> {
    let terms = session
        .next_quote(pid(n), rate(sats_per_usd, now), now)
        .expect("terms");
    let req = request_for(session, &terms, n);
    session
        .issue_quote(terms, req, now)
        .expect("issue")
        .into_events()
}

/// A session for `amount` USD with the first quote issued at 1000 sats/USD.
pub fn session_with(params: SessionParams) -> (CheckoutSession, Vec<SessionEvent>) {
    let (mut s, change) = CheckoutSession::create(sid(1), params, t0()).expect("create");
    let mut events = change.into_events();
    events.extend(quote(&mut s, 1, "1000", t0()));
    (s, events)
}

pub fn types(events: &[SessionEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// The `n`th txid, shown as `abab…ab` and `n` in 8 hex digits (as the snapshots hold it).
pub fn txid(n: u32) -> Txid {
    let mut b = [0xabu8; 32];
    b[28..].copy_from_slice(&n.to_be_bytes());
    // `b` is the order shown; a txid keeps the reverse (internal byte order).
    b.reverse();
    Txid::from_byte_array(b)
}

/// The PostgreSQL test server's connection string; a test that needs one fails (never
/// skips) without it.
pub fn pg_url() -> String {
    std::env::var("BITCOIN_CHECKOUT_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("BITCOIN_CHECKOUT_PG is not set: run scripts/test"))
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir = std::env::temp_dir().join(format!(
            "bitcoin-checkout-{name}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// A path for `name` inside the directory.
    pub fn file(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deterministic shuffle (xorshift), so that each worker reports in its own order.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = usize::try_from(x % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

/// A PostgreSQL store in a fresh schema of the server `BITCOIN_CHECKOUT_PG` names
/// (`scripts/test` starts one); the schema's name starts with `prefix`.
#[cfg(feature = "postgres")]
pub fn postgres_store(prefix: &str) -> store::PostgresStore {
    let url = std::env::var("BITCOIN_CHECKOUT_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("BITCOIN_CHECKOUT_PG is not set: run scripts/test"));
    let schema = format!("{prefix}_{}", SessionId::generate().as_uuid().simple());
    store::PostgresStore::connect_in_schema(&url, &schema, 2).expect("connect")
}

/// A BIP84 regtest account descriptor (public keys only) for derived-address tests.
pub const TEST_DESCRIPTOR: &str = "wpkh([73c5da0a/84h/1h/0h]tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M/0/*)";

/// Runs `f` with the panic output silenced; its panic message, if it panicked (the
/// suites of the test kit fail by panicking, like assertions).
pub fn panic_message(f: impl FnOnce()) -> Option<String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.err().map(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// `params` without caps on quotes and transfers: for tests that record many transfers on
/// one session and count every one (see `session::SessionLimits`).
pub fn uncapped(params: SessionParams) -> SessionParams {
    params.limits(
        session::SessionLimits::new()
            .max_quotes(u32::MAX)
            .max_transfers(u32::MAX),
    )
}
