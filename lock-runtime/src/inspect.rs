//! For operators: who holds a lock, every held lock, following one lock's holders, and
//! clearing a stuck lock. None of these take or wait for a lock; `lockctl` is built on them.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    backend::{check_name, store_failure, Backend},
    error::LockError,
    holder::{self, LockInfo, Sharer},
    store::{Operation, StoredLock, Watch},
};

/// How often [`LockWatch`] looks at its lock when no release notification came: a new
/// holder sends none.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(100);

impl Backend {
    /// Who holds the lock `name` and for how long yet, or `None` if it is free: its one
    /// holder, or for a key held by readers of a read-write lock or a semaphore's permits,
    /// each of them ([`LockInfo::sharers`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{Backend, LockOptions};
    /// use std::time::Duration;
    ///
    /// let backend = Backend::memory();
    /// assert!(backend.inspect("job").await?.is_none());
    /// let guard = backend.acquire("job", &LockOptions::new(Duration::from_secs(30))).await?;
    /// let info = backend.inspect("job").await?.expect("held");
    /// assert!(info.remaining.expect("a lease") <= Duration::from_secs(30));
    /// assert_eq!(info.holder.expect("a record").pid, std::process::id());
    /// # Ok(()) }
    /// ```
    pub async fn inspect(&self, name: &str) -> Result<Option<LockInfo>, LockError> {
        check_name(name)?;
        let key = self.key_for(name);
        let stored = self
            .bounded(
                Operation::Inspect,
                self.operators(Operation::Inspect)?.inspect(&key),
            )
            .await?;
        Ok(stored.map(|stored| self.info(stored)))
    }

    /// Every held lock whose name matches the glob `pattern` (`*` any run of characters,
    /// `?` one, `\` quotes the next; `*` for all), by name. On Redis this walks the keys
    /// with `SCAN` (never `KEYS`), each step bounded in time, so it does not block the
    /// server; the whole listing is bounded by twenty time bounds. Keys held by readers or
    /// a semaphore's permits are listed with their holders.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{Backend, LockOptions};
    /// use std::time::Duration;
    ///
    /// let backend = Backend::memory();
    /// let options = LockOptions::new(Duration::from_secs(30));
    /// let _a = backend.acquire("order:1", &options).await?;
    /// let _b = backend.acquire("order:2", &options).await?;
    /// let _c = backend.acquire("invoice:1", &options).await?;
    /// let names: Vec<String> = backend.list("order:*").await?.into_iter().map(|l| l.name).collect();
    /// assert_eq!(names, ["order:1", "order:2"]);
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, pattern: &str) -> Result<Vec<LockInfo>, LockError> {
        let keys = self.key_for(pattern);
        let all = self.op_timeout().saturating_mul(20);
        let operators = self.operators(Operation::List)?;
        let listing = tokio::time::timeout(all, operators.list(&keys));
        let stored = match listing.await {
            Ok(stored) => stored
                .map_err(|source| store_failure(Operation::List, self.op_timeout(), source))?,
            Err(_) => {
                return Err(LockError::Timeout {
                    operation: Operation::List,
                    after: all,
                })
            }
        };
        let mut found: Vec<LockInfo> = stored.into_iter().map(|s| self.info(s)).collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// Deletes the lock `name` whoever holds it, wakes its waiters, and returns who held it
    /// (`None` if it was free). For an operator clearing a stuck lock: the holder is not
    /// told until its next renewal or release, which then report the lease lost; a body
    /// still running may overlap with the next holder's, so prefer waiting for the lease
    /// to end when the holder may be alive. A key held by readers or a semaphore's permits
    /// is left as it is, with [`LockError::InvalidInput`] saying how many hold it.
    pub async fn force_release(&self, name: &str) -> Result<Option<LockInfo>, LockError> {
        check_name(name)?;
        let key = self.key_for(name);
        let stored = self
            .bounded(
                Operation::ForceRelease,
                self.operators(Operation::ForceRelease)?.force_release(&key),
            )
            .await?;
        if let Some(stored) = &stored {
            tracing::warn!(key = name, held_by = %stored.value, "lock released by force");
        }
        Ok(stored.map(|stored| self.info(stored)))
    }

    /// Follows the holders of the lock `name`: see [`LockWatch`].
    pub async fn watch_lock(&self, name: &str) -> Result<LockWatch, LockError> {
        check_name(name)?;
        let key: Arc<str> = self.key_for(name).into();
        let watch = self
            .bounded(Operation::Watch, self.store().watch(&key, None))
            .await?;
        Ok(LockWatch {
            backend: self.clone(),
            name: name.to_owned(),
            watch,
            interval: DEFAULT_WATCH_INTERVAL,
            last: None,
            started: false,
        })
    }

    fn info(&self, stored: StoredLock) -> LockInfo {
        let (token, holder) = if stored.kind.is_shared() {
            (String::new(), None)
        } else {
            holder::parse(&stored.value)
        };
        let sharers = stored
            .sharers
            .iter()
            .map(|share| {
                let (token, holder) = holder::parse(&share.value);
                Sharer {
                    token,
                    holder,
                    remaining: share.remaining,
                }
            })
            .collect();
        LockInfo {
            name: self.name_in(&stored.key).to_owned(),
            kind: stored.kind,
            token,
            holder,
            remaining: stored.remaining,
            fence_counter: stored.fence,
            sharers,
        }
    }
}

