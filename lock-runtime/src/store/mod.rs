//! The store behind a lock: the [`Store`] contract, what a store declares it can do
//! ([`Capabilities`]), and one module per store (memory; Redis, Sentinel and Cluster;
//! Redlock; ZooKeeper; PostgreSQL), each behind its cargo feature where it has one.
//!
//! A store only knows full keys (already prefixed by the [`Backend`](crate::Backend)) and
//! owner tokens. Time bounds, retries, waiting, renewal and tracing live above it, in one
//! place for every store.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use crate::token::Token;

mod capabilities;
mod common;
mod failure;
pub(crate) mod finding;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod hold;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "redlock")]
pub(crate) mod redlock;
mod watch;
#[cfg(feature = "zookeeper")]
pub(crate) mod zookeeper;

pub(crate) use self::capabilities::missing_part;
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) use self::common::{braced_key, braced_name, ttl_millis};
pub(crate) use self::common::{
    drift_margin, glob_matches, mismatch, refuse_shared, ConnectSettings, WRITER_WAITING,
};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::{PostgresOptions, DEFAULT_POSTGRES_CONNECTIONS, DEFAULT_POSTGRES_TABLE};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisOptions, RedisStore, DEFAULT_NOTIFICATION_IDLE};
#[cfg(feature = "zookeeper")]
#[cfg_attr(docsrs, doc(cfg(feature = "zookeeper")))]
pub use self::zookeeper::{ZooKeeperOptions, DEFAULT_ZOOKEEPER_SESSION_TIMEOUT};
pub use self::{
    capabilities::Capabilities,
    failure::{Operation, StoreError},
    finding::{Finding, Status},
    memory::MemoryStore,
    watch::{SessionState, SessionWatch, Watch},
};

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One attempt to take a lock.
#[derive(Debug, Clone, Copy)]
pub struct AcquireRequest<'a> {
    /// The full key of the lock.
    pub key: &'a str,
    /// The owner token to store in it.
    pub token: &'a Token,
    /// The lease's length in the store. On a store whose keys expire, the runtime has
    /// already added the lock's [`lock_delay`](Self::lock_delay) to the holder's TTL here
    /// (and in every [`Store::extend`]), so a holder that vanishes leaves the key taken
    /// that much longer, while the holder itself counts on the TTL alone.
    pub ttl: Duration,
    /// A fencing token is wanted: the store draws one greater than every earlier one of
    /// this lock (where it keeps the counter is its own business).
    pub fencing: bool,
    /// An earlier request with this token had an unknown outcome (it timed out or failed on
    /// the wire) and may have taken the lock: if the key holds `token`, the lock is ours.
    pub reclaim: bool,
    /// The caller waits for the lock and would like to know how long the holder's lease
    /// has left, if it is busy ([`Attempt::BusyFor`]), to try again right when it ends. A
    /// store for which that costs more than a plain attempt answers it only when asked.
    pub waiting: bool,
    /// Who takes the lock, to store right after the token in the same write (see
    /// [`Holder`](crate::Holder)): `;h=<host>;p=<pid>[;f=<function>];t=<unix ms>`. A store
    /// that keeps no such record ignores it.
    pub holder: &'a str,
    /// What kind of lock: exclusive (the default, and a read-write lock's writer), one of
    /// many readers, or one of a semaphore's permits. A store is asked only for the kinds it
    /// [`supports`](Capabilities::supports).
    pub kind: LockKind,
    /// How long the lock stays unavailable after this holder's lease ends without a
    /// release (Chubby's lock-delay; zero: not at all). A store whose keys expire need do
    /// nothing with it (see [`ttl`](Self::ttl)); a store whose leases are
    /// [`Sessions`] must keep the next contender out for this long after the holder's
    /// session ended or it [abandoned](Sessions::abandon) the lock, and may keep it out
    /// longer, never shorter. Asked only with [`LockKind::Exclusive`].
    pub lock_delay: Duration,
}

