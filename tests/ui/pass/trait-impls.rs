//! `async fn` in trait impls, including a trait that requires a `Send` future.
use std::future::Future;

use lock_runtime::{distributed_lock, Backend, LockError};

trait Job {
    fn run(&self, tick: u64) -> impl Future<Output = Result<u64, LockError>> + Send;
}

trait LocalJob {
    async fn run_local(&self) -> Result<(), LockError>;
}

struct Rollup {
    name: &'static str,
}

impl Job for Rollup {
    #[distributed_lock(key = "job:{self.name}:{tick}", ttl = "10s")]
    async fn run(&self, tick: u64) -> Result<u64, LockError> {
        Ok(tick)
    }
}

impl LocalJob for Rollup {
    #[distributed_lock(key = "local:{self.name}", ttl = "10s")]
    async fn run_local(&self) -> Result<(), LockError> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    let job = Rollup { name: "rollup" };
    assert_eq!(job.run(3).await.unwrap(), 3);
    job.run_local().await.unwrap();
}
