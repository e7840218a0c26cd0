//! One multiplexed connection shared by every task, replaced in the background when it
//! breaks, goes silent, or reaches a replica. A request on a broken connection fails at
//! once (the caller sees a store error) and starts the replacement; later requests use the
//! new connection. Taking the connection is one `ArcSwap` load and a clone, which keeps the
//! per-request cost close to a bare `MultiplexedConnection`.
//!
//! It also watches which server it talks to. Every new connection, and a health check on
//! a short period, ask the server (`INFO`) for its `run_id` (new after a restart) and its
//! replication id (new after a replica was promoted). When either changes, locks granted
//! before may be gone while their holders still work: from that moment no lock is granted
//! for the longest TTL any such lease can have (the restart hold). A health check that goes
//! unanswered within the time bound replaces the connection.
//!
//! A connection's driver task runs on the Tokio runtime that opened it, and dies with it
//! (see `alive.rs`); the next call then opens a new connection on its own runtime before it
//! sends anything, so no call fails for it.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError, Weak,
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, RedisError};

use super::RedisSettings;
use super::{
    alive::RuntimeAlive,
    endpoint::Endpoint,
    info::{info, warn_if_evicting, Identity, Info},
    script::Floor,
};
use crate::store::hold::RestartHold;

/// How far behind the highest clock or token seen a server's clock may be before it is
/// warned about (the health checks are this far apart at most, on the default interval).
const CLOCK_BEHIND_WARNING: Duration = Duration::from_secs(1);

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const LONGEST_BACKOFF: Duration = Duration::from_millis(500);

pub(crate) struct Connection {
    endpoint: Endpoint,
    config: AsyncConnectionConfig,
    bound: Duration,
    health_interval: Duration,
    current: ArcSwap<Current>,
    reconnecting: AtomicBool,
    /// Serialises the replacements of a connection whose runtime is gone.
    replacing: tokio::sync::Mutex<()>,
    /// No grant for the longest TTL after a restart or failover was seen.
    hold: RestartHold,
    /// Whether the server lets us call `INFO`.
    info_allowed: AtomicBool,
    /// The highest server clock (from `INFO`) or fencing token seen: fenced acquires draw
    /// their tokens above it.
    pub(super) floor: Floor,
    /// With `replicas_acknowledge`: how many replicas each grant waits for.
    wanted_replicas: Option<u32>,
    server: Mutex<Server>,
}

/// The connection in use, and whether the runtime that drives it still runs.
struct Current {
    conn: MultiplexedConnection,
    runtime: RuntimeAlive,
}

impl Current {
    fn new(conn: MultiplexedConnection) -> Arc<Self> {
        Arc::new(Self {
            conn,
            runtime: RuntimeAlive::current(),
        })
    }
}

/// What this connection knows of the server it talks to.
struct Server {
    identity: Option<Identity>,
    /// The `maxmemory-policy` last seen, so a bad one is warned about once.
    eviction_policy: String,
}

