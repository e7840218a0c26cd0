//! A job scheduler that must run in one instance at a time: every instance campaigns for
//! the election `scheduler`, and only the leader hands out jobs, each tagged with its term
//! (a worker or database refuses a job from a term lower than one it has seen). When the
//! leader stops, another instance is elected: at once after a clean stop (the release
//! wakes it), within the TTL after a crash (`kill -9`).
//!
//! ```text
//! cargo run -p lock-examples --bin leader-scheduler                      # 3 instances in one process
//! cargo run -p lock-examples --bin leader-scheduler -- --redis redis://127.0.0.1:6379 --name a
//! ```
//!
//! Flags: `--instances N` (default 3 in memory, 1 with a shared store: start more
//! processes), `--name NAME`, `--period-ms MS` between jobs (default 500), `--seconds S` to
//! run (default 6), `--stop-leader-after-ms MS` (in one process: the leading instance stops
//! then; default 2000), and the store flags of every example (`--redis`, `--zookeeper`,
//! `--postgres`).

use std::time::Duration;

use lock_examples::Flags;
use lock_runtime::{leader, LockError};

/// Tells the leading instance of this process to stop, as a deploy would.
static STOP: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Runs while this instance leads: hands out a job every period, tagged with the term,
/// until told to stop (it then returns, and leadership passes on).
#[leader(name = "scheduler", ttl = "3s")]
async fn schedule(name: String, period: Duration) -> Result<(), LockError> {
    let term = lock_runtime::fencing_token().unwrap_or_default();
    println!("instance {name} leads (term {term})");
    // Says so however the work ends (told to stop, or the program shutting down), before
    // leadership is given up.
    let _stops = Stops(&name, term);
    for job in 1.. {
        tokio::select! {
            () = tokio::time::sleep(period) => {
                println!("instance {name} (term {term}) scheduled job {job}");
            }
            () = STOP.notified() => break,
        }
    }
    Ok(())
}

/// Prints that an instance stops leading when its work ends.
struct Stops<'a>(&'a str, u64);

impl Drop for Stops<'_> {
    fn drop(&mut self) {
        println!("instance {} (term {}) stops", self.0, self.1);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::from_args()?;
    lock_examples::setup(&flags).await?;
    let shared = lock_examples::shared(&flags);
    let instances: usize = flags.number("instances", if shared { 1 } else { 3 })?;
    let period = Duration::from_millis(flags.number("period-ms", 500)?);
    let seconds: u64 = flags.number("seconds", 6)?;
    let stop_after = Duration::from_millis(flags.number("stop-leader-after-ms", 2000)?);
    let prefix = flags.text("name").unwrap_or("i").to_owned();
    let names: Vec<String> = match instances {
        1 => vec![prefix],
        n => (0..n).map(|i| format!("{prefix}{i}")).collect(),
    };
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let name = name.clone();
            tokio::spawn(async move {
                if let Err(error) = schedule(name.clone(), period).await {
                    println!("instance {name} cannot campaign: {error}");
                }
            })
        })
        .collect();
    if instances > 1 {
        // Stop the leading instance, as a deploy would: the next one takes over at once,
        // woken by the release.
        tokio::time::sleep(stop_after).await;
        STOP.notify_one();
    }
    tokio::time::sleep(Duration::from_secs(seconds).saturating_sub(stop_after)).await;
    for task in &tasks {
        task.abort();
    }
    Ok(())
}
