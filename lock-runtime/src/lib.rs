//! Distributed locks as an attribute.
//!
//! ```
//! use lock_runtime::{distributed_lock, Backend, LockError};
//!
//! /// Runs only while this process holds the lock `order:<id>`, however many processes
//! /// call it at once.
//! #[distributed_lock(key = "order:{order_id}", ttl = "10s", wait = "2s")]
//! async fn charge(order_id: u64) -> Result<&'static str, LockError> {
//!     Ok("charged")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), LockError> {
//! // Once, at start-up: Redis with `Backend::redis("redis://127.0.0.1/").await?`, or
//! // `lock_runtime::init_from_env().await?` to read the URL from `LOCK_RUNTIME_URL`.
//! lock_runtime::init(Backend::memory())?;
//! assert_eq!(charge(7).await?, "charged");
//! # Ok(()) }
//! ```
//!
//! The attribute is sugar over [`with_lock`] (and [`acquire`] for a guard by hand):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lock_runtime::LockError> {
//! use lock_runtime::{Backend, LockOptions};
//! use std::time::Duration;
//!
//! let backend = Backend::memory();
//! let options = LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(2));
//! let receipt = backend.with_lock("order:7", &options, async { "charged" }).await?;
//! assert_eq!(receipt, "charged");
//! # Ok(()) }
//! ```
//!
//! Features: `macros` (default: the attribute), `metrics` (default: counters, histograms
//! and a gauge per lock on the `metrics` facade), `redis` (default: `redis://`,
//! `rediss://`, `redis+unix://` and [`Backend::redis`]; leave the default features out for
//! a build without the `redis` crate, on PostgreSQL, ZooKeeper or memory alone), `tls` (`rediss://`, `rediss+cluster://`,
//! and PostgreSQL URLs with `sslmode=require`), `axum` (`LockError` as a response),
//! `sentinel` (`redis+sentinel://`), `cluster` (`redis+cluster://`), `redlock`
//! (`redis+redlock://`: a majority of independent servers), `zookeeper` (`zookeeper://`:
//! fair, session-based locks), `postgres` (`postgres://`: leases in a table, fencing tokens
//! from a sequence).
//!
//! For operators: every acquisition records its holder (host, process, function, time,
//! fencing token) in the same write; [`inspect`], [`Backend::inspect`], [`Backend::list`],
//! [`Backend::watch_lock`] and [`Backend::force_release`] read and clear locks, and the
//! `lockctl` command-line tool is built on them.
//!
//! # The protocol
//!
//! - **Acquire** is `SET key token NX PX ttl`, with a fresh 128-bit random token per
//!   acquisition: one round trip (a script when a fencing token is asked for).
//! - **Release** deletes the key only if it still holds our token (a compare-and-delete
//!   script sent with `EVALSHA`) and publishes on the lock's channel so waiters elsewhere
//!   retry at once; **extend** resets the TTL under the same check. Neither can touch a lock
//!   another owner took after our lease ran out, and both tell the caller with
//!   [`LockError::Lost`].
//! - **Waiting**: tasks of one process queue for a lock first come first served and only the
//!   first of them asks the store; it retries when a release is published, and on a short
//!   re-check timer in case that message is lost or the lock simply expired.
//! - Every store call is bounded by the backend's time bound: a dead or paused store gives
//!   [`LockError::Timeout`] or [`LockError::Backend`], never a hang, and never `Busy`.
//! - An acquire whose outcome is unknown (timed out, failed on the wire) is resolved through
//!   its token: the next try takes the lock back if it holds our token, and giving up (or
//!   dropping the future) deletes the key in the background if it does, so no lock is left
//!   orphaned for a whole TTL.
//! - A client that sees the Redis server restart or fail over (also behind a connection
//!   that stays open) grants no lock until every lease from before can have ended, and
//!   says so with [`LockError::Recovering`] ([`BackendBuilder::restart_guard`]).
//! - The body's lease ends a drift margin (1 % of the TTL plus 2 ms) before the store can
//!   expire the key; renewal runs as its own task and never stretches the lease.
//!
//! # What a TTL lock promises
//!
//! While the lease lasts, no other owner can take the lock. A holder that stalls past its
//! TTL (a long pause, a partition) loses the lock without being able to stop itself at
//! once; [`LockGuard::release`] and [`with_lock`] then report [`LockError::Lost`].
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acquire;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod backend;
mod builder;
mod doctor;
mod error;
mod guard;
mod holder;
mod inspect;
mod leader;
mod lease;
mod local;
mod metrics;
mod multi;
mod options;
mod redact;
mod registry;
mod run;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod token;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::store::DEFAULT_NOTIFICATION_IDLE;
#[cfg(feature = "zookeeper")]
#[cfg_attr(docsrs, doc(cfg(feature = "zookeeper")))]
pub use crate::store::DEFAULT_ZOOKEEPER_SESSION_TIMEOUT;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use crate::store::{DEFAULT_POSTGRES_CONNECTIONS, DEFAULT_POSTGRES_TABLE};
pub use crate::{
    backend::{Backend, DEFAULT_OP_TIMEOUT, DEFAULT_PREFIX, MAX_NAME_LEN, MAX_PREFIX_LEN, MAX_TTL},
    builder::{BackendBuilder, DEFAULT_HEALTH_INTERVAL},
    error::LockError,
    guard::LockGuard,
    holder::{Holder, LockInfo, Sharer, MAX_FUNCTION, MAX_HOST},
    inspect::{inspect, LockWatch, DEFAULT_WATCH_INTERVAL},
    leader::{campaign, lead, Leader, LeaderOptions, LeaderWatch, Leadership},
    metrics::UNNAMED,
    multi::MultiGuard,
    options::{LockMode, LockOptions, OnLost, DEFAULT_MAX_HOLD},
    registry::{client, init, init_from_env, register, URL_ENV},
    run::{fencing_token, fencing_token_of, with_lock, with_locks, with_permit},
    store::{Operation, StoreError},
    token::Token,
};

/// Takes the lock `key` in the client the options name (the default client unless
/// [`LockOptions::client`] says otherwise).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// lock_runtime::init(Backend::memory())?;
/// let guard = lock_runtime::acquire("cart:9", &LockOptions::new(Duration::from_secs(5))).await?;
/// // ... work while holding the lock ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
pub async fn acquire(key: &str, options: &LockOptions) -> Result<LockGuard, LockError> {
    client(options.client_name())?.acquire(key, options).await
}

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc(inline)]
#[doc = include_str!("attribute.md")]
pub use lock_macro::distributed_lock;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc(inline)]
#[doc = include_str!("semaphore.md")]
pub use lock_macro::distributed_semaphore;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc(inline)]
#[doc = include_str!("leader.md")]
pub use lock_macro::leader;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
