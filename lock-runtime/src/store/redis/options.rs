//! [`RedisOptions`]: what only Redis stores (one server, Sentinel, Cluster, Redlock) are
//! set up with, and [`RedisSettings`], everything a Redis store connects with.

use std::time::Duration;

use crate::{error::LockError, store::ConnectSettings};

/// How long a release-notification channel nobody watches stays subscribed, unless
/// configured otherwise.
pub const DEFAULT_NOTIFICATION_IDLE: Duration = Duration::from_secs(10);

/// The settings only Redis stores have (one server, Sentinel, Cluster, Redlock), given to
/// [`BackendBuilder::redis_options`](crate::BackendBuilder::redis_options); the builder's
/// methods of the same names set them one by one.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{store::RedisOptions, Backend};
/// use std::time::Duration;
///
/// let options = RedisOptions::new()
///     .replicas_acknowledge(1, Duration::from_millis(100))
///     .notification_idle(Duration::from_secs(30));
/// let backend = Backend::builder()
///     .redis_options(options)
///     .redis("redis://10.0.0.5:6379")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisOptions {
    notification_idle: Duration,
    replicas: Option<(u32, Duration)>,
    restart_guard_on_connect: Option<bool>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            notification_idle: DEFAULT_NOTIFICATION_IDLE,
            replicas: None,
            restart_guard_on_connect: None,
        }
    }
}

impl RedisOptions {
    /// The defaults: no replica acknowledgements, [`DEFAULT_NOTIFICATION_IDLE`], the
    /// restart hold on connect for Redlock only.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`BackendBuilder::notification_idle`](crate::BackendBuilder::notification_idle).
    #[must_use]
    pub fn notification_idle(mut self, idle: Duration) -> Self {
        self.notification_idle = idle;
        self
    }

    /// See
    /// [`BackendBuilder::replicas_acknowledge`](crate::BackendBuilder::replicas_acknowledge).
    #[must_use]
    pub fn replicas_acknowledge(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = Some((replicas, timeout));
        self
    }

    /// See
    /// [`BackendBuilder::restart_guard_on_connect`](crate::BackendBuilder::restart_guard_on_connect).
    #[must_use]
    pub fn restart_guard_on_connect(mut self, strict: bool) -> Self {
        self.restart_guard_on_connect = Some(strict);
        self
    }

    /// Everything a Redis store connects with; [`LockError::InvalidInput`] for settings
    /// that cannot work. `strict`: whether the restart hold applies on connect unless set
    /// (Redlock's default).
    pub(crate) fn settings(
        &self,
        common: &ConnectSettings,
        strict: bool,
    ) -> Result<RedisSettings, LockError> {
        if let Some((replicas, timeout)) = self.replicas {
            if replicas == 0 || timeout.is_zero() || timeout >= common.bound {
                return Err(LockError::invalid(format!(
                    "replicas_acknowledge({replicas}, {timeout:?}): the replica count and the \
                     timeout must not be zero, and the timeout must be shorter than the time \
                     bound ({:?})",
                    common.bound
                )));
            }
        }
        Ok(RedisSettings {
            bound: common.bound,
            restart_guard: common.restart_guard,
            health_interval: common.health_interval,
            strict: self.restart_guard_on_connect.unwrap_or(strict),
            notification_idle: self.notification_idle,
            replicas: self.replicas,
        })
    }
}

/// What a Redis store connects with: the settings every connecting store has, and
/// [`RedisOptions`] resolved.
#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    /// The time bound on one call.
    pub(crate) bound: Duration,
    /// The restart hold's floor; `None`: no hold.
    pub(crate) restart_guard: Option<Duration>,
    pub(crate) health_interval: Duration,
    /// Hold at first connect too, for a server up for less than the longest TTL.
    pub(crate) strict: bool,
    pub(crate) notification_idle: Duration,
    /// Grant and extend only once this many replicas confirmed the write, waiting at most
    /// this long (`WAIT`).
    pub(crate) replicas: Option<(u32, Duration)>,
}
