//! Lock throughput and latency against one `redis-server`, next to a hand-written floor
//! measured in the same run: the raw `redis` crate doing `SET NX PX` and an EVALSHA
//! compare-and-delete on one multiplexed connection (and, for waiting, retrying `SET NX`
//! every millisecond).
//!
//! Run with `cargo bench -p lock-tests --bench locks`. `BENCH_SECONDS` sets how long each
//! measurement runs (default 2).
//!
//! Scenarios:
//! - S1: one task, one key: acquire+release cycles per second and latency.
//! - S2: 64 tasks on 64 distinct keys: cycles per second.
//! - S3h: 16 tasks on one key, each holding it 1 ms; a task that released waits until
//!   another task has taken the lock before competing again, so every handoff goes to a
//!   waiter. Acquisitions per second, handoff gap (the previous holder's release returns
//!   -> the next holder's acquire returns), and server commands per acquisition from
//!   `INFO commandstats` (commands inside scripts included).
//! - S3h x2: the same with the 16 waiters spread over 2 processes.
//! - S1 through a `#[distributed_lock]` function against the hand API.
//! - S1 and S2 with no metrics recorder and with `metrics-exporter-prometheus` installed
//!   (`BENCH_ONLY=metrics`), each side in its own process, against the floor.
//! - S1, S2 and S3h again against a 3-primary Redis Cluster (`BENCH_ONLY=cluster`).
//! - S1 and S2 against a floor that sends the library's own commands (`SET` with a value as
//!   long as the library's token and holder record, and a release script that also
//!   publishes) (`BENCH_ONLY=same`): what is left is how commands reach the server.
//! - Lock kinds (`BENCH_ONLY=kinds`): a cycle of two keys at once against a hand-written
//!   floor (one script that sets both keys if both are free, one that deletes both) and
//!   against the library's one-key cycle; a semaphore permit's and a read lock's cycle
//!   against the one-key lock's. One task and 64 tasks, each side in its own process.
//! - S1, S2 and S3h with Redlock over 3 independent servers (`BENCH_ONLY=redlock`), against
//!   a hand-written Redlock floor (all `SET NX PX` at once, majority, compare-and-delete on
//!   all) and rslock's Redlock.
//! - S1, S2 and S3h on PostgreSQL (`BENCH_ONLY=postgres`: the server on 127.0.0.1:5432, or
//!   `LOCK_TESTS_POSTGRES_URL`), against a floor issuing the library's own statements
//!   directly with tokio-postgres; "cmd" there counts committed statements
//!   (`pg_stat_database`), and server CPU is not measured (a backend per connection). Also
//!   S1 and S2 against the advisory locks PostgreSQL users run instead (a connection per
//!   task): `pg_try_advisory_lock` / `pg_advisory_unlock`, and `pg_advisory_xact_lock` in a
//!   transaction.
//! - S1, S2 and S3h on a standalone ZooKeeper (`BENCH_ONLY=zookeeper`), against the
//!   `zookeeper-client` crate's own lock recipe (Curator's); "cmd" there counts the packets
//!   the server received (`mntr`), pings included.
//! - Election hand-over beside lock hand-over between two processes (`BENCH_ONLY=election`,
//!   `locks/election.rs`).

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use lock_runtime::{distributed_lock, Backend, LockError, LockOptions};

#[path = "locks/election.rs"]
mod election;
#[path = "locks/postgres.rs"]
mod postgres;
#[path = "locks/redlock.rs"]
mod redlock;
#[path = "locks/zookeeper.rs"]
mod zookeeper;
use lock_tests::RedisServer;
use redis::{aio::MultiplexedConnection, AsyncCommands as _, Script};

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// The floor that sends what the library sends: compare the value's token prefix, delete,
/// publish on the key's channel (GET, DEL, PUBLISH inside one EVALSHA).
const RELEASE_PUBLISH: &str = r"
local value = redis.call('GET', KEYS[1])
if value and string.find(value, ARGV[1], 1, true) == 1 then
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', KEYS[1], '')
    return 1
end
return 0
";

/// The floor's two-key acquire: both keys if both are free.
const ACQUIRE_TWO: &str = r"
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
";

/// The floor's two-key release: compare-and-delete both.
const RELEASE_TWO: &str = r"
local n = 0
for i = 1, 2 do
    if redis.call('GET', KEYS[i]) == ARGV[1] then
        n = n + redis.call('DEL', KEYS[i])
    end
end
return n
";

const HANDOFF_TASKS: usize = 16;
const HOLD: Duration = Duration::from_millis(1);
const OPTIONS: LockOptions = LockOptions::new(Duration::from_secs(10));
const WAITING: LockOptions =
    LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(30));

fn seconds() -> Duration {
    let secs = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

// ---------------------------------------------------------------------------------------
// Measurements

#[derive(Default)]
struct Measured {
    cycles: u64,
    elapsed: Duration,
    /// CPU time the measuring process used (user + system, all threads), when measured.
    cpu: Duration,
    /// CPU time the Redis server used meanwhile, when measured.
    server_cpu: Duration,
    /// Per-cycle latencies (S1, S2) or handoff gaps (S3h).
    samples: Vec<Duration>,
    commands_per_cycle: Option<f64>,
    /// One entry per part added (a round of [`separate`]): cycles per second, client and
    /// server CPU per cycle (us), and the machine's 1-minute load when it ended.
    parts: Vec<[f64; 4]>,
}

impl Measured {
    fn add(&mut self, slice: Measured) {
        self.parts.push([
            slice.per_second(),
            slice.cpu_per_cycle_us(),
            slice.server_cpu_per_cycle_us(),
            load(),
        ]);
        self.cycles += slice.cycles;
        self.elapsed += slice.elapsed;
        self.cpu += slice.cpu;
        self.server_cpu += slice.server_cpu;
        self.samples.extend(slice.samples);
    }

    /// Client CPU time per cycle, in microseconds.
    fn cpu_per_cycle_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.cycles as f64
    }

    /// Server CPU time per cycle, in microseconds.
    fn server_cpu_per_cycle_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.cycles as f64
    }

    fn per_second(&self) -> f64 {
        self.cycles as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        Some(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
    }
}

