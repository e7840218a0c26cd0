//! What a store can do, declared once ([`Store::capabilities`](super::Store::capabilities))
//! instead of asked method by method: the runtime refuses what a store lacks before any
//! call, the README's capability table is checked against it, and the conformance suite
//! skips a scenario only where a store declares it cannot give what the scenario proves.

use std::time::Duration;

use super::LockKind;

/// What a store can do.
///
/// Built with [`Capabilities::new`], which declares the least (exclusive locks, no fencing
/// tokens, waiters re-check on a timer, the runtime bounds every call), and one call per
/// capability a store adds:
///
/// ```
/// use lock_runtime::store::{Capabilities, LockKind};
/// use std::time::Duration;
///
/// const MINE: Capabilities = Capabilities::new("mine")
///     .fencing()
///     .readers()
///     .notifies_waiters()
///     .min_ttl(Duration::from_secs(1), "leases are kept in whole seconds");
/// assert!(MINE.supports(LockKind::Read));
/// assert!(!MINE.supports(LockKind::Permit { permits: 2 }));
/// assert_eq!(MINE.label(), "mine");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    label: &'static str,
    readers: bool,
    permits: bool,
    no_fencing: Option<&'static str>,
    queues_contenders: bool,
    notifies_waiters: bool,
    several_keys: bool,
    operators: bool,
    session_leases: bool,
    bounds_own_calls: bool,
    one_process: bool,
    min_ttl: Option<(Duration, &'static str)>,
}

impl Capabilities {
    /// The least a store can be: exclusive locks without fencing tokens, named `label` (the
    /// `backend` label of the metrics: `redis`, `redis-cluster`, `redlock`, `zookeeper`,
    /// `postgres`, `memory`, or a custom store's own).
    pub const fn new(label: &'static str) -> Self {
        Self {
            label,
            readers: false,
            permits: false,
            no_fencing: Some("this store gives no fencing tokens"),
            queues_contenders: false,
            notifies_waiters: false,
            several_keys: false,
            operators: false,
            session_leases: false,
            bounds_own_calls: false,
            one_process: false,
            min_ttl: None,
        }
    }

    /// Takes read locks ([`LockKind::Read`]): the store's [`SharedLocks`] act on them
    /// (it must hand them out from [`Store::shared`]).
    ///
    /// [`SharedLocks`]: super::SharedLocks
    /// [`Store::shared`]: super::Store::shared
    #[must_use]
    pub const fn readers(mut self) -> Self {
        self.readers = true;
        self
    }

    /// Takes a semaphore's permits ([`LockKind::Permit`]).
    #[must_use]
    pub const fn permits(mut self) -> Self {
        self.permits = true;
        self
    }

    /// Gives a fencing token with every acquisition that asks for one: greater than every
    /// earlier one of that lock.
    #[must_use]
    pub const fn fencing(mut self) -> Self {
        self.no_fencing = None;
        self
    }

    /// Gives no fencing tokens, for the reason given: a fenced acquire is refused with it.
    #[must_use]
    pub const fn no_fencing(mut self, why: &'static str) -> Self {
        self.no_fencing = Some(why);
        self
    }

    /// A contender that found the lock busy stays queued in the store (ZooKeeper's
    /// sequential nodes) until it gets the lock or gives up: the runtime calls
    /// [`Store::release`](super::Store::release) with its token whenever an acquire ends
    /// without the lock, to leave the queue; waiters are served in order.
    #[must_use]
    pub const fn queues_contenders(mut self) -> Self {
        self.queues_contenders = true;
        self
    }

    /// [`Store::watch`](super::Store::watch) wakes waiters when the lock is released, so
    /// they need not wait for their re-check timer.
    #[must_use]
    pub const fn notifies_waiters(mut self) -> Self {
        self.notifies_waiters = true;
        self
    }

    /// [`SeveralKeys::try_acquire_all`](super::SeveralKeys::try_acquire_all) takes several locks in one
    /// atomic step (where it can: a cluster only when they share a slot).
    #[must_use]
    pub const fn several_keys_at_once(mut self) -> Self {
        self.several_keys = true;
        self
    }

    /// [`Operators::inspect`](super::Operators::inspect), [`Operators::list`](super::Operators::list) and
    /// [`Operators::force_release`](super::Operators::force_release) work, for operators.
    #[must_use]
    pub const fn operators(mut self) -> Self {
        self.operators = true;
        self
    }

    /// Leases are sessions ([`Sessions::session`](super::Sessions::session)): a lock ends when
    /// the session that holds it does, which the runtime follows.
    #[must_use]
    pub const fn session_leases(mut self) -> Self {
        self.session_leases = true;
        self
    }

    /// The store ends each of its calls itself once the time bound it was built with runs
    /// out, failing it as timed out: the runtime then arms no timer of its own around the
    /// call (a timer per call shows in the profile).
    #[must_use]
    pub const fn bounds_own_calls(mut self) -> Self {
        self.bounds_own_calls = true;
        self
    }

    /// Locks live in this process only (the in-memory store): they exclude tasks of one
    /// process, not processes.
    #[must_use]
    pub const fn one_process(mut self) -> Self {
        self.one_process = true;
        self
    }

    /// Leases shorter than `ttl` cannot be kept, for the reason given: such an acquire is
    /// refused, naming both.
    #[must_use]
    pub const fn min_ttl(mut self, ttl: Duration, why: &'static str) -> Self {
        self.min_ttl = Some((ttl, why));
        self
    }

