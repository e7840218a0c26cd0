//! What a holder holds: the lease on one lock, released token-checked.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::Instrument as _;

use crate::{
    backend::{check_ttl, Backend, LetGo},
    error::LockError,
    lease::{lease_end, session_over, Renewal},
    metrics::LockMetrics,
    options::LockOptions,
    store::{Operation, SessionWatch},
    token::Token,
};

/// Proof that this process held a lock when the guard was made.
///
/// Release it with [`release`](Self::release), which tells whether the lock was still
/// ours. A guard dropped without `release` (an early return, a panic, a cancelled future)
/// deletes the lock in the background on the current Tokio runtime, without blocking;
/// the TTL is only the last resort.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let options = LockOptions::new(Duration::from_secs(5)).fencing(true);
/// let mut guard = backend.acquire("report", &options).await?;
/// assert_eq!(guard.key(), "report");
/// assert_eq!(guard.fencing_token(), Some(1));
/// guard.extend(Duration::from_secs(10)).await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    backend: Backend,
    /// The full store key (`{prefix}{{name}}`).
    store_key: Arc<str>,
    token: Token,
    fence: Option<u64>,
    /// Which owner of this process's slot for the key this guard is.
    generation: u64,
    lease_end: Instant,
    acquired_at: Instant,
    /// The client the lock was taken through, for events.
    client: &'static str,
    /// The store session that holds the lock, for a store whose leases are sessions.
    session: Option<SessionWatch>,
    settled: bool,
    metrics: &'static LockMetrics,
    /// The loss of the lease was counted.
    lost_counted: bool,
    /// Held as one of several holders (a reader or a permit).
    shared: bool,
    /// How long the lock stays unavailable after a lease that ended without a release.
    lock_delay: Duration,
}

/// The owner token is left out: whoever has it can release the lock.
impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key())
            .field("fence", &self.fence)
            .field("lease_end", &self.lease_end)
            .finish_non_exhaustive()
    }
}

/// What an acquisition yields besides the key.
pub(crate) struct Held {
    pub(crate) token: Token,
    pub(crate) fence: Option<u64>,
    pub(crate) generation: u64,
    pub(crate) lease_end: Instant,
    /// When the winning request was sent.
    pub(crate) acquired_at: Instant,
    pub(crate) client: &'static str,
    pub(crate) session: Option<SessionWatch>,
    pub(crate) metrics: &'static LockMetrics,
    pub(crate) shared: bool,
    pub(crate) lock_delay: Duration,
}

impl LockGuard {
    pub(crate) fn new(backend: Backend, store_key: Arc<str>, held: Held) -> Self {
        Self {
            backend,
            store_key,
            token: held.token,
            fence: held.fence,
            generation: held.generation,
            lease_end: held.lease_end,
            acquired_at: held.acquired_at,
            client: held.client,
            session: held.session,
            settled: false,
            metrics: held.metrics,
            lost_counted: false,
            shared: held.shared,
            lock_delay: held.lock_delay,
        }
    }

    /// The lock's name, as passed to `acquire`.
    pub fn key(&self) -> &str {
        self.backend.name_in(&self.store_key)
    }

    /// The key the lock has in the store, with prefix and hash tag.
    pub fn store_key(&self) -> &str {
        &self.store_key
    }

    /// This acquisition's owner token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// This acquisition's fencing token, if the options asked for one
    /// ([`LockOptions::fencing`]): greater than every earlier acquisition's of this lock.
    /// Pass it to the resource the lock protects, and have the resource refuse writes that
    /// carry a lower token than one it has seen.
    pub fn fencing_token(&self) -> Option<u64> {
        self.fence
    }

    /// When the lease ends at the latest unless extended, by this process's clock. It is
    /// counted from before the acquire request was sent, less a margin for clock drift
    /// (1 % of the TTL plus 2 ms), so the store's own expiry comes later.
    pub fn lease_end(&self) -> Instant {
        self.lease_end
    }

    /// Whether the lease has run out by this process's clock, or (on a store whose leases
    /// are sessions) the session that holds the lock ended or was cut off for too long.
    pub fn is_expired(&self) -> bool {
        // The latest lease end known: a renewal task (a guarded body's, a leader's) records
        // each new one in the local queue, not in this guard.
        let renewed = self
            .backend
            .local()
            .lease_end(&self.store_key, self.generation);
        let lease_end = renewed.map_or(self.lease_end, |end| end.max(self.lease_end));
        Instant::now() >= lease_end || self.session.as_ref().is_some_and(session_over)
    }

    /// The session that holds the lock, on a store whose leases are sessions.
    pub(crate) fn session(&self) -> Option<SessionWatch> {
        self.session.clone()
    }

    /// Resets the lock's time to live to `ttl`, if it is still ours.
    ///
    /// Fails with [`LockError::Lost`] when it is not: the lease ran out and perhaps another
    /// owner took it.
    pub async fn extend(&mut self, ttl: Duration) -> Result<(), LockError> {
        check_ttl(ttl)?;
        let sent_at = Instant::now();
        let store_ttl = self.backend.store_ttl(ttl, self.lock_delay);
        let call = self
            .backend
            .store_extend(&self.store_key, &self.token, store_ttl, self.shared);
        match self.backend.bounded(Operation::Extend, call).await? {
            true => {
                self.metrics.renewed();
                self.lease_end = lease_end(sent_at, ttl);
                let local = self.backend.local();
                local.set_lease(&self.store_key, self.generation, self.lease_end);
                Ok(())
            }
            false => Err(self.lost()),
        }
    }

