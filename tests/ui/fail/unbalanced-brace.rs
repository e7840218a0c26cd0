use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "order:{order_id", ttl = "10s")]
async fn charge(order_id: u64) -> Result<u64, LockError> {
    Ok(order_id)
}

fn main() {
    let _ = charge(1);
}
