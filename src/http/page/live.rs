//! The live status: `GET {page}/{id}/events`, server-sent events.
//!
//! One background poller per [`PageRouter`](super::PageRouter) reads the outbox
//! ([`Checkout::events_after`](crate::Checkout::events_after)) from the newest event at its
//! start, every [`POLL_EVERY`] while pages are open (every [`IDLE_POLL_EVERY`] otherwise,
//! to keep its cursor current), and broadcasts the ids of the sessions that changed. Each
//! stream subscribes, keeps its own session's changes, fetches the session through
//! [`Checkout::get`](crate::Checkout::get) (which quotes on demand) and sends the page's
//! view as an event named `status`. It also fetches when the open quote runs out, so the
//! new quote appears without a change having been committed. The outbox is the source of
//! truth, so this works with many servers sharing one database: a payment recorded by any
//! of them reaches the pages open on every one.
//!
//! A stream sends its first `status` at once, ends after a final status (paid or closed)
//! and at the latest after [`STREAM_LIFETIME`] (the browser reconnects), so a server's
//! graceful shutdown never waits long for open pages.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use futures_util::stream::{self, Stream};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::view::StatusView;
use super::{Shared, error_json, query_have};
use crate::clock::Clock as _;
use crate::http::read;
use crate::id::SessionId;
use crate::service::{ErrorKind, ServiceError};
use crate::store::LinkStore;

/// How often the poller reads the outbox while pages are open.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(250);
/// How often it reads the outbox while no page is open.
pub(crate) const IDLE_POLL_EVERY: Duration = Duration::from_secs(2);
/// Events read from the outbox at once.
const BATCH: usize = 500;
/// Changes buffered for a slow stream; one that falls further behind fetches anyway.
const CHANNEL: usize = 1024;
/// Keep-alive comments on an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A stream ends after this long; the browser's `EventSource` reconnects by itself.
pub(crate) const STREAM_LIFETIME: Duration = Duration::from_secs(60);
/// The reconnection delay the streams ask browsers for.
const RETRY: Duration = Duration::from_secs(1);
/// After a quote's expiry, the margin before fetching its replacement.
const EXPIRY_MARGIN: Duration = Duration::from_millis(200);
/// How soon a stream tries again when the session could not be fetched, or has no quote.
const RETRY_FETCH: Duration = Duration::from_secs(3);
/// Pause of the poller after a failed read of the outbox.
const POLL_RETRY: Duration = Duration::from_secs(1);

/// The poller's side of the live status, shared by the router's streams.
#[derive(Debug)]
pub(super) struct Live {
    /// Ids of the sessions that changed.
    changes: broadcast::Sender<SessionId>,
    /// `true` once the poller found the outbox's newest event: changes after it reach
    /// the streams.
    ready: watch::Sender<bool>,
    /// Set when the poller has been started (on the first stream).
    started: OnceLock<()>,
}

impl Live {
    pub(super) fn new() -> Self {
        Self {
            changes: broadcast::channel(CHANNEL).0,
            ready: watch::channel(false).0,
            started: OnceLock::new(),
        }
    }
}

/// `GET {page}/{id}/events`.
pub(super) async fn events<S: LinkStore + 'static>(
    State(shared): State<Arc<Shared<S>>>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Ok(id) = raw.parse::<SessionId>() else {
        return error_json(ErrorKind::NotFound);
    };
    shared.live.started.get_or_init(|| {
        tokio::spawn(poll_outbox(Arc::downgrade(&shared)));
    });
    // Subscribed before the first fetch: a change committed after that fetch is seen.
    let changes = shared.live.changes.subscribe();
    let ready = shared.live.ready.subscribe();
    let have = query_have(query.as_deref());
    let ready_seen = *ready.borrow();
    let mut stream = LiveStream {
        shared,
        id,
        changes,
        ready_seen,
        ready,
        have,
        wake: None,
        ends: Instant::now() + STREAM_LIFETIME,
        done: false,
        last: None,
    };
    // The first status now: an unknown session is a 404, not an empty stream.
    let first = match stream.fetch().await {
        Ok(Some(event)) => event,
        Ok(None) => Event::default().comment("no status"),
        Err(e) => return error_json(e.kind()),
    };
    let first = first.retry(RETRY);
    let events =
        stream::once(async move { Ok::<_, Infallible>(first) }).chain(stream.into_stream());
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies such as nginx must pass events on at once, not buffer them.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One open page's stream.
struct LiveStream<S> {
    shared: Arc<Shared<S>>,
    id: SessionId,
    changes: broadcast::Receiver<SessionId>,
    ready: watch::Receiver<bool>,
    /// Whether the poller was ready at subscription, or its readiness has been handled.
    ready_seen: bool,
    /// The quote whose QR code the page has.
    have: Option<String>,
    /// When to fetch even without a change (the open quote's expiry, a retry).
    wake: Option<Instant>,
    /// When the stream ends.
    ends: Instant,
    /// After a final status: nothing more to send.
    done: bool,
    /// The JSON of the last view sent, its countdown zeroed (it changes every
    /// millisecond).
    last: Option<String>,
}

