//! A [`Backend`]: one store, with the settings every call on it shares (key prefix, time
//! bound). Every store call is bounded in time here; acquiring lives in `acquire.rs`, the
//! guard in `guard.rs`, both above this module.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    error::LockError,
    local::LocalQueue,
    metrics::{ErrorKind, LockMetrics, Metrics},
    options::LockOptions,
    store::{
        unsupported, Capabilities, LockKind, MemoryStore, Operation, Operators, SessionWatch,
        Store, StoreError, StoreFuture,
    },
    token::Token,
};

/// The prefix put before every lock name unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "lock:";
/// The time bound on one store call unless configured otherwise.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(1);

/// First pause before a failed background release is tried again.
const CLEANUP_RETRY: Duration = Duration::from_millis(10);
/// The longest pause between two tries of a failed background release.
const LONGEST_CLEANUP_RETRY: Duration = Duration::from_millis(200);
/// How many background releases of one backend may run at once. Past it (a store that
/// falls behind while callers give up in large numbers) a lock whose release would start
/// one is left to expire with its TTL, rather than piling up more work on the store.
const MOST_BACKGROUND_RELEASES: usize = 1024;

/// A lock store plus the settings shared by every lock taken in it. Cheap to clone.
///
/// Register it with [`init`](crate::init) or [`register`](crate::register) so that
/// [`acquire`](crate::acquire) and `#[distributed_lock]` find it, or call
/// [`Backend::acquire`] on it directly.
///
/// Each store keeps a lock under a key of its own making from the backend's prefix and the
/// lock's name ([`key_for`](Self::key_for)): Redis as `{prefix}{{name}}` (for example
/// `lock:{order:7}`; the braces are a Redis Cluster hash tag, so every key belonging to one
/// lock lands in one slot), PostgreSQL the same in its table's `name` column, ZooKeeper as
/// a directory under its root, memory as `{prefix}{name}`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::builder()
///     .prefix("billing:lock:")
///     .op_timeout(Duration::from_millis(500))
///     .connect("memory://")
///     .await?;
/// let options = LockOptions::new(Duration::from_secs(10));
/// let guard = backend.acquire("invoice:42", &options).await?;
/// assert!(backend.acquire("invoice:42", &options).await.unwrap_err().is_busy());
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Backend {
    inner: Arc<Inner>,
}

struct Inner {
    store: Box<dyn Store>,
    /// What the store declared it can do, asked once.
    capabilities: Capabilities,
    prefix: Box<str>,
    op_timeout: Duration,
    local: LocalQueue,
    metrics: Metrics,
    /// Background releases running now.
    background: AtomicUsize,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("store", &self.inner.store)
            .field("prefix", &self.inner.prefix)
            .field("op_timeout", &self.inner.op_timeout)
            .finish()
    }
}