/// Runs `cycle(task)` back to back on `tasks` tasks for `length`, after a warm-up.
async fn run_cycles<F, Fut>(tasks: usize, length: Duration, cycle: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let cycle = Arc::new(cycle);
    for i in 0..tasks {
        for _ in 0..5 {
            cycle(i).await;
        }
    }
    let started = Instant::now();
    let deadline = started + length;
    let mut handles = Vec::new();
    for i in 0..tasks {
        let cycle = cycle.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let t = Instant::now();
                cycle(i).await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut samples = Vec::new();
    for handle in handles {
        samples.extend(handle.await.expect("bench task"));
    }
    Measured {
        cycles: samples.len() as u64,
        elapsed: started.elapsed(),
        cpu: Duration::ZERO,
        server_cpu: Duration::ZERO,
        samples,
        commands_per_cycle: None,
        parts: Vec::new(),
    }
}

/// Measures `a` and `b` alternately in `rounds` short slices each and adds each side's
/// slices up, so that a slow moment of a shared, noisy machine hurts both sides alike.
async fn interleaved<A, AF, B, BF>(rounds: usize, a: A, b: B) -> (Measured, Measured)
where
    A: Fn() -> AF,
    AF: Future<Output = Measured>,
    B: Fn() -> BF,
    BF: Future<Output = Measured>,
{
    let (mut total_a, mut total_b) = (Measured::default(), Measured::default());
    for _ in 0..rounds {
        total_a.add(a().await);
        total_b.add(b().await);
    }
    (total_a, total_b)
}

/// Commands run by `servers` so far (all of a cluster's nodes, or one server).
fn commandstats_total(servers: &[&RedisServer]) -> u64 {
    servers.iter().map(|server| commands_run(server)).sum()
}

fn commands_run(server: &RedisServer) -> u64 {
    server
        .raw(&["INFO", "commandstats"])
        .lines()
        // Health checks (`INFO`; `CLUSTER SLOTS` on a cluster) are not lock commands.
        .filter(|line| {
            line.starts_with("cmdstat_")
                && !line.starts_with("cmdstat_info:")
                && !line.starts_with("cmdstat_cluster|slots:")
        })
        .filter_map(|line| {
            line.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

// ---------------------------------------------------------------------------------------
// The floor and the library

#[derive(Clone)]
struct Floor {
    conn: FloorConn,
    script: Arc<Script>,
    /// For a `redis+redlock://` URL: one connection per server (`conn` is the first).
    redlock: Option<Arc<[MultiplexedConnection]>>,
}

/// The floor's connection: one multiplexed connection, or the `redis` crate's cluster
/// connection for a `redis+cluster://host:port,...` URL.
#[derive(Clone)]
enum FloorConn {
    One(MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for FloorConn {
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

impl Floor {
    async fn connect(url: &str) -> Self {
        if let Some(servers) = redlock::urls(url) {
            let conns = redlock::connect(&servers).await;
            return Self {
                conn: FloorConn::One(conns[0].clone()),
                script: Arc::new(Script::new(RELEASE)),
                redlock: Some(conns.into()),
            };
        }
        let conn = match url.strip_prefix("redis+cluster://") {
            Some(nodes) => {
                let nodes: Vec<String> = nodes.split(',').map(|n| format!("redis://{n}")).collect();
                let client = redis::cluster::ClusterClient::new(nodes).expect("cluster seeds");
                FloorConn::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .expect("floor cluster connection"),
                )
            }
            None => FloorConn::One(
                redis::Client::open(url)
                    .expect("url")
                    .get_multiplexed_async_connection()
                    .await
                    .expect("floor connection"),
            ),
        };
        Self {
            conn,
            script: Arc::new(Script::new(RELEASE)),
            redlock: None,
        }
    }

    /// `SET NX PX`; with `poll`, retried every millisecond until it succeeds.
    async fn acquire(&self, key: &str, token: &str, poll: bool) {
        if let Some(conns) = &self.redlock {
            return redlock::acquire(conns, &self.script, key, token, poll).await;
        }
        let mut conn = self.conn.clone();
        loop {
            let set: redis::Value = redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query_async(&mut conn)
                .await
                .expect("floor SET");
            if set == redis::Value::Okay {
                return;
            }
            assert!(poll, "floor: the key was taken");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn release(&self, key: &str, token: &str) {
        if let Some(conns) = &self.redlock {
            return redlock::release(conns, &self.script, key, token).await;
        }
        let deleted: i64 = self
            .script
            .key(key)
            .arg(token)
            .invoke_async(&mut self.conn.clone())
            .await
            .expect("floor release");
        assert_eq!(deleted, 1);
    }
}

/// A token that differs per call without the OS random source (the floor should not pay
/// for what it does not strictly need).
fn floor_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!("{:032x}", N.fetch_add(1, Ordering::Relaxed))
}

#[distributed_lock(key = "bench:annotated", ttl = "10s", client = "bench")]
async fn annotated() -> Result<(), LockError> {
    Ok(())
}

// ---------------------------------------------------------------------------------------
// S3h: forced handoff

/// Tells tasks (of one or several processes) how many acquisitions happened so far.
#[derive(Clone)]
enum Count {
    Local(Arc<tokio::sync::watch::Sender<u64>>),
    /// Shared through a second Redis server (not the measured one).
    Shared {
        conn: MultiplexedConnection,
        seen: tokio::sync::watch::Receiver<u64>,
    },
}

impl Count {
    async fn shared(coord_url: &str) -> Self {
        let client = redis::Client::open(coord_url).expect("coordination url");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("coordination");
        let (tx, seen) = tokio::sync::watch::channel(0);
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .expect("coordination pubsub");
        pubsub.subscribe("acquired").await.expect("subscribe");
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = std::future::poll_fn(|cx| {
                futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
            })
            .await
            {
                let n: u64 = msg.get_payload().unwrap_or(0);
                tx.send_modify(|seen| *seen = (*seen).max(n));
            }
        });
        Self::Shared { conn, seen }
    }

    /// Records one acquisition; returns the count including it.
    async fn acquired(&self) -> u64 {
        match self {
            Count::Local(tx) => {
                let mut n = 0;
                tx.send_modify(|count| {
                    *count += 1;
                    n = *count;
                });
                n
            }
            Count::Shared { conn, .. } => {
                let mut conn = conn.clone();
                let n: u64 = conn.incr("acquisitions", 1).await.expect("INCR");
                let _: i64 = conn.publish("acquired", n).await.expect("PUBLISH");
                n
            }
        }
    }

    /// Waits until some acquisition after the `n`th happened.
    async fn past(&self, n: u64) {
        let mut seen = match self {
            Count::Local(tx) => tx.subscribe(),
            Count::Shared { seen, .. } => seen.clone(),
        };
        let _ = seen.wait_for(|count| *count > n).await;
    }
}

/// One holding: when its acquire returned and when its release returned (µs since the epoch,
/// comparable across the processes of one machine).
type Holding = (u64, u64);

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Runs `tasks` handoff tasks in this process for `length`; returns their holdings.
async fn handoff_tasks<A, AF>(
    tasks: usize,
    length: Duration,
    count: Count,
    cycle: A,
) -> Vec<Holding>
where
    A: Fn() -> AF + Send + Sync + 'static,
    AF: Future<
            Output = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>,
        > + Send,
{
    let cycle = Arc::new(cycle);
    let deadline = Instant::now() + length;
    let holdings = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (cycle, count, holdings) = (cycle.clone(), count.clone(), holdings.clone());
        handles.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let release = cycle().await; // acquire; returns the release to run later
                let acquired_at = micros_now();
                let n = count.acquired().await;
                tokio::time::sleep(HOLD).await;
                release().await;
                let released_at = micros_now();
                holdings
                    .lock()
                    .expect("holdings")
                    .push((acquired_at, released_at));
                // Past the deadline nobody may acquire again: stop waiting then.
                let _ = tokio::time::timeout_at(deadline.into(), count.past(n)).await;
            }
        }));
    }
    for handle in handles {
        handle.await.expect("handoff task");
    }
    let holdings = holdings.lock().expect("holdings").clone();
    holdings
}

