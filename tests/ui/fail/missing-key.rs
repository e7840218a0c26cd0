use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(ttl = "10s")]
async fn job() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = job();
}
