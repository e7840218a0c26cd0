//! Renewal with a bound, fencing tokens read by the body, and the run-to-completion policy.
use lock_runtime::{distributed_lock, Backend, LockError};

#[distributed_lock(key = "ledger:{account}", ttl = "300ms", renew, max_hold = "1m", fencing)]
async fn append(account: u32) -> Result<Option<u64>, LockError> {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // outlives one TTL
    Ok(lock_runtime::fencing_token())
}

#[distributed_lock(key = "report", ttl = "10s", on_lost = "finish", renew)]
async fn report() -> Result<(), LockError> {
    Ok(())
}

#[distributed_lock(key = "cancel", ttl = "10s", on_lost = "cancel")]
async fn cancel() -> Result<(), LockError> {
    Ok(())
}

#[tokio::main]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    let first = append(1).await.unwrap().unwrap();
    let second = append(1).await.unwrap().unwrap();
    assert!(second > first);
    report().await.unwrap();
    cancel().await.unwrap();
}
