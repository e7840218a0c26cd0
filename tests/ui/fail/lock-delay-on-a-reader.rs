use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "report:{x}", ttl = "10s", mode = "read", lock_delay = "5s")]
async fn read(x: u32) -> Result<u32, LockError> {
    Ok(x)
}

fn main() {
    let _ = read(1);
}
