use lock_runtime::{distributed_lock, LockError};

struct OrderId(u64);

#[distributed_lock(key = "order:{id}", ttl = "10s")]
async fn charge(id: OrderId) -> Result<u64, LockError> {
    Ok(id.0)
}

fn main() {
    let _ = charge(OrderId(1));
}
