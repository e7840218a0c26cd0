//! The lock protocol's behaviour, one test body run against Redis and the in-memory store.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use lock_runtime::{LockError, LockOptions};
use lock_tests::{on_both_stores, Stores};

on_both_stores!(
    mutual_exclusion_counts_every_acquisition,
    expired_holder_cannot_release_or_extend_the_new_owners_lock,
    busy_with_zero_wait_then_free_after_release,
    waiter_gets_the_lock_when_it_is_released,
    wait_is_honoured_when_the_lock_stays_busy,
    extend_keeps_the_lock_past_its_first_ttl,
    dropped_guard_releases_in_the_background,
    different_keys_do_not_block_each_other,
    empty_key_and_zero_ttl_are_invalid_input,
);

const SECOND: Duration = Duration::from_secs(1);

async fn mutual_exclusion_counts_every_acquisition(stores: Stores) {
    const TASKS: usize = 32;
    const ROUNDS: usize = 8;
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    let options = LockOptions::new(10 * SECOND).wait(60 * SECOND);
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let backend = if i % 2 == 0 {
            stores.a.clone()
        } else {
            stores.b.clone()
        };
        let (counter, inside, options) = (counter.clone(), inside.clone(), options.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let guard = backend.acquire("counter", &options).await.expect("acquire");
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                // A non-atomic increment: read, yield, write.
                let seen = counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.store(seen + 1, Ordering::SeqCst);
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await.expect("the lock was still ours");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(counter.load(Ordering::SeqCst), (TASKS * ROUNDS) as u64);
}

async fn expired_holder_cannot_release_or_extend_the_new_owners_lock(stores: Stores) {
    let short = LockOptions::new(Duration::from_millis(100));
    let mut stale = stores.a.acquire("k", &short).await.expect("first holder");
    // The second owner gets the lock once the first lease runs out.
    let waiting = LockOptions::new(30 * SECOND).wait(10 * SECOND);
    let fresh = stores
        .b
        .acquire("k", &waiting)
        .await
        .expect("second holder");
    assert!(stale.is_expired());

    let extended = stale.extend(30 * SECOND).await;
    assert!(
        matches!(extended, Err(LockError::Lost { ref key }) if key == "k"),
        "{extended:?}"
    );
    let released = stale.release().await;
    assert!(
        matches!(released, Err(LockError::Lost { .. })),
        "{released:?}"
    );

    // The new owner's lock survived both attempts.
    let third = stores.a.acquire("k", &LockOptions::new(SECOND)).await;
    assert!(matches!(third, Err(LockError::Busy { .. })), "{third:?}");
    fresh.release().await.expect("the new owner still holds it");
}

async fn busy_with_zero_wait_then_free_after_release(stores: Stores) {
    let options = LockOptions::new(30 * SECOND);
    let held = stores.a.acquire("k", &options).await.expect("acquire");
    let started = Instant::now();
    match stores.b.acquire("k", &options).await {
        Err(LockError::Busy { key, waited }) => {
            assert_eq!(key, "k");
            assert!(waited < SECOND, "one try took {waited:?}");
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(started.elapsed() < SECOND);
    held.release().await.expect("release");
    let again = stores
        .b
        .acquire("k", &options)
        .await
        .expect("free after release");
    again.release().await.expect("release");
}

async fn waiter_gets_the_lock_when_it_is_released(stores: Stores) {
    let held = stores
        .a
        .acquire("k", &LockOptions::new(30 * SECOND))
        .await
        .expect("acquire");
    let b = stores.b.clone();
    let waiter = tokio::spawn(async move {
        let options = LockOptions::new(30 * SECOND).wait(20 * SECOND);
        let started = Instant::now();
        let guard = b.acquire("k", &options).await;
        (guard, started.elapsed())
    });
    tokio::task::yield_now().await;
    held.release().await.expect("release");
    let (guard, waited) = waiter.await.expect("waiter task");
    guard
        .expect("the waiter gets the lock")
        .release()
        .await
        .expect("release");
    // Well before the holder's 30 s TTL: it came from the release.
    assert!(waited < 10 * SECOND, "waited {waited:?}");
}

async fn wait_is_honoured_when_the_lock_stays_busy(stores: Stores) {
    let held = stores
        .a
        .acquire("k", &LockOptions::new(30 * SECOND))
        .await
        .expect("acquire");
    let wait = Duration::from_millis(300);
    let started = Instant::now();
    let result = stores
        .b
        .acquire("k", &LockOptions::new(SECOND).wait(wait))
        .await;
    let elapsed = started.elapsed();
    match result {
        Err(LockError::Busy { waited, .. }) => assert!(waited >= wait, "gave up after {waited:?}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(
        elapsed >= wait && elapsed < wait + SECOND,
        "took {elapsed:?}"
    );
    held.release().await.expect("release");
}

async fn extend_keeps_the_lock_past_its_first_ttl(stores: Stores) {
    let mut held = stores
        .a
        .acquire("k", &LockOptions::new(Duration::from_millis(200)))
        .await
        .expect("acquire");
    held.extend(30 * SECOND).await.expect("extend");
    // Past the first TTL, the lock is still held: the only way to see that is to let time pass.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!held.is_expired());
    let other = stores.b.acquire("k", &LockOptions::new(SECOND)).await;
    assert!(matches!(other, Err(LockError::Busy { .. })), "{other:?}");
    held.release().await.expect("release");
}

async fn dropped_guard_releases_in_the_background(stores: Stores) {
    let options = LockOptions::new(60 * SECOND).wait(20 * SECOND);
    let held = stores.a.acquire("k", &options).await.expect("acquire");
    drop(held);
    let started = Instant::now();
    let again = stores
        .b
        .acquire("k", &options)
        .await
        .expect("freed by the dropped guard");
    assert!(
        started.elapsed() < 10 * SECOND,
        "it waited for the TTL instead"
    );
    again.release().await.expect("release");
}

async fn different_keys_do_not_block_each_other(stores: Stores) {
    let options = LockOptions::new(30 * SECOND);
    let one = stores
        .a
        .acquire("order:1", &options)
        .await
        .expect("order:1");
    let two = stores
        .b
        .acquire("order:2", &options)
        .await
        .expect("order:2 is independent");
    one.release().await.expect("release");
    two.release().await.expect("release");
}

async fn empty_key_and_zero_ttl_are_invalid_input(stores: Stores) {
    let empty = stores.a.acquire("", &LockOptions::new(SECOND)).await;
    assert!(
        matches!(empty, Err(LockError::InvalidInput(ref m)) if m.contains("empty")),
        "{empty:?}"
    );
    let zero = stores
        .a
        .acquire("k", &LockOptions::new(Duration::ZERO))
        .await;
    assert!(
        matches!(zero, Err(LockError::InvalidInput(ref m)) if m.contains("TTL")),
        "{zero:?}"
    );
    let endless = stores
        .a
        .acquire("k", &LockOptions::new(Duration::MAX))
        .await;
    assert!(
        matches!(endless, Err(LockError::InvalidInput(ref m)) if m.contains("at most")),
        "{endless:?}"
    );
    // Nothing was taken by the failed calls.
    let guard = stores
        .b
        .acquire("k", &LockOptions::new(SECOND))
        .await
        .expect("free");
    guard.release().await.expect("release");
}
