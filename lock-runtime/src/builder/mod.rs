//! [`BackendBuilder`]: the settings of a [`Backend`], and opening its store (ZooKeeper's in
//! `zookeeper.rs`).

use std::time::Duration;

use crate::{
    backend::{Backend, DEFAULT_OP_TIMEOUT, DEFAULT_PREFIX},
    error::LockError,
    store::{ConnectSettings, MemoryStore, Store},
};

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "zookeeper")]
mod zookeeper;

#[cfg(feature = "postgres")]
pub use self::postgres::DEFAULT_POSTGRES_TABLE;
#[cfg(feature = "zookeeper")]
pub use self::zookeeper::DEFAULT_ZOOKEEPER_SESSION_TIMEOUT;

/// How often a Redis backend checks, unless configured otherwise, that its connection
/// still answers and still reaches the same server (same process, same replication
/// history): the longest time a restart or failover behind an open connection goes unseen.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_millis(200);
/// How long a release-notification channel nobody watches stays subscribed, unless
/// configured otherwise.
pub const DEFAULT_NOTIFICATION_IDLE: Duration = Duration::from_secs(10);

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
#[derive(Clone)]
pub struct BackendBuilder {
    prefix: String,
    op_timeout: Duration,
    redis: ConnectSettings,
    /// `restart_guard_on_connect` as set; unset, off for one server and on for Redlock.
    strict: Option<bool>,
    tls_root: Option<Vec<u8>>,
    #[cfg(feature = "zookeeper")]
    zookeeper: zookeeper::Settings,
    #[cfg(feature = "postgres")]
    postgres_table: String,
}

impl std::fmt::Debug for BackendBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendBuilder")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("redis", &self.redis)
            .field("tls_root", &self.tls_root.as_ref().map(|_| "PEM"))
            .finish()
    }
}

impl Default for BackendBuilder {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            op_timeout: DEFAULT_OP_TIMEOUT,
            redis: ConnectSettings {
                bound: DEFAULT_OP_TIMEOUT,
                restart_guard: Some(Duration::ZERO),
                strict: false,
                health_interval: DEFAULT_HEALTH_INTERVAL,
                notification_idle: DEFAULT_NOTIFICATION_IDLE,
                replicas: None,
            },
            strict: None,
            tls_root: None,
            #[cfg(feature = "zookeeper")]
            zookeeper: zookeeper::Settings::default(),
            #[cfg(feature = "postgres")]
            postgres_table: DEFAULT_POSTGRES_TABLE.to_owned(),
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

    /// The restart and failover hold of a Redis backend: `Some(longest_ttl)` to hold grants
    /// for at least `longest_ttl`, or `None` to turn the hold off.
    ///
    /// When the client sees that the server it talks to is not the one it talked to before
    /// (the process restarted: a new `run_id`; or a replica was promoted: a new replication
    /// id; on PostgreSQL, a new server start time: a restart, or a promoted standby), that
    /// server may have lost locks whose holders still work. From the moment it
    /// sees this, the client grants no lock for the longest TTL that any such lease can
    /// have: the longest of `longest_ttl`, every TTL this backend has granted or been asked
    /// for, and the TTL of the acquire being held. Acquires meanwhile fail with
    /// [`LockError::Recovering`], not [`LockError::Busy`].
    ///
    /// By default (`Some(Duration::ZERO)`) the hold is the longest TTL this backend has
    /// used, which covers other processes as long as they use the same TTLs for the same
    /// locks (as every caller of one `#[distributed_lock]` function does). Name a longer
    /// TTL here if other programs take the same locks with longer ones. Turn the hold off
    /// only for a server that persists every write (`appendfsync always`) and never fails
    /// over. A TTL over a year ([`MAX_TTL`](crate::MAX_TTL)) is refused when connecting,
    /// with [`LockError::InvalidInput`].
    #[must_use]
    pub fn restart_guard(mut self, longest_ttl: Option<Duration>) -> Self {
        self.redis.restart_guard = longest_ttl;
        self
    }

    /// Also hold grants when connecting for the first time to a server that has been up
    /// for less than the longest TTL: it may have restarted and lost locks that holders
    /// elsewhere still use.
    ///
    /// Off by default for one Redis server, Sentinel and Cluster; **on by default for
    /// Redlock** ([`redlock`](Self::redlock)), where a server that restarted empty, with
    /// another that was down while a holder acquired, would otherwise let a process started
    /// after the restart be granted a lock that is still held. Its cost: every process that
    /// starts within a TTL of a fresh Redis server (a deploy of both, a test suite) waits
    /// that long (acquires answer [`LockError::Recovering`]) before that server counts
    /// towards its grants; with Redlock, only as long as fewer than a majority of servers
    /// are older than the longest TTL. Without it, a process that first connects after a
    /// restart cannot tell that the restart happened; on one server, fencing tokens still
    /// protect resources, since they never go backwards (they are at least the server's
    /// clock in microseconds).
    #[must_use]
    pub fn restart_guard_on_connect(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }

