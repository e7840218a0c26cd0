//! Workers drain a queue of jobs keyed by resource: jobs on one resource never overlap,
//! jobs on different resources run in parallel. Shows waiting (`wait`), renewal for a job
//! longer than its TTL (`renew`), and the fencing token written with each result.
//!
//! ```text
//! cargo run -p lock-examples --bin worker-pool                          # in-memory queue and store
//! cargo run -p lock-examples --bin worker-pool -- --redis redis://127.0.0.1:6379 --jobs 12
//! cargo run -p lock-examples --bin worker-pool -- --redis redis://127.0.0.1:6379   # more workers
//! ```
//!
//! Flags: `--workers N` (default 4), `--jobs N` jobs to enqueue first (default 12 in memory,
//! 0 with Redis), `--resources N` (default 3), `--queue NAME` (default `jobs`). With Redis
//! the queue is a Redis list, so workers in several processes drain one queue; a process
//! exits when the queue is empty.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lock_examples::{AppError, Flags, Ledger};
use lock_runtime::distributed_lock;

/// A job: which resource it touches and how long it takes.
#[derive(Debug, Clone, Copy)]
struct Job {
    id: u64,
    resource: u64,
    millis: u64,
}

impl Job {
    fn encode(self) -> String {
        format!("{}:{}:{}", self.id, self.resource, self.millis)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(':').map(str::parse);
        Some(Self {
            id: parts.next()?.ok()?,
            resource: parts.next()?.ok()?,
            millis: parts.next()?.ok()?,
        })
    }
}

#[derive(Clone)]
enum Queue {
    Memory(Arc<Mutex<VecDeque<Job>>>),
    Redis(lock_examples::RedisData, String),
}

impl Queue {
    async fn push(&self, job: Job) -> Result<(), redis::RedisError> {
        match self {
            Queue::Memory(queue) => {
                queue.lock().expect("queue").push_back(job);
                Ok(())
            }
            Queue::Redis(conn, name) => {
                redis::cmd("RPUSH")
                    .arg(name)
                    .arg(job.encode())
                    .exec_async(&mut conn.clone())
                    .await
            }
        }
    }

    async fn pop(&self) -> Result<Option<Job>, redis::RedisError> {
        match self {
            Queue::Memory(queue) => Ok(queue.lock().expect("queue").pop_front()),
            Queue::Redis(conn, name) => {
                let text: Option<String> = redis::cmd("LPOP")
                    .arg(name)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(text.as_deref().and_then(Job::decode))
            }
        }
    }
}

/// Runs one job under its resource's lock. Waits up to 30 s for the resource; renews the
/// 1 s lease while a long job runs; writes the result with the fencing token, which the
/// ledger only accepts if no higher token was written for the resource before.
#[distributed_lock(key = "resource:{resource}", ttl = "1s", wait = "30s", renew, fencing)]
async fn run_job(ledger: &Ledger, worker: &str, resource: u64, job: Job) -> Result<u64, AppError> {
    let fence = lock_runtime::fencing_token().unwrap_or(0);
    let busy = format!("busy:{resource}");
    let inside = ledger.get(&busy).await?;
    ledger.set(&busy, inside + 1).await?;
    if inside != 0 {
        println!("OVERLAP on resource {resource}: {inside} other job(s) inside");
    }
    tokio::time::sleep(Duration::from_millis(job.millis)).await;
    let last_fence = format!("fence:{resource}");
    if (ledger.get(&last_fence).await? as u64) < fence {
        ledger.set(&last_fence, fence as i64).await?;
        ledger
            .set(&format!("result:{resource}"), job.id as i64)
            .await?;
    } else {
        println!(
            "job {}: result refused, a newer holder already wrote",
            job.id
        );
    }
    ledger.set(&busy, ledger.get(&busy).await? - 1).await?;
    println!(
        "job {:>2} on resource {resource}: done by {worker} in {} ms, fencing token {fence}",
        job.id, job.millis
    );
    Ok(fence)
}

async fn worker(
    name: String,
    queue: Queue,
    ledger: Ledger,
    started: Instant,
) -> Result<u64, String> {
    let mut done = 0;
    while let Some(job) = queue.pop().await.map_err(|e| e.to_string())? {
        println!(
            "{:>6} ms  {name} takes job {} (resource {}, {} ms)",
            started.elapsed().as_millis(),
            job.id,
            job.resource,
            job.millis
        );
        match run_job(&ledger, &name, job.resource, job).await {
            Ok(_) => done += 1,
            Err(e) => println!("job {}: {e}", job.id),
        }
    }
    Ok(done)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::from_args()?;
    let ledger = lock_examples::setup(&flags).await?;
    let queue = match (&ledger, flags.text("redis")) {
        (Ledger::Redis(conn), Some(_)) => Queue::Redis(
            conn.clone(),
            flags.text("queue").unwrap_or("jobs").to_owned(),
        ),
        _ => Queue::Memory(Arc::default()),
    };
    let default_jobs = if flags.text("redis").is_some() { 0 } else { 12 };
    let jobs: u64 = flags.number("jobs", default_jobs)?;
    let resources: u64 = flags.number("resources", 3)?.max(1);
    let workers: usize = flags.number("workers", 4)?;
    for id in 0..jobs {
        // Every fourth job is long: 1.5 s, longer than the 1 s TTL, kept alive by renewal.
        let millis = if id % 4 == 3 {
            1500
        } else {
            100 + 50 * (id % 3)
        };
        queue
            .push(Job {
                id,
                resource: id % resources,
                millis,
            })
            .await?;
    }
    println!("{jobs} jobs on {resources} resources queued; {workers} workers start");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..workers {
        let name = format!("{}w{i}", flags.text("name").unwrap_or(""));
        tasks.push(tokio::spawn(worker(
            name,
            queue.clone(),
            ledger.clone(),
            started,
        )));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    println!("{done} jobs done in {} ms", started.elapsed().as_millis());
    Ok(())
}
