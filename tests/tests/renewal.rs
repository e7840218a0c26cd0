//! Renewal keeps a lease alive while the body runs, `max_hold` bounds it, and a lost lease
//! is never silent: the body is cancelled with `Lost`, or finishes and reports `Lost`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use lock_runtime::{LockError, LockOptions, OnLost};
use lock_tests::{on_both_stores, Stores};

const SECOND: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_millis(300);

on_both_stores!(
    renewal_keeps_a_300ms_lock_for_2s_of_work,
    max_hold_stops_renewal_and_the_body_is_cancelled,
    without_renewal_the_body_is_cancelled_when_the_ttl_passes,
);

async fn renewal_keeps_a_300ms_lock_for_2s_of_work(stores: Stores) {
    let options = LockOptions::new(TTL).renew(true);
    let other = stores.b.clone();
    let started = Instant::now();
    let outcome = stores
        .a
        .with_lock("k", &options, async move {
            // Others keep trying, and never get in, for the whole 2 s.
            while started.elapsed() < 2 * SECOND {
                let try_now = other.acquire("k", &LockOptions::new(SECOND)).await;
                assert!(
                    matches!(try_now, Err(LockError::Busy { .. })),
                    "{try_now:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            "done"
        })
        .await;
    assert_eq!(outcome.expect("the lease lasted"), "done");
    // Renewal stopped with the body and the lock was released.
    let after = stores
        .b
        .acquire("k", &LockOptions::new(SECOND))
        .await
        .expect("free after");
    after.release().await.expect("release");
}

/// Runs a 30 s body under `options`; returns its outcome, whether the body finished, and
/// how long the call took.
async fn run_a_30s_body(
    stores: &Stores,
    options: &LockOptions,
) -> (Result<(), LockError>, bool, Duration) {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let started = Instant::now();
    let outcome = stores
        .a
        .with_lock("k", options, async move {
            tokio::time::sleep(30 * SECOND).await;
            flag.store(true, Ordering::SeqCst);
        })
        .await;
    (outcome, finished.load(Ordering::SeqCst), started.elapsed())
}

async fn max_hold_stops_renewal_and_the_body_is_cancelled(stores: Stores) {
    let options = LockOptions::new(TTL)
        .renew(true)
        .max_hold(Duration::from_millis(600));
    let (outcome, finished, elapsed) = run_a_30s_body(&stores, &options).await;
    assert!(
        matches!(outcome, Err(LockError::Lost { .. })),
        "{outcome:?}"
    );
    assert!(!finished);
    // Renewed until 600 ms, then the last lease (300 ms) ran out.
    assert!(
        elapsed >= Duration::from_millis(600),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(900) + 2 * SECOND,
        "stopped late: {elapsed:?}"
    );
}

async fn without_renewal_the_body_is_cancelled_when_the_ttl_passes(stores: Stores) {
    let (outcome, finished, elapsed) = run_a_30s_body(&stores, &LockOptions::new(TTL)).await;
    assert!(
        matches!(outcome, Err(LockError::Lost { .. })),
        "{outcome:?}"
    );
    assert!(!finished);
    assert!(
        elapsed >= TTL - Duration::from_millis(50),
        "early: {elapsed:?}"
    );
    assert!(elapsed < TTL + 2 * SECOND, "late: {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_over_cancels_the_body_with_lost() {
    let stores = Stores::redis().await;
    let (result, finished, elapsed) = lease_taken_over(&stores, OnLost::Cancel).await;
    assert!(
        matches!(result, Err(LockError::Lost { ref key }) if key == "k"),
        "{result:?}"
    );
    assert!(!finished, "the body ran on after the lease was lost");
    // Renewal runs every 100 ms: it finds the lock gone well before the body's 1.5 s.
    assert!(
        elapsed < Duration::from_millis(1400),
        "cancelled late: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_completion_reports_lost_after_the_body() {
    let stores = Stores::redis().await;
    let (result, finished, elapsed) = lease_taken_over(&stores, OnLost::Finish).await;
    assert!(matches!(result, Err(LockError::Lost { .. })), "{result:?}");
    assert!(finished, "the body did not run to completion");
    assert!(elapsed >= Duration::from_millis(1500));
}

/// Holds `k` with renewal while another client takes it over (the holder's key is deleted
/// behind its back, as an operator or a store failover might), and reports what the holder
/// saw: its result, whether its body finished, and how long it took.
async fn lease_taken_over(
    stores: &Stores,
    on_lost: OnLost,
) -> (Result<(), LockError>, bool, Duration) {
    let server = stores.server.as_ref().expect("a Redis store");
    let options = LockOptions::new(TTL).renew(true).on_lost(on_lost);
    let finished = Arc::new(AtomicBool::new(false));
    let (flag, thief, port) = (finished.clone(), stores.b.clone(), server.port());
    let started = Instant::now();
    let result = stores
        .a
        .with_lock("k", &options, async move {
            lock_tests::raw_command(port, &["DEL", "lock:{k}"]).expect("DEL");
            let taken = thief.acquire("k", &LockOptions::new(30 * SECOND)).await;
            std::mem::forget(taken.expect("the thief takes the freed lock"));
            tokio::time::sleep(Duration::from_millis(1500)).await;
            flag.store(true, Ordering::SeqCst);
        })
        .await;
    (result, finished.load(Ordering::SeqCst), started.elapsed())
}