/// Gaps between consecutive holdings, in the order the lock was held.
fn gaps(mut holdings: Vec<Holding>) -> Vec<Duration> {
    holdings.sort_unstable();
    holdings
        .windows(2)
        .map(|w| Duration::from_micros(w[1].0.saturating_sub(w[0].1)))
        .collect()
}

type Release = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

fn lib_handoff(
    backend: Backend,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Release> + Send>> + Send + Sync + Clone {
    move || {
        let backend = backend.clone();
        Box::pin(async move {
            let guard = backend
                .acquire("bench:handoff", &WAITING)
                .await
                .expect("acquire");
            let release: Release =
                Box::new(move || Box::pin(async move { guard.release().await.expect("release") }));
            release
        })
    }
}

fn floor_handoff(
    floor: Floor,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Release> + Send>> + Send + Sync + Clone {
    move || {
        let floor = floor.clone();
        Box::pin(async move {
            let token = floor_token();
            floor.acquire("lock:{bench:handoff}", &token, true).await;
            let release: Release = Box::new(move || {
                Box::pin(async move { floor.release("lock:{bench:handoff}", &token).await })
            });
            release
        })
    }
}

fn rslock_handoff(
    manager: Arc<rslock::LockManager>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Release> + Send>> + Send + Sync + Clone {
    move || {
        let manager = manager.clone();
        Box::pin(async move {
            // rslock gives up after its retries (3, up to 200 ms apart): ask again.
            let lock = loop {
                if let Ok(lock) = manager.lock(b"rslock:{bench:handoff}", OPTIONS.ttl()).await {
                    break lock;
                }
            };
            let release: Release =
                Box::new(move || Box::pin(async move { manager.unlock(&lock).await }));
            release
        })
    }
}

async fn s3h(
    server: &[&RedisServer],
    length: Duration,
    cycle: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Release> + Send>> + Send + Sync + 'static,
) -> Measured {
    s3h_counting(&|| commandstats_total(server), length, cycle).await
}

/// [`s3h`], counting the store's operations with `operations` (a running total).
async fn s3h_counting(
    operations: &dyn Fn() -> u64,
    length: Duration,
    cycle: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Release> + Send>> + Send + Sync + 'static,
) -> Measured {
    let before = operations();
    let started = Instant::now();
    let count = Count::Local(Arc::new(tokio::sync::watch::channel(0).0));
    let holdings = handoff_tasks(HANDOFF_TASKS, length, count, cycle).await;
    let elapsed = started.elapsed();
    let commands = operations() - before;
    Measured {
        cycles: holdings.len() as u64,
        elapsed,
        commands_per_cycle: Some(commands as f64 / holdings.len().max(1) as f64),
        samples: gaps(holdings),
        ..Measured::default()
    }
}

/// S3h with half the tasks in a child process (this binary again, with `--handoff-child`).
async fn s3h_two_processes(
    server: &RedisServer,
    coord: &RedisServer,
    length: Duration,
    floor: bool,
) -> Measured {
    let _ = redis::cmd("DEL")
        .arg("acquisitions")
        .exec_async(&mut Floor::connect(&coord.url()).await.conn)
        .await;
    let count = Count::shared(&coord.url()).await;
    let before = commandstats_total(&[server]);
    let child = tokio::process::Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--handoff-child",
            &server.url(),
            &coord.url(),
            &length.as_secs_f64().to_string(),
            if floor { "floor" } else { "lib" },
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the second process");
    let started = Instant::now();
    let own = if floor {
        let floor = Floor::connect(&server.url()).await;
        handoff_tasks(HANDOFF_TASKS / 2, length, count, floor_handoff(floor)).await
    } else {
        let backend = Backend::redis(&server.url()).await.expect("connect");
        handoff_tasks(HANDOFF_TASKS / 2, length, count, lib_handoff(backend)).await
    };
    let output = child.wait_with_output().await.expect("second process");
    let elapsed = started.elapsed();
    let mut holdings = own;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((a, r)) = line.split_once(' ') {
            if let (Ok(a), Ok(r)) = (a.parse(), r.parse()) {
                holdings.push((a, r));
            }
        }
    }
    let commands = commandstats_total(&[server]) - before;
    Measured {
        cycles: holdings.len() as u64,
        elapsed,
        commands_per_cycle: Some(commands as f64 / holdings.len().max(1) as f64),
        samples: gaps(holdings),
        ..Measured::default()
    }
}

async fn handoff_child(args: &[String]) {
    let [url, coord, seconds, which] = args else {
        panic!("usage: --handoff-child <url> <coord-url> <seconds> <floor|lib>");
    };
    let length = Duration::from_secs_f64(seconds.parse().expect("seconds"));
    let count = Count::shared(coord).await;
    let holdings = if which == "floor" {
        let floor = Floor::connect(url).await;
        handoff_tasks(HANDOFF_TASKS / 2, length, count, floor_handoff(floor)).await
    } else {
        let backend = fresh_servers().connect(url).await.expect("connect");
        handoff_tasks(HANDOFF_TASKS / 2, length, count, lib_handoff(backend)).await
    };
    for (a, r) in holdings {
        println!("{a} {r}");
    }
}

// ---------------------------------------------------------------------------------------
// Report

fn us(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e6))
}

fn row(name: &str, floor: &Measured, lib: &Measured) {
    let cmds = |m: &Measured| {
        m.commands_per_cycle
            .map_or("-".into(), |c| format!("{c:.2}"))
    };
    println!(
        "{:<30} {:>10.0} {:>10.0} {:>6.2}x {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
        name,
        floor.per_second(),
        lib.per_second(),
        lib.per_second() / floor.per_second(),
        us(floor.percentile(0.5)),
        us(lib.percentile(0.5)),
        us(floor.percentile(0.99)),
        us(lib.percentile(0.99)),
        cmds(floor),
        cmds(lib),
    );
}

fn redis_benchmark_ping_rtt(port: u16) -> Option<Duration> {
    let output = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "1",
            "-n",
            "50000",
            "-t",
            "ping",
            "--csv",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("\"PING_MBULK\""))?;
    let rps: f64 = line.split(',').nth(1)?.trim_matches('"').parse().ok()?;
    Some(Duration::from_secs_f64(1.0 / rps))
}

