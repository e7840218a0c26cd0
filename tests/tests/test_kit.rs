//! `lock_runtime::testing`: the faults a test can make happen, seen through the attribute
//! (unchanged) and through an axum handler's answers. Every test uses lock names of its
//! own, on the one store the binary installs as its default client.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::response::IntoResponse;
use lock_runtime::{distributed_lock, testing::TestStore, LockError, LockOptions};

/// A handler that answers 423 when the order is busy and 503 when the lock was lost or the
/// store failed (the `axum` feature's `IntoResponse`).
#[distributed_lock(key = "order:{id}", ttl = "10s")]
async fn charge(id: u32, work: Duration) -> Result<String, LockError> {
    tokio::time::sleep(work).await;
    Ok(format!("charged {id}"))
}

async fn status(id: u32, work: Duration) -> u16 {
    charge(id, work).await.into_response().status().as_u16()
}

/// Returns once someone holds `name` (within 10 s).
async fn inside(store: &TestStore, name: &str) {
    let held = async {
        while !store.is_held(name).await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the code under test took the lock");
}

#[tokio::test]
async fn a_handler_answers_423_while_someone_else_holds_the_lock() {
    let store = TestStore::installed().expect("install");
    assert!(store.hold("order:1", Duration::from_secs(60)).await);
    assert_eq!(status(1, Duration::ZERO).await, 423);
    // Other orders are not held.
    assert_eq!(status(2, Duration::ZERO).await, 200);
    assert!(store.free("order:1").await);
    assert_eq!(status(1, Duration::ZERO).await, 200);
    // A hold ends by itself.
    assert!(store.hold("order:1", Duration::from_millis(50)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(1, Duration::ZERO).await, 200);
}

#[tokio::test]
async fn a_handler_answers_503_when_its_lease_ends_mid_body() {
    let store = TestStore::installed().expect("install");
    let call = tokio::spawn(async { charge(3, Duration::from_secs(30)).await });
    // Once the handler holds the lock, its lease ends under it.
    inside(&store, "order:3").await;
    let ended_at = Instant::now();
    assert!(store.end_lease("order:3").await);
    let answer = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("cancelled at once, not after 30 s")
        .expect("join");
    assert!(matches!(answer, Err(LockError::Lost { .. })), "{answer:?}");
    assert!(ended_at.elapsed() < Duration::from_secs(2));
    assert_eq!(answer.into_response().status().as_u16(), 503);
    // The lock is free after.
    assert_eq!(status(3, Duration::ZERO).await, 200);
}

#[tokio::test]
async fn a_handler_answers_503_while_the_store_hangs_or_fails_over() {
    let store = TestStore::installed().expect("install");
    store.pause("order:4", Duration::from_secs(60));
    let started = Instant::now();
    let paused = charge(4, Duration::ZERO).await;
    assert!(
        matches!(paused, Err(LockError::Timeout { .. })),
        "{paused:?}"
    );
    // The backend's time bound (1 s by default), with room for the scheduler.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(paused.into_response().status().as_u16(), 503);
    // Only the paused name hangs.
    assert_eq!(status(5, Duration::ZERO).await, 200);
    store.heal("order:4");
    assert_eq!(status(4, Duration::ZERO).await, 200);

    store.fail_over("order:6*", Duration::from_secs(60));
    let held_back = charge(6, Duration::ZERO).await;
    assert!(
        matches!(held_back, Err(LockError::Recovering { .. })),
        "{held_back:?}"
    );
    assert_eq!(held_back.into_response().status().as_u16(), 503);
    store.heal("order:6*");
    assert_eq!(status(6, Duration::ZERO).await, 200);
}

#[tokio::test]
async fn a_waiter_rides_out_a_short_failover() {
    let store = TestStore::installed().expect("install");
    store.fail_over("report", Duration::from_millis(300));
    let options = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(5));
    let started = Instant::now();
    let guard = lock_runtime::acquire("report", &options)
        .await
        .expect("taken once the hold ended");
    assert!(started.elapsed() >= Duration::from_millis(250));
    guard.release().await.expect("release");
}

#[tokio::test]
async fn late_replies_time_out_and_leave_no_orphan() {
    let store = TestStore::installed().expect("install");
    store.delay_replies("late", Duration::from_secs(2));
    let options = LockOptions::new(Duration::from_secs(60));
    let late = lock_runtime::acquire("late", &options).await;
    assert!(matches!(late, Err(LockError::Timeout { .. })), "{late:?}");
    store.heal("late");
    // The timed-out acquire took the lock in the store; it is given back in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match lock_runtime::acquire("late", &options).await {
            Ok(guard) => break guard.release().await.expect("release"),
            Err(e) if Instant::now() < deadline => {
                assert!(e.is_busy(), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the lock stayed orphaned: {e}"),
        }
    }
    // A short delay only slows the answer down.
    store.delay_replies("slow", Duration::from_millis(100));
    let started = Instant::now();
    lock_runtime::acquire("slow", &options)
        .await
        .expect("acquire")
        .release()
        .await
        .expect("release");
    assert!(started.elapsed() >= Duration::from_millis(200));
    store.heal("slow");
}

/// A nightly job that must not be cut short: with `on_lost = "finish"` it completes, and the
/// loss is still reported.
#[distributed_lock(key = "nightly:{day}", ttl = "10s", on_lost = "finish")]
async fn nightly(day: u32, done: Arc<AtomicBool>) -> Result<(), LockError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn a_job_with_on_lost_finish_completes_and_reports_the_loss() {
    let store = TestStore::installed().expect("install");
    let done = Arc::new(AtomicBool::new(false));
    let job = tokio::spawn(nightly(1, done.clone()));
    inside(&store, "nightly:1").await;
    assert!(store.end_lease("nightly:1").await);
    let outcome = job.await.expect("join");
    assert!(
        matches!(outcome, Err(LockError::Lost { .. })),
        "{outcome:?}"
    );
    assert!(done.load(Ordering::SeqCst), "the body ran to its end");
}

#[tokio::test]
async fn a_release_after_the_lease_ended_reports_lost() {
    let store = TestStore::installed().expect("install");
    let options = LockOptions::new(Duration::from_secs(10)).lock_delay(Duration::from_millis(500));
    let guard = lock_runtime::acquire("delayed", &options)
        .await
        .expect("acquire");
    // The lease ends under a guard held by hand: the guard knows, and its release says so.
    assert!(store.end_lease("delayed").await);
    assert!(guard.is_expired());
    let released = guard.release().await;
    assert!(
        matches!(released, Err(LockError::Lost { .. })),
        "{released:?}"
    );
}
