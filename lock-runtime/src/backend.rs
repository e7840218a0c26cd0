//! A [`Backend`]: one store, with the settings every call on it shares (key prefix, time
//! bound). This is where a lock is acquired and where every store call is bounded in time.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::Instrument as _;

use crate::{
    error::LockError,
    guard::{Held, LockGuard},
    local::{Entry, LocalQueue},
    options::LockOptions,
    store::{AcquireRequest, Attempt, MemoryStore, RedisStore, Store, StoreFuture, Watch},
    token::Token,
};

/// The prefix put before every lock name unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "lock:";
/// The time bound on one store call unless configured otherwise.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest TTL in use, for the restart guard, unless configured otherwise.
pub const DEFAULT_RESTART_GUARD: Duration = Duration::from_secs(60);

/// First and longest pause before a waiter re-checks a busy lock without having been
/// notified of a release: the bound on how long a lost notification or an expired lock can
/// keep a waiter waiting.
const FIRST_RECHECK: Duration = Duration::from_millis(20);
const LONGEST_RECHECK: Duration = Duration::from_millis(200);
/// First pause before a failed background release is tried again.
const CLEANUP_RETRY: Duration = Duration::from_millis(10);
/// Pause before an acquire that met a store error is tried again.
const ERROR_RETRY: Duration = Duration::from_millis(20);

/// A lock store plus the settings shared by every lock taken in it. Cheap to clone.
///
/// Register it with [`init`](crate::init) or [`register`](crate::register) so that
/// [`acquire`](crate::acquire) and `#[distributed_lock]` find it, or call
/// [`Backend::acquire`] on it directly.
///
/// Lock names are stored as `{prefix}{{name}}` (for example `lock:{order:7}`): the prefix
/// keeps lock keys apart from application keys, and the braces are a Redis Cluster hash tag,
/// so every key belonging to one lock lands in one slot.
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
    prefix: Box<str>,
    op_timeout: Duration,
    local: LocalQueue,
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

/// Settings for a [`Backend`]; finish with [`memory`](Self::memory),
/// [`redis`](Self::redis), [`connect`](Self::connect) or [`store`](Self::store).
///
/// ```
/// use lock_runtime::Backend;
/// use std::time::Duration;
///
/// let backend = Backend::builder().prefix("app:locks:").memory()?;
/// # Ok::<(), lock_runtime::LockError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackendBuilder {
    prefix: String,
    op_timeout: Duration,
    restart_guard: Option<Duration>,
    restart_guard_strict: bool,
    tls_root: Option<Vec<u8>>,
}

impl Default for BackendBuilder {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            op_timeout: DEFAULT_OP_TIMEOUT,
            restart_guard: Some(DEFAULT_RESTART_GUARD),
            restart_guard_strict: false,
            tls_root: None,
        }
    }
}

impl BackendBuilder {
    /// The text put before every lock name ([`DEFAULT_PREFIX`] by default). It may not
    /// contain `{` or `}`, which Redis Cluster reads as a hash tag.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest time one store call may take ([`DEFAULT_OP_TIMEOUT`] by default). A call
    /// that takes longer fails with [`LockError::Timeout`].
    #[must_use]
    pub fn op_timeout(mut self, bound: Duration) -> Self {
        self.op_timeout = bound;
        self
    }

    /// The restart guard of a Redis backend: `Some(longest_ttl)`, the longest TTL any lock in
    /// this store uses ([`DEFAULT_RESTART_GUARD`] by default), or `None` to turn it off.
    ///
    /// When the client finds that the Redis server it talks to restarted (its `run_id`
    /// changed), the server may have lost every lock while their holders still work. The
    /// guard then grants no lock until the server has been up for `longest_ttl`, when every
    /// lease granted before the restart must have ended; acquires meanwhile find the lock
    /// busy. Turn it off for a server that persists every write with `appendfsync always`.
    /// A process that first connects after the restart cannot tell it happened, unless
    /// [`restart_guard_on_connect`](Self::restart_guard_on_connect) is on; fencing tokens
    /// protect resources in any case (their counter resumes from the server's clock).
    #[must_use]
    pub fn restart_guard(mut self, longest_ttl: Option<Duration>) -> Self {
        self.restart_guard = longest_ttl;
        self
    }

