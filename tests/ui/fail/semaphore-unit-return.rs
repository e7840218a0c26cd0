use lock_runtime::distributed_semaphore;

#[distributed_semaphore(key = "exports", permits = 3, ttl = "10s")]
async fn export() {}

fn main() {
    let _ = export();
}
