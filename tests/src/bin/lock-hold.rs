//! Takes one lock (fenced, except on Redlock) and holds it for a while inside `with_lock`,
//! for tests that stop, kill or cut off a holder process: prints `held <fencing token>`
//! once it holds the lock, then `outcome ok` when the body finished under the lock or
//! `outcome lost` when the lease ended first.
//!
//! Usage: `lock-hold <url> <lock name> <ttl ms> <ZooKeeper session ms> <hold ms> [permits]`;
//! with `permits`, it holds one of that many permits of a semaphore instead of the lock.
//! `LOCK_HOLD_PREFIX` sets the key prefix (`lock:` by default), `LOCK_HOLD_DELAY_MS` a
//! lock delay.

use std::{io::Write as _, time::Duration};

use lock_runtime::{Backend, LockError, LockOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, name, ttl_ms, session_ms, hold_ms, permits) = match args.as_slice() {
        [url, name, ttl_ms, session_ms, hold_ms] => (url, name, ttl_ms, session_ms, hold_ms, None),
        [url, name, ttl_ms, session_ms, hold_ms, permits] => (
            url,
            name,
            ttl_ms,
            session_ms,
            hold_ms,
            Some(permits.parse()?),
        ),
        _ => {
            return Err(
                "usage: lock-hold <url> <name> <ttl ms> <session ms> <hold ms> [permits]".into(),
            )
        }
    };
    let ms = |text: &str| text.parse().map(Duration::from_millis);
    let backend = Backend::builder()
        // On PostgreSQL, the test's own table.
        .postgres_table(
            std::env::var("LOCK_TESTS_TABLE")
                .unwrap_or_else(|_| lock_runtime::DEFAULT_POSTGRES_TABLE.to_owned()),
        )
        .zookeeper_session_timeout(ms(session_ms)?)
        .prefix(std::env::var("LOCK_HOLD_PREFIX").unwrap_or_else(|_| "lock:".to_owned()))
        .connect(url)
        .await?;
    let mut options = LockOptions::new(ms(ttl_ms)?)
        .wait(Duration::from_secs(30))
        .fencing(!url.starts_with("redis+redlock://"));
    if let Some(permits) = permits {
        options = options.permits(permits);
    }
    if let Ok(delay) = std::env::var("LOCK_HOLD_DELAY_MS") {
        options = options.lock_delay(ms(&delay)?);
    }
    let hold = ms(hold_ms)?;
    let outcome = backend
        .with_lock(name, &options, async {
            let fence = lock_runtime::fencing_token().unwrap_or(0);
            println!("held {fence}");
            let _ = std::io::stdout().flush();
            tokio::time::sleep(hold).await;
        })
        .await;
    match outcome {
        Ok(()) => println!("outcome ok"),
        Err(LockError::Lost { .. }) => println!("outcome lost"),
        Err(e) => println!("outcome error {e}"),
    }
    Ok(())
}
