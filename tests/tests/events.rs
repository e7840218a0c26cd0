//! What the library tells operators through tracing: a `skip` that hides a broken setup is
//! an error, not a quiet skip, and every warning or error names its lock and client.

use std::time::Duration;

use lock_runtime::{distributed_lock, Backend, LockOptions};
use lock_tests::{CapturedEvents, RedisServer};
use tracing::Level;

#[distributed_lock(key = "nightly:{n}", ttl = "10s", client = "never-registered", skip)]
async fn job_without_a_client(n: u32) {
    let _ = n;
    unreachable!("the body must not run without the lock");
}

#[distributed_lock(key = "nightly:{n}", ttl = "10s", client = "dead-store", skip)]
async fn job_on_a_dead_store(n: u32) {
    let _ = n;
    unreachable!("the body must not run without the lock");
}

#[distributed_lock(key = "nightly:{n}", ttl = "10s", client = "events-busy", skip)]
async fn job_that_is_busy(n: u32) {
    let _ = n;
    unreachable!("the body must not run without the lock");
}

/// Item 6: only "another owner holds it" is a quiet skip (INFO); a missing client or a
/// store that does not answer is an ERROR naming the function, the lock and the error.
#[tokio::test(flavor = "current_thread")]
async fn skip_reports_a_broken_setup_as_an_error() {
    let (events, _guard) = CapturedEvents::install();

    job_without_a_client(1).await;
    let errors = events.at(Level::ERROR);
    assert_eq!(errors.len(), 1, "{errors:?}");
    for expected in [
        "job_without_a_client",
        "nightly:1",
        "never-registered",
        "register(",
        "before calling",
    ] {
        assert!(
            errors[0].contains(expected),
            "{expected} missing: {errors:?}"
        );
    }

    let server = RedisServer::start();
    let dead = Backend::builder()
        .op_timeout(Duration::from_millis(200))
        .redis(&server.url())
        .await
        .expect("connect");
    lock_runtime::register("dead-store", dead).expect("register");
    lock_tests::signal(server.pid(), "-STOP");
    job_on_a_dead_store(2).await;
    lock_tests::signal(server.pid(), "-CONT");
    let errors = events.at(Level::ERROR);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for expected in [
        "job_on_a_dead_store",
        "nightly:2",
        "dead-store",
        "did not answer",
    ] {
        assert!(
            errors[1].contains(expected),
            "{expected} missing: {errors:?}"
        );
    }

    let busy = Backend::memory();
    lock_runtime::register("events-busy", busy).expect("register");
    let options = LockOptions::new(Duration::from_secs(10)).client("events-busy");
    let held = lock_runtime::acquire("nightly:3", &options)
        .await
        .expect("hold");
    job_that_is_busy(3).await;
    held.release().await.expect("release");
    assert_eq!(events.at(Level::ERROR).len(), 2, "a busy lock is no error");
    let infos = events.at(Level::INFO);
    assert!(
        infos
            .iter()
            .any(|i| i.contains("job_that_is_busy") && i.contains("nightly:3")),
        "{infos:?}"
    );
}

/// Item 9: the lost-lease warning names the lock and the client, not only a span field.
#[tokio::test(flavor = "current_thread")]
async fn a_lost_lease_warning_names_its_lock_and_client() {
    let (events, _guard) = CapturedEvents::install();
    lock_runtime::register("events-lost", Backend::memory()).expect("register");
    let options = LockOptions::new(Duration::from_millis(50)).client("events-lost");
    let lost = lock_runtime::with_lock(
        "order:7",
        &options,
        tokio::time::sleep(Duration::from_millis(300)),
    )
    .await;
    assert!(lost.is_err());
    let warnings = events.at(Level::WARN);
    assert!(!warnings.is_empty());
    for warning in &warnings {
        assert!(
            warning.contains("order:7") && warning.contains("events-lost"),
            "a warning without its lock or client: {warning}"
        );
    }
}
