//! Methods of an `#[async_trait]` impl (and a trait's default method): `#[async_trait]`
//! rewrites them first, and the lock goes around the async block inside.
use async_trait::async_trait;
use lock_runtime::{distributed_lock, Backend, LockError};

#[async_trait]
trait Job {
    fn id(&self) -> u32;

    async fn run(&self, n: u32) -> Result<u32, LockError>;

    async fn tick(&self);

    #[distributed_lock(key = "default:{n}", ttl = "10s")]
    async fn by_default(&self, n: u32) -> Result<u32, LockError> {
        Ok(self.id() + n)
    }
}

struct Nightly {
    id: u32,
}

#[async_trait]
impl Job for Nightly {
    fn id(&self) -> u32 {
        self.id
    }

    #[distributed_lock(key = "job:{self.id}:{n}", ttl = "10s", wait = "1s")]
    async fn run(&self, n: u32) -> Result<u32, LockError> {
        tokio::task::yield_now().await;
        Ok(self.id + n)
    }

    #[distributed_lock(key = "tick:{self.id}", ttl = "10s", skip)]
    async fn tick(&self) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).expect("init");
    let job: std::sync::Arc<dyn Job + Send + Sync> = std::sync::Arc::new(Nightly { id: 40 });
    assert_eq!(job.run(2).await.expect("lock"), 42);
    job.tick().await;
    assert_eq!(job.by_default(1).await.expect("lock"), 41);
    // The futures are `Send`, as `#[async_trait]` promises.
    let spawned = tokio::spawn(async move { job.run(3).await });
    assert_eq!(spawned.await.expect("task").expect("lock"), 43);
}
