//! Shapes that must work at run time too: stacking with `#[tokio::test]` and
//! `#[tracing::instrument]` in either order. The expansions here are linted with
//! `clippy::pedantic` and `unused_qualifications` whenever clippy runs over the tests.
#![deny(clippy::pedantic, unused_qualifications)]

// The expansion must not depend on what these names mean in the caller's scope.
mod core {}
mod std {}

use ::std::time::Duration;

use lock_runtime::{distributed_lock, Backend, LockError, LockOptions};

const CLIENT: &str = "shapes";

/// Whether `key` is held right now (by someone else than the caller's lock attempt).
async fn held(key: &str) -> bool {
    let options = LockOptions::new(Duration::from_secs(1)).client(CLIENT);
    match lock_runtime::acquire(key, &options).await {
        Ok(guard) => {
            guard.release().await.expect("release");
            false
        }
        Err(LockError::Busy { .. }) => true,
        Err(e) => panic!("{e}"),
    }
}

fn register() {
    static ONCE: ::std::sync::Once = ::std::sync::Once::new();
    ONCE.call_once(|| lock_runtime::register(CLIENT, Backend::memory()).expect("register"));
}

// Run by `stacked_with_tokio_test_in_either_order`, which registers the client first: a
// guarded test cannot register the client its own lock needs.
#[tokio::test]
#[ignore = "run by stacked_with_tokio_test_in_either_order"]
#[distributed_lock(key = "tokio-test-outside", ttl = "10s", client = "shapes")]
async fn tokio_test_outside() -> Result<(), LockError> {
    assert!(held("tokio-test-outside").await);
    Ok(())
}

#[distributed_lock(key = "tokio-test-inside", ttl = "10s", client = "shapes")]
#[tokio::test]
#[ignore = "run by stacked_with_tokio_test_in_either_order"]
async fn tokio_test_inside() -> Result<(), LockError> {
    assert!(held("tokio-test-inside").await);
    Ok(())
}

#[test]
fn stacked_with_tokio_test_in_either_order() {
    register();
    tokio_test_outside().expect("guarded tokio test, tokio::test outside");
    tokio_test_inside().expect("guarded tokio test, tokio::test inside");
}

#[tracing::instrument]
#[distributed_lock(key = "instrument-outside:{id}", ttl = "10s", client = "shapes")]
async fn instrument_outside(id: u32) -> Result<u32, LockError> {
    assert!(held(&format!("instrument-outside:{id}")).await);
    Ok(id)
}

#[distributed_lock(key = "instrument-inside:{id}", ttl = "10s", client = "shapes")]
#[tracing::instrument]
async fn instrument_inside(id: u32) -> Result<u32, LockError> {
    assert!(held(&format!("instrument-inside:{id}")).await);
    Ok(id)
}

#[tokio::test]
async fn stacked_with_tracing_instrument_in_either_order() {
    register();
    assert_eq!(instrument_outside(1).await.expect("instrument outside"), 1);
    assert_eq!(instrument_inside(2).await.expect("instrument inside"), 2);
    // Spawnable: the futures are Send.
    let spawned = tokio::spawn(instrument_inside(3)).await.expect("join");
    assert_eq!(spawned.expect("spawned"), 3);
}