/// The CPU time process `pid` (`"self"`: this one) has used so far, user and system, over
/// all its threads: the sum of each thread's run time from `/proc/PID/task/*/schedstat`
/// (nanoseconds; the kernel's accounting behind `getrusage`, without its tick granularity).
/// The machine's 1-minute load average.
fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `a`'s per-round figure `what` (0 rate, 1 client CPU, 2 server CPU per cycle) over
/// `b`'s, as min / median / max over the rounds both ran.
fn spread(a: &Measured, b: &Measured, what: usize) -> String {
    let mut ratios: Vec<f64> = a
        .parts
        .iter()
        .zip(&b.parts)
        .map(|(a, b)| a[what] / b[what])
        .collect();
    if ratios.is_empty() {
        return "-".to_owned();
    }
    ratios.sort_by(f64::total_cmp);
    format!(
        "{:.2}/{:.2}/{:.2}",
        ratios[0],
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    )
}

/// The machine's load over the rounds of `m`: min-max.
fn loads(m: &Measured) -> String {
    let (low, high) = m
        .parts
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), p| (l.min(p[3]), h.max(p[3])));
    format!("{low:.1}-{high:.1}")
}

/// Every process of the PostgreSQL server on this machine (named `postgres`).
fn postgres_pids() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == "postgres").then_some(pid)
        })
        .collect()
}

/// The CPU time of `pid`'s main thread; `None` if it is gone.
fn leader_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let ns = stat.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

fn process_cpu(pid: &str) -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

/// One side of S1/S2 in a process of its own: `--cycles-child SIDE URL TASKS MILLIS PID`,
/// PID being the server's. Prints the cycles, the elapsed time, its own and the server's CPU
/// time, then every latency, in nanoseconds.
async fn cycles_child(args: &[String]) {
    let [side, url, tasks, millis, server] = args else {
        panic!("usage: --cycles-child floor|lib|rslock URL TASKS MILLIS SERVER-PID");
    };
    let tasks: usize = tasks.parse().expect("tasks");
    let length = Duration::from_millis(millis.parse().expect("millis"));
    let measured = match side.as_str() {
        "floor" => {
            let floor = Floor::connect(url).await;
            measure(tasks, length, server, move |i| {
                let floor = floor.clone();
                async move {
                    let (key, token) = (format!("lock:{{bench:{i}}}"), floor_token());
                    floor.acquire(&key, &token, false).await;
                    floor.release(&key, &token).await;
                }
            })
            .await
        }
        "lib" | "lib+metrics" => {
            if side == "lib+metrics" {
                // A real recorder, installed before the first lock, as docs/operations.md says.
                metrics_exporter_prometheus::PrometheusBuilder::new()
                    .install_recorder()
                    .expect("install the Prometheus recorder");
            }
            let backend = fresh_servers().connect(url).await.expect("lib connection");
            measure(tasks, length, server, move |i| {
                let backend = backend.clone();
                async move { lib_cycle(&backend, i).await }
            })
            .await
        }
        "floor5" => {
            // The library's value: its token and holder record, as long as the library
            // writes it (read back from a lock the library takes once).
            let value_len = {
                let backend = fresh_servers().connect(url).await.expect("lib connection");
                let guard = backend
                    .acquire("bench:probe", &OPTIONS)
                    .await
                    .expect("probe");
                let mut conn = Floor::connect(url).await.conn;
                let value: String = redis::cmd("GET")
                    .arg(backend.key_for("bench:probe"))
                    .query_async(&mut conn)
                    .await
                    .expect("the probe's value");
                guard.release().await.expect("release the probe");
                value.len()
            };
            let floor = Floor::connect(url).await;
            let release = Arc::new(Script::new(RELEASE_PUBLISH));
            measure(tasks, length, server, move |i| {
                let (mut conn, release) = (floor.conn.clone(), release.clone());
                async move {
                    let key = format!("lock:{{bench:{i}}}");
                    let token = floor_token();
                    let value = format!("{token:-<value_len$}");
                    let set: redis::Value = redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .arg("NX")
                        .arg("PX")
                        .arg(10_000)
                        .query_async(&mut conn)
                        .await
                        .expect("floor5 SET");
                    assert_eq!(set, redis::Value::Okay, "floor5: the key was taken");
                    let deleted: i64 = release
                        .key(&key)
                        .arg(&token)
                        .invoke_async(&mut conn)
                        .await
                        .expect("floor5 release");
                    assert_eq!(deleted, 1);
                }
            })
            .await
        }
        "floor2" => {
            let floor = Floor::connect(url).await;
            let (acquire, release) = (
                Arc::new(Script::new(ACQUIRE_TWO)),
                Arc::new(Script::new(RELEASE_TWO)),
            );
            measure(tasks, length, server, move |i| {
                let (mut conn, acquire, release) =
                    (floor.conn.clone(), acquire.clone(), release.clone());
                async move {
                    let keys = [
                        format!("lock:{{bench:{i}a}}"),
                        format!("lock:{{bench:{i}b}}"),
                    ];
                    let token = floor_token();
                    let taken: i64 = acquire
                        .key(&keys[0])
                        .key(&keys[1])
                        .arg(&token)
                        .arg(10_000)
                        .invoke_async(&mut conn)
                        .await
                        .expect("floor acquire two");
                    assert_eq!(taken, 1, "floor: a key was taken");
                    let deleted: i64 = release
                        .key(&keys[0])
                        .key(&keys[1])
                        .arg(&token)
                        .invoke_async(&mut conn)
                        .await
                        .expect("floor release two");
                    assert_eq!(deleted, 2);
                }
            })
            .await
        }
        "lib2" | "libsem" | "libread" => {
            let backend = fresh_servers().connect(url).await.expect("lib connection");
            let side = side.clone();
            measure(tasks, length, server, move |i| {
                let (backend, side) = (backend.clone(), side.clone());
                async move {
                    match side.as_str() {
                        "lib2" => {
                            let keys = [format!("bench:{i}a"), format!("bench:{i}b")];
                            let both = backend
                                .acquire_all(&keys, &OPTIONS)
                                .await
                                .expect("acquire two");
                            both.release().await.expect("release two");
                        }
                        "libsem" => {
                            let key = format!("bench:sem:{i}");
                            let permit = backend
                                .acquire_permit(&key, 5, &OPTIONS)
                                .await
                                .expect("permit");
                            permit.release().await.expect("release permit");
                        }
                        _ => {
                            let read = OPTIONS.mode(lock_runtime::LockMode::Read);
                            let key = format!("bench:read:{i}");
                            let guard = backend.acquire(&key, &read).await.expect("read lock");
                            guard.release().await.expect("release read lock");
                        }
                    }
                }
            })
            .await
        }
        "pgfloor" => {
            let floor = postgres::Floor::connect(url).await;
            measure(tasks, length, server, move |i| {
                let floor = floor.clone();
                async move { floor.cycle(&format!("lock:{{bench:{i}}}")).await }
            })
            .await
        }
        "pgadv" | "pgxact" => {
            let advisory = postgres::Advisory::connect(url, tasks, side == "pgxact").await;
            measure(tasks, length, server, move |i| {
                let advisory = advisory.clone();
                async move { advisory.cycle(i, &format!("bench:{i}")).await }
            })
            .await
        }
        "zkfloor" => {
            let floor = zookeeper::Floor::connect(url).await;
            measure(tasks, length, server, move |i| {
                let floor = floor.clone();
                async move { floor.cycle(&format!("/bench/{i}")).await }
            })
            .await
        }
        "rslock" => {
            let urls = redlock::urls(url).unwrap_or_else(|| vec![url.clone()]);
            let manager = Arc::new(rslock::LockManager::new(urls));
            measure(tasks, length, server, move |i| {
                let manager = manager.clone();
                async move {
                    let lock = manager
                        .lock(format!("rslock:{{bench:{i}}}").as_bytes(), OPTIONS.ttl())
                        .await
                        .expect("rslock acquire");
                    manager.unlock(&lock).await;
                }
            })
            .await
        }
        other => panic!("unknown side {other}"),
    };
    let mut out = format!(
        "{} {} {} {}\n",
        measured.cycles,
        measured.elapsed.as_nanos(),
        measured.cpu.as_nanos(),
        measured.server_cpu.as_nanos()
    );
    for sample in &measured.samples {
        out.push_str(&sample.as_nanos().to_string());
        out.push(' ');
    }
    println!("{out}");
}

