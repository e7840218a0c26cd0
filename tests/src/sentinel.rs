//! A Redis Sentinel process watching one primary, for the Sentinel tests.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{await_ready, free_port, raw_command, RedisServer, REDIS_SERVER_ENV, START_BOUND};

/// `redis-server --sentinel` on a free port of 127.0.0.1, with a config file of its own
/// (Sentinel rewrites it), monitoring one primary. Killed on drop.
#[derive(Debug)]
pub struct Sentinel {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sentinel {
    /// Starts a sentinel that watches `primary` under the name `service`, agreeing to a
    /// failover when `quorum` sentinels (itself included) find the primary down, which each
    /// does after 1 s without an answer.
    pub fn start(service: &str, primary: &RedisServer, quorum: u32) -> Self {
        Self::start_at(service, primary.port(), quorum)
    }

    /// [`start`](Self::start) watching the primary at `127.0.0.1:<port>` (a proxy in front
    /// of it, say: the Sentinel then names the proxy's address to clients).
    pub fn start_at(service: &str, port: u16, quorum: u32) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lock-tests-sentinel-")
            .tempdir()
            .expect("create a temp dir for the sentinel");
        let mut sentinel = Self {
            child: None,
            port: 0,
            dir,
        };
        for _ in 0..50 {
            sentinel.port = free_port();
            let config = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
                 sentinel monitor {service} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {service} 1000\n\
                 sentinel failover-timeout {service} 10000\n",
                port = sentinel.port,
                dir = sentinel.dir.path().display(),
                log = sentinel.log_path().display(),
                primary = port,
            );
            std::fs::write(sentinel.config_path(), config).expect("write sentinel.conf");
            if sentinel.spawn_and_wait() {
                return sentinel;
            }
        }
        panic!(
            "the sentinel did not start on any of 50 ports; log:\n{}",
            sentinel.log()
        );
    }

    /// Three sentinels with a quorum of 2 watching `primary`, once each knows `replicas`
    /// replicas and the other two sentinels.
    pub async fn three(service: &str, primary: &RedisServer, replicas: usize) -> Vec<Self> {
        Self::three_at(service, primary.port(), replicas).await
    }

    /// [`three`](Self::three) watching the primary at `127.0.0.1:<port>`.
    pub async fn three_at(service: &str, port: u16, replicas: usize) -> Vec<Self> {
        let sentinels: Vec<Self> = (0..3).map(|_| Self::start_at(service, port, 2)).collect();
        let found = crate::eventually(Duration::from_secs(30), || {
            sentinels
                .iter()
                .all(|s| s.replicas(service) == replicas && s.other_sentinels(service) == 2)
        })
        .await;
        assert!(
            found,
            "the sentinels never found the replicas and each other"
        );
        sentinels
    }

    /// The `redis+sentinel://` URL naming `sentinels` and `service`.
    pub fn url(sentinels: &[Self], service: &str) -> String {
        let addresses: Vec<String> = sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{service}", addresses.join(","))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends one command to the sentinel and returns the raw reply.
    pub fn raw(&self, args: &[&str]) -> String {
        raw_command(self.port, args).unwrap_or_else(|e| panic!("sentinel command {args:?}: {e}"))
    }

    /// The port of the primary the sentinel names for `service` now.
    pub fn primary_port(&self, service: &str) -> Option<u16> {
        let reply = self.raw(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", service]);
        reply
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .next_back()
    }

    /// How many replicas of `service` the sentinel knows.
    pub fn replicas(&self, service: &str) -> usize {
        self.count(&["SENTINEL", "REPLICAS", service])
    }

    /// How many other sentinels watching `service` this one knows.
    pub fn other_sentinels(&self, service: &str) -> usize {
        self.count(&["SENTINEL", "SENTINELS", service])
    }

    /// The length of the array `args` answer.
    fn count(&self, args: &[&str]) -> usize {
        let reply = self.raw(args);
        reply
            .lines()
            .next()
            .and_then(|l| l.strip_prefix('*'))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sentinel.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sentinel.conf")
    }

    fn spawn_and_wait(&mut self) -> bool {
        let binary = std::env::var(REDIS_SERVER_ENV).unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&binary)
            .arg(self.config_path())
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{binary}` ({e})"));
        let ready =
            || matches!(raw_command(self.port, &["PING"]), Ok(reply) if reply.starts_with("+PONG"));
        match await_ready(child, "the sentinel", self.port, START_BOUND, ready, || {
            self.log()
        }) {
            Some(child) => {
                self.child = Some(child);
                true
            }
            None => false,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- sentinel log (port {}) ----\n{}",
                self.port,
                self.log()
            );
        }
    }
}
