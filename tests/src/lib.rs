//! Support for the integration tests: real `redis-server` processes on free ports, and
//! helpers that await conditions instead of sleeping.
//!
//! Each [`RedisServer`] runs in its own temporary directory with its log beside it, is
//! killed and reaped on drop, and prints its log when the test that owns it panics.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// The environment variable naming the `redis-server` binary (default: `redis-server`).
pub const REDIS_SERVER_ENV: &str = "REDIS_SERVER_BIN";

/// How long a server may take to start answering.
mod cluster;
mod holdings;
mod postgres;
mod redlock;
mod sentinel;
mod tls;
mod zookeeper;
pub use cluster::RedisCluster;
pub use holdings::{
    assert_exclusive_around, assert_no_overlap_around, handoff_gap, now_us, Holding, LockLoops,
};
pub use postgres::{
    postgres_url, unique_table, PrivateCluster, POSTGRES_URL_ENV, PRIVATE_PASSWORD,
};
pub use redlock::RedlockServers;
pub use sentinel::Sentinel;
pub use tls::Certificates;
pub use zookeeper::{ZooKeeperServer, ZOOKEEPER_CLASSPATH_ENV};

const START_BOUND: Duration = Duration::from_secs(20);

/// Ports are handed out below Linux's ephemeral range (32768 and up), so they cannot
/// collide with the source ports of outgoing connections. Each test process starts at a
/// different offset (from its pid) and every candidate is probed before use.
const PORT_BASE: u16 = 20_000;
const PORT_SPAN: u16 = 12_000;
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A `redis-server` child process listening on 127.0.0.1.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// For a TLS server: its certificates; `port` then speaks TLS.
    tls: Option<Arc<Certificates>>,
    /// A plain port beside a TLS one, for the checks that must not go through the code
    /// under test ([`raw`](Self::raw)).
    plain_port: Option<u16>,
    /// Variables set for the server process.
    env: Vec<(String, String)>,
}

