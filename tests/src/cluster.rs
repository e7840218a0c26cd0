//! A Redis Cluster made of `redis-server --cluster-enabled yes` processes, joined with
//! `redis-cli --cluster create`, for the cluster tests.

use std::{process::Command, sync::Arc, time::Duration};

use crate::{eventually, Certificates, Proxy, RedisServer};

/// A cluster of primaries on free ports of 127.0.0.1, each node a [`RedisServer`] (stopped
/// by its pid when dropped).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// For a TLS cluster, the certificates every node presents.
    tls: Option<Arc<Certificates>>,
    /// While a cluster behind proxies starts: one per node, whose ports the nodes announce.
    proxies: Vec<Proxy>,
}

impl RedisCluster {
    /// Starts `primaries` nodes (at least 3) and `replicas` replicas of each, joins them,
    /// and waits until every node says `cluster_state:ok` and every replica has synced.
    pub async fn start(primaries: usize, replicas: usize) -> Self {
        Self::start_in(primaries, replicas, None, false).await
    }

    /// [`start`](Self::start) without replicas, each node behind a [`Proxy`] whose port it
    /// announces (`cluster-announce-port`; the cluster bus stays direct): a client that
    /// follows the cluster's own slot map reaches every node through its proxy, so a test
    /// can freeze or slow down every connection a client has, as a network would.
    pub async fn start_proxied(primaries: usize) -> (Self, Vec<Proxy>) {
        let mut cluster = Self::start_in(primaries, 0, None, true).await;
        let proxies = std::mem::take(&mut cluster.proxies);
        (cluster, proxies)
    }

    /// [`start`](Self::start) with TLS between clients and nodes and between the nodes
    /// (`--tls-cluster yes`, `--tls-replication yes`), all on one CA's certificates; each
    /// node also answers plain RESP on a second port, for the test's own checks.
    pub async fn start_tls(primaries: usize, replicas: usize) -> Self {
        Self::start_in(primaries, replicas, Some(Certificates::make()), false).await
    }