/// Who holds the lock `name` in the default client, or `None` if it is free (see
/// [`Backend::inspect`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::Backend;
///
/// lock_runtime::init(Backend::memory())?;
/// assert_eq!(lock_runtime::inspect("order:7").await?, None);
/// # Ok(()) }
/// ```
pub async fn inspect(name: &str) -> Result<Option<LockInfo>, LockError> {
    crate::client(None)?.inspect(name).await
}

/// Who holds a lock, to tell a change: the exclusive holder's token, or the shared
/// holders' tokens.
fn holders_of(info: &LockInfo) -> String {
    let mut tokens: Vec<&str> = info.sharers.iter().map(|s| s.token.as_str()).collect();
    tokens.sort_unstable();
    let mut all = info.token.clone();
    for token in tokens {
        all.push(' ');
        all.push_str(token);
    }
    all
}

/// The holders of one lock as they change ([`Backend::watch_lock`]): each
/// [`next`](Self::next) returns once the lock has a new holder (on a shared key: once a
/// reader or permit holder joined or left) or became free. A release
/// is seen as soon as its notification arrives; a new holder, an expiry or a force release
/// within the watch interval.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let mut watch = backend.watch_lock("job").await?;
/// assert_eq!(watch.next().await?, None); // free when the watch starts
/// let guard = backend.acquire("job", &LockOptions::new(Duration::from_secs(5))).await?;
/// assert_eq!(watch.next().await?.expect("held").token, guard.token().as_str());
/// guard.release().await?;
/// assert_eq!(watch.next().await?, None);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LockWatch {
    backend: Backend,
    name: String,
    watch: Watch,
    interval: Duration,
    /// The holders' tokens last reported.
    last: Option<String>,
    started: bool,
}

impl LockWatch {
    /// Looks at the lock every `interval` when no notification came
    /// ([`DEFAULT_WATCH_INTERVAL`] by default).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The lock's state when first called; after that, its next different holder, or
    /// `None` once it is free.
    pub async fn next(&mut self) -> Result<Option<LockInfo>, LockError> {
        loop {
            if self.started {
                let next_look = Instant::now() + self.interval;
                tokio::select! {
                    () = self.watch.notify().notified() => {}
                    () = tokio::time::sleep_until(next_look.into()) => {}
                }
            }
            let now = self.backend.inspect(&self.name).await?;
            let token = now.as_ref().map(holders_of);
            if !self.started || token != self.last {
                self.started = true;
                self.last = token;
                return Ok(now);
            }
        }
    }
}
