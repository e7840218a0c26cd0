use lock_runtime::distributed_lock;

struct Jobs;

#[distributed_lock(key = "jobs", ttl = "10s")]
impl Jobs {
    async fn run(&self) {}
}

fn main() {}