impl Backend {
    pub(crate) fn new(store: Box<dyn Store>, prefix: Box<str>, op_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                capabilities: store.capabilities(),
                metrics: Metrics::new(store.capabilities().label()),
                store,
                prefix,
                op_timeout,
                local: LocalQueue::default(),
                background: AtomicUsize::new(0),
            }),
        }
    }

    /// An in-memory backend with the default settings.
    pub fn memory() -> Self {
        Self::new(
            Box::new(MemoryStore::new()),
            DEFAULT_PREFIX.into(),
            DEFAULT_OP_TIMEOUT,
        )
    }

    /// The key the store keeps the lock `name` under (see [`Store::key`]): on Redis and
    /// PostgreSQL `{prefix}{{name}}`, on ZooKeeper the lock's directory under the root, in
    /// memory `{prefix}{name}`.
    ///
    /// ```
    /// let backend = lock_runtime::Backend::builder().prefix("app:").memory()?;
    /// assert_eq!(backend.key_for("order:7"), "app:order:7");
    /// # Ok::<(), lock_runtime::LockError>(())
    /// ```
    pub fn key_for(&self, name: &str) -> String {
        self.store().key(&self.inner.prefix, name)
    }

    /// The lock name inside a key made by [`key_for`](Self::key_for).
    pub(crate) fn name_in<'k>(&self, key: &'k str) -> &'k str {
        self.store().name_in(&self.inner.prefix, key)
    }

    /// Runs one store call within the time bound: with a timer of its own, unless the store
    /// ends its calls at the bound itself.
    pub(crate) async fn bounded<T>(
        &self,
        operation: Operation,
        call: StoreFuture<'_, T>,
    ) -> Result<T, LockError> {
        let after = self.inner.op_timeout;
        let started = self.inner.metrics.start(operation);
        let outcome = if self.inner.capabilities.has_own_bounds() {
            call.await
        } else {
            match tokio::time::timeout(after, call).await {
                Ok(outcome) => outcome,
                Err(_) => Err(StoreError::TimedOut),
            }
        };
        let failed = outcome.as_ref().err().map(error_kind);
        self.inner.metrics.called(operation, started, failed);
        outcome.map_err(|source| store_failure(operation, after, source))
    }

    /// How long the store keeps a lease of `ttl` taken with a lock delay of `delay`: a
    /// store whose keys expire keeps the key `delay` past the holder's lease (so a holder
    /// that vanished leaves it taken that much longer); a store whose leases are sessions
    /// is told the delay instead ([`AcquireRequest::lock_delay`](crate::store::AcquireRequest::lock_delay)).
    pub(crate) fn store_ttl(&self, ttl: Duration, delay: Duration) -> Duration {
        match self.inner.capabilities.has_session_leases() {
            true => ttl,
            false => ttl.saturating_add(delay),
        }
    }

    /// The time bound on one store call.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.inner.op_timeout
    }

    /// The instruments of the locks `options` take.
    pub(crate) fn lock_metrics(&self, options: &LockOptions) -> &'static LockMetrics {
        self.inner
            .metrics
            .lock(options.template(), options.client_label())
    }

    /// What this backend's store can do (see the capability table in the README).
    ///
    /// ```
    /// use lock_runtime::{store::LockKind, Backend};
    ///
    /// let backend = Backend::memory();
    /// assert!(backend.capabilities().supports(LockKind::Read));
    /// assert!(backend.capabilities().has_fencing());
    /// assert_eq!(backend.capabilities().label(), "memory");
    /// ```
    pub fn capabilities(&self) -> Capabilities {
        self.inner.capabilities
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// Tells backends apart: equal for clones of one backend.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    pub(crate) fn local(&self) -> &LocalQueue {
        &self.inner.local
    }

    /// Deletes `key` if it holds `token`, on the current Tokio runtime, without waiting;
    /// then, for a guard (`slot` is its generation), lets the next local waiter have its
    /// turn. A failed delete is tried again until `until`, when the key would have expired
    /// anyway: a connection that broke must not leave the lock orphaned for its whole TTL.
    /// Used when a guard is dropped unreleased and when an acquire's outcome is unknown.
    pub(crate) fn release_in_background(
        &self,
        key: Arc<str>,
        token: Token,
        how: LetGo,
        slot: Option<u64>,
        until: Instant,
    ) {
        // The local slot is passed on however the task ends: also if the runtime shuts down
        // before it ran (the store's key then expires with its TTL).
        let pass = PassOnDrop {
            backend: self.clone(),
            key: key.clone(),
            slot,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(%key, "no runtime to release on; the lock expires with its TTL");
            return;
        };
        let running = &self.inner.background;
        if running.fetch_add(1, Ordering::Relaxed) >= MOST_BACKGROUND_RELEASES {
            running.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(%key, "too many background releases; the lock expires with its TTL");
            return;
        }
        // Counted down however the task ends, as `pass` is passed on.
        let count = Counted(self.clone());
        let backend = self.clone();
        runtime.spawn(async move {
            let _pass = pass;
            let _count = count;
            let mut pause = CLEANUP_RETRY;
            loop {
                let outcome = backend
                    .bounded(Operation::Release, backend.store_let_go(&key, &token, how))
                    .await;
                tracing::debug!(%key, ?outcome, "background release");
                if outcome.is_ok() || Instant::now() + pause >= until {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_CLEANUP_RETRY);
            }
        });
    }
}

/// How a holder lets go of a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LetGo {
    /// Released, held alone.
    Release,
    /// Released, held as one of several holders (a reader or a permit).
    ReleaseShared,
    /// Its lease ran out with a lock delay: not released, so the delay holds; on a store
    /// whose leases are sessions, its place is given up as a lost holder's is
    /// ([`Sessions::abandon`](crate::store::Sessions::abandon)).
    Abandon,
}

impl LetGo {
    /// A release, of a lock held alone or (`shared`) as one of several holders.
    pub(crate) fn release(shared: bool) -> Self {
        match shared {
            false => Self::Release,
            true => Self::ReleaseShared,
        }
    }
}

impl Backend {
    /// Lets go of `key` held by `token` as `how` says: on a store whose keys expire, an
    /// abandoned lock is left to expire (its TTL includes the delay).
    pub(crate) fn store_let_go<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        how: LetGo,
    ) -> StoreFuture<'a, bool> {
        match how {
            LetGo::Release => self.store_release(key, token, false),
            LetGo::ReleaseShared => self.store_release(key, token, true),
            LetGo::Abandon => match self.store().sessions() {
                Some(sessions) => sessions.abandon(key, token),
                None => Box::pin(std::future::ready(Ok(true))),
            },
        }
    }

    /// The store's release of `key` held by `token`, exclusively or (`shared`) as one of
    /// several holders.
    pub(crate) fn store_release<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        shared: bool,
    ) -> StoreFuture<'a, bool> {
        match shared {
            false => self.store().release(key, token),
            true => match self.store().shared() {
                Some(shared) => shared.release_shared(key, token),
                None => unsupported(),
            },
        }
    }

    /// The state of the session holding `key` for `token`, on a store whose leases are
    /// sessions.
    pub(crate) fn sessions(&self, key: &str, token: &Token) -> Option<SessionWatch> {
        self.store().sessions()?.session(key, token)
    }

    /// The store's operators' part, or, for a store without one (a store of the user's
    /// own), an error that says so before any call.
    pub(crate) fn operators(&self, operation: Operation) -> Result<&dyn Operators, LockError> {
        self.store().operators().ok_or_else(|| {
            LockError::invalid(format!(
                "the `{}` store has no operators' calls ({operation} needs them: see \
                 `Store::operators`)",
                self.inner.capabilities.label()
            ))
        })
    }

    /// The store's extension of `key` held by `token`, as [`store_release`](Self::store_release).
    pub(crate) fn store_extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
        shared: bool,
    ) -> StoreFuture<'a, bool> {
        match shared {
            false => self.store().extend(key, token, ttl),
            true => match self.store().shared() {
                Some(shared) => shared.extend_shared(key, token, ttl),
                None => unsupported(),
            },
        }
    }
}

