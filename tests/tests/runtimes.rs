//! One registry, many runtimes: each `#[tokio::test]` below runs on a runtime of its own,
//! and all of them share one process-wide default client, connected by whichever test came
//! first, on a runtime that may be gone by the time the others call it. No call may fail.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::RedisServer;

const TESTS: usize = 3;

/// The server every test shares, stopped by the last test to finish (even a failing one).
static SERVER: Mutex<Option<RedisServer>> = Mutex::new(None);
static FINISHED: AtomicUsize = AtomicUsize::new(0);
static INIT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

struct Finish;

impl Drop for Finish {
    fn drop(&mut self) {
        if FINISHED.fetch_add(1, Ordering::SeqCst) + 1 == TESTS {
            SERVER.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

async fn shared_init() {
    INIT.get_or_init(|| async {
        let server = RedisServer::start();
        let url = server.url();
        *SERVER.lock().unwrap() = Some(server);
        let backend = Backend::builder()
            .health_interval(Duration::from_millis(50))
            .redis(&url)
            .await
            .expect("connect");
        lock_runtime::init(backend).expect("init");
    })
    .await;
}

/// Locks taken through the shared client, with waiting (which subscribes to release
/// notifications), every one of which must succeed.
async fn use_the_shared_client(name: &str) {
    let _finish = Finish;
    shared_init().await;
    // No wait: one try, so a call that met a dead connection would fail (a waiting call
    // would hide it by trying again).
    let once = LockOptions::new(Duration::from_secs(5));
    let options = once.clone().wait(Duration::from_secs(5));
    for round in 0..20 {
        let key = format!("{name}:{}", round % 3);
        let value = lock_runtime::with_lock(&key, &once, async { round })
            .await
            .unwrap_or_else(|e: LockError| panic!("{name}, round {round}: {e}"));
        assert_eq!(value, round);
        // Contended: a waiter queued behind a holder, woken by the release.
        let held = lock_runtime::acquire("shared", &options)
            .await
            .unwrap_or_else(|e| panic!("{name}, round {round}: {e}"));
        let waiting = options.clone();
        let waiter = tokio::spawn(async move { lock_runtime::acquire("shared", &waiting).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        held.release().await.expect("release");
        let taken = waiter
            .await
            .expect("task")
            .expect("the waiter got the lock");
        // Released explicitly: a guard merely dropped as its runtime shuts down cannot be
        // released (no runtime to do it on) and keeps the lock until its TTL.
        taken.release().await.expect("release");
    }
}

#[tokio::test]
async fn first_runtime() {
    use_the_shared_client("first").await;
}

#[tokio::test]
async fn second_runtime() {
    // Start after the first test's runtime is likely gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    use_the_shared_client("second").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_runtime() {
    tokio::time::sleep(Duration::from_millis(600)).await;
    use_the_shared_client("third").await;
}
