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
//!   and says why: `Busy`, `Recovering`, or [`StoreError::NoQuorum`] when too many servers failed;
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
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use self::{
    gather::{all, Gathering},
    watch::merged,
};
use super::{
    braced_key, braced_name, AcquireRequest, Attempt, Capabilities, Operators, RedisStore, Store,
    StoreError, StoreFuture, Watch,
};
use crate::{store::drift_margin, token::Token};

mod connect;
mod gather;
mod operate;
mod watch;

/// The least time a refused acquire or a release gives servers slower than the majority to
/// answer before asking them to delete the key again (at least as long as the majority
/// took).
const STRAGGLER_GRACE: Duration = Duration::from_millis(1);

/// How long a server unreachable at connect waits between two tries.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Why an acquire with a fencing token is refused.
const NO_FENCING: &str = "no single \
     counter orders the acquisitions of Redlock's independent servers. Use one Redis server (with \
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
    /// `call` on the store of every server in `indices` (all of them: `None`); a server not
    /// connected yet fails at once.
    fn each<'a, T: Send + 'a>(
        &'a self,
        indices: Option<&[usize]>,
        call: impl Fn(&'a RedisStore) -> StoreFuture<'a, T>,
    ) -> Vec<StoreFuture<'a, T>> {
        let one = |node: &'a Node| match node.store.get() {
            Some(store) => call(store),
            None => {
                let error = format!("Redis server {} is not connected yet", node.address);
                Box::pin(std::future::ready(Err(error.into()))) as StoreFuture<'a, T>
            }
        };
        match indices {
            None => self.nodes.iter().map(one).collect(),
            Some(indices) => indices.iter().map(|&i| one(&self.nodes[i])).collect(),
        }
    }

    /// Deletes `key` if it holds `token` on the servers in `indices`, in the background;
    /// what the servers say is ignored (the next holder's acquire is the judge).
    fn release_in_background(
        self: &Arc<Self>,
        indices: Vec<usize>,
        key: &str,
        token: Token,
    ) -> tokio::task::JoinHandle<()> {
        let (nodes, key) = (self.clone(), key.to_owned());
        tokio::spawn(async move {
            all(
                nodes.each(Some(&indices), |store| store.release(&key, &token)),
                None,
            )
            .await;
        })
    }

    fn count(&self) -> u32 {
        u32::try_from(self.nodes.len()).unwrap_or(u32::MAX)
    }

    fn no_quorum(&self, failed: usize, source: Option<StoreError>) -> StoreError {
        StoreError::NoQuorum {
            failed: u32::try_from(failed).unwrap_or(u32::MAX),
            nodes: self.count(),
            needed: u32::try_from(self.quorum).unwrap_or(u32::MAX),
            source: source.map(Box::new),
        }
    }
}

