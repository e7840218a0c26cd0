//! `lockctl`: look at and clear the locks that `lock-runtime` keeps in a shared store.
//!
//! ```text
//! lockctl --url redis://127.0.0.1:6379 list 'order:*'
//! lockctl show order:7
//! lockctl watch order:7
//! lockctl leader scheduler --watch
//! lockctl release order:7 --force
//! lockctl doctor redis://127.0.0.1:6379
//! ```
//!
//! Exit codes: 0 done; 1 the lock is not held (or a release was not confirmed); 2 bad
//! usage or input (an unknown command, a malformed URL); 3 the store failed or could not
//! be reached. `doctor`: 0 every check passed, 1 warnings, 2 failures (or bad usage), 3 the
//! store could not be reached.

use std::{
    io::{BufRead as _, Write as _},
    process::ExitCode,
    time::Duration,
};

use clap::{Parser, Subcommand};
use lock_runtime::{Backend, LockError, LockInfo};

mod doctor;
mod show;

/// Look at and clear the locks of lock-runtime in Redis (one server, Sentinel, Cluster,
/// Redlock), ZooKeeper or PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "lockctl", version)]
struct Cli {
    /// The store, in the URL forms of LOCK_RUNTIME_URL: redis://, rediss://,
    /// redis+sentinel://, redis+cluster://, redis+redlock://, zookeeper://, postgres://.
    #[arg(long, env = "LOCK_RUNTIME_URL", hide_env_values = true)]
    url: Option<String>,
    /// The key prefix the services use (`BackendBuilder::prefix`).
    #[arg(long, default_value = lock_runtime::DEFAULT_PREFIX)]
    prefix: String,
    /// The ZooKeeper directory the services use (`BackendBuilder::zookeeper_root`).
    #[arg(long, default_value = "/locks")]
    zookeeper_root: String,
    /// The PostgreSQL table the services use (`BackendBuilder::postgres_table`).
    #[arg(long, default_value = lock_runtime::DEFAULT_POSTGRES_TABLE)]
    postgres_table: String,
    /// A PEM file of the certificate authority to trust for rediss:// URLs and PostgreSQL
    /// URLs with sslmode=require.
    #[arg(long, value_name = "PEM")]
    tls_root: Option<std::path::PathBuf>,
    /// The time bound on each store call, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The held locks whose name matches PATTERN (`*` any run, `?` one character), with
    /// keys held by readers or a semaphore's permits.
    List {
        #[arg(default_value = "*")]
        pattern: String,
    },
    /// Who holds the lock NAME (each reader or permit holder of a shared key), since when,
    /// and for how long yet.
    Show { name: String },
    /// Follows the holders of NAME live: a line for each new holder and each release.
    Watch {
        name: String,
        /// Stop after this many lines.
        #[arg(long)]
        count: Option<u64>,
        /// How often to look when no release notification came, in milliseconds (a new
        /// holder sends none).
        #[arg(long, value_name = "MS", default_value_t = 100)]
        interval_ms: u64,
    },
    /// Who leads the election NAME (`#[leader]`, `Backend::campaign`), with its term and
    /// since when; exits 1 when nobody leads. With --watch, a line for each new leader.
    Leader {
        name: String,
        /// Follow the election: a line for each new leader and each time nobody leads.
        #[arg(long)]
        watch: bool,
        /// With --watch, stop after this many lines.
        #[arg(long)]
        count: Option<u64>,
        /// With --watch, how often to look when no notification came, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 100)]
        interval_ms: u64,
    },
    /// Checks whether the store is set up so that its locks are safe (eviction,
    /// persistence, replicas, quorum, slots, ACLs, session timeouts, commits, privileges,
    /// clocks) and how to fix each finding; then takes, renews and releases a lock. Exit
    /// codes: 0 every check passed, 1 warnings, 2 failures, 3 the store could not be
    /// reached.
    Doctor {
        /// The store's URL (instead of --url).
        url: Option<String>,
        /// One JSON object for scripts instead of lines for people.
        #[arg(long)]
        json: bool,
    },
    /// Deletes NAME whoever holds it, waking its waiters; prints who held it. Keys held by
    /// readers or permits are left to their leases.
    Release {
        name: String,
        /// Required: the holder is not told, and its body may still be running.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
}

/// What went wrong, and the exit code it means.
enum Failure {
    NotHeld(String),
    Usage(String),
    Store(LockError),
    /// `doctor` printed its findings; the worst was a warning (1) or a failure (2).
    Findings(u8),
}

impl From<LockError> for Failure {
    fn from(error: LockError) -> Self {
        match error {
            LockError::InvalidInput { .. } => Failure::Usage(chain(&error)),
            error => Failure::Store(error),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lockctl: cannot start: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::NotHeld(message)) => {
            eprintln!("lockctl: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("lockctl: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Store(error)) => {
            eprintln!("lockctl: {}", chain(&error));
            ExitCode::from(3)
        }
        Err(Failure::Findings(code)) => ExitCode::from(code),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let url = match &cli.command {
        Command::Doctor { url: Some(url), .. } => Some(url.clone()),
        _ => cli.url.clone(),
    };
    let Some(url) = url else {
        return Err(Failure::Usage(
            "no store: give --url (or LOCK_RUNTIME_URL), e.g. --url redis://127.0.0.1:6379"
                .to_owned(),
        ));
    };
    if let Command::Doctor { json, .. } = cli.command {
        return doctor::run(&cli, &url, json).await;
    }
    if url.starts_with("memory:") {
        return Err(Failure::Usage(
            "memory:// locks live inside one process; lockctl reaches a shared store \
             (redis://, zookeeper://, ...)"
                .to_owned(),
        ));
    }
    let release = matches!(cli.command, Command::Release { force: false, .. });
    if release {
        return Err(Failure::Usage(
            "release needs --force: the holder is not told, and its work may still be \
             running"
                .to_owned(),
        ));
    }
    let backend = connect(&cli, &url).await?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::List { pattern } => {
            let locks = backend.list(&pattern).await?;
            show::table(&mut out, &locks);
        }
        Command::Show { name } => {
            let info = held(&backend, &name).await?;
            show::details(&mut out, &info);
        }
        Command::Watch {
            name,
            count,
            interval_ms,
        } => {
            drop(out);
            let interval = Duration::from_millis(interval_ms);
            let mut watch = backend.watch_lock(&name).await?.interval(interval);
            follow(count, &mut watch, |out, now| {
                show::change(out, &name, now);
            })
            .await?;
        }
        Command::Leader {
            name, watch: false, ..
        } => {
            let leader = backend.leader(&name).await?;
            show::leader(&mut out, &name, leader.as_ref(), false);
            if leader.is_none() {
                return Err(Failure::NotHeld(format!("election `{name}` has no leader")));
            }
        }
        Command::Leader {
            name,
            count,
            interval_ms,
            ..
        } => {
            drop(out);
            let interval = Duration::from_millis(interval_ms);
            let mut watch = backend.watch_leader(&name).await?.interval(interval);
            follow(count, &mut watch, |out, now| {
                show::leader(out, &name, now, true);
            })
            .await?;
        }
        // Handled above, before connecting as the other commands do.
        Command::Doctor { .. } => {}
        Command::Release { name, yes, .. } => {
            if !yes {
                let info = held(&backend, &name).await?;
                show::details(&mut out, &info);
                drop(out);
                eprint!("Release `{name}` by force? [y/N] ");
                let mut answer = String::new();
                let _ = std::io::stdin().lock().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(Failure::NotHeld(format!("`{name}` was not released")));
                }
                out = std::io::stdout().lock();
            }
            match backend.force_release(&name).await? {
                Some(info) => {
                    let _ = writeln!(out, "released `{name}`, held by {}", show::who(&info));
                }
                None => return Err(not_held(&name)),
            }
        }
    }
    Ok(())
}

/// What `lockctl` can follow: a lock's holders or an election's leaders.
trait Follow {
    type State;
    async fn next(&mut self) -> Result<Option<Self::State>, LockError>;
}

impl Follow for lock_runtime::LockWatch {
    type State = LockInfo;
    async fn next(&mut self) -> Result<Option<LockInfo>, LockError> {
        lock_runtime::LockWatch::next(self).await
    }
}

impl Follow for lock_runtime::LeaderWatch {
    type State = lock_runtime::Leader;
    async fn next(&mut self) -> Result<Option<lock_runtime::Leader>, LockError> {
        lock_runtime::LeaderWatch::next(self).await
    }
}

/// Prints each state `watch` gives with `print`, flushed at once, until `count` lines (if
/// given) or Ctrl-C.
async fn follow<W: Follow>(
    count: Option<u64>,
    watch: &mut W,
    mut print: impl FnMut(&mut std::io::StdoutLock<'static>, Option<&W::State>),
) -> Result<(), Failure> {
    let mut printed = 0;
    while count.is_none_or(|count| printed < count) {
        let now = tokio::select! {
            now = watch.next() => now?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let mut out = std::io::stdout().lock();
        print(&mut out, now.as_ref());
        let _ = out.flush();
        printed += 1;
    }
    Ok(())
}

async fn connect(cli: &Cli, url: &str) -> Result<Backend, Failure> {
    let mut builder = Backend::builder()
        .prefix(cli.prefix.clone())
        .op_timeout(Duration::from_millis(cli.timeout_ms.max(1)))
        .zookeeper_root(cli.zookeeper_root.clone())
        .postgres_table(cli.postgres_table.clone());
    if let Some(path) = &cli.tls_root {
        let pem = std::fs::read(path).map_err(|e| {
            Failure::Usage(format!("cannot read the CA file {}: {e}", path.display()))
        })?;
        builder = builder.tls_root_certificate(pem);
    }
    Ok(builder.connect(url).await?)
}

async fn held(backend: &Backend, name: &str) -> Result<LockInfo, Failure> {
    backend.inspect(name).await?.ok_or_else(|| not_held(name))
}

fn not_held(name: &str) -> Failure {
    Failure::NotHeld(format!("lock `{name}` is not held"))
}

/// An error and its sources, one after the other.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