    /// The store's name, as the metrics' `backend` label says it.
    pub const fn label(&self) -> &'static str {
        self.label
    }

    /// Whether locks of `kind` can be taken.
    pub const fn supports(&self, kind: LockKind) -> bool {
        match kind {
            LockKind::Exclusive => true,
            LockKind::Read => self.readers,
            LockKind::Permit { .. } => self.permits,
        }
    }

    /// Whether acquisitions can carry fencing tokens.
    pub const fn has_fencing(&self) -> bool {
        self.no_fencing.is_none()
    }

    /// Whether contenders queue in the store, served in order.
    pub const fn has_queue(&self) -> bool {
        self.queues_contenders
    }

    /// Whether a release wakes waiters.
    pub const fn has_notifications(&self) -> bool {
        self.notifies_waiters
    }

    /// Whether several locks can be taken in one atomic step.
    pub const fn has_several_keys_at_once(&self) -> bool {
        self.several_keys
    }

    /// Whether operators can inspect, list and release locks by force.
    pub const fn has_operators(&self) -> bool {
        self.operators
    }

    /// Whether leases are sessions.
    pub const fn has_session_leases(&self) -> bool {
        self.session_leases
    }

    /// Whether the store bounds its own calls in time.
    pub const fn has_own_bounds(&self) -> bool {
        self.bounds_own_calls
    }

    /// Whether locks exclude other processes (every store but the in-memory one).
    pub const fn across_processes(&self) -> bool {
        !self.one_process
    }

    /// The shortest lease the store keeps, if it has one beyond the runtime's 1 ms.
    pub const fn shortest_ttl(&self) -> Option<Duration> {
        match self.min_ttl {
            Some((ttl, _)) => Some(ttl),
            None => None,
        }
    }

    /// Why a lock with a lease of `ttl` (and a fencing token, if `fenced`) cannot be taken
    /// on this store, if it cannot.
    pub(crate) fn refuses(&self, ttl: Duration, fenced: bool) -> Option<String> {
        if let (true, Some(why)) = (fenced, self.no_fencing) {
            return Some(format!(
                "fencing tokens are not available on the {} store: {why}",
                self.label
            ));
        }
        match self.min_ttl {
            Some((min, why)) if ttl < min => Some(format!(
                "a TTL of {ttl:?} is shorter than the {} store's shortest lease ({min:?}): {why}",
                self.label
            )),
            _ => None,
        }
    }
}

/// What `store` declares but does not hand out the part for, if anything: a store of one's
/// own that says it has readers must give its [`SharedLocks`](super::SharedLocks), and so
/// on. The builder refuses such a store at once.
pub(crate) fn missing_part(store: &dyn super::Store) -> Option<String> {
    let declared = store.capabilities();
    let lacks = [
        (
            declared.supports(LockKind::Read) || declared.supports(LockKind::Permit { permits: 1 }),
            store.shared().is_none(),
            "readers or permits but no `Store::shared` part",
        ),
        (
            declared.has_several_keys_at_once(),
            store.several_keys().is_none(),
            "several keys at once but no `Store::several_keys` part",
        ),
        (
            declared.has_operators(),
            store.operators().is_none(),
            "operators' calls but no `Store::operators` part",
        ),
        (
            declared.has_session_leases(),
            store.sessions().is_none(),
            "session leases but no `Store::sessions` part",
        ),
    ];
    lacks
        .into_iter()
        .find(|(declares, lacks, _)| *declares && *lacks)
        .map(|(_, _, what)| format!("the store `{}` declares {what}", declared.label()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{
        store::{AcquireRequest, Attempt, Capabilities, MemoryStore, Store, StoreFuture},
        Backend, LockError, Token,
    };

    /// An in-memory store declaring what the test says, and handing out no optional part.
    #[derive(Debug)]
    struct Declaring(MemoryStore, Capabilities);

    impl Declaring {
        fn new(declared: Capabilities) -> Self {
            Self(MemoryStore::new(), declared)
        }
    }

    impl Store for Declaring {
        fn capabilities(&self) -> Capabilities {
            self.1
        }
        fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
            self.0.try_acquire(request)
        }
        fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
            self.0.release(key, token)
        }
        fn extend<'a>(
            &'a self,
            key: &'a str,
            token: &'a Token,
            ttl: Duration,
        ) -> StoreFuture<'a, bool> {
            self.0.extend(key, token, ttl)
        }
    }

    #[test]
    fn operators_calls_on_a_store_without_them_say_so() {
        let backend = Backend::builder()
            .store(Declaring::new(Capabilities::new("plain")))
            .expect("backend");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let refusals = runtime.block_on(async {
            [
                backend.inspect("k").await.map(|_| ()),
                backend.list("*").await.map(|_| ()),
                backend.force_release("k").await.map(|_| ()),
            ]
        });
        for (refused, call) in refusals
            .into_iter()
            .zip(["inspect", "list", "force_release"])
        {
            let Err(LockError::InvalidInput(message)) = refused else {
                panic!("{call}: {refused:?}");
            };
            assert!(
                message.contains("`plain` store has no operators' calls") && message.contains(call),
                "{message}"
            );
        }
    }

    #[test]
    fn a_store_must_hand_out_what_it_declares() {
        let refused =
            Backend::builder().store(Declaring::new(Capabilities::new("boasting").readers()));
        let Err(LockError::InvalidInput(message)) = refused else {
            panic!("{refused:?}");
        };
        assert!(
            message.contains("`boasting`") && message.contains("Store::shared"),
            "{message}"
        );
        assert!(Backend::builder().store(MemoryStore::new()).is_ok());
    }
}
