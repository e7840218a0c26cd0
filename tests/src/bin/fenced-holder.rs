//! Takes a fenced lock, then waits for a line on stdin before writing to the fenced
//! resource: a holder that the fault tests can pause (SIGSTOP) past its lease.
//!
//! Usage: `fenced-holder <lock-url> <resource-url> <key> <ttl-ms> <guard|body>`.
//! - `guard`: acquire by hand; after the line, write with the token and release; prints
//!   `write accepted|rejected` and `release ok|lost|error: ...`.
//! - `body`: `with_lock`, whose body reads the line and then writes; prints
//!   `write accepted|rejected` if the body got that far, then `result: ok|lost|error: ...`.
//!
//! Prints `acquired <fencing token>` once it holds the lock.

use std::{io::Write as _, time::Duration};

use lock_runtime::{Backend, LockError, LockOptions};
use tokio::io::{AsyncBufReadExt as _, BufReader};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn next_line() {
    let mut line = String::new();
    let _ = BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, resource_url, key, ttl, mode] = args.as_slice() else {
        return Err(
            "usage: fenced-holder <lock-url> <resource-url> <key> <ttl-ms> <guard|body>".into(),
        );
    };
    let backend = Backend::redis(url).await?;
    let mut resource = redis::Client::open(resource_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let options = LockOptions::new(Duration::from_millis(ttl.parse()?)).fencing(true);
    if mode == "guard" {
        let guard = backend.acquire(key, &options).await?;
        let token = guard.fencing_token().unwrap_or(0);
        say(&format!("acquired {token}"));
        next_line().await;
        let accepted = lock_tests::fenced_write(&mut resource, token, "stale holder").await?;
        say(if accepted {
            "write accepted"
        } else {
            "write rejected"
        });
        match guard.release().await {
            Ok(()) => say("release ok"),
            Err(LockError::Lost { .. }) => say("release lost"),
            Err(e) => say(&format!("release error: {e}")),
        }
    } else {
        let result = backend
            .with_lock(key, &options, async {
                let token = lock_runtime::fencing_token().unwrap_or(0);
                say(&format!("acquired {token}"));
                next_line().await;
                let accepted = lock_tests::fenced_write(&mut resource, token, "stale holder").await;
                say(if matches!(accepted, Ok(true)) {
                    "write accepted"
                } else {
                    "write rejected"
                });
            })
            .await;
        match result {
            Ok(()) => say("result: ok"),
            Err(LockError::Lost { .. }) => say("result: lost"),
            Err(e) => say(&format!("result: error: {e}")),
        }
    }
    Ok(())
}
