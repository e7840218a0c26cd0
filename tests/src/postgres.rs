//! PostgreSQL for the tests: the machine's own server on 127.0.0.1:5432 (trust auth,
//! database `test`), or the one `.ci/run` started where that is missing; and a private
//! cluster of the test's own (`initdb` into a temp dir, `pg_ctl` on a free port, password auth) for tests
//! that restart the server or need a password. Each test names a table of its own.

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use crate::{free_port, Certificates};

/// The superuser password of a private cluster.
pub const PRIVATE_PASSWORD: &str = "lock-tests-pw-7d1e";

/// Where the tests find a PostgreSQL server they may create tables in, if not on
/// 127.0.0.1:5432 (`.ci/run` sets it after starting a private cluster on a machine without
/// one).
pub const POSTGRES_URL_ENV: &str = "LOCK_TESTS_POSTGRES_URL";

/// A PostgreSQL URL for the tests: [`POSTGRES_URL_ENV`] if set, else the machine's server on
/// 127.0.0.1:5432 (trust auth, database `test`).
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_ENV)
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A table name no other test (or test process) uses.
pub fn unique_table(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "lt_{what}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A PostgreSQL cluster of the test's own, stopped (immediately) when dropped.
#[derive(Debug)]
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    tls: bool,
    /// More `-c name=value` server settings.
    settings: String,
}

impl PrivateCluster {
    /// `initdb` (superuser `postgres` with [`PRIVATE_PASSWORD`], password auth over TCP)
    /// and `pg_ctl start` on a free port; as the `postgres` user when run as root.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// As [`start`](Self::start), with more server settings (`-c name=value ...`).
    pub fn start_with_settings(settings: &str) -> Self {
        let mut cluster = Self::start_with(None);
        cluster.settings = settings.to_owned();
        cluster.restart();
        cluster
    }

    /// As [`start`](Self::start), serving TLS with `certificates`' server certificate and
    /// turning away TCP connections without it (`hostssl` only; the socket stays open).
    pub fn start_tls(certificates: &Certificates) -> Self {
        Self::start_with(Some(certificates))
    }

    fn start_with(certificates: Option<&Certificates>) -> Self {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("lock-tests-postgres-")
            .tempdir()
            .expect("temp dir");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PRIVATE_PASSWORD).expect("password file");
        if let Some(certificates) = certificates {
            for name in ["server.crt", "server.key"] {
                std::fs::copy(certificates.file(name), dir.path().join(name)).expect(name);
            }
            // PostgreSQL refuses a key others may read.
            let status = Command::new("chmod")
                .arg("600")
                .arg(dir.path().join("server.key"))
                .status()
                .expect("chmod");
            assert!(status.success(), "chmod the key");
        }
        give_to_postgres(dir.path());
        let data = dir.path().join("data");
        let initdb = as_postgres(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        if certificates.is_some() {
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 host all all 127.0.0.1/32 reject\n",
            )
            .expect("write pg_hba.conf");
        }
        Self {
            dir,
            bin,
            port: 0,
            tls: certificates.is_some(),
            settings: String::new(),
        }
        .on_a_free_port()
    }

    /// Starts the cluster on a free port.
    fn on_a_free_port(mut self) -> Self {
        for _ in 0..10 {
            self.port = free_port();
            if self.pg_ctl(&["start"]) {
                return self;
            }
        }
        panic!("PostgreSQL did not start; log:\n{}", self.log());
    }

    fn pg_ctl(&self, action: &[&str]) -> bool {
        let data = self.dir.path().join("data");
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        if !self.settings.is_empty() {
            options += " ";
            options += &self.settings;
        }
        if self.tls {
            let file = |name: &str| self.dir.path().join(name).display().to_string();
            options += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                file("server.crt"),
                file("server.key")
            );
        }
        let output = as_postgres(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-l"])
            .arg(self.dir.path().join("log"))
            .args(["-o", &options, "-w", "-t", "60", "-m", "fast"])
            .args(action)
            .output()
            .expect("run pg_ctl");
        output.status.success()
    }

    /// `pg_ctl restart` (fast shutdown: sessions are cut, committed data stays).
    pub fn restart(&self) {
        assert!(self.pg_ctl(&["restart"]), "restart: {}", self.log());
    }

    /// A streaming standby of this cluster (`pg_basebackup -R` over the socket), started
    /// on a port of its own; asynchronous, as by default.
    pub fn standby(&self) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lock-tests-postgres-standby-")
            .tempdir()
            .expect("temp dir");
        give_to_postgres(dir.path());
        let backup = as_postgres(self.bin.join("pg_basebackup"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
            ])
            .args(["--no-sync"])
            .output()
            .expect("run pg_basebackup");
        assert!(
            backup.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&backup.stderr)
        );
        Self {
            dir,
            bin: self.bin.clone(),
            port: 0,
            tls: false,
            settings: self.settings.clone(),
        }
        .on_a_free_port()
    }

    /// `pg_ctl promote`: the standby becomes a primary.
    pub fn promote(&self) {
        assert!(self.pg_ctl(&["promote"]), "promote: {}", self.log());
    }

    /// `pg_ctl stop -m immediate`: the server dies as in a crash.
    pub fn crash(&self) {
        let data = self.dir.path().join("data");
        let stopped = as_postgres(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("run pg_ctl");
        assert!(stopped.status.success(), "stop: {}", self.log());
    }

    /// `kill -9` of one server process (`pid`, a backend): the postmaster ends every other
    /// session, wipes shared memory and recovers, as after any crash of a backend, but
    /// keeps running (and keeps its start time).
    pub fn kill_backend(&self, pid: i32) {
        let status = as_postgres(PathBuf::from("kill"))
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid}");
    }

    /// `pg_ctl stop` (fast), for a while.
    pub fn stop(&self) {
        assert!(self.pg_ctl(&["stop"]), "stop: {}", self.log());
    }

    /// `pg_ctl start` after [`stop`](Self::stop).
    pub fn start_again(&self) {
        assert!(self.pg_ctl(&["start"]), "start: {}", self.log());
    }

    /// A cold backup: the server stopped, its data directory copied, the server started
    /// again.
    pub fn back_up(&self) {
        assert!(self.pg_ctl(&["stop"]), "stop: {}", self.log());
        self.copy("data", "backup");
        assert!(self.pg_ctl(&["start"]), "start: {}", self.log());
    }

    /// Restores the backup [`back_up`](Self::back_up) took (everything since is lost) and
    /// starts the server on it.
    pub fn restore_backup(&self) {
        assert!(self.pg_ctl(&["stop"]), "stop: {}", self.log());
        std::fs::remove_dir_all(self.dir.path().join("data")).expect("remove the data");
        self.copy("backup", "data");
        assert!(self.pg_ctl(&["start"]), "start: {}", self.log());
    }

    /// `cp -a` of one directory of the cluster's to another, owners kept.
    fn copy(&self, from: &str, to: &str) {
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.dir.path().join(from))
            .arg(self.dir.path().join(to))
            .status()
            .expect("cp");
        assert!(status.success(), "copy {from} to {to}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's URL, password included.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{PRIVATE_PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The superuser's connection string over the cluster's unix socket (trusted, no TLS).
    pub fn socket_config(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Runs `program` as the `postgres` user when this process is root (PostgreSQL refuses
/// root).
fn as_postgres(program: PathBuf) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Gives `dir` to the `postgres` user when this process is root.
fn give_to_postgres(dir: &std::path::Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown {}", dir.display());
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The directory of Debian's PostgreSQL programs (the newest installed).
fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}
