use lock_runtime::{leader, LockError};

struct Scheduler;

impl Scheduler {
    #[leader(name = "scheduler", ttl = "15s")]
    async fn schedule(self) -> Result<(), LockError> {
        Ok(())
    }
}

fn main() {
    let _ = Scheduler.schedule();
}
