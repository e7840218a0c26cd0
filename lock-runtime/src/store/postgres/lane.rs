//! The store's statement connections: a few lanes, each one connection (replaced when it
//! breaks) with its own bound on statements in flight. A key always takes the same lane,
//! so one process's statements on one lock reach the server in the order they were made;
//! different keys spread over the lanes, so the server runs them on as many backends
//! (one backend runs one connection's statements one after another, on one core).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio_postgres::Client;

use super::{
    failed,
    health::{health, started},
    pipeline::Pipeline,
    Conn, PostgresStore,
};
use crate::store::StoreError;

/// How many statement connections a store opens unless told otherwise.
pub const DEFAULT_POSTGRES_CONNECTIONS: usize = 2;

/// The most statement connections a store may be given.
pub(super) const MOST_CONNECTIONS: usize = 16;

pub(super) struct Lane {
    /// The connection in use, `None` until the first one or after a silent one was dropped.
    pub(super) current: Arc<ArcSwapOption<Conn>>,
    /// Held while the lane's connection is being replaced.
    pub(super) connecting: tokio::sync::Mutex<()>,
    /// What the lane's connection has in flight, bounded.
    pub(super) pipeline: Arc<Pipeline>,
}

impl Lane {
    pub(super) fn new() -> Self {
        Self {
            current: Arc::new(ArcSwapOption::empty()),
            connecting: tokio::sync::Mutex::new(()),
            pipeline: Arc::new(Pipeline::new()),
        }
    }
}

/// The lane of `key` among `lanes` (FNV-1a of the key).
pub(super) fn lane_of<'l>(lanes: &'l [Lane], key: &str) -> &'l Lane {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let index = usize::try_from(hash % lanes.len() as u64).unwrap_or(0);
    &lanes[index]
}

impl PostgresStore {
    /// A new connection, driven by a task of its own until it closes.
    pub(super) async fn open(
        &self,
    ) -> Result<(Client, tokio::task::AbortHandle), tokio_postgres::Error> {
        let (client, connection) = self.target.connect().await?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "PostgreSQL lock connection ended");
            }
        });
        if !self.synchronous_commit {
            client.batch_execute("SET synchronous_commit = off").await?;
        }
        Ok((client, driver.abort_handle()))
    }

    pub(super) async fn prepare(
        &self,
        lane: &Lane,
        client: Client,
        driver: tokio::task::AbortHandle,
    ) -> Result<Conn, tokio_postgres::Error> {
        let acquire = client.prepare(&self.sql.acquire).await?;
        let lease_left = client.prepare(&self.sql.lease_left).await?;
        let release = client.prepare(&self.sql.release).await?;
        let extend = client.prepare(&self.sql.extend).await?;
        let shared = self.sql.shared.prepare(&client).await?;
        Ok(Conn {
            client,
            driver,
            acquire,
            lease_left,
            release,
            extend,
            shared,
            pipeline: lane.pipeline.clone(),
        })
    }

    /// The connection of `key`'s lane, or a new one if it broke.
    pub(super) async fn conn(&self, key: &str) -> Result<Arc<Conn>, StoreError> {
        let lane = lane_of(&self.lanes, key);
        if let Some(conn) = lane.current.load_full() {
            if !conn.client.is_closed() {
                return Ok(conn);
            }
        }
        let _one_at_a_time = lane.connecting.lock().await;
        if let Some(conn) = lane.current.load_full() {
            if !conn.client.is_closed() {
                return Ok(conn);
            }
        }
        tracing::debug!("replacing the PostgreSQL lock connection");
        let fresh = async {
            let (client, driver) = self.open().await?;
            let conn = self.prepare(lane, client, driver).await?;
            self.server.observe(&started(&conn.client).await?);
            Ok::<_, tokio_postgres::Error>(conn)
        };
        let conn = tokio::time::timeout(self.bound, fresh)
            .await
            .map_err(|_| StoreError::TimedOut)?
            .map_err(failed)?;
        Ok(self.install(lane, conn))
    }

    /// Makes `conn` the connection in use, checked by a task of its own on the current
    /// runtime until it is replaced.
    pub(super) fn install(&self, lane: &Lane, conn: Conn) -> Arc<Conn> {
        let conn = Arc::new(conn);
        lane.current.store(Some(conn.clone()));
        let (current, mine) = (Arc::downgrade(&lane.current), conn.clone());
        let server = Arc::downgrade(&self.server);
        tokio::spawn(health(
            current,
            server,
            mine,
            self.health_interval,
            self.bound,
        ));
        conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_takes_one_lane_and_keys_spread() {
        let lanes: Vec<Lane> = (0..2).map(|_| Lane::new()).collect();
        let index = |key: &str| {
            let lane = lane_of(&lanes, key);
            lanes
                .iter()
                .position(|l| std::ptr::eq(l, lane))
                .expect("a lane")
        };
        let first: Vec<usize> = (0..64)
            .map(|i| index(&format!("lock:{{bench:{i}}}")))
            .collect();
        let again: Vec<usize> = (0..64)
            .map(|i| index(&format!("lock:{{bench:{i}}}")))
            .collect();
        assert_eq!(first, again);
        let on_first = first.iter().filter(|&&i| i == 0).count();
        assert!(
            (16..=48).contains(&on_first),
            "{on_first} of 64 on the first lane"
        );
    }
}
