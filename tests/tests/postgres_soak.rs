//! PostgreSQL under contended acquires that are mostly cancelled: 200 tasks on 20 keys, each
//! acquire waiting up to 50 ms but cancelled by a timeout of 1-60 ms, holds of 0-5 ms, for
//! 60 s. Cancelled acquires must not leave work queued without bound on the store's shared
//! connection: grants go on in every 5-second window, the process's memory stays bounded,
//! and once the load stops no row is held past its TTL and every key can be had.
//!
//! Alone in its file, so the process's resident memory is this test's.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockOptions};
use lock_tests::{postgres_url, unique_table};

const TASKS: usize = 200;
const KEYS: u64 = 20;
const RUN: Duration = Duration::from_secs(60);
const WINDOW: Duration = Duration::from_secs(5);
const TTL: Duration = Duration::from_secs(5);

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A small xorshift generator, one per task.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn load(
    backend: Backend,
    seed: u64,
    stop: Arc<AtomicBool>,
    started: Instant,
    windows: Arc<Vec<AtomicU64>>,
) {
    let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let options = LockOptions::new(TTL).wait(Duration::from_millis(50));
    while !stop.load(Ordering::Relaxed) {
        let key = format!("soak:{}", random.below(KEYS));
        let cancel_after = Duration::from_millis(1 + random.below(60));
        let hold = Duration::from_millis(random.below(6));
        let acquired = tokio::time::timeout(cancel_after, backend.acquire(&key, &options)).await;
        if let Ok(Ok(guard)) = acquired {
            let window = (started.elapsed().as_secs() / WINDOW.as_secs()) as usize;
            if let Some(count) = windows.get(window) {
                count.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(hold).await;
            let _ = guard.release().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_contended_acquires_leave_no_backlog() {
    let table = unique_table("soak");
    let backend = Backend::builder()
        .postgres_table(&table)
        .postgres(&postgres_url())
        .await
        .expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let windows: Arc<Vec<AtomicU64>> = Arc::new(
        (0..RUN.as_secs() / WINDOW.as_secs())
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS as u64)
        .map(|seed| {
            tokio::spawn(load(
                backend.clone(),
                seed + 1,
                stop.clone(),
                started,
                windows.clone(),
            ))
        })
        .collect();
    // Memory once the load runs, then its highest until the end.
    tokio::time::sleep(WINDOW).await;
    let early = rss_kib();
    let mut highest = early;
    while started.elapsed() < RUN {
        tokio::time::sleep(Duration::from_millis(500)).await;
        highest = highest.max(rss_kib());
    }
    stop.store(true, Ordering::Relaxed);
    let stopped = Instant::now();
    for task in tasks {
        task.await.expect("load task");
    }
    let counts: Vec<u64> = windows.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    println!(
        "grants per {WINDOW:?}: {counts:?}; RSS {early} KiB after {WINDOW:?}, at most {highest} KiB"
    );
    assert!(
        counts.iter().all(|&c| c > 0),
        "a window without grants: {counts:?}"
    );
    assert!(
        highest < early + 64 * 1024,
        "resident memory grew from {early} KiB to {highest} KiB"
    );

    // Every key can be had within a TTL of the load's end (a lease granted to a cancelled
    // acquire ends by then), and none is taken again by work left over from the load.
    let fresh = LockOptions::new(TTL).wait(TTL + Duration::from_secs(5));
    for key in 0..KEYS {
        let guard = backend
            .acquire(&format!("soak:{key}"), &fresh)
            .await
            .unwrap_or_else(|e| panic!("soak:{key} after the load: {e}"));
        guard.release().await.expect("release");
    }
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .expect("a connection of the test's own");
    tokio::spawn(connection);
    let settled = stopped + TTL + Duration::from_secs(1);
    tokio::time::sleep_until(settled.into()).await;
    let live: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{table}\" WHERE expires_at > clock_timestamp()"),
            &[],
        )
        .await
        .expect("count live rows")
        .get(0);
    assert_eq!(live, 0, "rows held more than a TTL after the load stopped");
    println!(
        "every key had within {:?} of the load's end",
        stopped.elapsed()
    );
}
