use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(keys = ["account:{from}", "account:{too}"], ttl = "10s")]
async fn transfer(from: u32, to: u32) -> Result<(), LockError> {
    let _ = (from, to);
    Ok(())
}

fn main() {
    let _ = transfer(1, 2);
}
