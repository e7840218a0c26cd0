//! `LockError` as an axum response (lock-runtime's `axum` feature).

use std::time::Duration;

use axum::{http::header::RETRY_AFTER, response::IntoResponse};
use lock_runtime::{LockError, Operation};

#[test]
fn lock_errors_answer_with_the_documented_status_and_retry_after() {
    let key = || "k".to_owned();
    let cases = [
        (
            LockError::Busy {
                key: key(),
                waited: Duration::ZERO,
            },
            423,
            Some("1"),
        ),
        (
            LockError::Recovering {
                key: key(),
                waited: Duration::ZERO,
                left: Duration::from_millis(2500),
            },
            503,
            Some("3"),
        ),
        (LockError::Lost { key: key() }, 503, None),
        (
            LockError::Timeout {
                operation: Operation::Acquire,
                after: Duration::from_secs(1),
            },
            503,
            None,
        ),
        (LockError::NotInitialized { client: None }, 500, None),
        (LockError::InvalidInput("bad".into()), 500, None),
    ];
    for (error, status, retry_after) in cases {
        let shown = error.to_string();
        let response = error.into_response();
        assert_eq!(response.status().as_u16(), status, "{shown}");
        let header = response
            .headers()
            .get(RETRY_AFTER)
            .map(|v| v.to_str().expect("ascii"));
        assert_eq!(header, retry_after, "{shown}");
    }
}
