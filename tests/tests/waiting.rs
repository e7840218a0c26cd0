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
    let gap = lock_tests::handoff_gap(held, waiter).await;
    // The re-check timer alone would take up to 200 ms; a notification takes a round trip.
    assert!(
        gap < Duration::from_millis(50),
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

/// The channels this process is subscribed to on `server` that start with `prefix`.
fn subscribed(server: &RedisServer) -> Vec<String> {
    let reply = server.raw(&["PUBSUB", "CHANNELS", "lock:*"]);
    reply
        .lines()
        .filter(|line| line.starts_with("lock:"))
        .map(str::to_owned)
        .collect()
}

async fn backend_with_idle(server: &RedisServer, idle: Duration) -> Backend {
    Backend::builder()
        .notification_idle(idle)
        .redis(&server.url())
        .await
        .expect("connect")
}

/// Item 14: many waits cancelled at every point (before, during and after subscribing)
/// leave no channel subscribed once idle; idle channels go away on their own, with no
/// other activity to trigger a sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_waits_leave_no_subscription_behind() {
    let server = RedisServer::start();
    let holder = Backend::redis(&server.url()).await.expect("connect");
    let idle = Duration::from_millis(200);
    let waiter = backend_with_idle(&server, idle).await;
    let mut held = Vec::new();
    for key in 0..20 {
        let key = format!("k{key}");
        held.push(
            holder
                .acquire(&key, &LockOptions::new(30 * SECOND))
                .await
                .expect("hold"),
        );
        let waiting = LockOptions::new(SECOND).wait(SECOND);
        for cancel_after_us in [0, 50, 100, 200, 400, 800, 1600, 3200] {
            let attempt = waiter.acquire(&key, &waiting);
            let cut = tokio::time::timeout(Duration::from_micros(cancel_after_us), attempt).await;
            assert!(cut.is_err(), "{key}: got {cut:?}");
        }
    }
    assert!(
        !subscribed(&server).is_empty(),
        "nothing was ever subscribed"
    );
    let gone = lock_tests::eventually(10 * idle, || subscribed(&server).is_empty()).await;
    assert!(gone, "still subscribed: {:?}", subscribed(&server));
    drop(held);
}

/// Item 14: subscribing and unsubscribing the same channel over and over, across idle
/// sweeps, never leaves a watched channel unsubscribed: a release still wakes the waiter
/// at once, not on its re-check timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_channel_is_never_left_unsubscribed() {
    let server = RedisServer::start();
    let holder = Backend::redis(&server.url()).await.expect("connect");
    let idle = Duration::from_millis(5);
    let waiter = backend_with_idle(&server, idle).await;
    let mut slow = Vec::new();
    for round in 0..30 {
        let held = holder
            .acquire("k", &LockOptions::new(30 * SECOND))
            .await
            .expect("hold");
        // A wait that gives up: its channel goes idle and is swept within milliseconds.
        let short = LockOptions::new(SECOND).wait(Duration::from_millis(1 + round % 7));
        assert!(waiter.acquire("k", &short).await.is_err());
        tokio::time::sleep(Duration::from_millis((round % 4) * 3)).await;
        // A real wait: subscribed when the release comes, so woken at once.
        let waiting = waiter.clone();
        let task = tokio::spawn(async move {
            waiting
                .acquire("k", &LockOptions::new(SECOND).wait(5 * SECOND))
                .await
        });
        let watched = lock_tests::eventually(5 * SECOND, || {
            subscribed(&server).iter().any(|c| c == "lock:{k}")
        })
        .await;
        assert!(
            watched,
            "round {round}: the waiter's channel is not subscribed"
        );
        let released = Instant::now();
        held.release().await.expect("release");
        let guard = task.await.expect("task").expect("woken");
        // The first re-check comes 10 to 20 ms (jittered) after a try, later ones later:
        // a wake-up under 10 ms came from the notification.
        let woke = released.elapsed();
        if woke >= Duration::from_millis(10) {
            slow.push((round, woke));
        }
        guard.release().await.expect("release");
    }
    // A loaded machine may delay a wake-up now and then; a lost subscription would make
    // every later round slow.
    assert!(slow.len() <= 3, "woken late: {slow:?}");
}

/// Item 18: a task queued in the process behind another that is failing against a dead
/// store gets a store error when its wait ends, never `Busy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_queued_behind_a_failing_task_gets_the_store_error() {
    let server = RedisServer::start();
    let backend = Backend::builder()
        .op_timeout(SECOND)
        .redis(&server.url())
        .await
        .expect("connect");
    lock_tests::signal(server.pid(), "-STOP");
    let first = backend.clone();
    let ahead = tokio::spawn(async move {
        first
            .acquire("k", &LockOptions::new(SECOND).wait(SECOND))
            .await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let behind = backend
        .acquire(
            "k",
            &LockOptions::new(SECOND).wait(Duration::from_millis(100)),
        )
        .await;
    let ahead = ahead.await.expect("task");
    lock_tests::signal(server.pid(), "-CONT");
    assert!(
        matches!(behind, Err(LockError::Timeout { .. })),
        "behind: {behind:?}"
    );
    assert!(
        matches!(
            ahead,
            Err(LockError::Timeout { .. } | LockError::Backend { .. })
        ),
        "ahead: {ahead:?}"
    );
}