    /// Deletes the lock if it is still ours.
    ///
    /// `Ok(())` means it was ours until this call; [`LockError::Lost`] means the lease had
    /// run out (and perhaps another owner held the lock), so whatever ran under it was not
    /// protected to the end. A lock taken with a [lock delay](LockOptions::lock_delay)
    /// whose lease ran out by this process's clock is not deleted but left to the delay,
    /// and answers [`LockError::Lost`].
    pub async fn release(self) -> Result<(), LockError> {
        if self.abandons() {
            return Err(self.abandon());
        }
        let span = tracing::debug_span!("lock.release", key = self.key());
        let call = self
            .backend
            .store_release(&self.store_key, &self.token, self.shared);
        let outcome = self
            .backend
            .bounded(Operation::Release, call)
            .instrument(span.clone())
            .await;
        self.released(outcome, &span)
    }

    /// What a release call answered for this lock (`outcome`: whether it was still ours),
    /// settled: counted, the local turn passed on, a failed delete tried again in the
    /// background.
    pub(crate) fn released(
        mut self,
        outcome: Result<bool, LockError>,
        span: &tracing::Span,
    ) -> Result<(), LockError> {
        let held = self.acquired_at.elapsed();
        // Only now: if the release call is dropped before the answer, `Drop` releases
        // again.
        self.settled = true;
        self.metrics.ended(self.acquired_at);
        self.backend.local().pass(&self.store_key, self.generation);
        let _entered = span.enter();
        match outcome {
            Ok(true) => {
                tracing::debug!(outcome = "released", held_us = held.as_micros() as u64);
                Ok(())
            }
            Ok(false) => {
                tracing::warn!(
                    key = self.key(),
                    client = self.client,
                    outcome = "lost",
                    held_us = held.as_micros() as u64,
                    "the lock was no longer ours at release"
                );
                Err(self.lost())
            }
            Err(e) => {
                tracing::warn!(
                    key = self.key(),
                    client = self.client,
                    outcome = "error",
                    error = %e,
                    "release failed; retrying in the background"
                );
                // The delete may not have happened: keep trying in the background, so a
                // broken connection does not leave the lock orphaned for its whole TTL.
                let key = self.store_key.clone();
                self.backend.release_in_background(
                    key,
                    self.token,
                    LetGo::release(self.shared),
                    None,
                    self.lease_end,
                );
                Err(e)
            }
        }
    }

    /// What the renewal task needs to keep this lease alive under `options`.
    pub(crate) fn renewal(&self, options: &LockOptions) -> Renewal {
        Renewal {
            backend: self.backend.clone(),
            store_key: self.store_key.clone(),
            token: self.token,
            generation: self.generation,
            ttl: options.ttl(),
            store_ttl: self.backend.store_ttl(options.ttl(), self.lock_delay),
            client: self.client,
            metrics: self.metrics,
            shared: self.shared,
            // `None` (an unbounded `max_hold`) renews for as long as the body runs.
            until: self.acquired_at.checked_add(options.max_hold_for()),
        }
    }

    /// The backend the lock was taken through.
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Held as one of several holders (a reader or a permit).
    pub(crate) fn is_shared(&self) -> bool {
        self.shared
    }

    /// The client the lock was taken through (`"default"` for the default client).
    pub(crate) fn client(&self) -> &'static str {
        self.client
    }

    /// Records a lease end learnt elsewhere (from the renewal task).
    pub(crate) fn set_lease_end(&mut self, lease_end: Instant) {
        self.lease_end = lease_end;
    }

    fn key_string(&self) -> String {
        self.key().to_owned()
    }

    /// Whether letting go must leave the lock to its delay: taken with a lock delay, and
    /// its lease ran out by this process's clock, renewals counted (or its session ended).
    pub(crate) fn abandons(&self) -> bool {
        !self.lock_delay.is_zero() && self.is_expired()
    }

    /// Lets go of a lock whose lease ran out without deleting it, so its lock delay holds
    /// (see [`LetGo::Abandon`]); the lease is lost.
    fn abandon(mut self) -> LockError {
        self.settled = true;
        self.metrics.ended(self.acquired_at);
        tracing::warn!(
            key = self.key(),
            client = self.client,
            outcome = "lost",
            "the lease ran out; the lock is left to its lock delay"
        );
        self.let_go_in_background(LetGo::Abandon);
        self.lost()
    }

    /// Lets go of the lock in the background, `how`: a release passes the local turn on
    /// once it is done; an abandoned lock passes it at once, and on a store whose keys
    /// expire asks nothing of the store (the key ends with its delay).
    fn let_go_in_background(&self, how: LetGo) {
        let slot = match how {
            LetGo::Abandon => {
                self.backend.local().pass(&self.store_key, self.generation);
                if self.backend.store().sessions().is_none() {
                    return;
                }
                None
            }
            _ => Some(self.generation),
        };
        // Tried again until the key would have expired, with its delay, at the latest.
        let until = self.lease_end + self.lock_delay;
        let key = self.store_key.clone();
        self.backend
            .release_in_background(key, self.token, how, slot, until);
    }

    /// The lease is lost: counted once, however many calls find out.
    pub(crate) fn lost(&mut self) -> LockError {
        if !std::mem::replace(&mut self.lost_counted, true) {
            self.metrics.lost();
        }
        LockError::Lost {
            key: self.key_string(),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.metrics.ended(self.acquired_at);
            match self.abandons() {
                true => self.let_go_in_background(LetGo::Abandon),
                false => self.let_go_in_background(LetGo::release(self.shared)),
            }
        }
    }
}
