use lock_runtime::{leader, LockError};

#[leader(name = "scheduler", ttl = "15s", wait = "5s")]
async fn schedule() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = schedule();
}
