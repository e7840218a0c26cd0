//! What a locked-down deployment needs: a minimal ACL user, no secrets in errors or debug
//! output, and unpredictable owner tokens.

use std::time::Duration;

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::RedisServer;

/// The commands docs/safety.md lists for an ACL user, `INFO` aside.
const COMMANDS: &[&str] = &[
    "+set",
    "+evalsha",
    "+script|load",
    "+subscribe",
    "+unsubscribe",
    "+ping",
    "+get",
    "+del",
    "+pexpire",
    "+pttl",
    "+publish",
    "+time",
];

fn create_user(server: &RedisServer, name: &str, extra: &[&str]) {
    let mut args = vec![
        "ACL",
        "SETUSER",
        name,
        "on",
        ">pw",
        "resetkeys",
        "~lock:*",
        "resetchannels",
        "&lock:*",
        "-@all",
    ];
    args.extend_from_slice(COMMANDS);
    args.extend_from_slice(extra);
    let reply = server.raw(&args);
    assert!(reply.starts_with("+OK"), "{reply}");
}

/// Every operation, with waiting and fencing, as a user who may do nothing else.
async fn exercise(url: &str) {
    let a = Backend::redis(url).await.expect("connect");
    let b = Backend::redis(url).await.expect("connect");
    let options = LockOptions::new(Duration::from_secs(5))
        .fencing(true)
        .renew(true);
    let mut guard = a.acquire("k", &options).await.expect("acquire");
    assert!(guard.fencing_token().is_some());
    guard.extend(Duration::from_secs(5)).await.expect("extend");
    // A waiter subscribes and is woken by the release.
    let waiter = tokio::spawn(async move {
        b.acquire(
            "k",
            &LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(5)),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    guard.release().await.expect("release");
    let taken = waiter.await.expect("task").expect("the waiter got it");
    taken.release().await.expect("release");
    let ran = a
        .with_lock("k", &options, async { lock_runtime::fencing_token() })
        .await
        .expect("with_lock");
    assert!(ran.is_some());
}

/// Item 11: a user with exactly the documented commands (and `INFO`) can use everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_only_the_documented_commands_can_lock() {
    let server = RedisServer::start();
    create_user(&server, "locker", &["+info"]);
    exercise(&format!("redis://locker:pw@127.0.0.1:{}", server.port())).await;
}

/// Item 11: without `INFO` the library still works (restart detection is off, with a
/// warning).
#[tokio::test(flavor = "current_thread")]
async fn a_user_without_info_can_lock_and_is_warned() {
    let server = RedisServer::start();
    create_user(&server, "bare", &[]);
    let (events, _guard) = lock_tests::CapturedEvents::install();
    exercise(&format!("redis://bare:pw@127.0.0.1:{}", server.port())).await;
    let warnings = events.at(tracing::Level::WARN);
    assert!(
        warnings.iter().any(|w| w.contains("INFO")),
        "no warning about INFO: {warnings:?}"
    );
}

/// Item 12: a password never appears in an error, whatever went wrong.
#[tokio::test]
async fn passwords_never_appear_in_errors() {
    let server = RedisServer::start_with(&["--requirepass", "right-one"]);
    let port = server.port();
    let cases = [
        "redis://:s3cr3t-pass@127.0.0.1:notaport/".to_owned(),
        "redis://user:s3cr3t-pass@127.0.0.1:6379/notadb".to_owned(),
        "rediss+bogus://:s3cr3t-pass@host/".to_owned(),
        format!("redis://:s3cr3t-pass@127.0.0.1:{port}/"),
        format!("redis://default:s3cr3t-pass@127.0.0.1:{port}/"),
    ];
    for url in cases {
        let error = Backend::builder()
            .connect(&url)
            .await
            .expect_err("must not connect");
        let shown = format!("{error} / {error:?}");
        assert!(!shown.contains("s3cr3t-pass"), "{url}: {shown}");
    }
}

/// Item 13: a guard's `Debug` does not show its owner token: whoever has it can release
/// the lock.
#[tokio::test]
async fn a_guard_does_not_show_its_token() {
    let backend = Backend::memory();
    let options = LockOptions::new(Duration::from_secs(5));
    let guard = backend.acquire("k", &options).await.expect("acquire");
    let shown = format!("{guard:?}");
    assert!(!shown.contains(guard.token().as_str()), "{shown}");
    assert!(shown.contains("\"k\""), "{shown}");
    guard.release().await.expect("release");
}

/// Item 20: lock keys always carry a TTL, so an eviction policy that may delete keys with
/// one (or any key) can free a held lock under memory pressure: warned about at connect.
#[tokio::test(flavor = "current_thread")]
async fn a_store_that_can_evict_lock_keys_is_warned_about() {
    for (policy, warned) in [
        ("allkeys-lru", true),
        ("volatile-ttl", true),
        ("noeviction", false),
    ] {
        let server = RedisServer::start_with(&["--maxmemory-policy", policy]);
        let (events, _guard) = lock_tests::CapturedEvents::install();
        let backend = Backend::redis(&server.url()).await.expect("connect");
        let warnings = events.at(tracing::Level::WARN);
        let said = warnings.iter().any(|w| w.contains("maxmemory-policy"));
        assert_eq!(said, warned, "{policy}: {warnings:?}");
        drop(backend);
    }
}

/// A command the user may not send is an error naming the refusal, never a busy or a
/// lost lock: readers need sorted-set commands the minimal user lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_user_may_not_send_is_an_error_not_a_busy_lock() {
    let server = RedisServer::start();
    create_user(&server, "minimal", &["+info"]);
    let backend = Backend::redis(&format!("redis://minimal:pw@127.0.0.1:{}", server.port()))
        .await
        .expect("connect");
    let read = LockOptions::new(Duration::from_secs(5))
        .mode(lock_runtime::LockMode::Read)
        .wait(Duration::from_secs(1));
    let refused = backend.acquire("r", &read).await;
    let Err(LockError::Backend { source, .. }) = &refused else {
        panic!("{refused:?}");
    };
    assert!(
        source.to_string().contains("can't run this command"),
        "{source}"
    );
}
