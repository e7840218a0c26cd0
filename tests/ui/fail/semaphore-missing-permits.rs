use lock_runtime::{distributed_semaphore, LockError};

#[distributed_semaphore(key = "exports", ttl = "10s")]
async fn export() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = export();
}
