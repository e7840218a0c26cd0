//! Reclaim after an unknown outcome: a request whose reply came too late may have taken
//! the lock, and the next try recognises it by its own token. The lease the runtime then
//! counts (from the winning try) must never outlast what the server holds, for every lock
//! kind; otherwise a second holder is granted while the first still believes it holds.
//!
//! Against a real `redis-server` behind a proxy that delays the first request's reply
//! past the time bound.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockGuard, LockMode, LockOptions};
use lock_tests::{eventually, Proxy, RedisServer};

const BOUND: Duration = Duration::from_millis(300);
const TTL: Duration = Duration::from_secs(2);

/// A backend that reaches `server` through a proxy, with the scripts loaded already.
async fn behind_a_proxy(server: &RedisServer) -> (Proxy, Backend) {
    let proxy = Proxy::start(server.port());
    let backend = Backend::builder()
        .op_timeout(BOUND)
        .redis(&proxy.url())
        .await
        .expect("connect");
    // Load the scripts, so the delayed request is the acquire itself.
    let warm = LockOptions::new(Duration::from_secs(1));
    for options in [warm.clone().permits(1), warm.clone().mode(LockMode::Read)] {
        let guard = backend.acquire("warm", &options).await.expect("warm-up");
        guard.release().await.expect("release the warm-up");
    }
    (proxy, backend)
}

/// Acquires `name` with `options` while the first request's reply is held back past the
/// time bound, so the lock is had by a reclaiming retry.
async fn acquired_by_reclaim(
    server: &RedisServer,
    proxy: &Proxy,
    backend: &Backend,
    name: &str,
    options: &LockOptions,
) -> LockGuard {
    let key = format!("lock:{{{name}}}");
    proxy.delay_replies(Duration::from_millis(900));
    let (b, n, o) = (backend.clone(), name.to_owned(), options.clone());
    let acquiring = tokio::spawn(async move { b.acquire(&n, &o).await });
    // The first request took the lock on the server; its reply is on its way, slowly.
    assert!(
        eventually(Duration::from_secs(10), || {
            server.raw(&["ZCARD", &key]).trim() == ":1"
        })
        .await,
        "the first request never reached the server"
    );
    proxy.delay_replies(Duration::ZERO);
    let guard = acquiring
        .await
        .expect("task")
        .expect("acquired by the retry");
    // It was a reclaim: still one holder, ours.
    assert_eq!(server.raw(&["ZCARD", &key]).trim(), ":1");
    guard
}

/// How long the server keeps `guard`'s membership, measured against how long the guard
/// believes it holds: the server's figure must not be the smaller.
fn assert_server_outlasts_the_guard(server: &RedisServer, guard: &LockGuard) {
    let key = guard.store_key().to_owned();
    let client_left = guard.lease_end().saturating_duration_since(Instant::now());
    let asked = Instant::now();
    let members = server.raw(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]);
    let time = server.raw(&["TIME"]);
    let since = asked.elapsed();
    let numbers: Vec<u64> = time.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let now_ms = numbers[0] * 1000 + numbers[1] / 1000;
    let mut lines = members.lines().map(str::trim);
    let score = loop {
        let line = lines.next().expect("our member is in the set");
        if line.contains(guard.token().as_str()) {
            // The member's bulk string, then the score's length line and the score.
            break lines.nth(1);
        }
    };
    let score: u64 = score.and_then(|s| s.parse::<f64>().ok()).expect("a score") as u64;
    let server_left = Duration::from_millis(score.saturating_sub(now_ms));
    println!("after a reclaim: the guard counts {client_left:?}, the server {server_left:?}");
    assert!(
        server_left + since + Duration::from_millis(5) >= client_left,
        "the server drops the holder {:?} before its lease ends",
        client_left - server_left - since
    );
}

/// A second owner waits for the key and is granted only once the first's lease has ended.
async fn assert_no_second_holder_before(
    backend: &Backend,
    name: &str,
    options: LockOptions,
    first: &LockGuard,
) {
    let waiting = options.wait(TTL * 4);
    let second = backend
        .acquire(name, &waiting)
        .await
        .expect("granted after the lease");
    let granted = Instant::now();
    assert!(
        granted + Duration::from_millis(5) >= first.lease_end(),
        "a second holder was granted {:?} before the first's lease ended",
        first.lease_end() - granted
    );
    second.release().await.expect("release the second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaimed_permit_restarts_its_lease_on_the_server() {
    let server = RedisServer::start();
    let (proxy, backend) = behind_a_proxy(&server).await;
    let options = LockOptions::new(TTL)
        .wait(Duration::from_secs(10))
        .permits(1);
    let guard = acquired_by_reclaim(&server, &proxy, &backend, "one-permit", &options).await;
    assert_server_outlasts_the_guard(&server, &guard);
    let direct = Backend::redis(&server.url()).await.expect("connect");
    let other = LockOptions::new(TTL).permits(1);
    assert_no_second_holder_before(&direct, "one-permit", other, &guard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaimed_reader_keeps_a_waiting_writer_out_until_its_lease_ends() {
    let server = RedisServer::start();
    let (proxy, backend) = behind_a_proxy(&server).await;
    let options = LockOptions::new(TTL)
        .wait(Duration::from_secs(10))
        .mode(LockMode::Read);
    let guard = acquired_by_reclaim(&server, &proxy, &backend, "catalog", &options).await;
    assert_server_outlasts_the_guard(&server, &guard);
    let direct = Backend::redis(&server.url()).await.expect("connect");
    assert_no_second_holder_before(&direct, "catalog", LockOptions::new(TTL), &guard).await;
}
