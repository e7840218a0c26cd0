//! What a Redis server says of itself (`INFO`): who it is, how it is set up, its clock.

use std::time::Duration;

use redis::{aio::MultiplexedConnection, RedisError};

/// How long a server has surely been up, from `uptime_in_seconds`: Redis counts it as the
/// difference of two whole-second clock readings (now and the start, each cut to the
/// second), which says up to a second more than the truth (a start at 10.99 s looks a
/// second old at 11.00 s). A hold counted from the start must not end early, so the second
/// is taken off.
fn uptime_at_least(reported_secs: u64) -> Duration {
    Duration::from_secs(reported_secs.saturating_sub(1))
}

/// Who a server is: its process and its replication history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) run_id: String,
    pub(super) replication_id: String,
}

/// What `INFO` says.
#[derive(Debug)]
pub(super) struct Info {
    pub(super) identity: Identity,
    pub(super) uptime: Duration,
    pub(super) replica: bool,
    pub(super) eviction_policy: String,
    /// `server_time_usec`: the server's clock.
    pub(super) clock_us: u64,
    /// `connected_slaves`: the replicas connected to it now.
    pub(super) replicas: u32,
}

/// `INFO`, read; `None` where the user may not call it.
pub(super) async fn info(conn: &mut MultiplexedConnection) -> Result<Option<Info>, RedisError> {
    let text: String = match redis::cmd("INFO").query_async(conn).await {
        Ok(text) => text,
        Err(e) if e.code() == Some("NOPERM") => return Ok(None),
        Err(e) => return Err(e),
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Some(Info {
        identity: Identity {
            run_id: field("run_id"),
            replication_id: field("master_replid"),
        },
        uptime: uptime_at_least(field("uptime_in_seconds").parse().unwrap_or(0)),
        replica: field("role") == "slave",
        eviction_policy: field("maxmemory_policy"),
        clock_us: field("server_time_usec").parse().unwrap_or(0),
        replicas: field("connected_slaves").parse().unwrap_or(0),
    }))
}

/// Lock keys always carry a TTL, so every `volatile-*` policy can evict a held lock under
/// memory pressure, and so can every `allkeys-*` policy.
pub(super) fn warn_if_evicting(policy: &str) {
    if policy.starts_with("volatile-") || policy.starts_with("allkeys-") {
        tracing::warn!(
            policy,
            "the lock store's maxmemory-policy can evict lock keys under memory pressure, \
             freeing locks that are still held; use `noeviction` for the lock store"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::uptime_at_least;
    use std::time::Duration;

    #[test]
    fn a_reported_uptime_is_taken_as_a_second_less() {
        assert_eq!(uptime_at_least(0), Duration::ZERO);
        assert_eq!(uptime_at_least(1), Duration::ZERO);
        assert_eq!(uptime_at_least(30), Duration::from_secs(29));
    }
}