/// One acquire+release of the key `bench:{i}` through the library's hand API.
async fn lib_cycle(backend: &Backend, i: usize) {
    let guard = backend
        .acquire(&format!("bench:{i}"), &OPTIONS)
        .await
        .expect("acquire");
    guard.release().await.expect("release");
}

/// [`run_cycles`], with this process's and the server's CPU time over the measurement.
async fn measure<F, Fut>(tasks: usize, length: Duration, server: &str, cycle: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    // `server`: the server's pid, or a cluster's, comma-separated; `postgres`: every
    // process of the PostgreSQL server (backends come and go: each counted from when it
    // was first seen, or from its start).
    let servers = || -> HashMap<String, Duration> {
        let pids = match server {
            "postgres" => postgres_pids(),
            _ => server.split(',').map(str::to_owned).collect(),
        };
        pids.into_iter()
            .filter_map(|pid| {
                let cpu = match server {
                    // One thread each.
                    "postgres" => leader_cpu(&pid)?,
                    _ => process_cpu(&pid),
                };
                Some((pid, cpu))
            })
            .collect()
    };
    // Kept until the server is looked at: what the cycles hold (connections) ends with it.
    let cycle = Arc::new(cycle);
    let kept = cycle.clone();
    let (own, theirs) = (process_cpu("self"), servers());
    let mut measured = run_cycles(tasks, length, move |i| kept(i)).await;
    measured.cpu = process_cpu("self").saturating_sub(own);
    measured.server_cpu = servers()
        .into_iter()
        .map(|(pid, cpu)| cpu.saturating_sub(theirs.get(&pid).copied().unwrap_or_default()))
        .sum();
    drop(cycle);
    measured
}

/// Where S1/S2 run: a URL and the pids of the servers behind it.
struct Target {
    url: String,
    pids: String,
}

impl Target {
    fn of(servers: &[&RedisServer], url: String) -> Self {
        let pids: Vec<String> = servers.iter().map(|s| s.pid().to_string()).collect();
        Self {
            url,
            pids: pids.join(","),
        }
    }
}

/// One slice of S1/S2 for `side`, in a child process.
async fn cycles_in_child(side: &str, target: &Target, tasks: usize, length: Duration) -> Measured {
    let (tasks, millis) = (tasks.to_string(), length.as_millis().to_string());
    let mut command = match side {
        // Curator's InterProcessMutex, in a JVM of its own (`tests/java/CuratorBench.java`).
        "curator" => {
            let mut java = tokio::process::Command::new("java");
            let hosts = target.url.trim_start_matches("zookeeper://");
            java.args([
                "-cp",
                &zookeeper::curator_classpath(),
                "CuratorBench",
                hosts,
            ])
            .args(["cycles", &tasks, &millis, &target.pids]);
            java
        }
        _ => {
            let mut child =
                tokio::process::Command::new(std::env::current_exe().expect("bench binary"));
            child.args([
                "--cycles-child",
                side,
                &target.url,
                &tasks,
                &millis,
                &target.pids,
            ]);
            child
        }
    };
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run a bench child");
    assert!(output.status.success(), "the {side} child failed");
    parse_child(&output.stdout)
}

/// What a child printed: cycles, elapsed, its CPU and the server's (ns), then samples.
fn parse_child(stdout: &[u8]) -> Measured {
    let text = String::from_utf8_lossy(stdout);
    let mut lines = text.lines();
    let head: Vec<u64> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    let samples = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| Duration::from_nanos(n.parse().expect("sample")))
        .collect();
    Measured {
        cycles: head[0],
        elapsed: Duration::from_nanos(head[1]),
        cpu: Duration::from_nanos(head[2]),
        server_cpu: Duration::from_nanos(head[3]),
        samples,
        commands_per_cycle: None,
        parts: Vec::new(),
    }
}

/// S1 or S2 for the floor, this library and rslock (`sides` of them, in that order), each
/// in processes of its own, alternating in `rounds` slices.
async fn separate(
    rounds: usize,
    target: &Target,
    sides: &[&str],
    tasks: usize,
    slice: Duration,
) -> [Measured; 3] {
    let mut totals: [Measured; 3] = Default::default();
    for _ in 0..rounds {
        for (side, total) in sides.iter().zip(totals.iter_mut()) {
            total.add(cycles_in_child(side, target, tasks, slice).await);
        }
    }
    totals
}

fn separate_row(name: &str, [floor, lib, rslock]: &[Measured; 3]) {
    if floor.cycles == 0 {
        return;
    }
    // rslock has no cluster support: its columns stay empty there.
    let rsl = |value: f64, decimals: usize| {
        if rslock.cycles == 0 {
            "-".to_owned()
        } else {
            format!("{value:.decimals$}")
        }
    };
    println!(
        "{:<24} {:>9.0} {:>9.0} {:>9} {:>7.2}x {:>8} {:>6} {:>6} {:>6} {:>7.1} {:>7.1} {:>7} {:>7.2}x {:>7.1} {:>7.1} {:>7} {:>7.2}x",
        name,
        floor.per_second(),
        lib.per_second(),
        rsl(rslock.per_second(), 0),
        lib.per_second() / floor.per_second(),
        rsl(lib.per_second() / rslock.per_second(), 2) + if rslock.cycles == 0 { "" } else { "x" },
        us(floor.percentile(0.5)),
        us(lib.percentile(0.5)),
        us(rslock.percentile(0.5)),
        floor.cpu_per_cycle_us(),
        lib.cpu_per_cycle_us(),
        rsl(rslock.cpu_per_cycle_us(), 1),
        lib.cpu_per_cycle_us() / floor.cpu_per_cycle_us(),
        floor.server_cpu_per_cycle_us(),
        lib.server_cpu_per_cycle_us(),
        rsl(rslock.server_cpu_per_cycle_us(), 1),
        lib.server_cpu_per_cycle_us() / floor.server_cpu_per_cycle_us(),
    );
}

