//! The Redis store: `SET NX PX` to acquire, compare-and-delete and compare-and-pexpire
//! scripts (sent with EVALSHA, loaded again on NOSCRIPT) to release and extend. One round
//! trip per operation, on one multiplexed connection shared by every task, which
//! reconnects by itself after the server restarts.

use std::time::Duration;

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Script, Value,
};

use super::{ttl_millis, Store, StoreError, StoreFuture};
use crate::{error::LockError, token::Token};

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
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
    conn: ConnectionManager,
    release: Script,
    extend: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://`, `rediss://`, `redis+unix://`, `unix://`), giving up after
    /// `bound`. Later reconnections happen by themselves, on the next call after a failure.
    pub(crate) async fn connect(url: &str, bound: Duration) -> Result<Self, LockError> {
        let client = redis::Client::open(url)
            .map_err(|e| LockError::invalid(format!("malformed Redis URL `{url}`: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(bound))
            // A backstop only: the runtime's own bound fires first.
            .set_response_timeout(Some(bound.saturating_mul(2)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let conn = tokio::time::timeout(bound, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| LockError::Timeout {
                operation: "connect",
                after: bound,
            })?
            .map_err(|e| LockError::Backend {
                operation: "connect",
                source: Box::new(e),
            })?;
        Ok(Self {
            conn,
            release: Script::new(RELEASE),
            extend: Script::new(EXTEND),
        })
    }
}

fn boxed(e: redis::RedisError) -> StoreError {
    Box::new(e)
}

impl Store for RedisStore {
    fn try_acquire<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let reply: Value = redis::cmd("SET")
                .arg(key)
                .arg(token.as_bytes())
                .arg("NX")
                .arg("PX")
                .arg(ttl_millis(ttl))
                .query_async(&mut conn)
                .await
                .map_err(boxed)?;
            match reply {
                Value::Okay => Ok(true),
                Value::Nil => Ok(false),
                other => Err(format!("unexpected reply to SET NX: {other:?}").into()),
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let deleted: i64 = self
                .release
                .key(key)
                .arg(token.as_bytes())
                .invoke_async(&mut conn)
                .await
                .map_err(boxed)?;
            Ok(deleted == 1)
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let extended: i64 = self
                .extend
                .key(key)
                .arg(token.as_bytes())
                .arg(ttl_millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(boxed)?;
            Ok(extended == 1)
        })
    }
}
