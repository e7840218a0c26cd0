//! Watching the server under the one connection: who it is (when it started, so a restart
//! is seen and grants are held back), and whether it still answers.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use arc_swap::ArcSwapOption;
use tokio_postgres::Client;

use super::Conn;
use crate::store::hold::RestartHold;

/// Who the server is (when it started), and the hold after that changed.
pub(super) struct Server {
    pub(super) started: Mutex<Option<String>>,
    pub(super) hold: RestartHold,
}

impl Server {
    /// Looks at the server's start time: a new one starts the restart hold.
    pub(super) fn observe(&self, started: &str) {
        let before = self
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(started.to_owned());
        if before.is_some_and(|before| before != started) {
            let hold = self.hold.start();
            tracing::warn!(
                ?hold,
                "the PostgreSQL lock server restarted, recovered from a crash or was replaced \
                 (a promoted standby?): no lock is granted until every earlier lease has ended"
            );
        }
    }
}

/// When the server's memory was last started afresh, by its own clock: when the server
/// started, or when it last recovered from a crash of one of its processes (the
/// postmaster then wipes shared memory, and with it WAL not yet written, but keeps its
/// start time; the shared statistics are reset at that moment, so `stats_reset` of
/// `pg_stat_bgwriter` tells it, readable by every role). An operator's
/// `pg_stat_reset_shared('bgwriter')` looks the same: a hold that was not needed.
macro_rules! started {
    () => {
        "GREATEST(pg_postmaster_start_time(), (SELECT stats_reset FROM pg_stat_bgwriter))"
    };
}

/// When the server on `client` started afresh (see `started!`), as text.
pub(super) async fn started(client: &Client) -> Result<String, tokio_postgres::Error> {
    client
        .query_one(concat!("SELECT ", started!(), "::text"), &[])
        .await?
        .try_get(0)
}

/// How long ago the server on `client` recovered from a crash, by its clock, if it has
/// since it started: a crash recovery (of the server, or after a backend crashed) resets
/// the shared statistics as it ends, so `stats_reset` is at or after the server's start
/// time; a clean start restores them from the clean shutdown before, older than its start
/// (so does a fresh cluster's first start: `initdb` wrote them).
pub(super) async fn since_crash(
    client: &Client,
) -> Result<Option<Duration>, tokio_postgres::Error> {
    let ms: Option<i64> = client
        .query_one(
            "SELECT CASE WHEN stats_reset >= pg_postmaster_start_time() THEN \
             (extract(epoch FROM clock_timestamp() - stats_reset) * 1000)::bigint END \
             FROM pg_stat_bgwriter",
            &[],
        )
        .await?
        .try_get(0)?;
    Ok(ms.map(|ms| Duration::from_millis(ms.max(0).unsigned_abs())))
}

/// The health checks of the connection `mine` while it is the one in use: the server's
/// start time every `interval`, answered within `bound`, or the connection is dropped (the
/// next call opens a new one) and its driver stopped.
pub(super) async fn health(
    current: std::sync::Weak<ArcSwapOption<Conn>>,
    server: std::sync::Weak<Server>,
    mine: Arc<Conn>,
    interval: Duration,
    bound: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(current) = current.upgrade() else {
            return;
        };
        if !current
            .load()
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &mine))
        {
            return;
        }
        match tokio::time::timeout(bound, started(&mine.client)).await {
            Ok(Ok(started)) => {
                if let Some(server) = server.upgrade() {
                    server.observe(&started);
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "PostgreSQL lock connection health check failed");
                // Broken: the next call sees it closed and replaces it. Still open (the
                // server refused the query): keep checking it.
                if mine.client.is_closed() {
                    return;
                }
            }
            Err(_) => {
                tracing::warn!(
                    ?bound,
                    "the PostgreSQL lock connection did not answer a health check; replacing it"
                );
                let silent = Some(mine.clone());
                current.compare_and_swap(&silent, None);
                mine.driver.abort();
                return;
            }
        }
    }
}
