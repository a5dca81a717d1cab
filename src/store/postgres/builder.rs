//! [`PostgresStoreBuilder`]: a store's connection string, schema, pool, TLS and timeouts.

use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::Config;

use super::conninfo::ConnInfo;
use super::pool::{PoolSettings, Shared, worker};
use super::tls::{Roots, SslMode, Tls};
use super::{PostgresStore, fatal, fnv1a, quote_ident};
use crate::store::StoreError;

/// How long to wait for a connection to the server, unless the connection string says
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of a [`PostgresStore`], then [`connect`](Self::connect). Made by
/// [`PostgresStore::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use bitcoin_checkout::store::{PostgresStore, SslMode};
///
/// let ca = std::fs::read("/etc/shop/db-ca.pem")?;
/// let store = PostgresStore::builder("host=db.internal user=shop dbname=shop")
///     .pool_size(8)
///     .tls_root_pem(ca) // TLS, chain and host name verified (verify-full)
///     .statement_timeout(Some(Duration::from_secs(10)))
///     .connect()?;
/// assert_eq!(store.ssl_mode(), SslMode::VerifyFull);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The connection string's own `sslmode` and `sslrootcert` are honoured (see
/// [TLS](PostgresStore#tls)); a mode set here wins over them.
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    conn_str: String,
    schema: Option<String>,
    pool_size: usize,
    ssl_mode: Option<SslMode>,
    root_pem: Option<Vec<u8>>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    statement_timeout: Option<Duration>,
    idle_in_transaction_timeout: Option<Duration>,
    pool_timeout: Duration,
}

