//! Several processes and several clients call the same annotated function: never two at
//! once. Its own test binary, because it sets the default client.

use std::time::Duration;

use lock_runtime::Backend;
use lock_tests::RedisServer;
use redis::AsyncCommands as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_and_two_clients_never_overlap_in_one_annotated_fn() {
    const CALLS: u32 = 25;
    let server = RedisServer::start();
    lock_runtime::init(Backend::redis(&server.url()).await.expect("connect")).expect("init");

    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_guarded-worker"))
                .args([&server.url(), "shared", &CALLS.to_string()])
                .kill_on_drop(true)
                .spawn()
                .expect("spawn guarded-worker"),
        );
    }
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let url = server.url();
        tasks.push(tokio::spawn(async move {
            let mut conn = redis::Client::open(url.as_str())
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("connect");
            for _ in 0..CALLS {
                lock_tests::guarded_increment(&mut conn, "shared")
                    .await
                    .expect("guarded call");
            }
        }));
    }
    for task in tasks {
        task.await.expect("in-process caller");
    }
    for mut worker in workers {
        let status = tokio::time::timeout(Duration::from_secs(120), worker.wait())
            .await
            .expect("worker finishes")
            .expect("worker status");
        assert!(status.success(), "worker failed: {status}");
    }

    let mut conn = redis::Client::open(server.url().as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let counter: i64 = conn.get("counter:shared").await.expect("counter");
    let overlaps: Option<i64> = conn.get("overlaps:shared").await.expect("overlaps");
    assert_eq!(overlaps, None, "callers overlapped");
    assert_eq!(counter, i64::from(4 * CALLS), "an increment was lost");
}
