//! What an acquisition asks for: how long to hold, how long to wait, which client.

use std::time::Duration;

/// How to take one lock.
///
/// `ttl` is required: it is how long the lock outlives a holder that vanished. `wait`
/// defaults to zero (one try); `client` defaults to the registry's default client.
///
/// ```
/// use lock_runtime::LockOptions;
/// use std::time::Duration;
///
/// const OPTIONS: LockOptions = LockOptions::new(Duration::from_secs(10))
///     .wait(Duration::from_millis(500))
///     .client("billing");
/// assert_eq!(OPTIONS.wait_for(), Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    ttl: Duration,
    wait: Duration,
    client: Option<&'static str>,
}

impl LockOptions {
    /// Options with the given time to live, no waiting and the default client.
    pub const fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            wait: Duration::ZERO,
            client: None,
        }
    }

    /// Keep trying for up to `wait` while another owner holds the lock. Zero means one try.
    #[must_use]
    pub const fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Use the client registered under `name` instead of the default one.
    #[must_use]
    pub const fn client(mut self, name: &'static str) -> Self {
        self.client = Some(name);
        self
    }

    /// The time to live.
    pub const fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long to keep trying while the lock is busy.
    pub const fn wait_for(&self) -> Duration {
        self.wait
    }

    /// The registry name of the client, `None` for the default.
    pub const fn client_name(&self) -> Option<&'static str> {
        self.client
    }
}
