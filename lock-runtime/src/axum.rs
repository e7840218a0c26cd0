//! `LockError` as an axum response, behind the `axum` feature, so a handler can return
//! `Result<impl IntoResponse, LockError>` (or an error of its own that converts):
//!
//! | error | status | headers |
//! |---|---|---|
//! | [`Busy`](LockError::Busy) | 423 Locked | `Retry-After: 1` |
//! | [`Recovering`](LockError::Recovering) | 503 Service Unavailable | `Retry-After`: the hold left, in whole seconds, at least 1 |
//! | [`Lost`](LockError::Lost), [`Backend`](LockError::Backend), [`Timeout`](LockError::Timeout), [`NotReplicated`](LockError::NotReplicated), [`NoQuorum`](LockError::NoQuorum) | 503 Service Unavailable | |
//! | anything else (a programming or configuration error) | 500 Internal Server Error | |
//!
//! The body is the error's message, which names the lock but never a secret.
//!
//! ```
//! use axum_core::response::IntoResponse;
//! use lock_runtime::{distributed_lock, LockError};
//!
//! #[distributed_lock(key = "report:{id}", ttl = "10s")]
//! async fn report(id: u64) -> Result<impl IntoResponse, LockError> {
//!     Ok(format!("report {id}"))
//! }
//!
//! let busy = LockError::Busy { key: "report:7".into(), waited: std::time::Duration::ZERO };
//! assert_eq!(busy.into_response().status(), 423);
//! ```

use axum_core::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use crate::error::LockError;

impl IntoResponse for LockError {
    fn into_response(self) -> Response {
        let (status, retry_after) = match &self {
            LockError::Busy { .. } => (StatusCode::LOCKED, Some(1)),
            LockError::Recovering { left, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(left.as_secs() + u64::from(left.subsec_nanos() > 0)).map(|s| s.max(1)),
            ),
            LockError::Lost { .. }
            | LockError::Backend { .. }
            | LockError::Timeout { .. }
            | LockError::NotReplicated { .. }
            | LockError::NoQuorum { .. } => (StatusCode::SERVICE_UNAVAILABLE, None),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        let mut response = (status, self.to_string()).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
