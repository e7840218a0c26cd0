//! Functions that cannot return the error say what happens instead.
use std::time::Duration;

use lock_runtime::{distributed_lock, Backend, LockOptions};

#[distributed_lock(key = "tick", ttl = "1s", skip)]
async fn tick(ran: &mut bool) {
    *ran = true;
}

#[distributed_lock(key = "count", ttl = "1s", skip)]
async fn count() -> u32 {
    7
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ran,
    Skipped,
}

#[distributed_lock(key = "outcome", ttl = "1s", or_return = Outcome::Skipped)]
async fn outcome() -> Outcome {
    Outcome::Ran
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    let options = LockOptions::new(Duration::from_secs(5));

    let mut ran = false;
    tick(&mut ran).await;
    assert!(ran);
    let held = lock_runtime::acquire("tick", &options).await.unwrap();
    let mut ran = false;
    tick(&mut ran).await;
    assert!(!ran, "the body ran without the lock");
    held.release().await.unwrap();

    let held = lock_runtime::acquire("count", &options).await.unwrap();
    assert_eq!(count().await, 0);
    held.release().await.unwrap();
    assert_eq!(count().await, 7);

    let held = lock_runtime::acquire("outcome", &options).await.unwrap();
    assert_eq!(outcome().await, Outcome::Skipped);
    held.release().await.unwrap();
    assert_eq!(outcome().await, Outcome::Ran);
}
