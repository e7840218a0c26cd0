//! The store behind a lock: one trait, two implementations (Redis and in-memory).
//!
//! A store only knows full keys (already prefixed by the [`Backend`](crate::Backend)) and
//! owner tokens. Time bounds, retries, waiting and tracing live above it, in one place
//! for every store.

use std::{future::Future, pin::Pin, time::Duration};

pub use crate::error::StoreError;
use crate::token::Token;

pub(crate) mod memory;
pub(crate) mod redis;

pub use self::{memory::MemoryStore, redis::RedisStore};

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A place where locks live.
///
/// Every method is one atomic step on the store, and must keep these promises:
/// - `try_acquire` sets `key` to `token` with a time to live of `ttl` only if `key` is free
///   (absent or expired), and says whether it did;
/// - `release` deletes `key` only if it holds `token`, and says whether it did;
/// - `extend` resets the time to live of `key` to `ttl` only if it holds `token`, and says
///   whether it did.
///
/// The runtime bounds every call in time; a store need not.
///
/// ```
/// use lock_runtime::{store::{MemoryStore, Store, StoreFuture}, Backend, Token};
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
///     fn try_acquire<'a>(&'a self, key: &'a str, token: &'a Token, ttl: Duration) -> StoreFuture<'a, bool> {
///         self.acquires.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.inner.try_acquire(key, token, ttl)
///     }
///     fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
///         self.inner.release(key, token)
///     }
///     fn extend<'a>(&'a self, key: &'a str, token: &'a Token, ttl: Duration) -> StoreFuture<'a, bool> {
///         self.inner.extend(key, token, ttl)
///     }
/// }
///
/// let backend = Backend::builder().store(Counting::default())?;
/// # Ok::<(), lock_runtime::LockError>(())
/// ```
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Takes `key` for `token` for `ttl` if it is free. `Ok(false)` means another owner holds it.
    fn try_acquire<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Deletes `key` if it still holds `token`. `Ok(false)` means it did not.
    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool>;

    /// Resets the time to live of `key` to `ttl` if it still holds `token`.
    /// `Ok(false)` means it did not.
    fn extend<'a>(&'a self, key: &'a str, token: &'a Token, ttl: Duration)
        -> StoreFuture<'a, bool>;
}

/// A TTL in whole milliseconds, rounded up, as Redis' `PX` takes it.
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    let ms = ttl.as_millis() + u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}
