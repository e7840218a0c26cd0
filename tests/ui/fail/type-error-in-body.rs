use lock_runtime::{distributed_lock, LockError};

// A type error in the body points at the user's code, as without the attribute.
#[distributed_lock(key = "job", ttl = "10s")]
async fn job() -> Result<u32, LockError> {
    let n: u32 = "one";
    Ok(n)
}

fn main() {
    let _ = job();
}
