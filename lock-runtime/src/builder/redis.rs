//! The Redis part of [`BackendBuilder`] (feature `redis`): one server, Sentinel, Cluster and
//! Redlock.

use super::{located::located, BackendBuilder};
use std::time::Duration;

use crate::{
    backend::Backend,
    error::LockError,
    store::{RedisOptions, RedisStore},
};

#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
impl BackendBuilder {
    /// The settings only Redis stores have, all at once (replacing those set before, one
    /// by one, with [`replicas_acknowledge`](Self::replicas_acknowledge),
    /// [`notification_idle`](Self::notification_idle) and
    /// [`restart_guard_on_connect`](Self::restart_guard_on_connect)).
    #[must_use]
    pub fn redis_options(mut self, options: RedisOptions) -> Self {
        self.redis = options;
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
        self.redis = self.redis.restart_guard_on_connect(strict);
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
    ///     .connect("redis+sentinel://10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379/locks")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn replicas_acknowledge(mut self, replicas: u32, timeout: Duration) -> Self {
        self.redis = self.redis.replicas_acknowledge(replicas, timeout);
        self
    }

    /// How long a Redis backend stays subscribed to the release notifications of a lock
    /// nobody in this process waits for any more ([`DEFAULT_NOTIFICATION_IDLE`](crate::store::DEFAULT_NOTIFICATION_IDLE) by
    /// default), in case a waiter comes back.
    #[must_use]
    pub fn notification_idle(mut self, idle: Duration) -> Self {
        self.redis = self.redis.notification_idle(idle);
        self
    }

    /// Connects to Redis at `url` (`redis://`, `rediss://`, `redis+unix://` or `unix://`), to
    /// the primary that Redis Sentinels name
    /// (`redis+sentinel://[user:password@]host:port,host:port/service-name`; the user and
    /// password are the primary's), or to a Redis Cluster
    /// (`redis+cluster://[:password@]host:port,host:port`, any nodes of it;
    /// `rediss+cluster://` when its nodes speak TLS), within the time bound.
    ///
    /// TLS URLs need the crate's `tls` feature, `redis+sentinel://` its `sentinel` feature
    /// and `redis+cluster://` its `cluster` feature; without them such a URL is
    /// [`LockError::InvalidInput`]. Over TLS, [`tls_root_certificate`](Self::tls_root_certificate)
    /// names the CA to trust.
    ///
    /// With Sentinel, every new connection asks the sentinels for the primary again, and the
    /// store follows the sentinels' `+switch-master` announcements: a switch (or a lost
    /// connection, or a `READONLY` answer) moves it to the new primary, which it treats
    /// like a restarted server (no grant until every earlier lease has ended; see
    /// [`restart_guard`](Self::restart_guard)). The primary must answer `ROLE`.
    pub async fn redis(self, url: &str) -> Result<Backend, LockError> {
        if let Some(servers) = redlock_servers(url) {
            #[cfg(feature = "redlock")]
            return self.redlock(servers?).await;
            #[cfg(not(feature = "redlock"))]
            {
                let _ = servers?;
                return Err(LockError::invalid(format!(
                    "`{}` names Redlock: enable lock-runtime's `redlock` feature",
                    crate::redact::url(url)
                )));
            }
        }
        let settings = self.redis.settings(&self.connect_settings()?, false)?;
        let address = crate::redact::url(url);
        if url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://") {
            let store = crate::store::redis::cluster(url, self.tls_root.clone(), &settings)
                .await
                .map_err(|e| located("Redis Cluster", &address, e))?;
            return self.boxed_store(store);
        }
        let store = if url.contains("+sentinel://") {
            "Redis Sentinel"
        } else {
            "Redis"
        };
        let endpoint = crate::store::redis::endpoint(url, self.tls_root.clone())?;
        let connected = RedisStore::connect(endpoint, crate::redact::password(url), settings).await;
        self.store(connected.map_err(|e| located(store, &address, e))?)
    }

    /// Connects to the primary that the Redis Sentinels at `sentinels` (`host:port` each)
    /// name for `service`: the same as [`redis`](Self::redis) with
    /// `redis+sentinel://host:port,host:port/service`. Needs the crate's `sentinel` feature.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// let backend = lock_runtime::Backend::builder()
    ///     .redis_sentinel(["10.0.0.5:26379", "10.0.0.6:26379"], "locks")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub async fn redis_sentinel<S: AsRef<str>>(
        self,
        sentinels: impl IntoIterator<Item = S>,
        service: &str,
    ) -> Result<Backend, LockError> {
        let url = format!("redis+sentinel://{}/{service}", joined(sentinels));
        self.redis(&url).await
    }

    /// Connects to the Redis Cluster that `nodes` (`host:port` each, any nodes of it) belong
    /// to: the same as [`redis`](Self::redis) with `redis+cluster://host:port,host:port`.
    /// Needs the crate's `cluster` feature. For nodes that speak TLS, pass a
    /// `rediss+cluster://` URL to [`redis`](Self::redis).
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// let backend = lock_runtime::Backend::builder()
    ///     .redis_cluster(["10.0.0.5:6379", "10.0.0.6:6379", "10.0.0.7:6379"])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn redis_cluster<S: AsRef<str>>(
        self,
        nodes: impl IntoIterator<Item = S>,
    ) -> Result<Backend, LockError> {
        let url = format!("redis+cluster://{}", joined(nodes));
        self.redis(&url).await
    }

    /// Connects to the independent Redis servers at `urls` (each a URL as for
    /// [`redis`](Self::redis): `redis://`, `rediss://`, `redis+unix://`, or a Sentinel's)
    /// and takes every lock on a majority of them: the Redlock algorithm. Any minority of
    /// the servers may fail, stall or restart without losing a lock or stopping grants.
    /// The same as [`redis`](Self::redis) with `redis+redlock://host:port,host:port,...`.
    /// Needs the crate's `redlock` feature.
    ///
    /// - Every call goes to all servers at once, each within the time bound, and counts as
    ///   done when a majority (N/2+1) did it; a slow server does not delay a quick majority.
    /// - The lease runs from before the first request was sent, less the drift margin: an
    ///   acquire whose majority came later than that is refused and taken back.
    /// - When too many servers fail for a majority to decide, calls fail with
    ///   [`LockError::NoQuorum`]. Connecting needs a majority too; the others are connected
    ///   in the background.
    /// - A server that restarted grants nothing for the longest TTL, as one server does
    ///   after a restart ([`restart_guard`](Self::restart_guard)); so does a server younger
    ///   than the longest TTL when this process first connects
    ///   ([`restart_guard_on_connect`](Self::restart_guard_on_connect), on by default
    ///   here: a fresh process cannot otherwise tell that a server restarted empty).
    /// - There are no fencing tokens: an acquire that asks for one fails with
    ///   [`LockError::InvalidInput`]. Use one Redis or a Redis Cluster for fenced locks.
    ///
    /// An even number of servers is allowed (with a warning): it needs more of them to
    /// agree and tolerates no more failures than one server fewer.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// let backend = lock_runtime::Backend::builder()
    ///     .redlock(["redis://10.0.0.5:6379", "redis://10.0.1.5:6379", "redis://10.0.2.5:6379"])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redlock")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redlock")))]
    pub async fn redlock<S: AsRef<str>>(
        self,
        urls: impl IntoIterator<Item = S>,
    ) -> Result<Backend, LockError> {
        // The restart hold on connect is on by default for Redlock.
        let settings = self.redis.settings(&self.connect_settings()?, true)?;
        let urls: Vec<String> = urls.into_iter().map(|u| u.as_ref().to_owned()).collect();
        let address = urls
            .iter()
            .map(|url| crate::redact::url(url))
            .collect::<Vec<_>>()
            .join(", ");
        let store =
            crate::store::redlock::RedlockStore::connect(&urls, self.tls_root.clone(), settings)
                .await
                .map_err(|e| located("Redlock", &address, e))?;
        self.store(store)
    }
}

