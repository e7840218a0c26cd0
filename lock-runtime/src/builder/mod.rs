//! [`BackendBuilder`]: the settings of a [`Backend`], and opening its store (ZooKeeper's in
//! `zookeeper.rs`).

use std::time::Duration;

use crate::{
    backend::{Backend, DEFAULT_OP_TIMEOUT, DEFAULT_PREFIX},
    error::LockError,
    store::{ConnectSettings, MemoryStore, Store},
};

#[cfg(any(feature = "redis", feature = "zookeeper", feature = "postgres"))]
mod located;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "zookeeper")]
mod zookeeper;

/// How often a Redis backend checks, unless configured otherwise, that its connection
/// still answers and still reaches the same server (same process, same replication
/// history): the longest time a restart or failover behind an open connection goes unseen.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_millis(200);

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
    /// What every store that connects is set up with, the time bound on every store call
    /// among it.
    connect: ConnectSettings,
    tls_root: Option<Vec<u8>>,
    #[cfg(feature = "redis")]
    redis: crate::store::RedisOptions,
    #[cfg(feature = "zookeeper")]
    zookeeper: crate::store::ZooKeeperOptions,
    #[cfg(feature = "postgres")]
    postgres: crate::store::PostgresOptions,
}

impl std::fmt::Debug for BackendBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendBuilder")
            .field("prefix", &self.prefix)
            .field("connect", &self.connect)
            .field("tls_root", &self.tls_root.as_ref().map(|_| "PEM"))
            .finish_non_exhaustive()
    }
}

impl Default for BackendBuilder {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            connect: ConnectSettings {
                bound: DEFAULT_OP_TIMEOUT,
                restart_guard: Some(Duration::ZERO),
                health_interval: DEFAULT_HEALTH_INTERVAL,
            },
            tls_root: None,
            #[cfg(feature = "redis")]
            redis: crate::store::RedisOptions::default(),
            #[cfg(feature = "zookeeper")]
            zookeeper: crate::store::ZooKeeperOptions::default(),
            #[cfg(feature = "postgres")]
            postgres: crate::store::PostgresOptions::default(),
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
        self.connect.bound = bound;
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
        self.connect.restart_guard = longest_ttl;
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
        self.connect.health_interval = every;
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
    /// for [`redis`](Self::redis), `zookeeper://host:port,host:port[/chroot][?settings]` for
    /// [`zookeeper`](Self::zookeeper) (settings: `session_timeout=4s`, `root=/locks`,
    /// `curator_write_lock=true`), `postgres://user@host/database` (or `postgresql://`)
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
                return self.zookeeper_url(&url["zookeeper://".len()..]).await;
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
                 `zookeeper://host:port,host:port[/chroot][?session_timeout=4s]` or \
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
        Ok(Backend::new(store, self.prefix.into(), self.connect.bound))
    }

    /// What a store that connects is set up with, checked (after [`check`](Self::check)).
    #[cfg(any(feature = "redis", feature = "postgres"))]
    fn connect_settings(&self) -> Result<ConnectSettings, LockError> {
        self.check()?;
        if self.connect.health_interval.is_zero() {
            return Err(LockError::invalid(
                "the health check interval must not be zero",
            ));
        }
        if let Some(longest) = self.connect.restart_guard.filter(|t| *t > crate::MAX_TTL) {
            return Err(LockError::invalid(format!(
                "restart_guard(Some({longest:?})): the longest TTL may be at most a year (as \
                 a lock's TTL), or no lock would ever be granted again after a restart"
            )));
        }
        Ok(self.connect.clone())
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
        if self.connect.bound.is_zero() {
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

    /// Each store's options are checked by the store before any connection: settings that
    /// cannot work are refused at once (no server listens on these addresses).
    #[test]
    fn each_stores_options_are_checked_before_connecting() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        #[allow(unused_mut)]
        let mut refusals: Vec<(super::BackendBuilder, &str, &str)> = Vec::new();
        #[cfg(feature = "redis")]
        refusals.push((
            super::BackendBuilder::default().redis_options(
                crate::store::RedisOptions::new()
                    .replicas_acknowledge(1, std::time::Duration::from_secs(5)),
            ),
            "redis://127.0.0.1:1",
            "shorter than the time bound",
        ));
        #[cfg(feature = "postgres")]
        refusals.push((
            super::BackendBuilder::default()
                .postgres_options(crate::store::PostgresOptions::new().table("Locks; drop")),
            "postgres://app@127.0.0.1:1/app",
            "Locks; drop",
        ));
        #[cfg(feature = "postgres")]
        for connections in [0, 17] {
            refusals.push((
                super::BackendBuilder::default().postgres_options(
                    crate::store::PostgresOptions::new().connections(connections),
                ),
                "postgres://app@127.0.0.1:1/app",
                "give 1 to 16 statement connections",
            ));
        }
        #[cfg(feature = "zookeeper")]
        refusals.push((
            super::BackendBuilder::default().zookeeper_options(
                crate::store::ZooKeeperOptions::new().session_timeout(std::time::Duration::ZERO),
            ),
            "zookeeper://127.0.0.1:1",
            "session timeout must not be zero",
        ));
        for (builder, url, says) in refusals {
            match runtime.block_on(builder.connect(url)) {
                Err(crate::LockError::InvalidInput(why)) => {
                    assert!(why.contains(says), "{url}: {why}");
                }
                other => panic!("{url}: {other:?}"),
            }
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
