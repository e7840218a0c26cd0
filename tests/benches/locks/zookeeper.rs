//! The benchmark's ZooKeeper floor: the `zookeeper-client` crate's own lock recipe
//! (`Client::lock` with Curator's node names: create, list, watch the predecessor), the
//! release awaited.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use zookeeper_client as zk;

use super::Release;

#[derive(Clone)]
pub struct Floor {
    client: Arc<zk::Client>,
}

impl Floor {
    /// Connects to `zookeeper://host:port`.
    pub async fn connect(url: &str) -> Self {
        let hosts = url.trim_start_matches("zookeeper://");
        let client = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(6))
            .connect(hosts)
            .await
            .expect("ZooKeeper floor connection");
        Self {
            client: Arc::new(client),
        }
    }

    async fn lock(&self, dir: &str) -> String {
        let options = zk::LockOptions::new(zk::Acls::anyone_all())
            .with_ancestor_options(zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()))
            .expect("lock options");
        let prefix = zk::LockPrefix::new_curator(dir, "lock-").expect("lock prefix");
        let lock = self
            .client
            .lock(prefix, b"", options)
            .await
            .expect("floor lock");
        let path = lock.lock_path().to_owned();
        // The release below is awaited; the guard's own would run in the background.
        std::mem::forget(lock);
        path
    }

    async fn unlock(&self, path: &str) {
        self.client.delete(path, None).await.expect("floor unlock");
    }

    /// One acquire+release of the lock at `dir`.
    pub async fn cycle(&self, dir: &str) {
        let path = self.lock(dir).await;
        self.unlock(&path).await;
    }
}

/// S3h's cycle for the floor: lock (waiting in the queue), then the release to run later.
pub fn handoff(
    floor: Floor,
) -> impl Fn() -> Pin<Box<dyn Future<Output = Release> + Send>> + Send + Sync + Clone {
    move || {
        let floor = floor.clone();
        Box::pin(async move {
            let path = floor.lock("/bench/handoff").await;
            let release: Release =
                Box::new(move || Box::pin(async move { floor.unlock(&path).await }));
            release
        })
    }
}

/// How many packets the server has received so far (`mntr`), requests and pings.
pub fn packets_received(server: &lock_tests::ZooKeeperServer) -> u64 {
    server
        .four_letters("mntr")
        .lines()
        .find_map(|line| line.strip_prefix("zk_packets_received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Compiles `tests/java/CuratorBench.java` (once per benchmark process) against Debian's
/// Curator jars; the class path to run it with.
pub fn curator_classpath() -> String {
    static COMPILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COMPILED
        .get_or_init(|| {
            lock_tests::curator_classpath("CuratorBench", env!("CARGO_TARGET_TMPDIR").as_ref())
        })
        .clone()
}

/// S3h for Curator's `InterProcessMutex`, `tasks` threads in a JVM of its own: the
/// hand-over gaps it measured, and the packets the server received meanwhile.
pub async fn curator_handoff(
    server: &lock_tests::ZooKeeperServer,
    tasks: usize,
    length: Duration,
) -> super::Measured {
    let hosts = server.url().trim_start_matches("zookeeper://").to_owned();
    let before = packets_received(server);
    let output = tokio::process::Command::new("java")
        .args([
            "-cp",
            &curator_classpath(),
            "CuratorBench",
            &hosts,
            "handoff",
        ])
        .args([tasks.to_string(), length.as_millis().to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run java");
    assert!(output.status.success(), "the Curator child failed");
    let mut measured = super::parse_child(&output.stdout);
    let packets = packets_received(server) - before;
    measured.commands_per_cycle = Some(packets as f64 / measured.cycles.max(1) as f64);
    measured
}
