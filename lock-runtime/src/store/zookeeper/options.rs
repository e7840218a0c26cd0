//! [`ZooKeeperOptions`]: what only the ZooKeeper store is set up with.

use std::time::Duration;

use crate::error::LockError;

/// The ZooKeeper session timeout unless configured otherwise. It is also the shortest TTL a
/// lock on ZooKeeper may ask for.
pub const DEFAULT_ZOOKEEPER_SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// The directory locks live under unless configured otherwise.
const DEFAULT_ROOT: &str = "/locks";

/// The settings only the ZooKeeper store has, given to
/// [`BackendBuilder::zookeeper_options`](crate::BackendBuilder::zookeeper_options); the
/// builder's methods of the same names with a `zookeeper_` prefix set them one by one.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{store::ZooKeeperOptions, Backend};
/// use std::time::Duration;
///
/// let options = ZooKeeperOptions::new()
///     .session_timeout(Duration::from_secs(10))
///     .root("/billing/locks");
/// let backend = Backend::builder()
///     .zookeeper_options(options)
///     .zookeeper("10.0.0.5:2181,10.0.0.6:2181,10.0.0.7:2181")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ZooKeeperOptions {
    session_timeout: Duration,
    root: String,
    curator_write_lock: bool,
}

impl Default for ZooKeeperOptions {
    fn default() -> Self {
        Self {
            session_timeout: DEFAULT_ZOOKEEPER_SESSION_TIMEOUT,
            root: DEFAULT_ROOT.to_owned(),
            curator_write_lock: false,
        }
    }
}

impl ZooKeeperOptions {
    /// The defaults: a [`DEFAULT_ZOOKEEPER_SESSION_TIMEOUT`] session, locks under `/locks`,
    /// exclusive locks as Curator's `InterProcessMutex`.
    pub fn new() -> Self {
        Self::default()
    }

    /// See
    /// [`BackendBuilder::zookeeper_session_timeout`](crate::BackendBuilder::zookeeper_session_timeout).
    #[must_use]
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// See [`BackendBuilder::zookeeper_root`](crate::BackendBuilder::zookeeper_root).
    #[must_use]
    pub fn root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    /// See
    /// [`BackendBuilder::zookeeper_curator_write_lock`](crate::BackendBuilder::zookeeper_curator_write_lock).
    #[must_use]
    pub fn curator_write_lock(mut self, write_lock: bool) -> Self {
        self.curator_write_lock = write_lock;
        self
    }

    /// [`LockError::InvalidInput`] for settings that cannot work.
    pub(crate) fn check(&self) -> Result<(), LockError> {
        if self.session_timeout.is_zero() {
            return Err(LockError::invalid(
                "the ZooKeeper session timeout must not be zero",
            ));
        }
        Ok(())
    }
}

impl super::ZooKeeperSettings {
    /// What the store at `hosts` connects with: `options`, and `bound` on connecting.
    pub(crate) fn new(hosts: &str, options: &ZooKeeperOptions, bound: Duration) -> Self {
        Self {
            hosts: hosts.to_owned(),
            root: options.root.clone(),
            session_timeout: options.session_timeout,
            bound,
            rw_writers: options.curator_write_lock,
        }
    }
}
