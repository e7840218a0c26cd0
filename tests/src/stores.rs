//! Two clients of one store for the scenarios that run on several stores, and the guarded
//! functions and fenced resource the tests share.

use std::{sync::Arc, time::Duration};

use crate::*;

/// Runs each scenario (an `async fn(Stores)`) against both stores, as the tests
/// `<scenario>::memory` and `<scenario>::redis`.
#[macro_export]
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario($crate::Stores::memory()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$scenario($crate::Stores::redis().await).await;
            }
        }
    )*};
}

/// Two clients of one lock store, as two processes would have: two Redis connections to
/// one server, or two backends over one in-memory store (each with its own in-process
/// queue, so they meet only in the store).
#[derive(Debug)]
pub struct Stores {
    /// The Redis server, for the Redis flavour.
    pub server: Option<RedisServer>,
    /// The first client.
    pub a: lock_runtime::Backend,
    /// The second client.
    pub b: lock_runtime::Backend,
}

impl Stores {
    /// Two backends over one in-memory store.
    pub fn memory() -> Self {
        let shared = Arc::new(lock_runtime::store::MemoryStore::new());
        let client = || {
            lock_runtime::Backend::builder()
                .store(shared.clone())
                .expect("memory backend")
        };
        Self {
            server: None,
            a: client(),
            b: client(),
        }
    }

    /// Two clients of the tests' PostgreSQL server, in a table of their own.
    pub async fn postgres() -> Self {
        let table = unique_table("stores");
        let client = || async {
            lock_runtime::Backend::builder()
                .postgres_table(table.clone())
                .connect(&postgres_url())
                .await
                .expect("connect to PostgreSQL")
        };
        let (a, b) = (client().await, client().await);
        Self { server: None, a, b }
    }

    /// Two sessions of one ZooKeeper server, shared by every caller in this test process
    /// (a JVM per test would be slow, and several at once starve a small machine); each
    /// call's locks live under a root of their own. The server is stopped when the process
    /// ends (see `reap_with_this_process`).
    pub async fn zookeeper() -> Self {
        static SERVER: tokio::sync::OnceCell<ZooKeeperServer> = tokio::sync::OnceCell::const_new();
        static ROOTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let server = SERVER
            .get_or_init(|| async {
                tokio::task::spawn_blocking(ZooKeeperServer::start)
                    .await
                    .expect("start ZooKeeper")
            })
            .await;
        let root = format!(
            "/stores-{}",
            ROOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let client = || async {
            lock_runtime::Backend::builder()
                .zookeeper_session_timeout(Duration::from_secs(2))
                .zookeeper_root(root.clone())
                .connect(&server.url())
                .await
                .expect("connect to ZooKeeper")
        };
        let (a, b) = (client().await, client().await);
        Self { server: None, a, b }
    }

    /// Two connections to a fresh `redis-server`.
    pub async fn redis() -> Self {
        let server = RedisServer::start();
        let a = lock_runtime::Backend::redis(&server.url())
            .await
            .expect("connect client a");
        let b = lock_runtime::Backend::redis(&server.url())
            .await
            .expect("connect client b");
        Self {
            server: Some(server),
            a,
            b,
        }
    }
}

/// The error of the guarded functions the tests share.
#[derive(Debug)]
pub enum TestError {
    /// The lock could not be had, or was lost.
    Lock(lock_runtime::LockError),
    /// The test's own Redis traffic failed.
    Redis(redis::RedisError),
}

impl From<lock_runtime::LockError> for TestError {
    fn from(e: lock_runtime::LockError) -> Self {
        Self::Lock(e)
    }
}

impl From<redis::RedisError> for TestError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

/// A read-modify-write of `counter:{name}` in Redis that is only correct under the lock,
/// with an overlap detector: `overlaps:{name}` counts the times a caller found another
/// caller inside. Shared by the tests and the `guarded-worker` binary, so several processes
/// run the very same annotated function.
#[lock_runtime::distributed_lock(key = "counter:{name}", ttl = "10s", wait = "60s")]
pub async fn guarded_increment(
    conn: &mut redis::aio::MultiplexedConnection,
    name: &str,
) -> Result<(), TestError> {
    use redis::AsyncCommands as _;
    let inside: i64 = conn.incr(format!("inside:{name}"), 1).await?;
    if inside != 1 {
        let _: i64 = conn.incr(format!("overlaps:{name}"), 1).await?;
    }
    let seen: Option<i64> = conn.get(format!("counter:{name}")).await?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let _: () = conn
        .set(format!("counter:{name}"), seen.unwrap_or(0) + 1)
        .await?;
    let _: i64 = conn.decr(format!("inside:{name}"), 1).await?;
    Ok(())
}

/// The fenced resource of the fault tests: a value in a Redis server of its own that
/// accepts a write only with a fencing token strictly higher than every one it has seen
/// (each holder writes once, so a repeated token is a second holder).
/// Returns whether the write was accepted.
pub async fn fenced_write(
    resource: &mut redis::aio::MultiplexedConnection,
    token: u64,
    value: &str,
) -> Result<bool, redis::RedisError> {
    const WRITE: &str = r"
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > highest then
    redis.call('SET', KEYS[1], ARGV[1])
    redis.call('SET', KEYS[2], ARGV[2])
    return 1
end
return 0
";
    let accepted: i64 = redis::Script::new(WRITE)
        .key("highest-token")
        .key("value")
        .arg(token)
        .arg(value)
        .invoke_async(resource)
        .await?;
    Ok(accepted == 1)
}
