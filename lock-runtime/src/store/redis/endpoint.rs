//! Where the store's connections go: one server named by its URL, or, with the `sentinel`
//! feature, whichever server the Redis Sentinels name as the primary at the moment of
//! connecting. Every (re)connection asks again, so after a failover the next connection
//! reaches the new primary; the connection's identity check then sees a new server and
//! holds grants back (see `conn.rs`).

use redis::RedisResult;

#[derive(Clone)]
pub(crate) enum Endpoint {
    Server(Box<redis::Client>),
    #[cfg(feature = "sentinel")]
    Sentinel(std::sync::Arc<Sentinels>),
}

/// The sentinels of one service.
#[cfg(feature = "sentinel")]
pub(crate) struct Sentinels {
    client: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
    service: String,
    /// The sentinels' URLs (`redis://host:port`, no secret), for `lockctl doctor`.
    addresses: Vec<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Addresses may carry a password: show neither.
        match self {
            Self::Server(_) => f.write_str("Endpoint::Server"),
            #[cfg(feature = "sentinel")]
            Self::Sentinel(_) => f.write_str("Endpoint::Sentinel"),
        }
    }
}

impl Endpoint {
    /// A client for the server to talk to now: for Sentinel, the primary the sentinels name
    /// (and which itself answers `ROLE` as a primary).
    pub(crate) async fn client(&self) -> RedisResult<redis::Client> {
        match self {
            Self::Server(client) => Ok((**client).clone()),
            #[cfg(feature = "sentinel")]
            Self::Sentinel(sentinels) => sentinels.client.lock().await.async_get_client().await,
        }
    }

    /// For Sentinel: spawns a task that calls `switched(target)` each time a sentinel
    /// announces a new primary for the service (`+switch-master`), so that connections move
    /// at once rather than at their next failure or health check (a primary that is demoted
    /// later, rather than killed, takes writes until then). The task ends once `target` is
    /// gone. Nothing for one server.
    pub(crate) fn follow_switches<T: Send + Sync + 'static>(
        &self,
        bound: std::time::Duration,
        target: std::sync::Weak<T>,
        switched: fn(&std::sync::Arc<T>),
    ) {
        match self {
            Self::Server(_) => {
                let _ = (bound, target, switched);
            }
            #[cfg(feature = "sentinel")]
            Self::Sentinel(sentinels) => {
                tokio::spawn(follow(sentinels.clone(), bound, target, switched));
            }
        }
    }
}

impl Endpoint {
    /// What `lockctl doctor` checks of the endpoint itself: for Sentinel, that the
    /// sentinels answer, can reach their quorum, and name one primary; nothing for one
    /// server. Each sentinel's calls are bounded by `bound`.
    pub(crate) async fn diagnose(&self, bound: std::time::Duration) -> Vec<crate::store::Finding> {
        match self {
            Self::Server(_) => {
                let _ = bound;
                Vec::new()
            }
            #[cfg(feature = "sentinel")]
            Self::Sentinel(sentinels) => sentinels.diagnose(bound).await,
        }
    }
}

#[cfg(feature = "sentinel")]
impl Sentinels {
    async fn diagnose(&self, bound: std::time::Duration) -> Vec<crate::store::Finding> {
        use crate::store::Finding;

        let service = &self.service;
        let (mut unreachable, mut quorum, mut named) = (Vec::new(), Vec::new(), Vec::new());
        for url in &self.addresses {
            let address = url.trim_start_matches("redis://");
            let asked = tokio::time::timeout(bound, async {
                let client = redis::Client::open(url.as_str())?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                let mut check = redis::cmd("SENTINEL");
                check.arg("CKQUORUM").arg(service);
                let checked: RedisResult<String> = check.query_async(&mut conn).await;
                let mut primary = redis::cmd("SENTINEL");
                primary.arg("GET-MASTER-ADDR-BY-NAME").arg(service);
                let primary: Option<(String, String)> = primary.query_async(&mut conn).await?;
                RedisResult::Ok((checked, primary))
            })
            .await;
            match asked {
                Err(_) => unreachable.push(format!("{address} (no answer)")),
                Ok(Err(e)) => unreachable.push(format!("{address} ({e})")),
                Ok(Ok((checked, primary))) => {
                    quorum.push((address, checked));
                    named.push((
                        address,
                        primary.map(|(host, port)| format!("{host}:{port}")),
                    ));
                }
            }
        }
        let mut found = Vec::new();
        let total = self.addresses.len();
        found.push(match (unreachable.len(), total) {
            (0, _) => Finding::pass("sentinels", format!("all {total} sentinels answer")),
            (down, total) if down == total => Finding::fail(
                "sentinels",
                format!("no sentinel answers: {}", unreachable.join(", ")),
            )
            .fix("check the sentinels' addresses in the URL and that they run"),
            (down, total) => Finding::warn(
                "sentinels",
                format!(
                    "{} of {total} sentinels answer; not: {}",
                    total - down,
                    unreachable.join(", ")
                ),
            )
            .fix("bring the missing sentinels back, or take them out of the URL"),
        });
        let refused: Vec<String> = quorum
            .iter()
            .filter_map(|(address, checked)| match checked {
                Ok(_) => None,
                Err(e) => Some(format!("{address}: {e}")),
            })
            .collect();
        if let Some(said) = quorum.iter().find_map(|(_, c)| c.as_ref().ok()) {
            if refused.is_empty() {
                found.push(Finding::pass("quorum", format!("`{service}`: {said}")));
            }
        }
        if !refused.is_empty() {
            found.push(
                Finding::fail(
                    "quorum",
                    format!(
                        "the sentinels cannot fail `{service}` over (SENTINEL CKQUORUM): {}",
                        refused.join("; ")
                    ),
                )
                .fix("run enough sentinels for the quorum and the majority (3 on 3 hosts)"),
            );
        }
        let mut primaries: Vec<&str> = named.iter().filter_map(|(_, p)| p.as_deref()).collect();
        primaries.sort_unstable();
        primaries.dedup();
        match primaries.as_slice() {
            [] if named.is_empty() => {}
            [] => found.push(
                Finding::fail(
                    "primary",
                    format!("no sentinel knows a primary of `{service}`"),
                )
                .fix("check the service name at the end of the URL"),
            ),
            [primary] => found.push(Finding::pass(
                "primary",
                format!("the sentinels name {primary} as the primary of `{service}`"),
            )),
            several => found.push(
                Finding::fail(
                    "primary",
                    format!(
                        "the sentinels disagree on the primary of `{service}`: {}",
                        several.join(", ")
                    ),
                )
                .fix("wait for the failover to settle; check the sentinels' configuration"),
            ),
        }
        found
    }
}

