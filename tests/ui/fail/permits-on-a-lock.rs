use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "exports", permits = 3, ttl = "10s")]
async fn export() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = export();
}
