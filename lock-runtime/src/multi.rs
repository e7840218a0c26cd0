//! Several locks at once (`keys = [...]`): taken in one canonical order, all or none.
//!
//! The names are sorted by full key and repeats dropped, so two calls naming the same
//! keys in any order take them in the same order and cannot deadlock. A store that can
//! take the keys in one atomic step ([`Store::try_acquire_all`](crate::store::Store::try_acquire_all):
//! one Redis server, a Redis Cluster when the keys share a hash slot, the in-memory store)
//! is asked that first: the uncontended path is one
//! round trip. Otherwise, or when a key is busy, the keys are taken one by one in that
//! order, each waiting (by notification) for what is left of the wait; an acquisition that
//! cannot complete releases what it took. Keys taken in one step are released in one
//! ([`SeveralKeys::release_all`](crate::store::SeveralKeys::release_all): one script),
//! each still checked against its owner token.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tracing::Instrument as _;

use crate::{
    backend::{check_lock_delay, check_name, check_ttl, Backend, LetGo},
    error::LockError,
    guard::{Held, LockGuard},
    holder,
    lease::{lease_end, LeaseState, LeaseWatch, RenewalTask},
    options::LockOptions,
    store::{Attempt, LockKind, Operation, StoreError, Together},
    token::Token,
};

/// Proof that this process held several locks at once: one [`LockGuard`] per key, in the
/// order they were taken (sorted by full key).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockError, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let options = LockOptions::new(Duration::from_secs(10)).fencing(true);
/// let both = backend.acquire_all(["account:9", "account:3"], &options).await?;
/// assert_eq!(both.keys().collect::<Vec<_>>(), ["account:3", "account:9"]);
/// assert!(both.fencing_token("account:9").is_some());
/// // Either key alone is busy now.
/// let one = backend.acquire("account:3", &options).await;
/// assert!(matches!(one, Err(LockError::Busy { .. })));
/// both.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "the locks are released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct MultiGuard {
    guards: Vec<LockGuard>,
}

impl MultiGuard {
    /// The lock names, in the order they were taken.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.guards.iter().map(LockGuard::key)
    }

    /// One guard per lock, in the order they were taken.
    pub fn guards(&self) -> &[LockGuard] {
        &self.guards
    }

    /// The fencing token of the lock `name`, if the options asked for fencing.
    pub fn fencing_token(&self, name: &str) -> Option<u64> {
        let guard = self.guards.iter().find(|g| g.key() == name)?;
        guard.fencing_token()
    }

    /// Whether any of the leases has run out by this process's clock.
    pub fn is_expired(&self) -> bool {
        self.guards.iter().any(LockGuard::is_expired)
    }

    /// Resets every lock's time to live to `ttl`; [`LockError::Lost`] when one of them was
    /// no longer ours (losing one is losing them all).
    pub async fn extend(&mut self, ttl: Duration) -> Result<(), LockError> {
        for guard in &mut self.guards {
            guard.extend(ttl).await?;
        }
        Ok(())
    }

    /// Releases every lock, all at once (one script on one Redis server, or on a cluster
    /// whose keys share a slot; else one call per key, sent together); the first error, if
    /// any (every lock is released all the same).
    pub async fn release(self) -> Result<(), LockError> {
        release_all(self.guards)
            .await
            .into_iter()
            .find(Result::is_err)
            .unwrap_or(Ok(()))
    }

    pub(crate) fn into_guards(self) -> Vec<LockGuard> {
        self.guards
    }
}

