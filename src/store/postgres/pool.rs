//! The store's background thread: a current-thread runtime running a deadpool-postgres
//! pool, the mapping of driver errors, and re-running what is safe to re-run.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Metrics, Object, Pool, PoolError, RecyclingMethod,
    Runtime, TimeoutType,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::ops::{Job, Op, Out};
use super::sql::Params;
use super::{fatal, lock, tls};
use crate::store::StoreError;

/// An idle connection unused for this long is checked with a round trip before it is
/// handed out: the connections that die silently (a firewall or NAT forgetting an idle
/// flow, a half-open socket) are the idle ones. One in steady use is not checked: its last
/// statement succeeded a moment ago, and a check per call would cost a round trip each.
pub(super) const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(10);
/// How long that check may take before the connection is dropped.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Shared {
    /// The store's own schema, if any.
    pub(super) schema: Option<String>,
    pub(super) lock_suffix: u32,
    pub(super) pool: Pool,
    health: Arc<Health>,
}

/// When a connection last broke. Every idle connection last handed out before then is
/// checked before its next use: after a server restart or a network fault its siblings
/// are probably dead too, and a call re-run after a lost connection must not land on one.
#[derive(Default)]
struct Health {
    broken_at: Mutex<Option<Instant>>,
}

impl Health {
    fn mark_broken(&self) {
        *lock(&self.broken_at) = Some(Instant::now());
    }

    fn needs_check(&self, metrics: &Metrics) -> bool {
        let last_out = metrics.recycled.unwrap_or(metrics.created);
        metrics.last_used() >= VERIFY_AFTER_IDLE
            || lock(&self.broken_at).is_some_and(|broken| broken >= last_out)
    }
}

/// What every new connection is made with.
pub(super) struct PoolSettings {
    pub(super) config: Config,
    pub(super) tls: Option<MakeRustlsConnect>,
    /// Statements run once on each new connection (`SET statement_timeout …`, the schema's
    /// `search_path`), in one round trip.
    pub(super) setup: String,
    pub(super) size: usize,
    /// The longest a call waits for a free connection.
    pub(super) wait: Duration,
    /// The longest opening a connection may take (TCP, TLS, authentication, setup).
    pub(super) create: Duration,
}

impl Shared {
    pub(super) fn new(
        settings: PoolSettings,
        schema: Option<String>,
        lock_suffix: u32,
    ) -> Result<Self, StoreError> {
        let health = Arc::new(Health::default());
        let checks = Arc::clone(&health);
        let connect = Connector {
            tls: settings.tls,
            setup: settings.setup,
        };
        // `Fast` recycling only asks the client whether it is closed (a connection whose
        // socket ended is dropped, never reused); the round-trip check is the hook's,
        // for the connections that need one (`Health::needs_check`).
        let manager = Manager::from_connect(
            settings.config,
            connect,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.wait))
            .create_timeout(Some(settings.create))
            .recycle_timeout(Some(VERIFY_TIMEOUT))
            .pre_recycle(Hook::async_fn(move |client, metrics| {
                let check = checks.needs_check(metrics);
                Box::pin(async move {
                    if !check {
                        return Ok(());
                    }
                    match tokio::time::timeout(VERIFY_TIMEOUT, client.simple_query("")).await {
                        Ok(Ok(_)) => Ok(()),
                        _ => Err(HookError::message("the connection failed its check")),
                    }
                })
            }))
            .build()
            .map_err(|e| fatal(format!("cannot build the connection pool: {e}")))?;
        Ok(Self {
            schema,
            lock_suffix,
            pool,
            health,
        })
    }
}

/// Opens a connection (plain or TLS) and runs the setup statements on it.
struct Connector {
    tls: Option<MakeRustlsConnect>,
    setup: String,
}

type ConnectFuture<'a> = Pin<
    Box<dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>> + Send + 'a>,
>;

impl deadpool_postgres::Connect for Connector {
    fn connect(&self, config: &Config) -> ConnectFuture<'_> {
        let config = config.clone();
        Box::pin(async move {
            // The connection task ends when the client is dropped or the server goes away;
            // the client then reports itself closed and the pool drops it.
            let (client, task) = match &self.tls {
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    (client, tokio::spawn(async move { drop(connection.await) }))
                }
                Some(tls) => {
                    let (client, connection) = config.connect(tls.clone()).await?;
                    (client, tokio::spawn(async move { drop(connection.await) }))
                }
            };
            if !self.setup.is_empty() {
                client.batch_execute(&self.setup).await?;
            }
            Ok((client, task))
        })
    }
}

