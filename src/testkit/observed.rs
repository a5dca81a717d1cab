//! A store wrapper that lets a test watch every commit.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{Commit, LinkCommit, LinkStore, Store, StoreError};

/// What an [`ObservedStore`] calls after each commit, with the commit and its result.
pub type CommitObserver<'a> = Box<dyn Fn(&Commit, &Result<(), StoreError>) + Send + Sync + 'a>;

/// What an [`ObservedStore`] commits with instead of the inner store's `commit`: it gets
/// the inner store and the commit, and may change, delay or refuse it (to inject faults).
pub type CommitInterceptor<'a, S> =
    Box<dyn Fn(&S, &Commit) -> Result<(), StoreError> + Send + Sync + 'a>;

/// What an [`ObservedStore`] commits link changes with instead of the inner store's
/// `commit_link` (see [`ObservedStore::intercept_commit_link`]).
pub type LinkCommitInterceptor<'a, S> =
    Box<dyn Fn(&S, &LinkCommit) -> Result<(), StoreError> + Send + Sync + 'a>;

/// Forwards everything to `inner`, counts the commits and those refused with
/// [`StoreError::Conflict`] (evidence that writers really raced), and shows every commit,
/// with its result, to an optional observer (to keep the events as the service made them,
/// say).
///
/// ```
/// use std::sync::Mutex;
/// use bitcoin_checkout::store::MemoryStore;
/// use bitcoin_checkout::testkit::ObservedStore;
///
/// let events = Mutex::new(Vec::new());
/// let store = ObservedStore::new(MemoryStore::new()).on_commit(|commit, result| {
///     if result.is_ok() {
///         events.lock().unwrap().extend(commit.events.iter().cloned());
///     }
/// });
/// assert_eq!((store.commits(), store.conflicts()), (0, 0));
/// # drop(store);
/// assert!(events.lock().unwrap().is_empty());
/// ```
pub struct ObservedStore<'a, S> {
    inner: S,
    commits: AtomicU64,
    conflicts: AtomicU64,
    observer: Option<CommitObserver<'a>>,
    interceptor: Option<CommitInterceptor<'a, S>>,
    link_interceptor: Option<LinkCommitInterceptor<'a, S>>,
}

impl<'a, S> ObservedStore<'a, S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            commits: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            observer: None,
            interceptor: None,
            link_interceptor: None,
        }
    }

    /// Commits through `interceptor` (given the inner store and the commit) instead of
    /// the inner store's `commit`: a fault-injecting store in a few lines.
    ///
    /// ```
    /// use bitcoin_checkout::store::{MemoryStore, Store, StoreError};
    /// use bitcoin_checkout::testkit::ObservedStore;
    ///
    /// // A store that drops the transfers of every change (and fails the conformance suite).
    /// let lossy = ObservedStore::new(MemoryStore::new()).intercept_commit(|inner, commit| {
    ///     let mut commit = commit.clone();
    ///     commit.transfers.clear();
    ///     inner.commit(&commit)
    /// });
    /// # let _ = lossy;
    /// ```
    pub fn intercept_commit(
        mut self,
        interceptor: impl Fn(&S, &Commit) -> Result<(), StoreError> + Send + Sync + 'a,
    ) -> Self {
        self.interceptor = Some(Box::new(interceptor));
        self
    }

    /// Commits link changes through `interceptor` instead of the inner store's
    /// `commit_link`, as [`intercept_commit`](Self::intercept_commit) does for sessions.
    ///
    /// ```
    /// use bitcoin_checkout::store::{LinkStore, MemoryStore, StoreError};
    /// use bitcoin_checkout::testkit::ObservedStore;
    ///
    /// // The link change lands, but its answer is lost on the way back.
    /// let cut = ObservedStore::new(MemoryStore::new()).intercept_commit_link(|inner, commit| {
    ///     inner.commit_link(commit)?;
    ///     Err(StoreError::Backend { message: "connection reset".into(), retryable: true })
    /// });
    /// # let _ = cut;
    /// ```
    pub fn intercept_commit_link(
        mut self,
        interceptor: impl Fn(&S, &LinkCommit) -> Result<(), StoreError> + Send + Sync + 'a,
    ) -> Self {
        self.link_interceptor = Some(Box::new(interceptor));
        self
    }

    /// Calls `observer` after each commit, once the store answered it.
    pub fn on_commit(
        mut self,
        observer: impl Fn(&Commit, &Result<(), StoreError>) + Send + Sync + 'a,
    ) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Commits attempted so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Commits refused with [`StoreError::Conflict`] so far.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S> std::fmt::Debug for ObservedStore<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedStore").finish_non_exhaustive()
    }
}

impl<S: Store> Store for ObservedStore<'_, S> {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let result = match &self.interceptor {
            Some(intercept) => intercept(&self.inner, commit),
            None => self.inner.commit(commit),
        };
        self.commits.fetch_add(1, Ordering::Relaxed);
        if result == Err(StoreError::Conflict) {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(observer) = &self.observer {
            observer(commit, &result);
        }
        result
    }

    crate::forward_store!(inner:
        load, load_if_changed, find_by_transfer, find_by_payment_hash, find_by_address, find_by_payment, list,
        due, events_after, events_before, event, session_events, session_events_after, held_transfers, idempotency,
        claim_idempotency, release_idempotency, prune_idempotency, prune_events, prune_session_events);
}

impl<S: LinkStore> LinkStore for ObservedStore<'_, S> {
    fn commit_link(&self, commit: &LinkCommit) -> Result<(), StoreError> {
        // Counted and observed like session commits are not: the observer's signature
        // takes a session commit, and link tests read the store instead.
        match &self.link_interceptor {
            Some(intercept) => intercept(&self.inner, commit),
            None => self.inner.commit_link(commit),
        }
    }

    crate::forward_store!(inner: load_link, link_sessions, list_links);
}
