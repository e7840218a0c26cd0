//! What an acquisition asks for: how long to hold, how long to wait, which client, and
//! what to do while the body runs (renewal, fencing, reaction to a lost lease).

use std::time::Duration;

use crate::store::LockKind;

/// How long renewal keeps a lease alive unless [`LockOptions::max_hold`] says otherwise.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(600);

/// How to take one lock.
///
/// `ttl` is required: it is how long the lock outlives a holder that vanished. Everything
/// else has a default: no waiting (one try), the default client, no renewal, no fencing
/// token, and a body that is cancelled when its lease is lost.
///
/// ```
/// use lock_runtime::{LockOptions, OnLost};
/// use std::time::Duration;
///
/// const OPTIONS: LockOptions = LockOptions::new(Duration::from_secs(10))
///     .wait(Duration::from_millis(500))
///     .client("billing")
///     .renew(true)
///     .max_hold(Duration::from_secs(120))
///     .fencing(true)
///     .on_lost(OnLost::Finish);
/// assert_eq!(OPTIONS.wait_for(), Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    ttl: Duration,
    wait: Duration,
    client: Option<&'static str>,
    renew: bool,
    max_hold: Duration,
    fencing: bool,
    on_lost: OnLost,
    lock_delay: Duration,
    function: Option<&'static str>,
    template: Option<&'static str>,
    kind: LockKind,
}

/// Which side of a read-write lock to take ([`LockOptions::mode`]): many readers may hold a
/// key at once, a writer holds it alone.
///
/// A writer that waits keeps new readers out, so a stream of readers cannot starve it
/// (writer preference): on finding readers in the way it marks the key for a second after
/// each try, and readers that come meanwhile wait. Readers already in keep their leases.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockError, LockMode, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let read = LockOptions::new(Duration::from_secs(5)).mode(LockMode::Read);
/// let one = backend.acquire("report", &read).await?;
/// let two = backend.acquire("report", &read).await?; // readers share
/// let write = LockOptions::new(Duration::from_secs(5)); // `LockMode::Write`, the default
/// assert!(matches!(backend.acquire("report", &write).await, Err(LockError::Busy { .. })));
/// one.release().await?;
/// two.release().await?;
/// backend.acquire("report", &write).await?.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockMode {
    /// Alone: no reader and no other writer (the default; a plain lock is a writer).
    #[default]
    Write,
    /// Beside other readers, while no writer holds or waits for the key.
    Read,
}

/// What [`with_lock`](crate::with_lock) (and so `#[distributed_lock]`) does with a body
/// whose lease is lost while it runs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use lock_runtime::{Backend, LockError, LockOptions, OnLost};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// // A 50 ms lease without renewal, and a body that takes longer: the lease is lost.
/// let short = LockOptions::new(Duration::from_millis(50));
/// let slow = tokio::time::sleep(Duration::from_millis(200));
/// let cancelled = backend.with_lock("k", &short, slow).await;
/// assert!(matches!(cancelled, Err(LockError::Lost { .. })));
///
/// let finish = short.on_lost(OnLost::Finish);
/// let mut finished = false;
/// let reported = backend
///     .with_lock("k", &finish, async {
///         tokio::time::sleep(Duration::from_millis(200)).await;
///         finished = true;
///     })
///     .await;
/// assert!(finished && matches!(reported, Err(LockError::Lost { .. })));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnLost {
    /// Drop the body at its next `.await` and return [`LockError::Lost`](crate::LockError::Lost)
    /// at once. The default.
    #[default]
    Cancel,
    /// Let the body run to completion, then return
    /// [`LockError::Lost`](crate::LockError::Lost) instead of its output.
    Finish,
}

