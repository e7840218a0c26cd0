//! How a store call fails ([`StoreError`]) and what it was doing ([`Operation`]).
//!
//! The runtime tells the failures apart by variant: a call that ran out of time becomes
//! [`LockError::Timeout`](crate::LockError::Timeout), a kind mismatch
//! [`LockError::InvalidInput`](crate::LockError::InvalidInput), and so on; everything a
//! store's driver reports is [`StoreError::Other`], kept whole (its message and its
//! `source()` chain) and cheap to clone.

use std::{fmt, sync::Arc, time::Duration};

/// Why a [`Store`](super::Store) call failed.
///
/// ```
/// use lock_runtime::store::StoreError;
///
/// let error = StoreError::from("the server said no");
/// assert!(matches!(error, StoreError::Other(_)));
/// assert_eq!(error.to_string(), "the server said no");
/// assert!(matches!(error.clone(), StoreError::Other(_)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer within the time bound (a store that bounds its own calls,
    /// [`Capabilities::bounds_own_calls`](super::Capabilities::bounds_own_calls), says so
    /// itself; for the others the runtime's timer does). Reported as
    /// [`LockError::Timeout`](crate::LockError::Timeout).
    TimedOut,
    /// The key is held as another kind of lock (read locks on a semaphore's key, say) or as
    /// a semaphore with another permit count; the message says which. Reported as
    /// [`LockError::InvalidInput`](crate::LockError::InvalidInput), at once.
    KindMismatch(String),
    /// The store wrote the lock, but fewer replicas than required confirmed the write in
    /// time (see [`BackendBuilder::replicas_acknowledge`](crate::BackendBuilder::replicas_acknowledge)).
    /// An acquire that fails so has taken the lock back. Reported as
    /// [`LockError::NotReplicated`](crate::LockError::NotReplicated).
    NotAcknowledged {
        /// How many replicas confirmed the write.
        acknowledged: u32,
        /// How many had to.
        wanted: u32,
        /// How long the store waited for them.
        timeout: Duration,
    },
    /// Too many servers of a store made of several (Redlock) failed or did not answer for
    /// a majority to decide. Reported as [`LockError::NoQuorum`](crate::LockError::NoQuorum).
    NoQuorum {
        /// How many servers failed or did not answer in time.
        failed: u32,
        /// How many servers the store has.
        nodes: u32,
        /// How many must agree.
        needed: u32,
        /// One of the servers' errors, if one answered with an error.
        source: Option<Box<StoreError>>,
    },
    /// The store cannot do this call at all (see [`Capabilities`](super::Capabilities));
    /// the runtime refuses such calls before they reach the store where it can.
    Unsupported,
    /// Anything else: the connection failed, the server answered with an error, a reply
    /// made no sense. The driver's own error, shared.
    Other(Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// Wraps a driver's error as [`StoreError::Other`].
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Other(Arc::new(error))
    }

    /// The driver's error of [`StoreError::Other`], if it is an `E` (a
    /// `redis::RedisError`, a `tokio_postgres::Error`, ...).
    pub fn driver_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Other(error) => error.downcast_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("the store did not answer within the time bound"),
            Self::KindMismatch(message) => f.write_str(message),
            Self::NotAcknowledged {
                acknowledged,
                wanted,
                timeout,
            } => write!(
                f,
                "{acknowledged} of {wanted} replicas confirmed the write within {timeout:?}"
            ),
            Self::NoQuorum {
                failed,
                nodes,
                needed,
                ..
            } => write!(
                f,
                "{failed} of {nodes} servers failed or did not answer; {needed} must agree"
            ),
            Self::Unsupported => f.write_str("this store cannot do this"),
            Self::Other(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NoQuorum {
                source: Some(source),
                ..
            } => Some(&**source),
            // The driver's error stands in for this one (its message is ours), so its
            // causes come next.
            Self::Other(error) => error.source(),
            _ => None,
        }
    }
}

/// A message of the store's own (a reply that made no sense, say).
impl From<String> for StoreError {
    fn from(message: String) -> Self {
        Self::other(Message(message))
    }
}

impl From<&str> for StoreError {
    fn from(message: &str) -> Self {
        Self::from(message.to_owned())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        Self::other(error)
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for StoreError {
    fn from(error: redis::RedisError) -> Self {
        // The cluster client's `redis_cluster: Unable to send command` (or receive): its
        // background task, which every command goes through, has ended.
        if error.to_string().contains("redis_cluster: Unable to") {
            return Self::other(Worded {
                words: "the Redis Cluster connection has stopped (its task ended, every node \
                        failed or was dropped); the next call opens a new one",
                source: Box::new(error),
            });
        }
        Self::other(error)
    }
}

#[cfg(feature = "redis")]
impl From<redis::ParsingError> for StoreError {
    fn from(error: redis::ParsingError) -> Self {
        Self::other(error)
    }
}

#[cfg(feature = "postgres")]
impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::other(error)
    }
}

