//! Who leads an election, for anyone (candidate or not): [`Backend::leader`] now, and
//! [`Backend::watch_leader`] as it changes.

use std::time::SystemTime;

use crate::{backend::Backend, error::LockError, holder::LockInfo, inspect::LockWatch};

/// The leader of an election, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Leader {
    /// The election's name.
    pub name: String,
    /// The leader's host, from its holder record (`None` for a leader that wrote none,
    /// such as a Curator `LeaderSelector`).
    pub host: Option<String>,
    /// The leader's process id, from its record.
    pub pid: Option<u32>,
    /// The function that leads, from its record.
    pub function: Option<String>,
    /// The leader's term (its fencing token), where the store says.
    pub term: Option<u64>,
    /// Since when it leads, by its own clock.
    pub since: Option<SystemTime>,
}

impl Leader {
    fn of(info: LockInfo) -> Self {
        let holder = info.holder;
        Self {
            name: info.name,
            host: holder.as_ref().map(|h| h.host.clone()),
            pid: holder.as_ref().map(|h| h.pid),
            function: holder.as_ref().and_then(|h| h.function.clone()),
            term: holder.as_ref().and_then(|h| h.fence).or(info.fence_counter),
            since: holder.as_ref().map(|h| h.taken_at),
        }
    }
}

impl Backend {
    /// Who leads the election `name` now, or `None` while nobody does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{Backend, LeaderOptions};
    /// use std::time::Duration;
    ///
    /// let backend = Backend::memory();
    /// assert_eq!(backend.leader("scheduler").await?, None);
    /// let leading = backend.campaign("scheduler", &LeaderOptions::new(Duration::from_secs(10))).await?;
    /// let leader = backend.leader("scheduler").await?.expect("a leader");
    /// assert_eq!(leader.pid, Some(std::process::id()));
    /// assert_eq!(leader.term, Some(leading.term()));
    /// # Ok(()) }
    /// ```
    pub async fn leader(&self, name: &str) -> Result<Option<Leader>, LockError> {
        Ok(self.inspect(name).await?.map(Leader::of))
    }

    /// The leaders of the election `name` as they change: see [`LeaderWatch`].
    pub async fn watch_leader(&self, name: &str) -> Result<LeaderWatch, LockError> {
        Ok(LeaderWatch(self.watch_lock(name).await?))
    }
}

/// The leaders of one election as they change ([`Backend::watch_leader`]): each
/// [`next`](Self::next) returns the leader when first called, then once another leads or
/// nobody does (`None`). A resignation is seen as soon as its notification arrives; a new
/// leader, or one whose lease ran out, within the watch interval.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LeaderOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let mut leaders = backend.watch_leader("scheduler").await?;
/// assert_eq!(leaders.next().await?, None);
/// let options = LeaderOptions::new(Duration::from_secs(10));
/// let leading = backend.campaign("scheduler", &options).await?;
/// assert_eq!(leaders.next().await?.and_then(|l| l.term), Some(leading.term()));
/// leading.resign().await?;
/// assert_eq!(leaders.next().await?, None);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaderWatch(LockWatch);

impl LeaderWatch {
    /// Looks every `interval` when no notification came (see [`LockWatch::interval`]).
    #[must_use]
    pub fn interval(self, interval: std::time::Duration) -> Self {
        Self(self.0.interval(interval))
    }

    /// The leader when first called; after that, the next leader, or `None` once nobody
    /// leads.
    pub async fn next(&mut self) -> Result<Option<Leader>, LockError> {
        Ok(self.0.next().await?.map(Leader::of))
    }
}
