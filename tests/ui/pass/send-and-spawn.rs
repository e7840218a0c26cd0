//! A guarded fn whose body is `Send` gives a `Send` future: it can be spawned.
use lock_runtime::{distributed_lock, Backend, LockError};

#[distributed_lock(key = "spawned:{n}", ttl = "1s")]
async fn work(n: u32) -> Result<u32, LockError> {
    tokio::task::yield_now().await;
    Ok(n)
}

#[tokio::main]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    let handle = tokio::spawn(work(5));
    assert_eq!(handle.await.unwrap().unwrap(), 5);
}
