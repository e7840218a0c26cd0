//! One registry, many runtimes, on every store. Each `#[tokio::test]` below runs on a
//! runtime of its own, and the three of one store share one process-wide client, connected
//! by whichever test came first, on a runtime that may be gone by the time the others call
//! it. A fourth test connects on one runtime, shuts it down, and works on a second, as a
//! program that initialises before its main runtime would. No call may fail. A fifth, on
//! the same servers, takes a lock whose name is as long as every store takes
//! (`MAX_NAME_LEN`), and is refused one byte longer.
//!
//! Every store has a module of its own (its servers, started once and stopped by the last
//! of its tests to finish, even a failing one); the Redis one uses `init` (the default
//! client), the others `register` under the store's name. A store's tests take turns, each
//! starting a moment after the one before ended: what is promised is a client that works
//! after the runtime that connected it has shut down. (A call in flight on another runtime
//! at the very moment that runtime shuts down may fail once; see the closing notes.)

use std::{
    any::Any,
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use lock_runtime::{Backend, LockError, LockOptions};

/// The tests of one store: three sharing the registry, one on two runtimes, one of names.
const TESTS: usize = 5;
const TTL: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(10);
/// How long a test waits after the one before it ended, for its runtime to shut down.
const AFTER_THE_LAST: Duration = Duration::from_millis(300);

/// What one store's tests share.
struct Shared {
    /// The registered client's name; `None`: the default client (`init`).
    client: Option<&'static str>,
    /// The URL to connect to, once the servers run.
    url: tokio::sync::OnceCell<String>,
    servers: Mutex<Option<Box<dyn Any + Send>>>,
    finished: AtomicUsize,
    /// Held by the test running now.
    turn: tokio::sync::Mutex<()>,
}

/// Counts a test of `shared` as finished when dropped (also when it fails); the last one
/// stops the servers.
struct Finish(&'static Shared);

impl Drop for Finish {
    fn drop(&mut self) {
        if self.0.finished.fetch_add(1, Ordering::SeqCst) + 1 == TESTS {
            let servers = self
                .0
                .servers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            drop(servers);
        }
    }
}

impl Shared {
    const fn new(client: Option<&'static str>) -> Self {
        Self {
            client,
            url: tokio::sync::OnceCell::const_new(),
            servers: Mutex::new(None),
            finished: AtomicUsize::new(0),
            turn: tokio::sync::Mutex::const_new(()),
        }
    }

    /// This test's turn, once the previous test's runtime has had a moment to shut down.
    async fn turn(&'static self) -> tokio::sync::MutexGuard<'static, ()> {
        let turn = self.turn.lock().await;
        tokio::time::sleep(AFTER_THE_LAST).await;
        turn
    }

    /// The servers' URL, starting them (and registering the shared client) on the first
    /// call.
    async fn url<F, S>(&'static self, start: fn() -> F) -> &'static str
    where
        F: Future<Output = (S, String)>,
        S: Any + Send,
    {
        self.url
            .get_or_init(|| async {
                let (servers, url) = start().await;
                *self.servers.lock().unwrap() = Some(Box::new(servers));
                let backend = connect(&url).await;
                match self.client {
                    None => lock_runtime::init(backend).expect("init"),
                    Some(name) => lock_runtime::register(name, backend).expect("register"),
                }
                url
            })
            .await
    }

    /// The shared client, for a test that counts as finished when the first value drops.
    async fn shared_client<F, S>(
        &'static self,
        start: fn() -> F,
    ) -> (Finish, tokio::sync::MutexGuard<'static, ()>, Backend)
    where
        F: Future<Output = (S, String)>,
        S: Any + Send,
    {
        let finish = Finish(self);
        let turn = self.turn().await;
        self.url(start).await;
        let backend = lock_runtime::client(self.client).expect("the shared client");
        (finish, turn, backend)
    }

    /// One of the three tests that share the registered client.
    async fn use_the_shared_client<F, S>(&'static self, start: fn() -> F, test: &str)
    where
        F: Future<Output = (S, String)>,
        S: Any + Send,
    {
        let (_finish, _turn, backend) = self.shared_client(start).await;
        exercise(&backend, test).await;
    }

    /// Connects on a runtime that then shuts down, and works on a second one; a lock the
    /// second took while the first still ran stays held after it is gone.
    fn connect_on_one_runtime_work_on_another<F, S>(&'static self, start: fn() -> F)
    where
        F: Future<Output = (S, String)>,
        S: Any + Send,
    {
        let _finish = Finish(self);
        let _turn = self.turn.blocking_lock();
        std::thread::sleep(AFTER_THE_LAST);
        // Multi-threaded, so its tasks run while the second runtime works.
        let first = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("first runtime");
        let backend = first.block_on(async { connect(self.url(start).await).await });
        let second = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("second runtime");
        let held = second
            .block_on(backend.acquire("held-across", &LockOptions::new(TTL)))
            .expect("acquire while the first runtime runs");
        drop(first);
        second.block_on(async {
            exercise(&backend, "program").await;
            assert!(!held.is_expired());
            held.release()
                .await
                .expect("a lock held across the end of the runtime that connected");
        });
    }

    /// The longest name is taken, waited for (the release's notification names it) and
    /// inspected; one byte more is refused before any store call.
    async fn longest_name<F, S>(&'static self, start: fn() -> F)
    where
        F: Future<Output = (S, String)>,
        S: Any + Send,
    {
        let (_finish, _turn, backend) = self.shared_client(start).await;
        let longest = format!("long:{}", "n".repeat(lock_runtime::MAX_NAME_LEN - 5));
        let once = LockOptions::new(TTL);
        let held = backend
            .acquire(&longest, &once)
            .await
            .expect("the longest name");
        let info = backend.inspect(&longest).await.expect("inspect");
        assert!(info.is_some(), "the longest name is held");
        let (b, name, waiting) = (backend.clone(), longest.clone(), once.clone().wait(WAIT));
        let waiter = tokio::spawn(async move { b.acquire(&name, &waiting).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        held.release().await.expect("release the longest name");
        let taken = waiter
            .await
            .expect("task")
            .expect("the waiter, on the longest name");
        taken.release().await.expect("release");

        let over = format!("{longest}n");
        let refused = backend.acquire(&over, &once).await;
        assert!(
            matches!(&refused, Err(LockError::InvalidInput(m)) if m.contains("1025 bytes")),
            "{refused:?}"
        );
        let refused = backend.inspect(&over).await;
        assert!(
            matches!(refused, Err(LockError::InvalidInput(_))),
            "{refused:?}"
        );
    }
}

async fn connect(url: &str) -> Backend {
    Backend::builder()
        .health_interval(Duration::from_millis(50))
        .zookeeper_session_timeout(Duration::from_secs(4))
        // The servers are fresh: no hold for their youth (on by default for Redlock).
        .restart_guard_on_connect(false)
        .postgres_table(table())
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// The PostgreSQL tests' table, one for this process.
fn table() -> &'static str {
    static TABLE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| lock_tests::unique_table("runtimes"))
}

/// Locks taken through `backend`, with waiting (which subscribes to release
/// notifications), every one of which must succeed.
async fn exercise(backend: &Backend, name: &str) {
    // No wait: one try, so a call that met a dead connection would fail (a waiting call
    // would hide it by trying again).
    let once = LockOptions::new(TTL);
    let options = once.clone().wait(WAIT);
    for round in 0..10 {
        let key = format!("{name}:{}", round % 3);
        let value = backend
            .with_lock(&key, &once, async { round })
            .await
            .unwrap_or_else(|e: LockError| panic!("{name}, round {round}: {e}"));
        assert_eq!(value, round);
        // Contended: a waiter queued behind a holder, woken by the release.
        let held = backend
            .acquire("shared", &options)
            .await
            .unwrap_or_else(|e| panic!("{name}, round {round}: {e}"));
        let (b, waiting) = (backend.clone(), options.clone());
        let waiter = tokio::spawn(async move { b.acquire("shared", &waiting).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        held.release()
            .await
            .unwrap_or_else(|e| panic!("{name}, round {round}: release: {e}"));
        let taken = waiter
            .await
            .expect("task")
            .unwrap_or_else(|e| panic!("{name}, round {round}: the waiter: {e}"));
        // Released explicitly: a guard merely dropped as its runtime shuts down cannot be
        // released (no runtime to do it on) and keeps the lock until its TTL.
        taken
            .release()
            .await
            .unwrap_or_else(|e| panic!("{name}, round {round}: release: {e}"));
    }
}

/// The four tests of one store.
macro_rules! on_every_runtime {
    ($store:ident, $client:expr, $start:expr) => {
        mod $store {
            use super::*;

            static SHARED: Shared = Shared::new($client);

            #[tokio::test]
            async fn first_runtime() {
                SHARED.use_the_shared_client($start, "first").await;
            }

            #[tokio::test]
            async fn second_runtime() {
                // Start after the first test's runtime is likely gone.
                tokio::time::sleep(Duration::from_millis(300)).await;
                SHARED.use_the_shared_client($start, "second").await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn third_runtime() {
                tokio::time::sleep(Duration::from_millis(600)).await;
                SHARED.use_the_shared_client($start, "third").await;
            }

            #[test]
            fn connected_on_one_runtime_working_on_another() {
                SHARED.connect_on_one_runtime_work_on_another($start);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_longest_name_works_and_one_longer_is_refused() {
                SHARED.longest_name($start).await;
            }
        }
    };
}

on_every_runtime!(redis, None, || async {
    let server = lock_tests::RedisServer::start();
    let url = server.url();
    (server, url)
});

on_every_runtime!(memory, Some("memory"), || async {
    ((), "memory://".to_owned())
});

on_every_runtime!(sentinel, Some("sentinel"), || async {
    let primary = lock_tests::RedisServer::start();
    let sentinels = lock_tests::Sentinel::three("runtimes", &primary, 0).await;
    let url = lock_tests::Sentinel::url(&sentinels, "runtimes");
    ((primary, sentinels), url)
});

on_every_runtime!(cluster, Some("cluster"), || async {
    let cluster = lock_tests::RedisCluster::start(3, 0).await;
    let url = cluster.url();
    (cluster, url)
});

on_every_runtime!(redlock, Some("redlock"), || async {
    let servers = lock_tests::RedlockServers::start(3);
    let url = servers.url();
    (servers, url)
});

on_every_runtime!(zookeeper, Some("zookeeper"), || async {
    let server = lock_tests::ZooKeeperServer::start();
    let url = server.url();
    (server, url)
});

on_every_runtime!(postgres, Some("postgres"), || async {
    ((), lock_tests::postgres_url())
});