impl RedlockStore {
    /// Takes back a lock that was not granted, on the servers in `taken` (they took it,
    /// failed, or had not answered, and may have). Waits at most until the time bound of the
    /// acquire that `started` runs out; the rest goes on in the background.
    async fn take_back(&self, key: &str, token: Token, taken: Vec<usize>, started: Instant) {
        if taken.is_empty() {
            return;
        }
        let task = self.nodes.release_in_background(taken, key, token);
        let left = (started + self.bound).saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, task).await;
    }

    /// Why an acquire that no majority granted was refused, from the servers' answers
    /// (`late`: how many did not answer before the deadline).
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
            return Err(StoreError::TimedOut);
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
    /// [`StoreError::NoQuorum`] when the servers that failed (or, past the deadline, did not answer)
    /// leave it open.
    fn settled(
        &self,
        gathered: &mut Gathering<'_, bool>,
        deadline: Option<Instant>,
    ) -> Result<bool, StoreError> {
        let quorum = self.nodes.quorum;
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        let running = gathered.unanswered().len();
        let done = yes(&gathered.answers);
        if done >= quorum && !late {
            return Ok(true);
        }
        let mut first_error = None;
        let mut failed = if late { running } else { 0 };
        for answer in gathered.answers.iter_mut() {
            if let Some(Err(error)) = answer.take() {
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
    /// Every server's call is bounded by the time bound (its store's own), and they run at
    /// once; an acquire also waits for its take-back at most until the bound ends.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("redlock")
            .no_fencing(NO_FENCING)
            .notifies_waiters()
            .operators()
            .bounds_own_calls()
    }

    /// `{prefix}{{name}}`: the name is a hash tag, so a lock's keys (its fencing counter,
    /// its permits, a writer's mark) lie in one cluster slot; the same keys on every server.
    fn key(&self, prefix: &str, name: &str) -> String {
        braced_key(prefix, name)
    }

    fn name_in<'k>(&self, prefix: &str, key: &'k str) -> &'k str {
        braced_name(prefix, key)
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        Box::pin(async move {
            let started = Instant::now();
            // The holder's own lease: the store keeps the key a lock delay longer.
            let lease = request.ttl.saturating_sub(request.lock_delay);
            let validity = lease - drift_margin(lease);
            let request = AcquireRequest {
                fencing: false,
                ..request
            };
            let quorum = self.nodes.quorum;
            let granted = |answers: &[Option<Result<Attempt, StoreError>>]| {
                answers
                    .iter()
                    .filter(|a| matches!(a, Some(Ok(Attempt::Acquired { .. }))))
                    .count()
            };
            let deadline = started + validity.min(self.bound);
            let mut gathered =
                Gathering::start(self.nodes.each(None, |store| store.try_acquire(request)));
            gathered
                .until(Some(deadline), |answers, running| {
                    let granted = granted(answers);
                    granted >= quorum || granted + running < quorum
                })
                .await;
            // A server still answering may take the lock later: it is ours until released.
            if granted(&gathered.answers) >= quorum && started.elapsed() < validity {
                return Ok(Attempt::Acquired { fence: None });
            }
            let late = if Instant::now() >= deadline {
                gathered.running()
            } else {
                // Refused before the deadline: a server a little slower than the others
                // answers before it is asked to take back what it may not have taken.
                let grace = started.elapsed().max(STRAGGLER_GRACE);
                gathered
                    .stragglers((Instant::now() + grace).min(deadline))
                    .await;
                0
            };
            let taken: Vec<usize> = gathered
                .answers
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, None | Some(Ok(Attempt::Acquired { .. }) | Err(_))))
                .map(|(index, _)| index)
                .collect();
            let answers = std::mem::take(&mut gathered.answers);
            drop(gathered);
            let refusal = self.refusal(answers, late);
            self.take_back(request.key, *request.token, taken, started)
                .await;
            refusal
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let started = Instant::now();
            let quorum = self.nodes.quorum;
            let mut gathered =
                Gathering::start(self.nodes.each(None, |store| store.release(key, token)));
            gathered
                .until(None, |answers, running| {
                    let done = yes(answers);
                    done >= quorum || done + running < quorum
                })
                .await;
            let grace = started.elapsed().max(STRAGGLER_GRACE);
            gathered.stragglers(Instant::now() + grace).await;
            let unanswered = gathered.unanswered();
            if !unanswered.is_empty() {
                // Their calls are dropped with the outcome decided: ask them again.
                self.nodes.release_in_background(unanswered, key, *token);
            }
            self.settled(&mut gathered, None)
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
            let quorum = self.nodes.quorum;
            let deadline = started + validity.min(self.bound);
            let mut gathered =
                Gathering::start(self.nodes.each(None, |store| store.extend(key, token, ttl)));
            gathered
                .until(Some(deadline), |answers, running| {
                    let done = yes(answers);
                    done >= quorum || done + running < quorum
                })
                .await;
            self.settled(&mut gathered, Some(deadline))
        })
    }

    fn watch<'a>(&'a self, key: &'a str, _waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        Box::pin(async move {
            // A release that counts deletes the key on a majority, and publishes on each of
            // them: a majority of watches hears at least one of those. A server slow to
            // subscribe (or stalled) is left out.
            let quorum = self.nodes.quorum;
            let mut gathered =
                Gathering::start(self.nodes.each(None, |store| store.watch(key, None)));
            gathered
                .until(None, |answers, _| {
                    answers.iter().filter(|a| matches!(a, Some(Ok(_)))).count() >= quorum
                })
                .await;
            let answers = std::mem::take(&mut gathered.answers);
            let watches: Vec<Watch> = answers.into_iter().flatten().flatten().collect();
            Ok(merged(watches))
        })
    }

    fn operators(&self) -> Option<&dyn Operators> {
        Some(self)
    }
}
