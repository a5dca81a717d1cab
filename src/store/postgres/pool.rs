//! The store's background thread: a current-thread runtime with a small pool of
//! connections, the mapping of driver errors, and re-running what is safe to re-run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use tokio::sync::{Semaphore, mpsc};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::ops::{Job, Op, Out};
use super::sql::Params;
use super::{fatal, lock};
use crate::store::StoreError;

pub(super) struct Shared {
    pub(super) config: Config,
    /// The store's own schema, if any.
    pub(super) schema: Option<String>,
    /// `SET search_path …` for a store in its own schema.
    pub(super) search_path: Option<String>,
    pub(super) lock_suffix: u32,
    pub(super) idle: Mutex<Vec<Conn>>,
    pub(super) permits: Semaphore,
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
        // Fail fast on a wrong address or credentials: make the first connection now.
        match shared.connect().await {
            Ok(conn) => {
                lock(&shared.idle).push(conn);
                let _ = ready.send(Ok(()));
            }
            Err(e) => {
                let _ = ready.send(Err(Failure::Pg(e, false).into_store_error()));
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
        lock(&shared.idle).clear();
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
            || *code == SqlState::QUERY_CANCELED;
        // The server's message names the problem; its `detail` may quote data, so it is left out.
        return StoreError::Backend {
            message: format!("postgres: {} {}: {}", db.severity(), c, db.message()),
            retryable,
        };
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
    pub(super) client: Client,
    pub(super) statements: HashMap<&'static str, Statement>,
    /// Set when the connection is in an unknown state (a failed rollback).
    pub(super) poisoned: bool,
}

impl Shared {
    async fn connect(&self) -> Result<Conn, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; the client then
            // reports itself closed and is replaced.
            let _ = connection.await;
        });
        if let Some(sql) = &self.search_path {
            client.batch_execute(sql).await?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
            poisoned: false,
        })
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = lock(&self.idle);
        while let Some(conn) = idle.pop() {
            if !conn.client.is_closed() && !conn.poisoned {
                return Some(conn);
            }
        }
        None
    }

    pub(super) async fn run(&self, op: Op) -> Result<Out, StoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let mut rerun = false;
        loop {
            // After a lost connection, do not trust the other idle ones: connect anew.
            let reused = if rerun { None } else { self.take_idle() };
            let mut conn = match reused {
                Some(conn) => conn,
                None => self
                    .connect()
                    .await
                    .map_err(|e| Failure::Pg(e, false).into_store_error())?,
            };
            let result = conn.execute(&op, self).await;
            let broken = match &result {
                Ok(_) => false,
                Err(f) => f.breaks_connection(),
            };
            if !broken && !conn.poisoned && !conn.client.is_closed() {
                lock(&self.idle).push(conn);
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
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| Failure::Pg(e, false))?;
        self.statements.insert(sql, s.clone());
        Ok(s)
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
