use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "job", ttl = "99999999999999999h")]
async fn job() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = job();
}
