//! Redlock (feature `redlock`): one lock over N independent Redis servers, granted by a
//! majority of them, so that any minority may fail, stall or restart.
//!
//! Each server is a [`RedisStore`] of its own (its connection, its release notifications,
//! its restart hold), and every call goes to all of them at once:
//! - **acquire** sends the same token to every server and is granted once a majority
//!   (N/2+1) took it while the lease, counted from before the first request and less the
//!   drift margin, still has time left. It returns as soon as the answers decide: a slow
//!   server does not hold back a quick majority. Otherwise it takes the lock back on every
//!   server that took it or may have (those still answering included, in the background)
//!   and says why: `Busy`, `Recovering`, or [`NoQuorum`] when too many servers failed;
//! - **release** and **extend** count as done with a majority; extend also only inside
//!   the lease's time;
//! - a server that **restarted** (a new `run_id`) grants nothing for the longest TTL (the
//!   delayed restart of the Redlock paper): each server's store holds itself back exactly as
//!   a single server does, and a held server just does not count towards the majority.
//!   A server unreachable at connect is connected in the background, and held back for
//!   the longest TTL if it started less than that ago;
//! - **waiting** listens to the release notifications of every server that subscribes
//!   in time, at least a majority (one subscription per server per lock in the process):
//!   a release that counts publishes on a majority, so one of them is heard.
//!
//! There are no fencing tokens: no single counter orders the acquisitions of independent
//! servers.

use std::{
    future::Future as _,
    sync::{Arc, OnceLock, Weak},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use self::gather::{finish_in_background, gather, Gathered, NodeCall};
use super::{
    redis::{endpoint, Endpoint, RedisSettings},
    AcquireRequest, Attempt, CallTimedOut, NoQuorum, RedisStore, Store, StoreError, StoreFuture,
    Watch,
};
use crate::{error::LockError, lease::drift_margin, redact, token::Token};

mod gather;

/// How long a server unreachable at connect waits between two tries.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Why an acquire with a fencing token is refused.
const NO_FENCING: &str = "fencing tokens are not available on a Redlock backend: no single \
     counter orders the acquisitions of independent servers. Use one Redis server (with \
     replicas and Sentinel if need be) or a Redis Cluster for fenced locks";

/// Locks kept on several independent Redis servers; see the module documentation.
pub(crate) struct RedlockStore {
    nodes: Arc<Nodes>,
    /// The time bound on one server's call, and on each call of this store.
    bound: Duration,
}

impl std::fmt::Debug for RedlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addresses: Vec<&str> = self.nodes.nodes.iter().map(|n| &*n.address).collect();
        f.debug_struct("RedlockStore")
            .field("servers", &addresses)
            .finish_non_exhaustive()
    }
}

struct Nodes {
    nodes: Vec<Node>,
    /// How many servers must agree: a majority.
    quorum: usize,
}

/// One server: its address for messages (no password), and its store once connected.
struct Node {
    address: String,
    store: OnceLock<RedisStore>,
}

impl Nodes {
    fn store(&self, index: usize) -> Result<&RedisStore, StoreError> {
        let node = &self.nodes[index];
        node.store
            .get()
            .ok_or_else(|| format!("Redis server {} is not connected yet", node.address).into())
    }

    fn count(&self) -> u32 {
        u32::try_from(self.nodes.len()).unwrap_or(u32::MAX)
    }

    fn no_quorum(&self, failed: usize, source: Option<StoreError>) -> StoreError {
        Box::new(NoQuorum {
            failed: u32::try_from(failed).unwrap_or(u32::MAX),
            nodes: self.count(),
            needed: u32::try_from(self.quorum).unwrap_or(u32::MAX),
            source,
        })
    }
}

/// `release` on server `index`, owning what it needs.
fn release_on(nodes: &Arc<Nodes>, index: usize, key: &Arc<str>, token: Token) -> NodeCall<bool> {
    let (nodes, key) = (nodes.clone(), key.clone());
    Box::pin(async move { nodes.store(index)?.release(&key, &token).await })
}

