//! Leader election: one process of many leads a named election, with a **term** greater
//! than every earlier leader's, for as long as its lease is renewed.
//!
//! An election is an exclusive lock that its leader renews for as long as it leads: a
//! candidate waits for it (on a store that queues, in order), takes it with a fencing token
//! (the term), and renews it with no cap. Leadership ends at the lease end whatever the
//! store does, and the leader's work is cancelled then (or told, with
//! [`OnLost::Finish`]) before anyone else can be elected. A resignation, or a leader
//! dropped, releases the lock, and the next candidate is woken by the release
//! notification; a leader that died is replaced once its lease (plus its
//! [lock delay](LeaderOptions::lock_delay)) runs out. Stores without fencing tokens
//! (Redlock) cannot give terms, and refuse elections.
//!
//! Two shapes: [`Backend::campaign`] for a [`Leadership`] handle, and [`Backend::lead`]
//! (or `#[leader]`) to run work only while leading, campaigning again after each loss.

use std::{future::Future, time::Duration};

use tokio::sync::watch;

use crate::{
    backend::Backend,
    error::LockError,
    guard::LockGuard,
    lease::{lost, session_lost, session_over, LeaseState, LeaseWatch, RenewalTask},
    options::{LockOptions, OnLost},
    store::SessionWatch,
};

mod observe;

pub use self::observe::{Leader, LeaderWatch};

/// How long a candidate pauses after a store error before it campaigns again.
const CAMPAIGN_RETRY: Duration = Duration::from_millis(200);

/// How to campaign: the lease's TTL (how long a dead leader keeps the election) and every
/// default: the default client, the leader's work cancelled when leadership is lost, no
/// lock delay.
///
/// ```
/// use lock_runtime::{LeaderOptions, OnLost};
/// use std::time::Duration;
///
/// const SCHEDULER: LeaderOptions = LeaderOptions::new(Duration::from_secs(15))
///     .client("jobs")
///     .on_lost(OnLost::Finish)
///     .lock_delay(Duration::from_secs(2));
/// assert_eq!(SCHEDULER.ttl(), Duration::from_secs(15));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderOptions {
    lock: LockOptions,
}

impl LeaderOptions {
    /// A lease of `ttl`, renewed every third of it while leading.
    pub const fn new(ttl: Duration) -> Self {
        Self {
            lock: LockOptions::new(ttl)
                .wait(Duration::MAX)
                .renew(true)
                .max_hold(Duration::MAX)
                .fencing(true),
        }
    }

    /// Campaign in the client registered under `name` instead of the default one.
    #[must_use]
    pub const fn client(mut self, name: &'static str) -> Self {
        self.lock = self.lock.client(name);
        self
    }

    /// What [`Backend::lead`] does with work running when leadership is lost
    /// ([`OnLost::Cancel`] by default).
    #[must_use]
    pub const fn on_lost(mut self, on_lost: OnLost) -> Self {
        self.lock = self.lock.on_lost(on_lost);
        self
    }

    /// Keep the election without a leader for `delay` after a leader lost its lease
    /// without resigning (see [`LockOptions::lock_delay`]).
    #[must_use]
    pub const fn lock_delay(mut self, delay: Duration) -> Self {
        self.lock = self.lock.lock_delay(delay);
        self
    }

    /// The function that leads, recorded for operators (`#[leader]` sets it).
    #[must_use]
    pub const fn function(mut self, path: &'static str) -> Self {
        self.lock = self.lock.function(path);
        self
    }

    /// The election name's template, the label of its metrics (`#[leader]` sets it).
    #[must_use]
    pub const fn name_template(mut self, template: &'static str) -> Self {
        self.lock = self.lock.name_template(template);
        self
    }

    /// The lease's TTL.
    pub const fn ttl(&self) -> Duration {
        self.lock.ttl()
    }

    /// The lock options an election takes its lock with: waiting without end, renewed
    /// without cap, fenced.
    pub fn lock_options(&self) -> &LockOptions {
        &self.lock
    }
}

/// This process leads an election ([`Backend::campaign`]) until [`lost`](Self::lost)
/// resolves or it [`resign`](Self::resign)s; dropped, it resigns in the background.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LeaderOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let options = LeaderOptions::new(Duration::from_secs(10));
/// let first = backend.campaign("scheduler", &options).await?;
/// assert!(first.is_leading());
/// first.resign().await?;
/// let second = backend.campaign("scheduler", &options).await?;
/// assert!(second.term() > 1);
/// tokio::select! {
///     () = second.lost() => unreachable!("renewed while this process runs"),
///     () = tokio::time::sleep(Duration::from_millis(50)) => {}
/// }
/// # Ok(()) }
/// ```
#[must_use = "leadership ends (the lock is released) when the handle is dropped"]
#[derive(Debug)]
pub struct Leadership {
    guard: LockGuard,
    term: u64,
    lease: LeaseWatch,
    session: Option<SessionWatch>,
    renewal: RenewalTask,
    /// The leader gauge, set back to 0 when leadership is given up or dropped.
    gauge: Leading,
}

/// The leader gauge of one election and client, 1 from when it is made to when it is
/// dropped.
#[derive(Debug)]
struct Leading {
    election: String,
    client: &'static str,
}

impl Leading {
    fn new(election: &str, client: &'static str) -> Self {
        crate::metrics::leading(election, client, true);
        Self {
            election: election.to_owned(),
            client,
        }
    }
}

impl Drop for Leading {
    fn drop(&mut self) {
        crate::metrics::leading(&self.election, self.client, false);
    }
}

impl Leadership {
    /// The election's name.
    pub fn name(&self) -> &str {
        &self.gauge.election
    }

