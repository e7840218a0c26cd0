//! Running a future under a lock: the closure API that `#[distributed_lock]` expands to,
//! with nesting (a body that takes its own lock again) and the fencing token visible to the
//! body.
//!
//! A nested call on a lock the task already holds asks nothing of the store: it runs under
//! the enclosing lease, watches that lease as its own, and is serialised with its siblings
//! (nested calls that run at the same time under one holder, through `join!` or `select!`)
//! by a mutex of the enclosing call. Options the enclosing lease cannot honour (a fencing
//! token it does not have, renewal it does not do, a longer TTL) are refused.

use std::{future::Future, sync::Arc, time::Instant};

use tokio::sync::{watch, Mutex};

use crate::{
    backend::{check_ttl, Backend},
    error::LockError,
    guard::LockGuard,
    lease::{watch_body, LeaseState, LeaseWatch},
    options::LockOptions,
    store::SessionWatch,
};

mod several;

pub(crate) use self::several::run_all;
pub use self::several::with_locks;

tokio::task_local! {
    /// The locks held by the bodies running in this task, innermost last.
    static HELD: Vec<Held>;
}

#[derive(Debug, Clone)]
struct Held {
    backend: usize,
    /// The lock's name, as the caller gave it.
    name: Arc<str>,
    fence: Option<u64>,
    options: LockOptions,
    lease: LeaseWatch,
    /// The store session the lease rests on, if the store has sessions.
    session: Option<SessionWatch>,
    /// Held by a nested call on the same lock while it runs: siblings take turns.
    children: Arc<Mutex<()>>,
}

impl Held {
    /// The lock `guard` holds, through backend `backend`, for a body run with `options`
    /// under `lease`.
    fn new(backend: usize, guard: &LockGuard, options: &LockOptions, lease: &LeaseWatch) -> Self {
        Self {
            backend,
            name: guard.key().into(),
            fence: guard.fencing_token(),
            options: options.clone(),
            lease: lease.clone(),
            session: guard.session(),
            children: Arc::default(),
        }
    }
}

/// Why a guarded call did not return the body's output.
#[derive(Debug)]
pub enum Failure {
    /// The lock could not be had: the body did not run.
    Before(LockError),
    /// The body ran (or started): the lease was lost while it ran, or its release failed
    /// after the lease had ended.
    After(LockError),
}

impl Failure {
    /// The error, whichever the phase.
    pub fn into_error(self) -> LockError {
        match self {
            Self::Before(error) | Self::After(error) => error,
        }
    }
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

/// The fencing token of the lock `name` held by the running body or one around it, if it
/// asked for one: for a body under several locks (`keys = [...]`, [`with_locks`]), which
/// have one token each. `None` elsewhere.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// lock_runtime::init(Backend::memory())?;
/// let options = LockOptions::new(Duration::from_secs(5)).fencing(true);
/// let tokens = lock_runtime::with_locks(["from", "to"], &options, async {
///     (lock_runtime::fencing_token_of("from"), lock_runtime::fencing_token_of("to"))
/// })
/// .await?;
/// assert_eq!(tokens, (Some(1), Some(1)));
/// # Ok(()) }
/// ```
pub fn fencing_token_of(name: &str) -> Option<u64> {
    HELD.try_with(|held| {
        held.iter()
            .rev()
            .find(|h| &*h.name == name)
            .and_then(|h| h.fence)
    })
    .ok()
    .flatten()
}

/// Runs `body` while holding one of `permits` permits of the semaphore `name`, in the
/// client the options name. See [`Backend::with_permit`].
pub async fn with_permit<F: Future>(
    name: &str,
    permits: u32,
    options: &LockOptions,
    body: F,
) -> Result<F::Output, LockError> {
    with_lock(name, &options.clone().permits(permits), body).await
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
    run(key, options, body).await.map_err(Failure::into_error)
}

/// [`with_lock`], telling apart failures before and after the body started.
pub(crate) async fn run<F: Future>(
    key: &str,
    options: &LockOptions,
    body: F,
) -> Result<F::Output, Failure> {
    crate::client(options.client_name())
        .map_err(Failure::Before)?
        .run(key, options, body)
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
    /// runs under the enclosing lease without asking the store (nesting); another task
    /// still waits. Nested calls that run at the same time under one holder (through
    /// `join!`, say) take turns, each waiting up to its own `wait`. A nested call whose
    /// options ask for more than the enclosing lease gives (a fencing token it lacks,
    /// renewal it does not do, a longer TTL) fails with [`LockError::InvalidInput`]; one
    /// made after the lease was lost fails with [`LockError::Lost`].
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
        self.run(name, options, body)
            .await
            .map_err(Failure::into_error)
    }

    async fn run<F: Future>(
        &self,
        name: &str,
        options: &LockOptions,
        body: F,
    ) -> Result<F::Output, Failure> {
        let held = HELD.try_with(Clone::clone).ok().unwrap_or_default();
        match held.iter().rposition(|h| self.is(h, name)) {
            Some(outer) => {
                let outer = held[outer].clone();
                self.run_nested(held, outer, name, options, body).await
            }
            None => self.run_outer(held, name, options, body).await,
        }
    }