impl RedlockStore {
    /// Connects to every server in `urls` at once (each within the time bound of
    /// `settings`); succeeds once a majority is connected and keeps trying the others in
    /// the background.
    pub(crate) async fn connect(
        urls: &[String],
        tls_root: Option<Vec<u8>>,
        settings: RedisSettings,
    ) -> Result<Self, LockError> {
        if urls.is_empty() {
            return Err(LockError::invalid(
                "Redlock needs at least one Redis server",
            ));
        }
        // Every URL is checked before any connection is made.
        let endpoints = urls
            .iter()
            .map(|url| endpoint(url, tls_root.clone()))
            .collect::<Result<Vec<Endpoint>, LockError>>()?;
        let nodes = Arc::new(Nodes {
            nodes: urls
                .iter()
                .map(|url| Node {
                    address: redact::url(url),
                    store: OnceLock::new(),
                })
                .collect(),
            quorum: urls.len() / 2 + 1,
        });
        if urls.len().is_multiple_of(2) {
            tracing::warn!(
                servers = urls.len(),
                "Redlock over an even number of servers tolerates no more failures than one \
                 server fewer would, and needs {} of them to agree",
                nodes.quorum
            );
        }
        let attempts: Vec<_> = endpoints
            .iter()
            .zip(urls)
            .map(|(endpoint, url)| {
                let (endpoint, url, settings) = (endpoint.clone(), url.clone(), settings.clone());
                tokio::spawn(async move {
                    RedisStore::connect(endpoint, redact::password(&url), settings).await
                })
            })
            .collect();
        let mut failures = Vec::new();
        for (index, attempt) in attempts.into_iter().enumerate() {
            let outcome = attempt.await.unwrap_or_else(|e| {
                Err(LockError::Backend {
                    operation: "connect",
                    source: e.to_string().into(),
                })
            });
            match outcome {
                Ok(store) => {
                    let _ = nodes.nodes[index].store.set(store);
                }
                Err(error) => failures.push((index, error)),
            }
        }
        if urls.len() - failures.len() < nodes.quorum {
            let failed = failures.len();
            let source = failures
                .into_iter()
                .next()
                .map(|(_, e)| Box::new(e) as StoreError);
            return Err(LockError::NoQuorum {
                operation: "connect",
                failed: u32::try_from(failed).unwrap_or(u32::MAX),
                nodes: nodes.count(),
                needed: u32::try_from(nodes.quorum).unwrap_or(u32::MAX),
                source,
            });
        }
        for (index, error) in failures {
            tracing::warn!(
                server = %nodes.nodes[index].address,
                %error,
                "a Redlock server is unreachable; connecting to it in the background"
            );
            let late = RedisSettings {
                // It may have restarted while out of reach: hold it back if it is young.
                strict: true,
                ..settings.clone()
            };
            let (endpoint, url) = (endpoints[index].clone(), urls[index].clone());
            tokio::spawn(connect_later(
                Arc::downgrade(&nodes),
                index,
                endpoint,
                url,
                late,
            ));
        }
        Ok(Self {
            nodes,
            bound: settings.bound,
        })
    }

    /// Takes back a lock that was not granted: on the servers in `taken` (they took it, or
    /// failed and may have), and on those in `pending` that take it or fail once they
    /// answer. Waits at most until the time bound of the acquire that `started` runs out;
    /// the rest goes on in the background.
    async fn take_back(
        &self,
        key: &Arc<str>,
        token: Token,
        taken: Vec<usize>,
        pending: Vec<(usize, NodeCall<Attempt>)>,
        started: Instant,
    ) {
        let mut undo: Vec<NodeCall<bool>> = taken
            .into_iter()
            .map(|index| release_on(&self.nodes, index, key, token))
            .collect();
        for (index, call) in pending {
            let release = release_on(&self.nodes, index, key, token);
            undo.push(Box::pin(async move {
                match call.await {
                    Ok(Attempt::Acquired { .. }) | Err(_) => release.await,
                    Ok(_) => Ok(false),
                }
            }));
        }
        if undo.is_empty() {
            return;
        }
        let task = tokio::spawn(gather(undo, None, |_, _| false));
        let left = (started + self.bound).saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, task).await;
    }

    /// Why an acquire that no majority granted was refused, from the servers' answers
    /// (`late`: the calls that did not answer before the deadline).
    fn refusal(
        &self,
        answers: Vec<Option<Result<Attempt, StoreError>>>,
        late: usize,
    ) -> Result<Attempt, StoreError> {
        let mut failed = late;
        let mut first_error = None;
        let (mut busy, mut busy_left, mut any_busy_unknown) = (0, None::<Duration>, false);
        let mut recovering = None::<Duration>;
        let mut granted = 0;
        for answer in answers.into_iter().flatten() {
            match answer {
                Ok(Attempt::Acquired { .. }) => granted += 1,
                Ok(Attempt::BusyFor { left }) => {
                    busy += 1;
                    busy_left = Some(busy_left.map_or(left, |l| l.min(left)));
                }
                Ok(Attempt::Recovering { left }) => {
                    recovering = Some(recovering.map_or(left, |l| l.max(left)));
                }
                Ok(_) => {
                    busy += 1;
                    any_busy_unknown = true;
                }
                Err(error) => {
                    failed += 1;
                    first_error.get_or_insert(error);
                }
            }
        }
        if granted >= self.nodes.quorum {
            // A majority granted, but too late: the lease would already be over.
            return Err(Box::new(CallTimedOut));
        }
        if failed > self.nodes.nodes.len() - self.nodes.quorum {
            return Err(self.nodes.no_quorum(failed, first_error));
        }
        if busy > 0 {
            return Ok(match busy_left {
                Some(left) if !any_busy_unknown => Attempt::BusyFor { left },
                _ => Attempt::Busy,
            });
        }
        match recovering {
            Some(left) => Ok(Attempt::Recovering { left }),
            None => Err(self.nodes.no_quorum(failed, first_error)),
        }
    }
}