/// How often a switch follower with nothing to read checks that its target still exists,
/// and how long it waits before subscribing again after losing its sentinel.
#[cfg(feature = "sentinel")]
const FOLLOW_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(feature = "sentinel")]
async fn follow<T>(
    sentinels: std::sync::Arc<Sentinels>,
    bound: std::time::Duration,
    target: std::sync::Weak<T>,
    switched: fn(&std::sync::Arc<T>),
) {
    use std::pin::Pin;

    use futures_core::Stream;

    while target.strong_count() > 0 {
        let subscribe = async {
            let client = sentinels
                .client
                .lock()
                .await
                .async_get_sentinel_client()
                .await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let Ok(Ok(mut pubsub)) = tokio::time::timeout(bound, subscribe).await else {
            tracing::debug!("cannot subscribe to the sentinels' +switch-master; retrying");
            tokio::time::sleep(FOLLOW_PAUSE).await;
            continue;
        };
        let mut messages = pubsub.on_message();
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut messages).poll_next(cx));
            let message = match tokio::time::timeout(FOLLOW_PAUSE, next).await {
                Ok(Some(message)) => message,
                // The sentinel went away: subscribe again, maybe to another one.
                Ok(None) => break,
                Err(_) if target.strong_count() == 0 => return,
                Err(_) => continue,
            };
            // `<service> <old ip> <old port> <new ip> <new port>`
            let payload: String = message.get_payload().unwrap_or_default();
            if payload.split(' ').next() != Some(sentinels.service.as_str()) {
                continue;
            }
            let Some(target) = target.upgrade() else {
                return;
            };
            tracing::info!(switch = %payload, "the sentinels named a new primary; reconnecting");
            switched(&target);
        }
    }
}

/// The sentinel client for `redis+sentinel://[user:password@]host[:port],host[:port].../service`
/// (`rest` is what follows the scheme). The user and password are the data nodes'; the
/// sentinels are reached without them. A port left out is Sentinel's, 26379.
#[cfg(feature = "sentinel")]
pub(crate) fn sentinel(rest: &str) -> Result<Endpoint, String> {
    use redis::{
        sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
        RedisConnectionInfo,
    };

    let (authority, service) = rest
        .split_once('/')
        .ok_or("no service name: expected `redis+sentinel://host:port,.../service-name`")?;
    let service = service.trim_end_matches('/');
    if service.is_empty() || service.contains(['/', '?', '#']) {
        return Err("expected one service name after the sentinels' addresses".into());
    }
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let mut node = RedisConnectionInfo::default();
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or(("", userinfo));
        if !user.is_empty() {
            node = node.set_username(user);
        }
        if !password.is_empty() {
            node = node.set_password(password);
        }
    }
    let mut sentinels = Vec::new();
    for host in hosts.split(',') {
        if host.is_empty() {
            return Err("an empty sentinel address".into());
        }
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:26379")
        };
        sentinels.push(format!("redis://{with_port}"));
    }
    // An owned `String`: `build` takes one without the `redis/tls-rustls` feature, and
    // `impl AsRef<str>` with it.
    #[allow(clippy::unnecessary_to_owned)]
    let client = SentinelClient::build(
        sentinels.clone(),
        service.to_owned(),
        Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(node)),
        SentinelServerType::Master,
    )
    .map_err(|e| e.to_string())?;
    Ok(Endpoint::Sentinel(std::sync::Arc::new(Sentinels {
        client: tokio::sync::Mutex::new(client),
        service: service.to_owned(),
        addresses: sentinels,
    })))
}

#[cfg(all(test, feature = "sentinel"))]
mod tests {
    use super::sentinel;

    #[test]
    fn a_sentinel_url_needs_a_service_name_and_addresses() {
        assert!(sentinel("127.0.0.1:26379").is_err());
        assert!(sentinel("127.0.0.1:26379/").is_err());
        assert!(sentinel("127.0.0.1:26379/a/b").is_err());
        assert!(sentinel("127.0.0.1:26379,/locks").is_err());
        assert!(sentinel("127.0.0.1:26379,127.0.0.1:26380/locks").is_ok());
        assert!(sentinel(":secret@sentinel-a,sentinel-b:5000/locks").is_ok());
    }
}
