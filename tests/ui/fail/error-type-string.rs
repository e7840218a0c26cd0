use lock_runtime::distributed_lock;

// `String` has no `From<LockError>`: the message says what to do instead.
#[distributed_lock(key = "count", ttl = "10s")]
async fn count() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = count();
}
