//! The stores the conformance suite runs on: one type each, with the servers it needs on
//! this machine. Adding a store is one type here and one line in `main.rs`.

use std::{sync::Arc, time::Duration};

use lock_runtime::{
    store::{MemoryStore, PostgresOptions, ZooKeeperOptions},
    Backend, BackendBuilder,
};
use lock_tests::{
    postgres_url, unique_table, PrivateCluster, Proxy, RedisCluster, RedisServer, RedlockServers,
    Sentinel, ZooKeeperServer,
};

/// The ZooKeeper session timeout the suite connects with: its shortest TTL.
pub const ZOOKEEPER_SESSION: Duration = Duration::from_secs(2);

/// One store's servers, as a scenario sees them.
pub(crate) trait Servers: Send + Sync + Sized + 'static {
    /// The store's row in the README's capability table.
    const ROW: &'static str;

    /// Starts fresh servers. `own`: for a scenario that stops them (a private PostgreSQL
    /// cluster rather than the machine's server).
    async fn start(own: bool) -> Self;

    /// The URL a client connects with (`lock-loop` processes too).
    fn url(&self) -> String;

    /// Extra environment for a `lock-loop` process.
    fn env(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The builder's settings for this store, before `connect`.
    fn settings(&self, builder: BackendBuilder) -> BackendBuilder {
        builder
    }

    /// A new client, its locks under `prefix`: another process's view of the same store.
    async fn connect(&self, prefix: &str) -> Backend {
        self.connect_to(&self.url(), prefix).await
    }

    /// A new client of the store at `url` (the store's own, or one through proxies).
    async fn connect_to(&self, url: &str, prefix: &str) -> Backend {
        self.settings(settings(prefix))
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
    }

    /// A way to the store through proxies (one per server) that the scenario can freeze or
    /// slow down, or why this fixture has none.
    async fn proxied(&self) -> Result<Proxied, &'static str>;

    /// Kills every server of the store (SIGKILL), or says why this fixture cannot.
    fn kill(&mut self) -> Result<(), &'static str>;

    /// Starts the killed servers again at the same addresses.
    async fn revive(&mut self);
}

/// A store reached through proxies.
pub(crate) struct Proxied {
    /// The URL through the proxies.
    pub url: String,
    /// A URL to the same store for another client: past the proxies where the store lets
    /// a client choose (a Cluster's own slot map names the proxies to every client).
    pub direct: String,
    pub proxies: Vec<Proxy>,
    /// Servers started for this store alone (where the shared ones cannot sit behind
    /// proxies), stopped when it is dropped.
    _own: Option<Box<dyn Send + Sync>>,
}

impl Proxied {
    /// Proxies in front of the shared servers.
    fn shared(url: String, direct: String, proxies: Vec<Proxy>) -> Self {
        Self {
            url,
            direct,
            proxies,
            _own: None,
        }
    }
}

/// Settings every client of the suite shares.
fn settings(prefix: &str) -> BackendBuilder {
    Backend::builder()
        .prefix(format!("{prefix}:"))
        .op_timeout(Duration::from_secs(1))
        .health_interval(Duration::from_millis(200))
        .zookeeper_options(ZooKeeperOptions::new().session_timeout(ZOOKEEPER_SESSION))
        // The servers are fresh: no hold for their youth (on by default for Redlock).
        .restart_guard_on_connect(false)
}

/// The in-memory store: one store per fixture, shared by every client made from it.
pub struct Memory(Arc<MemoryStore>);

impl Servers for Memory {
    const ROW: &'static str = "in-memory";

    async fn start(_own: bool) -> Self {
        Self(Arc::new(MemoryStore::new()))
    }

    fn url(&self) -> String {
        "memory://".to_owned()
    }

    async fn connect(&self, prefix: &str) -> Backend {
        settings(prefix)
            .store(self.0.clone())
            .expect("memory backend")
    }

    async fn proxied(&self) -> Result<Proxied, &'static str> {
        Err("the in-memory store has no connection")
    }

    fn kill(&mut self) -> Result<(), &'static str> {
        Err("the in-memory store has no server to kill")
    }

    async fn revive(&mut self) {}
}

/// One Redis server.
pub struct Redis(Option<RedisServer>);

impl Servers for Redis {
    const ROW: &'static str = "one Redis server";

    async fn start(_own: bool) -> Self {
        Self(Some(RedisServer::start()))
    }

    fn url(&self) -> String {
        self.0.as_ref().expect("server").url()
    }

    async fn proxied(&self) -> Result<Proxied, &'static str> {
        let proxy = Proxy::start(self.0.as_ref().expect("server").port());
        Ok(Proxied::shared(proxy.url(), self.url(), vec![proxy]))
    }

    fn kill(&mut self) -> Result<(), &'static str> {
        self.0.as_mut().expect("server").kill();
        Ok(())
    }

    async fn revive(&mut self) {
        let server = self.0.take().expect("server");
        self.0 = Some(server.restarted().await);
    }
}

/// A Redis primary named by three Sentinels.
pub struct SentinelStore {
    primary: Option<RedisServer>,
    sentinels: Vec<Sentinel>,
}

impl Servers for SentinelStore {
    const ROW: &'static str = "Redis Sentinel";

    async fn start(_own: bool) -> Self {
        let primary = RedisServer::start();
        let sentinels = Sentinel::three("conformance", &primary, 0).await;
        Self {
            primary: Some(primary),
            sentinels,
        }
    }

    fn url(&self) -> String {
        Sentinel::url(&self.sentinels, "conformance")
    }

