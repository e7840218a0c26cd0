//! What operators do with Redis locks (`lockctl`, [`Backend::inspect`](crate::Backend::inspect)):
//! read one, list them with `SCAN` (never `KEYS`, which blocks the server), and delete one
//! whoever holds it. One server's and a cluster's stores share these.

use std::time::Duration;

use redis::Value;

use super::{script, RedisStore};
use crate::store::{
    refuse_shared, Finding, Operators, StoreError, StoreFuture, StoredLock, StoredShare,
};

/// How many keys one `SCAN` step looks at.
const SCAN_COUNT: usize = 1000;

/// The lock `{ value, pttl, counter }` (the reply of `inspect.lua`) describes, if it is held.
pub(super) fn stored(key: &str, reply: Value) -> Result<Option<StoredLock>, StoreError> {
    let Value::Array(parts) = reply else {
        return Err(format!("unexpected reply to the inspect script: {reply:?}").into());
    };
    let mut parts = parts.into_iter();
    let first = parts.next().unwrap_or(Value::Nil);
    let second = parts.next().unwrap_or(Value::Nil);
    let counter: Option<String> = redis::from_redis_value(parts.next().unwrap_or(Value::Nil))?;
    let fence = counter.and_then(|c| c.parse().ok());
    if let Value::Array(live) = first {
        // Readers or a semaphore's permits hold the key: `{ member, left, ... }`.
        let permits: u32 = redis::from_redis_value(second)?;
        let mut sharers = Vec::with_capacity(live.len() / 2);
        let mut live = live.into_iter();
        while let (Some(member), Some(left)) = (live.next(), live.next()) {
            let member: String = redis::from_redis_value(member)?;
            let left: i64 = redis::from_redis_value(left)?;
            let left = Duration::from_millis(left.max(0).unsigned_abs());
            sharers.push(StoredShare::new(member, Some(left)));
        }
        if sharers.is_empty() {
            return Ok(None);
        }
        let mut lock = StoredLock::shared(key, StoredLock::shared_kind(permits), sharers);
        lock.fence = fence;
        return Ok(Some(lock));
    }
    let value: Option<String> = redis::from_redis_value(first)?;
    let Some(value) = value else {
        return Ok(None);
    };
    let left: i64 = redis::from_redis_value(second)?;
    let mut lock = StoredLock::new(key, value);
    // -1: no expiry (written by hand); -2 cannot happen with a value.
    lock.remaining = u64::try_from(left).ok().map(Duration::from_millis);
    lock.fence = fence;
    Ok(Some(lock))
}

/// The locks at `keys` that are still held once looked at (one may be released between
/// the listing and the look).
pub(super) async fn held(
    store: &impl Operators,
    keys: Vec<String>,
) -> Result<Vec<StoredLock>, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(lock) = store.inspect(&key).await? {
            found.push(lock);
        }
    }
    Ok(found)
}

/// `pattern` with `[` and `]` quoted: the runtime's globs know `*`, `?` and `\` only (as
/// the memory and ZooKeeper stores match them), where Redis would read a character class.
fn literal_brackets(pattern: &str) -> String {
    let mut quoted = String::with_capacity(pattern.len() + 4);
    let mut escaped = false;
    for c in pattern.chars() {
        if !escaped && (c == '[' || c == ']') {
            quoted.push('\\');
        }
        escaped = !escaped && c == '\\';
        quoted.push(c);
    }
    quoted
}

/// Every lock key on the server `send` talks to that matches `pattern`, without fencing
/// counters: `SCAN` steps until the cursor comes back to 0.
pub(super) async fn scan<F, Fut>(pattern: &str, mut send: F) -> Result<Vec<String>, StoreError>
where
    F: FnMut(redis::Cmd) -> Fut,
    Fut: std::future::Future<Output = Result<Value, StoreError>>,
{
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let mut step = redis::cmd("SCAN");
        step.arg(cursor)
            .arg("MATCH")
            .arg(literal_brackets(pattern))
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, batch): (u64, Vec<String>) = redis::from_redis_value(send(step).await?)?;
        // A lock key ends with its hash tag's `}`; its counter, permit count and writer's
        // mark have a suffix after it.
        keys.extend(batch.into_iter().filter(|k| k.ends_with('}')));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

impl Operators for RedisStore {
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
            let fence_key = script::fence_key(key);
            let call = self.scripts.inspect_call(key, &fence_key);
            let reply = self.scripts.inspect.run(&call, &mut conn).await;
            stored(key, reply.map_err(|e| self.failed(e))?)
        })
    }

    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        Box::pin(async move {
            let conn = self.conn.get().await.map_err(|e| self.failed(e))?;
            let keys = scan(pattern, |step| {
                let mut conn = conn.clone();
                async move {
                    let reply = step.query_async(&mut conn).await;
                    reply.map_err(|e| self.failed(e))
                }
            })
            .await?;
            held(self, keys).await
        })
    }

    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
            let fence_key = script::fence_key(key);
            let call = self.scripts.force_release_call(key, &fence_key, false);
            let reply = self.scripts.inspect.run(&call, &mut conn).await;
            refuse_shared(stored(key, reply.map_err(|e| self.failed(e))?)?)
        })
    }

    fn diagnose<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Finding>> {
        self.diagnose_store(key)
    }
}

#[cfg(test)]
mod tests {
    use super::literal_brackets;

    #[test]
    fn brackets_are_literal_in_a_scan_pattern() {
        assert_eq!(literal_brackets("lock:{a[1]*}"), "lock:{a\\[1\\]*}");
        assert_eq!(literal_brackets("lock:{a\\[1}"), "lock:{a\\[1}");
        assert_eq!(literal_brackets("lock:{*}"), "lock:{*}");
    }
}