impl RedisServer {
    /// Starts a server with no persistence on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra command-line arguments (for example
    /// `["--requirepass", "secret"]`).
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_in(args, None)
    }

    /// Starts a replica of `primary` and waits until it has synced.
    pub fn start_replica_of(primary: &RedisServer) -> Self {
        Self::start_replica_shifted(primary, 0)
    }

    /// Starts a replica of `primary` whose wall clock runs `shift_us` microseconds off
    /// (negative: behind; see `clockshift.c`, built here with the system's C compiler and
    /// preloaded), and waits until it has synced.
    pub fn start_replica_shifted(primary: &RedisServer, shift_us: i64) -> Self {
        let args = ["--replicaof", "127.0.0.1", &primary.port().to_string()];
        let replica = if shift_us == 0 {
            Self::start_with(&args)
        } else {
            // Started plain on a free port, then again there with the shifted clock.
            let mut server = Self::start_in(&[], None);
            server.env = vec![
                ("LD_PRELOAD".to_owned(), clock_shim().to_owned()),
                ("CLOCK_SHIFT_US".to_owned(), shift_us.to_string()),
            ];
            server.args = args.iter().map(|a| (*a).to_owned()).collect();
            server.restart();
            server
        };
        let deadline = Instant::now() + START_BOUND;
        while !replica
            .raw(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(
                Instant::now() < deadline,
                "the replica never synced; log:\n{}",
                replica.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        replica
    }

    /// Starts a server that speaks TLS only, with a certificate for 127.0.0.1 signed by a CA
    /// made for it ([`ca_pem`](Self::ca_pem)); [`url`](Self::url) is then `rediss://`.
    pub fn start_tls() -> Self {
        Self::start_in(&[], Some((Certificates::make(), false)))
    }

    /// Starts a server that speaks TLS with `certificates` on [`port`](Self::port), plus
    /// plain RESP on a second port that only [`raw`](Self::raw) uses.
    pub fn start_tls_with(certificates: &Arc<Certificates>, args: &[&str]) -> Self {
        Self::start_in(args, Some((Arc::clone(certificates), true)))
    }

    fn start_in(args: &[&str], tls: Option<(Arc<Certificates>, bool)>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lock-tests-redis-")
            .tempdir()
            .expect("create a temp dir for redis-server");
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let with_plain = tls.as_ref().is_some_and(|(_, plain)| *plain);
        let tls = tls.map(|(certificates, _)| certificates);
        if let Some(certificates) = &tls {
            args.extend(certificates.server_args());
        }
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            args,
            tls,
            plain_port: None,
            env: Vec::new(),
        };
        for _ in 0..50 {
            server.port = free_port();
            if with_plain {
                server.plain_port = Some(free_port());
            }
            if server.spawn_and_wait() {
                return server;
            }
        }
        panic!(
            "redis-server did not start on any of 50 ports; last log:\n{}",
            server.log()
        );
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) that signed a TLS server's certificate.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.tls
            .as_ref()
            .expect("a TLS server has certificates")
            .ca_pem()
    }

    /// The port that speaks plain RESP: [`port`](Self::port), or the one beside a TLS port.
    pub fn plain_port(&self) -> Option<u16> {
        match &self.tls {
            None => Some(self.port),
            Some(_) => self.plain_port,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server with SIGKILL and starts a new one on the same port, with no data.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            if self.spawn_and_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "redis-server did not restart on port {}; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// [`restart`](Self::restart) from async code: on a blocking thread, so the runtime's
    /// own tasks (the clients under test) keep running meanwhile.
    pub async fn restarted(mut self) -> Self {
        tokio::task::spawn_blocking(move || {
            self.restart();
            self
        })
        .await
        .expect("restart redis-server")
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one command over a fresh connection and returns the raw reply, for checks
    /// that must not go through the code under test.
    pub fn raw(&self, args: &[&str]) -> String {
        let port = self.plain_port().unwrap_or(self.port);
        raw_command(port, args).unwrap_or_else(|e| panic!("raw command {args:?}: {e}"))
    }

    /// How many times the server has run `command` (lower case; commands that scripts
    /// call are counted too), from `INFO commandstats`.
    pub fn calls(&self, command: &str) -> u64 {
        let stats = self.raw(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Spawns on `self.port` and waits until it is ready; false if it exited (the port was
    /// taken). A server that stays up but never gets ready fails the test with its log.
    fn spawn_and_wait(&mut self) -> bool {
        let binary = std::env::var(REDIS_SERVER_ENV).unwrap_or_else(|_| "redis-server".into());
        let port = self.port.to_string();
        let plain = self
            .plain_port
            .map_or_else(|| "0".to_owned(), |p| p.to_string());
        let ports = if self.tls.is_some() {
            ["--port", &plain, "--tls-port", &port]
        } else {
            ["--port", &port, "--tls-port", "0"]
        };
        let spawned = Command::new(&binary)
            .args(ports)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run `{binary}` ({e}). Install Redis (`apt-get install redis-server`) \
                 or set {REDIS_SERVER_ENV} to the path of a redis-server binary."
            ),
        };
        let plain_port = self.plain_port();
        let ready = || match plain_port {
            Some(port) => {
                let answer = raw_command(port, &["PING"]);
                matches!(&answer, Ok(reply) if reply.starts_with("+PONG") || reply.contains("NOAUTH"))
            }
            None => self.log().contains("Ready to accept connections"),
        };
        match await_ready(child, "redis-server", self.port, START_BOUND, ready, || {
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- redis-server log (port {}) ----\n{}",
                self.port,
                self.log()
            );
        }
    }
}

/// Waits until the server process `child` (`what`, on `port`) is `ready`: `Some(child)`
/// then, `None` if it exited first (its port was taken). One that stays up but never gets
/// ready is killed and fails the test with its `log`: another port would not help.
fn await_ready(
    mut child: Child,
    what: &str,
    port: u16,
    bound: Duration,
    ready: impl Fn() -> bool,
    log: impl Fn() -> String,
) -> Option<Child> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if ready() {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "{what} on port {port} did not become ready within {bound:?}; log:\n{}",
        log()
    );
}

/// A port on 127.0.0.1 that nobody listens on right now.
pub fn free_port() -> u16 {
    let offset = (std::process::id() % u32::from(PORT_SPAN)) as u16;
    loop {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = PORT_BASE + (offset.wrapping_add(n.wrapping_mul(7))) % PORT_SPAN;
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        if TcpListener::bind(addr).is_ok() {
            return port;
        }
    }
}

/// Sends a signal (`"-STOP"`, `"-CONT"`, `"-KILL"`, ...) to a process with `kill`.
pub fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}

/// The value of `metric` on a Prometheus text page, summed over the series whose labels
/// include every one of `labels` (`name="job"`); 0 when there is none.
pub fn prometheus_value(page: &str, metric: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or_default();
            value
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("not a sample: {line}: {e}"))
        })
        .sum()
}