/// The kind of lock an [`AcquireRequest`] takes.
///
/// Shared kinds (readers and permits) are held by many owners at once, each with a lease
/// and token of its own; they are released and extended with [`SharedLocks::release_shared`] and
/// [`SharedLocks::extend_shared`]. A key is either held exclusively or shared, never both: an
/// exclusive request finds a key with shared holders busy, and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockKind {
    /// One owner at a time: a plain lock, or a read-write lock's writer. A writer that waits
    /// keeps new readers out (writer preference) on stores that support readers.
    #[default]
    Exclusive,
    /// One of any number of readers, while no writer holds or waits for the key.
    Read,
    /// One of at most `permits` holders of a semaphore. Every holder must name the same
    /// count: a request naming another while the key has holders fails with
    /// [`StoreError::KindMismatch`].
    Permit {
        /// How many holders the semaphore admits.
        permits: u32,
    },
}

impl LockKind {
    /// Whether many owners may hold the key at once.
    pub fn is_shared(self) -> bool {
        !matches!(self, Self::Exclusive)
    }
}

/// What [`SeveralKeys::try_acquire_all`] returns: `None` when the store cannot take the keys
/// together; else the fencing tokens of all of them (in order), or what the first busy key
/// said.
pub type TogetherFuture<'a> = Option<StoreFuture<'a, Result<Vec<Option<u64>>, Attempt>>>;

/// One of several locks taken together in one atomic step ([`SeveralKeys::try_acquire_all`]).
#[derive(Debug, Clone, Copy)]
pub struct Together<'a> {
    /// The full key.
    pub key: &'a str,
    /// A fencing token is wanted for it.
    pub fencing: bool,
}

/// A lock as a store holds it, for operators ([`Operators::inspect`]): one exclusive
/// holder, or the holders sharing the key (readers, or a semaphore's permits).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredLock {
    /// The full key.
    pub key: String,
    /// How the key is held; for a semaphore, with the count its holders use.
    pub kind: LockKind,
    /// The exclusive owner's token, followed by the holder's record if it wrote one; empty
    /// for a shared key.
    pub value: String,
    /// The lease's remaining time (a shared key's: its longest holder's); `None` where
    /// leases are sessions.
    pub remaining: Option<Duration>,
    /// The fencing counter of the lock (or the holder's own token, where it is not a
    /// counter), if there is one.
    pub fence: Option<u64>,
    /// A shared key's live holders, their leases ending soonest first; empty for an
    /// exclusive lock.
    pub sharers: Vec<StoredShare>,
}

/// One holder of a key held by readers or a semaphore's permits ([`StoredLock::sharers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredShare {
    /// The holder's owner token, followed by its record if it wrote one.
    pub value: String,
    /// The holder's remaining lease; `None` where leases are sessions.
    pub remaining: Option<Duration>,
}

impl StoredShare {
    /// A holder with this value (token and record) and lease left.
    pub fn new(value: impl Into<String>, remaining: Option<Duration>) -> Self {
        Self {
            value: value.into(),
            remaining,
        }
    }
}

impl StoredLock {
    /// An exclusive lock with the given key and value, and no lease or fence known.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            kind: LockKind::Exclusive,
            value: value.into(),
            remaining: None,
            fence: None,
            sharers: Vec::new(),
        }
    }

    /// A key shared by `sharers` (readers for [`LockKind::Read`], else a semaphore's
    /// permits), in any order: they are put in the order their leases end, and the key's
    /// lease is the longest of theirs. No fence known.
    pub fn shared(key: impl Into<String>, kind: LockKind, mut sharers: Vec<StoredShare>) -> Self {
        sharers.sort_by(|a, b| a.remaining.cmp(&b.remaining).then(a.value.cmp(&b.value)));
        Self {
            key: key.into(),
            kind,
            value: String::new(),
            remaining: sharers.iter().filter_map(|s| s.remaining).max(),
            fence: None,
            sharers,
        }
    }

    /// The kind of a shared key whose holders use `permits` (0: readers).
    pub fn shared_kind(permits: u32) -> LockKind {
        match permits {
            0 => LockKind::Read,
            permits => LockKind::Permit { permits },
        }
    }
}