impl Backend {
    /// Takes every lock in `names` for one holder, or none: in one canonical order (by full
    /// key, repeats taken once), so callers naming the same keys in different orders never
    /// deadlock. `options.wait_for()` bounds the whole acquisition; one that cannot
    /// complete releases what it took and fails as [`acquire`](Self::acquire) would for
    /// the key that stayed busy. Fencing gives one token per key
    /// ([`MultiGuard::fencing_token`]). Exclusive locks only: a read mode or semaphore
    /// options fail with [`LockError::InvalidInput`], as does an empty list.
    pub async fn acquire_all<I, S>(
        &self,
        names: I,
        options: &LockOptions,
    ) -> Result<MultiGuard, LockError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys: Vec<(String, String)> = Vec::new();
        for name in names {
            let name = name.as_ref();
            check_name(name)?;
            keys.push((self.key_for(name), name.to_owned()));
        }
        // The one-step try below does not pass through `acquire`'s checks.
        check_ttl(options.ttl())?;
        check_lock_delay(options.kind(), options.lock_delay_for())?;
        if keys.is_empty() {
            return Err(LockError::invalid("the list of lock keys is empty"));
        }
        if options.kind() != LockKind::Exclusive {
            return Err(LockError::invalid(
                "several keys at once take exclusive (write) locks only",
            ));
        }
        keys.sort();
        keys.dedup();
        let started = Instant::now();
        if keys.len() > 1 {
            if let Some(together) = self.take_together(&keys, options).await? {
                return Ok(together);
            }
        }
        let deadline = started.checked_add(options.wait_for());
        let mut guards = Vec::with_capacity(keys.len());
        for (_, name) in &keys {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            match self.acquire(name, &options.clone().wait(left)).await {
                Ok(guard) => guards.push(guard),
                Err(error) => {
                    // Give back what was taken, newest first.
                    let taken = MultiGuard { guards };
                    let _ = taken.release().await;
                    return Err(error);
                }
            }
        }
        Ok(MultiGuard { guards })
    }

    /// One try at taking `keys` in one atomic step, if the store can: `Some` guard when it
    /// took them; `None` when it cannot, or a key was busy (the caller then goes one by
    /// one, waiting). A try whose outcome is unknown is undone in the background.
    async fn take_together(
        &self,
        keys: &[(String, String)],
        options: &LockOptions,
    ) -> Result<Option<MultiGuard>, LockError> {
        let together: Vec<Together<'_>> = keys
            .iter()
            .map(|(key, _)| Together {
                key,
                fencing: options.fenced(),
            })
            .collect();
        let token = Token::generate().map_err(|e| LockError::Backend {
            operation: Operation::Acquire,
            source: StoreError::other(e),
        })?;
        let holder = holder::Record::now(options.function_name());
        let ttl = options.ttl();
        if let Some(why) = self.capabilities().refuses(ttl, options.fenced()) {
            return Err(LockError::invalid(why));
        }
        let lock_delay = options.lock_delay_for();
        let store_ttl = self.store_ttl(ttl, lock_delay);
        let call = self.store().several_keys().and_then(|several| {
            several.try_acquire_all(&together, &token, store_ttl, holder.as_str())
        });
        let Some(call) = call else {
            return Ok(None);
        };
        let metrics = self.lock_metrics(options);
        let sent_at = Instant::now();
        match self.bounded(Operation::Acquire, call).await {
            Ok(Ok(fences)) => {
                metrics.acquired(sent_at.elapsed());
                let guards = keys
                    .iter()
                    .zip(fences)
                    .map(|((key, _), fence)| {
                        let key: Arc<str> = key.as_str().into();
                        let held = Held {
                            token,
                            fence,
                            generation: self.local().alone(&key).generation(),
                            lease_end: lease_end(sent_at, ttl),
                            acquired_at: sent_at,
                            client: options.client_label(),
                            session: self.sessions(&key, &token),
                            metrics,
                            shared: false,
                            lock_delay,
                        };
                        LockGuard::new(self.clone(), key, held)
                    })
                    .collect();
                Ok(Some(MultiGuard { guards }))
            }
            Ok(Err(Attempt::Recovering { left })) if options.wait_for() < left => {
                Err(LockError::Recovering {
                    key: keys[0].1.clone(),
                    waited: sent_at.elapsed(),
                    left,
                })
            }
            Ok(Err(_)) => Ok(None),
            Err(error) => {
                // It may have taken the keys: give them back, and go one by one.
                tracing::debug!(%error, "taking the keys together failed; one by one");
                for (key, _) in keys {
                    let until = sent_at + store_ttl;
                    let key = key.as_str().into();
                    self.release_in_background(key, token, LetGo::Release, None, until);
                }
                Ok(None)
            }
        }
    }
}

