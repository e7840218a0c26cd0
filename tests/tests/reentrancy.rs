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
    let (sets, evalshas) = (server.calls("set"), server.calls("evalsha"));
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
        server.calls("set") - sets,
        1,
        "one acquire for three nested calls"
    );
    assert_eq!(server.calls("evalsha") - evalshas, 1, "one release");
}

on_both_stores!(
    concurrent_nested_calls_of_one_holder_take_turns,
    nested_options_the_outer_lease_cannot_honour_are_refused,
);

/// Item 7: nested calls that run at the same time under one holder (`join!`) are
/// serialised, as the lock promises; each waits up to its own `wait`.
async fn concurrent_nested_calls_of_one_holder_take_turns(stores: Stores) {
    let backend = stores.a.clone();
    let options = LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(5));
    let inside = std::sync::atomic::AtomicU32::new(0);
    let overlaps = std::sync::atomic::AtomicU32::new(0);
    let body = || async {
        use std::sync::atomic::Ordering::SeqCst;
        if inside.fetch_add(1, SeqCst) != 0 {
            overlaps.fetch_add(1, SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        inside.fetch_sub(1, SeqCst);
    };
    let outcome = backend
        .with_lock("k", &options, async {
            let (a, b, c) = tokio::join!(
                backend.with_lock("k", &options, body()),
                backend.with_lock("k", &options, body()),
                backend.with_lock("k", &options, body()),
            );
            (a.is_ok(), b.is_ok(), c.is_ok())
        })
        .await
        .expect("outer");
    assert_eq!(outcome, (true, true, true));
    assert_eq!(
        overlaps.into_inner(),
        0,
        "nested bodies ran at the same time"
    );

    // Without a wait, a sibling that finds another inside is busy, as with any lock.
    let no_wait = LockOptions::new(Duration::from_secs(10));
    let (first, second) = backend
        .with_lock("k", &options, async {
            tokio::join!(
                backend.with_lock("k", &no_wait, tokio::time::sleep(Duration::from_millis(30))),
                backend.with_lock("k", &no_wait, async {}),
            )
        })
        .await
        .expect("outer");
    assert!(first.is_ok(), "{first:?}");
    assert!(matches!(second, Err(LockError::Busy { .. })), "{second:?}");
}

/// Item 7: a nested call cannot silently get less than it asked for.
async fn nested_options_the_outer_lease_cannot_honour_are_refused(stores: Stores) {
    let backend = stores.a.clone();
    let plain = LockOptions::new(Duration::from_secs(10));
    let refused = |options: LockOptions| {
        let backend = backend.clone();
        let plain = plain.clone();
        async move {
            backend
                .with_lock("k", &plain, async {
                    backend.with_lock("k", &options, async {}).await
                })
                .await
                .expect("outer")
        }
    };
    for (options, says) in [
        (plain.clone().fencing(true), "fencing token"),
        (plain.clone().renew(true), "renewal"),
        (LockOptions::new(Duration::from_secs(20)), "longer"),
    ] {
        match refused(options).await {
            Err(LockError::InvalidInput(message)) => assert!(message.contains(says), "{message}"),
            other => panic!("expected a refusal naming {says}: {other:?}"),
        }
    }
    // What the outer lease gives is honoured: its fencing token, and a shorter TTL.
    let fenced = plain.clone().fencing(true);
    let (outer, inner) = backend
        .with_lock("k", &fenced, async {
            let inner = backend
                .with_lock(
                    "k",
                    &LockOptions::new(Duration::from_secs(1)).fencing(true),
                    async { lock_runtime::fencing_token() },
                )
                .await
                .expect("nested");
            (lock_runtime::fencing_token(), inner)
        })
        .await
        .expect("outer");
    assert!(outer.is_some());
    assert_eq!(inner, outer);
}

/// Item 8: with `on_lost = finish`, the body runs on after the lease was lost; a nested
/// call made then is told `Lost` and does not run, while another client holds the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_call_after_the_lease_was_lost_is_lost() {
    let stores = Stores::redis().await;
    let ttl = Duration::from_millis(100);
    let finish = LockOptions::new(ttl).on_lost(lock_runtime::OnLost::Finish);
    let backend = stores.a.clone();
    let other = stores.b.clone();
    let ran = std::sync::atomic::AtomicBool::new(false);
    let nested_outcome = std::sync::Mutex::new(None);
    let outcome = stores
        .a
        .with_lock("k", &finish, async {
            // Outlive the lease; another client takes the lock.
            let taken = other
                .acquire(
                    "k",
                    &LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(5)),
                )
                .await
                .expect("the other client gets the lock after the lease");
            let nested = backend
                .with_lock("k", &finish, async {
                    ran.store(true, std::sync::atomic::Ordering::SeqCst);
                })
                .await;
            taken.release().await.expect("release");
            *nested_outcome.lock().unwrap() = Some(nested);
        })
        .await;
    assert!(
        matches!(outcome, Err(LockError::Lost { .. })),
        "{outcome:?}"
    );
    let nested = nested_outcome
        .into_inner()
        .unwrap()
        .expect("the body ran on");
    assert!(matches!(nested, Err(LockError::Lost { .. })), "{nested:?}");
    assert!(!ran.into_inner(), "the nested body ran without the lock");
}
