//! One runner for the background work (feature `runner`, tokio): the sweep, the webhook
//! dispatcher and the settlement listeners, each on its own schedule, with their health,
//! stopped gracefully.
//!
//! Each job is a synchronous pass (a [`Checkout::sweep`], a [`Dispatcher::run_once`], a
//! [`SettlementListener::poll`]) that the runner calls on tokio's blocking pool, waits
//! for, then sleeps `every` before the next one: passes of one job never overlap, and a
//! slow pass delays only its own job. [`Runner::stop`] lets every pass in flight finish
//! (a listener saves its resume point at the end of its pass) and starts no new one; a
//! pass that fails is recorded in [`JobHealth`] and the job goes on at its next tick (the
//! work of every job here is safe to run again).
//!
//! On many servers, give each runner the servers' shared [`Leases`]
//! ([`RunnerBuilder::leases`]): before each pass a job claims the lease named after it, so
//! each job runs on one server at a time while the others stand by
//! ([`JobHealth::standing_by`]); when the holder dies, another server takes the job over
//! once its lease runs out, and a graceful [`Runner::stop`] hands it over at once.
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bitcoin_checkout::runner::RunnerBuilder;
//! use bitcoin_checkout::{rates::FixedRates, request::TestRequestGenerator, store::MemoryStore, Checkout};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let checkout = Arc::new(Checkout::new(MemoryStore::new(), FixedRates::new(), TestRequestGenerator));
//! let runner = RunnerBuilder::new()
//!     .sweep(checkout.clone(), Duration::from_secs(5), 100)
//!     .start();
//! assert_eq!(runner.health()[0].name, "sweep");
//! runner.stop().await;
//! # });
//! # }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::LightningBackend;
use crate::clock::Clock;
use crate::lease::Leases;
use crate::listener::SettlementListener;
use crate::rates::RateSource;
use crate::request::PaymentRequestGenerator;
use crate::service::Checkout;
use crate::store::{ResumeStore, Store, StoreError};
#[cfg(feature = "webhooks")]
use crate::webhook::{DeliveryStore, Dispatcher, WebhookSender};

/// One pass of a job: `Ok` or what went wrong, as text (never a secret: the crate's
/// errors hold none).
type Work = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

struct Job {
    name: String,
    every: Duration,
    work: Work,
}

/// The leases a runner's jobs claim, whatever their store and clock.
trait Claims: Send + Sync {
    fn claim(&self, work: &str) -> Result<bool, StoreError>;
    fn release(&self, work: &str) -> Result<(), StoreError>;
}

impl<R: ResumeStore, C: Clock> Claims for Leases<R, C> {
    fn claim(&self, work: &str) -> Result<bool, StoreError> {
        Leases::claim(self, work)
    }
    fn release(&self, work: &str) -> Result<(), StoreError> {
        Leases::release(self, work)
    }
}

type SharedClaims = Option<Arc<dyn Claims>>;

/// What a pass did.
enum Pass {
    Ran,
    /// Another server holds the job's lease.
    StoodBy,
}

/// How one job has been doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobHealth {
    /// The job's name (`sweep`, `dispatcher`, `listener:<name>`, or the one given).
    pub name: String,
    /// Passes finished, successful or not.
    pub runs: u64,
    /// Failed passes since the last successful one (0: healthy).
    pub failures_in_a_row: u32,
    /// When the last successful pass ended.
    pub last_success: Option<Instant>,
    /// What the last failed pass said, until a pass succeeds.
    pub last_error: Option<String>,
    /// Whether the last tick found another server holding the job's lease (with
    /// [`RunnerBuilder::leases`]): the job stands by, and takes over if that server stops.
    pub standing_by: bool,
}

/// The jobs a [`Runner`] will run.
#[derive(Default)]
pub struct RunnerBuilder {
    jobs: Vec<Job>,
    leases: SharedClaims,
}

impl std::fmt::Debug for RunnerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
        f.debug_struct("RunnerBuilder")
            .field("jobs", &names)
            .field("leases", &self.leases.is_some())
            .finish()
    }
}

impl RunnerBuilder {
    /// No jobs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every job on one server at a time: before each pass the job claims the lease
    /// named after it (`sweep`, `dispatcher`, `listener:<name>`, …) in `leases`, shared by
    /// all servers, and stands the tick by if another server holds it. See
    /// [`lease`](crate::lease).
    pub fn leases<R, C>(mut self, leases: Leases<R, C>) -> Self
    where
        R: ResumeStore + 'static,
        C: Clock + 'static,
    {
        self.leases = Some(Arc::new(leases));
        self
    }

    /// Runs `work` every `every` (after each pass ends) under `name`.
    pub fn job<E: std::fmt::Display>(
        mut self,
        name: impl Into<String>,
        every: Duration,
        work: impl Fn() -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.jobs.push(Job {
            name: name.into(),
            every,
            work: Arc::new(move || work().map_err(|e| e.to_string())),
        });
        self
    }

    /// The sweep ([`Checkout::sweep`] of up to `limit` due sessions) as job `sweep`.
    pub fn sweep<S, R, G, C>(
        self,
        checkout: Arc<Checkout<S, R, G, C>>,
        every: Duration,
        limit: usize,
    ) -> Self
    where
        S: Store + 'static,
        R: RateSource + 'static,
        G: PaymentRequestGenerator + 'static,
        C: Clock + 'static,
    {
        self.job("sweep", every, move || checkout.sweep(limit).map(drop))
    }