/// Releases `guards` (taken together through one backend): in one store call where the
/// store can release them in one step (one owner token, exclusive locks), else one release
/// per guard, run together. Each guard's outcome, in order.
pub(crate) async fn release_all(guards: Vec<LockGuard>) -> Vec<Result<(), LockError>> {
    let Some(first) = guards.first().filter(|_| guards.len() > 1) else {
        return join_all(guards.into_iter().map(LockGuard::release).collect()).await;
    };
    let (backend, token) = (first.backend().clone(), *first.token());
    // A guard left to its lock delay is not released: each goes its own way then.
    let together = guards.iter().all(|g| {
        !g.is_shared() && !g.abandons() && *g.token() == token && g.backend().id() == backend.id()
    });
    let span = tracing::debug_span!("lock.release_all", keys = guards.len());
    let outcome = {
        let keys: Vec<&str> = guards.iter().map(LockGuard::store_key).collect();
        let call = together
            .then(|| backend.store().several_keys())
            .flatten()
            .and_then(|several| several.release_all(&keys, &token));
        match call {
            Some(call) => Some(
                backend
                    .bounded(Operation::Release, call)
                    .instrument(span.clone())
                    .await,
            ),
            None => None,
        }
    };
    let outcomes: Vec<Result<bool, LockError>> = match outcome {
        None => return join_all(guards.into_iter().map(LockGuard::release).collect()).await,
        Some(Ok(released)) if released.len() == guards.len() => {
            released.into_iter().map(Ok).collect()
        }
        Some(Ok(released)) => {
            let wrong = LockError::Backend {
                operation: Operation::Release,
                source: StoreError::from(format!(
                    "the store answered for {} of {} locks released together",
                    released.len(),
                    guards.len()
                )),
            };
            vec![Err(wrong); guards.len()]
        }
        Some(Err(error)) => vec![Err(error); guards.len()],
    };
    guards
        .into_iter()
        .zip(outcomes)
        .map(|(guard, outcome)| guard.released(outcome, &span))
        .collect()
}

/// Runs `futures` together, returning their outputs in order.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The leases of several locks seen as one: over as soon as any of them is.
pub(crate) fn merge(mut leases: Vec<LeaseWatch>) -> (LeaseWatch, RenewalTask) {
    let combined = |leases: &[LeaseWatch]| {
        leases
            .iter()
            .try_fold(None::<Instant>, |end, lease| match *lease.borrow() {
                LeaseState::Lost => Err(()),
                LeaseState::Until(until) => Ok(Some(end.map_or(until, |e| e.min(until)))),
            })
    };
    let first = match combined(&leases) {
        Ok(end) => LeaseState::Until(end.unwrap_or_else(Instant::now)),
        Err(()) => LeaseState::Lost,
    };
    let (publish, merged) = watch::channel(first);
    let task = tokio::spawn(async move {
        let mut open = vec![true; leases.len()];
        loop {
            let state = match combined(&leases) {
                Ok(end) => LeaseState::Until(end.unwrap_or_else(Instant::now)),
                Err(()) => LeaseState::Lost,
            };
            publish.send_if_modified(|old| std::mem::replace(old, state) != state);
            if state == LeaseState::Lost || !open.contains(&true) {
                return;
            }
            // Until one of the leases still renewed changes.
            let mut changes: Vec<_> = leases
                .iter_mut()
                .zip(&open)
                .enumerate()
                .filter(|(_, (_, open))| **open)
                .map(|(i, (lease, _))| {
                    let change: Pin<Box<dyn Future<Output = _> + Send + '_>> =
                        Box::pin(lease.changed());
                    (i, change)
                })
                .collect();
            let (index, changed) = std::future::poll_fn(|cx| {
                for (i, change) in &mut changes {
                    if let Poll::Ready(changed) = change.as_mut().poll(cx) {
                        return Poll::Ready((*i, changed));
                    }
                }
                Poll::Pending
            })
            .await;
            drop(changes);
            if changed.is_err() {
                open[index] = false;
            }
        }
    });
    (merged, RenewalTask::new(task.abort_handle()))
}
