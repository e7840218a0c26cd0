use lock_runtime::distributed_lock;

#[distributed_lock(key = "count", ttl = "10s", skip, or_return = 0)]
async fn count() -> u32 {
    1
}

fn main() {
    let _ = count();
}
