//! Calls the shared annotated function `lock_tests::guarded_increment` in a loop, as one
//! more process competing for the same lock.
//!
//! Usage: `guarded-worker <redis-url> <name> <calls>`.

use lock_runtime::Backend;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(name), Some(calls)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: guarded-worker <redis-url> <name> <calls>".into());
    };
    let calls: u32 = calls.parse()?;
    lock_runtime::init(Backend::redis(&url).await?)?;
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    for _ in 0..calls {
        lock_tests::guarded_increment(&mut conn, &name)
            .await
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}
