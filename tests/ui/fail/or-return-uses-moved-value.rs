use lock_runtime::distributed_lock;

// The body takes `name`; the fallback cannot use it as well.
#[distributed_lock(key = "greet", ttl = "10s", or_return = name)]
async fn greet(name: String) -> String {
    name
}

fn main() {
    let _ = greet(String::new());
}
