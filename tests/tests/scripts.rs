//! Each Lua script of the Redis store, called directly against a real server, for the
//! contract its header states.

use redis::{aio::MultiplexedConnection, Script};

use lock_tests::RedisServer;

const ACQUIRE: &str = include_str!("../../lock-runtime/src/store/redis/scripts/acquire.lua");
const RELEASE: &str = include_str!("../../lock-runtime/src/store/redis/scripts/release.lua");
const EXTEND: &str = include_str!("../../lock-runtime/src/store/redis/scripts/extend.lua");

async fn connect(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn acquire(
    conn: &mut MultiplexedConnection,
    fence: Option<&str>,
    token: &str,
    reclaim: bool,
) -> i64 {
    let script = Script::new(ACQUIRE);
    let mut call = script.key("lock:{k}");
    if let Some(fence) = fence {
        call.key(fence);
    }
    call.arg(token)
        .arg(10_000)
        .arg(u8::from(reclaim))
        .arg(60_000)
        .invoke_async(conn)
        .await
        .expect("acquire script")
}

/// -1 - the remaining lease in ms: the lease left, from a busy answer.
fn busy_for(reply: i64) -> Option<i64> {
    (reply < 0).then_some(-reply - 1)
}

fn server_clock_us(server: &RedisServer) -> i64 {
    let reply = server.raw(&["TIME"]);
    let numbers: Vec<i64> = reply.lines().filter_map(|line| line.parse().ok()).collect();
    numbers[0] * 1_000_000 + numbers[1]
}

#[tokio::test]
async fn acquire_takes_a_free_lock_refuses_a_held_one_and_reclaims_its_own() {
    let server = RedisServer::start();
    let mut conn = connect(&server).await;
    assert_eq!(acquire(&mut conn, None, "t1", false).await, 0);
    assert!(server.raw(&["GET", "lock:{k}"]).contains("t1"));
    let pttl: i64 = server.raw(&["PTTL", "lock:{k}"])[1..]
        .trim()
        .parse()
        .expect("pttl");
    assert!((9_000..=10_000).contains(&pttl), "{pttl}");
    // Busy, with the holder's remaining lease.
    let left = busy_for(acquire(&mut conn, None, "t2", false).await).expect("busy");
    assert!((9_000..=10_000).contains(&left), "{left}");
    assert!(
        busy_for(acquire(&mut conn, None, "t2", true).await).is_some(),
        "not t2's"
    );
    assert!(
        busy_for(acquire(&mut conn, None, "t1", false).await).is_some(),
        "no reclaim asked"
    );
    assert_eq!(
        acquire(&mut conn, None, "t1", true).await,
        0,
        "t1 reclaims its own"
    );
}

#[tokio::test]
async fn acquire_fences_above_both_the_counter_and_the_clock_and_sets_the_counter_life() {
    let server = RedisServer::start();
    let mut conn = connect(&server).await;
    let fence = "lock:{k}:fence";
    // A missing counter: the clock.
    let before = server_clock_us(&server);
    let first = acquire(&mut conn, Some(fence), "t1", false).await;
    assert!(first >= before, "{first} below the clock {before}");
    assert!(server.raw(&["GET", fence]).contains(&first.to_string()));
    let life: i64 = server.raw(&["PTTL", fence])[1..]
        .trim()
        .parse()
        .expect("pttl");
    assert!((50_000..=60_000).contains(&life), "{life}");
    // A stale counter (an older snapshot): still the clock.
    server.raw(&["SET", fence, "5"]);
    server.raw(&["DEL", "lock:{k}"]);
    let second = acquire(&mut conn, Some(fence), "t2", false).await;
    assert!(second > first, "{second} after {first}");
    // A counter ahead of the clock (many acquisitions in one microsecond): one more.
    let ahead = server_clock_us(&server) + 1_000_000_000;
    server.raw(&["SET", fence, &ahead.to_string()]);
    server.raw(&["DEL", "lock:{k}"]);
    assert_eq!(
        acquire(&mut conn, Some(fence), "t3", false).await,
        ahead + 1
    );
    // Busy: the counter is not touched.
    assert!(busy_for(acquire(&mut conn, Some(fence), "t4", false).await).is_some());
    assert!(server
        .raw(&["GET", fence])
        .contains(&(ahead + 1).to_string()));
}

async fn release(conn: &mut MultiplexedConnection, token: &str) -> i64 {
    Script::new(RELEASE)
        .key("lock:{k}")
        .arg(token)
        .invoke_async(conn)
        .await
        .expect("release")
}

#[tokio::test]
async fn release_deletes_only_its_own_lock_and_publishes() {
    let server = RedisServer::start();
    let mut conn = connect(&server).await;
    server.raw(&["SET", "lock:{k}", "mine"]);
    let before = server.calls("publish");
    assert_eq!(release(&mut conn, "other").await, 0);
    assert!(server.raw(&["EXISTS", "lock:{k}"]).contains(":1"));
    assert_eq!(
        server.calls("publish"),
        before,
        "nothing released, nothing published"
    );
    assert_eq!(release(&mut conn, "mine").await, 1);
    assert!(server.raw(&["EXISTS", "lock:{k}"]).contains(":0"));
    assert_eq!(server.calls("publish"), before + 1, "one PUBLISH");
}

#[tokio::test]
async fn extend_resets_the_ttl_of_its_own_lock_only() {
    let server = RedisServer::start();
    let mut conn = connect(&server).await;
    let extend = Script::new(EXTEND);
    server.raw(&["SET", "lock:{k}", "mine", "PX", "1000"]);
    let theirs: i64 = extend
        .key("lock:{k}")
        .arg("other")
        .arg(60_000)
        .invoke_async(&mut conn)
        .await
        .expect("extend");
    assert_eq!(theirs, 0);
    let mine: i64 = extend
        .key("lock:{k}")
        .arg("mine")
        .arg(60_000)
        .invoke_async(&mut conn)
        .await
        .expect("extend");
    assert_eq!(mine, 1);
    let pttl: i64 = server.raw(&["PTTL", "lock:{k}"])[1..]
        .trim()
        .parse()
        .expect("pttl");
    assert!(pttl > 50_000, "{pttl}");
}

/// The library sends its scripts by hash; a server that forgot them (`SCRIPT FLUSH`, a
/// restart, a failover) gets them loaded again, and the call that met `NOSCRIPT` succeeds.
#[tokio::test]
async fn the_library_loads_its_scripts_again_when_the_server_forgot_them() {
    use std::time::Duration;

    use lock_runtime::{Backend, LockOptions};

    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    let key = backend.key_for("flushed");
    let fenced = LockOptions::new(Duration::from_secs(10)).fencing(true);

    // Each script meets NOSCRIPT once: the fenced acquire, extend, release.
    server.raw(&["SCRIPT", "FLUSH"]);
    let mut guard = backend.acquire("flushed", &fenced).await.expect("acquire");
    let first = guard.fencing_token().expect("a fencing token");
    server.raw(&["SCRIPT", "FLUSH"]);
    guard
        .extend(Duration::from_secs(30))
        .await
        .expect("extend after SCRIPT FLUSH");
    let pttl: i64 = server.raw(&["PTTL", &key])[1..]
        .trim()
        .parse()
        .expect("pttl");
    assert!(pttl > 10_000, "the extend reset the TTL: {pttl} ms left");
    server.raw(&["SCRIPT", "FLUSH"]);
    guard.release().await.expect("release after SCRIPT FLUSH");
    assert_eq!(server.raw(&["EXISTS", &key]).trim(), ":0");
    assert_eq!(
        server.calls("script|load"),
        3,
        "one load per forgotten script"
    );

    // The later flushes forgot the acquire script again; the release script stays loaded.
    let again = backend.acquire("flushed", &fenced).await.expect("acquire");
    assert!(again.fencing_token().expect("a fencing token") > first);
    again.release().await.expect("release");
    assert_eq!(
        server.calls("script|load"),
        4,
        "only what was forgotten is loaded"
    );
}

const WITHDRAW: &str = include_str!("../../lock-runtime/src/store/redis/scripts/withdraw.lua");

/// A waiting writer's mark (its token at `<key>:writer`) is deleted by its own token only,
/// and the lock's channel is told.
#[tokio::test]
async fn withdraw_deletes_only_its_own_mark_and_publishes() {
    let server = RedisServer::start();
    let conn = connect(&server).await;
    let withdraw = |token: &'static str| {
        let mut conn = conn.clone();
        async move {
            let gone: i64 = Script::new(WITHDRAW)
                .key("lock:{k}")
                .key("lock:{k}:writer")
                .arg(token)
                .invoke_async(&mut conn)
                .await
                .expect("withdraw script");
            gone
        }
    };
    assert_eq!(withdraw("w1").await, 0, "no mark");
    server.raw(&["SET", "lock:{k}:writer", "w1", "PX", "1000"]);
    assert_eq!(withdraw("w2").await, 0, "another writer's mark");
    assert!(server.raw(&["GET", "lock:{k}:writer"]).contains("w1"));
    let before = server.calls("publish");
    assert_eq!(withdraw("w1").await, 1);
    assert_eq!(server.raw(&["EXISTS", "lock:{k}:writer"]).trim(), ":0");
    assert_eq!(server.calls("publish"), before + 1);
}
