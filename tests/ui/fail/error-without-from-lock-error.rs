use lock_runtime::distributed_lock;

#[derive(Debug)]
struct AppError;

#[distributed_lock(key = "count", ttl = "10s")]
async fn count() -> Result<u32, AppError> {
    Ok(1)
}

fn main() {
    let _ = count();
}
