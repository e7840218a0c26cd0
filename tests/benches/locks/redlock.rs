//! The benchmark's hand-written Redlock floor: what a careful user would write with the
//! `redis` crate alone. `SET NX PX` on every server at once (one multiplexed connection
//! each), granted on a majority inside the validity; on a refusal, compare-and-delete on
//! the servers that said yes; release is compare-and-delete on every server at once.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::{aio::MultiplexedConnection, Script};

const TTL: Duration = Duration::from_secs(10);

/// The `redis://` URL of each server of a `redis+redlock://h1:p1,h2:p2,...` URL; `None` for
/// any other URL.
pub fn urls(url: &str) -> Option<Vec<String>> {
    let hosts = url.strip_prefix("redis+redlock://")?;
    Some(hosts.split(',').map(|h| format!("redis://{h}")).collect())
}

pub async fn connect(urls: &[String]) -> Vec<MultiplexedConnection> {
    let mut conns = Vec::new();
    for url in urls {
        let client = redis::Client::open(url.as_str()).expect("url");
        conns.push(
            client
                .get_multiplexed_async_connection()
                .await
                .expect("floor connection"),
        );
    }
    conns
}

/// Takes `key` on a majority; with `poll`, tries again every millisecond until it does.
pub async fn acquire(
    conns: &[MultiplexedConnection],
    script: &Script,
    key: &str,
    token: &str,
    poll: bool,
) {
    let quorum = conns.len() / 2 + 1;
    let validity = TTL - TTL / 100 - Duration::from_millis(2);
    loop {
        let started = Instant::now();
        let sets = conns.iter().map(|conn| {
            let mut conn = conn.clone();
            async move {
                let set: redis::RedisResult<redis::Value> = redis::cmd("SET")
                    .arg(key)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(TTL.as_millis() as u64)
                    .query_async(&mut conn)
                    .await;
                matches!(set, Ok(redis::Value::Okay))
            }
        });
        let taken = join_all(sets).await;
        if taken.iter().filter(|t| **t).count() >= quorum && started.elapsed() < validity {
            return;
        }
        let undo = conns
            .iter()
            .zip(&taken)
            .filter(|(_, t)| **t)
            .map(|(conn, _)| {
                let mut conn = conn.clone();
                async move {
                    let _: redis::RedisResult<i64> =
                        script.key(key).arg(token).invoke_async(&mut conn).await;
                }
            });
        join_all(undo).await;
        assert!(poll, "floor: the key was taken");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Compare-and-delete on every server at once; a majority must have held it.
pub async fn release(conns: &[MultiplexedConnection], script: &Script, key: &str, token: &str) {
    let deletes = conns.iter().map(|conn| {
        let mut conn = conn.clone();
        async move {
            let deleted: i64 = script
                .key(key)
                .arg(token)
                .invoke_async(&mut conn)
                .await
                .expect("floor release");
            deleted
        }
    });
    let deleted: i64 = join_all(deletes).await.into_iter().sum();
    assert!(
        deleted as usize > conns.len() / 2,
        "floor: released on a minority"
    );
}