    async fn run_outer<F: Future>(
        &self,
        mut held: Vec<Held>,
        name: &str,
        options: &LockOptions,
        body: F,
    ) -> Result<F::Output, Failure> {
        let mut guard = self.acquire(name, options).await.map_err(Failure::Before)?;
        let (publish, lease) = watch::channel(LeaseState::Until(guard.lease_end()));
        // Renewal runs as a task of its own; without it, the lease end is fixed.
        let renewal = options
            .renews()
            .then(|| guard.renewal(options).start(publish));
        if renewal.is_some() {
            // Let the renewal task start on this worker before the body does: a task just
            // spawned waits in a slot other workers cannot steal from, so a body that
            // blocks its thread would otherwise keep renewal from ever running.
            tokio::task::yield_now().await;
        }
        held.push(Held::new(self.id(), &guard, options, &lease));
        let body = HELD.scope(held, body);
        let outcome = watch_body(lease.clone(), guard.session(), options, name, body).await;
        drop(renewal);
        if let LeaseState::Until(end) = *lease.borrow() {
            guard.set_lease_end(end);
        }
        finish(guard, outcome).await.map_err(Failure::After)
    }

    async fn run_nested<F: Future>(
        &self,
        mut held: Vec<Held>,
        outer: Held,
        name: &str,
        options: &LockOptions,
        body: F,
    ) -> Result<F::Output, Failure> {
        check_nested(name, &outer, options).map_err(Failure::Before)?;
        let started = Instant::now();
        let turn = tokio::time::timeout(options.wait_for(), outer.children.clone().lock_owned());
        let lost = || LockError::Lost {
            key: name.to_owned(),
        };
        let Ok(turn) = turn.await else {
            return Err(Failure::Before(LockError::Busy {
                key: name.to_owned(),
                waited: started.elapsed(),
            }));
        };
        if outer.lease.borrow().is_over() {
            return Err(Failure::Before(lost()));
        }
        held.push(Held {
            options: options.clone(),
            children: Arc::default(),
            ..outer.clone()
        });
        let body = HELD.scope(held, body);
        let outcome = watch_body(outer.lease, outer.session, options, name, body).await;
        drop(turn);
        outcome.map_err(Failure::After)
    }

    /// Runs `body` while holding one of `permits` permits of the semaphore `name` (see
    /// [`acquire_permit`](Self::acquire_permit)), as [`with_lock`](Self::with_lock) runs
    /// it under a lock.
    pub async fn with_permit<F: Future>(
        &self,
        name: &str,
        permits: u32,
        options: &LockOptions,
        body: F,
    ) -> Result<F::Output, LockError> {
        self.with_lock(name, &options.clone().permits(permits), body)
            .await
    }

    fn is(&self, held: &Held, name: &str) -> bool {
        held.backend == self.id() && &*held.name == name
    }
}

/// Refuses what a nested call asks for that the enclosing lease does not give.
fn check_nested(name: &str, outer: &Held, options: &LockOptions) -> Result<(), LockError> {
    check_ttl(options.ttl())?;
    let refuse = |what: &str| {
        Err(LockError::invalid(format!(
            "a nested call on lock `{name}` {what}; ask for it on the outermost call"
        )))
    };
    if options.kind() != outer.options.kind() {
        return refuse(&format!(
            "takes it as {:?}, but the enclosing call holds it as {:?}",
            options.kind(),
            outer.options.kind()
        ));
    }
    if options.fenced() && outer.fence.is_none() {
        return refuse(
            "asks for a fencing token, but the enclosing call holds the lock without one",
        );
    }
    if options.renews() && !outer.options.renews() {
        return refuse("asks for renewal, but the enclosing call does not renew the lease");
    }
    if !outer.options.renews() && options.ttl() > outer.options.ttl() {
        return refuse(&format!(
            "asks for a TTL of {:?}, longer than the {:?} the enclosing call holds it for",
            options.ttl(),
            outer.options.ttl()
        ));
    }
    Ok(())
}
/// Releases after the body and decides what the caller sees.
async fn finish<T>(mut guard: LockGuard, outcome: Result<T, LockError>) -> Result<T, LockError> {
    if outcome.is_err() {
        // The body's lease was lost (the one error it gets here): counted once.
        let _ = guard.lost();
    }
    let ending = Ending::of(&guard);
    let released = guard.release().await;
    ending.judge(outcome, released)
}

/// What a body's call answers once its lock was released (see [`Ending::judge`]).
pub(super) struct Ending {
    lease_end: Instant,
    finished: Instant,
    key: String,
    client: &'static str,
}

impl Ending {
    /// The body has just finished under `guard`.
    pub(super) fn of(guard: &LockGuard) -> Self {
        Self {
            lease_end: guard.lease_end(),
            finished: Instant::now(),
            key: guard.key().to_owned(),
            client: guard.client(),
        }
    }

    /// The body's `outcome` (an error: its lease was lost), after the release answered
    /// `released`: a release that failed while the lease still ran leaves the lock to
    /// its TTL and keeps the body's output; a lost lease is an error either way.
    pub(super) fn judge<T>(
        self,
        outcome: Result<T, LockError>,
        released: Result<(), LockError>,
    ) -> Result<T, LockError> {
        let Self {
            lease_end,
            finished,
            key,
            client,
        } = self;
        match (outcome, released) {
            (Err(lost), _) => Err(lost),
            (Ok(output), Ok(())) => Ok(output),
            (Ok(_), Err(lost @ LockError::Lost { .. })) => Err(lost),
            (Ok(output), Err(e)) if finished < lease_end => {
                tracing::warn!(
                    key,
                    client,
                    error = %e,
                    "release failed; the lock expires with its TTL"
                );
                Ok(output)
            }
            (Ok(_), Err(e)) => Err(e),
        }
    }
}
