//! `rediss://` and `rediss+cluster://`: locks over TLS, against a real redis-server that
//! speaks TLS only, and a Redis Cluster whose nodes talk TLS to clients and to each other.

use std::time::Duration;

use lock_runtime::{Backend, LockError, LockOptions, Operation};
use lock_tests::{RedisCluster, RedisServer};

#[tokio::test]
async fn locks_work_over_tls_with_a_trusted_certificate() {
    let server = RedisServer::start_tls();
    assert!(server.url().starts_with("rediss://"));
    let backend = Backend::builder()
        .tls_root_certificate(server.ca_pem())
        .redis(&server.url())
        .await
        .expect("connect over TLS");
    let options = LockOptions::new(Duration::from_secs(5)).fencing(true);
    let guard = backend
        .acquire("k", &options)
        .await
        .expect("acquire over TLS");
    let busy = backend
        .acquire("k", &LockOptions::new(Duration::from_secs(5)))
        .await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    assert!(guard.fencing_token().is_some());
    guard.release().await.expect("release over TLS");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_connect_error() {
    let server = RedisServer::start_tls();
    untrusted(&server.url()).await;
}

/// Connecting to `url` without trusting its CA (the system's roots do not know the test
/// CA) is a connect error.
async fn untrusted(url: &str) {
    let err = Backend::builder()
        .op_timeout(Duration::from_secs(2))
        .redis(url)
        .await
        .expect_err("the certificate is not trusted");
    assert!(
        matches!(
            err,
            LockError::Backend {
                operation: Operation::Connect,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_notifications_work_on_a_tls_cluster() {
    let cluster = RedisCluster::start_tls(3, 0).await;
    let url = cluster.url();
    assert!(url.starts_with("rediss+cluster://"), "{url}");
    let connect = || async {
        Backend::builder()
            .tls_root_certificate(cluster.ca_pem())
            .redis(&url)
            .await
            .expect("connect to the cluster over TLS")
    };
    let (a, b) = (connect().await, connect().await);
    let options = LockOptions::new(Duration::from_secs(30));
    cluster.assert_locks_live_on_their_shards(&a, &b, 6).await;

    // A waiter is woken by the release's sharded notification, over TLS too.
    let key = a.key_for("k");
    let shard = cluster.node_for(&key);
    let held = a.acquire("k", &options).await.expect("acquire");
    let waiter = tokio::spawn(async move {
        let options = LockOptions::new(Duration::from_secs(30)).wait(Duration::from_secs(20));
        b.acquire("k", &options).await
    });
    let subscribed = lock_tests::eventually(Duration::from_secs(10), || {
        shard.raw(&["PUBSUB", "SHARDNUMSUB", &key]).contains(":1")
    })
    .await;
    assert!(subscribed, "no sharded subscription on the lock's shard");
    let gap = lock_tests::handoff_gap(held, waiter).await;
    assert!(gap < Duration::from_millis(500), "woken after {gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_with_an_untrusted_certificate_is_a_connect_error() {
    let cluster = RedisCluster::start_tls(3, 0).await;
    untrusted(&cluster.url()).await;
    // Plain RESP to the TLS ports is no cluster either.
    let plain = cluster.url().replacen("rediss+", "redis+", 1);
    let err = Backend::builder()
        .op_timeout(Duration::from_secs(2))
        .redis(&plain)
        .await
        .expect_err("the nodes' client ports speak TLS only");
    assert!(
        matches!(err, LockError::Backend { .. } | LockError::Timeout { .. }),
        "{err:?}"
    );
}
