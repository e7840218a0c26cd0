//! An axum handler with destructured extractors: the key names what the patterns bind.
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use lock_runtime::{distributed_lock, Backend, LockError};

#[derive(Clone)]
struct App {
    bank: &'static str,
}

#[distributed_lock(key = "{bank}:acct:{id}", ttl = "10s")]
async fn withdraw(
    Path(id): Path<u64>,
    State(App { bank }): State<App>,
) -> Result<String, LockError> {
    Ok(format!("{bank} {id}"))
}

/// `impl IntoResponse` handlers return `Result<impl IntoResponse, LockError>`: with
/// lock-runtime's `axum` feature a lock error answers 423 or 503 by itself.
#[distributed_lock(key = "report:{id}", ttl = "10s")]
async fn report(Path(id): Path<u64>) -> Result<impl IntoResponse, LockError> {
    Ok((StatusCode::OK, format!("report {id}")))
}

/// Tuples, `mut` and `ref` bindings too.
#[distributed_lock(key = "pair:{a}:{b}:{c}", ttl = "10s")]
async fn pair((a, mut b): (u32, u32), ref c: String) -> Result<u32, LockError> {
    b += a;
    Ok(b + c.len() as u32)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).expect("init");
    let _router: Router = Router::new()
        .route("/accounts/{id}/withdraw", post(withdraw))
        .route("/reports/{id}", get(report))
        .with_state(App { bank: "b" });
    let answer = withdraw(Path(7), State(App { bank: "b" })).await.expect("lock");
    assert_eq!(answer, "b 7");
    assert_eq!(pair((1, 2), "xy".into()).await.expect("lock"), 5);
}