/// The constructors of Redis backends with the default settings.
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
impl Backend {
    /// Connects to Redis at `url` with the default settings.
    pub async fn redis(url: &str) -> Result<Self, LockError> {
        BackendBuilder::default().redis(url).await
    }

    /// Connects to the primary that the Redis Sentinels at `sentinels` name for `service`,
    /// with the default settings (see [`BackendBuilder::redis_sentinel`]).
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub async fn redis_sentinel<S: AsRef<str>>(
        sentinels: impl IntoIterator<Item = S>,
        service: &str,
    ) -> Result<Self, LockError> {
        BackendBuilder::default()
            .redis_sentinel(sentinels, service)
            .await
    }

    /// Connects to the Redis Cluster that `nodes` belong to, with the default settings (see
    /// [`BackendBuilder::redis_cluster`]).
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn redis_cluster<S: AsRef<str>>(
        nodes: impl IntoIterator<Item = S>,
    ) -> Result<Self, LockError> {
        BackendBuilder::default().redis_cluster(nodes).await
    }

    /// Takes locks on a majority of the independent Redis servers at `urls` (Redlock), with
    /// the default settings (see [`BackendBuilder::redlock`]).
    #[cfg(feature = "redlock")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redlock")))]
    pub async fn redlock<S: AsRef<str>>(
        urls: impl IntoIterator<Item = S>,
    ) -> Result<Self, LockError> {
        BackendBuilder::default().redlock(urls).await
    }
}

/// For a `redis+redlock://[user:password@]host:port,host:port[/db]` URL (`rediss+redlock://`
/// over TLS): one URL per server, each with the user, password and database; `None` for
/// any other URL.
fn redlock_servers(url: &str) -> Option<Result<Vec<String>, LockError>> {
    let (scheme, rest) = match url.split_once("://")? {
        ("redis+redlock", rest) => ("redis", rest),
        ("rediss+redlock", rest) => ("rediss", rest),
        _ => return None,
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    };
    let hosts: Vec<&str> = hosts.split(',').collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Some(Err(LockError::invalid(format!(
            "malformed Redlock URL `{}`: an empty server address",
            crate::redact::url(url)
        ))));
    }
    let path = if path.is_empty() {
        String::new()
    } else {
        format!("/{path}")
    };
    Some(Ok(hosts
        .into_iter()
        .map(|host| format!("{scheme}://{userinfo}{host}{path}"))
        .collect()))
}

#[cfg(any(feature = "sentinel", feature = "cluster"))]
/// `host:port` addresses joined with commas, for a URL.
fn joined<S: AsRef<str>>(addresses: impl IntoIterator<Item = S>) -> String {
    let addresses: Vec<String> = addresses
        .into_iter()
        .map(|a| a.as_ref().to_owned())
        .collect();
    addresses.join(",")
}

#[cfg(all(test, feature = "sentinel"))]
mod tests {
    use crate::Backend;

    #[tokio::test]
    async fn a_malformed_sentinel_url_is_invalid_input_without_its_password() {
        let error = Backend::redis("redis+sentinel://:hunter2@127.0.0.1:26379")
            .await
            .expect_err("no service name");
        let text = error.to_string();
        assert!(
            matches!(error, crate::LockError::InvalidInput { .. }),
            "{error:?}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("service"), "{text}");
    }
}
