//! The same client keeps working after the server restarted under it.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquires_succeed_with_the_same_client_after_a_server_restart() {
    let server = RedisServer::start();
    // No restart guard here (see faults.rs for it): this test is about reconnecting.
    let backend = Backend::builder()
        .op_timeout(Duration::from_millis(500))
        .restart_guard(None)
        .redis(&server.url())
        .await
        .expect("connect");
    let options = LockOptions::new(Duration::from_secs(30));
    let before = backend
        .acquire("k", &options)
        .await
        .expect("before the restart");

    let server = server.restarted().await;

    // The restarted server lost its data: the old holder learns it no longer holds the lock.
    let released = before.release().await;
    assert!(
        matches!(
            released,
            Err(LockError::Lost { .. } | LockError::Backend { .. })
        ),
        "{released:?}"
    );

    // Calls may fail while the client reconnects, each with an error, never a hang.
    let deadline = Instant::now() + Duration::from_secs(20);
    let guard = loop {
        let started = Instant::now();
        match backend.acquire("k", &options).await {
            Ok(guard) => break guard,
            Err(e @ (LockError::Backend { .. } | LockError::Timeout { .. })) => {
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "{e} took too long"
                );
                assert!(
                    Instant::now() < deadline,
                    "no reconnection within 20 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("unexpected error while reconnecting: {e}"),
        }
    };
    assert!(server.raw(&["EXISTS", "lock:{k}"]).contains(":1"));
    guard.release().await.expect("release after the restart");
    assert!(server.raw(&["EXISTS", "lock:{k}"]).contains(":0"));
}
