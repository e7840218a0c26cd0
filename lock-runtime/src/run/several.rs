//! Running a future under several locks at once (`keys = [...]`, [`with_locks`]): every
//! lock taken first (as [`Backend::acquire_all`] takes them), one lease watch over all of
//! them, each key's fencing token visible to the body.

use std::future::Future;

use tokio::sync::watch;

use super::{Ending, Failure, Held, HELD};
use crate::{
    backend::Backend,
    error::LockError,
    guard::LockGuard,
    lease::{watch_body, LeaseState},
    multi::{merge, release_all},
    options::LockOptions,
};

/// Runs `body` while holding every lock in `names`, in the client the options name; the
/// body does not start unless all were taken. See [`Backend::with_locks`].
pub async fn with_locks<I, S, F>(
    names: I,
    options: &LockOptions,
    body: F,
) -> Result<F::Output, LockError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
    F: Future,
{
    run_all(names, options, body)
        .await
        .map_err(Failure::into_error)
}

/// [`with_locks`], telling apart failures before and after the body started.
pub(crate) async fn run_all<I, S, F>(
    names: I,
    options: &LockOptions,
    body: F,
) -> Result<F::Output, Failure>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
    F: Future,
{
    crate::client(options.client_name())
        .map_err(Failure::Before)?
        .run_all(names, options, body)
        .await
}

impl Backend {
    /// Runs `body` while holding every lock in `names` (taken as
    /// [`acquire_all`](Self::acquire_all) takes them); the body does not start unless all
    /// were taken. Renewal, fencing (one token per key, [`fencing_token_of`](crate::fencing_token_of)) and the
    /// reaction to a lost lease are as for [`with_lock`](Self::with_lock): losing any
    /// lease is losing the lock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{Backend, LockOptions};
    /// use std::time::Duration;
    ///
    /// let backend = Backend::memory();
    /// let options = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(1));
    /// let moved = backend.with_locks(["account:1", "account:2"], &options, async { 100 }).await?;
    /// assert_eq!(moved, 100);
    /// # Ok(()) }
    /// ```
    pub async fn with_locks<I, S, F>(
        &self,
        names: I,
        options: &LockOptions,
        body: F,
    ) -> Result<F::Output, LockError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        F: Future,
    {
        self.run_all(names, options, body)
            .await
            .map_err(Failure::into_error)
    }

    pub(super) async fn run_all<I, S, F>(
        &self,
        names: I,
        options: &LockOptions,
        body: F,
    ) -> Result<F::Output, Failure>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        F: Future,
    {
        let taken = self.acquire_all(names, options).await;
        let mut guards = taken.map_err(Failure::Before)?.into_guards();
        let mut leases = Vec::with_capacity(guards.len());
        let mut renewals = Vec::new();
        for guard in &guards {
            let (publish, lease) = watch::channel(LeaseState::Until(guard.lease_end()));
            if options.renews() {
                renewals.push(guard.renewal(options).start(publish));
            }
            leases.push(lease);
        }
        if !renewals.is_empty() {
            // As in `run_outer`: let the renewal tasks start before the body.
            tokio::task::yield_now().await;
        }
        let (lease, merger) = merge(leases.clone());
        let mut held = HELD.try_with(Clone::clone).ok().unwrap_or_default();
        for guard in &guards {
            held.push(Held::new(self.id(), guard, options, &lease));
        }
        let names = guards.iter().map(LockGuard::key).collect::<Vec<_>>();
        let names = names.join(", ");
        let session = guards.first().and_then(LockGuard::session);
        let body = HELD.scope(held, body);
        let outcome = watch_body(lease, session, options, &names, body).await;
        drop((merger, renewals));
        for (guard, lease) in guards.iter_mut().zip(&leases) {
            if let LeaseState::Until(end) = *lease.borrow() {
                guard.set_lease_end(end);
            }
        }
        let Ok(output) = outcome else {
            // The body's lease was lost (on some key): counted once; every key goes back.
            if let Some(first) = guards.first_mut() {
                let _ = first.lost();
            }
            release_all(guards).await;
            return outcome.map_err(Failure::After);
        };
        let endings: Vec<Ending> = guards.iter().map(Ending::of).collect();
        let released = release_all(guards).await;
        let judged = endings
            .into_iter()
            .zip(released)
            .map(|(ending, released)| ending.judge(Ok(()), released));
        match judged.into_iter().find(Result::is_err) {
            Some(Err(error)) => Err(Failure::After(error)),
            _ => Ok(output),
        }
    }
}
