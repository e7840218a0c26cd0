//! The global registry, `init_from_env`, and the closure API over it.

use std::time::Duration;

use lock_runtime::{Backend, LockError, LockOptions, OnLost, URL_ENV};
use lock_tests::RedisServer;

/// The default client and the environment are process-wide, so one test walks through them.
#[tokio::test]
async fn default_client_from_nothing_to_env_to_use() {
    let options = LockOptions::new(Duration::from_secs(5));
    let before = lock_runtime::acquire("k", &options).await;
    assert!(
        matches!(before, Err(LockError::NotInitialized { client: None })),
        "{before:?}"
    );
    let message = before.expect_err("not initialised").to_string();
    assert!(message.contains("lock_runtime::init"), "{message}");

    std::env::remove_var(URL_ENV);
    let unset = lock_runtime::init_from_env().await;
    assert!(
        matches!(unset, Err(LockError::InvalidInput(ref m)) if m.contains(URL_ENV)),
        "{unset:?}"
    );

    std::env::set_var(URL_ENV, "ftp://example");
    let malformed = lock_runtime::init_from_env().await;
    assert!(
        matches!(malformed, Err(LockError::InvalidInput(_))),
        "{malformed:?}"
    );

    let server = RedisServer::start();
    std::env::set_var(URL_ENV, server.url());
    lock_runtime::init_from_env()
        .await
        .expect("init from the environment");
    let guard = lock_runtime::acquire("k", &options)
        .await
        .expect("acquire on the default client");
    assert!(server
        .raw(&["GET", "lock:{k}"])
        .contains(guard.token().as_str()));
    guard.release().await.expect("release");

    let again = lock_runtime::init(Backend::memory());
    assert!(
        matches!(again, Err(LockError::AlreadyRegistered { client: None })),
        "{again:?}"
    );
}

#[tokio::test]
async fn named_clients_are_set_once_and_looked_up_by_name() {
    lock_runtime::register("named-a", Backend::memory()).expect("register");
    let twice = lock_runtime::register("named-a", Backend::memory());
    assert!(
        matches!(twice, Err(LockError::AlreadyRegistered { client: Some(ref n) }) if n == "named-a"),
        "{twice:?}"
    );
    assert!(matches!(
        lock_runtime::register("", Backend::memory()),
        Err(LockError::InvalidInput(_))
    ));

    let options = LockOptions::new(Duration::from_secs(5)).client("named-a");
    let guard = lock_runtime::acquire("k", &options).await.expect("acquire");
    let busy = lock_runtime::acquire("k", &options).await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    guard.release().await.expect("release");

    let unknown = lock_runtime::acquire(
        "k",
        &LockOptions::new(Duration::from_secs(5)).client("nope"),
    )
    .await;
    match unknown {
        Err(LockError::NotInitialized { client: Some(name) }) => assert_eq!(name, "nope"),
        other => panic!("expected NotInitialized, got {other:?}"),
    }
}

#[tokio::test]
async fn with_lock_runs_the_body_only_under_the_lock() {
    lock_runtime::register("closure", Backend::memory()).expect("register");
    let options = LockOptions::new(Duration::from_secs(5)).client("closure");
    let out = lock_runtime::with_lock("job", &options, async { 7 })
        .await
        .expect("ran");
    assert_eq!(out, 7);

    let holder = lock_runtime::acquire("job", &options)
        .await
        .expect("acquire");
    let mut ran = false;
    let busy = lock_runtime::with_lock("job", &options, async { ran = true }).await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    assert!(!ran, "the body ran without the lock");
    holder.release().await.expect("release");
}

#[tokio::test]
async fn with_lock_reports_a_lease_that_ran_out_during_the_body() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    lock_runtime::register("lost", backend.clone()).expect("register");
    // Run to completion, then report: the body must finish to hand the new guard out.
    let options = LockOptions::new(Duration::from_millis(100))
        .client("lost")
        .on_lost(OnLost::Finish);
    let mut taken_over = None;
    let result = lock_runtime::with_lock("job", &options, async {
        // Someone else takes the lock once our lease runs out, while the body still runs.
        let waiting = LockOptions::new(Duration::from_secs(30)).wait(Duration::from_secs(10));
        taken_over = Some(
            backend
                .acquire("job", &waiting)
                .await
                .expect("taken over after the TTL"),
        );
    })
    .await;
    assert!(
        matches!(result, Err(LockError::Lost { ref key }) if key == "job"),
        "{result:?}"
    );
    assert_eq!(
        server.raw(&["EXISTS", "lock:{job}"]).trim(),
        ":1",
        "the new owner's lock was kept"
    );
    let new_owner = taken_over.expect("the body ran");
    new_owner
        .release()
        .await
        .expect("the new owner still holds it");
}
