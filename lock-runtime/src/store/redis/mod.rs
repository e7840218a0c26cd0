//! The Redis store. One round trip per operation, on one multiplexed connection shared by
//! every task, which replaces itself when it breaks, goes silent or reaches a replica
//! (`conn.rs`), with release notifications on a connection of their own (`pubsub.rs`):
//! - acquire: `SET key token NX PX ttl`; or a script, with a fencing token, to reclaim a
//!   key an earlier request of ours may have taken, or for a waiter that wants the
//!   holder's remaining lease;
//! - release: a compare-and-delete script that also publishes on the lock's channel, so
//!   waiters in other processes retry at once;
//! - extend: a compare-and-pexpire script.
//!
//! Scripts are sent with EVALSHA and loaded again on NOSCRIPT. Each lives in its own file
//! under `scripts/`, which states its contract.
//!
//! The commands the library sends, for an ACL user: `SET`, `EVALSHA`, `SCRIPT LOAD`,
//! `SUBSCRIBE`, `UNSUBSCRIBE`, `PING`, `SCAN` (for operators' listings only) and `INFO` (for restart and failover
//! detection: without it the library works, with a warning, but cannot see a restart
//! behind an open connection); inside the scripts `GET`, `SET`, `DEL`, `PEXPIRE`,
//! `PTTL`, `PUBLISH` and `TIME`. Keys: the prefix (`~lock:*` by default); channels: the same
//! (`&lock:*`).

use std::{sync::Arc, time::Duration};

use redis::{aio::MultiplexedConnection, Value};

pub use self::options::{RedisOptions, DEFAULT_NOTIFICATION_IDLE};
#[cfg(feature = "cluster")]
use self::url::TlsConfig;
use self::{
    command::{attempt, command, plain, set_nx, set_nx_attempt, set_nx_taken, wait},
    conn::Connection,
    pubsub::Subscriber,
    script::Scripts,
};
pub(crate) use self::{
    endpoint::Endpoint,
    options::RedisSettings,
    url::{cluster, endpoint},
};
use super::{
    braced_key, braced_name, AcquireRequest, Attempt, Capabilities, Operators, SeveralKeys,
    SharedLocks, Store, StoreError, StoreFuture, Together, TogetherFuture, Watch,
};
use crate::{error::LockError, redact, store::Operation, token::Token};

mod alive;
#[cfg(feature = "cluster")]
mod cluster;
mod command;
mod conn;
mod doctor;
mod endpoint;
mod info;
mod operate;
mod options;
mod pubsub;
mod script;
mod shared;
mod url;

/// How long a fencing counter lives after the last acquisition that used it: an hour.
/// Tokens stay increasing after it expires, since every token is at least the server's
/// clock in microseconds (and the highest this client has seen, see `conn.rs`); the
/// counter orders acquisitions within one microsecond, and guards against the server's
/// clock stepping back, by less than this, after the last use. An hour is far beyond the
/// steps clock discipline makes (NTP steps a clock that is off by more than 128 ms, once),
/// and keeps what a name used once leaves behind to an hour: a counter is about 130 bytes
/// of server memory, so a million names fenced an hour cost about 130 MB at most.
pub(crate) const FENCE_COUNTER_LIFE: Duration = Duration::from_secs(60 * 60);

/// Locks kept in a Redis server (or anything that speaks its protocol and runs Lua).
///
/// Build one through [`Backend::redis`](crate::Backend::redis) or
/// [`BackendBuilder::redis`](crate::BackendBuilder::redis), which also bound every call in time.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::Backend;
/// use std::time::Duration;
///
/// let backend = Backend::builder()
///     .op_timeout(Duration::from_millis(250))
///     .redis("redis://:password@10.0.0.5:6379/0")
///     .await?;
/// # Ok(()) }
/// ```
pub struct RedisStore {
    conn: Arc<Connection>,
    subscriber: Arc<Subscriber>,
    /// What a switch of primaries (Sentinel) moves; its follower ends with it.
    _switches: Arc<Switches>,
    replicas: Option<(u32, Duration)>,
    scripts: Scripts,
    /// Where connections go, and the time bound on one call (for `lockctl doctor`).
    endpoint: Endpoint,
    bound: Duration,
}

/// The connections a switch of primaries moves.
struct Switches {
    conn: Arc<Connection>,
    subscriber: Arc<Subscriber>,
}

