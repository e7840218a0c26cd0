use lock_runtime::{distributed_lock, LockError};

const KEY: &str = "job";

#[distributed_lock(key = KEY, ttl = "10s")]
async fn job() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = job();
}
