//! Independent `redis-server` processes for Redlock: each on its own free port, stopped by
//! its pid when dropped.

use crate::{signal, RedisServer};

/// `n` independent servers (no replication between them).
#[derive(Debug)]
pub struct RedlockServers {
    servers: Vec<RedisServer>,
}

impl RedlockServers {
    /// Starts `n` servers with no persistence.
    pub fn start(n: usize) -> Self {
        Self {
            servers: (0..n).map(|_| RedisServer::start()).collect(),
        }
    }

    /// `redis+redlock://127.0.0.1:<port>,...` naming every server.
    pub fn url(&self) -> String {
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+redlock://{}", servers.join(","))
    }

    /// Each server's `redis://` URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(RedisServer::url).collect()
    }

    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// Freezes server `index` (`SIGSTOP`): its connections stay open and it answers nothing.
    pub fn pause(&self, index: usize) {
        signal(self.servers[index].pid(), "-STOP");
    }

    /// Kills server `index` (`SIGKILL`; a frozen one too).
    pub fn kill(&mut self, index: usize) {
        self.servers[index].kill();
    }

    /// Kills server `index` and starts a new one on its port, with no data, on a blocking
    /// thread (the clients under test keep running meanwhile).
    pub async fn restart(&mut self, index: usize) {
        let server = self.servers.remove(index);
        let server = server.restarted().await;
        self.servers.insert(index, server);
    }

    /// How many servers hold `key` with `token` (as text).
    pub fn holding(&self, key: &str, token: &str) -> usize {
        self.servers
            .iter()
            .filter(|s| s.pid() != 0 && s.raw(&["GET", key]).contains(token))
            .count()
    }
}
