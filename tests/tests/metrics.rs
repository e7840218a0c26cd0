//! The metrics the library records, read back from a real Prometheus recorder, for locks
//! on a real Redis server: each counter moves exactly as the events it counts.

use std::{sync::OnceLock, time::Duration};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::RedisServer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process's recorder, installed before the first lock.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("install the recorder")
    })
}

/// The value of `metric` whose labels include every one of `labels` (summed).
fn value(metric: &str, labels: &[&str]) -> f64 {
    lock_tests::prometheus_value(&recorder().render(), metric, labels)
}

const JOB: &[&str] = &[
    r#"name="job:{id}""#,
    r#"client="metrics""#,
    r#"backend="redis""#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_histograms_and_the_gauge_follow_what_happened() {
    recorder();
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    lock_runtime::register("metrics", backend.clone()).expect("register");
    let job = LockOptions::new(Duration::from_secs(10))
        .client("metrics")
        .name_template("job:{id}");

    // Three acquisitions, each held and released; the gauge shows the one held.
    for id in 0..3 {
        let guard = backend
            .acquire(&format!("job:{id}"), &job)
            .await
            .expect("job");
        assert_eq!(value("distributed_lock_held", JOB), 1.0);
        guard.release().await.expect("release");
    }
    assert_eq!(value("distributed_lock_acquisitions_total", JOB), 3.0);
    assert_eq!(value("distributed_lock_wait_seconds_count", JOB), 3.0);
    assert_eq!(value("distributed_lock_held_seconds_count", JOB), 3.0);
    assert_eq!(value("distributed_lock_held", JOB), 0.0);

    // Busy twice: once at the store, once queued behind this process's own holder.
    let holder = backend.acquire("job:9", &job).await.expect("job:9");
    let refused = backend.acquire("job:9", &job).await.unwrap_err();
    assert!(refused.is_busy(), "{refused}");
    let other = Backend::redis(&server.url()).await.expect("connect");
    let elsewhere = other.acquire("job:9", &job).await.unwrap_err();
    assert!(elsewhere.is_busy(), "{elsewhere}");
    // Both backends are Redis, and the locks share name and client: one series.
    assert_eq!(value("distributed_lock_busy_total", JOB), 2.0);
    // A dropped guard ends its hold too.
    drop(holder);
    assert_eq!(value("distributed_lock_held_seconds_count", JOB), 4.0);
    assert_eq!(value("distributed_lock_held", JOB), 0.0);

    // Renewal: a 300 ms lease kept for a 700 ms body.
    let renewed = LockOptions::new(Duration::from_millis(300))
        .client("metrics")
        .name_template("job:{id}")
        .renew(true);
    lock_runtime::with_lock(
        "job:r",
        &renewed,
        tokio::time::sleep(Duration::from_millis(700)),
    )
    .await
    .expect("renewed");
    let renewals = value("distributed_lock_renewals_total", JOB);
    // Every third of the TTL: about 7; at least 2 to keep the lease that long.
    assert!((2.0..=10.0).contains(&renewals), "{renewals}");
    assert_eq!(value("distributed_lock_lost_total", JOB), 0.0);

    // A lost lease counts once, though the body's end and the release both find it lost.
    let short = LockOptions::new(Duration::from_millis(100))
        .client("metrics")
        .name_template("job:{id}");
    let lost = lock_runtime::with_lock(
        "job:l",
        &short,
        tokio::time::sleep(Duration::from_millis(400)),
    )
    .await;
    assert!(matches!(lost, Err(LockError::Lost { .. })), "{lost:?}");
    assert_eq!(value("distributed_lock_lost_total", JOB), 1.0);

    // Without a template, the hand API's locks share one label value, not one per name.
    for id in 0..5 {
        let plain = LockOptions::new(Duration::from_secs(1)).client("metrics");
        drop(
            backend
                .acquire(&format!("n:{id}"), &plain)
                .await
                .expect("plain"),
        );
    }
    let unnamed = [r#"name="unnamed""#, r#"client="metrics""#];
    assert_eq!(value("distributed_lock_acquisitions_total", &unnamed), 5.0);
    assert!(!recorder().render().contains("n:3"));

    // Store calls are timed per operation; failures are counted by kind.
    let calls = [r#"operation="acquire""#, r#"backend="redis""#];
    // 3 + 1 + 1 (the other backend; the queued refusal asked no store) + 1 + 1 + 5.
    assert_eq!(
        value("distributed_lock_store_call_seconds_count", &calls),
        12.0
    );
    let mut gone = RedisServer::start();
    let failing = Backend::builder()
        .op_timeout(Duration::from_millis(300))
        .redis(&gone.url())
        .await
        .expect("connect");
    gone.kill();
    let failed = failing.acquire("job:x", &job).await.unwrap_err();
    assert!(
        matches!(
            failed,
            LockError::Backend { .. } | LockError::Timeout { .. }
        ),
        "{failed}"
    );
    let errors = value("distributed_lock_store_errors_total", &calls);
    assert!(errors >= 1.0, "{}", recorder().render());
}

/// `distributed_lock_leader`: 1 while this process leads an election, 0 after it resigns or
/// its work ends (or the handle is dropped), one series per election and client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_gauge_says_whether_this_process_leads() {
    use lock_runtime::LeaderOptions;
    recorder();
    // In memory: the other test counts the Redis store's calls.
    let backend = Backend::memory();
    lock_runtime::register("leaders", backend.clone()).expect("register");
    let options = LeaderOptions::new(Duration::from_secs(10)).client("leaders");
    let labels = &[r#"election="scheduler""#, r#"client="leaders""#];
    let leading = backend
        .campaign("scheduler", &options)
        .await
        .expect("elected");
    assert_eq!(value("distributed_lock_leader", labels), 1.0);
    leading.resign().await.expect("resign");
    assert_eq!(value("distributed_lock_leader", labels), 0.0);
    let during = backend
        .lead("scheduler", &options, || async {
            value("distributed_lock_leader", labels)
        })
        .await
        .expect("lead");
    assert_eq!(during, 1.0);
    assert_eq!(value("distributed_lock_leader", labels), 0.0);
    // Another election is a series of its own.
    let other = backend
        .campaign("compactor", &options)
        .await
        .expect("elected");
    let compactor = &[r#"election="compactor""#, r#"client="leaders""#];
    assert_eq!(value("distributed_lock_leader", compactor), 1.0);
    assert_eq!(value("distributed_lock_leader", labels), 0.0);
    drop(other);
    assert_eq!(value("distributed_lock_leader", compactor), 0.0);
}
