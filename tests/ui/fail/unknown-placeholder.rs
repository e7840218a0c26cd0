use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "order:{order}", ttl = "10s")]
async fn charge(order_id: u64, cents: u64) -> Result<u64, LockError> {
    Ok(order_id + cents)
}

fn main() {
    let _ = charge(1, 2);
}
