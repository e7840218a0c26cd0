//! Takes a lock and holds it until killed: a holder that vanishes, for the expiry tests.
//!
//! Usage: `lock-holder <store-url> <key> <ttl-ms>`. Prints `acquired <token>` once it holds
//! the lock, then waits forever without releasing or renewing.

use std::{io::Write as _, time::Duration};

use lock_runtime::{Backend, LockOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(key), Some(ttl)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: lock-holder <store-url> <key> <ttl-ms>".into());
    };
    let ttl = Duration::from_millis(ttl.parse()?);
    let backend = Backend::redis(&url).await?;
    let guard = backend.acquire(&key, &LockOptions::new(ttl)).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "acquired {}", guard.token())?;
    out.flush()?;
    drop(out);
    std::future::pending::<()>().await;
    drop(guard);
    Ok(())
}
