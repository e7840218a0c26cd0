use lock_runtime::distributed_lock;

#[distributed_lock(key = "answer", ttl = "10s")]
const fn answer() -> u32 {
    42
}

fn main() {
    let _ = answer();
}
