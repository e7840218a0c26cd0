//! The Redis store. One round trip per operation, on one multiplexed connection shared by
//! every task, which reconnects by itself after the server restarts:
//! - acquire: `SET key token NX PX ttl`, or, with a fencing token (or to reclaim a key an
//!   earlier request of ours may have taken), a script that also increments the counter;
//! - release: a compare-and-delete script that also publishes on the lock's channel, so
//!   waiters in other processes retry at once;
//! - extend: a compare-and-pexpire script.
//!
//! Scripts are sent with EVALSHA and loaded again on NOSCRIPT.

use std::{sync::Arc, time::Duration};

use redis::{Script, Value};

use super::{
    redis_conn::Connection, redis_pubsub::Subscriber, ttl_millis, AcquireRequest, Attempt, Store,
    StoreError, StoreFuture, Watch,
};
use crate::{error::LockError, token::Token};

/// The scripted acquire, for what `SET NX PX` alone cannot do. Takes the lock if it is free,
/// or, with ARGV[3] = 1 (reclaim), if it already holds our token (an earlier request whose
/// outcome was unknown took it). Then, given a second key, increments the lock's fencing
/// counter, or, when the counter is missing (never used, or lost with the store's data),
/// starts it from the store's clock in microseconds, so tokens never go backwards.
/// Returns -1 when busy, 0 when acquired without a fencing token, or the token.
const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and (ARGV[3] ~= '1' or holder ~= ARGV[1]) then
    return -1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if not KEYS[2] then
    return 0
end
local fence = redis.call('INCR', KEYS[2])
if fence == 1 then
    local now = redis.call('TIME')
    fence = tonumber(now[1]) * 1000000 + tonumber(now[2])
    redis.call('SET', KEYS[2], string.format('%.0f', fence))
end
return fence
";

/// Compare-and-delete, then wake the waiters of other processes.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', KEYS[1], '')
    return 1
end
return 0
";

const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

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
    acquire: Script,
    release: Script,
    extend: Script,
    subscriber: Subscriber,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://`, `redis+unix://`, `unix://`), giving up after `bound`.
    /// Later reconnections happen by themselves, on the next call after a failure.
    pub(crate) async fn connect(
        client: redis::Client,
        bound: Duration,
        restart_guard: Option<Duration>,
        strict: bool,
    ) -> Result<Self, LockError> {
        let conn = Connection::open(client.clone(), bound, restart_guard, strict)
            .await
            .map_err(|error| match error {
                None => LockError::Timeout {
                    operation: "connect",
                    after: bound,
                },
                Some(e) if e.is_timeout() => LockError::Timeout {
                    operation: "connect",
                    after: bound,
                },
                Some(e) => LockError::Backend {
                    operation: "connect",
                    source: Box::new(e),
                },
            })?;
        Ok(Self {
            conn,
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
            extend: Script::new(EXTEND),
            subscriber: Subscriber::new(client, bound),
        })
    }
}

/// The client for `url`; for `rediss://`, over TLS, trusting `tls_root` (PEM) if given,
/// else the system's roots.
pub(crate) fn client(url: &str, tls_root: Option<Vec<u8>>) -> Result<redis::Client, LockError> {
    let malformed =
        |e: redis::RedisError| LockError::invalid(format!("malformed Redis URL `{url}`: {e}"));
    if !url.starts_with("rediss://") {
        return redis::Client::open(url).map_err(malformed);
    }
    #[cfg(feature = "tls")]
    {
        // One process-wide crypto provider; another part of the program may have set it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: tls_root,
        };
        redis::Client::build_with_tls(url, certificates).map_err(malformed)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = tls_root;
        Err(LockError::invalid(format!(
            "`{url}` asks for TLS: enable lock-runtime's `tls` feature, or use `redis://`"
        )))
    }
}

impl RedisStore {
    /// Passes a request's error on, replacing the connection first if it broke.
    fn failed(&self, error: redis::RedisError) -> StoreError {
        self.conn.check(&error);
        Box::new(error)
    }
}

impl Store for RedisStore {
    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        let mut conn = self.conn.get();
        let ttl = ttl_millis(request.ttl);
        Box::pin(async move {
            if !self.conn.grants_allowed() {
                // The store restarted: a holder from before may still be at work.
                return Ok(Attempt::Busy);
            }
            if !request.reclaim && request.fence_key.is_none() {
                // The common case: one plain command.
                let reply: Value = redis::cmd("SET")
                    .arg(request.key)
                    .arg(request.token.as_bytes())
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.failed(e))?;
                return match reply {
                    Value::Okay => Ok(Attempt::Acquired { fence: None }),
                    Value::Nil => Ok(Attempt::Busy),
                    other => Err(format!("unexpected reply to SET NX: {other:?}").into()),
                };
            }
            let mut invocation = self.acquire.key(request.key);
            if let Some(fence_key) = request.fence_key {
                invocation.key(fence_key);
            }
            let reply: i64 = invocation
                .arg(request.token.as_bytes())
                .arg(ttl)
                .arg(u8::from(request.reclaim))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.failed(e))?;
            Ok(match (reply, request.fence_key) {
                (-1, _) => Attempt::Busy,
                (_, None) => Attempt::Acquired { fence: None },
                (fence, Some(_)) => Attempt::Acquired {
                    fence: u64::try_from(fence).ok(),
                },
            })
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        let mut conn = self.conn.get();
        Box::pin(async move {
            let deleted: i64 = self
                .release
                .key(key)
                .arg(token.as_bytes())
                .invoke_async(&mut conn)
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
        let mut conn = self.conn.get();
        Box::pin(async move {
            let extended: i64 = self
                .extend
                .key(key)
                .arg(token.as_bytes())
                .arg(ttl_millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.failed(e))?;
            Ok(extended == 1)
        })
    }

    fn watch<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Watch> {
        Box::pin(async move { Ok(self.subscriber.watch(key).await) })
    }
}
