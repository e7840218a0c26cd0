use async_trait::async_trait;
use lock_runtime::{distributed_lock, LockError};

#[async_trait]
trait Job {
    async fn run(&self, n: u32, _: u64) -> Result<u32, LockError>;
}

struct Nightly;

#[async_trait]
impl Job for Nightly {
    #[distributed_lock(key = "job:{m}", ttl = "10s")]
    async fn run(&self, n: u32, _: u64) -> Result<u32, LockError> {
        Ok(n)
    }
}

fn main() {}