    /// Also apply the restart guard when connecting for the first time: if the server has
    /// been up for less than the longest TTL, it may have restarted and lost locks that
    /// holders elsewhere still use, so no lock is granted until it has been up that long.
    /// Off by default, because it also holds back every lock for a while after a server
    /// was freshly started.
    #[must_use]
    pub fn restart_guard_on_connect(mut self, strict: bool) -> Self {
        self.restart_guard_strict = strict;
        self
    }

    /// For `rediss://` URLs: trust this CA certificate (PEM) instead of the system's roots,
    /// for a server with a certificate of your own. Needs the `tls` feature.
    #[must_use]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// An in-memory backend: locks shared by the tasks of this process only.
    pub fn memory(self) -> Result<Backend, LockError> {
        self.store(MemoryStore::new())
    }

    /// Connects to Redis at `url` (`redis://`, `rediss://`, `redis+unix://` or `unix://`),
    /// within the time bound.
    ///
    /// `rediss://` needs the crate's `tls` feature; without it such a URL is
    /// [`LockError::InvalidInput`].
    pub async fn redis(self, url: &str) -> Result<Backend, LockError> {
        self.check()?;
        let client = crate::store::redis::client(url, self.tls_root.clone())?;
        let store = RedisStore::connect(
            client,
            self.op_timeout,
            self.restart_guard,
            self.restart_guard_strict,
        )
        .await?;
        self.store(store)
    }

    /// Opens the backend a URL names: `memory://` for [`memory`](Self::memory), any Redis URL
    /// for [`redis`](Self::redis).
    pub async fn connect(self, url: &str) -> Result<Backend, LockError> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("memory") => self.memory(),
            Some("redis" | "rediss" | "redis+unix" | "unix") => self.redis(url).await,
            _ => Err(LockError::invalid(format!(
                "unsupported lock store URL `{url}`: expected `memory://`, `redis://host:port`, \
                 `rediss://host:port` or `redis+unix:///path`"
            ))),
        }
    }

    /// A backend over a [`Store`] of your own.
    pub fn store(self, store: impl Store) -> Result<Backend, LockError> {
        self.check()?;
        Ok(Backend::new(
            Box::new(store),
            self.prefix.into(),
            self.op_timeout,
        ))
    }

    fn check(&self) -> Result<(), LockError> {
        if self.prefix.contains(['{', '}']) {
            return Err(LockError::invalid(format!(
                "key prefix `{}` may not contain `{{` or `}}`",
                self.prefix
            )));
        }
        if self.op_timeout.is_zero() {
            return Err(LockError::invalid(
                "the store call time bound must not be zero",
            ));
        }
        Ok(())
    }
}

impl Backend {
    /// Settings for a backend, to finish with a store.
    pub fn builder() -> BackendBuilder {
        BackendBuilder::default()
    }

