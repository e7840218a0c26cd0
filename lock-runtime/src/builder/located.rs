//! Connect failures told with the store and the address they are about: a driver's
//! `Connection refused (os error 111)` names neither.

use std::fmt;

use crate::{
    error::LockError,
    store::{Operation, StoreError},
};

/// The driver's error of a failed connect, with where it was going.
#[derive(Debug)]
struct Unreachable {
    /// The store's name for people: `Redis`, `Redis Cluster`, `ZooKeeper`, ...
    store: &'static str,
    /// Where it was going, without secrets (a URL with its password taken out, or hosts).
    address: String,
    source: StoreError,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.store, self.address, self.source)
    }
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `error`, if it is a failed connect, told as one to `store` at `address` (which must
/// hold no secret): on the error itself, or on the server's error behind a missing quorum.
pub(super) fn located(store: &'static str, address: &str, error: LockError) -> LockError {
    match error {
        LockError::Backend {
            operation: Operation::Connect,
            source,
        } => LockError::Backend {
            operation: Operation::Connect,
            source: StoreError::other(Unreachable {
                store,
                address: address.to_owned(),
                source,
            }),
        },
        // A store of several servers (Redlock): the servers, on the error behind the count.
        LockError::NoQuorum {
            operation: Operation::Connect,
            failed,
            nodes,
            needed,
            source,
        } => LockError::NoQuorum {
            operation: Operation::Connect,
            failed,
            nodes,
            needed,
            source: Some(StoreError::other(Unreachable {
                store,
                address: address.to_owned(),
                source: source.unwrap_or(StoreError::TimedOut),
            })),
        },
        other => other,
    }
}
