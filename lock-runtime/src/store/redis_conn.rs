//! One multiplexed connection shared by every task, replaced in the background when it
//! breaks. A request on a broken connection fails at once (the caller sees a store error)
//! and starts the replacement; later requests use the new connection.
//!
//! A thin layer of our own: taking the connection is one `ArcSwap` load and a clone, which
//! keeps the per-request cost close to a bare `MultiplexedConnection`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
    time::Duration,
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
}

impl Connection {
    /// Opens the first connection (within `bound`), so a wrong address or password is
    /// reported now.
    pub(crate) async fn open(
        client: redis::Client,
        bound: Duration,
    ) -> Result<Arc<Self>, Option<RedisError>> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(bound))
            // The runtime bounds each call itself; this only stops a silent server from
            // piling requests up on the connection forever.
            .set_response_timeout(Some(bound.saturating_mul(4)));
        let first = tokio::time::timeout(
            bound,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| None)?
        .map_err(Some)?;
        Ok(Arc::new(Self {
            client,
            config,
            bound,
            current: ArcSwap::from_pointee(first),
            reconnecting: AtomicBool::new(false),
        }))
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
        let attempt = tokio::time::timeout(
            conn.bound,
            conn.client
                .get_multiplexed_async_connection_with_config(&conn.config),
        )
        .await;
        match attempt {
            Ok(Ok(fresh)) => {
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