impl Connection {
    /// Opens the first connection (within the time bound), so a wrong address or password
    /// is reported now, and starts the health checks on the current runtime.
    pub(crate) async fn open(
        endpoint: Endpoint,
        settings: &RedisSettings,
    ) -> Result<Arc<Self>, Option<RedisError>> {
        let bound = settings.bound;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(bound))
            // The time bound of every request: the store bounds its own calls, so the
            // runtime arms no second timer (see `Capabilities::bounds_own_calls`).
            .set_response_timeout(Some(bound));
        let (first, info) = tokio::time::timeout(bound, connect(&endpoint, &config))
            .await
            .map_err(|_| None)?
            .map_err(Some)?;
        let mut eviction_policy = String::new();
        let (identity, hold_from) = match &info {
            None => {
                tracing::warn!(
                    "the lock store refuses `INFO` to this user: restart and failover \
                     detection is off (grant the user `+info`)"
                );
                (None, None)
            }
            Some(info) => {
                warn_if_evicting(&info.eviction_policy);
                eviction_policy.clone_from(&info.eviction_policy);
                // Strict: a server younger than the longest TTL may have restarted while a
                // holder elsewhere still works; hold from its start.
                let hold_from = (settings.strict && settings.restart_guard.is_some())
                    .then(|| Instant::now().checked_sub(info.uptime))
                    .flatten();
                (Some(info.identity.clone()), hold_from)
            }
        };
        let this = Arc::new(Self {
            endpoint,
            config,
            bound,
            health_interval: settings.health_interval,
            current: ArcSwap::new(Current::new(first)),
            reconnecting: AtomicBool::new(false),
            replacing: tokio::sync::Mutex::new(()),
            hold: RestartHold::new(settings.restart_guard),
            info_allowed: AtomicBool::new(info.is_some()),
            floor: Floor::default(),
            wanted_replicas: settings.replicas.map(|(wanted, _)| wanted),
            server: Mutex::new(Server {
                identity,
                eviction_policy,
            }),
        });
        if let Some(from) = hold_from {
            this.hold.start_at(from);
        }
        if let Some(info) = &info {
            this.floor.raise(info.clock_us);
            this.warn_if_short_of_replicas(info);
        }
        tokio::spawn(health(Arc::downgrade(&this), this.current.load_full()));
        Ok(this)
    }

    fn server(&self) -> std::sync::MutexGuard<'_, Server> {
        // No critical section below can panic half-way.
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers that a lease of `ttl` was asked for: the restart hold covers it.
    pub(crate) fn note_ttl(&self, ttl: Duration) {
        self.hold.note_ttl(ttl);
    }

    /// Whether an acquire of a lease of `ttl` must wait, and how much longer, because the
    /// restart hold runs.
    pub(crate) fn hold(&self, ttl: Duration) -> Option<Duration> {
        self.hold.left(ttl)
    }

    /// Looks at what `INFO` says now: a new identity starts the restart hold; a replica
    /// (the server was demoted) is left for a fresh connection.
    fn observe(self: &Arc<Self>, info: Info) {
        let before = self.floor.raise(info.clock_us);
        let behind = Duration::from_micros(before.saturating_sub(info.clock_us));
        if behind > CLOCK_BEHIND_WARNING {
            tracing::warn!(
                ?behind,
                "the lock store's clock is behind what this client saw before (a failover to \
                 a server whose clock lags?): its fencing tokens are drawn above the highest \
                 this client has seen, but other clients' may not be"
            );
        }
        let changed = {
            let mut server = self.server();
            if server.eviction_policy != info.eviction_policy {
                warn_if_evicting(&info.eviction_policy);
                server.eviction_policy.clone_from(&info.eviction_policy);
            }
            let before = server.identity.replace(info.identity.clone());
            match before {
                Some(before) if before != info.identity => Some(before),
                _ => None,
            }
        };
        if changed.is_some() {
            self.warn_if_short_of_replicas(&info);
        }
        if let Some(before) = changed {
            let hold = self.hold.start();
            let what = if before.run_id != info.identity.run_id {
                "restarted (new run_id)"
            } else {
                "failed over (new replication id)"
            };
            tracing::warn!(
                ?hold,
                "the lock store {what}: no lock is granted until every earlier lease has ended"
            );
        }
        if info.replica {
            tracing::warn!("the lock store answers as a replica; reconnecting");
            self.reconnect();
        }
    }

    /// With `replicas_acknowledge`, warns when the primary has fewer replicas connected
    /// than each grant waits for: no lock can be granted until enough connect (after a
    /// failover, the promoted replica starts with none).
    fn warn_if_short_of_replicas(&self, info: &Info) {
        match self.wanted_replicas {
            Some(wanted) if !info.replica && info.replicas < wanted => tracing::warn!(
                connected = info.replicas,
                wanted,
                "the lock store's primary has fewer replicas connected than \
                 replicas_acknowledge waits for: no lock is granted until enough connect"
            ),
            _ => {}
        }
    }

    /// Whether `error` came from a connection whose runtime shut down meanwhile: the
    /// runtime drops the connection's driver and its own watcher (see `alive.rs`) in no
    /// particular order, so a call from another runtime can meet the dead driver while the
    /// watcher still says the runtime runs. A dropped connection whose runtime is seen gone
    /// (or whose connection was replaced) within a moment is that case, and the call may be
    /// made once more, on a connection of the caller's runtime.
    pub(crate) async fn lost_with_its_runtime(&self, error: &crate::store::StoreError) -> bool {
        let dropped = error
            .driver_error::<RedisError>()
            .is_some_and(|e| e.is_connection_dropped() || e.is_io_error());
        if !dropped {
            return false;
        }
        let used = self.current.load_full();
        for _ in 0..10 {
            let now = self.current.load();
            if !used.runtime.get() || !Arc::ptr_eq(&now, &used) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// The current connection; first a new one on this runtime if the runtime that drove
    /// the current one has shut down.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<MultiplexedConnection, RedisError> {
        {
            let current = self.current.load();
            if current.runtime.get() {
                return Ok(current.conn.clone());
            }
        }
        // Boxed: the rare path would otherwise make every request's future larger.
        Box::pin(self.replace_for_this_runtime()).await
    }

    async fn replace_for_this_runtime(
        self: &Arc<Self>,
    ) -> Result<MultiplexedConnection, RedisError> {
        let _replacing = self.replacing.lock().await;
        let current = self.current.load_full();
        if current.runtime.get() {
            return Ok(current.conn.clone());
        }
        tracing::debug!("the runtime that drove the lock store connection is gone; reconnecting");
        let (fresh, info) = tokio::time::timeout(self.bound, connect(&self.endpoint, &self.config))
            .await
            .map_err(|_| RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        if let Some(info) = info {
            self.observe(info);
        }
        Ok(self.install(fresh))
    }

    /// Makes `conn` the connection in use, with health checks of its own on the current
    /// runtime (those of the connection it replaces stop by themselves).
    fn install(self: &Arc<Self>, conn: MultiplexedConnection) -> MultiplexedConnection {
        let current = Current::new(conn);
        let conn = current.conn.clone();
        self.current.store(current.clone());
        tokio::spawn(health(Arc::downgrade(self), current));
        conn
    }

    /// Looks at a request's error: if the connection is broken, or reaches a server that
    /// can no longer take writes (`READONLY`: it was demoted), replaces it.
    pub(crate) fn check(self: &Arc<Self>, error: &RedisError) {
        if error.is_unrecoverable_error()
            || error.is_connection_dropped()
            || error.is_io_error()
            || error.code() == Some("READONLY")
        {
            self.reconnect();
        }
    }

    /// The store's primary changed (Sentinel): a failover, so hold grants back now (the old
    /// primary may still answer for a while, without the locks its replica never got), and
    /// connect again, to the new one.
    pub(crate) fn moved(self: &Arc<Self>) {
        let hold = self.hold.start();
        tracing::warn!(
            ?hold,
            "the lock store failed over to a new primary: no lock is granted until every \
             earlier lease has ended"
        );
        self.reconnect();
    }

    fn reconnect(self: &Arc<Self>) {
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reconnecting.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(reconnect(Arc::downgrade(self)));
    }
}

async fn reconnect(this: Weak<Connection>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(conn) = this.upgrade() else {
            return;
        };
        let attempt = tokio::time::timeout(conn.bound, connect(&conn.endpoint, &conn.config)).await;
        match attempt {
            Ok(Ok((fresh, info))) => {
                // Before the connection is used: a restart must start the hold first.
                if let Some(info) = info {
                    conn.observe(info);
                }
                conn.install(fresh);
                conn.reconnecting.store(false, Ordering::Release);
                tracing::debug!("lock store connection replaced");
                return;
            }
            outcome => {
                tracing::debug!(
                    ?outcome,
                    ?backoff,
                    "lock store reconnection failed; retrying"
                );
            }
        }
        drop(conn);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LONGEST_BACKOFF);
    }
}