/// What kind of failure a store error is, for the metrics.
fn error_kind(source: &StoreError) -> ErrorKind {
    match source {
        StoreError::TimedOut => ErrorKind::Timeout,
        StoreError::NotAcknowledged { .. } => ErrorKind::NotReplicated,
        StoreError::NoQuorum { .. } => ErrorKind::NoQuorum,
        _ => ErrorKind::Backend,
    }
}

/// The error a store call for `operation`, bounded by `after`, failed with, as the caller
/// sees it.
pub(crate) fn store_failure(
    operation: Operation,
    after: Duration,
    source: StoreError,
) -> LockError {
    match source {
        StoreError::TimedOut => LockError::Timeout { operation, after },
        StoreError::KindMismatch(message) => LockError::InvalidInput(message),
        StoreError::NotAcknowledged {
            acknowledged,
            wanted,
            timeout,
        } => LockError::NotReplicated {
            operation,
            acknowledged,
            wanted,
            waited: timeout,
        },
        StoreError::NoQuorum {
            failed,
            nodes,
            needed,
            source,
        } => LockError::NoQuorum {
            operation,
            failed,
            nodes,
            needed,
            source: source.map(|source| *source),
        },
        source => LockError::Backend { operation, source },
    }
}

/// Passes a guard's local slot on when dropped.
/// Counts one background release as running while it lives.
struct Counted(Backend);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.inner.background.fetch_sub(1, Ordering::Relaxed);
    }
}

struct PassOnDrop {
    backend: Backend,
    key: Arc<str>,
    slot: Option<u64>,
}

impl Drop for PassOnDrop {
    fn drop(&mut self) {
        if let Some(generation) = self.slot {
            self.backend.local().pass(&self.key, generation);
        }
    }
}

/// The longest lock name, in bytes, that every store can hold, with a key prefix of up to
/// [`MAX_PREFIX_LEN`] bytes: PostgreSQL's primary-key entries (at most about 2.7 kB) and
/// `NOTIFY` payloads (under 8000 bytes), ZooKeeper's paths and Redis keys. A longer name
/// is [`LockError::InvalidInput`] on every store (and a compile error in a key template
/// whose text alone is longer).
pub const MAX_NAME_LEN: usize = 1024;

/// The longest key prefix ([`BackendBuilder::prefix`](crate::BackendBuilder::prefix)), in bytes.
pub const MAX_PREFIX_LEN: usize = 256;

/// Refuses an empty name and one over [`MAX_NAME_LEN`].
pub(crate) fn check_name(name: &str) -> Result<(), LockError> {
    if name.is_empty() {
        return Err(LockError::invalid("the lock key is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        let start: String = name.chars().take(40).collect();
        return Err(LockError::invalid(format!(
            "the lock key `{start}…` is {} bytes long; every store takes at most {MAX_NAME_LEN}",
            name.len()
        )));
    }
    Ok(())
}

/// The longest TTL a lock may ask for: a year. Lease ends are computed on this process's
/// monotonic clock, which an unbounded TTL would overflow.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Refuses a lock delay longer than [`MAX_TTL`], and one on a shared kind (readers and
/// permits have no lock delay).
pub(crate) fn check_lock_delay(kind: LockKind, delay: Duration) -> Result<(), LockError> {
    if delay.is_zero() {
        return Ok(());
    }
    if kind.is_shared() {
        return Err(LockError::invalid(
            "a lock delay is for exclusive (write) locks; readers and permits take none",
        ));
    }
    if delay > MAX_TTL {
        return Err(LockError::invalid(format!(
            "the lock delay must be at most a year ({MAX_TTL:?}), got {delay:?}"
        )));
    }
    Ok(())
}

pub(crate) fn check_ttl(ttl: Duration) -> Result<(), LockError> {
    if ttl < Duration::from_millis(1) {
        return Err(LockError::invalid(format!(
            "the lock TTL must be at least 1ms, got {ttl:?}"
        )));
    }
    if ttl > MAX_TTL {
        return Err(LockError::invalid(format!(
            "the lock TTL must be at most a year ({MAX_TTL:?}), got {ttl:?}"
        )));
    }
    Ok(())
}