/// What an acquire attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attempt {
    /// The lock is ours, with the fencing token if one was asked for.
    Acquired {
        /// The fencing token: greater than every earlier acquisition's of this lock.
        fence: Option<u64>,
    },
    /// Another owner holds the lock.
    Busy,
    /// Another owner holds the lock, for `left` more unless extended: a waiter tries again
    /// no later than then.
    BusyFor {
        /// The holder's remaining lease.
        left: Duration,
    },
    /// Shared holders (readers, or a semaphore's permits) hold the key, for `left` more
    /// unless extended; for a request made [`waiting`](AcquireRequest::waiting), the store
    /// also marked the key so that no new reader joins them (writer preference). A
    /// writer that got this answer keeps asking as a waiter, so that its winning try
    /// clears the mark.
    BusyShared {
        /// The shared holders' remaining lease, at least.
        left: Duration,
    },
    /// The store is held back after a restart or failover, for `left` more: leases granted
    /// before it may still run.
    Recovering {
        /// How much longer the hold lasts.
        left: Duration,
    },
}

/// A place where locks live.
///
/// Every method is one atomic step on the store, and must keep these promises:
/// - `try_acquire` sets `key` to `token` with a time to live of `ttl` only if `key` is free
///   (absent or expired), or, with `reclaim`, already holds `token`; it says whether it did,
///   and when a `fence_key` is given it also increments the counter there and returns it;
/// - `release` deletes `key` only if it holds `token`, and says whether it did;
/// - `extend` resets the time to live of `key` to `ttl` only if it holds `token`, and says
///   whether it did;
/// - `watch` (optional) gives waiters a hint when `key` may have been released;
/// - for the kinds it [`supports`](Capabilities::supports) beyond exclusive locks, `try_acquire`
///   adds `token` as one more shared holder when the kind admits it (no exclusive holder,
///   and for readers no waiting writer; fewer holders than permits), and its
///   [`SharedLocks`] act on that holder alone.
///
/// What only some stores do is reached through an optional part, one small trait each, that
/// the store hands out where it has it: [`SharedLocks`] (readers and permits),
/// [`SeveralKeys`] (several locks in one step), [`Operators`] (look at, list, release by
/// force) and [`Sessions`] (leases that are sessions). Its [`Capabilities`] say what the
/// runtime may ask of it.
///
/// The runtime bounds every call in time; a store need not.
///
/// ```
/// use lock_runtime::{
///     store::{
///         AcquireRequest, Attempt, Capabilities, MemoryStore, Operators, SeveralKeys, SharedLocks,
///         Store, StoreFuture,
///     },
///     Backend, Token,
/// };
/// use std::time::Duration;
///
/// /// A store that counts acquisitions and otherwise keeps locks in memory.
/// #[derive(Debug, Default)]
/// struct Counting {
///     inner: MemoryStore,
///     acquires: std::sync::atomic::AtomicU64,
/// }
///
/// impl Store for Counting {
///     fn capabilities(&self) -> Capabilities {
///         self.inner.capabilities()
///     }
///     fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
///         self.acquires.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.inner.try_acquire(request)
///     }
///     fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
///         self.inner.release(key, token)
///     }
///     fn extend<'a>(&'a self, key: &'a str, token: &'a Token, ttl: Duration) -> StoreFuture<'a, bool> {
///         self.inner.extend(key, token, ttl)
///     }
///     // The parts it declares (readers and permits, several keys, operators' calls).
///     fn shared(&self) -> Option<&dyn SharedLocks> {
///         self.inner.shared()
///     }
///     fn several_keys(&self) -> Option<&dyn SeveralKeys> {
///         self.inner.several_keys()
///     }
///     fn operators(&self) -> Option<&dyn Operators> {
///         self.inner.operators()
///     }
/// }
///
/// let backend = Backend::builder().store(Counting::default())?;
/// # Ok::<(), lock_runtime::LockError>(())
/// ```
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// What this store can do: the runtime refuses what it cannot (a lock kind, a fencing
    /// token, a lease too short) with
    /// [`LockError::InvalidInput`](crate::LockError::InvalidInput) before any call, and
    /// reaches the optional parts below only where it declares them.
    fn capabilities(&self) -> Capabilities;

    /// The key this store keeps the lock `name` under, in a backend whose keys begin with
    /// `prefix`; every other call names the lock by it. By default `{prefix}{name}`; a store
    /// whose keys need a shape of their own builds it here (Redis puts the name in a hash
    /// tag, ZooKeeper makes a path under its root).
    fn key(&self, prefix: &str, name: &str) -> String {
        let mut key = String::with_capacity(prefix.len() + name.len());
        key.push_str(prefix);
        key.push_str(name);
        key
    }

    /// The lock name in `key`, a key this store made with [`key`](Self::key) and `prefix`
    /// (for operators' listings and errors).
    fn name_in<'k>(&self, prefix: &str, key: &'k str) -> &'k str {
        key.strip_prefix(prefix).unwrap_or(key)
    }

    /// Takes the lock if it is free.
    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt>;

    /// Deletes `key` if it still holds `token`. `Ok(false)` means it did not.
    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool>;

    /// Resets the time to live of `key` to `ttl` if it still holds `token`.
    /// `Ok(false)` means it did not.
    fn extend<'a>(&'a self, key: &'a str, token: &'a Token, ttl: Duration)
        -> StoreFuture<'a, bool>;

    /// A hint for the waiter `waiter` (its owner token) on `key`, or for an observer of
    /// `key` (`None`: an operator following it); by default none (waiters re-check on a
    /// timer). A store that queues contenders wakes each waiter when its own turn may have
    /// come; the others when `key` may have been released.
    fn watch<'a>(&'a self, key: &'a str, waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        let _ = (key, waiter);
        Box::pin(std::future::ready(Ok(Watch::none())))
    }

    /// Readers and permits, for a store that holds them (its capabilities say which kinds).
    fn shared(&self) -> Option<&dyn SharedLocks> {
        None
    }

    /// Several exclusive locks in one atomic step, for a store that can take them so.
    fn several_keys(&self) -> Option<&dyn SeveralKeys> {
        None
    }

    /// Operators' calls (look at, list, release by force), for a store that has them.
    fn operators(&self) -> Option<&dyn Operators> {
        None
    }

    /// The sessions leases live in, for a store whose leases are sessions (ZooKeeper).
    fn sessions(&self) -> Option<&dyn Sessions> {
        None
    }
}

