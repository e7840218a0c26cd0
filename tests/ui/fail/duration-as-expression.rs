use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "job", ttl = std::time::Duration::from_secs(10))]
async fn job() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = job();
}
