//! The longest ttl the macro accepts (a year) is one the runtime grants.
use lock_runtime::{distributed_lock, Backend, LockError};

#[distributed_lock(key = "archive", ttl = "8760h")]
async fn archive() -> Result<u32, LockError> {
    Ok(7)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).expect("init");
    assert_eq!(archive().await.expect("granted"), 7);
}
