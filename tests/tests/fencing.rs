//! Fencing tokens: strictly increasing per lock, across expiries, visible to the body.

use std::time::Duration;

use lock_runtime::LockOptions;
use lock_tests::{on_both_stores, Stores};

on_both_stores!(
    fencing_tokens_strictly_increase_over_1000_acquisitions_with_expiries,
    the_body_reads_its_fencing_token,
    locks_without_fencing_have_no_token,
);

async fn fencing_tokens_strictly_increase_over_1000_acquisitions_with_expiries(stores: Stores) {
    let released = LockOptions::new(Duration::from_secs(10)).fencing(true);
    let expiring = LockOptions::new(Duration::from_millis(5)).fencing(true);
    let waiting = released.clone().wait(Duration::from_secs(10));
    let mut last = 0;
    for i in 0..1000 {
        let backend = if i % 2 == 0 { &stores.a } else { &stores.b };
        let guard = if i % 50 == 49 {
            // Let this one expire instead of releasing it; the next acquisition waits it out.
            let guard = backend.acquire("fenced", &expiring).await.expect("acquire");
            let fence = guard.fencing_token().expect("a fencing token");
            std::mem::forget(guard);
            assert!(fence > last, "acquisition {i}: {fence} after {last}");
            last = fence;
            backend
                .acquire("fenced", &waiting)
                .await
                .expect("acquire after expiry")
        } else {
            backend.acquire("fenced", &released).await.expect("acquire")
        };
        let fence = guard.fencing_token().expect("a fencing token");
        assert!(fence > last, "acquisition {i}: {fence} after {last}");
        last = fence;
        guard.release().await.expect("release");
    }
    if let Some(server) = &stores.server {
        // The counter lives beside the lock, in the same hash slot, for an hour after its
        // last use.
        assert!(server
            .raw(&["GET", "lock:{fenced}:fence"])
            .contains(&last.to_string()));
        let life: i64 = server.raw(&["PTTL", "lock:{fenced}:fence"])[1..]
            .trim()
            .parse()
            .expect("PTTL");
        let hour = 60 * 60 * 1000;
        assert!(hour - 60_000 < life && life <= hour, "{life}");
    }
}

async fn the_body_reads_its_fencing_token(stores: Stores) {
    let options = LockOptions::new(Duration::from_secs(10)).fencing(true);
    let (outer, inner) = stores
        .a
        .with_lock("ledger", &options, async {
            let outer = lock_runtime::fencing_token();
            // A nested lock on another key has its own token, innermost first.
            let inner = stores
                .a
                .with_lock("other", &options, async { lock_runtime::fencing_token() })
                .await
                .expect("nested lock");
            assert_eq!(
                lock_runtime::fencing_token(),
                outer,
                "back to the outer token"
            );
            (outer, inner)
        })
        .await
        .expect("with_lock");
    assert!(outer.is_some() && inner.is_some());
    assert_eq!(
        lock_runtime::fencing_token(),
        None,
        "no lock outside the body"
    );
    let guard = stores.b.acquire("ledger", &options).await.expect("acquire");
    assert!(
        guard.fencing_token() > outer,
        "the next holder gets a higher token"
    );
    guard.release().await.expect("release");
}

async fn locks_without_fencing_have_no_token(stores: Stores) {
    let options = LockOptions::new(Duration::from_secs(10));
    let token = stores
        .a
        .with_lock("plain", &options, async { lock_runtime::fencing_token() })
        .await
        .expect("with_lock");
    assert_eq!(token, None);
    let guard = stores.a.acquire("plain", &options).await.expect("acquire");
    assert_eq!(guard.fencing_token(), None);
    guard.release().await.expect("release");
    if let Some(server) = &stores.server {
        assert_eq!(server.raw(&["EXISTS", "lock:{plain}:fence"]).trim(), ":0");
    }
}

/// Item 3: a server that comes back from an older snapshot (`SAVE`, more acquisitions,
/// `kill -9`, restart from the RDB file) has a stale counter; the first token after the
/// restart is still above every token issued before it, because every token is at least
/// the server's clock in microseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_never_repeat_after_a_restart_from_an_older_snapshot() {
    let server = lock_tests::RedisServer::start();
    let backend = lock_runtime::Backend::builder()
        .restart_guard(None)
        .redis(&server.url())
        .await
        .expect("connect");
    let fenced = LockOptions::new(Duration::from_secs(1)).fencing(true);
    let mut highest = 0;
    let take = |backend: lock_runtime::Backend| {
        let fenced = fenced.clone();
        async move {
            let guard = backend.acquire("f", &fenced).await?;
            let token = guard.fencing_token().expect("a fencing token");
            guard.release().await?;
            Ok::<u64, lock_runtime::LockError>(token)
        }
    };
    for _ in 0..5 {
        let token = take(backend.clone()).await.expect("acquire");
        assert!(token > highest);
        highest = token;
    }
    assert!(server.raw(&["SAVE"]).starts_with("+OK"));
    let in_snapshot = highest;
    for _ in 0..20 {
        let token = take(backend.clone()).await.expect("acquire");
        assert!(token > highest);
        highest = token;
    }
    let server = server.restarted().await;
    // The snapshot came back: the counter is the stale one.
    let counter = server.raw(&["GET", "lock:{f}:fence"]);
    assert!(counter.contains(&in_snapshot.to_string()), "{counter}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        match take(backend.clone()).await {
            Ok(token) => break token,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("tokens: {in_snapshot} in the snapshot, {highest} before the restart, {first} after");
    assert!(
        first > highest,
        "{first} after {highest}: a repeated or lower token"
    );
}

/// Item 19: counters expire (a day after their last use); tokens stay strictly increasing
/// across a counter's disappearance.
#[tokio::test]
async fn fencing_tokens_increase_across_a_counter_expiry() {
    let server = lock_tests::RedisServer::start();
    let backend = lock_runtime::Backend::redis(&server.url())
        .await
        .expect("connect");
    let fenced = LockOptions::new(Duration::from_secs(1)).fencing(true);
    let mut last = 0;
    for round in 0..20 {
        if round % 4 == 3 {
            // As if its life had run out.
            server.raw(&["DEL", "lock:{g}:fence"]);
        }
        let guard = backend.acquire("g", &fenced).await.expect("acquire");
        let token = guard.fencing_token().expect("a fencing token");
        assert!(token > last, "round {round}: {token} after {last}");
        last = token;
        guard.release().await.expect("release");
    }
}
