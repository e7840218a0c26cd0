//! Moves money between accounts kept in Redis, each transfer under the locks of both
//! accounts (`keys = [...]`), half of them naming the accounts in the opposite order: the
//! read-modify-write below loses money unless the two locks exclude every other transfer
//! touching either account. Exits with an error on any lock error (a wait that ran out
//! would mean a deadlock or starvation); prints how long its transfers took.
//!
//! Usage: `transfer <redis url> <accounts> <transfers> <tasks> <seed>`.

use std::time::{Duration, Instant};

use lock_runtime::{distributed_lock, Backend, LockError};
use redis::AsyncCommands as _;

/// Why a transfer failed: the locks, or Redis (read in the error report).
#[derive(Debug)]
#[allow(dead_code)]
enum Failed {
    Lock(LockError),
    Redis(redis::RedisError),
}

impl From<LockError> for Failed {
    fn from(e: LockError) -> Self {
        Self::Lock(e)
    }
}

impl From<redis::RedisError> for Failed {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

/// Moves `amount` (at most the balance) from `from` to `to`, reading and writing the
/// balances in separate commands.
async fn move_money(
    redis: &mut redis::aio::MultiplexedConnection,
    from: u32,
    to: u32,
    amount: i64,
) -> Result<(), Failed> {
    let have: i64 = redis.get(format!("balance:{from}")).await?;
    let other: i64 = redis.get(format!("balance:{to}")).await?;
    let amount = amount.min(have);
    tokio::time::sleep(Duration::from_micros(200)).await;
    let () = redis.set(format!("balance:{from}"), have - amount).await?;
    let () = redis.set(format!("balance:{to}"), other + amount).await?;
    Ok(())
}

#[distributed_lock(keys = ["account:{from}", "account:{to}"], ttl = "10s", wait = "30s")]
async fn transfer(
    redis: &mut redis::aio::MultiplexedConnection,
    from: u32,
    to: u32,
    amount: i64,
) -> Result<(), Failed> {
    move_money(redis, from, to, amount).await
}

/// The same transfer, naming the accounts the other way round.
#[distributed_lock(keys = ["account:{to}", "account:{from}"], ttl = "10s", wait = "30s")]
async fn transfer_reversed(
    redis: &mut redis::aio::MultiplexedConnection,
    from: u32,
    to: u32,
    amount: i64,
) -> Result<(), Failed> {
    move_money(redis, from, to, amount).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, accounts, transfers, tasks, seed] = args.as_slice() else {
        return Err("usage: transfer <url> <accounts> <transfers> <tasks> <seed>".into());
    };
    let (accounts, transfers, tasks): (u32, u32, u32) =
        (accounts.parse()?, transfers.parse()?, tasks.parse()?);
    let seed: u64 = seed.parse()?;
    lock_runtime::init(Backend::redis(url).await?)?;
    let client = redis::Client::open(url.as_str())?;
    let started = Instant::now();
    let mut running = Vec::new();
    for task in 0..tasks {
        let mut redis = client.get_multiplexed_async_connection().await?;
        let mut state = (seed.wrapping_mul(31).wrapping_add(u64::from(task)) << 1) | 1;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let count = transfers / tasks + u32::from(task < transfers % tasks);
        running.push(tokio::spawn(async move {
            for _ in 0..count {
                let from = next(u64::from(accounts)) as u32;
                let to = (from + 1 + next(u64::from(accounts) - 1) as u32) % accounts;
                let amount = 1 + next(50) as i64;
                let outcome = match next(2) {
                    0 => transfer(&mut redis, from, to, amount).await,
                    _ => transfer_reversed(&mut redis, from, to, amount).await,
                };
                outcome.map_err(|e| format!("transfer {from} -> {to}: {e:?}"))?;
            }
            Ok::<_, String>(())
        }));
    }
    for task in running {
        task.await??;
    }
    println!("{} transfers in {:?}", transfers, started.elapsed());
    Ok(())
}
