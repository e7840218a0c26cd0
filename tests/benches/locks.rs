//! Lock throughput and latency against one `redis-server`, with ratios to a hand-written
//! floor measured in the same run: the raw `redis` crate doing `SET NX PX` and an EVALSHA
//! compare-and-delete on one multiplexed connection.
//!
//! Run with `cargo bench -p lock-tests --bench locks`. Set `BENCH_SECONDS` to change how
//! long each measurement runs (default 2).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockOptions};
use lock_tests::RedisServer;
use redis::{aio::MultiplexedConnection, Script};

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// One measured scenario: cycles per second and, for sequential ones, latency percentiles.
struct Measured {
    cycles: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.cycles as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() - 1) as f64 * p).round() as usize;
        Some(sorted[index])
    }
}

fn seconds() -> Duration {
    let secs = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// Runs `cycle` back to back on `tasks` tasks (task `i` gets key `keys[i]`) for `length`.
async fn run<F, Fut>(tasks: usize, length: Duration, cycle: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let cycle = Arc::new(cycle);
    // Warm up: connections, scripts, allocator.
    for i in 0..tasks {
        for _ in 0..50 {
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
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await.expect("bench task"));
    }
    Measured {
        cycles: latencies.len() as u64,
        elapsed: started.elapsed(),
        latencies,
    }
}

/// The floor: what a careful hand-written lock does, with no library around it.
async fn floor_cycle(
    mut conn: MultiplexedConnection,
    script: Arc<Script>,
    key: String,
    token: u128,
) {
    let token = format!("{token:032x}");
    let set: redis::Value = redis::cmd("SET")
        .arg(&key)
        .arg(&token)
        .arg("NX")
        .arg("PX")
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .expect("floor SET");
    assert_eq!(set, redis::Value::Okay, "floor: the key was free");
    let deleted: i64 = script
        .key(&key)
        .arg(&token)
        .invoke_async(&mut conn)
        .await
        .expect("floor release");
    assert_eq!(deleted, 1);
}

async fn lib_cycle(backend: Backend, key: String) {
    const OPTIONS: LockOptions = LockOptions::new(Duration::from_secs(10));
    let guard = backend.acquire(&key, &OPTIONS).await.expect("lib acquire");
    guard.release().await.expect("lib release");
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
    // "PING_INLINE","12345.67",... then "PING_MBULK","...": take the bulk (RESP) one.
    let line = text.lines().find(|l| l.starts_with("\"PING_MBULK\""))?;
    let rps: f64 = line.split(',').nth(1)?.trim_matches('"').parse().ok()?;
    Some(Duration::from_secs_f64(1.0 / rps))
}

fn us(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e6))
}

struct Row {
    name: &'static str,
    floor: Measured,
    lib: Measured,
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<34} {:>12} {:>12} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "scenario", "floor/s", "lib/s", "ratio", "floor p50", "lib p50", "floor p99", "lib p99"
    );
    for row in rows {
        println!(
            "{:<34} {:>12.0} {:>12.0} {:>6.2}x {:>9} {:>9} {:>9} {:>9}",
            row.name,
            row.floor.per_second(),
            row.lib.per_second(),
            row.lib.per_second() / row.floor.per_second(),
            us(row.floor.percentile(0.5)),
            us(row.lib.percentile(0.5)),
            us(row.floor.percentile(0.99)),
            us(row.lib.percentile(0.99)),
        );
    }
    println!("(latencies in microseconds per acquire+release cycle)");
}

/// Measures floor and library alternately, `rounds` times each, and keeps each side's best
/// round, so a noisy moment hurts neither side alone.
async fn compare<FF, FFut, LF, LFut>(
    name: &'static str,
    tasks: usize,
    rounds: usize,
    floor: FF,
    lib: LF,
) -> Row
where
    FF: Fn(usize) -> FFut + Send + Sync + Clone + 'static,
    FFut: Future<Output = ()> + Send,
    LF: Fn(usize) -> LFut + Send + Sync + Clone + 'static,
    LFut: Future<Output = ()> + Send,
{
    let length = seconds();
    let mut best_floor: Option<Measured> = None;
    let mut best_lib: Option<Measured> = None;
    for _ in 0..rounds {
        let f = run(tasks, length, floor.clone()).await;
        if best_floor
            .as_ref()
            .is_none_or(|b| f.per_second() > b.per_second())
        {
            best_floor = Some(f);
        }
        let l = run(tasks, length, lib.clone()).await;
        if best_lib
            .as_ref()
            .is_none_or(|b| l.per_second() > b.per_second())
        {
            best_lib = Some(l);
        }
    }
    Row {
        name,
        floor: best_floor.expect("rounds > 0"),
        lib: best_lib.expect("rounds > 0"),
    }
}

#[tokio::main]
async fn main() {
    let server = RedisServer::start();
    let url = server.url();
    let client = redis::Client::open(url.as_str()).expect("url");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("floor connection");
    let script = Arc::new(Script::new(RELEASE));
    let backend = Backend::redis(&url).await.expect("lib connection");

    let rounds = 3;
    let floor = {
        let (conn, script) = (conn.clone(), script.clone());
        move |i: usize| {
            let token = rand_token(i);
            floor_cycle(
                conn.clone(),
                script.clone(),
                format!("lock:{{bench:{i}}}"),
                token,
            )
        }
    };
    let lib = {
        let backend = backend.clone();
        move |i: usize| lib_cycle(backend.clone(), format!("bench:{i}"))
    };

    let mut rows = Vec::new();
    rows.push(compare("S1  1 task, 1 key", 1, rounds, floor.clone(), lib.clone()).await);
    rows.push(compare("S2  64 tasks, 64 keys", 64, rounds, floor, lib).await);

    println!();
    println!(
        "redis-server {} on 127.0.0.1:{}, {} s per measurement, best of {rounds} rounds",
        server
            .raw(&["INFO", "server"])
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim(),
        server.port(),
        seconds().as_secs_f64()
    );
    print_table(&rows);
    match redis_benchmark_ping_rtt(server.port()) {
        Some(rtt) => println!(
            "redis-benchmark PING round trip (1 client): {:.1} us; S1 lib cycle p50 = {:.2} round trips",
            rtt.as_secs_f64() * 1e6,
            rows[0].lib.percentile(0.5).map_or(0.0, |p| p.as_secs_f64() / rtt.as_secs_f64())
        ),
        None => println!("redis-benchmark not found: no round-trip reference"),
    }
}

/// A token that differs per task and per call, without the OS random source (the floor
/// should not pay for what it does not need).
fn rand_token(i: usize) -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    (u128::from(N.fetch_add(1, Ordering::Relaxed)) << 64) | i as u128
}
