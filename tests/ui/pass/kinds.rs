//! Several keys, read and write modes, and semaphores compile with every other argument,
//! and run on the in-memory store.
use lock_runtime::{distributed_lock, distributed_semaphore, Backend, LockError};

#[derive(Debug, Clone, Copy)]
struct Account {
    id: u32,
}

#[distributed_lock(keys = ["account:{from.id}", "account:{to.id}"], ttl = "10s", wait = "1s", fencing, renew)]
async fn transfer(from: Account, to: Account, cents: u64) -> Result<(Option<u64>, u64), LockError> {
    Ok((lock_runtime::fencing_token_of(&format!("account:{}", to.id)), cents))
}

#[distributed_lock(keys = ["fixed"], ttl = "1s", skip)]
async fn only_one_key() -> u8 {
    7
}

#[distributed_lock(key = "doc:{id}", ttl = "10s", mode = "read")]
async fn read_doc(id: u32) -> Result<u32, LockError> {
    Ok(id)
}

#[distributed_lock(key = "doc:{id}", ttl = "10s", mode = "write", on_lost = "finish")]
async fn write_doc(id: u32) -> Result<u32, LockError> {
    Ok(id + 1)
}

#[distributed_semaphore(key = "exports:{tenant}", permits = 2, ttl = "10s", wait = "1s", or_return = 0)]
async fn export(tenant: u32) -> u32 {
    tenant
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    let (fence, cents) = transfer(Account { id: 1 }, Account { id: 2 }, 5).await.unwrap();
    assert!(fence.is_some());
    assert_eq!(cents, 5);
    assert_eq!(only_one_key().await, 7);
    assert_eq!(read_doc(3).await.unwrap(), 3);
    assert_eq!(write_doc(3).await.unwrap(), 4);
    assert_eq!(export(9).await, 9);
}
