//! Several processes taking one lock over and over (the `lock-loop` helper binary), and the
//! checks on what they report: no two holdings overlap, fencing tokens only grow.

use std::{
    process::Stdio,
    time::{SystemTime, UNIX_EPOCH},
};

/// One holding reported by a `lock-loop` process: when it entered and left (microseconds
/// since the epoch) and its fencing token.
#[derive(Debug, Clone, Copy)]
pub struct Holding {
    pub enter: u128,
    pub exit: u128,
    pub fence: u64,
    /// Which of the processes held it (their index, from 0).
    pub process: usize,
}

/// The wall clock in microseconds since the epoch, as `lock-loop` reports it.
pub fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros()
}

/// `processes` `lock-loop` processes (`binary`: the test's `CARGO_BIN_EXE_lock-loop`)
/// taking the lock `shared` at `url` for `seconds`, with a TTL of `ttl_ms`, fenced except on
/// Redlock (which has no fencing tokens: each holding then reports 0); killed when dropped.
#[derive(Debug)]
pub struct LockLoops(Vec<tokio::process::Child>);

impl LockLoops {
    pub fn spawn(binary: &str, url: &str, processes: usize, seconds: u32, ttl_ms: u32) -> Self {
        Self::spawn_with(binary, url, &[], processes, seconds, ttl_ms)
    }

    /// [`spawn`](Self::spawn), with `env` set for each process.
    pub fn spawn_with(
        binary: &str,
        url: &str,
        env: &[(&str, &str)],
        processes: usize,
        seconds: u32,
        ttl_ms: u32,
    ) -> Self {
        let children = (0..processes)
            .map(|_| {
                tokio::process::Command::new(binary)
                    .args([url, "shared", &seconds.to_string(), &ttl_ms.to_string()])
                    .envs(env.iter().copied())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("spawn lock-loop")
            })
            .collect();
        Self(children)
    }

    /// Waits for every process and returns all their holdings, by time of entry; fails the
    /// test if one failed or reports a holding that outlived its lease.
    pub async fn holdings(self) -> Vec<Holding> {
        let mut holdings = Vec::new();
        for (process, child) in self.0.into_iter().enumerate() {
            let output = child.wait_with_output().await.expect("lock-loop");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "lock-loop failed: {stderr}");
            eprintln!("lock-loop: {}", stderr.trim());
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(fields.len(), 3, "a holding that outlived its lease: {line}");
                holdings.push(Holding {
                    enter: fields[0].parse().expect("enter"),
                    exit: fields[1].parse().expect("exit"),
                    fence: fields[2].parse().expect("fence"),
                    process,
                });
            }
        }
        holdings.sort_by_key(|h| h.enter);
        holdings
    }
}

/// Fails the test if two of `holdings` (sorted by entry) overlap, or a fencing token did not
/// grow from one holding to the next; and unless some holdings ended before `at` and some
/// began after it.
pub fn assert_exclusive_around(holdings: &[Holding], at: u128) {
    assert_no_overlap_around(holdings, at);
    for pair in holdings.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a.fence < b.fence,
            "a fencing token did not grow: {a:?} then {b:?}"
        );
    }
}

/// Fails the test if two of `holdings` (sorted by entry) overlap; and unless some holdings
/// ended before `at` and some began after it.
pub fn assert_no_overlap_around(holdings: &[Holding], at: u128) {
    let before = holdings.iter().filter(|h| h.exit < at).count();
    let after = holdings.iter().filter(|h| h.enter > at).count();
    eprintln!(
        "{} holdings: {before} before, {after} after",
        holdings.len()
    );
    assert!(before > 0 && after > 0, "holdings on both sides");
    for pair in holdings.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(a.exit <= b.enter, "two holders at once: {a:?} and {b:?}");
    }
}

/// How long a waiter took to get a lock after its holder let go: lets `waiter` (an acquire
/// already waiting for the lock `held` holds) settle into its re-check pause, releases
/// `held`, and measures until the waiter has the lock (which it then releases). A gap well
/// under the re-check timer's 100-200 ms means a release notification woke it.
pub async fn handoff_gap(
    held: lock_runtime::LockGuard,
    waiter: tokio::task::JoinHandle<Result<lock_runtime::LockGuard, lock_runtime::LockError>>,
) -> std::time::Duration {
    // Nothing observable tells that the waiter went to sleep: give it the time.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let released_at = std::time::Instant::now();
    held.release().await.expect("release");
    let guard = waiter
        .await
        .expect("waiter")
        .expect("the waiter gets the lock");
    let gap = released_at.elapsed();
    guard.release().await.expect("release");
    gap
}