#[cfg(feature = "zookeeper")]
impl From<zookeeper_client::Error> for StoreError {
    fn from(error: zookeeper_client::Error) -> Self {
        use zookeeper_client::Error as Zk;
        // The driver's words for the session's troubles, in the library's.
        let words = match &error {
            Zk::ConnectionLoss => "the connection to ZooKeeper was lost during the call",
            Zk::SessionExpired => "the ZooKeeper session expired: its locks are gone",
            Zk::ClientClosed => "the ZooKeeper session was closed",
            Zk::AuthFailed => "ZooKeeper refused the session's authentication",
            // `expect error state, got SyncConnected`: the session came back while the call
            // was failing.
            Zk::UnexpectedError(message) if message.starts_with("expect error state") => {
                "the ZooKeeper session changed state during the call (it reconnected while \
                 the call failed); the call did not happen and may be tried again"
            }
            _ => return Self::other(error),
        };
        Self::other(Worded {
            words,
            source: Box::new(error),
        })
    }
}

/// A driver's error told in the library's words, the driver's kept as its source.
#[derive(Debug)]
#[cfg(any(feature = "redis", feature = "zookeeper"))]
struct Worded {
    words: &'static str,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

#[cfg(any(feature = "redis", feature = "zookeeper"))]
impl fmt::Display for Worded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (the driver said: {})", self.words, self.source)
    }
}

#[cfg(any(feature = "redis", feature = "zookeeper"))]
impl std::error::Error for Worded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A plain message as an error.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// What a store call was doing when it failed, as errors, traces and the metrics'
/// `operation` label name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Connecting to the store (or checking it at start).
    Connect,
    /// Taking a lock (one try).
    Acquire,
    /// Giving a lock back (or a waiting writer's mark).
    Release,
    /// Renewing a lease.
    Extend,
    /// Asking the store to tell waiters of a release.
    Watch,
    /// An operator's look at one lock.
    Inspect,
    /// An operator's listing of locks.
    List,
    /// An operator's deletion of a lock.
    ForceRelease,
    /// An operator's check of the store's set-up (`lockctl doctor`).
    Diagnose,
}

impl Operation {
    /// Every operation, in the order of their discriminants (the metrics keep one set of
    /// instruments per operation).
    #[cfg_attr(not(any(test, feature = "metrics")), allow(dead_code))]
    pub(crate) const ALL: [Operation; 9] = [
        Self::Connect,
        Self::Acquire,
        Self::Release,
        Self::Extend,
        Self::Watch,
        Self::Inspect,
        Self::List,
        Self::ForceRelease,
        Self::Diagnose,
    ];

    /// The operation's name: `connect`, `acquire`, `release`, `extend`, `watch`,
    /// `inspect`, `list`, `force_release` or `diagnose`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Acquire => "acquire",
            Self::Release => "release",
            Self::Extend => "extend",
            Self::Watch => "watch",
            Self::Inspect => "inspect",
            Self::List => "list",
            Self::ForceRelease => "force_release",
            Self::Diagnose => "diagnose",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_order_of_all() {
        for (at, operation) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(operation as usize, at, "{operation}");
        }
        let names: std::collections::HashSet<_> =
            Operation::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(names.len(), Operation::ALL.len());
    }

    #[test]
    fn a_driver_error_keeps_its_message_and_causes_and_clones() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = StoreError::from(io);
        let copy = error.clone();
        assert_eq!(copy.to_string(), "refused");
        let no_quorum = StoreError::NoQuorum {
            failed: 2,
            nodes: 3,
            needed: 2,
            source: Some(Box::new(error)),
        };
        let source = std::error::Error::source(&no_quorum).expect("a source");
        assert_eq!(source.to_string(), "refused");
        assert_eq!(
            no_quorum.to_string(),
            "2 of 3 servers failed or did not answer; 2 must agree"
        );
    }
}

#[cfg(all(test, any(feature = "redis", feature = "zookeeper")))]
mod worded_tests {
    use super::StoreError;

    #[cfg(feature = "zookeeper")]
    #[test]
    fn zookeeper_session_troubles_are_told_in_the_librarys_words() {
        use std::error::Error as _;
        use zookeeper_client::Error as Zk;
        let raced = Zk::UnexpectedError("expect error state, got SyncConnected".into());
        let told = StoreError::from(raced);
        let text = told.to_string();
        assert!(
            text.starts_with("the ZooKeeper session changed state during the call"),
            "{text}"
        );
        assert!(
            text.contains("expect error state, got SyncConnected"),
            "{text}"
        );
        let source = told.source().expect("the driver's error");
        assert!(source.downcast_ref::<Zk>().is_some(), "{source:?}");
        assert!(StoreError::from(Zk::ConnectionLoss)
            .to_string()
            .starts_with("the connection to ZooKeeper was lost"));
        // Errors that say enough alone stay as they are.
        assert_eq!(
            StoreError::from(Zk::NoNode).to_string(),
            Zk::NoNode.to_string()
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_stopped_cluster_connection_is_told_in_the_librarys_words() {
        let stopped = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "redis_cluster: Unable to send command",
        ));
        let text = StoreError::from(stopped).to_string();
        assert!(
            text.starts_with("the Redis Cluster connection has stopped"),
            "{text}"
        );
        assert!(text.contains("Unable to send command"), "{text}");
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let plain = refused.to_string();
        assert_eq!(StoreError::from(refused).to_string(), plain);
    }
}