/// Readers and a semaphore's permits: each shared holder has a token and a lease of its
/// own, taken by [`Store::try_acquire`] with a shared [`LockKind`] and given back or
/// renewed here, on that holder alone.
pub trait SharedLocks: Send + Sync {
    /// Removes the shared holder `token` (a reader or a permit) of `key`, waking waiters, if
    /// its lease has not run out. `Ok(false)` means it had.
    fn release_shared<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool>;

    /// Resets the lease of the shared holder `token` of `key` to `ttl`, if it has not run
    /// out.
    fn extend_shared<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// A writer that waited for `key` (its tries answered [`Attempt::BusyShared`], so the
    /// store kept new readers out for it) gives up or is cancelled: the store takes its
    /// mark back if it is still `token`'s, so readers need not wait out the mark. A store
    /// that sets no such mark (its queue orders writers and readers) does nothing.
    fn withdraw<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, ()>;
}

/// Several exclusive locks in one atomic step.
pub trait SeveralKeys: Send + Sync {
    /// Takes every one of `keys` for `token` with a lease of `ttl` if all are free, else
    /// none, and answers with the fencing tokens (in `keys`' order) or what the first busy
    /// key said. `None` when it cannot take these keys together (a cluster whose keys lie
    /// in several slots): the runtime then takes them one by one, in order.
    fn try_acquire_all<'a>(
        &'a self,
        keys: &'a [Together<'a>],
        token: &'a Token,
        ttl: Duration,
        holder: &'a str,
    ) -> TogetherFuture<'a>;

    /// Deletes every one of `keys` that `token` still holds, in one step, waking each
    /// key's waiters, and answers in `keys`' order whether each was still held (as
    /// [`Store::release`] does for one). `None` when it cannot release these keys in one
    /// step (a cluster whose keys lie in several slots): the runtime then releases them
    /// one by one.
    fn release_all<'a>(
        &'a self,
        keys: &'a [&'a str],
        token: &'a Token,
    ) -> Option<StoreFuture<'a, Vec<bool>>>;
}

