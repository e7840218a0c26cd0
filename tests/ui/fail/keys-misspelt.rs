use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(kyes = ["a:{id}", "b:{id}"], ttl = "10s")]
async fn job(id: u64) -> Result<u64, LockError> {
    Ok(id)
}

fn main() {
    let _ = job(1);
}
