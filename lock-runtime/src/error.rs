//! The one error type of the crate.

use std::time::Duration;

/// The error a store implementation reports; the runtime wraps it in [`LockError::Backend`].
pub type StoreError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a lock operation failed.
///
/// Every public failure of this crate is one of these variants; none of them is ever
/// reported as another (a store error is never "busy", a timeout is never a store error).
///
/// ```
/// use lock_runtime::LockError;
///
/// fn status(err: &LockError) -> u16 {
///     match err {
///         LockError::Busy { .. } => 409,
///         LockError::Lost { .. } => 503,
///         _ => 500,
///     }
/// }
/// # assert_eq!(status(&LockError::Lost { key: "k".into() }), 503);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another owner held the lock for the whole `wait` (or at the one try when `wait` is zero).
    #[error("lock `{key}` is busy (waited {waited:?})")]
    Busy {
        /// The lock's name, as given by the caller (without the store prefix).
        key: String,
        /// How long this call kept trying.
        waited: Duration,
    },
    /// The lease ran out or the lock was taken by another owner while we believed we held it.
    #[error("lock `{key}` was lost: its lease ran out or another owner took it")]
    Lost {
        /// The lock's name, as given by the caller.
        key: String,
    },
    /// The store answered with an error, or the connection to it failed.
    #[error("lock store error during {operation}: {source}")]
    Backend {
        /// What was being done: `connect`, `acquire`, `release`, `extend`.
        operation: &'static str,
        /// The store's own error.
        #[source]
        source: StoreError,
    },
    /// The store did not answer within the client's time bound.
    #[error("lock store did not answer {operation} within {after:?}")]
    Timeout {
        /// What was being done: `connect`, `acquire`, `release`, `extend`.
        operation: &'static str,
        /// The bound that ran out.
        after: Duration,
    },
    /// No client was registered under the name asked for (or no default client yet).
    #[error("{}", not_initialized_message(.client.as_deref()))]
    NotInitialized {
        /// The client name asked for; `None` for the default client.
        client: Option<String>,
    },
    /// A client with this name was registered already; clients are set once.
    #[error("{}", already_registered_message(.client.as_deref()))]
    AlreadyRegistered {
        /// The name; `None` for the default client.
        client: Option<String>,
    },
    /// The caller passed something unusable: an empty key, a zero TTL, a malformed URL, ...
    #[error("invalid lock input: {0}")]
    InvalidInput(String),
}

fn not_initialized_message(client: Option<&str>) -> String {
    match client {
        None => "no default lock client: call `lock_runtime::init(backend)` or \
                 `lock_runtime::init_from_env()` first"
            .to_owned(),
        Some(name) => format!(
            "no lock client named `{name}`: call `lock_runtime::register(\"{name}\", backend)` first"
        ),
    }
}

fn already_registered_message(client: Option<&str>) -> String {
    match client {
        None => "the default lock client was already initialised".to_owned(),
        Some(name) => format!("a lock client named `{name}` was already registered"),
    }
}

impl LockError {
    /// True for [`LockError::Busy`].
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy { .. })
    }

    /// True for [`LockError::Lost`].
    pub fn is_lost(&self) -> bool {
        matches!(self, Self::Lost { .. })
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }
}
