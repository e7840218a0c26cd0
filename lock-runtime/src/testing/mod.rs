//! A store for your own tests (feature `testing`): the in-memory store, with controls that
//! make what happens in production happen now. A named lock held by someone else, a lease
//! that ends while the body runs, a store that stops answering, fails over or answers late:
//! your handlers and jobs meet each exactly as they would on a real store, through the
//! same runtime, with `#[distributed_lock]` unchanged.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lock_runtime::LockError> {
//! use lock_runtime::{distributed_lock, testing::TestStore, LockError};
//! use std::time::Duration;
//!
//! #[distributed_lock(key = "invoice:{id}", ttl = "10s")]
//! async fn send_invoice(id: u32) -> Result<&'static str, LockError> {
//!     Ok("sent")
//! }
//!
//! // The default client of this test binary (every test may call it).
//! let store = TestStore::installed()?;
//!
//! // Someone else holds the invoice's lock for a minute: the call is refused as busy.
//! store.hold("invoice:7", Duration::from_secs(60)).await;
//! assert!(matches!(send_invoice(7).await, Err(LockError::Busy { .. })));
//! store.free("invoice:7").await;
//! assert_eq!(send_invoice(7).await?, "sent");
//!
//! // The store fails over: calls are refused with `Recovering` for a while.
//! store.fail_over("invoice:*", Duration::from_secs(30));
//! assert!(matches!(send_invoice(7).await, Err(LockError::Recovering { .. })));
//! store.heal("invoice:*");
//! assert_eq!(send_invoice(7).await?, "sent");
//! # Ok(()) }
//! ```
//!
//! The store keeps locks under their names (a backend's key prefix is not used: the store
//! is the test's own). Every control takes effect at once, for every backend over the
//! store (clones share one store). Faults apply to the locks whose names match the glob
//! they are given (`*` for all), so tests that run at once in one binary, sharing the
//! default client, each break their own locks: give each test names of its own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::{
    backend::Backend,
    builder::BackendBuilder,
    error::LockError,
    holder,
    store::{
        glob_matches, AcquireRequest, Attempt, LockKind, MemoryStore, Operators, SessionState,
        Store, StoreFuture,
    },
    token::Token,
};

mod store;

/// The in-memory store with controls for tests; see the [module](self) documentation.
/// Cheap to clone: clones are one store.
#[derive(Clone, Debug, Default)]
pub struct TestStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    locks: MemoryStore,
    faults: Mutex<Faults>,
    /// Each lock's holders taken through this store: the lease each can be told has ended.
    leases: Mutex<HashMap<String, Vec<Lease>>>,
}

/// What is wrong with the store now, for the locks whose names match a pattern.
#[derive(Debug, Default)]
struct Faults(Vec<Fault>);

#[derive(Debug, Clone)]
struct Fault {
    /// The lock names it applies to: a glob (`*`, `?`).
    pattern: String,
    what: Wrong,
    until: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrong {
    /// No call is answered.
    Paused,
    /// Acquisitions are held back.
    Recovering,
    /// Every answer comes this late.
    Late(Duration),
}

impl Faults {
    /// The faults in force now for the lock `key`.
    fn on<'a>(&'a mut self, key: &'a str) -> impl Iterator<Item = &'a Fault> + 'a {
        let now = Instant::now();
        self.0.retain(|f| f.until > now);
        self.0.iter().filter(move |f| glob_matches(&f.pattern, key))
    }
}

#[derive(Debug)]
struct Lease {
    token: Token,
    shared: bool,
    state: watch::Sender<SessionState>,
}

impl TestStore {
    /// A store holding no lock, with no fault.
    pub fn new() -> Self {
        Self::default()
    }

