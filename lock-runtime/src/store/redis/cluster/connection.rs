//! The Cluster store's connection: replaced when the runtime that drives it is gone or
//! its health check goes unanswered (see the module documentation above).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use redis::cluster_async::ClusterConnection;

use super::{shards, ClusterStore};
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
}

impl ClusterStore {
    /// Starts the health task of `current`: it marks `current` silent when a look goes
    /// unanswered, and stops once `current` is replaced.
    pub(super) fn watch_shards(&self, current: Arc<Current>) {
        let shards = Arc::downgrade(&self.shards);
        let conn = current.conn.clone();
        let silent = move || current.silent.store(true, Ordering::Release);
        let installed = Arc::downgrade(&self.current);
        tokio::spawn(shards::watch(
            shards,
            conn,
            silent,
            installed,
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
