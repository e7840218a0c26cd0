use lock_runtime::distributed_lock;

struct Report;

#[distributed_lock(key = "report", ttl = "10s", skip)]
async fn report() -> Report {
    Report
}

fn main() {
    let _ = report();
}
