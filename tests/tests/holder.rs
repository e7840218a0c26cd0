//! The holder's record: written with the lock in the same command, read back by
//! `inspect`, and never in the way of the owner checks.

use std::time::Duration;

use lock_runtime::{Backend, LockOptions};
use lock_tests::RedisServer;

#[tokio::test]
async fn the_record_rides_in_the_acquiring_write_and_reads_back() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    let options = LockOptions::new(Duration::from_secs(20)).function("billing::charge");
    // Warm the connection (scripts, INFO) before counting.
    let warm = backend.acquire("warm", &options).await.expect("warm");
    warm.release().await.expect("release");
    let before = server.calls("set") + server.calls("evalsha");
    let guard = backend.acquire("order:7", &options).await.expect("order:7");
    assert_eq!(
        server.calls("set") + server.calls("evalsha") - before,
        1,
        "one SET, nothing else"
    );
    let raw = server.raw(&["GET", "lock:{order:7}"]);
    let pid = std::process::id();
    let expected = format!("{};h=", guard.token());
    assert!(raw.contains(&expected), "{raw:?}");
    assert!(
        raw.contains(&format!(";p={pid};f=billing::charge;t=")),
        "{raw:?}"
    );

    let info = backend
        .inspect("order:7")
        .await
        .expect("inspect")
        .expect("held");
    assert_eq!(info.name, "order:7");
    assert_eq!(info.token, guard.token().as_str());
    let holder = info.holder.clone().expect("a record");
    assert_eq!(
        (holder.pid, holder.function.as_deref()),
        (pid, Some("billing::charge"))
    );
    assert!(info.age().expect("an age") < Duration::from_secs(5));
    let left = info.remaining.expect("a lease");
    assert!(
        left > Duration::from_secs(15) && left <= Duration::from_secs(20),
        "{left:?}"
    );
    assert_eq!((holder.fence, info.fence_counter), (None, None));

    // The owner checks compare the token in front: extend and release still work, and
    // the record does not make anyone else an owner.
    let mut guard = guard;
    guard.extend(Duration::from_secs(30)).await.expect("extend");
    guard.release().await.expect("release");
    assert_eq!(backend.inspect("order:7").await.expect("inspect"), None);

    // With fencing, the token given is in the record and in the counter.
    let fenced = options.clone().fencing(true);
    let guard = backend.acquire("ledger", &fenced).await.expect("ledger");
    let fence = guard.fencing_token().expect("a fence");
    let info = backend
        .inspect("ledger")
        .await
        .expect("inspect")
        .expect("held");
    assert_eq!(info.holder.and_then(|h| h.fence), Some(fence));
    assert_eq!(info.fence_counter, Some(fence));
    guard.release().await.expect("release");

    // A value written by another client (no record) is shown without one.
    server.raw(&["SET", "lock:{foreign}", "abc", "PX", "5000"]);
    let foreign = backend
        .inspect("foreign")
        .await
        .expect("inspect")
        .expect("held");
    assert_eq!((foreign.token.as_str(), foreign.holder), ("abc", None));
    let listed: Vec<String> = backend
        .list("*")
        .await
        .expect("list")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(listed, ["foreign"]);

    // `[` is a plain character in a listing's pattern, on every store.
    let guard = backend.acquire("slot[1]", &options).await.expect("slot[1]");
    let listed = backend.list("slot[1]*").await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(backend.list("slot1").await.expect("list").is_empty());
    guard.release().await.expect("release");
}
