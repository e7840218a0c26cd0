//! Takes one fenced lock over and over for a while, as one of several processes competing
//! for it, and prints each holding: `<enter µs> <exit µs> <fencing token>` (wall clock,
//! microseconds since the epoch), so the test can check that no two holdings overlap and
//! that tokens only grow. Errors (a failover in progress) are counted on stderr. Through
//! Redlock (`redis+redlock://`), which has no fencing tokens, the lock is unfenced and the
//! token printed is 0.
//!
//! Usage: `lock-loop <url> <lock name> <seconds> <ttl ms>`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockOptions};
use lock_tests::now_us;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, name, seconds, ttl_ms] = args.as_slice() else {
        return Err("usage: lock-loop <url> <lock name> <seconds> <ttl ms>".into());
    };
    let until = Instant::now() + Duration::from_secs_f64(seconds.parse()?);
    let options = LockOptions::new(Duration::from_millis(ttl_ms.parse()?))
        .wait(Duration::from_secs(2))
        .fencing(!url.starts_with("redis+redlock://"));
    let backend = Backend::builder()
        // On PostgreSQL, the test's own table.
        .postgres_table(
            std::env::var("LOCK_TESTS_TABLE")
                .unwrap_or_else(|_| lock_runtime::DEFAULT_POSTGRES_TABLE.to_owned()),
        )
        .op_timeout(Duration::from_millis(500))
        // On ZooKeeper the TTL must cover the session.
        .zookeeper_session_timeout(Duration::from_millis(ttl_ms.parse()?))
        .connect(url)
        .await?;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    while Instant::now() < until {
        match backend.acquire(name, &options).await {
            Ok(guard) => {
                let enter = now_us();
                tokio::time::sleep(Duration::from_millis(2)).await;
                let exit = now_us();
                // A holding that outlived its lease is no holding: say so.
                let fence = guard.fencing_token().unwrap_or(0);
                let expired = if guard.is_expired() { " expired" } else { "" };
                println!("{enter} {exit} {fence}{expired}");
                let _ = guard.release().await;
            }
            Err(e) => {
                let kind = format!("{e:?}");
                let kind = kind.split([' ', '{', '(']).next().unwrap_or("?").to_owned();
                *errors.entry(kind).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    eprintln!("errors: {errors:?}");
    Ok(())
}
