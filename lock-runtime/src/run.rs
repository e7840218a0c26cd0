//! Running a future under a lock: the closure API that `#[distributed_lock]` expands to,
//! with reentrancy and the fencing token visible to the body.

use std::{future::Future, sync::Arc, time::Instant};

use crate::{backend::Backend, error::LockError, guard::LockGuard, options::LockOptions};

tokio::task_local! {
    /// The locks held by the bodies running in this task, innermost last.
    static HELD: Vec<Held>;
}

#[derive(Debug, Clone)]
struct Held {
    backend: usize,
    store_key: Arc<str>,
    fence: Option<u64>,
}

/// The fencing token of the innermost lock held by the running body, if it asked for one.
///
/// Inside a function annotated with `#[distributed_lock(..., fencing)]` or a
/// [`with_lock`] body whose options say [`fencing(true)`](LockOptions::fencing); `None`
/// elsewhere.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// lock_runtime::init(Backend::memory())?;
/// let options = LockOptions::new(Duration::from_secs(5)).fencing(true);
/// let token = lock_runtime::with_lock("ledger", &options, async {
///     lock_runtime::fencing_token()
/// })
/// .await?;
/// assert_eq!(token, Some(1));
/// assert_eq!(lock_runtime::fencing_token(), None);
/// # Ok(()) }
/// ```
pub fn fencing_token() -> Option<u64> {
    HELD.try_with(|held| held.last().and_then(|h| h.fence))
        .ok()
        .flatten()
}

/// Runs `body` while holding the lock `key`, in the client the options name; the body does
/// not start unless the lock was taken. See [`Backend::with_lock`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// lock_runtime::register("jobs", Backend::memory())?;
/// let options = LockOptions::new(Duration::from_secs(30)).client("jobs");
/// let rows = lock_runtime::with_lock("cleanup", &options, async { 42 }).await?;
/// assert_eq!(rows, 42);
/// # Ok(()) }
/// ```
pub async fn with_lock<F: Future>(
    key: &str,
    options: &LockOptions,
    body: F,
) -> Result<F::Output, LockError> {
    crate::client(options.client_name())?
        .with_lock(key, options, body)
        .await
}

impl Backend {
    /// Runs `body` while holding the lock `name`; the body does not start unless the lock
    /// was taken.
    ///
    /// Returns the body's output, or:
    /// - the error of [`acquire`](Self::acquire) when the lock could not be had (the body
    ///   did not run);
    /// - [`LockError::Lost`] when the lease ended before the body did: its TTL passed
    ///   without renewal, or renewal ([`LockOptions::renew`]) found the lock gone. The body
    ///   is then dropped at its next `.await`, or, with [`OnLost::Finish`](crate::OnLost),
    ///   run to completion first;
    /// - the release's error when the store could not confirm the release and the lease had
    ///   already run out by this process's clock. When the lease was still running, a failed
    ///   release is only logged: the lock expires with its TTL.
    ///
    /// A body that calls `with_lock` again on the same lock and backend, in the same task,
    /// runs at once without asking the store (reentrancy); another task still waits.
    /// If `body` panics or the returned future is dropped, the lock is released in the
    /// background.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{Backend, LockOptions};
    /// use std::time::Duration;
    ///
    /// let backend = Backend::memory();
    /// let options = LockOptions::new(Duration::from_secs(5));
    /// let nested = backend
    ///     .with_lock("k", &options, backend.with_lock("k", &options, async { "reentrant" }))
    ///     .await??;
    /// assert_eq!(nested, "reentrant");
    /// # Ok(()) }
    /// ```
    pub async fn with_lock<F: Future>(
        &self,
        name: &str,
        options: &LockOptions,
        body: F,
    ) -> Result<F::Output, LockError> {
        let outer = HELD.try_with(Clone::clone).ok();
        if outer.as_ref().is_some_and(|held| self.holds(held, name)) {
            return Ok(body.await);
        }
        let mut guard = self.acquire(name, options).await?;
        let mut held = outer.unwrap_or_default();
        held.push(Held {
            backend: self.id(),
            store_key: guard.store_key().into(),
            fence: guard.fencing_token(),
        });
        let outcome = guard.supervise(options, HELD.scope(held, body)).await;
        finish(guard, outcome).await
    }

    fn holds(&self, held: &[Held], name: &str) -> bool {
        held.iter()
            .any(|h| h.backend == self.id() && self.name_in(&h.store_key) == name)
    }
}

/// Releases after the body and decides what the caller sees.
async fn finish<T>(guard: LockGuard, outcome: Result<T, LockError>) -> Result<T, LockError> {
    let lease_end = guard.lease_end();
    let finished = Instant::now();
    let key = guard.key().to_owned();
    let released = guard.release().await;
    match (outcome, released) {
        (Err(lost), _) => Err(lost),
        (Ok(output), Ok(())) => Ok(output),
        (Ok(_), Err(lost @ LockError::Lost { .. })) => Err(lost),
        (Ok(output), Err(e)) if finished < lease_end => {
            tracing::warn!(key, error = %e, "release failed; the lock expires with its TTL");
            Ok(output)
        }
        (Ok(_), Err(e)) => Err(e),
    }
}