pub(super) fn worker(
    shared: Arc<Shared>,
    mut requests: mpsc::UnboundedReceiver<Job>,
    ready: std_mpsc::SyncSender<Result<(), StoreError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(fatal(format!("cannot start a tokio runtime: {e}"))));
            return;
        }
    };
    runtime.block_on(async move {
        // Fail fast on a wrong address, credentials or certificate: connect once now (the
        // connection stays in the pool).
        match shared.pool.get().await {
            Ok(conn) => {
                drop(conn);
                let _ = ready.send(Ok(()));
            }
            Err(e) => {
                let _ = ready.send(Err(shared.pool_error(e)));
                return;
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        while let Some((op, reply)) = requests.recv().await {
            let shared = Arc::clone(&shared);
            tasks.spawn(async move {
                let _ = reply.send(shared.run(op).await);
            });
            while tasks.try_join_next().is_some() {}
        }
        // Closed: answer the calls in flight, then drop the connections.
        while tasks.join_next().await.is_some() {}
        shared.pool.close();
    });
}

/// Why an operation failed, before it becomes a [`StoreError`].
pub(super) enum Failure {
    Conflict,
    /// A driver or server error; `true` when it happened while committing (the outcome of
    /// the transaction is then unknown).
    Pg(tokio_postgres::Error, bool),
    Store(StoreError),
}

impl Failure {
    /// The connection is unusable (closed, broken, or the server is going away).
    fn breaks_connection(&self) -> bool {
        match self {
            Failure::Pg(e, _) => match e.code() {
                Some(code) => is_connection_state(code),
                None => is_connection_error(e),
            },
            Failure::Conflict | Failure::Store(_) => false,
        }
    }

    /// Running the operation again on a new connection cannot apply it twice.
    fn safe_to_rerun(&self, op: &Op) -> bool {
        match self {
            Failure::Pg(_, committing) => self.breaks_connection() && (op.is_read() || !committing),
            _ => false,
        }
    }

    pub(super) fn into_store_error(self) -> StoreError {
        match self {
            Failure::Conflict => StoreError::Conflict,
            Failure::Store(e) => e,
            Failure::Pg(e, _) => map_pg_error(&e),
        }
    }
}

fn is_connection_state(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("57P") // admin/crash shutdown (pg_terminate_backend), cannot connect now, …
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
}

fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("timeout")
}

fn map_pg_error(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict;
        }
        let c = code.code();
        let retryable = c.starts_with("40") // serialization failure, deadlock
            || (is_connection_state(code) && *code != SqlState::DATABASE_DROPPED)
            || c.starts_with("53") // insufficient resources (too many connections, …)
            || *code == SqlState::LOCK_NOT_AVAILABLE
            // statement_timeout (and a cancelled query): the work may succeed later.
            || *code == SqlState::QUERY_CANCELED;
        // The server's message names the problem; its `detail` may quote data, so it is left out.
        return StoreError::Backend {
            message: format!("postgres: {} {}: {}", db.severity(), c, db.message()),
            retryable,
        };
    }
    // A certificate refused is not a passing fault: say so, and do not retry it.
    if let Some(refused) = tls::classify(e) {
        return refused;
    }
    let retryable = is_connection_error(e);
    let mut message = format!("postgres: {e}");
    if let Some(io) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>())
    {
        message.push_str(&format!(": {io}"));
    }
    StoreError::Backend { message, retryable }
}

pub(super) struct Conn {
    /// A pooled connection; its statement cache (`prepare_cached`) lives with it.
    pub(super) client: Object,
    /// Set when the connection is in an unknown state (a failed rollback).
    pub(super) poisoned: bool,
}

impl Shared {
    fn pool_error(&self, e: PoolError) -> StoreError {
        match e {
            PoolError::Timeout(TimeoutType::Wait) => {
                let status = self.pool.status();
                StoreError::Backend {
                    message: format!(
                        "postgres: no connection became free within {:?} (all {} in use, {} calls waiting)",
                        self.pool.timeouts().wait.unwrap_or_default(),
                        status.max_size,
                        status.waiting
                    ),
                    retryable: true,
                }
            }
            PoolError::Timeout(TimeoutType::Create) => StoreError::Backend {
                message: format!(
                    "postgres: opening a connection took longer than {:?}",
                    self.pool.timeouts().create.unwrap_or_default()
                ),
                retryable: true,
            },
            PoolError::Timeout(_) => StoreError::Backend {
                message: "postgres: checking an idle connection timed out".to_owned(),
                retryable: true,
            },
            PoolError::Backend(e) => map_pg_error(&e),
            PoolError::Closed => StoreError::Closed,
            other => fatal(format!("connection pool: {other}")),
        }
    }

    /// The pool's statement caches, emptied (after a migration changed the tables).
    pub(super) fn forget_statements(&self) {
        self.pool.manager().statement_caches.clear();
    }

    pub(super) async fn run(&self, op: Op) -> Result<Out, StoreError> {
        let mut rerun = false;
        loop {
            let client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
            let mut conn = Conn {
                client,
                poisoned: false,
            };
            let result = conn.execute(&op, self).await;
            let broken = matches!(&result, Err(f) if f.breaks_connection());
            if broken {
                // Its idle siblings are checked before their next use (see `Health`).
                self.health.mark_broken();
            }
            if broken || conn.poisoned || conn.client.is_closed() {
                // Never back into the pool: taken out, dropped, closed.
                drop(Object::take(conn.client));
            }
            match result {
                Ok(out) => return Ok(out),
                Err(f) if !rerun && f.safe_to_rerun(&op) => rerun = true,
                Err(f) => return Err(f.into_store_error()),
            }
        }
    }
}

impl Conn {
    pub(super) async fn statement(&mut self, sql: &'static str) -> Result<Statement, Failure> {
        self.client
            .prepare_cached(sql)
            .await
            .map_err(|e| Failure::Pg(e, false))
    }

    pub(super) async fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, Failure> {
        let s = self.statement(sql).await?;
        self.client
            .query(&s, params)
            .await
            .map_err(|e| Failure::Pg(e, false))
    }

    /// The first column of the statement's first row, if it returned one (a look-up by
    /// key).
    pub(super) async fn query_value<T: tokio_postgres::types::FromSqlOwned>(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<T>, Failure> {
        self.query(sql, params)
            .await?
            .into_iter()
            .next()
            .map(|r| r.try_get(0).map_err(|e| Failure::Pg(e, false)))
            .transpose()
    }

    pub(super) async fn exec(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<u64, Failure> {
        let s = self.statement(sql).await?;
        self.client
            .execute(&s, params)
            .await
            .map_err(|e| Failure::Pg(e, false))
    }
}
