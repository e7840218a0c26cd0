//! The Redis store behind Redis Sentinel: `redis+sentinel://` finds the primary through the
//! sentinels, and after a failover the store follows the new primary by itself and holds
//! grants back until every lease granted by the old one has ended.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::{eventually, RedisServer, Sentinel};

const SERVICE: &str = "locks";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_sentinel_failover_and_holds_grants_back_after_it() {
    let primary = RedisServer::start();
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    assert!(
        eventually(Duration::from_secs(20), || replica
            .raw(&["INFO", "replication"])
            .contains("master_link_status:up"))
        .await,
        "the replica never synced"
    );
    let sentinel = Sentinel::start(SERVICE, &primary, 1);
    assert!(
        eventually(Duration::from_secs(30), || sentinel.replicas(SERVICE) == 1).await,
        "the sentinel never found the replica"
    );

    let address = format!("127.0.0.1:{}", sentinel.port());
    let backend = Backend::builder()
        .op_timeout(Duration::from_millis(500))
        .redis_sentinel([address.as_str()], SERVICE)
        .await
        .expect("connect through the sentinel");
    // The URL form reaches the same primary.
    let by_url = Backend::redis(&format!("redis+sentinel://{address}/{SERVICE}"))
        .await
        .expect("connect by URL");
    let ttl = Duration::from_secs(2);
    let options = LockOptions::new(ttl);

    // Through the sentinel, the lock lives on the primary.
    let before = backend.acquire("before", &options).await.expect("acquire");
    let key = backend.key_for("before");
    assert!(primary
        .raw(&["GET", &key])
        .contains(&before.token().to_string()));
    before.release().await.expect("release");
    let other = by_url
        .acquire("other", &options)
        .await
        .expect("acquire by URL");
    assert!(primary
        .raw(&["GET", &by_url.key_for("other")])
        .contains(&other.token().to_string()));
    other.release().await.expect("release");
    let held = backend.acquire("held", &options).await.expect("acquire");

    // The sentinel promotes the replica; the old primary becomes its replica.
    // It may refuse (`NOGOODSLAVE`) until it has heard from the replica itself.
    let mut failover_at = Instant::now();
    let mut answer = String::new();
    let started = eventually(Duration::from_secs(30), || {
        failover_at = Instant::now();
        answer = sentinel.raw(&["SENTINEL", "FAILOVER", SERVICE]);
        answer.starts_with("+OK")
    })
    .await;
    assert!(started, "SENTINEL FAILOVER: {answer}");
    assert!(
        eventually(Duration::from_secs(30), || sentinel.primary_port(SERVICE)
            == Some(replica.port()))
        .await,
        "the sentinel never named the replica as primary"
    );
    // Until the sentinel has turned the old primary into a replica, it still takes writes:
    // a lock granted there in that moment is lost with it (what replica-acknowledged
    // locks are for). This test is about what comes after.
    assert!(
        eventually(Duration::from_secs(30), || primary
            .raw(&["INFO", "replication"])
            .contains("role:slave"))
        .await,
        "the old primary was never demoted"
    );

    // The store finds the new primary by itself, and grants nothing there until the
    // leases the old primary granted (TTL 2 s) have ended.
    let mut recovering = 0;
    let mut first_refusal = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        match backend.acquire("after", &options).await {
            Ok(guard) => break guard,
            Err(LockError::Recovering { .. }) => {
                recovering += 1;
                first_refusal.get_or_insert_with(Instant::now);
            }
            // The old connection reaching a demoted server, or dropped by the switch.
            Err(LockError::Backend { .. } | LockError::Timeout { .. }) => {}
            Err(other) => panic!("unexpected error after the failover: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no grant within 30 s of the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let granted_after = failover_at.elapsed();
    let held_for = first_refusal.map(|at| at.elapsed());
    eprintln!(
        "granted {granted_after:?} after SENTINEL FAILOVER, {held_for:?} after the first of \
         {recovering} refusals"
    );
    let key = backend.key_for("after");
    assert!(
        replica
            .raw(&["GET", &key])
            .contains(&after.token().to_string()),
        "the lock was not taken on the new primary"
    );
    // The hold runs from the moment the store saw the new primary, which is at most one
    // try (50 ms apart) before the first refusal.
    let held_for = held_for.expect("the failover hold never refused a grant");
    assert!(
        held_for >= ttl - Duration::from_millis(300),
        "granted {held_for:?} after the first refusal: a {ttl:?} lease could still run"
    );
    after.release().await.expect("release on the new primary");
    drop(held);
}