impl std::fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password: it is never shown.
        f.debug_struct("PostgresStoreBuilder")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("ssl_mode", &self.ssl_mode)
            .field("tls_root_pem", &self.root_pem.is_some())
            .field("tls_config", &self.tls_config.is_some())
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .field("pool_timeout", &self.pool_timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    pub(super) fn new(conn_str: String) -> Self {
        Self {
            conn_str,
            schema: None,
            pool_size: PostgresStore::DEFAULT_POOL_SIZE,
            ssl_mode: None,
            root_pem: None,
            tls_config: None,
            statement_timeout: Some(PostgresStore::DEFAULT_STATEMENT_TIMEOUT),
            idle_in_transaction_timeout: Some(PostgresStore::DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT),
            pool_timeout: PostgresStore::DEFAULT_POOL_TIMEOUT,
        }
    }

    /// Keeps the store's tables in `schema` (created if missing; letters, digits and `_`,
    /// at most 63 bytes), e.g. one schema per tenant or per test.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// At most this many connections (at least 1; default
    /// [`DEFAULT_POOL_SIZE`](PostgresStore::DEFAULT_POOL_SIZE)).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// The TLS mode, over the connection string's `sslmode`.
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// Trusts these PEM root certificates (over the connection string's `sslrootcert`).
    /// Unless a mode is set (here or in the connection string), this asks for TLS with the
    /// chain and the host name verified ([`SslMode::VerifyFull`]).
    pub fn tls_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pem = Some(pem.into());
        self
    }

    /// Uses the application's own rustls configuration for TLS, as it is (its roots, its
    /// verifier, client certificates…): the mode then only decides whether TLS is used.
    /// Unless a mode is set, this asks for TLS ([`SslMode::VerifyFull`]).
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// The longest one statement may run (`statement_timeout` of each connection; default
    /// [`DEFAULT_STATEMENT_TIMEOUT`](PostgresStore::DEFAULT_STATEMENT_TIMEOUT)). A call that
    /// runs longer, waiting for a lock included, fails with a retryable
    /// [`StoreError::Backend`]. `None` leaves the server's (or role's) setting. Migrations
    /// run without a timeout.
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// How long the server lets a connection of the store sit idle inside a transaction
    /// before it ends the session (`idle_in_transaction_session_timeout`; default
    /// [`DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT`](PostgresStore::DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT)).
    /// `None` leaves the server's setting.
    pub fn idle_in_transaction_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_in_transaction_timeout = timeout;
        self
    }

    /// The longest a call waits for a free connection before it fails with a retryable
    /// [`StoreError::Backend`] (default
    /// [`DEFAULT_POOL_TIMEOUT`](PostgresStore::DEFAULT_POOL_TIMEOUT)).
    pub fn pool_timeout(mut self, timeout: Duration) -> Self {
        self.pool_timeout = timeout;
        self
    }

    /// Connects (one connection at once, so a wrong address, password or certificate fails
    /// here) and migrates the schema.
    pub fn connect(self) -> Result<PostgresStore, StoreError> {
        if let Some(schema) = &self.schema {
            check_schema(schema)?;
        }
        let info = ConnInfo::parse(&self.conn_str)?;
        if let Some(key) = info.unsupported {
            return Err(fatal(format!(
                "{key} is not supported: for client certificates give a rustls configuration \
                 (PostgresStoreBuilder::tls_config)"
            )));
        }
        // The parser's messages may quote pieces of a malformed string (which could hold a
        // password), so none of its text is passed on.
        let mut config = Config::from_str(&info.rest).map_err(|_| {
            fatal(
                "invalid connection string (details withheld: it may contain a password)"
                    .to_owned(),
            )
        })?;
        let (mode, roots) = self.tls_choice(&info)?;
        let tls = Tls::new(mode, &roots, self.tls_config.clone())?;
        config.ssl_mode(tls.negotiate);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            // What `pg_stat_activity` shows for the store's connections.
            config.application_name("bitcoin-checkout");
        }
        let create = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT)
            .saturating_mul(2);
        let target = describe(&config, self.schema.as_deref(), mode);
        let settings = PoolSettings {
            config,
            tls: tls.connector,
            setup: self.setup_sql(),
            size: self.pool_size,
            wait: self.pool_timeout,
            create,
        };
        let lock_suffix = fnv1a(self.schema.as_deref().unwrap_or(""));
        let shared = Arc::new(Shared::new(settings, self.schema, lock_suffix)?);
        let pool = shared.pool.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        let worker = std::thread::Builder::new()
            .name("bitcoin-checkout-pg".into())
            .spawn(move || worker(shared, rx, ready_tx))
            .map_err(|e| fatal(format!("cannot start the store's thread: {e}")))?;
        let store = PostgresStore {
            requests: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            closed: AtomicBool::new(false),
            target,
            pool_size: self.pool_size,
            ssl_mode: mode,
            pool,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(fatal(
                    "the store's thread stopped while starting".to_owned(),
                ));
            }
        }
        store.migrate()?;
        Ok(store)
    }

    /// The mode and the roots: the builder's over the connection string's; asking for TLS
    /// (roots or a rustls configuration) without a mode means `verify-full`; asking for
    /// nothing keeps connections plain, as before TLS was supported.
    fn tls_choice(&self, info: &ConnInfo) -> Result<(SslMode, Roots), StoreError> {
        let written = info.sslmode.as_deref().map(SslMode::from_str).transpose()?;
        let roots = match (&self.root_pem, info.sslrootcert.as_deref()) {
            (Some(pem), _) => Roots::Pem {
                pem: pem.clone(),
                origin: "the root certificates given".to_owned(),
            },
            (None, Some("system")) => Roots::System,
            (None, Some(path)) => Roots::Pem {
                pem: std::fs::read(path)
                    .map_err(|e| fatal(format!("TLS: cannot read sslrootcert {path:?}: {e}")))?,
                origin: format!("sslrootcert {path:?}"),
            },
            (None, None) => Roots::Default,
        };
        let asked = self.tls_config.is_some() || !matches!(roots, Roots::Default);
        let mode = match (self.ssl_mode.or(written), asked) {
            (Some(mode), _) => mode,
            (None, true) => SslMode::VerifyFull,
            (None, false) => SslMode::Disable,
        };
        // As libpq: the system's roots vouch for a name, so they are only used to check one.
        if matches!(roots, Roots::System) && mode != SslMode::VerifyFull {
            return Err(fatal(format!(
                "sslrootcert=system needs sslmode=verify-full, not {mode}"
            )));
        }
        Ok((mode, roots))
    }

    /// The session settings each new connection starts with, in one round trip.
    fn setup_sql(&self) -> String {
        let millis = |d: Duration| {
            // 0 would mean "no timeout"; the server takes at most i32::MAX milliseconds.
            d.as_millis().clamp(1, i32::MAX as u128)
        };
        let mut sql = String::new();
        if let Some(t) = self.statement_timeout {
            sql.push_str(&format!("SET statement_timeout = {};", millis(t)));
        }
        if let Some(t) = self.idle_in_transaction_timeout {
            sql.push_str(&format!(
                "SET idle_in_transaction_session_timeout = {};",
                millis(t)
            ));
        }
        if let Some(schema) = &self.schema {
            sql.push_str(&format!("SET search_path TO {};", quote_ident(schema)));
        }
        sql
    }
}

fn check_schema(schema: &str) -> Result<(), StoreError> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(fatal(format!(
            "invalid schema name {:?}: use letters, digits and '_'",
            crate::money::truncate_for_error(schema)
        )))
    }
}

/// Where the store connects, without credentials.
fn describe(config: &Config, schema: Option<&str>, mode: SslMode) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let mut s = format!(
        "host={} port={} user={} dbname={} sslmode={mode}",
        hosts.join(","),
        ports.join(","),
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    );
    if let Some(schema) = schema {
        s.push_str(&format!(" schema={schema}"));
    }
    s
}
