//! The Cluster store's connection: replaced when the runtime that drives it is gone or
//! its health check goes unanswered (see the module documentation above). The health
//! check also tells the shards (`shards.rs`) who each primary is and which slots it serves.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use redis::{
    cluster_async::ClusterConnection,
    cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo},
};

use super::{
    shards::{by_address, slot_ranges, Shards},
    ClusterStore,
};
use crate::store::{redis::alive::RuntimeAlive, StoreError};

/// The connection in use, whether the runtime that drives it still runs, and whether its
/// health check went unanswered.
pub(super) struct Current {
    pub(super) conn: ClusterConnection,
    pub(super) runtime: RuntimeAlive,
    silent: AtomicBool,
}

impl Current {
    pub(super) fn new(conn: ClusterConnection) -> Self {
        Self {
            conn,
            runtime: RuntimeAlive::current(),
            silent: AtomicBool::new(false),
        }
    }

    /// Whether requests may still be sent on it.
    fn usable(&self) -> bool {
        self.runtime.get() && !self.silent.load(Ordering::Acquire)
    }

    /// Its health check went unanswered: the next request opens a new connection first.
    pub(super) fn silenced(&self) {
        self.silent.store(true, Ordering::Release);
    }
}

impl ClusterStore {
    /// Starts the health task of `current`: it marks `current` silent when a look goes
    /// unanswered, and stops once `current` is replaced.
    pub(super) fn watch_shards(&self, current: Arc<Current>) {
        tokio::spawn(watch(
            Arc::downgrade(&self.shards),
            current,
            Arc::downgrade(&self.current),
            self.health_interval,
            self.bound,
        ));
    }

    /// The connection to send on; first a new one on this runtime if the runtime that
    /// drove the current one has shut down or the current one went silent.
    pub(super) async fn conn(&self) -> Result<ClusterConnection, StoreError> {
        {
            let current = self.current.load();
            if current.usable() {
                return Ok(current.conn.clone());
            }
        }
        // Boxed: the rare path would otherwise make every request's future larger.
        Box::pin(self.replace()).await
    }

    async fn replace(&self) -> Result<ClusterConnection, StoreError> {
        let _replacing = self.replacing.lock().await;
        let current = self.current.load_full();
        if current.usable() {
            return Ok(current.conn.clone());
        }
        tracing::debug!(
            runtime_gone = !current.runtime.get(),
            "the lock store connection cannot carry requests; reconnecting"
        );
        let mut conn = tokio::time::timeout(self.bound, self.client.get_async_connection())
            .await
            .map_err(|_| StoreError::TimedOut)?
            .map_err(Self::failed)?;
        // Waiters on other runtimes still watch these; a failure leaves them their re-check
        // timers.
        let watched: Vec<String> = self.channels.map().keys().cloned().collect();
        for name in watched {
            let subscribed = tokio::time::timeout(self.bound, conn.ssubscribe(&name)).await;
            if !matches!(subscribed, Ok(Ok(()))) {
                tracing::debug!(?subscribed, "subscribing again to a lock's channel failed");
            }
        }
        let installed = Arc::new(Current::new(conn.clone()));
        self.current.store(installed.clone());
        self.watch_shards(installed);
        Ok(conn)
    }
}

/// The health task of the connection `mine`: looks at the primaries every `interval`
/// until the store is gone or `mine` is no longer the `installed` one. A look unanswered
/// within `bound` marks `mine` silent (it is replaced before the next request) and ends
/// the task.
async fn watch(
    shards: Weak<Shards>,
    mine: Arc<Current>,
    installed: Weak<ArcSwap<Current>>,
    interval: Duration,
    bound: Duration,
) {
    let mut conn = mine.conn.clone();
    loop {
        let look = async {
            let mut info = redis::cmd("INFO");
            info.arg("server").arg("replication");
            let infos = conn
                .route_command(
                    info,
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                )
                .await?;
            let slots = conn
                .route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await?;
            Ok::<_, redis::RedisError>((infos, slots))
        };
        let looked = tokio::time::timeout(bound, look).await;
        let Some(strong) = shards.upgrade() else {
            return;
        };
        let still_mine = installed
            .upgrade()
            .is_some_and(|current| Arc::ptr_eq(&current.load(), &mine));
        if !still_mine {
            return;
        }
        let unanswered = match looked {
            Ok(Ok((infos, slots))) => {
                strong.observe(by_address(infos), slot_ranges(&slots));
                false
            }
            // The client's own response timeout (the same bound) may answer first.
            Err(_) => true,
            Ok(Err(e)) if e.is_timeout() => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "lock store shards: health check failed");
                false
            }
        };
        if unanswered {
            tracing::debug!("lock store shards: health check unanswered; replacing the connection");
            mine.silenced();
            return;
        }
        drop(strong);
        tokio::time::sleep(interval).await;
    }
}
