use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "job", ttl = "10s", renew = true)]
async fn job() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = job();
}