/// The clock shim (`clockshift.c`) built once per test process: the path of the shared
/// library.
fn clock_shim() -> &'static str {
    static SHIM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHIM.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("lock-tests-clockshift-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the clock shim");
        let source = dir.join("clockshift.c");
        std::fs::write(&source, include_str!("clockshift.c")).expect("write the clock shim");
        let library = dir.join("clockshift.so");
        let built = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&library)
            .arg(&source)
            .arg("-ldl")
            .output()
            .expect("run cc (the C compiler Rust links with)");
        assert!(
            built.status.success(),
            "building the clock shim: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        library.display().to_string()
    })
}

/// Sends one command in RESP over a fresh TCP connection and returns the first reply line
/// (and the bulk payload, if any) as text.
pub fn raw_command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_secs(2),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply_complete(&reply) {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Enough of RESP to know a reply (simple, integer, error, bulk, or an array of them) is
/// complete.
fn reply_complete(reply: &[u8]) -> bool {
    resp_end(reply, 0).is_some()
}

/// Where the RESP value starting at `at` ends, if it is all there.
fn resp_end(reply: &[u8], at: usize) -> Option<usize> {
    let line_end = at + reply.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&reply[at..line_end]).ok()?;
    let after = line_end + 2;
    let count = || head.get(1..).and_then(|n| n.parse::<i64>().ok());
    match head.as_bytes().first() {
        Some(b'$') => match count() {
            Some(len) if len >= 0 => {
                let end = after + usize::try_from(len).ok()? + 2;
                (reply.len() >= end).then_some(end)
            }
            _ => Some(after),
        },
        Some(b'*') => match count() {
            Some(n) if n > 0 => (0..n).try_fold(after, |next, _| resp_end(reply, next)),
            _ => Some(after),
        },
        _ => Some(after),
    }
}

/// Polls `condition` every few milliseconds until it holds or `bound` passes; returns
/// whether it held. For tests that must await a state, not sleep a fixed time.
pub async fn eventually(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the `lock-hold` binary (`binary`: the test's `CARGO_BIN_EXE_lock-hold`) with
/// `args` and `env`, waits (up to 30 s) until it says it holds its lock, then kills it with
/// SIGKILL; returns when it said so. A dead holder that never released.
pub async fn kill_holder_once_held(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Instant {
    let mut holder = tokio::process::Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn lock-hold");
    let stdout = holder.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let held = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("lock-hold held in time")
        .expect("read")
        .expect("a line");
    let held_at = Instant::now();
    assert!(held.starts_with("held "), "{held}");
    signal(holder.id().expect("running"), "-KILL");
    let _ = holder.wait().await;
    held_at
}

/// [`eventually`] with a condition that awaits (a store call, say).
pub async fn eventually_async<F: std::future::Future<Output = bool>>(
    bound: Duration,
    mut condition: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs each scenario (an `async fn(Stores)`) against both stores, as the tests
/// `<scenario>::memory` and `<scenario>::redis`.
#[macro_export]
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario($crate::Stores::memory()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$scenario($crate::Stores::redis().await).await;
            }
        }
    )*};
}

