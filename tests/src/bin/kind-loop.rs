//! Takes one key over and over for a while as a reader, a writer or a semaphore's permit
//! holder, from several tasks, and prints each holding: `<role> <enter µs> <exit µs>` (wall
//! clock), with ` expired` when the lease had run out by the end, so the test can check
//! who held the key beside whom.
//!
//! Usage: `kind-loop <url> <key> <read|write|permits=N> <tasks> <seconds> <hold ms>`.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockMode, LockOptions};
use lock_tests::now_us;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, role, tasks, seconds, hold_ms] = args.as_slice() else {
        return Err("usage: kind-loop <url> <key> <role> <tasks> <seconds> <hold ms>".into());
    };
    let base = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(20));
    let options = match role.as_str() {
        "read" => base.mode(LockMode::Read),
        "write" => base,
        other => match other.strip_prefix("permits=") {
            Some(permits) => base.permits(permits.parse()?),
            None => return Err(format!("unknown role {other}").into()),
        },
    };
    let backend = Backend::builder().connect(url).await?;
    let until = Instant::now() + Duration::from_secs_f64(seconds.parse()?);
    let hold = Duration::from_millis(hold_ms.parse()?);
    let mut running = Vec::new();
    for _ in 0..tasks.parse::<u32>()? {
        let (backend, options, key, role) =
            (backend.clone(), options.clone(), key.clone(), role.clone());
        running.push(tokio::spawn(async move {
            let mut lines = Vec::new();
            while Instant::now() < until {
                let guard = backend
                    .acquire(&key, &options)
                    .await
                    .map_err(|e| format!("{role}: {e}"))?;
                let enter = now_us();
                tokio::time::sleep(hold).await;
                let exit = now_us();
                let expired = if guard.is_expired() { " expired" } else { "" };
                lines.push(format!("{role} {enter} {exit}{expired}"));
                guard.release().await.map_err(|e| format!("{role}: {e}"))?;
            }
            Ok::<_, String>(lines)
        }));
    }
    for task in running {
        for line in task.await?? {
            println!("{line}");
        }
    }
    Ok(())
}