    fn new(store: Box<dyn Store>, prefix: Box<str>, op_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                prefix,
                op_timeout,
                local: LocalQueue::default(),
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

    /// Connects to Redis at `url` with the default settings.
    pub async fn redis(url: &str) -> Result<Self, LockError> {
        BackendBuilder::default().redis(url).await
    }

    /// The store key for a lock name: `{prefix}{{name}}`.
    ///
    /// ```
    /// let backend = lock_runtime::Backend::builder().prefix("app:").memory()?;
    /// assert_eq!(backend.key_for("order:7"), "app:{order:7}");
    /// # Ok::<(), lock_runtime::LockError>(())
    /// ```
    pub fn key_for(&self, name: &str) -> String {
        let prefix = &self.inner.prefix;
        let mut key = String::with_capacity(prefix.len() + name.len() + 2);
        key.push_str(prefix);
        key.push('{');
        key.push_str(name);
        key.push('}');
        key
    }

    /// The lock name inside a key made by [`key_for`](Self::key_for).
    pub(crate) fn name_in<'k>(&self, key: &'k str) -> &'k str {
        key.get(self.inner.prefix.len() + 1..key.len().saturating_sub(1))
            .unwrap_or(key)
    }

    /// Takes the lock `name`, trying for up to `options.wait_for()` while another owner
    /// holds it.
    ///
    /// Tasks of this process that want the same lock queue first come first served, and
    /// only the first of them talks to the store. A waiter retries as soon as the store
    /// says the lock was released, and re-checks on a short timer in case that word is
    /// lost. Fails with [`LockError::Busy`] when the lock stayed taken, and with
    /// [`LockError::Backend`] or [`LockError::Timeout`] when the store failed; no call takes
    /// longer than the wait plus one store time bound.
    pub async fn acquire(&self, name: &str, options: &LockOptions) -> Result<LockGuard, LockError> {
        check_request(name, options.ttl())?;
        let token = Token::generate().map_err(|e| LockError::Backend {
            operation: "acquire",
            source: Box::new(e),
        })?;
        let key: Arc<str> = self.key_for(name).into();
        let span = tracing::debug_span!(
            "lock.acquire",
            key = name,
            ttl_ms = options.ttl().as_millis() as u64,
            wait_ms = options.wait_for().as_millis() as u64,
        );
        self.acquire_key(key, token, options).instrument(span).await
    }

    async fn acquire_key(
        &self,
        key: Arc<str>,
        token: Token,
        options: &LockOptions,
    ) -> Result<LockGuard, LockError> {
        let started = Instant::now();
        let deadline = started.checked_add(options.wait_for());
        let slot = match self.inner.local.enter(&key) {
            Entry::Owner(slot) => slot,
            Entry::Queued(ticket) => match ticket.wait(deadline).await {
                Some(slot) => slot,
                None => return Err(self.busy(&key, started)),
            },
        };
        let fence_key = options.fenced().then(|| fence_key(&key));
        let request = AcquireRequest {
            key: &key,
            token: &token,
            ttl: options.ttl(),
            fence_key: fence_key.as_deref(),
            reclaim: false,
        };
        match self.contend(request, deadline).await {
            Ok(Some((fence, sent_at))) => {
                // The lease is counted from before the request was sent: a conservative end.
                let lease_end = sent_at + options.ttl();
                let generation = slot.generation();
                slot.keep(lease_end);
                tracing::debug!(
                    outcome = "acquired",
                    waited_us = (sent_at - started).as_micros() as u64,
                    fence
                );
                let held = Held {
                    token,
                    fence,
                    generation,
                    lease_end,
                };
                Ok(LockGuard::new(self.clone(), key, held))
            }
            Ok(None) => {
                drop(slot);
                let err = self.busy(&key, started);
                tracing::debug!(outcome = "busy", error = %err);
                Err(err)
            }
            Err(err) => {
                tracing::debug!(outcome = "error", error = %err);
                Err(err)
            }
        }
    }

    /// Tries until the lock is ours (`Some((fence, when the winning request was sent))`) or
    /// `deadline` passes (`None`): at once; after a busy answer, once subscribed to release
    /// notifications, then after each notification and each re-check timer; after a store
    /// error, again shortly. A request whose outcome is unknown (it timed out or failed on the
    /// wire) may have taken the lock: the next try reclaims the key if it holds our token,
    /// and giving up deletes the key in the background if it does. The last answer decides
    /// the error: a store error or timeout is never reported as busy.
    async fn contend(
        &self,
        mut request: AcquireRequest<'_>,
        deadline: Option<Instant>,
    ) -> Result<Option<(Option<u64>, Instant)>, LockError> {
        let mut unknown = InFlight::new(self, request.key, request.token);
        // Release notifications, subscribed to only once the lock was found busy: the
        // uncontended path pays for none of it.
        let mut watch: Option<Watch> = None;
        let mut subscribe = false;
        let mut recheck = FIRST_RECHECK;
        let mut jitter = Jitter::from(request.token);
        loop {
            if std::mem::take(&mut subscribe) {
                watch = Some(self.subscribe(request.key).await);
            }
            // Listen before trying, so a release right after the try is not missed.
            let notified = watch.as_ref().map(|w| w.notify().notified());
            tokio::pin!(notified);
            if let Some(notified) = notified.as_mut().as_pin_mut() {
                notified.enable();
            }

            request.reclaim = unknown.armed();
            let sent_at = Instant::now();
            unknown.arm(sent_at + request.ttl);
            let failure = match self
                .bounded("acquire", self.store().try_acquire(request))
                .await
            {
                Ok(Attempt::Acquired { fence }) => {
                    unknown.disarm();
                    return Ok(Some((fence, sent_at)));
                }
                Ok(Attempt::Busy) => {
                    unknown.disarm();
                    None
                }
                Err(e) => Some(e),
            };
            let now = Instant::now();
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
            match failure {
                // `unknown`, still armed, deletes the key if the request did take it.
                Some(e) if left.is_zero() => return Err(e),
                None if left.is_zero() => return Ok(None),
                Some(e) => {
                    tracing::debug!(error = %e, "acquire failed; trying again");
                    tokio::time::sleep(ERROR_RETRY.min(left)).await;
                }
                None => match notified.as_mut().as_pin_mut() {
                    // Subscribe, then try again at once: a release in between would be missed.
                    None => subscribe = true,
                    Some(notified) => tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(jitter.spread(recheck).min(left)) => {
                            recheck = (recheck * 2).min(LONGEST_RECHECK);
                        }
                    },
                },
            }
        }
    }

    /// The store's release notifications for `key`, or none if it cannot give them now.
    async fn subscribe(&self, key: &str) -> Watch {
        match self.bounded("watch", self.store().watch(key)).await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::debug!(error = %e, "no release notifications; re-checking on a timer");
                Watch::none()
            }
        }
    }

    fn busy(&self, key: &str, started: Instant) -> LockError {
        LockError::Busy {
            key: self.name_in(key).to_owned(),
            waited: started.elapsed(),
        }
    }

    /// Runs one store call within the time bound.
    pub(crate) async fn bounded<T>(
        &self,
        operation: &'static str,
        call: StoreFuture<'_, T>,
    ) -> Result<T, LockError> {
        let after = self.inner.op_timeout;
        match tokio::time::timeout(after, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(LockError::Backend { operation, source }),
            Err(_) => Err(LockError::Timeout { operation, after }),
        }
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
        slot: Option<u64>,
        until: Instant,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(%key, "no runtime to release on; the lock expires with its TTL");
            if let Some(generation) = slot {
                self.local().pass(&key, generation);
            }
            return;
        };
        let backend = self.clone();
        runtime.spawn(async move {
            let mut pause = CLEANUP_RETRY;
            loop {
                let outcome = backend
                    .bounded("release", backend.store().release(&key, &token))
                    .await;
                tracing::debug!(%key, ?outcome, "background release");
                if outcome.is_ok() || Instant::now() + pause >= until {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_RECHECK);
            }
            if let Some(generation) = slot {
                backend.local().pass(&key, generation);
            }
        });
    }
}

