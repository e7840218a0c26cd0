use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "order:{id}")]
async fn charge(id: u64) -> Result<u64, LockError> {
    Ok(id)
}

fn main() {
    let _ = charge(1);
}
