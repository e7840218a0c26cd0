//! How waiters learn that a lock is free: release notifications, the re-check timer that
//! backs them up, first-come-first-served order inside a process, and `wait` itself.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::{on_both_stores, RedisServer, Stores};

const SECOND: Duration = Duration::from_secs(1);

on_both_stores!(
    a_release_wakes_a_waiter_of_another_client_at_once,
    a_lock_that_expires_unreleased_is_found_by_the_recheck_timer,
    waiters_of_one_process_are_served_first_come_first_served,
    wait_is_honoured_within_a_small_tolerance,
    a_queued_waiter_takes_over_when_the_local_holder_lease_ran_out,
);

async fn a_release_wakes_a_waiter_of_another_client_at_once(stores: Stores) {
    let held = stores
        .a
        .acquire("k", &LockOptions::new(30 * SECOND))
        .await
        .expect("acquire");
    let b = stores.b.clone();
    let (waiting, is_waiting) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move {
        // Let the first try fail and the subscription start before the release.
        let busy = b.acquire("k", &LockOptions::new(SECOND)).await;
        assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
        let _ = waiting.send(());
        b.acquire("k", &LockOptions::new(30 * SECOND).wait(20 * SECOND))
            .await
    });
    is_waiting.await.expect("waiter started");
    // Give the waiter time to subscribe and go to sleep: nothing observable to await.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released_at = Instant::now();
    held.release().await.expect("release");
    let guard = waiter
        .await
        .expect("waiter")
        .expect("the waiter gets the lock");
    let gap = released_at.elapsed();
    guard.release().await.expect("release");
    // The re-check timer alone would take up to 200 ms; a notification takes a round trip.
    assert!(
        gap < Duration::from_millis(150),
        "woken after {gap:?}: no notification?"
    );
}

async fn a_lock_that_expires_unreleased_is_found_by_the_recheck_timer(stores: Stores) {
    let ttl = Duration::from_millis(300);
    let forgotten = stores
        .a
        .acquire("k", &LockOptions::new(ttl))
        .await
        .expect("acquire");
    let acquired_at = Instant::now();
    std::mem::forget(forgotten); // a holder that vanished: no release, no notification
    let guard = stores
        .b
        .acquire("k", &LockOptions::new(30 * SECOND).wait(20 * SECOND))
        .await
        .expect("the waiter gets the lock once it expires");
    let waited = acquired_at.elapsed();
    guard.release().await.expect("release");
    assert!(
        waited >= Duration::from_millis(250),
        "before the TTL: {waited:?}"
    );
    // TTL + the longest re-check pause (200 ms) + slack for a loaded machine.
    assert!(
        waited < ttl + Duration::from_millis(200) + SECOND,
        "took {waited:?}"
    );
}

async fn waiters_of_one_process_are_served_first_come_first_served(stores: Stores) {
    const WAITERS: usize = 12;
    let options = LockOptions::new(30 * SECOND).wait(30 * SECOND);
    let held = stores.a.acquire("fifo", &options).await.expect("acquire");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..WAITERS {
        let (backend, order, options) = (stores.a.clone(), order.clone(), options.clone());
        let (queued, is_queued) = tokio::sync::oneshot::channel::<()>();
        tasks.push(tokio::spawn(async move {
            let acquiring = backend.acquire("fifo", &options);
            tokio::pin!(acquiring);
            // Poll once, so this waiter is queued before the next one is spawned.
            let first = futures_poll_once(acquiring.as_mut()).await;
            assert!(first.is_none(), "the lock is held: waiter {i} must queue");
            drop(queued);
            let guard = acquiring.await.expect("waiter acquires");
            order.lock().expect("order").push(i);
            guard.release().await.expect("release");
        }));
        let _ = is_queued.await;
    }
    held.release().await.expect("release");
    for task in tasks {
        task.await.expect("waiter task");
    }
    assert_eq!(
        *order.lock().expect("order"),
        (0..WAITERS).collect::<Vec<_>>()
    );
}

