//! `redis-server` processes on free ports, and raw RESP for looking past the code under
//! test.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::*;

/// The environment variable naming the `redis-server` binary (default: `redis-server`).
pub const REDIS_SERVER_ENV: &str = "REDIS_SERVER_BIN";

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

/// Reads one integer field of `INFO` from `server`.
pub fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<i64> {
    let info = server.raw(&["INFO", section]);
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}
