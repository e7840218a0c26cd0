//! The Redis store behind Redis Sentinel: `redis+sentinel://` finds the primary through the
//! sentinels, and after a failover the store follows the new primary by itself and holds
//! grants back until every lease granted by the old one has ended.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::{assert_exclusive_around, eventually, now_us, LockLoops, RedisServer, Sentinel};

const SERVICE: &str = "locks";

/// Three processes take one fenced lock over and over through three sentinels while the
/// primary is killed and its replica promoted: no two ever hold it at once, and fencing
/// tokens only grow, across the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_never_overlap_and_tokens_grow_across_a_failover() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let sentinels = Sentinel::three(SERVICE, &primary, 1).await;
    let url = Sentinel::url(&sentinels, SERVICE);

    let workers = LockLoops::spawn(env!("CARGO_BIN_EXE_lock-loop"), &url, 3, 12, 1000);
    // Let them take the lock for a while (the primary's count of fence updates says so).
    let fence_key = "lock:{shared}:fence";
    assert!(
        eventually(Duration::from_secs(10), || primary
            .raw(&["EXISTS", fence_key])
            .contains(":1"))
        .await,
        "no worker took the lock before the failover"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = now_us();
    primary.kill();
    assert!(
        eventually(Duration::from_secs(60), || sentinels
            .iter()
            .all(|s| s.primary_port(SERVICE) == Some(replica.port())))
        .await,
        "the sentinels never promoted the replica"
    );

    assert_exclusive_around(&workers.holdings().await, killed_at);
}

/// `SENTINEL FAILOVER` leaves the old primary up, and taking writes, until the sentinels
/// demote it (seconds later). The store follows the sentinels' `+switch-master` at once, with
/// no health check (60 s apart here) to notice: it holds grants back for a lease's length,
/// then grants on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_sentinel_failover_and_holds_grants_back_after_it() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let sentinel = Sentinel::start(SERVICE, &primary, 1);
    assert!(
        eventually(Duration::from_secs(30), || sentinel.replicas(SERVICE) == 1).await,
        "the sentinel never found the replica"
    );
    let address = format!("127.0.0.1:{}", sentinel.port());
    let backend = Backend::builder()
        .health_interval(Duration::from_secs(60))
        .redis_sentinel([address.as_str()], SERVICE)
        .await
        .expect("connect through the sentinel");
    let ttl = Duration::from_secs(2);
    let options = LockOptions::new(ttl);

    // Through the sentinel (by method or by URL), the lock lives on the primary.
    let by_url = Backend::redis(&format!("redis+sentinel://{address}/{SERVICE}"))
        .await
        .expect("connect by URL");
    for backend in [&backend, &by_url] {
        let guard = backend.acquire("before", &options).await.expect("acquire");
        assert!(primary
            .raw(&["GET", &backend.key_for("before")])
            .contains(&guard.token().to_string()));
        guard.release().await.expect("release");
    }

    // It may refuse (`NOGOODSLAVE`) until it has heard from the replica itself.
    let mut answer = String::new();
    let started = eventually(Duration::from_secs(30), || {
        answer = sentinel.raw(&["SENTINEL", "FAILOVER", SERVICE]);
        answer.starts_with("+OK")
    })
    .await;
    assert!(started, "SENTINEL FAILOVER: {answer}");
    // The sentinel names the promoted replica as soon as it promoted it, but announces the
    // switch (and clients move) only once the failover ends; until then the old primary
    // still takes writes (what `replicas_acknowledge` is for).
    assert!(
        eventually(Duration::from_secs(30), || sentinel
            .log()
            .contains("+switch-master"))
        .await,
        "the sentinel never announced the switch"
    );
    let switched_at = Instant::now();
    // Probes on keys of their own: granted (on the old primary) until the store heard of
    // the switch, then refused while the failover hold runs.
    let mut probes = 0;
    loop {
        probes += 1;
        match backend.acquire(&format!("probe:{probes}"), &options).await {
            Ok(guard) => drop(guard.release().await),
            Err(LockError::Recovering { .. }) => break,
            Err(other) => panic!("unexpected error while probing: {other:?}"),
        }
        assert!(
            switched_at.elapsed() < Duration::from_secs(2),
            "the store still granted on the old primary 2 s after the switch"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_refusal = Instant::now();
    eprintln!(
        "held back {:?} after the switch was logged, at probe {probes}",
        switched_at.elapsed()
    );

    let mut refusals = 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    let guard = loop {
        match backend.acquire("after", &options).await {
            Ok(guard) => break guard,
            Err(LockError::Recovering { .. }) => refusals += 1,
            Err(other) => panic!("unexpected error after the switch: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no grant within 20 s of the switch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The hold started when the store heard of the switch, just before the first refusal.
    let held_for = first_refusal.elapsed();
    let old_role = primary.raw(&["INFO", "replication"]);
    eprintln!(
        "granted {held_for:?} after the first of {refusals} refusals; the old primary was {}",
        if old_role.contains("role:master") {
            "still a primary"
        } else {
            "a replica by then"
        }
    );
    assert!(
        held_for >= ttl - Duration::from_millis(100),
        "granted {held_for:?} after the first refusal: a {ttl:?} lease could still run"
    );
    assert!(
        replica
            .raw(&["GET", &backend.key_for("after")])
            .contains(&guard.token().to_string()),
        "the grant was not on the new primary"
    );
    guard.release().await.expect("release");
}
