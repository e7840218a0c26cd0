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
        // The counter lives beside the lock, in the same hash slot, for a day after its
        // last use.
        assert!(server
            .raw(&["GET", "lock:{fenced}:fence"])
            .contains(&last.to_string()));
        let life: i64 = server.raw(&["PTTL", "lock:{fenced}:fence"])[1..]
            .trim()
            .parse()
            .expect("PTTL");
        let day = 24 * 60 * 60 * 1000;
        assert!(day - 60_000 < life && life <= day, "{life}");
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
