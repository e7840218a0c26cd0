use lock_runtime::{distributed_lock, LockError};

// A `Result` function can report the lock error itself; `skip` has no value to return.
#[distributed_lock(key = "count", ttl = "10s", skip)]
async fn count() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = count();
}
