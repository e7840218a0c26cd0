//! A standalone ZooKeeper server (Debian's `zookeeper` package, run with `java` directly,
//! no systemd) on a free port of 127.0.0.1, with its data in a temporary directory; stopped
//! by its pid when dropped. Or the servers of one ensemble ([`ZooKeeperServer::ensemble`]).

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{await_ready, free_port};

/// The environment variable naming the Java class path of the ZooKeeper server (default:
/// Debian's `/usr/share/java/zookeeper.jar`, whose manifest names its dependencies).
pub const ZOOKEEPER_CLASSPATH_ENV: &str = "ZOOKEEPER_CLASSPATH";

/// A JVM may take a while to start on a busy 2-core machine.
const START_BOUND: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct ZooKeeperServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// In an ensemble: this server's id and the `server.N=` lines of every member.
    ensemble: Option<(usize, String)>,
}

impl ZooKeeperServer {
    /// Starts a server and waits until it answers `ruok` and has opened (and closed) a
    /// session of its own: a server that has just started may take longer than a client's
    /// connect bound for its first session on a loaded machine. `tickTime=50`, so that
    /// sessions end within 50 ms of their timeout (ZooKeeper checks them once a tick);
    /// sessions of 1 to 60 s; no `fsync` per write (a test server's data need only survive
    /// the restarts of `restarted`, which keep the page cache).
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lock-tests-zookeeper-")
            .tempdir()
            .expect("create a temp dir for ZooKeeper");
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            ensemble: None,
        };
        for _ in 0..20 {
            server.port = free_port();
            if server.spawn_and_wait() {
                server.await_first_session();
                return server;
            }
        }
        panic!(
            "ZooKeeper did not start on any of 20 ports; last log:\n{}",
            server.log()
        );
    }

    /// The `n` servers of one ensemble, each on free ports of its own, once one of them
    /// leads and a session can be opened on them. Elections and syncs get generous limits
    /// (5 s and 2 s) for JVMs on a busy machine.
    pub fn ensemble(n: usize) -> Vec<Self> {
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let members: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer, election))| {
                format!("server.{}=127.0.0.1:{peer}:{election}\n", i + 1)
            })
            .collect();
        let mut servers: Vec<Self> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, _, _))| Self {
                child: None,
                port: *client,
                dir: tempfile::Builder::new()
                    .prefix("lock-tests-zookeeper-")
                    .tempdir()
                    .expect("create a temp dir for ZooKeeper"),
                ensemble: Some((i + 1, members.clone())),
            })
            .collect();
        for server in &mut servers {
            assert!(
                server.spawn_and_wait(),
                "an ensemble member: {}",
                server.log()
            );
        }
        let deadline = Instant::now() + START_BOUND;
        while !servers.iter().any(Self::leads) {
            assert!(
                Instant::now() < deadline,
                "the ensemble elected no leader; logs:\n{}",
                servers
                    .iter()
                    .map(Self::log)
                    .collect::<Vec<_>>()
                    .join("\n----\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        servers[0].await_first_session_on(Self::hosts_of(&servers));
        servers
    }

    /// Whether this server leads its ensemble now.
    pub fn leads(&self) -> bool {
        self.four_letters("srvr").contains("Mode: leader")
    }

    /// `host:port,host:port,...` of `servers`, as ZooKeeper clients take it.
    pub fn hosts_of(servers: &[Self]) -> String {
        servers
            .iter()
            .map(Self::hosts)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, as ZooKeeper clients take it.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `zookeeper://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("zookeeper://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server (SIGKILL) and reaps it; its data stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port with the same data (sessions
    /// included), on a blocking thread so the clients under test keep running.
    pub async fn restarted(mut self) -> Self {
        tokio::task::spawn_blocking(move || {
            self.kill();
            let deadline = Instant::now() + START_BOUND;
            while Instant::now() < deadline {
                if self.spawn_and_wait() {
                    return self;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("ZooKeeper did not restart; log:\n{}", self.log());
        })
        .await
        .expect("restart ZooKeeper")
    }

    /// Opens and closes one session, trying for up to [`START_BOUND`].
    fn await_first_session(&self) {
        self.await_first_session_on(self.hosts());
    }

    fn await_first_session_on(&self, hosts: String) {
        let opened = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the first session");
            runtime.block_on(async {
                let deadline = Instant::now() + START_BOUND;
                while Instant::now() < deadline {
                    let connecting = zookeeper_client::Client::connector()
                        .with_session_timeout(Duration::from_secs(2))
                        .with_connection_timeout(Duration::from_secs(5))
                        .connect(&hosts);
                    if let Ok(Ok(_client)) =
                        tokio::time::timeout(Duration::from_secs(10), connecting).await
                    {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                false
            })
        })
        .join()
        .unwrap_or(false);
        assert!(opened, "ZooKeeper opened no session; log:\n{}", self.log());
    }

    /// Sends a four-letter word (`ruok`, `srvr`, `stat`, `mntr`) and returns the answer.
    pub fn four_letters(&self, word: &str) -> String {
        four_letters(self.port, word).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    fn spawn_and_wait(&mut self) -> bool {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("ZooKeeper data dir");
        let config = self.dir.path().join("zoo.cfg");
        let mut text = format!(
            "tickTime=50\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr\n\
             minSessionTimeout=1000\nmaxSessionTimeout=60000\nforceSync=no\n",
            data.display(),
            self.port
        );
        if let Some((id, members)) = &self.ensemble {
            std::fs::write(data.join("myid"), id.to_string()).expect("write myid");
            text.push_str("initLimit=100\nsyncLimit=40\n");
            text.push_str(members);
        }
        std::fs::write(&config, text).expect("write zoo.cfg");
        let classpath = std::env::var(ZOOKEEPER_CLASSPATH_ENV)
            .unwrap_or_else(|_| "/usr/share/java/zookeeper.jar".into());
        let log = std::fs::File::create(self.log_path()).expect("ZooKeeper log file");
        let spawned = Command::new("java")
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp", &classpath])
            // Empty container nodes (lock directories) are removed within a second.
            .arg("-Dznode.container.checkIntervalMs=1000")
            // Standalone without `server.N` lines, an ensemble member with them.
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run `java` ({e}). Install ZooKeeper and a JRE \
                 (`apt-get install zookeeper`), or set {ZOOKEEPER_CLASSPATH_ENV}."
            ),
        };
        let port = self.port;
        let ready = || four_letters(port, "ruok").is_ok_and(|answer| answer == "imok");
        match await_ready(child, "ZooKeeper", port, START_BOUND, ready, || self.log()) {
            Some(child) => {
                self.child = Some(child);
                true
            }
            None => false,
        }
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- ZooKeeper log (port {}) ----\n{}",
                self.port,
                self.log()
            );
        }
    }
}

fn four_letters(port: u16, word: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_secs(1),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(word.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Debian's Curator jars (`libcurator-recipes-java`).
const CURATOR_JARS: &str = "/usr/share/java/curator-recipes.jar:\
    /usr/share/java/curator-framework.jar:/usr/share/java/curator-client.jar";

/// Compiles `tests/java/<class>.java` against Debian's Curator jars into `out/<class>`;
/// returns the class path to run it with. Panics, saying what to install, when `javac` or
/// the jars are missing.
pub fn curator_classpath(class: &str, out: &std::path::Path) -> String {
    let out = out.join(class);
    std::fs::create_dir_all(&out).expect("a directory for the Java class");
    let source = format!("{}/java/{class}.java", env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("javac")
        .args(["-cp", CURATOR_JARS, "-d"])
        .arg(&out)
        .arg(source)
        .status()
        .unwrap_or_else(|e| panic!("cannot run javac ({e}): apt-get install default-jdk-headless"));
    assert!(
        status.success(),
        "javac failed: is Curator installed (apt-get install libcurator-recipes-java)?"
    );
    format!("{}:{CURATOR_JARS}", out.display())
}