impl Switches {
    fn moved(this: &Arc<Self>) {
        this.conn.moved();
        this.subscriber.moved();
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `endpoint` (made by [`endpoint`]; `password` is the one its URL carries,
    /// kept out of error messages), giving up after the time bound. Later reconnections
    /// happen by themselves, after a failed call or a failed health check.
    pub(crate) async fn connect(
        endpoint: Endpoint,
        password: Option<&str>,
        settings: RedisSettings,
    ) -> Result<Self, LockError> {
        let bound = settings.bound;
        let conn = Connection::open(endpoint.clone(), &settings)
            .await
            .map_err(|error| match error {
                Some(e) if !e.is_timeout() => LockError::Backend {
                    operation: Operation::Connect,
                    // A driver's message may quote what it was given.
                    source: redact::scrub(&e.to_string(), password).into(),
                },
                _ => LockError::Timeout {
                    operation: Operation::Connect,
                    after: bound,
                },
            })?;
        let subscriber = Arc::new(Subscriber::new(
            endpoint.clone(),
            bound,
            settings.notification_idle,
        ));
        let switches = Arc::new(Switches {
            conn: conn.clone(),
            subscriber: subscriber.clone(),
        });
        endpoint.follow_switches(bound, Arc::downgrade(&switches), Switches::moved);
        Ok(Self {
            conn,
            subscriber,
            _switches: switches,
            replicas: settings.replicas,
            scripts: Scripts::new(),
            endpoint,
            bound,
        })
    }
}

impl RedisStore {
    /// After a write, when grants need replicas' confirmation: how many replicas confirmed
    /// it (a `WAIT` of its own); `None` without that setting.
    async fn replicated(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> Result<Option<u32>, StoreError> {
        let Some((wanted, timeout)) = self.replicas else {
            return Ok(None);
        };
        let acknowledged: u32 = wait(wanted, timeout)
            .query_async(conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Some(acknowledged))
    }

    /// After taking `key` for `token`: fine when `acknowledged` replicas are enough; else
    /// deletes the key again (a lock only the primary knows could vanish in a failover) and
    /// fails with [`StoreError::NotAcknowledged`].
    async fn confirmed(
        &self,
        conn: &mut MultiplexedConnection,
        key: &str,
        token: &Token,
        acknowledged: u32,
    ) -> Result<(), StoreError> {
        let Some((wanted, timeout)) = self.replicas else {
            return Ok(());
        };
        if acknowledged >= wanted {
            return Ok(());
        }
        let call = self.scripts.release_call(key, token, false);
        let _: i64 = self
            .scripts
            .release
            .run(&call, conn)
            .await
            .map_err(|e| self.failed(e))?;
        Err(StoreError::NotAcknowledged {
            acknowledged,
            wanted,
            timeout,
        })
    }
}

impl RedisStore {
    /// Passes a request's error on, replacing the connection first if it broke; a request
    /// that ran out of time is [`StoreError::TimedOut`].
    fn failed(&self, error: redis::RedisError) -> StoreError {
        if error.is_timeout() {
            return StoreError::TimedOut;
        }
        self.conn.check(&error);
        StoreError::from(error)
    }
}

impl RedisStore {
    /// One try of [`Store::try_acquire`].
    async fn acquire_once(&self, request: AcquireRequest<'_>) -> Result<Attempt, StoreError> {
        if request.kind.is_shared() {
            return self.acquire_shared(request).await;
        }
        let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
        if let Some(left) = self.conn.hold(request.ttl) {
            // The store restarted or failed over: a holder from before may still work.
            return Ok(Attempt::Recovering { left });
        }
        if plain(&request) {
            // The common case: one plain command.
            let set = set_nx(&request);
            let (reply, acknowledged) = match self.replicas {
                None => (
                    set.query_async(&mut conn)
                        .await
                        .map_err(|e| self.failed(e))?,
                    None,
                ),
                // With `WAIT` in the same round trip.
                Some((wanted, timeout)) => {
                    let (reply, acknowledged): (Value, u32) = redis::pipe()
                        .add_command(set)
                        .add_command(wait(wanted, timeout))
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| self.failed(e))?;
                    (reply, Some(acknowledged))
                }
            };
            let taken = set_nx_taken(reply)?;
            if let (true, Some(acknowledged)) = (taken, acknowledged) {
                self.confirmed(&mut conn, request.key, request.token, acknowledged)
                    .await?;
            }
            return Ok(set_nx_attempt(taken));
        }
        let call = self.scripts.acquire_call(&request, self.conn.floor.get());
        let reply: i64 = self
            .scripts
            .acquire
            .run(&call, &mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        if reply >= 0 {
            if let Some(acknowledged) = self.replicated(&mut conn).await? {
                self.confirmed(&mut conn, request.key, request.token, acknowledged)
                    .await?;
            }
        }
        let attempt = attempt(reply, request.fencing);
        self.conn.floor.note(&attempt);
        Ok(attempt)
    }

    /// Runs `call`, and once more (told so) if it failed because the runtime that drove the
    /// connection shut down meanwhile: the next connection runs on the caller's runtime.
    async fn once_more<T, F>(&self, mut call: impl FnMut(bool) -> F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        match call(false).await {
            Err(error) if self.conn.lost_with_its_runtime(&error).await => call(true).await,
            outcome => outcome,
        }
    }
}

impl Store for RedisStore {
    /// Every kind; shared kinds (readers, permits) and several keys in one script only
    /// without [`replicas_acknowledge`](crate::BackendBuilder::replicas_acknowledge).
    ///
    /// Every request carries the client's response timeout, set to the time bound; the
    /// reconnection a call may make first is bounded by the connection timeout, also the
    /// bound; `watch` waits for its subscription at most the bound: the store bounds its
    /// own calls.
    fn capabilities(&self) -> Capabilities {
        let plain = Capabilities::new("redis")
            .fencing()
            .notifies_waiters()
            .operators()
            .bounds_own_calls();
        match self.replicas {
            None => plain.readers().permits().several_keys_at_once(),
            Some(_) => plain,
        }
    }

    /// `{prefix}{{name}}`: the name is a hash tag, so a lock's keys (its fencing counter,
    /// its permits, a writer's mark) lie in one cluster slot.
    fn key(&self, prefix: &str, name: &str) -> String {
        braced_key(prefix, name)
    }

    fn name_in<'k>(&self, prefix: &str, key: &'k str) -> &'k str {
        braced_name(prefix, key)
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        // Tried again, it reclaims what the first try may have taken.
        Box::pin(self.once_more(move |again| {
            self.acquire_once(AcquireRequest {
                reclaim: request.reclaim || again,
                ..request
            })
        }))
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        // Not tried again: a delete that did happen would then read as a lost lease.
        Box::pin(async move {
            let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
            let call = self.scripts.release_call(key, token, false);
            let deleted: i64 = self
                .scripts
                .release
                .run(&call, &mut conn)
                .await
                .map_err(|e| self.failed(e))?;
            Ok(deleted == 1)
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.conn.note_ttl(ttl);
        Box::pin(self.once_more(move |_| async move {
            let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
            let call = self.scripts.extend_call(key, token, ttl);
            let extended: i64 = self
                .scripts
                .extend
                .run(&call, &mut conn)
                .await
                .map_err(|e| self.failed(e))?;
            if extended == 1 {
                if let (Some(acknowledged), Some((wanted, timeout))) =
                    (self.replicated(&mut conn).await?, self.replicas)
                {
                    if acknowledged < wanted {
                        // The key keeps its new TTL on the primary, but the extension does
                        // not count: a failover now could bring back the old one.
                        return Err(StoreError::NotAcknowledged {
                            acknowledged,
                            wanted,
                            timeout,
                        });
                    }
                }
            }
            Ok(extended == 1)
        }))
    }

    fn watch<'a>(&'a self, key: &'a str, _waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        Box::pin(async move { Ok(self.subscriber.watch(key).await) })
    }

    fn shared(&self) -> Option<&dyn SharedLocks> {
        Some(self)
    }

    fn several_keys(&self) -> Option<&dyn SeveralKeys> {
        Some(self)
    }

    fn operators(&self) -> Option<&dyn Operators> {
        Some(self)
    }
}

impl SharedLocks for RedisStore {
    fn release_shared<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(self.release_one_shared(key, token))
    }

    fn withdraw<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, ()> {
        Box::pin(self.withdraw_writer(key, token))
    }

    fn extend_shared<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.extend_one_shared(key, token, ttl))
    }
}

impl SeveralKeys for RedisStore {
    /// One script for all keys, except with `replicas_acknowledge` (one by one, each
    /// confirmed).
    fn try_acquire_all<'a>(
        &'a self,
        keys: &'a [Together<'a>],
        token: &'a Token,
        ttl: Duration,
        holder: &'a str,
    ) -> TogetherFuture<'a> {
        if self.replicas.is_some() {
            return None;
        }
        Some(Box::pin(self.acquire_all(keys, token, ttl, holder)))
    }

    /// One script for all keys (not tried again, as one release is not).
    fn release_all<'a>(
        &'a self,
        keys: &'a [&'a str],
        token: &'a Token,
    ) -> Option<StoreFuture<'a, Vec<bool>>> {
        Some(Box::pin(async move {
            let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
            let call = self.scripts.release_all_call(keys, token, false);
            let released: Vec<i64> = self
                .scripts
                .release_all
                .run(&call, &mut conn)
                .await
                .map_err(|e| self.failed(e))?;
            Ok(released.into_iter().map(|r| r == 1).collect())
        }))
    }
}
