//! `crate = "..."` names the runtime when the dependency goes by another name (here an
//! `extern crate` alias; the workspace member `tests/renamed` does it with a renamed
//! dependency in Cargo.toml, where no `lock_runtime` exists at all).
extern crate lock_runtime as locks;

use locks::{distributed_lock, Backend, LockError};

#[distributed_lock(key = "job:{id}", ttl = "10s", crate = "locks")]
async fn job(id: u32) -> Result<u32, LockError> {
    Ok(id)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    locks::init(Backend::memory()).expect("init");
    assert_eq!(job(3).await.expect("lock"), 3);
}