    /// How often a Redis or PostgreSQL backend checks its connections
    /// ([`DEFAULT_HEALTH_INTERVAL`] by default): one `INFO` call (PostgreSQL: `SELECT 1`,
    /// on the statement connection and on the listening one), which must answer within the
    /// time bound. A connection that does not answer is replaced (a connection silenced by
    /// a network fault would otherwise stay until TCP gives up), and a Redis server with a
    /// new `run_id` or replication id starts the restart hold
    /// ([`restart_guard`](Self::restart_guard)). A change behind a connection that stays
    /// open (a proxy, a virtual IP) is seen within this interval.
    #[must_use]
    pub fn health_interval(mut self, every: Duration) -> Self {
        self.redis.health_interval = every;
        self
    }

    /// Grants a lock (and counts an extension) only once `replicas` replicas of the Redis
    /// primary confirmed the write, waiting at most `timeout` for them (`WAIT`, sent in the
    /// same round trip as the common `SET`; on a cluster, sent to the lock's primary right
    /// after). If fewer confirm, the acquire takes the key back
    /// and fails with [`LockError::NotReplicated`], and an extend fails so too. Off by
    /// default.
    ///
    /// Redis replicates asynchronously: without this, a primary that dies right after a
    /// grant may take the lock with it, and the replica promoted in its place lets a second
    /// owner in (the failover hold and fencing tokens are the protection then). With it, a
    /// lock is only granted once it is on `replicas` replicas, so promoting one of them keeps
    /// it. The cost: every grant waits for a replica's round trip, and the store's shared
    /// connection waits with it. `timeout` must be shorter than the time bound
    /// ([`op_timeout`](Self::op_timeout)); `replicas` and `timeout` must not be zero.
    ///
    /// **How many replicas to run**: grants need `replicas` replicas connected to the
    /// primary, also after a failover, when one of them has become the primary and the
    /// others must reconnect to it. So run at least `replicas + 1` replicas for grants to
    /// go on after a failover (one promoted, `replicas` left to confirm); with exactly
    /// `replicas`, no lock is granted after a failover until a replica is added. The client
    /// warns when it connects to, or fails over to, a primary with fewer replicas
    /// connected than it waits for.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use std::time::Duration;
    ///
    /// let backend = lock_runtime::Backend::builder()
    ///     .replicas_acknowledge(1, Duration::from_millis(100))
    ///     .redis_sentinel(["10.0.0.5:26379", "10.0.0.6:26379", "10.0.0.7:26379"], "locks")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn replicas_acknowledge(mut self, replicas: u32, timeout: Duration) -> Self {
        self.redis.replicas = Some((replicas, timeout));
        self
    }

    /// How long a Redis backend stays subscribed to the release notifications of a lock
    /// nobody in this process waits for any more ([`DEFAULT_NOTIFICATION_IDLE`] by
    /// default), in case a waiter comes back.
    #[must_use]
    pub fn notification_idle(mut self, idle: Duration) -> Self {
        self.redis.notification_idle = idle;
        self
    }

    /// For `rediss://` URLs (and PostgreSQL URLs with `sslmode=require`): trust this CA
    /// certificate (PEM) instead of the system's roots, for a server with a certificate of
    /// your own. Needs the `tls` feature.
    #[must_use]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// An in-memory backend: locks shared by the tasks of this process only.
    pub fn memory(self) -> Result<Backend, LockError> {
        self.store(MemoryStore::new())
    }

    /// Opens the backend a URL names: `memory://` for [`memory`](Self::memory), any Redis URL
    /// for [`redis`](Self::redis), `zookeeper://host:port,host:port[/chroot]` for
    /// [`zookeeper`](Self::zookeeper), `postgres://user@host/database` (or `postgresql://`)
    /// for [`postgres`](Self::postgres).
    pub async fn connect(self, url: &str) -> Result<Backend, LockError> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("memory") => self.memory(),
            Some(
                "redis" | "rediss" | "redis+unix" | "unix" | "redis+sentinel" | "redis+cluster"
                | "rediss+cluster" | "redis+redlock" | "rediss+redlock",
            ) => {
                #[cfg(feature = "redis")]
                return self.redis(url).await;
                #[cfg(not(feature = "redis"))]
                return Err(LockError::invalid(format!(
                    "`{}` is a Redis URL: Redis locks need lock-runtime's `redis` feature \
                     (on by default)",
                    crate::redact::url(url)
                )));
            }
            Some("zookeeper") => {
                #[cfg(feature = "zookeeper")]
                return self.zookeeper(&url["zookeeper://".len()..]).await;
                #[cfg(not(feature = "zookeeper"))]
                return Err(needs_feature(url, "ZooKeeper", "zookeeper"));
            }
            Some("postgres" | "postgresql") => {
                #[cfg(feature = "postgres")]
                return self.postgres(url).await;
                #[cfg(not(feature = "postgres"))]
                return Err(needs_feature(url, "PostgreSQL", "postgres"));
            }
            _ => Err(LockError::invalid(format!(
                "unsupported lock store URL `{}`: expected `memory://`, `redis://host:port`, \
                 `rediss://host:port`, `redis+unix:///path`, \
                 `redis+sentinel://host:port,host:port/service`, \
                 `redis+cluster://host:port,host:port`, \
                 `redis+redlock://host:port,host:port,host:port`, \
                 `zookeeper://host:port,host:port[/chroot]` or \
                 `postgres://user@host/database`",
                crate::redact::url(url)
            ))),
        }
    }

    /// A backend over a [`Store`] of your own.
    pub fn store(self, store: impl Store) -> Result<Backend, LockError> {
        self.boxed_store(Box::new(store))
    }

    fn boxed_store(self, store: Box<dyn Store>) -> Result<Backend, LockError> {
        self.check()?;
        if let Some(missing) = crate::store::missing_part(&*store) {
            return Err(LockError::invalid(missing));
        }
        Ok(Backend::new(store, self.prefix.into(), self.op_timeout))
    }

    fn check(&self) -> Result<(), LockError> {
        if self.prefix.len() > crate::MAX_PREFIX_LEN {
            return Err(LockError::invalid(format!(
                "the key prefix is {} bytes long; at most {} are allowed",
                self.prefix.len(),
                crate::MAX_PREFIX_LEN
            )));
        }
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

/// The constructors that start from settings: [`Backend::builder`] and its shortcuts.
impl Backend {
    /// Settings for a backend, to finish with a store.
    pub fn builder() -> BackendBuilder {
        BackendBuilder::default()
    }
}

/// Why a URL whose store's feature is off cannot be opened.
#[cfg(not(all(feature = "zookeeper", feature = "postgres")))]
fn needs_feature(url: &str, store: &str, feature: &str) -> LockError {
    LockError::invalid(format!(
        "`{}` names {store}: enable lock-runtime's `{feature}` feature",
        crate::redact::url(url)
    ))
}

#[cfg(test)]
mod tests {
    /// What `connect` says of `url`, expected to be a refusal at once.
    #[allow(dead_code)]
    fn refusal(url: &str) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let refused = runtime.block_on(super::BackendBuilder::default().connect(url));
        match refused {
            Err(crate::LockError::InvalidInput(why)) => why,
            other => panic!("{url}: {other:?}"),
        }
    }

    /// Without the `redis` feature, a Redis URL is refused at once, naming the feature.
    #[cfg(not(feature = "redis"))]
    #[test]
    fn a_redis_url_without_the_feature_names_it() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis+redlock://127.0.0.1:1,127.0.0.1:2",
        ] {
            let why = refusal(url);
            assert!(why.contains("`redis` feature"), "{why}");
        }
    }

    /// Without the `zookeeper` feature (whose builder methods are then absent, not failing
    /// at run time), a ZooKeeper URL is refused at once, naming the feature.
    #[cfg(not(feature = "zookeeper"))]
    #[test]
    fn a_zookeeper_url_without_the_feature_names_it() {
        let why = refusal("zookeeper://127.0.0.1:2181/app");
        assert!(why.contains("`zookeeper` feature"), "{why}");
    }

    /// The same for PostgreSQL, without a password in the message.
    #[cfg(not(feature = "postgres"))]
    #[test]
    fn a_postgres_url_without_the_feature_names_it() {
        let why = refusal("postgres://app:secret@127.0.0.1/app");
        assert!(why.contains("`postgres` feature"), "{why}");
        assert!(!why.contains("secret"), "{why}");
    }

    /// The same for Redlock, in a build with Redis but not Redlock.
    #[cfg(all(feature = "redis", not(feature = "redlock")))]
    #[test]
    fn a_redlock_url_without_the_feature_names_it() {
        let why = refusal("redis+redlock://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3");
        assert!(why.contains("`redlock` feature"), "{why}");
    }
}
