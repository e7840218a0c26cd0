//! The failures a store reports that the runtime tells apart: a call that ran out of
//! time, a kind mismatch, unconfirmed replication, no quorum, an unsupported call.

use std::time::Duration;

use super::StoreError;

/// The error a store fails an acquire with when the key is held as another kind of lock
/// (read locks on a semaphore's key, say) or as a semaphore with another permit count; the
/// runtime reports it as [`LockError::InvalidInput`](crate::LockError::InvalidInput), at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindMismatch(pub String);

impl std::fmt::Display for KindMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KindMismatch {}

/// The error of a [`Store`](super::Store) that cannot show or change its locks for operators (the
/// default [`Store::inspect`](super::Store::inspect), [`Store::list`](super::Store::list) and [`Store::force_release`](super::Store::force_release)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this store cannot show or change its locks from outside")
    }
}

impl std::error::Error for Unsupported {}

/// The error a store that bounds its own calls ([`Capabilities::bounds_own_calls`](super::Capabilities::bounds_own_calls)) fails a call
/// with when the bound ran out; the runtime reports it as
/// [`LockError::Timeout`](crate::LockError::Timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimedOut;

impl std::fmt::Display for CallTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store did not answer within the time bound")
    }
}

impl std::error::Error for CallTimedOut {}

/// The error a store fails an acquire or extend with when it wrote the lock but fewer
/// replicas than required confirmed the write in time (see
/// [`BackendBuilder::replicas_acknowledge`](crate::BackendBuilder::replicas_acknowledge));
/// the runtime reports it as [`LockError::NotReplicated`](crate::LockError::NotReplicated).
/// An acquire that fails so has taken the lock back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAcknowledged {
    /// How many replicas confirmed the write.
    pub acknowledged: u32,
    /// How many had to.
    pub wanted: u32,
    /// How long the store waited for them.
    pub timeout: Duration,
}

impl std::fmt::Display for NotAcknowledged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} replicas confirmed the write within {:?}",
            self.acknowledged, self.wanted, self.timeout
        )
    }
}

impl std::error::Error for NotAcknowledged {}

/// The error a store made of several servers (Redlock) fails a call with when too many of
/// them failed or did not answer for a majority to decide; the runtime reports it as
/// [`LockError::NoQuorum`](crate::LockError::NoQuorum).
#[derive(Debug)]
pub struct NoQuorum {
    /// How many servers failed or did not answer in time.
    pub failed: u32,
    /// How many servers the store has.
    pub nodes: u32,
    /// How many must agree.
    pub needed: u32,
    /// One of the servers' errors, if one answered with an error.
    pub source: Option<StoreError>,
}

impl std::fmt::Display for NoQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} servers failed or did not answer; {} must agree",
            self.failed, self.nodes, self.needed
        )
    }
}

impl std::error::Error for NoQuorum {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
