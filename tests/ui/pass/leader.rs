//! `#[leader]` on a free function and on a method, with parameters cloned for each run.
use lock_runtime::{leader, Backend, LockError};
use std::sync::Arc;

#[leader(name = "scheduler:{region}", ttl = "15s", on_lost = "finish", lock_delay = "1s")]
async fn schedule(region: String, mut rounds: u32, shared: Arc<Vec<u8>>) -> Result<u64, LockError> {
    rounds += shared.len() as u32;
    let _ = (region, rounds);
    Ok(lock_runtime::fencing_token().unwrap_or_default())
}

struct Compactor {
    name: String,
}

impl Compactor {
    #[leader(name = "compactor:{self.name}", ttl = "15s")]
    async fn run(&self, level: &str) -> Result<usize, LockError> {
        Ok(self.name.len() + level.len())
    }
}

#[tokio::main]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    assert!(schedule("eu".to_owned(), 1, Arc::new(vec![1])).await.unwrap() >= 1);
    let compactor = Compactor { name: "c".to_owned() };
    assert_eq!(compactor.run("l0").await.unwrap(), 3);
}
