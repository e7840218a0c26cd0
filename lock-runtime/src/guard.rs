//! What a holder holds: the lease on one lock.

use std::time::{Duration, Instant};

use tracing::Instrument as _;

use crate::{backend::check_ttl, backend::Backend, error::LockError, token::Token};

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
/// let mut guard = backend.acquire("report", &LockOptions::new(Duration::from_secs(5))).await?;
/// assert_eq!(guard.key(), "report");
/// guard.extend(Duration::from_secs(10)).await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard {
    backend: Backend,
    /// The full store key (`{prefix}{{name}}`); empty once released.
    store_key: String,
    token: Token,
    lease_end: Instant,
    acquired_at: Instant,
    settled: bool,
}

impl LockGuard {
    pub(crate) fn new(
        backend: Backend,
        store_key: String,
        token: Token,
        lease_end: Instant,
    ) -> Self {
        Self {
            backend,
            store_key,
            token,
            lease_end,
            acquired_at: Instant::now(),
            settled: false,
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

    /// When the lease ends at the latest unless extended, by this process's clock. It is
    /// counted from before the acquire request was sent, so the store's own expiry comes no
    /// earlier.
    pub fn lease_end(&self) -> Instant {
        self.lease_end
    }

    /// Whether the lease has run out by this process's clock.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.lease_end
    }

    /// Resets the lock's time to live to `ttl`, if it is still ours.
    ///
    /// Fails with [`LockError::Lost`] when it is not: the lease ran out and perhaps another
    /// owner took it.
    pub async fn extend(&mut self, ttl: Duration) -> Result<(), LockError> {
        check_ttl(ttl)?;
        let sent_at = Instant::now();
        let call = self
            .backend
            .store()
            .extend(&self.store_key, &self.token, ttl);
        match self.backend.bounded("extend", call).await? {
            true => {
                self.lease_end = sent_at + ttl;
                Ok(())
            }
            false => Err(self.lost()),
        }
    }

    /// Deletes the lock if it is still ours.
    ///
    /// `Ok(())` means it was ours until this call; [`LockError::Lost`] means the lease had
    /// run out (and perhaps another owner held the lock), so whatever ran under it was not
    /// protected to the end.
    pub async fn release(mut self) -> Result<(), LockError> {
        let span = tracing::debug_span!("lock.release", key = self.key());
        let held = self.acquired_at.elapsed();
        let call = self.backend.store().release(&self.store_key, &self.token);
        let outcome = self
            .backend
            .bounded("release", call)
            .instrument(span.clone())
            .await;
        // Only now: if this future is dropped before the answer, `Drop` releases again.
        self.settled = true;
        let _entered = span.enter();
        match outcome {
            Ok(true) => {
                tracing::debug!(outcome = "released", held_us = held.as_micros() as u64);
                Ok(())
            }
            Ok(false) => {
                tracing::warn!(outcome = "lost", held_us = held.as_micros() as u64);
                Err(self.lost())
            }
            Err(e) => {
                tracing::warn!(outcome = "error", error = %e);
                Err(e)
            }
        }
    }

    fn lost(&self) -> LockError {
        LockError::Lost {
            key: self.key().to_owned(),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.settled {
            let key = std::mem::take(&mut self.store_key);
            self.backend.release_in_background(key, self.token);
        }
    }
}