    /// This leader's term: greater than every earlier leader's of this election (the
    /// lock's fencing token). Pass it with every write the leader makes, and have the
    /// resource refuse a term lower than one it has seen.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether this process still leads: its lease has not run out, renewal has not found
    /// the lock gone, and (on ZooKeeper) its session is live.
    pub fn is_leading(&self) -> bool {
        !self.lease.borrow().is_over() && !self.session.as_ref().is_some_and(session_over)
    }

    /// Completes when leadership is lost: the lease ran out unrenewed, renewal found the
    /// lock gone, or the store session holding it ended. Never before, and at the latest at
    /// the lease end by this process's clock, whatever the store does.
    pub async fn lost(&self) {
        tokio::select! {
            () = lost(self.lease.clone()) => {}
            () = session_lost(self.session.clone()) => {}
        }
    }

    /// Gives leadership up: the lock is released, and the next candidate is woken by the
    /// release notification. [`LockError::Lost`] if it had been lost already.
    pub async fn resign(self) -> Result<(), LockError> {
        let Self {
            mut guard,
            lease,
            renewal,
            gauge,
            ..
        } = self;
        drop(renewal);
        if let LeaseState::Until(end) = *lease.borrow() {
            guard.set_lease_end(end);
        }
        tracing::debug!(election = gauge.election, "resigned");
        drop(gauge);
        guard.release().await
    }
}

impl Backend {
    /// Campaigns for the election `name` and returns once this process leads it, waiting as
    /// long as it takes (wrap it in a timeout to bound that). Candidates of one process
    /// queue first come first served; on ZooKeeper, candidates of every process (Curator's
    /// `LeaderSelector` too) are served in order.
    ///
    /// Fails with [`LockError::InvalidInput`] on a store without fencing tokens (Redlock),
    /// which cannot give terms.
    pub async fn campaign(
        &self,
        name: &str,
        options: &LeaderOptions,
    ) -> Result<Leadership, LockError> {
        let lock = options.lock_options();
        loop {
            match self.acquire(name, lock).await {
                Ok(guard) => return Ok(self.lead_with(guard, name, lock)),
                Err(error @ (LockError::InvalidInput(_) | LockError::NotInitialized { .. })) => {
                    return Err(error)
                }
                Err(error) => {
                    tracing::warn!(election = name, %error, "campaign failed; campaigning again");
                    tokio::time::sleep(CAMPAIGN_RETRY).await;
                }
            }
        }
    }

    fn lead_with(&self, guard: LockGuard, name: &str, lock: &LockOptions) -> Leadership {
        let (publish, lease) = watch::channel(LeaseState::Until(guard.lease_end()));
        let renewal = guard.renewal(lock).start(publish);
        let term = guard.fencing_token().unwrap_or_default();
        tracing::info!(election = name, term, "elected");
        Leadership {
            session: guard.session(),
            guard,
            term,
            lease,
            renewal,
            gauge: Leading::new(name, lock.client_label()),
        }
    }

    /// Runs the work `work` makes whenever this process leads the election `name`, and
    /// returns the work's output once it finishes while leading (leadership is then
    /// given up). Work whose leadership is lost is cancelled at its next `.await` (or, with
    /// [`OnLost::Finish`], runs to its end and its output is dropped), and the process
    /// campaigns again and runs new work when elected again: `work` makes a fresh future
    /// each time. Inside the work, [`fencing_token`](crate::fencing_token) is the term.
    ///
    /// Returns only with the work's output or an error that campaigning again cannot
    /// mend ([`LockError::InvalidInput`], [`LockError::NotInitialized`]); store errors
    /// are logged and campaigned through. `#[leader]` expands to this.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{Backend, LeaderOptions};
    /// use std::time::Duration;
    ///
    /// let backend = Backend::memory();
    /// let options = LeaderOptions::new(Duration::from_secs(10));
    /// let term = backend
    ///     .lead("scheduler", &options, || async {
    ///         // ... schedule jobs, passing the term along with each write ...
    ///         lock_runtime::fencing_token().expect("the term")
    ///     })
    ///     .await?;
    /// assert!(term >= 1);
    /// # Ok(()) }
    /// ```
    pub async fn lead<W, F>(
        &self,
        name: &str,
        options: &LeaderOptions,
        mut work: W,
    ) -> Result<F::Output, LockError>
    where
        W: FnMut() -> F,
        F: Future,
    {
        let lock = options.lock_options();
        let client = lock.client_label();
        loop {
            let body = async {
                let _leading = Leading::new(name, client);
                tracing::info!(
                    election = name,
                    term = crate::fencing_token(),
                    "elected; the leader's work starts"
                );
                work().await
            };
            match self.with_lock(name, lock, body).await {
                Ok(output) => return Ok(output),
                Err(error @ (LockError::InvalidInput(_) | LockError::NotInitialized { .. })) => {
                    return Err(error)
                }
                Err(LockError::Lost { .. }) => {
                    tracing::warn!(election = name, "leadership lost; campaigning again");
                }
                Err(error) => {
                    tracing::warn!(election = name, %error, "campaign failed; campaigning again");
                    tokio::time::sleep(CAMPAIGN_RETRY).await;
                }
            }
        }
    }
}

/// [`Backend::campaign`] in the client `options` name.
pub async fn campaign(name: &str, options: &LeaderOptions) -> Result<Leadership, LockError> {
    let client = crate::client(options.lock_options().client_name())?;
    client.campaign(name, options).await
}

/// [`Backend::lead`] in the client `options` name.
pub async fn lead<W, F>(
    name: &str,
    options: &LeaderOptions,
    work: W,
) -> Result<F::Output, LockError>
where
    W: FnMut() -> F,
    F: Future,
{
    let client = crate::client(options.lock_options().client_name())?;
    client.lead(name, options, work).await
}
