//! A holder that vanishes without releasing: the TTL frees its lock.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::RedisServer;
use tokio::io::{AsyncBufReadExt as _, BufReader};

#[tokio::test]
async fn ttl_frees_a_lock_whose_holder_process_was_killed() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(800);
    let mut holder = tokio::process::Command::new(env!("CARGO_BIN_EXE_lock-holder"))
        .args([
            &server.url(),
            "nightly-report",
            &ttl.as_millis().to_string(),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn lock-holder");
    let stdout = holder.stdout.take().expect("holder stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("the holder reports within 30 s")
    .expect("read the holder's stdout");
    let token = line
        .strip_prefix("acquired ")
        .map(str::trim)
        .unwrap_or_else(|| panic!("unexpected holder output {line:?}"));
    assert!(
        server
            .raw(&["GET", "lock:{nightly-report}"])
            .contains(token),
        "the holder's token is in the store"
    );

    let backend = Backend::redis(&server.url()).await.expect("connect");
    let busy = backend
        .acquire("nightly-report", &LockOptions::new(ttl))
        .await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");

    holder.kill().await.expect("SIGKILL the holder");
    let killed_at = Instant::now();
    // When the key expires, by the server's word.
    let pttl: u64 = server.raw(&["PTTL", "lock:{nightly-report}"])[1..]
        .trim()
        .parse()
        .expect("PTTL");
    let expires_at = killed_at + Duration::from_millis(pttl);
    let options = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(20));
    let guard = backend
        .acquire("nightly-report", &options)
        .await
        .expect("the lock frees itself when the TTL runs out");
    let waited = killed_at.elapsed();
    println!("holder SIGKILLed: lock taken {waited:?} later (TTL {ttl:?})");
    // Never before the TTL could have run out (the holder took it before we saw the line)...
    // ...and not much after: the TTL plus a generous margin for a loaded machine.
    assert!(waited < ttl + Duration::from_secs(5), "took {waited:?}");
    // The waiter learnt the holder's remaining lease from its busy answers and tried again
    // right at expiry, not on its 100-200 ms re-check timer.
    let late = Instant::now().saturating_duration_since(expires_at);
    println!("taken {late:?} after the key expired");
    assert!(
        late < Duration::from_millis(40),
        "taken {late:?} after expiry"
    );
    guard.release().await.expect("release");
}
