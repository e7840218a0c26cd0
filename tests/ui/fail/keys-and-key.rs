use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "account:{from}", keys = ["account:{from}", "account:{to}"], ttl = "10s")]
async fn transfer(from: u32, to: u32) -> Result<(), LockError> {
    let _ = (from, to);
    Ok(())
}

fn main() {
    let _ = transfer(1, 2);
}