/// Connects to server `index` until it answers, then puts it to use; ends early if the
/// store is dropped.
async fn connect_later(
    nodes: Weak<Nodes>,
    index: usize,
    endpoint: Endpoint,
    url: String,
    settings: RedisSettings,
) {
    loop {
        tokio::time::sleep(RECONNECT_EVERY).await;
        if nodes.strong_count() == 0 {
            return;
        }
        let connected =
            RedisStore::connect(endpoint.clone(), redact::password(&url), settings.clone()).await;
        let Some(nodes) = nodes.upgrade() else { return };
        if let Ok(store) = connected {
            tracing::info!(server = %nodes.nodes[index].address, "a Redlock server is connected");
            let _ = nodes.nodes[index].store.set(store);
            return;
        }
    }
}

/// How many answers are `Ok(true)`.
fn yes(answers: &[Option<Result<bool, StoreError>>]) -> usize {
    answers
        .iter()
        .filter(|a| matches!(a, Some(Ok(true))))
        .count()
}

impl RedlockStore {
    /// The outcome of a release or extend sent to every server: done by a majority (by
    /// `deadline`, if there is one), `false` when too few servers still held the lock,
    /// [`NoQuorum`] when the servers that failed (or, past the deadline, did not answer)
    /// leave it open.
    fn settled(
        &self,
        gathered: Gathered<bool>,
        deadline: Option<Instant>,
    ) -> Result<bool, StoreError> {
        let quorum = self.nodes.quorum;
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        let running = gathered.pending.len();
        finish_in_background(gathered.pending);
        let done = yes(&gathered.answers);
        if done >= quorum && !late {
            return Ok(true);
        }
        let mut first_error = None;
        let mut failed = if late { running } else { 0 };
        for answer in gathered.answers.into_iter().flatten() {
            if let Err(error) = answer {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
        if done >= quorum || done + failed + running < quorum {
            // Done too late, or too few still held the lock whatever the others say.
            return Ok(false);
        }
        Err(self.nodes.no_quorum(failed, first_error))
    }
}

impl Store for RedlockStore {
    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        Box::pin(async move {
            let started = Instant::now();
            let validity = request.ttl - drift_margin(request.ttl);
            let key: Arc<str> = request.key.into();
            let token = *request.token;
            let (reclaim, waiting, ttl) = (request.reclaim, request.waiting, request.ttl);
            let calls = (0..self.nodes.nodes.len())
                .map(|index| {
                    let (nodes, key) = (self.nodes.clone(), key.clone());
                    Box::pin(async move {
                        let request = AcquireRequest {
                            key: &key,
                            token: &token,
                            ttl,
                            fence_key: None,
                            reclaim,
                            waiting,
                        };
                        nodes.store(index)?.try_acquire(request).await
                    }) as NodeCall<Attempt>
                })
                .collect();
            let quorum = self.nodes.quorum;
            let granted = |answers: &[Option<Result<Attempt, StoreError>>]| {
                answers
                    .iter()
                    .filter(|a| matches!(a, Some(Ok(Attempt::Acquired { .. }))))
                    .count()
            };
            let deadline = started + validity.min(self.bound);
            let gathered = gather(calls, Some(deadline), |answers, running| {
                let granted = granted(answers);
                granted >= quorum || granted + running < quorum
            })
            .await;
            if granted(&gathered.answers) >= quorum && started.elapsed() < validity {
                finish_in_background(gathered.pending);
                return Ok(Attempt::Acquired { fence: None });
            }
            let Gathered { answers, pending } = gathered;
            let taken = answers
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, Some(Ok(Attempt::Acquired { .. }) | Err(_))))
                .map(|(index, _)| index)
                .collect();
            let late = if Instant::now() >= deadline {
                pending.len()
            } else {
                0
            };
            let refusal = self.refusal(answers, late);
            self.take_back(&key, token, taken, pending, started).await;
            refusal
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let key: Arc<str> = key.into();
            let calls = (0..self.nodes.nodes.len())
                .map(|index| release_on(&self.nodes, index, &key, *token))
                .collect();
            let quorum = self.nodes.quorum;
            let gathered = gather(calls, None, |answers, running| {
                let done = yes(answers);
                done >= quorum || done + running < quorum
            })
            .await;
            self.settled(gathered, None)
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let started = Instant::now();
            let validity = ttl - drift_margin(ttl);
            let key: Arc<str> = key.into();
            let token = *token;
            let calls = (0..self.nodes.nodes.len())
                .map(|index| {
                    let (nodes, key) = (self.nodes.clone(), key.clone());
                    Box::pin(async move { nodes.store(index)?.extend(&key, &token, ttl).await })
                        as NodeCall<bool>
                })
                .collect();
            let quorum = self.nodes.quorum;
            let deadline = started + validity.min(self.bound);
            let gathered = gather(calls, Some(deadline), |answers, running| {
                let done = yes(answers);
                done >= quorum || done + running < quorum
            })
            .await;
            self.settled(gathered, Some(deadline))
        })
    }

    fn watch<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Watch> {
        Box::pin(async move {
            let calls = (0..self.nodes.nodes.len())
                .map(|index| {
                    let (nodes, key) = (self.nodes.clone(), key.to_owned());
                    Box::pin(async move { nodes.store(index)?.watch(&key).await })
                        as NodeCall<Watch>
                })
                .collect();
            // A release that counts deletes the key on a majority, and publishes on each of
            // them: a majority of watches hears at least one of those. A server slow to
            // subscribe (or stalled) is left out.
            let quorum = self.nodes.quorum;
            let gathered = gather(calls, None, |answers, _| {
                answers.iter().filter(|a| matches!(a, Some(Ok(_)))).count() >= quorum
            })
            .await;
            let watches: Vec<Watch> = gathered.answers.into_iter().flatten().flatten().collect();
            Ok(merged(watches))
        })
    }

    /// Every server's call is bounded by the time bound (its store's own), and they run at
    /// once; an acquire also waits for its take-back at most until the bound ends.
    fn bounds_own_calls(&self) -> bool {
        true
    }

    fn fencing_unavailable(&self) -> Option<&'static str> {
        Some(NO_FENCING)
    }
}

/// One watch that fires when any of `watches` does: a task forwards their notifications
/// for as long as the merged watch lives.
fn merged(mut watches: Vec<Watch>) -> Watch {
    if watches.len() <= 1 {
        return watches.pop().unwrap_or_else(Watch::none);
    }
    let merged = Arc::new(Notify::new());
    let sources: Vec<Arc<Notify>> = watches.iter().map(Watch::shared_notify).collect();
    let forward = tokio::spawn(forward(sources, merged.clone()));
    Watch::new(merged, (watches, AbortOnDrop(forward.abort_handle())))
}

/// Notifies `merged`'s waiters each time one of `sources` is notified.
async fn forward(sources: Vec<Arc<Notify>>, merged: Arc<Notify>) {
    loop {
        let mut notified: Vec<_> = sources.iter().map(|n| Box::pin(n.notified())).collect();
        for one in &mut notified {
            one.as_mut().enable();
        }
        std::future::poll_fn(|cx| {
            if notified.iter_mut().any(|n| n.as_mut().poll(cx).is_ready()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        merged.notify_waiters();
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
