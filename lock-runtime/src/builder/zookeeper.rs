//! The ZooKeeper part of [`BackendBuilder`].

use std::time::Duration;

use super::BackendBuilder;
use crate::{backend::Backend, error::LockError, store::ZooKeeperOptions};

#[cfg_attr(docsrs, doc(cfg(feature = "zookeeper")))]
impl BackendBuilder {
    /// The settings only the ZooKeeper store has, all at once (replacing those set before,
    /// one by one, with the `zookeeper_` methods).
    #[must_use]
    pub fn zookeeper_options(mut self, options: ZooKeeperOptions) -> Self {
        self.zookeeper = options;
        self
    }

    /// The session timeout a ZooKeeper backend asks for
    /// ([`DEFAULT_ZOOKEEPER_SESSION_TIMEOUT`](crate::DEFAULT_ZOOKEEPER_SESSION_TIMEOUT) by default; the server may grant another within
    /// its `minSessionTimeout`/`maxSessionTimeout`). A holder whose process dies keeps its
    /// locks until ZooKeeper ends its session, this long after it last heard from it; every
    /// lock's TTL must therefore be at least the granted timeout, or the acquire fails with
    /// [`LockError::InvalidInput`].
    #[must_use]
    pub fn zookeeper_session_timeout(mut self, timeout: Duration) -> Self {
        self.zookeeper = self.zookeeper.session_timeout(timeout);
        self
    }

    /// The ZooKeeper directory every lock has its own directory under (`/locks` by default):
    /// the lock `order:7` is `/locks/order:7` (below the connect string's chroot, if any).
    /// The key prefix ([`prefix`](Self::prefix)) is not used on ZooKeeper: separate
    /// applications with a root or a chroot of their own.
    #[must_use]
    pub fn zookeeper_root(mut self, root: impl Into<String>) -> Self {
        self.zookeeper = self.zookeeper.root(root);
        self
    }

    /// Which of Apache Curator's recipes exclusive locks (plain locks, and read-write locks'
    /// writers) on ZooKeeper follow: `InterProcessMutex` (`false`, the default: `lock-`
    /// nodes), or the write side of `InterProcessReadWriteLock` (`true`: `__WRIT__` nodes).
    /// Readers always follow `InterProcessReadWriteLock` (`__READ__` nodes), and this crate
    /// reads all three names in one lock, so Rust services exclude each other either way;
    /// the choice matters only to share locks with Java services using Curator, whose two
    /// recipes do not see each other's nodes: pick the one they use on those paths.
    #[must_use]
    pub fn zookeeper_curator_write_lock(mut self, write_lock: bool) -> Self {
        self.zookeeper = self.zookeeper.curator_write_lock(write_lock);
        self
    }

    /// Connects to ZooKeeper at `hosts` (`host:port,host:port[/chroot]`, as ZooKeeper's own
    /// clients take it) within the time bound; the same as [`connect`](Self::connect) with
    /// `zookeeper://host:port,host:port[/chroot]`. Needs the crate's `zookeeper` feature.
    ///
    /// Locks are taken as ZooKeeper's lock recipe and Apache Curator's `InterProcessMutex`
    /// take them, with Curator's node names, so a Java service using `InterProcessMutex` on
    /// `/locks/order:7` and a Rust service locking `order:7` here exclude each other:
    /// - waiting is a queue: waiters get the lock first come first served, across processes,
    ///   each woken only by the contender just before it;
    /// - the lease is the ZooKeeper session: when it ends, every lock it held is lost (the
    ///   body is told at once, as when a Redis lease runs out); while the connection is down,
    ///   locks count as held for a third of the session timeout. `ttl` still bounds a hold
    ///   that is not renewed, and must be at least the session timeout; `renew` asks
    ///   ZooKeeper only whether the node is still there;
    /// - fencing tokens are the zxid that created the holder's node, increasing across
    ///   server restarts and leader changes;
    /// - readers and semaphores keep Curator's `InterProcessReadWriteLock` and
    ///   `InterProcessSemaphoreV2` layouts, shared with Java services using those recipes
    ///   (for Curator's read-write lock, see
    ///   [`zookeeper_curator_write_lock`](Self::zookeeper_curator_write_lock)).
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use std::time::Duration;
    ///
    /// let backend = lock_runtime::Backend::builder()
    ///     .zookeeper_session_timeout(Duration::from_secs(10))
    ///     .zookeeper("10.0.0.5:2181,10.0.0.6:2181,10.0.0.7:2181/billing")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn zookeeper(self, hosts: &str) -> Result<Backend, LockError> {
        self.check()?;
        self.zookeeper.check()?;
        if hosts.is_empty()
            || hosts.starts_with('/')
            || hosts
                .split('/')
                .next()
                .unwrap_or_default()
                .split(',')
                .any(str::is_empty)
        {
            return Err(LockError::invalid(format!(
                "malformed ZooKeeper address `{hosts}`: expected `host:port,host:port[/chroot]`"
            )));
        }
        {
            use crate::store::zookeeper::{ZooKeeperSettings, ZooKeeperStore};
            let store = ZooKeeperStore::connect(ZooKeeperSettings::new(
                hosts,
                &self.zookeeper,
                self.connect.bound,
            ))
            .await
            .map_err(|e| super::located::located("ZooKeeper", hosts, e))?;
            self.store(store)
        }
    }
}

impl BackendBuilder {
    /// [`zookeeper`](Self::zookeeper) for the part of a `zookeeper://` URL after the
    /// scheme: the connect string, then settings after a `?` (`session_timeout=4s`,
    /// `root=/locks`, `curator_write_lock=true`), which override the builder's.
    pub(super) async fn zookeeper_url(mut self, rest: &str) -> Result<Backend, LockError> {
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            self.zookeeper = match name {
                "session_timeout" => self.zookeeper.session_timeout(url_duration(value)?),
                "root" => self.zookeeper.root(value),
                "curator_write_lock" => self.zookeeper.curator_write_lock(match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(LockError::invalid(format!(
                            "`curator_write_lock={value}` in a ZooKeeper URL: expected \
                             `true` or `false`"
                        )))
                    }
                }),
                _ => {
                    return Err(LockError::invalid(format!(
                        "unknown setting `{name}` in a ZooKeeper URL: expected \
                         `session_timeout` (e.g. `4s`), `root` (e.g. `/locks`) or \
                         `curator_write_lock` (`true` or `false`)"
                    )))
                }
            };
        }
        self.zookeeper(hosts).await
    }
}

/// A URL setting's duration: a whole number and a unit, `ms`, `s` or `m` (`4s`, `1500ms`).
fn url_duration(value: &str) -> Result<Duration, LockError> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(number) if millis > 0 => Ok(Duration::from_millis(number.saturating_mul(millis))),
        _ => Err(LockError::invalid(format!(
            "`session_timeout={value}` in a ZooKeeper URL: expected a whole number and a \
             unit, `ms`, `s` or `m` (e.g. `4s`)"
        ))),
    }
}

/// The ZooKeeper constructor that starts from the default settings.
#[cfg_attr(docsrs, doc(cfg(feature = "zookeeper")))]
impl Backend {
    /// Connects to ZooKeeper at `hosts` (`host:port,host:port[/chroot]`) with the default
    /// settings (see [`BackendBuilder::zookeeper`]).
    pub async fn zookeeper(hosts: &str) -> Result<Self, LockError> {
        BackendBuilder::default().zookeeper(hosts).await
    }
}