/// Three sides of one lock-kinds measurement (`names` says which), with the second and
/// third against the first.
fn kinds_row(name: &str, names: [&str; 3], [first, second, third]: &[Measured; 3]) {
    if first.cycles == 0 {
        return;
    }
    let [a, b, c] = names;
    println!(
        "{:<24} {a} {:.0}/s p50 {} us, srv {:.1} us | {b} {:.0}/s p50 {} us, srv {:.1} us ({b}/{a} {:.2}x) | {c} {:.0}/s p50 {} us, srv {:.1} us ({c}/{a} {:.2}x, {b}/{c} {:.2}x)",
        name,
        first.per_second(),
        us(first.percentile(0.5)),
        first.server_cpu_per_cycle_us(),
        second.per_second(),
        us(second.percentile(0.5)),
        second.server_cpu_per_cycle_us(),
        second.per_second() / first.per_second(),
        third.per_second(),
        us(third.percentile(0.5)),
        third.server_cpu_per_cycle_us(),
        third.per_second() / first.per_second(),
        second.per_second() / third.per_second(),
    );
}

/// The floor, the floor sending the library's commands and value length (`floor5`), and
/// the library: rate, client and server CPU per cycle, and the library against `floor5`.
fn same_row(name: &str, [floor, same, lib]: &[Measured; 3]) {
    if floor.cycles == 0 {
        return;
    }
    let side = |m: &Measured| {
        format!(
            "{:.0}/s cpu {:.1} srv {:.1}",
            m.per_second(),
            m.cpu_per_cycle_us(),
            m.server_cpu_per_cycle_us()
        )
    };
    println!(
        "{:<24} floor {} | floor5 {} | lib {} | lib/floor5 {:.2}x, cpu {:.2}x, srv {:.2}x",
        name,
        side(floor),
        side(same),
        side(lib),
        lib.per_second() / same.per_second(),
        lib.cpu_per_cycle_us() / same.cpu_per_cycle_us(),
        lib.server_cpu_per_cycle_us() / same.server_cpu_per_cycle_us(),
    );
    println!(
        "{:<24} rounds {}, min/median/max: lib/floor5 rate {}, cpu {}, srv {} | load {}",
        "",
        lib.parts.len(),
        spread(lib, same, 0),
        spread(lib, same, 1),
        spread(lib, same, 2),
        loads(lib)
    );
}

/// The library against the floor (and the third side, `peer`, if it ran) of a
/// [`separate`] run, per round: min / median / max of the rate, client CPU and server CPU
/// per cycle ratios, and the machine's load over the rounds.
fn rounds_row(peer: &str, [floor, lib, other]: &[Measured; 3]) {
    if floor.cycles == 0 {
        return;
    }
    let against = |name: &str, m: &Measured| {
        format!(
            "lib/{name} rate {}, cpu {}, srv {}",
            spread(lib, m, 0),
            spread(lib, m, 1),
            spread(lib, m, 2)
        )
    };
    let mut line = against("floor", floor);
    if other.cycles > 0 {
        line += &format!(" | {}", against(peer, other));
    }
    println!(
        "{:<24} rounds {}, min/median/max: {line} | load {}",
        "",
        lib.parts.len(),
        loads(lib)
    );
}

/// PostgreSQL advisory locks (`pg_try_advisory_lock`/unlock, and `pg_advisory_xact_lock` in
/// a transaction, a connection per task) against the library: rate, p50, client CPU per
/// cycle, and the library's rate against each.
fn advisory_row(name: &str, [try_lock, xact, lib]: &[Measured; 3]) {
    if lib.cycles == 0 {
        return;
    }
    let side = |m: &Measured| {
        format!(
            "{:.0}/s p50 {} us cpu {:.1} srv {:.1}",
            m.per_second(),
            us(m.percentile(0.5)),
            m.cpu_per_cycle_us(),
            m.server_cpu_per_cycle_us()
        )
    };
    println!(
        "{:<24} try/unlock {} | xact {} | lib {} | load {}",
        name,
        side(try_lock),
        side(xact),
        side(lib),
        loads(lib),
    );
    println!(
        "{:<24} per round, min/median/max: lib/try rate {}, srv {} | lib/xact rate {}, srv {}",
        "",
        spread(lib, try_lock, 0),
        spread(lib, try_lock, 2),
        spread(lib, xact, 0),
        spread(lib, xact, 2),
    );
}

/// The library without and with a metrics recorder (`metrics` feature on in both), each
/// against the floor.
fn metrics_row(name: &str, [floor, lib, recorded]: &[Measured; 3]) {
    if floor.cycles == 0 {
        return;
    }
    println!(
        "{:<24} {:>9.0} {:>9.0} {:>9.0} {:>7.2}x {:>7.2}x {:>6} {:>6} {:>6} {:>7.1} {:>7.1} {:>7.1} rec/lib {:.3}x",
        name,
        floor.per_second(),
        lib.per_second(),
        recorded.per_second(),
        lib.per_second() / floor.per_second(),
        recorded.per_second() / floor.per_second(),
        us(floor.percentile(0.5)),
        us(lib.percentile(0.5)),
        us(recorded.percentile(0.5)),
        floor.cpu_per_cycle_us(),
        lib.cpu_per_cycle_us(),
        recorded.cpu_per_cycle_us(),
        recorded.per_second() / lib.per_second(),
    );
}

