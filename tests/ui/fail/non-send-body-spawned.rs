use std::rc::Rc;

use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "local", ttl = "10s")]
async fn local() -> Result<usize, LockError> {
    let shared = Rc::new(1);
    tokio::task::yield_now().await;
    Ok(*shared)
}

#[tokio::main]
async fn main() {
    let _ = tokio::spawn(local()).await;
}
