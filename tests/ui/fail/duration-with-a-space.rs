use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "job", ttl = "10 s")]
async fn job() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = job();
}
