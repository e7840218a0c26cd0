//! A candidate in an election, for the tests that kill or freeze a leader: campaigns,
//! and while it leads writes its term to a fenced resource (a Redis server whose script
//! refuses a term lower than the highest it has seen, and logs every write it accepts)
//! every 20 ms. Prints `leading <term> <µs>` when elected, `refused <term>` when the
//! resource refuses a write, `lost <term>` when leadership ends, then sends one more write
//! with the old term, as a request already on its way would arrive, and prints `late
//! <term> refused` or `late <term> accepted`; then campaigns again.
//!
//! Usage: `leader-proc <store url> <resource redis url> <election> <ttl ms>`; on
//! PostgreSQL the table is `LOCK_TESTS_TABLE`; on ZooKeeper the session timeout is the TTL.

use std::time::Duration;

use lock_runtime::{Backend, LeaderOptions};
use lock_tests::now_us;

/// Accepts a write with `ARGV[1]`, the writer's term, unless a higher term wrote before;
/// logs each accepted term.
const FENCED_WRITE: &str = r"
local top = tonumber(redis.call('GET', KEYS[1]) or '0')
local term = tonumber(ARGV[1])
if term < top then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
";

/// Sends one write with `term`: whether the resource accepted it, `None` if it failed.
async fn write(
    script: &redis::Script,
    conn: &mut redis::aio::MultiplexedConnection,
    term: u64,
) -> Option<bool> {
    let accepted: Result<i64, _> = script
        .key("resource:top")
        .key("resource:log")
        .arg(term)
        .invoke_async(conn)
        .await;
    accepted.ok().map(|accepted| accepted == 1)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, resource, name, ttl_ms] = args.as_slice() else {
        return Err("usage: leader-proc <store url> <resource url> <election> <ttl ms>".into());
    };
    let ttl = Duration::from_millis(ttl_ms.parse()?);
    let backend = Backend::builder()
        .postgres_table(
            std::env::var("LOCK_TESTS_TABLE")
                .unwrap_or_else(|_| lock_runtime::DEFAULT_POSTGRES_TABLE.to_owned()),
        )
        .zookeeper_session_timeout(ttl)
        .restart_guard_on_connect(false)
        .connect(url)
        .await?;
    let resource = redis::Client::open(resource.as_str())?;
    let mut conn = resource.get_multiplexed_async_connection().await?;
    let script = redis::Script::new(FENCED_WRITE);
    let options = LeaderOptions::new(ttl);
    loop {
        let leading = backend.campaign(name, &options).await?;
        let term = leading.term();
        println!("leading {term} {}", now_us());
        loop {
            tokio::select! {
                biased;
                () = leading.lost() => {
                    println!("lost {term}");
                    // A write frozen in flight may have timed out on resume: try again.
                    for _ in 0..10 {
                        match write(&script, &mut conn, term).await {
                            Some(true) => println!("late {term} accepted"),
                            Some(false) => println!("late {term} refused"),
                            None => continue,
                        }
                        break;
                    }
                    break;
                }
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    match write(&script, &mut conn, term).await {
                        Some(true) => {}
                        Some(false) => println!("refused {term}"),
                        // The resource did not answer in time (this process was frozen
                        // with the write in flight, say): whether it landed is unknown.
                        None => println!("unanswered {term}"),
                    }
                }
            }
        }
    }
}
