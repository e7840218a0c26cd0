use lock_runtime::distributed_lock;

#[distributed_lock(key = "cleanup", ttl = "10s")]
async fn cleanup() {}

fn main() {
    let _ = cleanup();
}