impl<S: LinkStore + 'static> LiveStream<S> {
    /// The events after the first.
    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        stream::unfold(self, |mut live| async move {
            loop {
                if live.done || !live.wait().await {
                    return None;
                }
                let event = match live.fetch().await {
                    Ok(Some(event)) => event,
                    // Woken, but the page already shows this: nothing to send.
                    Ok(None) => continue,
                    Err(e) if e.kind() == ErrorKind::NotFound => return None,
                    // The store or the view failed: tell the page nothing, try again soon.
                    Err(_) => {
                        live.wake = Some(Instant::now() + RETRY_FETCH);
                        Event::default().comment("status unavailable, retrying")
                    }
                };
                return Some((Ok(event), live));
            }
        })
    }

    /// Waits until this session may have changed; `false` when the stream should end.
    async fn wait(&mut self) -> bool {
        loop {
            let wake = self.wake.unwrap_or(self.ends).min(self.ends);
            tokio::select! {
                change = self.changes.recv() => match change {
                    Ok(id) if id == self.id => return true,
                    Ok(_) => {}
                    // Missed some changes, maybe this session's: look.
                    Err(broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(broadcast::error::RecvError::Closed) => return false,
                },
                () = tokio::time::sleep_until(wake) => {
                    return Instant::now() < self.ends;
                }
                changed = self.ready.changed(), if !self.ready_seen => {
                    self.ready_seen = true;
                    // Ready now: what changed before the poller's start is fetched once.
                    if changed.is_ok() {
                        return true;
                    }
                }
            }
        }
    }

    /// The session's view as a `status` event (through `get`: quotes on demand); `None`
    /// when it is the view last sent (a wake-up that found no change).
    async fn fetch(&mut self) -> Result<Option<Event>, ServiceError> {
        let id = self.id;
        let session = crate::http::get(&self.shared.checkout, id).await?;
        let now = self.shared.checkout.clock().now();
        let view = StatusView::new(&session, self.have.as_deref(), now, &self.shared.qr)
            .map_err(ServiceError::Request)?;
        self.wake = match &view.quote {
            Some(q) => {
                self.have = Some(q.id.clone());
                let left = Duration::from_millis(u64::try_from(q.expires_in_ms).unwrap_or(0));
                Some(Instant::now() + left + EXPIRY_MARGIN)
            }
            None if view.is_active() => Some(Instant::now() + RETRY_FETCH),
            None => None,
        };
        self.done = !view.is_active();
        // The countdown is the page's own (from `expires_in_ms` when the view changes), so
        // an unchanged view is the same JSON but for that figure: compare without it.
        let mut still = view.clone();
        if let Some(q) = still.quote.as_mut() {
            q.expires_in_ms = 0;
        }
        let (Ok(json), Ok(same)) = (serde_json::to_string(&view), serde_json::to_string(&still))
        else {
            return Ok(Some(
                Event::default().comment("status could not be encoded"),
            ));
        };
        if self.last.as_deref() == Some(same.as_str()) {
            return Ok(None);
        }
        self.last = Some(same);
        Ok(Some(Event::default().event("status").data(json)))
    }
}

/// The poller: finds the outbox's newest event, then reads on from it and broadcasts the
/// sessions that changed. Ends when the router and all its streams are gone.
async fn poll_outbox<S: LinkStore + 'static>(shared: Weak<Shared<S>>) {
    let mut cursor = loop {
        let Some(s) = shared.upgrade() else { return };
        match newest_seq(&s).await {
            Ok(seq) => break seq,
            Err(_) => {
                drop(s);
                tokio::time::sleep(POLL_RETRY).await;
            }
        }
    };
    if let Some(s) = shared.upgrade() {
        s.live.ready.send_replace(true);
    }
    let mut idle_since = Instant::now();
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        let Some(s) = shared.upgrade() else { return };
        if s.live.changes.receiver_count() == 0 {
            if idle_since.elapsed() < IDLE_POLL_EVERY {
                continue;
            }
            idle_since = Instant::now();
        }
        loop {
            let after = cursor;
            let batch = match read(&s.checkout, move |c| c.events_after(after, BATCH)).await {
                Ok(batch) => batch,
                Err(_) => {
                    drop(s);
                    tokio::time::sleep(POLL_RETRY).await;
                    break;
                }
            };
            let full = batch.len() >= BATCH;
            let mut changed: Vec<SessionId> = Vec::new();
            for stored in &batch {
                cursor = Some(stored.seq);
                if let Some(id) = stored.event.session_id
                    && !changed.contains(&id)
                {
                    changed.push(id);
                }
            }
            for id in changed {
                // No receiver is not an error: nobody is looking.
                let _ = s.live.changes.send(id);
            }
            if !full {
                break;
            }
        }
    }
}

/// The newest event's sequence number (`None`: the outbox is empty), found by bisection
/// with reads of one event (`events_after(x, 1)`): about 60 indexed reads at most,
/// however long the outbox, instead of reading all of it.
///
/// Events committed during the search may or may not be counted: either way is right,
/// since the streams fetch their session once the poller is ready, after the search.
async fn newest_seq<S: LinkStore + 'static>(s: &Shared<S>) -> Result<Option<u64>, ServiceError> {
    // The first event at or above `from`.
    let first_from = |from: u64| {
        let checkout = Arc::clone(&s.checkout);
        async move {
            let after = from.saturating_sub(1);
            let found = read(&checkout, move |c| c.events_after(Some(after), 1)).await?;
            Ok::<_, ServiceError>(found.first().map(|e| e.seq))
        }
    };
    let Some(mut best) = first_from(1).await? else {
        return Ok(None);
    };
    // `best` is an event; none lies at or above `hi` (stores keep sequence numbers
    // within i64; a store that does not is followed below).
    let mut hi = i64::MAX.unsigned_abs();
    while hi.saturating_sub(best) > 1 {
        let mid = best + (hi - best) / 2;
        match first_from(mid).await? {
            Some(seq) => {
                best = best.max(seq);
                hi = hi.max(best.saturating_add(1));
            }
            None => hi = mid,
        }
    }
    Ok(Some(best))
}