fn check_request(name: &str, ttl: Duration) -> Result<(), LockError> {
    if name.is_empty() {
        return Err(LockError::invalid("the lock key is empty"));
    }
    check_ttl(ttl)
}

/// The longest TTL a lock may ask for: a year. Lease ends are computed on this process's
/// monotonic clock, which an unbounded TTL would overflow.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

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

/// Cleans up after an acquire whose outcome is unknown: the request timed out, failed on
/// the wire, or its future was dropped while it was in flight. Dropped armed, it deletes the
/// key in the background if the key turns out to hold our token.
struct InFlight<'a> {
    backend: &'a Backend,
    key: &'a str,
    token: &'a Token,
    /// While armed: when the key would expire by itself if a request did take it.
    expires: Option<Instant>,
}

impl<'a> InFlight<'a> {
    fn new(backend: &'a Backend, key: &'a str, token: &'a Token) -> Self {
        Self {
            backend,
            key,
            token,
            expires: None,
        }
    }

    fn arm(&mut self, expires: Instant) {
        self.expires = Some(self.expires.map_or(expires, |e| e.max(expires)));
    }

    fn armed(&self) -> bool {
        self.expires.is_some()
    }

    fn disarm(&mut self) {
        self.expires = None;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(expires) = self.expires {
            self.backend
                .release_in_background(self.key.into(), *self.token, None, expires);
        }
    }
}

/// Where the fencing counter of the lock at `key` lives: beside it, in the same hash slot.
fn fence_key(key: &str) -> String {
    let mut fence = String::with_capacity(key.len() + 6);
    fence.push_str(key);
    fence.push_str(":fence");
    fence
}

/// Spreads retry pauses so waiters on one key do not retry in lockstep.
struct Jitter(u64);

impl From<&Token> for Jitter {
    fn from(token: &Token) -> Self {
        let seed = token
            .as_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
            });
        Self(seed | 1)
    }
}

impl Jitter {
    /// A duration between half and all of `pause`.
    fn spread(&mut self, pause: Duration) -> Duration {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let fraction = 0.5 + (self.0 >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        pause.mul_f64(fraction)
    }
}