    /// The test binary's store, made the default client ([`init`](crate::init)) by the
    /// first call; every later call returns that same store, so each `#[tokio::test]` can
    /// call it. Fails if another default client was set first.
    pub fn installed() -> Result<Self, LockError> {
        static INSTALLED: Mutex<Option<TestStore>> = Mutex::new(None);
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = &*installed {
            return Ok(store.clone());
        }
        let store = Self::new();
        crate::init(store.backend()?)?;
        *installed = Some(store.clone());
        Ok(store)
    }

    /// A backend over this store, with the default settings.
    pub fn backend(&self) -> Result<Backend, LockError> {
        Backend::builder().store(self.clone())
    }

    /// A backend over this store with settings of your own (a shorter
    /// [`op_timeout`](BackendBuilder::op_timeout), so that a paused store's calls fail
    /// sooner).
    pub fn backend_with(&self, builder: BackendBuilder) -> Result<Backend, LockError> {
        builder.store(self.clone())
    }

    /// Someone else takes the lock `name` for `hold` (unless it is held already): callers
    /// find it busy until then, or until [`free`](Self::free). Whether it took the lock.
    pub async fn hold(&self, name: &str, hold: Duration) -> bool {
        let Ok(token) = Token::generate() else {
            return false;
        };
        let record = holder::Record::now(Some("lock_runtime::testing::TestStore::hold"));
        let request = AcquireRequest {
            key: name,
            token: &token,
            ttl: hold,
            fencing: false,
            reclaim: false,
            waiting: false,
            holder: record.as_str(),
            kind: LockKind::Exclusive,
            lock_delay: Duration::ZERO,
        };
        matches!(
            self.inner.locks.try_acquire(request).await,
            Ok(Attempt::Acquired { .. })
        )
    }

    /// Whether anyone holds the lock `name` now (taken through this store, or by
    /// [`hold`](Self::hold)): for a test to wait until its code is inside the lock.
    pub async fn is_held(&self, name: &str) -> bool {
        matches!(self.inner.locks.inspect(name).await, Ok(Some(_)))
    }

    /// Releases the lock `name` whoever holds it (as an operator's release by force does:
    /// its holder learns it when it renews or releases). Whether it was held.
    pub async fn free(&self, name: &str) -> bool {
        matches!(self.inner.locks.force_release(name).await, Ok(Some(_)))
    }

    /// Ends the lease of every holder of `name` that took it through this store, now: each
    /// body running under it sees [`LockError::Lost`] at once (it is cancelled, or runs on
    /// with `on_lost = "finish"`), as when a holder's session ends or its renewal finds the
    /// lock gone. The lock is free after. Whether anyone held it.
    pub async fn end_lease(&self, name: &str) -> bool {
        let leases = self.inner.leases().remove(name).unwrap_or_default();
        let mut ended = self.free(name).await;
        for lease in leases {
            if lease.shared {
                if let Some(shared) = self.inner.locks.shared() {
                    ended |= matches!(shared.release_shared(name, &lease.token).await, Ok(true));
                }
            }
            lease.state.send_replace(SessionState::Ended);
        }
        ended
    }

    /// The store stops answering for `pause`, for the locks whose names match `pattern`
    /// (a glob: `*` is every lock): every call on them waits, and fails with
    /// [`LockError::Timeout`] at the backend's time bound, as with a store that hangs.
    pub fn pause(&self, pattern: &str, pause: Duration) {
        self.add(pattern, Wrong::Paused, pause);
    }

    /// The store fails over, and holds new acquisitions of the locks whose names match
    /// `pattern` back for `hold`: they fail with [`LockError::Recovering`] (or wait, within
    /// their `wait`), as after a Redis failover under the restart guard. Locks already held
    /// keep their leases.
    pub fn fail_over(&self, pattern: &str, hold: Duration) {
        self.add(pattern, Wrong::Recovering, hold);
    }

    /// Every answer about the locks whose names match `pattern` comes `delay` late (the
    /// call itself is made at once), until [`heal`](Self::heal): with a delay past the
    /// backend's time bound, calls time out with their outcome unknown.
    pub fn delay_replies(&self, pattern: &str, delay: Duration) {
        self.add(pattern, Wrong::Late(delay), Duration::MAX);
    }

