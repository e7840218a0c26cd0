//! Several instances run the same periodic job; each tick, exactly one of them executes it
//! and the others skip, with a line per instance per tick saying which.
//!
//! ```text
//! cargo run -p lock-examples --bin scheduled-jobs                         # 3 instances in one process
//! cargo run -p lock-examples --bin scheduled-jobs -- --redis redis://127.0.0.1:6379 --name a
//! cargo run -p lock-examples --bin scheduled-jobs -- --zookeeper 127.0.0.1:2181 \
//!     --redis redis://127.0.0.1:6379 --name b   # locks in ZooKeeper, ledger in Redis
//! ```
//!
//! Flags: `--instances N` (default 3 in memory, 1 with Redis or ZooKeeper: start more
//! processes),
//! `--name NAME` (instance name prefix), `--period-ms MS` (default 2000), `--ticks N`
//! (default 5), `--job NAME` (default `report`). Ticks are numbered by the wall clock
//! (`unix time / period`), so instances in different processes agree on them.
//!
//! The job is guarded by `#[distributed_lock(..., or_return = Outcome::Busy)]`: an instance
//! that cannot take the lock skips the tick. Under the lock, the job also records the last
//! tick it completed, so an instance that arrives after the winner released does not run
//! the same tick again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lock_examples::{Flags, Ledger};
use lock_runtime::distributed_lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ran,
    AlreadyDone,
    Busy,
    Failed,
}

#[distributed_lock(key = "job:{job}", ttl = "10s", or_return = Outcome::Busy)]
async fn run_tick(job: &str, tick: u64, ledger: &Ledger) -> Outcome {
    let last_done = format!("last-tick:{job}");
    match ledger.get(&last_done).await {
        Ok(done) if done >= tick as i64 => return Outcome::AlreadyDone,
        Ok(_) => {}
        Err(_) => return Outcome::Failed,
    }
    // The job's work.
    tokio::time::sleep(Duration::from_millis(100)).await;
    match ledger.set(&last_done, tick as i64).await {
        Ok(()) => Outcome::Ran,
        Err(_) => Outcome::Failed,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn instance(name: String, job: String, period_ms: u64, ticks: u64, ledger: Ledger) {
    let first = now_ms() / period_ms + 1;
    for tick in first..first + ticks {
        let at = tick * period_ms;
        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
        let outcome = run_tick(&job, tick, &ledger).await;
        let said = match outcome {
            Outcome::Ran => "ran",
            Outcome::AlreadyDone => "skipped (another instance already ran it)",
            Outcome::Busy => "skipped (another instance holds the lock)",
            Outcome::Failed => "failed (ledger error)",
        };
        println!("tick {tick}: instance {name} {said}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::from_args()?;
    let ledger = lock_examples::setup(&flags).await?;
    let default_instances = if lock_examples::shared(&flags) { 1 } else { 3 };
    let instances: usize = flags.number("instances", default_instances)?;
    let period_ms: u64 = flags.number("period-ms", 2000)?;
    let ticks: u64 = flags.number("ticks", 5)?;
    let prefix = flags.text("name").unwrap_or("i").to_owned();
    let job = flags.text("job").unwrap_or("report").to_owned();
    if period_ms == 0 {
        return Err("--period-ms must be more than zero".into());
    }
    let mut tasks = Vec::new();
    for i in 0..instances {
        let name = if instances == 1 {
            prefix.clone()
        } else {
            format!("{prefix}{i}")
        };
        tasks.push(tokio::spawn(instance(
            name,
            job.clone(),
            period_ms,
            ticks,
            ledger.clone(),
        )));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}