    /// Idempotency records older than the service's window deleted, up to `limit` a
    /// pass ([`Checkout::prune_idempotency`]), as job `retention`.
    pub fn retention<S, R, G, C>(
        self,
        checkout: Arc<Checkout<S, R, G, C>>,
        every: Duration,
        limit: usize,
    ) -> Self
    where
        S: Store + 'static,
        R: RateSource + 'static,
        G: PaymentRequestGenerator + 'static,
        C: Clock + 'static,
    {
        self.job("retention", every, move || {
            checkout.prune_idempotency(limit).map(drop)
        })
    }

    /// A settlement listener's [`poll`](SettlementListener::poll) as job
    /// `listener:<its name>`.
    pub fn listener<B, S, R, G, C>(
        self,
        listener: SettlementListener<B>,
        checkout: Arc<Checkout<S, R, G, C>>,
        every: Duration,
    ) -> Self
    where
        B: LightningBackend + 'static,
        S: Store + ResumeStore + 'static,
        R: RateSource + 'static,
        G: PaymentRequestGenerator + 'static,
        C: Clock + 'static,
    {
        let name = format!("listener:{}", listener.name());
        self.job(name, every, move || listener.poll(&checkout).map(drop))
    }

    /// The webhook dispatcher's [`run_once`](Dispatcher::run_once) as job `dispatcher`.
    #[cfg(feature = "webhooks")]
    pub fn dispatcher<S, T, C>(self, dispatcher: Dispatcher<S, T, C>, every: Duration) -> Self
    where
        S: Store + DeliveryStore + 'static,
        T: WebhookSender + 'static,
        C: Clock + 'static,
    {
        self.job("dispatcher", every, move || dispatcher.run_once().map(drop))
    }

    /// Starts every job on the current tokio runtime (call it from inside one).
    pub fn start(self) -> Runner {
        let (stop, stopped) = watch::channel(false);
        let health: Vec<Arc<Mutex<JobHealth>>> = self
            .jobs
            .iter()
            .map(|job| {
                Arc::new(Mutex::new(JobHealth {
                    name: job.name.clone(),
                    runs: 0,
                    failures_in_a_row: 0,
                    last_success: None,
                    last_error: None,
                    standing_by: false,
                }))
            })
            .collect();
        let names = self.jobs.iter().map(|j| j.name.clone()).collect();
        let tasks = self
            .jobs
            .into_iter()
            .zip(&health)
            .map(|(job, health)| {
                tokio::spawn(run_job(
                    job,
                    self.leases.clone(),
                    health.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        Runner {
            stop,
            tasks,
            health,
            leases: self.leases,
            names,
        }
    }
}

/// The loop of one job: a pass, then a sleep that a stop cuts short; never a stop in
/// the middle of a pass.
async fn run_job(
    job: Job,
    leases: SharedClaims,
    health: Arc<Mutex<JobHealth>>,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        let work = job.work.clone();
        let leases = leases.clone();
        let name = job.name.clone();
        let pass = move || {
            if let Some(leases) = &leases
                && !leases.claim(&name).map_err(|e| e.to_string())?
            {
                return Ok(Pass::StoodBy);
            }
            work().map(|()| Pass::Ran)
        };
        let outcome = match tokio::task::spawn_blocking(pass).await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => Err("the pass panicked".to_owned()),
            Err(_) => Err("the pass was cancelled".to_owned()),
        };
        {
            let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
            h.runs += 1;
            match outcome {
                Ok(pass) => {
                    h.failures_in_a_row = 0;
                    h.last_success = Some(Instant::now());
                    h.last_error = None;
                    h.standing_by = matches!(pass, Pass::StoodBy);
                }
                Err(e) => {
                    h.failures_in_a_row = h.failures_in_a_row.saturating_add(1);
                    h.last_error = Some(e);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(job.every) => {}
            // A stop (or the runner dropped) ends the sleep; the loop's check ends the job.
            _ = stopped.changed() => {}
        }
        if stopped.has_changed().is_err() {
            break;
        }
    }
}

/// The running jobs. Dropping it without [`stop`](Self::stop) also ends them after their
/// pass in flight, but nothing waits for that.
pub struct Runner {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    health: Vec<Arc<Mutex<JobHealth>>>,
    leases: SharedClaims,
    /// The jobs' names: the leases to hand over on stop.
    names: Vec<String>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("jobs", &self.names)
            .field("leases", &self.leases.is_some())
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// Every job's health, in the order they were added.
    pub fn health(&self) -> Vec<JobHealth> {
        self.health
            .iter()
            .map(|h| h.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Whether every job's last pass succeeded (a job that has not finished one yet
    /// counts as healthy).
    pub fn is_healthy(&self) -> bool {
        self.health().iter().all(|h| h.failures_in_a_row == 0)
    }

    /// Stops gracefully: no new pass starts, and this returns once every pass in flight
    /// has finished (listeners' resume points saved).
    pub async fn stop(self) {
        // Receivers may all be gone already (every job ended); nothing to tell then.
        let _ = self.stop.send(true);
        for task in self.tasks {
            // A job's own panics are caught per pass; a join error here means the runtime
            // is shutting down, and there is nothing left to wait for.
            let _ = task.await;
        }
        // Hand the jobs over now rather than after the leases' time to live. A failure
        // only delays the takeover until then.
        if let Some(leases) = self.leases {
            let names = self.names;
            let _ = tokio::task::spawn_blocking(move || {
                for name in &names {
                    let _ = leases.release(name);
                }
            })
            .await;
        }
    }
}