/// Two clients of one lock store, as two processes would have: two Redis connections to
/// one server, or two backends over one in-memory store (each with its own in-process
/// queue, so they meet only in the store).
#[derive(Debug)]
pub struct Stores {
    /// The Redis server, for the Redis flavour.
    pub server: Option<RedisServer>,
    /// The first client.
    pub a: lock_runtime::Backend,
    /// The second client.
    pub b: lock_runtime::Backend,
}

impl Stores {
    /// Two backends over one in-memory store.
    pub fn memory() -> Self {
        let shared = Arc::new(lock_runtime::store::MemoryStore::new());
        let client = || {
            lock_runtime::Backend::builder()
                .store(shared.clone())
                .expect("memory backend")
        };
        Self {
            server: None,
            a: client(),
            b: client(),
        }
    }

    /// Two clients of the tests' PostgreSQL server, in a table of their own.
    pub async fn postgres() -> Self {
        let table = unique_table("stores");
        let client = || async {
            lock_runtime::Backend::builder()
                .postgres_table(table.clone())
                .connect(&postgres_url())
                .await
                .expect("connect to PostgreSQL")
        };
        let (a, b) = (client().await, client().await);
        Self { server: None, a, b }
    }

    /// Two connections to a fresh `redis-server`.
    pub async fn redis() -> Self {
        let server = RedisServer::start();
        let a = lock_runtime::Backend::redis(&server.url())
            .await
            .expect("connect client a");
        let b = lock_runtime::Backend::redis(&server.url())
            .await
            .expect("connect client b");
        Self {
            server: Some(server),
            a,
            b,
        }
    }
}

/// The README's Rust code compiles (its function is never called: it needs a fixed Redis).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The error of the guarded functions the tests share.
#[derive(Debug)]
pub enum TestError {
    /// The lock could not be had, or was lost.
    Lock(lock_runtime::LockError),
    /// The test's own Redis traffic failed.
    Redis(redis::RedisError),
}

impl From<lock_runtime::LockError> for TestError {
    fn from(e: lock_runtime::LockError) -> Self {
        Self::Lock(e)
    }
}

impl From<redis::RedisError> for TestError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

/// A read-modify-write of `counter:{name}` in Redis that is only correct under the lock,
/// with an overlap detector: `overlaps:{name}` counts the times a caller found another
/// caller inside. Shared by the tests and the `guarded-worker` binary, so several processes
/// run the very same annotated function.
#[lock_runtime::distributed_lock(key = "counter:{name}", ttl = "10s", wait = "60s")]
pub async fn guarded_increment(
    conn: &mut redis::aio::MultiplexedConnection,
    name: &str,
) -> Result<(), TestError> {
    use redis::AsyncCommands as _;
    let inside: i64 = conn.incr(format!("inside:{name}"), 1).await?;
    if inside != 1 {
        let _: i64 = conn.incr(format!("overlaps:{name}"), 1).await?;
    }
    let seen: Option<i64> = conn.get(format!("counter:{name}")).await?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let _: () = conn
        .set(format!("counter:{name}"), seen.unwrap_or(0) + 1)
        .await?;
    let _: i64 = conn.decr(format!("inside:{name}"), 1).await?;
    Ok(())
}

/// The fenced resource of the fault tests: a value in a Redis server of its own that
/// accepts a write only with a fencing token strictly higher than every one it has seen
/// (each holder writes once, so a repeated token is a second holder).
/// Returns whether the write was accepted.
pub async fn fenced_write(
    resource: &mut redis::aio::MultiplexedConnection,
    token: u64,
    value: &str,
) -> Result<bool, redis::RedisError> {
    const WRITE: &str = r"
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > highest then
    redis.call('SET', KEYS[1], ARGV[1])
    redis.call('SET', KEYS[2], ARGV[2])
    return 1
end
return 0
";
    let accepted: i64 = redis::Script::new(WRITE)
        .key("highest-token")
        .key("value")
        .arg(token)
        .arg(value)
        .invoke_async(resource)
        .await?;
    Ok(accepted == 1)
}

