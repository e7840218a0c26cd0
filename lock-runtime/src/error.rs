//! The one error type of the crate.

use std::time::Duration;

use crate::store::{Operation, StoreError};

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
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The store restarted or failed over (this client saw a new server process or a new
    /// replication history), so locks granted before may be gone while their holders still
    /// work. No lock is granted until every such lease must have ended: `left` from the
    /// last try. See [`BackendBuilder::restart_guard`](crate::BackendBuilder::restart_guard).
    #[error(
        "lock `{key}` cannot be granted yet: the lock store restarted or failed over, and \
         leases from before may still run for {left:?} (waited {waited:?})"
    )]
    Recovering {
        /// The lock's name, as given by the caller.
        key: String,
        /// How long this call kept trying.
        waited: Duration,
        /// How much longer the store is held back, as of the last try.
        left: Duration,
    },
    /// The store answered with an error, or the connection to it failed.
    #[error("lock store error during {operation}: {source}")]
    Backend {
        /// What was being done.
        operation: Operation,
        /// The store's own error.
        #[source]
        source: StoreError,
    },
    /// The store took the write, but fewer replicas than required confirmed it in time (see
    /// [`BackendBuilder::replicas_acknowledge`](crate::BackendBuilder::replicas_acknowledge)).
    /// An acquire that fails so did not get the lock (its key was removed again); an extend,
    /// the extension does not count.
    #[error(
        "lock store: {acknowledged} of {wanted} replicas confirmed the {operation} within \
         {waited:?}"
    )]
    NotReplicated {
        /// What was being done: [`Operation::Acquire`] or [`Operation::Extend`].
        operation: Operation,
        /// How many replicas confirmed the write.
        acknowledged: u32,
        /// How many had to.
        wanted: u32,
        /// How long the store waited for them.
        waited: Duration,
    },
    /// Too many servers of a store made of several (Redlock) failed or did not answer in
    /// time for a majority to decide: the lock may or may not have been taken on the others
    /// (an acquire that fails so takes back what it got).
    #[error(
        "lock store: {failed} of {nodes} servers failed or did not answer during {operation}; \
         {needed} must agree"
    )]
    NoQuorum {
        /// What was being done.
        operation: Operation,
        /// How many servers failed or did not answer in time.
        failed: u32,
        /// How many servers the store has.
        nodes: u32,
        /// How many must agree (a majority).
        needed: u32,
        /// One of the servers' errors, if one answered with an error.
        #[source]
        source: Option<StoreError>,
    },
    /// The store did not answer within the client's time bound.
    #[error("lock store did not answer {operation} within {after:?}")]
    Timeout {
        /// What was being done.
        operation: Operation,
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
        None => "no default lock client: call `lock_runtime::init(backend)` (or \
                 `lock_runtime::init_from_env()`) before calling a `#[distributed_lock]` \
                 function or `with_lock`; in tests, from a helper each test calls first. An \
                 attribute above `#[tokio::main]`/`#[tokio::test]` takes the lock before the \
                 body runs, so an `init` inside that body comes too late"
            .to_owned(),
        Some(name) => format!(
            "no lock client named `{name}`: call `lock_runtime::register(\"{name}\", backend)` \
             before calling a function whose attribute says `client = \"{name}\"` (an \
             attribute above `#[tokio::main]`/`#[tokio::test]` takes the lock before the body, \
             and a `register` inside it, runs)"
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