async fn wait_is_honoured_within_a_small_tolerance(stores: Stores) {
    let held = stores
        .a
        .acquire("k", &LockOptions::new(30 * SECOND))
        .await
        .expect("acquire");
    for wait in [
        Duration::ZERO,
        Duration::from_millis(100),
        Duration::from_millis(400),
    ] {
        let started = Instant::now();
        let result = stores
            .b
            .acquire("k", &LockOptions::new(SECOND).wait(wait))
            .await;
        let elapsed = started.elapsed();
        assert!(matches!(result, Err(LockError::Busy { .. })), "{result:?}");
        assert!(
            elapsed >= wait,
            "gave up after {elapsed:?}, before {wait:?}"
        );
        assert!(
            elapsed < wait + Duration::from_millis(500),
            "{wait:?} took {elapsed:?}"
        );
    }
    held.release().await.expect("release");
}

async fn a_queued_waiter_takes_over_when_the_local_holder_lease_ran_out(stores: Stores) {
    let ttl = Duration::from_millis(200);
    let stale = stores
        .a
        .acquire("k", &LockOptions::new(ttl))
        .await
        .expect("acquire");
    let started = Instant::now();
    // Same client, so same process queue: the waiter must not wait for a release that the
    // stale holder will never make in time.
    let fresh = stores
        .a
        .acquire("k", &LockOptions::new(30 * SECOND).wait(20 * SECOND))
        .await
        .expect("taken over after the TTL");
    assert!(started.elapsed() < ttl + SECOND + Duration::from_millis(200));
    assert!(matches!(stale.release().await, Err(LockError::Lost { .. })));
    // The stale release did not pass the slot on: a third task still finds the lock busy.
    let third = stores.a.acquire("k", &LockOptions::new(SECOND)).await;
    assert!(matches!(third, Err(LockError::Busy { .. })), "{third:?}");
    fresh.release().await.expect("release");

    // A guard leaked past its lease does not keep the lock from a zero-wait try either.
    let leaked = stores
        .a
        .acquire("z", &LockOptions::new(ttl))
        .await
        .expect("acquire");
    let lease_end = leaked.lease_end();
    std::mem::forget(leaked);
    tokio::time::sleep_until((lease_end + Duration::from_millis(20)).into()).await;
    let once = stores.a.acquire("z", &LockOptions::new(SECOND)).await;
    once.expect("a single try after the lease ended")
        .release()
        .await
        .expect("release");
}

/// Polls a future once: `Some(output)` if it completed.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_still_acquire_when_the_subscription_connection_is_killed() {
    let server = RedisServer::start();
    let holder = Backend::redis(&server.url()).await.expect("connect");
    let waiter = Backend::redis(&server.url()).await.expect("connect");
    for round in 0..5 {
        let key = format!("k{round}");
        let held = holder
            .acquire(&key, &LockOptions::new(30 * SECOND))
            .await
            .expect("acquire");
        let (w, k) = (waiter.clone(), key.clone());
        let task = tokio::spawn(async move {
            w.acquire(&k, &LockOptions::new(30 * SECOND).wait(20 * SECOND))
                .await
        });
        // Wait until the waiter is subscribed to the lock's channel.
        let channel = format!("lock:{{{key}}}");
        let subscribed = lock_tests::eventually(10 * SECOND, || {
            server
                .raw(&["PUBSUB", "NUMSUB", &channel])
                .contains(":1\r\n")
        })
        .await;
        assert!(subscribed, "the waiter never subscribed");
        // Kill the subscription connection, then release: the notification is lost.
        assert!(server
            .raw(&["CLIENT", "KILL", "TYPE", "pubsub"])
            .starts_with(':'));
        let released_at = Instant::now();
        held.release().await.expect("release");
        let guard = task
            .await
            .expect("waiter task")
            .expect("the waiter still gets the lock");
        let waited = released_at.elapsed();
        guard.release().await.expect("release");
        // The longest re-check pause is 200 ms; allow slack for a loaded machine.
        assert!(
            waited < Duration::from_millis(1200),
            "round {round}: took {waited:?}"
        );
    }
}
