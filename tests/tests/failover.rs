//! Restarts, failovers and silent connections, including behind a proxy that keeps the
//! client's TCP connection open: the client sees them, holds grants for the longest TTL
//! from the moment it sees them, and replaces connections that stopped answering.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::{eventually, info_field, Proxy, RedisServer};

const BOUND: Duration = Duration::from_millis(500);
const INTERVAL: Duration = Duration::from_millis(100);
/// Longer than a health check takes to see a change: one interval plus one time bound.
const DETECTION: Duration = Duration::from_secs(1);

async fn through(proxy: &Proxy) -> Backend {
    Backend::builder()
        .op_timeout(BOUND)
        .health_interval(INTERVAL)
        .redis(&proxy.url())
        .await
        .expect("connect through the proxy")
}

/// The server behind a client's open connection changes (`switch` does it); the lock the
/// holder took is gone there. Checks that the client sees it, answers `Recovering` rather
/// than granting or saying `Busy`, and grants no sooner than a full TTL after the change.
async fn hold_after_the_server_changed(switch: impl FnOnce(&Proxy) -> RedisServer) {
    let primary = RedisServer::start();
    let proxy = Proxy::start(primary.port());
    let ttl = Duration::from_secs(2);
    let (holder, waiter) = (through(&proxy).await, through(&proxy).await);
    let held = holder
        .acquire("k", &LockOptions::new(ttl))
        .await
        .expect("acquire");
    let connections = proxy.connections();

    let _new_server = switch(&proxy);
    let switched = Instant::now();
    tokio::time::sleep(DETECTION).await;
    // No connection broke: the health checks saw the change in band.
    assert_eq!(
        proxy.connections(),
        connections,
        "a connection was replaced"
    );

    let refused = waiter.acquire("k", &LockOptions::new(ttl)).await;
    assert!(
        matches!(refused, Err(LockError::Recovering { left, .. }) if left > Duration::ZERO),
        "{refused:?}"
    );
    let granted = waiter
        .acquire("k", &LockOptions::new(ttl).wait(Duration::from_secs(10)))
        .await
        .expect("granted after the hold");
    let after = switched.elapsed();
    println!("granted {after:?} after the change (TTL {ttl:?})");
    assert!(
        after >= ttl,
        "granted {after:?} after the change, within the {ttl:?} TTL"
    );
    drop((held, granted));
}

/// Item 4: a replica promoted behind the proxy (`REPLICAOF NO ONE`), which had been up
/// longer than the TTL and lagged (it lacks the lock): held for the full TTL from
/// detection, not for `TTL - uptime` (which would be zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_behind_an_open_connection_holds_grants_for_a_ttl_from_detection() {
    let primary = RedisServer::start();
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    let up_long = eventually(Duration::from_secs(15), || {
        info_field(&replica, "server", "uptime_in_seconds").unwrap_or(0) >= 3
    })
    .await;
    assert!(up_long, "the replica never reached 3 s of uptime");
    hold_after_the_server_changed(move |proxy| {
        assert!(replica.raw(&["REPLICAOF", "NO", "ONE"]).starts_with("+OK"));
        // It lagged: the lock never reached it.
        replica.raw(&["DEL", "lock:{k}"]);
        proxy.switch_all(replica.port());
        replica
    })
    .await;
    drop(primary);
}

/// Item 4: a restart without persistence behind the proxy (a new server, a new `run_id`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_behind_an_open_connection_holds_grants_for_a_ttl_from_detection() {
    hold_after_the_server_changed(|proxy| {
        let fresh = RedisServer::start();
        proxy.switch_all(fresh.port());
        fresh
    })
    .await;
}

/// Item 5: the default hold covers the longest TTL this backend has granted, even for an
/// acquire with a shorter one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_hold_covers_the_longest_ttl_granted() {
    let server = RedisServer::start();
    let backend = Backend::builder()
        .op_timeout(BOUND)
        .health_interval(INTERVAL)
        .redis(&server.url())
        .await
        .expect("connect");
    let long = Duration::from_secs(3);
    drop(
        backend
            .acquire("long", &LockOptions::new(long))
            .await
            .expect("acquire"),
    );
    let server = server.restarted().await;
    let short = LockOptions::new(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        match backend.acquire("short", &short).await {
            Err(LockError::Recovering { left, .. }) => break left,
            // The first calls meet the dead connection.
            Err(LockError::Backend { .. } | LockError::Timeout { .. })
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("expected the restart hold: {other:?}"),
        }
    };
    assert!(left > long - DETECTION, "held for {left:?} only");
    drop(server);
}

/// The longest hold accepted (a year; a longer one is refused when connecting) neither
/// panics the connection's tasks nor stops them: after a restart every acquire keeps
/// answering `Recovering`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_restart_guard_holds_without_panicking() {
    let server = RedisServer::start();
    let backend = Backend::builder()
        .op_timeout(BOUND)
        .restart_guard(Some(lock_runtime::MAX_TTL))
        .redis(&server.url())
        .await
        .expect("connect");
    let options = LockOptions::new(Duration::from_secs(1));
    let guard = backend.acquire("k", &options).await.expect("acquire");
    guard.release().await.expect("release");
    let server = server.restarted().await;
    let mut recovering = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while recovering < 3 {
        assert!(
            Instant::now() < deadline,
            "the client never saw the restart"
        );
        match backend.acquire("k", &options).await {
            Err(LockError::Recovering { .. }) => recovering += 1,
            Err(LockError::Backend { .. } | LockError::Timeout { .. }) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("{other:?}"),
        }
    }
    drop(server);
}

