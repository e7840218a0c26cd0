use lock_runtime::{distributed_lock, LockError};

// A wrong argument: the one error is about the argument. The function is still emitted,
// so its callers do not add "cannot find function" errors.
#[distributed_lock(key = "job", ttl = "10s", wiat = "1s")]
async fn job() -> Result<u32, LockError> {
    Ok(1)
}

#[tokio::main]
async fn main() {
    let _: u32 = job().await.unwrap();
}
