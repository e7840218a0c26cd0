//! Free functions returning `Result` through a custom error, a type alias, `?` and early
//! `return`; any visibility; docs and other attributes kept.
use lock_runtime::{distributed_lock, Backend, LockError};

#[derive(Debug)]
pub enum AppError {
    Lock(LockError),
    Parse(std::num::ParseIntError),
}

impl From<LockError> for AppError {
    fn from(e: LockError) -> Self {
        AppError::Lock(e)
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError::Parse(e)
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// Documented, public, with another attribute kept.
#[must_use = "the amount matters"]
#[distributed_lock(key = "order:{order_id}", ttl = "10s")]
pub async fn charge(order_id: u64, amount: &str) -> AppResult<u64> {
    let cents: u64 = amount.parse()?;
    if cents == 0 {
        return Ok(0);
    }
    Ok(order_id + cents)
}

#[distributed_lock(key = "crate-visible", ttl = "500ms", wait = "1s")]
pub(crate) async fn crate_visible() -> Result<(), LockError> {
    Ok(())
}

#[distributed_lock(key = "boxed", ttl = "1m30s")]
async fn boxed_error() -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    Ok(1)
}

#[distributed_lock(key = "literal {{braces}}", ttl = "2h")]
async fn escaped_braces() -> Result<(), LockError> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    assert_eq!(charge(1, "41").await.unwrap(), 42);
    assert_eq!(charge(1, "0").await.unwrap(), 0);
    assert!(matches!(charge(1, "x").await, Err(AppError::Parse(_))));
    crate_visible().await.unwrap();
    assert_eq!(boxed_error().await.unwrap(), 1);
    escaped_braces().await.unwrap();
}