/// The health checks of the connection `mine`: every interval, `INFO` (or `PING` where
/// `INFO` is refused) within the time bound. No answer replaces the connection; an answer
/// is looked at for a restart or failover. They stop once `mine` is replaced.
async fn health(this: Weak<Connection>, mine: Arc<Current>) {
    loop {
        let Some(interval) = this.upgrade().map(|conn| conn.health_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(conn) = this.upgrade() else {
            return;
        };
        if !Arc::ptr_eq(&conn.current.load(), &mine) {
            return;
        }
        if conn.reconnecting.load(Ordering::Acquire) {
            continue;
        }
        let mut current = mine.conn.clone();
        let with_info = conn.info_allowed.load(Ordering::Relaxed);
        let check = async {
            if with_info {
                info(&mut current).await
            } else {
                redis::cmd("PING")
                    .query_async::<()>(&mut current)
                    .await
                    .map(|()| None)
            }
        };
        match tokio::time::timeout(conn.bound, check).await {
            Ok(Ok(Some(info))) => conn.observe(info),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "lock store health check failed");
                conn.check(&error);
            }
            Err(_) => {
                tracing::warn!(
                    bound = ?conn.bound,
                    "the lock store connection did not answer a health check; replacing it"
                );
                conn.reconnect();
            }
        }
    }
}

/// Opens a connection and asks the server who it is (`None` where `INFO` is refused).
async fn connect(
    endpoint: &Endpoint,
    config: &AsyncConnectionConfig,
) -> Result<(MultiplexedConnection, Option<Info>), RedisError> {
    let mut conn = endpoint
        .client()
        .await?
        .get_multiplexed_async_connection_with_config(config)
        .await?;
    let info = info(&mut conn).await?;
    Ok((conn, info))
}