impl LockOptions {
    /// Options with the given time to live and every default.
    pub const fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            wait: Duration::ZERO,
            client: None,
            renew: false,
            max_hold: DEFAULT_MAX_HOLD,
            fencing: false,
            on_lost: OnLost::Cancel,
            lock_delay: Duration::ZERO,
            function: None,
            template: None,
            kind: LockKind::Exclusive,
        }
    }

    /// Take the lock as a reader or as a writer ([`LockMode`]); a writer by default.
    #[must_use]
    pub const fn mode(mut self, mode: LockMode) -> Self {
        self.kind = match mode {
            LockMode::Read => LockKind::Read,
            LockMode::Write => LockKind::Exclusive,
        };
        self
    }

    /// Take one of `permits` permits of a semaphore instead of a lock (see
    /// [`Backend::acquire_permit`](crate::Backend::acquire_permit)).
    #[must_use]
    pub const fn permits(mut self, permits: u32) -> Self {
        self.kind = LockKind::Permit { permits };
        self
    }

    /// What kind of lock these options take.
    pub const fn kind(&self) -> LockKind {
        self.kind
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

    /// Keep the lease alive while the body of [`with_lock`](crate::with_lock) runs,
    /// extending it every third of the TTL, until [`max_hold`](Self::max_hold). Renewal
    /// runs as a task of its own, so a body that blocks its thread does not stop it on a
    /// multi-threaded runtime; each extension is raced against the lease end, so a store
    /// that does not answer cannot stretch the lease.
    #[must_use]
    pub const fn renew(mut self, renew: bool) -> Self {
        self.renew = renew;
        self
    }

    /// How long renewal may keep the lock in all ([`DEFAULT_MAX_HOLD`] by default). After
    /// that renewal stops, and the lease runs out one TTL later. `Duration::MAX` renews
    /// for as long as the body runs.
    #[must_use]
    pub const fn max_hold(mut self, max_hold: Duration) -> Self {
        self.max_hold = max_hold;
        self
    }

    /// Issue a fencing token with each acquisition: a number greater than every earlier
    /// acquisition's of the same key, read with [`LockGuard::fencing_token`](crate::LockGuard::fencing_token)
    /// or [`fencing_token`](crate::fencing_token). Costs one counter key per lock name,
    /// kept for an hour after its last use, and a script instead of a plain `SET` to
    /// acquire. On Redis a token is at least the server's clock in microseconds (a `u64`
    /// near 1.8 × 10¹⁵: keep it in a 64-bit column), so tokens keep increasing after the
    /// counter expired or the server restored an older snapshot.
    #[must_use]
    pub const fn fencing(mut self, fencing: bool) -> Self {
        self.fencing = fencing;
        self
    }

    /// What to do with a body whose lease is lost ([`OnLost::Cancel`] by default).
    #[must_use]
    pub const fn on_lost(mut self, on_lost: OnLost) -> Self {
        self.on_lost = on_lost;
        self
    }

    /// Keep the lock unavailable for `delay` after a lease that ended without a release
    /// (Chubby's lock-delay): when the holder crashed, stalled or was cut off, its
    /// requests already on their way to the resource have that long to land or fail
    /// before the next holder starts. A release frees the lock at once, as without a delay.
    /// Zero (the default) turns it off.
    ///
    /// A lease is over without a release when the holder's process died or was cut off
    /// from the store, or when its lease ran out before it was renewed or released. (An
    /// operator's release by force frees the lock at once.) A guard whose lease ran out is not released by this process either, so the
    /// delay holds after it too (its [`release`](crate::LockGuard::release) answers
    /// [`LockError::Lost`](crate::LockError::Lost)). It complements fencing tokens,
    /// which let the resource refuse a late request whatever the delay: see
    /// `docs/safety.md`. Exclusive locks only: a read lock or a permit with a delay is
    /// refused with [`LockError::InvalidInput`](crate::LockError::InvalidInput).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{Backend, LockOptions};
    /// use std::time::Duration;
    ///
    /// let backend = Backend::memory();
    /// let options = LockOptions::new(Duration::from_millis(100)).lock_delay(Duration::from_secs(5));
    /// // Released: free at once.
    /// backend.acquire("job", &options).await?.release().await?;
    /// let guard = backend.acquire("job", &options).await?;
    /// // Its holder vanishes without a release: the lock stays taken for TTL + delay.
    /// std::mem::forget(guard);
    /// tokio::time::sleep(Duration::from_millis(200)).await;
    /// assert!(backend.acquire("job", &options).await.unwrap_err().is_busy());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub const fn lock_delay(mut self, delay: Duration) -> Self {
        self.lock_delay = delay;
        self
    }

    /// The function taking the lock, recorded with each acquisition so operators see who
    /// holds it ([`Holder::function`](crate::Holder::function)); `#[distributed_lock]` sets
    /// the annotated function's module path and name.
    #[must_use]
    pub const fn function(mut self, path: &'static str) -> Self {
        self.function = Some(path);
        self
    }

    /// The lock name's template, the label of this lock's metrics: `#[distributed_lock]`
    /// sets its `key` literal (`"order:{order_id}"`), never the filled-in name, so the
    /// number of label values stays bounded. Without one, metrics carry the label
    /// `"unnamed"` rather than each lock's name.
    #[must_use]
    pub const fn name_template(mut self, template: &'static str) -> Self {
        self.template = Some(template);
        self
    }

    /// The function recorded as the holder, if any.
    pub const fn function_name(&self) -> Option<&'static str> {
        self.function
    }

    /// The lock name's template, if any.
    pub const fn template(&self) -> Option<&'static str> {
        self.template
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

    /// The client's name as events show it: `"default"` for the default client.
    pub(crate) const fn client_label(&self) -> &'static str {
        match self.client {
            Some(name) => name,
            None => "default",
        }
    }

    /// Whether the lease is renewed while the body runs.
    pub const fn renews(&self) -> bool {
        self.renew
    }

    /// How long renewal may keep the lock.
    pub const fn max_hold_for(&self) -> Duration {
        self.max_hold
    }

    /// Whether acquisitions issue fencing tokens.
    pub const fn fenced(&self) -> bool {
        self.fencing
    }

    /// What happens to a body whose lease is lost.
    pub const fn lost_policy(&self) -> OnLost {
        self.on_lost
    }

    /// How long the lock stays unavailable after a lease that ended without a release.
    pub const fn lock_delay_for(&self) -> Duration {
        self.lock_delay
    }
}
