use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(keys = ["a:{x}", "b:{x}"], ttl = "10s", mode = "read")]
async fn both(x: u32) -> Result<u32, LockError> {
    Ok(x)
}

fn main() {
    let _ = both(1);
}