    /// A primary of its own behind a proxy, three Sentinels that know it by the proxy's
    /// address (so they name the proxy to clients), and one more that knows it directly
    /// (under another service name), for the other clients.
    async fn proxied(&self) -> Result<Proxied, &'static str> {
        let primary = RedisServer::start();
        let proxy = Proxy::start(primary.port());
        let sentinels = Sentinel::three_at("proxied", proxy.port(), 0).await;
        let direct = Sentinel::start("direct", &primary, 1);
        Ok(Proxied {
            url: Sentinel::url(&sentinels, "proxied"),
            direct: Sentinel::url(std::slice::from_ref(&direct), "direct"),
            proxies: vec![proxy],
            _own: Some(Box::new((sentinels, direct, primary))),
        })
    }

    fn kill(&mut self) -> Result<(), &'static str> {
        self.primary.as_mut().expect("primary").kill();
        Ok(())
    }

    async fn revive(&mut self) {
        let primary = self.primary.take().expect("primary");
        self.primary = Some(primary.restarted().await);
    }
}

/// A Redis Cluster of three primaries.
pub struct Cluster(RedisCluster);

impl Servers for Cluster {
    const ROW: &'static str = "Redis Cluster";

    async fn start(_own: bool) -> Self {
        Self(RedisCluster::start(3, 0).await)
    }

    fn url(&self) -> String {
        self.0.url()
    }

    /// A cluster of its own whose nodes announce their proxies' ports: every client
    /// reaches the nodes through the proxies (the slot map names them).
    async fn proxied(&self) -> Result<Proxied, &'static str> {
        let (cluster, proxies) = RedisCluster::start_proxied(3).await;
        let url = cluster.url();
        Ok(Proxied {
            url: url.clone(),
            direct: url,
            proxies,
            _own: Some(Box::new(cluster)),
        })
    }

    fn kill(&mut self) -> Result<(), &'static str> {
        self.0.kill_all();
        Ok(())
    }

    async fn revive(&mut self) {
        self.0.restart_all().await;
    }
}

/// Redlock over three independent Redis servers.
pub struct Redlock(RedlockServers);

impl Servers for Redlock {
    const ROW: &'static str = "Redlock";

    async fn start(_own: bool) -> Self {
        Self(RedlockServers::start(3))
    }

    fn url(&self) -> String {
        self.0.url()
    }

    async fn proxied(&self) -> Result<Proxied, &'static str> {
        let proxies: Vec<Proxy> = self
            .0
            .servers()
            .iter()
            .map(|s| Proxy::start(s.port()))
            .collect();
        let hosts: Vec<String> = proxies.iter().map(Proxy::hosts).collect();
        let url = format!("redis+redlock://{}", hosts.join(","));
        Ok(Proxied::shared(url, self.url(), proxies))
    }

    fn kill(&mut self) -> Result<(), &'static str> {
        for index in 0..3 {
            self.0.kill(index);
        }
        Ok(())
    }

    async fn revive(&mut self) {
        for index in 0..3 {
            self.0.restart(index).await;
        }
    }
}

/// One ZooKeeper server.
pub struct ZooKeeper(Option<ZooKeeperServer>);

impl Servers for ZooKeeper {
    const ROW: &'static str = "ZooKeeper";

    async fn start(_own: bool) -> Self {
        let server = tokio::task::spawn_blocking(ZooKeeperServer::start)
            .await
            .expect("start ZooKeeper");
        Self(Some(server))
    }

    fn url(&self) -> String {
        self.0.as_ref().expect("server").url()
    }

    async fn proxied(&self) -> Result<Proxied, &'static str> {
        let proxy = Proxy::start(self.0.as_ref().expect("server").port());
        let url = format!("zookeeper://{}", proxy.hosts());
        Ok(Proxied::shared(url, self.url(), vec![proxy]))
    }

    fn kill(&mut self) -> Result<(), &'static str> {
        self.0.as_mut().expect("server").kill();
        Ok(())
    }

    async fn revive(&mut self) {
        let server = self.0.take().expect("server");
        self.0 = Some(server.restarted().await);
    }
}

/// PostgreSQL: the machine's server with a table of the suite's own, or a private cluster
/// for a scenario that stops it.
pub struct Postgres {
    table: String,
    own: Option<PrivateCluster>,
}

impl Servers for Postgres {
    const ROW: &'static str = "PostgreSQL";

    async fn start(own: bool) -> Self {
        let own = match own {
            true => Some(
                tokio::task::spawn_blocking(PrivateCluster::start)
                    .await
                    .expect("start PostgreSQL"),
            ),
            false => None,
        };
        Self {
            table: unique_table("conformance"),
            own,
        }
    }

    fn url(&self) -> String {
        self.own
            .as_ref()
            .map_or_else(postgres_url, PrivateCluster::url)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("LOCK_TESTS_TABLE", self.table.clone())]
    }

    fn settings(&self, builder: BackendBuilder) -> BackendBuilder {
        builder.postgres_options(PostgresOptions::new().table(self.table.clone()))
    }

    async fn proxied(&self) -> Result<Proxied, &'static str> {
        let url = self.url();
        let (head, rest) = url.split_once("127.0.0.1:").ok_or("not a 127.0.0.1 URL")?;
        let (port, path) = rest.split_once('/').ok_or("no database in the URL")?;
        let proxy = Proxy::start(port.parse().map_err(|_| "no port in the URL")?);
        let proxied = format!("{head}127.0.0.1:{}/{path}", proxy.port());
        Ok(Proxied::shared(proxied, url, vec![proxy]))
    }

    fn kill(&mut self) -> Result<(), &'static str> {
        let Some(cluster) = &self.own else {
            return Err("the machine's PostgreSQL server is not the suite's to stop");
        };
        cluster.crash();
        Ok(())
    }

    async fn revive(&mut self) {
        if let Some(cluster) = &self.own {
            cluster.start_again();
        }
    }
}
