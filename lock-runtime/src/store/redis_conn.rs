//! One multiplexed connection shared by every task, replaced in the background when it
//! breaks. A request on a broken connection fails at once (the caller sees a store error)
//! and starts the replacement; later requests use the new connection.
//!
//! A thin layer of our own: taking the connection is one `ArcSwap` load and a clone, which
//! keeps the per-request cost close to a bare `MultiplexedConnection`.
//!
//! It also watches for server restarts: every connection asks the server for its `run_id`
//! before it is used. When a replacement connection finds a different one, the server
//! restarted, and if it kept no data every lock granted before is gone while its holders
//! may still be working. The restart guard then holds new grants back until the server has
//! been up for the longest TTL in use, when every such lease must have ended.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError, Weak,
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, RedisError};

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const LONGEST_BACKOFF: Duration = Duration::from_millis(500);

pub(crate) struct Connection {
    client: redis::Client,
    config: AsyncConnectionConfig,
    bound: Duration,
    current: ArcSwap<MultiplexedConnection>,
    reconnecting: AtomicBool,
    /// The longest TTL in use, for the restart guard; `None`: no guard.
    restart_guard: Option<Duration>,
    /// Set while the restart guard holds grants back: the hot path reads only this.
    holding: AtomicBool,
    server: Mutex<Server>,
}

/// What this connection knows of the server it talks to.
struct Server {
    run_id: String,
    /// No lock may be granted before this, after an observed restart.
    grants_from: Option<Instant>,
}

impl Connection {
    /// Opens the first connection (within `bound`), so a wrong address or password is
    /// reported now.
    pub(crate) async fn open(
        client: redis::Client,
        bound: Duration,
        restart_guard: Option<Duration>,
        strict: bool,
    ) -> Result<Arc<Self>, Option<RedisError>> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(bound))
            // The runtime bounds each call itself; this only stops a silent server from
            // piling requests up on the connection forever.
            .set_response_timeout(Some(bound.saturating_mul(4)));
        let (first, run_id, uptime) = tokio::time::timeout(bound, connect(&client, &config))
            .await
            .map_err(|_| None)?
            .map_err(Some)?;
        // Strict: a server that has not been up for the longest TTL may have restarted
        // while some holder elsewhere still works; wait as after an observed restart.
        let grants_from = restart_guard
            .filter(|longest| strict && uptime < *longest)
            .map(|longest| Instant::now() + (longest - uptime));
        Ok(Arc::new(Self {
            client,
            config,
            bound,
            current: ArcSwap::from_pointee(first),
            reconnecting: AtomicBool::new(false),
            restart_guard,
            holding: AtomicBool::new(grants_from.is_some()),
            server: Mutex::new(Server {
                run_id,
                grants_from,
            }),
        }))
    }

    /// Whether locks may be granted now (false while the restart guard holds them back).
    pub(crate) fn grants_allowed(&self) -> bool {
        if !self.holding.load(Ordering::Acquire) {
            return true;
        }
        let mut server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        if server.grants_from.is_some_and(|from| Instant::now() < from) {
            return false;
        }
        server.grants_from = None;
        self.holding.store(false, Ordering::Release);
        true
    }

    /// Records the server behind a new connection; starts the restart guard if it is not
    /// the server seen before.
    fn observe(&self, run_id: String, uptime: Duration) {
        let mut server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        if server.run_id == run_id {
            return;
        }
        server.run_id = run_id;
        if let Some(longest) = self.restart_guard {
            let wait = longest.saturating_sub(uptime);
            tracing::warn!(
                ?wait,
                "the lock store restarted; no lock is granted until every earlier lease has ended"
            );
            server.grants_from = Some(Instant::now() + wait);
            self.holding.store(true, Ordering::Release);
        }
    }

    /// The current connection.
    pub(crate) fn get(&self) -> MultiplexedConnection {
        (**self.current.load()).clone()
    }

    /// Looks at a request's error: if the connection is broken, replaces it.
    pub(crate) fn check(self: &Arc<Self>, error: &RedisError) {
        if error.is_unrecoverable_error() || error.is_connection_dropped() || error.is_io_error() {
            self.reconnect();
        }
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
        let attempt = tokio::time::timeout(conn.bound, connect(&conn.client, &conn.config)).await;
        match attempt {
            Ok(Ok((fresh, run_id, uptime))) => {
                // Before the connection is used: a restart must hold grants back first.
                conn.observe(run_id, uptime);
                conn.current.store(Arc::new(fresh));
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

/// Opens a connection and asks the server who it is: its `run_id` and uptime.
async fn connect(
    client: &redis::Client,
    config: &AsyncConnectionConfig,
) -> Result<(MultiplexedConnection, String, Duration), RedisError> {
    let mut conn = client
        .get_multiplexed_async_connection_with_config(config)
        .await?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let uptime = Duration::from_secs(field("uptime_in_seconds").parse().unwrap_or(0));
    Ok((conn, field("run_id"), uptime))
}
