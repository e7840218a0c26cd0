//! A guarded body that takes the same lock again in the same task runs at once, without
//! asking the store; another task still waits.

use std::time::Duration;

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::{on_both_stores, RedisServer, Stores};

on_both_stores!(reentrant_in_one_task_but_not_across_tasks);

async fn reentrant_in_one_task_but_not_across_tasks(stores: Stores) {
    let options = LockOptions::new(Duration::from_secs(10));
    let backend = stores.a.clone();
    let other = stores.b.clone();
    let result = stores
        .a
        .with_lock("k", &options, async {
            let inner = backend
                .with_lock("k", &options, async {
                    // Still held, by us: another task finds it busy.
                    let from_another_task = tokio::spawn(async move {
                        other
                            .acquire("k", &LockOptions::new(Duration::from_secs(1)))
                            .await
                    })
                    .await
                    .expect("task");
                    assert!(
                        matches!(from_another_task, Err(LockError::Busy { .. })),
                        "{from_another_task:?}"
                    );
                    "inner"
                })
                .await
                .expect("reentrant call");
            // The inner call did not release the outer lock.
            let again = stores
                .b
                .acquire("k", &LockOptions::new(Duration::from_secs(1)))
                .await;
            assert!(matches!(again, Err(LockError::Busy { .. })), "{again:?}");
            inner
        })
        .await;
    assert_eq!(result.expect("outer call"), "inner");
    let after = stores
        .b
        .acquire("k", &options)
        .await
        .expect("released at the end");
    after.release().await.expect("release");
}

fn calls(server: &RedisServer, command: &str) -> u64 {
    let stats = server.raw(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_reentrant_call_does_not_talk_to_the_store() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    let options = LockOptions::new(Duration::from_secs(10));
    // Load the release script first: its first EVALSHA meets NOSCRIPT and is sent again.
    backend
        .with_lock("warm-up", &options, async {})
        .await
        .expect("warm-up");
    let (sets, evalshas) = (calls(&server, "set"), calls(&server, "evalsha"));
    let depth = backend
        .with_lock("k", &options, async {
            backend
                .with_lock("k", &options, async {
                    backend.with_lock("k", &options, async { 3 }).await
                })
                .await
        })
        .await;
    assert_eq!(depth.expect("outer").expect("middle").expect("inner"), 3);
    assert_eq!(
        calls(&server, "set") - sets,
        1,
        "one acquire for three nested calls"
    );
    assert_eq!(calls(&server, "evalsha") - evalshas, 1, "one release");
}
