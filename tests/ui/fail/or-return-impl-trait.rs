use axum::{http::StatusCode, response::IntoResponse};
use lock_runtime::distributed_lock;

#[distributed_lock(key = "k", ttl = "10s", or_return = (StatusCode::LOCKED, "busy"))]
async fn handler() -> impl IntoResponse {
    "ok"
}

fn main() {
    let _ = handler();
}
