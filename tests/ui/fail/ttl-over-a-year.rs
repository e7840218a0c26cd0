use lock_runtime::{distributed_lock, LockError};

// The runtime grants leases of at most a year: a longer ttl is refused at compile time,
// not at every call.
#[distributed_lock(key = "archive", ttl = "8761h")]
async fn archive() -> Result<(), LockError> {
    Ok(())
}

fn main() {
    let _ = archive();
}