    /// Ends the faults set for `pattern` (as given to [`pause`](Self::pause),
    /// [`fail_over`](Self::fail_over) or [`delay_replies`](Self::delay_replies)).
    pub fn heal(&self, pattern: &str) {
        self.inner.faults().0.retain(|f| f.pattern != pattern);
    }

    fn add(&self, pattern: &str, what: Wrong, lasting: Duration) {
        let fault = Fault {
            pattern: pattern.to_owned(),
            what,
            until: later(lasting),
        };
        self.inner.faults().0.push(fault);
    }
}

/// `after` from now, or a year for a duration too long to count.
fn later(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or(now + Duration::from_secs(365 * 24 * 60 * 60))
}

impl Inner {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<String, Vec<Lease>>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the call `call` makes on the lock `key` as its faults say: after a pause,
    /// answered late.
    async fn faulty<'a, T>(
        &'a self,
        key: &str,
        call: impl FnOnce() -> StoreFuture<'a, T>,
    ) -> Result<T, crate::StoreError> {
        // Looked at again now and then while paused: `heal` ends a pause early.
        while self.faults().on(key).any(|f| f.what == Wrong::Paused) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let answer = call().await;
        let late = self
            .faults()
            .on(key)
            .fold(Duration::ZERO, |late, f| match f.what {
                Wrong::Late(delay) => late.max(delay),
                _ => late,
            });
        if !late.is_zero() {
            tokio::time::sleep(late).await;
        }
        answer
    }

    /// How long new acquisitions of `key` are still held back, if they are.
    fn recovering(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut faults = self.faults();
        let until = faults
            .on(key)
            .filter(|f| f.what == Wrong::Recovering)
            .map(|f| f.until)
            .max()?;
        Some(until.saturating_duration_since(now))
    }

    /// A holder took `key`: its lease can now be ended.
    fn took(&self, key: &str, token: &Token, shared: bool) {
        let mut leases = self.leases();
        let all = leases.entry(key.to_owned()).or_default();
        if all.iter().any(|earlier| earlier.token == *token) {
            // A retry of a try that took it.
            return;
        }
        // An earlier holder still listed let go without a release (a forgotten guard) and
        // is gone now that this one took the lock: a writer excludes every earlier holder,
        // a reader every earlier writer.
        all.retain(|earlier| {
            let still = shared && earlier.shared;
            if !still {
                earlier.state.send_replace(SessionState::Ended);
            }
            still
        });
        let (state, _) = watch::channel(SessionState::Live);
        all.push(Lease {
            token: *token,
            shared,
            state,
        });
    }

    /// The holder `token` of `key` let go.
    fn let_go(&self, key: &str, token: &Token) {
        let mut leases = self.leases();
        if let Some(all) = leases.get_mut(key) {
            all.retain(|lease| lease.token != *token);
            if all.is_empty() {
                leases.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::TestStore;
    use crate::LockOptions;

    #[tokio::test]
    async fn a_forgotten_holder_leaves_the_list_when_the_lock_is_taken_again() {
        let store = TestStore::new();
        let backend = store.backend().expect("a backend");
        let short = LockOptions::new(Duration::from_millis(50));
        let forgotten = backend.acquire("job", &short).await.expect("first holder");
        let mut first = forgotten.session().expect("a lease to end");
        std::mem::forget(forgotten);
        let waiting = LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(10));
        let second = backend
            .acquire("job", &waiting)
            .await
            .expect("once it expired");
        assert_eq!(
            store.inner.leases()["job"].len(),
            1,
            "only the second holder"
        );
        assert!(
            first.has_changed().is_err() || *first.borrow_and_update() != super::SessionState::Live
        );
        second.release().await.expect("released");
        assert!(!store.inner.leases().contains_key("job"));
    }
}
