use lock_runtime::distributed_lock;

#[distributed_lock(key = "count", ttl = "10s")]
async fn count() -> Option<u32> {
    Some(1)
}

fn main() {
    let _ = count();
}
