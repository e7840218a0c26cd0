//! What the example programs share: command-line flags, the "ledger" (where they keep
//! their own data: Redis when given a URL, this process's memory otherwise), and a tiny
//! HTTP client for the HTTP service's self-demo and tests.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use lock_runtime::{Backend, LockError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `--name value` flags, read once from the command line.
#[derive(Debug, Default)]
pub struct Flags(HashMap<String, String>);

impl Flags {
    /// Reads `--name value` pairs (and bare `--name` switches) from the command line.
    pub fn from_args() -> Result<Self, String> {
        let mut flags = HashMap::new();
        let mut args = std::env::args().skip(1).peekable();
        while let Some(arg) = args.next() {
            let name = arg.strip_prefix("--").ok_or_else(|| {
                format!("unexpected argument `{arg}`; flags look like `--name value`")
            })?;
            let value = match args.peek() {
                Some(next) if !next.starts_with("--") => args.next().unwrap_or_default(),
                _ => String::new(),
            };
            flags.insert(name.to_owned(), value);
        }
        Ok(Self(flags))
    }

    /// A flag's text, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A flag parsed as a number, or `default`.
    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.text(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name} takes a number, got `{text}`")),
        }
    }
}

/// The ZooKeeper session timeout the examples ask for: no longer than their shortest TTL
/// (the worker pool's 1 s), which the server must allow (`minSessionTimeout`).
pub const ZOOKEEPER_SESSION: Duration = Duration::from_secs(1);

/// Opens the lock store and makes it the default client: ZooKeeper with
/// `--zookeeper HOST:PORT[,HOST:PORT][/chroot]`, else PostgreSQL with `--postgres URL`, else
/// Redis with `--redis URL`, else the in-memory backend. Returns the ledger: Redis when `--redis` is given (beside ZooKeeper
/// too), else this process's memory.
pub async fn setup(flags: &Flags) -> Result<Ledger, Box<dyn std::error::Error>> {
    let backend = match (
        flags.text("zookeeper"),
        flags.text("postgres"),
        flags.text("redis"),
    ) {
        (Some(hosts), _, _) => {
            Backend::builder()
                .zookeeper_session_timeout(ZOOKEEPER_SESSION)
                .zookeeper(hosts)
                .await?
        }
        (None, Some(url), _) => Backend::postgres(url).await?,
        (None, None, Some(url)) => Backend::redis(url).await?,
        (None, None, None) => Backend::memory(),
    };
    lock_runtime::init(backend)?;
    match flags.text("redis") {
        Some(url) => Ok(Ledger::Redis(RedisData::connect(url).await?)),
        None => Ok(Ledger::Memory(Arc::default())),
    }
}

/// `url` with its password, if any, replaced by `***`, for printing.
pub fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = userinfo.split(':').next().unwrap_or_default();
            format!(
                "{scheme}://{user}{}@{host}",
                if userinfo.contains(':') { ":***" } else { "" }
            )
        }
        _ => url.to_owned(),
    }
}

/// Whether the locks are shared with other processes (`--redis`, `--zookeeper` or
/// `--postgres`).
pub fn shared(flags: &Flags) -> bool {
    ["redis", "zookeeper", "postgres"]
        .iter()
        .any(|store| flags.text(store).is_some())
}

/// Where the examples keep their own data: numbers under names.
#[derive(Debug, Clone)]
pub enum Ledger {
    /// This process's memory.
    Memory(Arc<Mutex<HashMap<String, i64>>>),
    /// A Redis server, shared by every process given its URL.
    Redis(RedisData),
}

/// The examples' own connection to the Redis that `--redis` names: one server (for a
/// `redis+sentinel://` URL, the primary the sentinels name at start) or a cluster.
#[derive(Clone)]
pub enum RedisData {
    One(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for RedisData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::One(_) => "RedisData::One",
            Self::Cluster(_) => "RedisData::Cluster",
        })
    }
}

impl RedisData {
    /// Connects to what `url` names, as the lock store does.
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        if let Some(nodes) = url.strip_prefix("redis+cluster://") {
            let nodes = nodes.split(',').map(|node| format!("redis://{node}"));
            let client = redis::cluster::ClusterClient::new(nodes.collect::<Vec<_>>())?;
            return Ok(Self::Cluster(client.get_async_connection().await?));
        }
        let client = match url.strip_prefix("redis+sentinel://") {
            Some(rest) => {
                let (sentinels, service) = rest.split_once('/').unwrap_or((rest, "mymaster"));
                let sentinels = sentinels.split(',').map(|s| format!("redis://{s}"));
                // An owned `String`: `build` takes one without `redis/tls-rustls`.
                #[allow(clippy::unnecessary_to_owned)]
                redis::sentinel::SentinelClient::build(
                    sentinels.collect::<Vec<_>>(),
                    service.to_owned(),
                    None,
                    redis::sentinel::SentinelServerType::Master,
                )?
                .async_get_client()
                .await?
            }
            None => redis::Client::open(url)?,
        };
        Ok(Self::One(client.get_multiplexed_async_connection().await?))
    }
}

impl redis::aio::ConnectionLike for RedisData {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::One(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::One(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// A ledger or lock failure, as the examples report it.
#[derive(Debug)]
pub enum AppError {
    /// The lock could not be had, or was lost.
    Lock(LockError),
    /// The ledger failed.
    Ledger(redis::RedisError),
}

impl From<LockError> for AppError {
    fn from(e: LockError) -> Self {
        Self::Lock(e)
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        Self::Ledger(e)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lock(e) => e.fmt(f),
            Self::Ledger(e) => write!(f, "ledger: {e}"),
        }
    }
}

impl Ledger {
    /// The number under `name` (0 if none).
    pub async fn get(&self, name: &str) -> Result<i64, redis::RedisError> {
        match self {
            Self::Memory(map) => Ok(*map.lock().expect("ledger").get(name).unwrap_or(&0)),
            Self::Redis(conn) => {
                let value: Option<i64> = redis::cmd("GET")
                    .arg(name)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(value.unwrap_or(0))
            }
        }
    }

    /// Sets the number under `name`.
    pub async fn set(&self, name: &str, value: i64) -> Result<(), redis::RedisError> {
        match self {
            Self::Memory(map) => {
                map.lock().expect("ledger").insert(name.to_owned(), value);
                Ok(())
            }
            Self::Redis(conn) => {
                redis::cmd("SET")
                    .arg(name)
                    .arg(value)
                    .exec_async(&mut conn.clone())
                    .await
            }
        }
    }
}

/// One HTTP/1.1 response, as the tiny client reads it.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the whole response, within 10 s.
pub async fn http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<Response> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&raw).into_owned())
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no response within 10 s")
        })??;
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not HTTP: {raw:?}"),
        )
    };
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(bad)?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}