    async fn start_in(
        primaries: usize,
        replicas: usize,
        tls: Option<Arc<Certificates>>,
        proxied: bool,
    ) -> Self {
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| match &tls {
                None => RedisServer::start_with(&args),
                Some(certificates) => {
                    let tls_args = ["--tls-cluster", "yes", "--tls-replication", "yes"];
                    RedisServer::start_tls_with(certificates, &[&args[..], &tls_args].concat())
                }
            })
            .collect();
        let proxies: Vec<Proxy> = match proxied {
            false => Vec::new(),
            true => nodes
                .iter()
                .map(|node| {
                    let proxy = Proxy::start(node.port());
                    let port = proxy.port().to_string();
                    let bus = (node.port() + 10_000).to_string();
                    for (setting, value) in [
                        ("cluster-announce-port", &port),
                        ("cluster-announce-bus-port", &bus),
                    ] {
                        let reply = node.raw(&["CONFIG", "SET", setting, value]);
                        assert!(reply.starts_with("+OK"), "CONFIG SET {setting}: {reply}");
                    }
                    proxy
                })
                .collect(),
        };
        let mut create = Command::new("redis-cli");
        if let Some(certificates) = &tls {
            create.args(["--tls", "--cacert", &certificates.file("ca.crt")]);
        }
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let output = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); install redis-tools"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self {
            nodes,
            tls,
            proxies,
        };
        let ready = eventually(Duration::from_secs(30), || {
            cluster.nodes.iter().all(|n| {
                n.raw(&["CLUSTER", "INFO"]).contains("cluster_state:ok") && {
                    let replication = n.raw(&["INFO", "replication"]);
                    replication.contains("role:master")
                        || replication.contains("master_link_status:up")
                }
            })
        })
        .await;
        assert!(ready, "the cluster never reached cluster_state:ok");
        cluster
    }

    /// `redis+cluster://` URL naming every node (`rediss+cluster://` for a TLS cluster).
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}+cluster://{}", nodes.join(","))
    }

    /// The CA certificate (PEM) of a TLS cluster.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.tls
            .as_ref()
            .expect("a TLS cluster has certificates")
            .ca_pem()
    }

    /// The node that serves `key` (by asking any node for its slot's owner).
    pub fn node_for(&self, key: &str) -> &RedisServer {
        let slot = self.nodes[0].raw(&["CLUSTER", "KEYSLOT", key]);
        let slot: u16 = slot.trim().trim_start_matches(':').parse().expect("slot");
        self.nodes
            .iter()
            .find(|n| owns(n, slot))
            .expect("a node owns every slot")
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port() == port) {
            node.kill();
        }
    }

    /// Kills every node (SIGKILL): the whole cluster is down.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Starts every node again in place (same port, same directory, so the same
    /// `nodes.conf`: each comes back as the node it was, with its slots) and waits until
    /// every node says `cluster_state:ok`. Keys are gone: the nodes keep no data.
    pub async fn restart_all(&mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        let mut restarted = Vec::with_capacity(nodes.len());
        for node in nodes {
            restarted.push(node.restarted().await);
        }
        self.nodes = restarted;
        let ready = eventually(Duration::from_secs(30), || {
            self.nodes
                .iter()
                .all(|n| n.raw(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        })
        .await;
        assert!(
            ready,
            "the restarted cluster never reached cluster_state:ok"
        );
    }

    /// Takes `locks` fenced locks through `a`, one after the other, and checks each: the
    /// key holds `a`'s token on the shard its slot belongs to, its fencing counter lives
    /// there too, `b` cannot take it, and the release deletes it; and that the locks spread
    /// over more than one shard.
    pub async fn assert_locks_live_on_their_shards(
        &self,
        a: &lock_runtime::Backend,
        b: &lock_runtime::Backend,
        locks: usize,
    ) {
        let options = lock_runtime::LockOptions::new(Duration::from_secs(30));
        let mut shards = std::collections::HashSet::new();
        for i in 0..locks {
            let name = format!("order:{i}");
            let guard = a
                .acquire(&name, &options.clone().fencing(true))
                .await
                .expect("acquire");
            let key = a.key_for(&name);
            let node = self.node_for(&key);
            shards.insert(node.port());
            assert!(node
                .raw(&["GET", &key])
                .contains(&guard.token().to_string()));
            // The fencing counter shares the lock's hash tag, so its shard too.
            assert!(node
                .raw(&["EXISTS", &format!("{key}:fence")])
                .contains(":1"));
            assert!(guard.fencing_token().is_some());
            match b.acquire(&name, &options).await {
                Err(lock_runtime::LockError::Busy { .. }) => {}
                other => panic!("a second owner for {name}: {other:?}"),
            }
            guard.release().await.expect("release");
            assert!(node.raw(&["EXISTS", &key]).contains(":0"));
        }
        assert!(
            shards.len() > 1,
            "{locks} locks all on one shard: {shards:?}"
        );
    }

    /// A replica of `primary`.
    pub fn replica_of(&self, primary: &RedisServer) -> &RedisServer {
        let id = primary.raw(&["CLUSTER", "MYID"]);
        let id = id.lines().last().expect("an id").trim();
        let replicas = primary.raw(&["CLUSTER", "REPLICAS", id]);
        self.nodes
            .iter()
            .find(|n| {
                // A plain connection to a TLS cluster is told the nodes' plain ports.
                [Some(n.port()), n.plain_port()]
                    .into_iter()
                    .flatten()
                    .any(|port| replicas.contains(&format!("127.0.0.1:{port}@")))
            })
            .expect("a replica of the primary")
    }
}

/// Whether `node` serves `slot`, from its own `CLUSTER NODES` line (`myself`).
fn owns(node: &RedisServer, slot: u16) -> bool {
    let nodes = node.raw(&["CLUSTER", "NODES"]);
    let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
        return false;
    };
    me.split_whitespace().skip(8).any(|range| {
        let (start, end) = range.split_once('-').unwrap_or((range, range));
        match (start.parse::<u16>(), end.parse::<u16>()) {
            (Ok(start), Ok(end)) => (start..=end).contains(&slot),
            _ => false,
        }
    })
}