/// Item 6: a connection that stops answering (the proxy in front froze it, while the
/// server behind it is healthy) is replaced after a failed health check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_replaced() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let backend = through(&proxy).await;
    let options = LockOptions::new(Duration::from_secs(1));
    let guard = backend.acquire("k", &options).await.expect("acquire");
    guard.release().await.expect("release");
    proxy.freeze_existing();
    let frozen = Instant::now();
    let mut timeouts = 0;
    let guard = loop {
        match backend.acquire("k", &options).await {
            Ok(guard) => break guard,
            Err(LockError::Timeout { .. }) => timeouts += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(5),
            "still silent after {timeouts} timeouts"
        );
    };
    println!(
        "replaced after {:?} and {timeouts} timeouts",
        frozen.elapsed()
    );
    assert!(timeouts <= 4, "{timeouts} timeouts");
    guard.release().await.expect("release");
}

/// Item 6: a primary demoted to replica answers writes with `READONLY`; the client
/// reconnects (here to where new connections now go) instead of failing forever. Health
/// checks are rare in this test, so only the `READONLY` answer can trigger it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_from_a_demoted_primary_reconnects() {
    let old = RedisServer::start();
    let new = RedisServer::start();
    let proxy = Proxy::start(old.port());
    let backend = Backend::builder()
        .op_timeout(BOUND)
        .health_interval(Duration::from_secs(3600))
        .restart_guard(None)
        .redis(&proxy.url())
        .await
        .expect("connect");
    let options = LockOptions::new(Duration::from_secs(1));
    let guard = backend.acquire("k", &options).await.expect("acquire");
    guard.release().await.expect("release");
    assert!(old
        .raw(&["REPLICAOF", "127.0.0.1", &new.port().to_string()])
        .starts_with("+OK"));
    proxy.redirect_new(new.port());
    let first = backend.acquire("k", &options).await;
    assert!(
        matches!(&first, Err(LockError::Backend { source, .. }) if source.to_string().contains("read only replica")),
        "{first:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let guard = loop {
        match backend.acquire("k", &options).await {
            Ok(guard) => break guard,
            Err(e) => assert!(Instant::now() < deadline, "never reconnected: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(new.raw(&["EXISTS", "lock:{k}"]).contains(":1"));
    guard.release().await.expect("release");
}

/// Item 15: an acquire never takes longer than its wait plus one store time bound, even
/// when subscribing to release notifications hangs (the notification connection froze).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_is_bounded_by_its_wait_plus_one_time_bound() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let holder = Backend::redis(&server.url()).await.expect("connect");
    let waiter = through(&proxy).await;
    let held = holder
        .acquire("a", &LockOptions::new(Duration::from_secs(30)))
        .await
        .expect("hold a");
    let held_too = holder
        .acquire("b", &LockOptions::new(Duration::from_secs(30)))
        .await
        .expect("hold b");
    // A first busy wait opens the notification connection (the proxy's second).
    let wait = Duration::from_millis(50);
    let busy = waiter
        .acquire("a", &LockOptions::new(Duration::from_secs(1)).wait(wait))
        .await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    assert_eq!(proxy.connections(), 2);
    proxy.freeze(1..2);
    let started = Instant::now();
    let busy = waiter
        .acquire("b", &LockOptions::new(Duration::from_secs(1)).wait(wait))
        .await;
    let took = started.elapsed();
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    assert!(took < wait + BOUND, "took {took:?}");
    drop((held, held_too));
}

/// Fencing tokens stay above every earlier one when the promoted replica's clock lags: a
/// replica whose wall clock runs 30 s behind is cut off from the stream, the primary grants
/// a token it never receives, the primary dies and the replica takes over behind the same
/// address. Its counter is old and its clock behind, so the next token would be 30 s of
/// microseconds lower; the client's floor (the highest token and server clock it has
/// seen) keeps it above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_stay_above_earlier_ones_after_a_failover_to_a_server_whose_clock_lags() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start_replica_shifted(&primary, -30_000_000);
    let clock = |server: &RedisServer| -> i64 {
        let numbers: Vec<i64> = server
            .raw(&["TIME"])
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        numbers[0] * 1_000_000 + numbers[1]
    };
    let lag = clock(&primary) - clock(&replica);
    assert!(
        lag > 29_000_000,
        "the replica's clock is {lag} µs behind, not 30 s"
    );
    let proxy = Proxy::start(primary.port());
    let backend = through(&proxy).await;
    let options = LockOptions::new(Duration::from_secs(1))
        .fencing(true)
        .wait(Duration::from_secs(20));
    let first = backend.acquire("fenced", &options).await.expect("t1");
    let t1 = first.fencing_token().expect("a token");
    first.release().await.expect("release");
    assert!(
        eventually(Duration::from_secs(10), || {
            replica
                .raw(&["GET", "lock:{fenced}:fence"])
                .contains(&t1.to_string())
        })
        .await,
        "the counter never reached the replica"
    );
    // The replica stops taking the stream (it is cut off, then promoted); the primary
    // grants one more token, which it never receives, and dies.
    assert!(replica.raw(&["REPLICAOF", "NO", "ONE"]).starts_with("+OK"));
    let second = backend.acquire("fenced", &options).await.expect("t2");
    let t2 = second.fencing_token().expect("a token");
    second.release().await.expect("release");
    primary.kill();
    proxy.switch_all(replica.port());
    let third = backend.acquire("fenced", &options).await.expect("t3");
    let t3 = third.fencing_token().expect("a token");
    third.release().await.expect("release");
    println!("tokens t1 {t1}, t2 {t2} (lost with the primary), t3 {t3} (on the lagging one)");
    assert!(t3 > t2, "token {t3} after {t2}: it went back");
}
