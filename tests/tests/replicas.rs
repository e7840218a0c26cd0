//! Replica-acknowledged locks (`BackendBuilder::replicas_acknowledge`): a grant counts only
//! once replicas confirmed it, so a failover to one of them keeps the lock.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockError, LockOptions, Operation};
use lock_tests::{eventually, signal, RedisServer, Sentinel};

const SERVICE: &str = "locks";
const OPTIONS: LockOptions = LockOptions::new(Duration::from_secs(30));

async fn acknowledged_backend(url: &str) -> Backend {
    Backend::builder()
        .op_timeout(Duration::from_secs(1))
        .replicas_acknowledge(1, Duration::from_millis(200))
        .redis(url)
        .await
        .expect("connect")
}

fn assert_not_replicated(result: Result<lock_runtime::LockGuard, LockError>, operation: Operation) {
    match result {
        Err(LockError::NotReplicated {
            operation: op,
            acknowledged: 0,
            wanted: 1,
            ..
        }) if op == operation => {}
        other => panic!("expected NotReplicated for {operation}, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_replica_to_confirm_it_no_lock_is_granted_and_none_is_left() {
    let server = RedisServer::start();
    let backend = acknowledged_backend(&server.url()).await;
    // The plain `SET` path and the scripted one (fencing).
    assert_not_replicated(backend.acquire("plain", &OPTIONS).await, Operation::Acquire);
    assert_not_replicated(
        backend.acquire("fenced", &OPTIONS.fencing(true)).await,
        Operation::Acquire,
    );
    for name in ["plain", "fenced"] {
        let key = backend.key_for(name);
        assert_eq!(
            server.raw(&["EXISTS", &key]).trim(),
            ":0",
            "{key} left behind"
        );
    }
}

#[tokio::test]
async fn a_timeout_as_long_as_the_time_bound_is_refused() {
    let server = RedisServer::start();
    let refused = Backend::builder()
        .op_timeout(Duration::from_millis(500))
        .replicas_acknowledge(1, Duration::from_millis(500))
        .redis(&server.url())
        .await;
    assert!(
        matches!(refused, Err(LockError::InvalidInput(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn grants_and_extensions_count_only_while_the_replica_confirms_them() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let backend = acknowledged_backend(&primary.url()).await;

    let mut guard = backend.acquire("k", &OPTIONS).await.expect("acquire");
    let key = backend.key_for("k");
    assert!(replica
        .raw(&["GET", &key])
        .contains(&guard.token().to_string()));
    guard
        .extend(Duration::from_secs(40))
        .await
        .expect("extend with the replica confirming");

    // A replica that stops answering confirms nothing.
    signal(replica.pid(), "-STOP");
    let extended = guard.extend(Duration::from_secs(50)).await;
    let other = backend.acquire("other", &OPTIONS).await;
    signal(replica.pid(), "-CONT");
    assert!(
        matches!(
            extended,
            Err(LockError::NotReplicated {
                operation: Operation::Extend,
                ..
            })
        ),
        "{extended:?}"
    );
    assert_not_replicated(other, Operation::Acquire);
    assert_eq!(
        primary.raw(&["EXISTS", &backend.key_for("other")]).trim(),
        ":0"
    );
    guard.release().await.expect("release");
}

/// The failover the option exists for: a primary killed right after a grant, its replica
/// promoted by three sentinels. The promoted replica has the lock, and nobody else gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_granted_just_before_the_primary_dies_survives_the_failover() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let sentinels = Sentinel::three(SERVICE, &primary, 1).await;
    let url = Sentinel::url(&sentinels, SERVICE);

    let holder = acknowledged_backend(&url).await;
    let guard = holder.acquire("k", &OPTIONS).await.expect("acquire");
    primary.kill();
    let killed_at = Instant::now();

    assert!(
        eventually(Duration::from_secs(60), || sentinels
            .iter()
            .all(|s| s.primary_port(SERVICE) == Some(replica.port())))
        .await,
        "the sentinels never promoted the replica"
    );
    eprintln!("replica promoted {:?} after kill -9", killed_at.elapsed());
    let key = holder.key_for("k");
    assert!(
        replica
            .raw(&["GET", &key])
            .contains(&guard.token().to_string()),
        "the promoted replica lost the lock"
    );

    // Another client, through the sentinels, never gets it while the lease runs.
    let other = Backend::builder()
        .op_timeout(Duration::from_secs(1))
        .redis(&url)
        .await
        .expect("connect to the new primary");
    let until = Instant::now() + Duration::from_secs(3);
    let mut refusals = 0;
    while Instant::now() < until {
        match other.acquire("k", &OPTIONS).await {
            Ok(second) => panic!("a second owner: {:?}", second.token()),
            Err(LockError::Busy { .. } | LockError::Recovering { .. }) => refusals += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refusals > 0);
    drop(guard);
}

/// A primary with fewer replicas connected than `replicas_acknowledge` waits for can grant
/// nothing: the client says so when it connects, and stays quiet when enough are there.
#[tokio::test(flavor = "current_thread")]
async fn connecting_to_a_primary_short_of_replicas_warns() {
    let (events, _guard) = lock_tests::CapturedEvents::install();
    let primary = RedisServer::start();
    let short = Backend::builder()
        .replicas_acknowledge(1, Duration::from_millis(100))
        .redis(&primary.url())
        .await
        .expect("connect");
    let warned = events.at(tracing::Level::WARN);
    assert!(
        warned
            .iter()
            .any(|w| w.contains("fewer replicas connected") && w.contains("wanted=1")),
        "{warned:?}"
    );
    drop(short);
    let replica = RedisServer::start_replica_of(&primary);
    let before = events.at(tracing::Level::WARN).len();
    let enough = Backend::builder()
        .replicas_acknowledge(1, Duration::from_millis(100))
        .redis(&primary.url())
        .await
        .expect("connect");
    let warned = events.at(tracing::Level::WARN);
    assert_eq!(warned.len(), before, "{warned:?}");
    drop((enough, replica));
}

/// After a failover to the only replica, the new primary has none: the client warns as
/// soon as it sees the failover.
#[tokio::test(flavor = "current_thread")]
async fn a_failover_to_the_only_replica_warns_that_grants_stop() {
    let (events, _guard) = lock_tests::CapturedEvents::install();
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let proxy = lock_tests::Proxy::start(primary.port());
    let backend = Backend::builder()
        .replicas_acknowledge(1, Duration::from_millis(100))
        .health_interval(Duration::from_millis(50))
        .redis(&proxy.url())
        .await
        .expect("connect");
    let short = |events: &lock_tests::CapturedEvents| {
        events
            .at(tracing::Level::WARN)
            .iter()
            .filter(|w| w.contains("fewer replicas connected"))
            .count()
    };
    assert_eq!(short(&events), 0);
    assert!(replica.raw(&["REPLICAOF", "NO", "ONE"]).starts_with("+OK"));
    proxy.switch_all(replica.port());
    assert!(
        eventually(Duration::from_secs(10), || short(&events) == 1).await,
        "{:?}",
        events.at(tracing::Level::WARN)
    );
    drop((backend, primary));
}