/// What operators do with locks: nothing here takes a lock or waits for one.
pub trait Operators: Send + Sync {
    /// The lock at `key` as the store holds it now, or `None` if it is free: its
    /// exclusive holder, or every live reader or permit holder
    /// ([`StoredLock::shared`]).
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>>;

    /// Every held lock whose full key matches the glob `pattern` (`*`, `?`), exclusive or
    /// shared, found without blocking the store (Redis: `SCAN`, never `KEYS`).
    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>>;

    /// Deletes the lock at `key` whoever holds it, waking its waiters, and returns what
    /// held it (`None` if it was free). For an operator clearing a stuck lock: its holder
    /// is not told until it renews or releases. Readers or permits holding the key are
    /// left as they are, with [`StoreError::KindMismatch`] naming them.
    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>>;

    /// Checks what decides whether locks on this store are safe (Redis: eviction,
    /// persistence, replicas, ACLs; ZooKeeper: the session timeout; PostgreSQL: commits,
    /// privileges), and says how to fix each finding. `key` is a key the library would use
    /// (for checks of key permissions); nothing is written. Each of the store's calls is
    /// bounded by the time bound the store was built with; a check that cannot be made
    /// (the server refuses the command) is a [`Status::Warn`] saying so.
    fn diagnose<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Finding>>;
}

/// A store whose leases are sessions (ZooKeeper).
pub trait Sessions: Send + Sync {
    /// The state of the session that holds the lock `key` (taken with `token`), which the
    /// runtime follows to tell the holder its lease is over as soon as the session is.
    /// `None` when it has no such session (the lease is the TTL alone).
    fn session(&self, key: &str, token: &Token) -> Option<SessionWatch>;

    /// Lets go of the exclusive lock `key` held by `token` the way a lost holder does:
    /// its place goes, but the [`lock_delay`](AcquireRequest::lock_delay) it was taken with
    /// still keeps the next contender out, as when its session ends. The runtime calls it
    /// instead of [`Store::release`] for a holder whose lease ran out. Whether the holder
    /// was still there.
    fn abandon<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool>;
}

/// One store shared by several backends (for example two [`Backend`](crate::Backend)s over
/// one [`MemoryStore`], standing in for two processes in a test).
///
/// ```
/// use lock_runtime::{store::MemoryStore, Backend};
/// use std::sync::Arc;
///
/// let shared = Arc::new(MemoryStore::new());
/// let one = Backend::builder().store(shared.clone())?;
/// let two = Backend::builder().store(shared)?;
/// # Ok::<(), lock_runtime::LockError>(())
/// ```
impl<S: Store> Store for Arc<S> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    fn key(&self, prefix: &str, name: &str) -> String {
        (**self).key(prefix, name)
    }

    fn name_in<'k>(&self, prefix: &str, key: &'k str) -> &'k str {
        (**self).name_in(prefix, key)
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        (**self).try_acquire(request)
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        (**self).release(key, token)
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        (**self).extend(key, token, ttl)
    }

    fn watch<'a>(&'a self, key: &'a str, waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        (**self).watch(key, waiter)
    }

    fn shared(&self) -> Option<&dyn SharedLocks> {
        (**self).shared()
    }

    fn several_keys(&self) -> Option<&dyn SeveralKeys> {
        (**self).several_keys()
    }

    fn operators(&self) -> Option<&dyn Operators> {
        (**self).operators()
    }

    fn sessions(&self) -> Option<&dyn Sessions> {
        (**self).sessions()
    }
}

/// The call of a part the store does not have: it fails with [`StoreError::Unsupported`].
pub(crate) fn unsupported<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Err(StoreError::Unsupported)))
}
