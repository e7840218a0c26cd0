use lock_runtime::{distributed_semaphore, LockError};

#[distributed_semaphore(key = "exports", permits = 3, ttl = "10s", mode = "read")]
async fn export() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = export();
}
