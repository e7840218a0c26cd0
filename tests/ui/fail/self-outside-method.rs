use lock_runtime::{distributed_lock, LockError};

#[distributed_lock(key = "{self.tenant}:report", ttl = "10s")]
async fn report(tenant: String) -> Result<String, LockError> {
    Ok(tenant)
}

fn main() {
    let _ = report(String::new());
}