/// A TCP proxy on 127.0.0.1 in front of a server, for faults a real network has: it can
/// stop forwarding on the connections it has (a proxy that hangs), stop forwarding on new
/// ones, send new connections elsewhere (DNS or a virtual IP moved), and move the
/// connections it has to another server while their client side stays open (a proxy
/// that hides a restart or failover behind one TCP connection).
///
/// It runs on a thread of its own with its own runtime, and stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    control: Arc<ProxyControl>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct ProxyControl {
    target: AtomicU16,
    /// Connections numbered from `frozen_from` up to below `frozen_below` do not forward.
    frozen_from: std::sync::atomic::AtomicU64,
    frozen_below: std::sync::atomic::AtomicU64,
    freeze_new: std::sync::atomic::AtomicBool,
    next_id: std::sync::atomic::AtomicU64,
    /// Bumped to move every open connection to `target`.
    epoch: std::sync::atomic::AtomicU64,
    /// How long each chunk of the server's replies is held back, in microseconds.
    delay_us: std::sync::atomic::AtomicU64,
    /// Bumped to close every open connection, both sides.
    cut: std::sync::atomic::AtomicU64,
    changed: tokio::sync::Notify,
}

impl Proxy {
    /// A proxy on a free port that forwards to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> Self {
        let control = Arc::new(ProxyControl {
            target: AtomicU16::new(target),
            frozen_from: std::sync::atomic::AtomicU64::new(0),
            frozen_below: std::sync::atomic::AtomicU64::new(0),
            freeze_new: std::sync::atomic::AtomicBool::new(false),
            next_id: std::sync::atomic::AtomicU64::new(0),
            epoch: std::sync::atomic::AtomicU64::new(0),
            delay_us: std::sync::atomic::AtomicU64::new(0),
            cut: std::sync::atomic::AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        });
        let port = free_port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, listening) = std::sync::mpsc::channel();
        let accepting = control.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind the proxy");
                let _ = ready.send(());
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        let control = accepting.clone();
                        tokio::spawn(async move {
                            let _ = forward(client, control).await;
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        listening.recv().expect("the proxy listens");
        Self {
            port,
            control,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, for a ZooKeeper client.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops forwarding on every connection open now (they stay open, silent).
    pub fn freeze_existing(&self) {
        self.freeze(0..self.connections());
    }

    /// Stops forwarding on the connections numbered in `ids` (in the order they were
    /// accepted, from 0), and on no other.
    pub fn freeze(&self, ids: std::ops::Range<u64>) {
        self.control.frozen_from.store(ids.start, Ordering::SeqCst);
        self.control.frozen_below.store(ids.end, Ordering::SeqCst);
        self.control.changed.notify_waiters();
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> u64 {
        self.control.next_id.load(Ordering::SeqCst)
    }

    /// Whether connections accepted from now on forward nothing.
    pub fn freeze_new(&self, frozen: bool) {
        self.control.freeze_new.store(frozen, Ordering::SeqCst);
        self.control.changed.notify_waiters();
    }

    /// Sends connections accepted from now on to `127.0.0.1:<target>`.
    pub fn redirect_new(&self, target: u16) {
        self.control.target.store(target, Ordering::SeqCst);
    }

    /// Holds back every reply from the server by `delay` (a slow server or link), on the
    /// connections open now and new ones; requests are forwarded at once meanwhile, and
    /// replies keep their order.
    pub fn delay_replies(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.control.delay_us.store(us, Ordering::SeqCst);
    }

    /// Closes every open connection, client side and server side (a network that drops
    /// them); new ones are forwarded as before.
    pub fn cut_all(&self) {
        self.control.cut.fetch_add(1, Ordering::SeqCst);
        self.control.changed.notify_waiters();
    }

    /// Moves every open connection, and new ones, to `127.0.0.1:<target>`: each drops its
    /// server side and opens a new one there, keeping its client side open.
    pub fn switch_all(&self, target: u16) {
        self.control.target.store(target, Ordering::SeqCst);
        self.control.epoch.fetch_add(1, Ordering::SeqCst);
        self.control.changed.notify_waiters();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn forward(
    mut client: tokio::net::TcpStream,
    control: Arc<ProxyControl>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let id = control.next_id.fetch_add(1, Ordering::SeqCst);
    let frozen_from_start = control.freeze_new.load(Ordering::SeqCst);
    let frozen = |control: &ProxyControl| {
        frozen_from_start
            || (control.frozen_from.load(Ordering::SeqCst)
                ..control.frozen_below.load(Ordering::SeqCst))
                .contains(&id)
    };
    let mut epoch = control.epoch.load(Ordering::SeqCst);
    let cut = control.cut.load(Ordering::SeqCst);
    let mut server =
        tokio::net::TcpStream::connect(("127.0.0.1", control.target.load(Ordering::SeqCst)))
            .await?;
    let (mut up, mut down) = ([0u8; 16384], [0u8; 16384]);
    // Replies held back (`delay_replies`), each until its time, in order: requests keep
    // flowing meanwhile, as over a slow link.
    let mut held: std::collections::VecDeque<(tokio::time::Instant, Vec<u8>)> =
        std::collections::VecDeque::new();
    loop {
        let changed = control.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if control.cut.load(Ordering::SeqCst) != cut {
            return Ok(());
        }
        let now = control.epoch.load(Ordering::SeqCst);
        if now != epoch {
            epoch = now;
            server = tokio::net::TcpStream::connect((
                "127.0.0.1",
                control.target.load(Ordering::SeqCst),
            ))
            .await?;
            continue;
        }
        if frozen(&control) {
            // Hold everything; the sockets stay open.
            changed.await;
            continue;
        }
        let due = held.front().map(|(at, _)| *at);
        tokio::select! {
            () = &mut changed => {}
            n = client.read(&mut up) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                server.write_all(&up[..n]).await?;
            }
            n = server.read(&mut down) => {
                let n = n?;
                if n == 0 {
                    // The server closed: what it said before still arrives, in its time.
                    while let Some((at, reply)) = held.pop_front() {
                        tokio::time::sleep_until(at).await;
                        client.write_all(&reply).await?;
                    }
                    return Ok(());
                }
                let delay = Duration::from_micros(control.delay_us.load(Ordering::SeqCst));
                if delay.is_zero() && held.is_empty() {
                    client.write_all(&down[..n]).await?;
                } else {
                    held.push_back((tokio::time::Instant::now() + delay, down[..n].to_vec()));
                }
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)),
                if due.is_some() =>
            {
                let now = tokio::time::Instant::now();
                while held.front().is_some_and(|(at, _)| *at <= now) {
                    if let Some((_, reply)) = held.pop_front() {
                        client.write_all(&reply).await?;
                    }
                }
            }
        }
    }
}

/// Tracing events recorded while a [`CapturedEvents::install`] guard lives, on this thread.
#[derive(Debug, Clone, Default)]
pub struct CapturedEvents {
    events: Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>,
}

impl CapturedEvents {
    /// Records the events of this thread (all tasks of a current-thread runtime) until the
    /// guard is dropped.
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let guard = tracing::subscriber::set_default(captured.clone());
        (captured, guard)
    }

    /// The events so far at `level`, each as its message and fields.
    pub fn at(&self, level: tracing::Level) -> Vec<String> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, text)| text.clone())
            .collect()
    }
}

impl tracing::Subscriber for CapturedEvents {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, "{}={:?} ", field.name(), value);
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push((*event.metadata().level(), text.0));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Reads one integer field of `INFO` from `server`.
pub fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<i64> {
    let info = server.raw(&["INFO", section]);
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}
