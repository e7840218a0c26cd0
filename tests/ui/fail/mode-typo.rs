use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "report:{day}", ttl = "10s", mode = "reed")]
async fn report(day: u32) -> Result<u32, LockError> {
    Ok(day)
}

fn main() {
    let _ = report(1);
}