/// Drains a queue of `waiters` tasks of one process, all waiting for one key held by
/// another, on the in-memory store: the time per acquisition once the holder lets go.
async fn drain_local_queue(waiters: usize) -> Duration {
    let backend = Backend::memory();
    let options = LockOptions::new(Duration::from_secs(60)).wait(Duration::from_secs(60));
    let holder = backend.acquire("q", &options).await.expect("hold");
    let tasks: Vec<_> = (0..waiters)
        .map(|_| {
            let (backend, options) = (backend.clone(), options.clone());
            tokio::spawn(async move {
                let guard = backend.acquire("q", &options).await.expect("acquire");
                guard.release().await.expect("release");
            })
        })
        .collect();
    // Let every task join the queue (a benchmark may wait; a test would await a condition).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    holder.release().await.expect("release");
    for task in tasks {
        task.await.expect("task");
    }
    started.elapsed() / u32::try_from(waiters).unwrap_or(u32::MAX)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--handoff-child") {
        handoff_child(&args[1..]).await;
        return;
    }
    if args.first().map(String::as_str) == Some("--cycles-child") {
        cycles_child(&args[1..]).await;
        return;
    }
    if args.first().map(String::as_str) == Some("--election-child") {
        election::child(&args[1..]).await;
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks for test names; there are none.
    }

    let server = RedisServer::start();
    let coord = RedisServer::start();
    let url = server.url();
    let floor = Floor::connect(&url).await;
    let backend = Backend::redis(&url).await.expect("lib connection");
    lock_runtime::register("bench", backend.clone()).expect("register");
    // S1, S2 and the attribute comparison alternate the two sides in 10 slices.
    let rounds = 10;
    let slice = seconds() / 10;
    let length = seconds();

    let lib_cycle = {
        let backend = backend.clone();
        move |i: usize| {
            let backend = backend.clone();
            async move { lib_cycle(&backend, i).await }
        }
    };

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    // Election hand-over beside lock hand-over: 5 alternating rounds, each side its own
    // pair of processes.
    if wanted("election") {
        election::run(&server, 5, (seconds() / 5).max(Duration::from_secs(1))).await;
    }
    // Zero rounds for a scenario left out: it reports nothing.
    let rounds_of = |name: &str| if wanted(name) { rounds } else { 0 };
    // S1 and S2: the floor, the library and rslock each in processes of their own.
    let single = Target::of(&[&server], url.clone());
    let peers = ["floor", "lib", "rslock"];
    let s1 = separate(rounds_of("s1"), &single, &peers, 1, slice).await;
    let s2 = separate(rounds_of("s2"), &single, &peers, 64, slice).await;
    // The library with no metrics recorder and with Prometheus' installed.
    let with_metrics = ["floor", "lib", "lib+metrics"];
    let m1 = separate(rounds_of("metrics"), &single, &with_metrics, 1, slice).await;
    let m2 = separate(rounds_of("metrics"), &single, &with_metrics, 64, slice).await;
    // Lock kinds: two keys at once against their floor and one key; a permit and a read
    // lock against one key.
    let two = ["floor2", "lib2", "lib"];
    let k1 = separate(rounds_of("kinds"), &single, &two, 1, slice).await;
    let k2 = separate(rounds_of("kinds"), &single, &two, 64, slice).await;
    // The floor sending the library's commands (with PUBLISH) and a value as long as the
    // library's: what is left between them is how commands reach the server.
    let same = ["floor", "floor5", "lib"];
    let f1 = separate(rounds_of("same"), &single, &same, 1, slice).await;
    let f2 = separate(rounds_of("same"), &single, &same, 64, slice).await;
    let shared = ["lib", "libsem", "libread"];
    let k3 = separate(rounds_of("kinds"), &single, &shared, 1, slice).await;
    let k4 = separate(rounds_of("kinds"), &single, &shared, 64, slice).await;
    // The same against a 3-primary Redis Cluster, the floor going through the `redis`
    // crate's cluster connection (rslock has no cluster support).
    let cluster = if wanted("cluster") {
        Some(lock_tests::RedisCluster::start(3, 0).await)
    } else {
        None
    };
    let (c1, c2, c3) = match &cluster {
        None => Default::default(),
        Some(cluster) => {
            let nodes: Vec<&RedisServer> = cluster.nodes().iter().collect();
            let target = Target::of(&nodes, cluster.url());
            let c1 = separate(rounds, &target, &["floor", "lib"], 1, slice).await;
            let c2 = separate(rounds, &target, &["floor", "lib"], 64, slice).await;
            let lib = Backend::redis(&target.url)
                .await
                .expect("cluster connection");
            let floor = Floor::connect(&target.url).await;
            let c3 = (
                s3h(&nodes, length, floor_handoff(floor)).await,
                s3h(&nodes, length, lib_handoff(lib)).await,
            );
            (c1, c2, c3)
        }
    };
    // Redlock over 3 independent servers: the floor, the library and rslock.
    let redlock_servers = if wanted("redlock") {
        Some(lock_tests::RedlockServers::start(3))
    } else {
        None
    };
    let (r1, r2, r3) = match &redlock_servers {
        None => Default::default(),
        Some(servers) => {
            let nodes: Vec<&RedisServer> = servers.servers().iter().collect();
            let target = Target::of(&nodes, servers.url());
            let r1 = separate(rounds, &target, &peers, 1, slice).await;
            let r2 = separate(rounds, &target, &peers, 64, slice).await;
            let lib = fresh_servers()
                .connect(&target.url)
                .await
                .expect("redlock connection");
            let floor = Floor::connect(&target.url).await;
            let rslock = Arc::new(rslock::LockManager::new(servers.urls()));
            let r3 = (
                s3h(&nodes, length, floor_handoff(floor)).await,
                s3h(&nodes, length, lib_handoff(lib)).await,
                s3h(&nodes, length, rslock_handoff(rslock)).await,
            );
            (r1, r2, r3)
        }
    };
    // ZooKeeper: the library against the `zookeeper-client` crate's own lock recipe.
    let zk_server = if wanted("zookeeper") {
        Some(lock_tests::ZooKeeperServer::start())
    } else {
        None
    };
    let (z1, z2, z3) = match &zk_server {
        None => Default::default(),
        Some(server) => {
            let target = Target {
                url: server.url(),
                pids: server.pid().to_string(),
            };
            let sides = ["zkfloor", "lib", "curator"];
            let z1 = separate(rounds, &target, &sides, 1, slice).await;
            let z2 = separate(rounds, &target, &sides, 64, slice).await;
            let lib = Backend::builder()
                .connect(&target.url)
                .await
                .expect("ZooKeeper connection");
            let floor = zookeeper::Floor::connect(&target.url).await;
            let operations = || zookeeper::packets_received(server);
            let z3 = (
                s3h_counting(&operations, length, zookeeper::handoff(floor)).await,
                s3h_counting(&operations, length, lib_handoff(lib)).await,
                zookeeper::curator_handoff(server, HANDOFF_TASKS, length).await,
            );
            (z1, z2, z3)
        }
    };
    // PostgreSQL: the library against its own statements issued by hand.
    let (p1, p2, p3, a1, a2) = if wanted("postgres") {
        let url = lock_tests::postgres_url();
        // The library makes the table; the floor uses it.
        let lib = Backend::builder()
            .connect(&url)
            .await
            .expect("PostgreSQL connection");
        let target = Target {
            url: url.clone(),
            pids: "postgres".to_owned(),
        };
        let sides = ["pgfloor", "lib"];
        let p1 = separate(rounds, &target, &sides, 1, slice).await;
        let p2 = separate(rounds, &target, &sides, 64, slice).await;
        // What PostgreSQL users run instead: advisory locks, a connection per task.
        let advisory = ["pgadv", "pgxact", "lib"];
        let a1 = separate(rounds, &target, &advisory, 1, slice).await;
        let a2 = separate(rounds, &target, &advisory, 64, slice).await;
        let floor = postgres::Floor::connect(&url).await;
        let statements = || postgres::statements(&url);
        let p3 = (
            s3h_counting(&statements, length, postgres::handoff(floor)).await,
            s3h_counting(&statements, length, lib_handoff(lib)).await,
        );
        (p1, p2, p3, a1, a2)
    } else {
        Default::default()
    };
    // The hand API on one key, as the annotated function below uses one key.
    let hand = {
        let lib_cycle = lib_cycle.clone();
        move |_: usize| lib_cycle(1_000)
    };
    let (s1_hand, s1_annotated) = interleaved(
        rounds_of("attr"),
        || run_cycles(1, slice, hand.clone()),
        || {
            run_cycles(1, slice, |_| async {
                annotated().await.expect("annotated")
            })
        },
    )
    .await;
    let (s3_floor, s3_lib) = if !wanted("s3") {
        (Measured::default(), Measured::default())
    } else {
        (
            s3h(&[&server], length, floor_handoff(floor.clone())).await,
            s3h(&[&server], length, lib_handoff(backend.clone())).await,
        )
    };
    let (s3x2_floor, s3x2_lib) = if !wanted("s3x2") {
        (Measured::default(), Measured::default())
    } else {
        (
            s3h_two_processes(&server, &coord, length, true).await,
            s3h_two_processes(&server, &coord, length, false).await,
        )
    };

    let drains = if wanted("queue") {
        let mut drains = Vec::new();
        for waiters in [100, 1000] {
            drains.push((waiters, drain_local_queue(waiters).await));
        }
        drains
    } else {
        Vec::new()
    };

    let version = server.raw(&["INFO", "server"]);
    let version = version
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim();
    println!();
    println!(
        "redis-server {version} on 127.0.0.1:{}; {} s per measurement, S1/S2 in {rounds} alternating slices",
        server.port(),
        length.as_secs_f64()
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7} {:>8}",
        "each side its own process",
        "floor/s",
        "lib/s",
        "rslock/s",
        "lib/fl",
        "lib/rsl",
        "fl p50",
        "lib p50",
        "rsl p50",
        "fl cpu",
        "lib cpu",
        "rsl cpu",
        "cpu l/f",
        "fl srv",
        "lib srv",
        "rsl srv",
        "srv l/f"
    );
    separate_row("S1   1 task, 1 key", &s1);
    rounds_row("rslock", &s1);
    separate_row("S2   64 tasks, 64 keys", &s2);
    rounds_row("rslock", &s2);
    separate_row("S1   cluster", &c1);
    rounds_row("-", &c1);
    separate_row("S2   cluster", &c2);
    rounds_row("-", &c2);
    separate_row("S1   redlock, 3 servers", &r1);
    rounds_row("rslock", &r1);
    separate_row("S2   redlock, 3 servers", &r2);
    rounds_row("rslock", &r2);
    separate_row("S1   postgres", &p1);
    rounds_row("-", &p1);
    separate_row("S2   postgres", &p2);
    rounds_row("-", &p2);
    advisory_row("S1   postgres vs advisory", &a1);
    advisory_row("S2   postgres vs advisory", &a2);
    separate_row("S1   zookeeper (rsl: Curator)", &z1);
    rounds_row("Curator", &z1);
    separate_row("S2   zookeeper (rsl: Curator)", &z2);
    rounds_row("Curator", &z2);
    metrics_row("S1   no recorder / Prometheus", &m1);
    metrics_row("S2   no recorder / Prometheus", &m2);
    same_row("S1   same commands", &f1);
    same_row("S2   same commands", &f2);
    kinds_row("2 keys, 1 task", ["floor2", "lib2", "lib1"], &k1);
    kinds_row("2 keys, 64 tasks", ["floor2", "lib2", "lib1"], &k2);
    kinds_row("permit/read, 1 task", ["lock", "permit", "read"], &k3);
    kinds_row("permit/read, 64 tasks", ["lock", "permit", "read"], &k4);
    println!("cpu: client CPU per cycle (us), user + system, all threads of the side's process;");
    println!("srv: the Redis server's CPU per cycle (us) over the same measurement");
    println!();
    println!(
        "{:<30} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "scenario",
        "floor/s",
        "lib/s",
        "ratio",
        "fl p50",
        "lib p50",
        "fl p99",
        "lib p99",
        "fl cmd",
        "lib cmd"
    );
    row("S3h  16 waiters, 1 process", &s3_floor, &s3_lib);
    row("S3h  16 waiters, 2 processes", &s3x2_floor, &s3x2_lib);
    if cluster.is_some() {
        row("S3h  16 waiters, cluster", &c3.0, &c3.1);
    }
    if redlock_servers.is_some() {
        row("S3h  16 waiters, redlock", &r3.0, &r3.1);
        row("S3h  redlock: rslock vs lib", &r3.2, &r3.1);
    }
    if zk_server.is_some() {
        row("S3h  16 waiters, zookeeper", &z3.0, &z3.1);
        row("S3h  zookeeper: Curator vs lib", &z3.2, &z3.1);
    }
    if p3.0.cycles > 0 {
        row("S3h  16 waiters, postgres", &p3.0, &p3.1);
    }
    // Left out (`BENCH_ONLY` without `attr`): no row of NaNs.
    if s1_hand.cycles > 0 {
        println!(
            "{:<30} {:>10} {:>10} {:>7}",
            "", "hand/s", "attr/s", "ratio"
        );
        println!(
            "{:<30} {:>10.0} {:>10.0} {:>6.3}x {:>8} {:>8} {:>8} {:>8}",
            "S1   #[distributed_lock] vs hand",
            s1_hand.per_second(),
            s1_annotated.per_second(),
            s1_annotated.per_second() / s1_hand.per_second(),
            us(s1_hand.percentile(0.5)),
            us(s1_annotated.percentile(0.5)),
            us(s1_hand.percentile(0.99)),
            us(s1_annotated.percentile(0.99)),
        );
    }
    for (waiters, per_acquisition) in &drains {
        println!(
            "{:<30} {:>10.2} us per acquisition (in-memory store, one key, one process)",
            format!("queue of {waiters} waiters"),
            per_acquisition.as_secs_f64() * 1e6
        );
    }
    println!("S1/S2: latency of one acquire+release cycle (us). S3h: handoff gap (us), the floor");
    println!(
        "polling SET NX every 1 ms; cmd = server commands per acquisition (INFO commandstats)."
    );
    if let Some(rtt) = redis_benchmark_ping_rtt(server.port()) {
        println!(
            "redis-benchmark PING round trip (1 client): {:.1} us; S1 lib cycle p50 = {:.2} of them",
            rtt.as_secs_f64() * 1e6,
            s1[1].percentile(0.5).map_or(0.0, |p| p.as_secs_f64() / rtt.as_secs_f64())
        );
    }
}

/// The library's settings for the benchmark's servers, all started fresh: no hold for
/// their youth (`restart_guard_on_connect`, on by default for Redlock), which would refuse
/// the first seconds' acquires; it costs nothing per call once over.
fn fresh_servers() -> lock_runtime::BackendBuilder {
    Backend::builder().restart_guard_on_connect(false)
}
