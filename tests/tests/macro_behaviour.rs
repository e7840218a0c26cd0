//! What `#[distributed_lock]` does at run time, against a real Redis. Each test uses its own
//! server and its own named client, so the tests in this binary can run in parallel.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use lock_runtime::{distributed_lock, Backend, LockError, LockOptions};
use lock_tests::{eventually, RedisServer};
use tokio::sync::Barrier;

async fn serve(client: &'static str) -> RedisServer {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    lock_runtime::register(client, backend).expect("register");
    server
}

fn exists(server: &RedisServer, key: &str) -> bool {
    server.raw(&["EXISTS", key]).trim() == ":1"
}

#[distributed_lock(key = "meet:{id}", ttl = "30s", client = "parallel")]
async fn meet(id: u32, barrier: Arc<Barrier>) -> Result<u32, LockError> {
    // Passes only if both callers are inside at the same time.
    tokio::time::timeout(Duration::from_secs(20), barrier.wait())
        .await
        .expect("the other key's body never ran alongside this one");
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_keys_run_in_parallel_and_one_key_does_not() {
    let server = serve("parallel").await;
    let barrier = Arc::new(Barrier::new(2));
    let (a, b) = tokio::join!(meet(1, barrier.clone()), meet(2, barrier.clone()));
    assert_eq!((a.expect("meet 1"), b.expect("meet 2")), (1, 2));

    // The same key: the second caller finds it busy (wait is zero) and its body never runs.
    let options = LockOptions::new(Duration::from_secs(30)).client("parallel");
    let held = lock_runtime::acquire("meet:1", &options)
        .await
        .expect("hold meet:1");
    let busy = meet(1, Arc::new(Barrier::new(1))).await;
    assert!(
        matches!(busy, Err(LockError::Busy { ref key, .. }) if key == "meet:1"),
        "{busy:?}"
    );
    held.release().await.expect("release");
    assert!(!exists(&server, "lock:{meet:1}"));
}

#[derive(Debug)]
enum ParseError {
    Lock(LockError),
    Parse(std::num::ParseIntError),
}

impl From<LockError> for ParseError {
    fn from(e: LockError) -> Self {
        Self::Lock(e)
    }
}

impl From<std::num::ParseIntError> for ParseError {
    fn from(e: std::num::ParseIntError) -> Self {
        Self::Parse(e)
    }
}

#[distributed_lock(key = "parse:{id}", ttl = "60s", client = "early")]
async fn parse_under_lock(id: u32, input: &str) -> Result<u32, ParseError> {
    let n: u32 = input.parse()?;
    Ok(n + id)
}

#[tokio::test]
async fn an_early_return_through_question_mark_releases() {
    let server = serve("early").await;
    assert_eq!(parse_under_lock(1, "41").await.expect("parses"), 42);
    match parse_under_lock(1, "forty-one").await {
        Err(ParseError::Parse(e)) => assert_eq!(*e.kind(), std::num::IntErrorKind::InvalidDigit),
        other => panic!("expected the parse error, got {other:?}"),
    }
    // Released before the call returned, not in the background and not by the 60 s TTL.
    assert!(!exists(&server, "lock:{parse:1}"));

    // A busy lock reaches the caller through the function's own error type.
    let options = LockOptions::new(Duration::from_secs(30)).client("early");
    let held = lock_runtime::acquire("parse:1", &options)
        .await
        .expect("hold parse:1");
    match parse_under_lock(1, "1").await {
        Err(ParseError::Lock(e)) => assert!(e.is_busy(), "{e}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    held.release().await.expect("release");
}

#[distributed_lock(key = "panics", ttl = "60s", client = "panic")]
async fn panics() -> Result<(), LockError> {
    panic!("the body panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_body_releases() {
    let server = serve("panic").await;
    let joined = tokio::spawn(panics()).await;
    assert!(joined.expect_err("the task panicked").is_panic());
    let freed = eventually(Duration::from_secs(10), || {
        !exists(&server, "lock:{panics}")
    })
    .await;
    assert!(freed, "the lock stayed until its 60 s TTL");
}

#[distributed_lock(key = "slow", ttl = "60s", client = "cancel")]
async fn slow(entered: tokio::sync::oneshot::Sender<()>) -> Result<(), LockError> {
    let _ = entered.send(());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_releases() {
    let server = serve("cancel").await;
    let (entered, inside) = tokio::sync::oneshot::channel();
    let call = tokio::spawn(slow(entered));
    inside.await.expect("the body started");
    assert!(exists(&server, "lock:{slow}"));
    call.abort();
    assert!(call.await.expect_err("aborted").is_cancelled());
    let freed = eventually(Duration::from_secs(10), || !exists(&server, "lock:{slow}")).await;
    assert!(freed, "the lock stayed until its 60 s TTL");
}

struct User {
    id: u32,
}

#[distributed_lock(
    key = "user:{user.id}:cart:{{v2}}:{pair.1}",
    ttl = "30s",
    client = "format"
)]
async fn read_own_key(user: User, pair: (u8, &str), port: u16) -> Result<String, LockError> {
    let _moved_into_the_body = user;
    Ok(lock_tests::raw_command(port, &["GET", "lock:{user:7:cart:{v2}:x}"]).expect("GET"))
}

#[tokio::test]
async fn the_key_is_formatted_as_documented() {
    let server = serve("format").await;
    let reply = read_own_key(User { id: 7 }, (0, "x"), server.port())
        .await
        .expect("call");
    // The token (32 hex digits) and the holder's record: the lock existed under exactly
    // that name, taken by this function.
    let value = reply.lines().nth(1).expect("a bulk reply");
    let (token, record) = value.split_at(32);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{reply:?}");
    let pid = std::process::id();
    assert!(record.starts_with(";h="), "{reply:?}");
    assert!(
        record.contains(&format!(";p={pid};f=macro_behaviour::read_own_key;t=")),
        "{reply:?}"
    );
    assert!(!exists(&server, "lock:{user:7:cart:{v2}:x}"));
}

#[distributed_lock(key = "lease", ttl = "100ms", client = "lost", on_lost = "finish")]
async fn outlives_its_lease(server_port: u16) -> Result<u32, LockError> {
    // Another owner takes the lock once the lease runs out, while this body still runs.
    let other = Backend::redis(&format!("redis://127.0.0.1:{server_port}")).await?;
    let waiting = LockOptions::new(Duration::from_secs(30)).wait(Duration::from_secs(10));
    let taken = other.acquire("lease", &waiting).await?;
    std::mem::forget(taken); // keep the new owner's lock in place
    Ok(1)
}

#[tokio::test]
async fn a_lease_lost_during_the_body_is_reported_after_it_finishes() {
    let server = serve("lost").await;
    let started = Instant::now();
    let result = outlives_its_lease(server.port()).await;
    assert!(
        matches!(result, Err(LockError::Lost { ref key }) if key == "lease"),
        "{result:?}"
    );
    assert!(
        exists(&server, "lock:{lease}"),
        "the new owner's lock was deleted"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[distributed_lock(key = "cancelled", ttl = "200ms", client = "cancelled")]
async fn runs_past_its_ttl(finished: Arc<std::sync::atomic::AtomicBool>) -> Result<(), LockError> {
    tokio::time::sleep(Duration::from_secs(30)).await;
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn a_body_that_outlives_its_ttl_is_cancelled_with_lost() {
    let _server = serve("cancelled").await;
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let result = runs_past_its_ttl(finished.clone()).await;
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(LockError::Lost { .. })), "{result:?}");
    assert!(
        !finished.load(std::sync::atomic::Ordering::SeqCst),
        "the body ran on"
    );
    assert!(
        elapsed >= Duration::from_millis(150),
        "cancelled before the TTL: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "not cancelled at the TTL: {elapsed:?}"
    );
}

// Item 9: `skip` and `or_return` cover "could not get the lock" only. A lease lost after
// the body ran is returned as the error where the return type can carry it, and is an
// error-level event where it cannot.

#[distributed_lock(key = "fallback", ttl = "100ms", client = "fallbacks", on_lost = "finish", or_return = Ok(0))]
async fn counts_past_its_lease(ran: Arc<std::sync::atomic::AtomicU32>) -> Result<u32, LockError> {
    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(1)
}

#[distributed_lock(
    key = "fallback",
    ttl = "100ms",
    client = "fallbacks",
    on_lost = "finish",
    skip
)]
async fn works_past_its_lease(ran: Arc<std::sync::atomic::AtomicU32>) {
    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn fallbacks_cover_a_busy_lock_but_not_a_lease_lost_after_the_body_ran() {
    let _server = serve("fallbacks").await;
    let (events, _guard) = lock_tests::CapturedEvents::install();
    let ran = Arc::new(std::sync::atomic::AtomicU32::new(0));

    // Busy: the fallback, and the body does not run.
    let options = LockOptions::new(Duration::from_secs(30)).client("fallbacks");
    let held = lock_runtime::acquire("fallback", &options)
        .await
        .expect("hold");
    assert_eq!(
        counts_past_its_lease(ran.clone()).await.expect("fallback"),
        0
    );
    works_past_its_lease(ran.clone()).await;
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(events.at(tracing::Level::ERROR).is_empty());
    held.release().await.expect("release");

    // Lost after the body ran: the `Result` carries the error instead of the fallback.
    let lost = counts_past_its_lease(ran.clone()).await;
    assert!(matches!(lost, Err(LockError::Lost { .. })), "{lost:?}");
    assert!(events.at(tracing::Level::ERROR).is_empty());

    // `()` cannot carry it: the fallback, with an error-level event naming the function.
    works_past_its_lease(ran.clone()).await;
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 2);
    let errors = events.at(tracing::Level::ERROR);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("works_past_its_lease"), "{errors:?}");
}

/// `or_return` under `-> impl Trait`: a fallback of the body's own type is accepted (one of
/// another type is a compile error naming the rule: `ui/fail/or-return-impl-trait.rs`).
#[distributed_lock(
    key = "greeting",
    ttl = "30s",
    client = "impl-trait",
    or_return = "busy"
)]
async fn greeting() -> impl std::fmt::Display {
    "ran"
}

#[tokio::test(flavor = "current_thread")]
async fn or_return_under_impl_trait_returns_the_body_or_the_fallback() {
    lock_runtime::register("impl-trait", Backend::memory()).expect("register");
    assert_eq!(greeting().await.to_string(), "ran");
    let options = LockOptions::new(Duration::from_secs(30)).client("impl-trait");
    let held = lock_runtime::acquire("greeting", &options)
        .await
        .expect("hold");
    assert_eq!(greeting().await.to_string(), "busy");
    held.release().await.expect("release");
    assert_eq!(greeting().await.to_string(), "ran");
}

#[distributed_lock(
    key = "delayed:{id}",
    ttl = "500ms",
    lock_delay = "3s",
    client = "delayed"
)]
async fn delayed(id: u32, body: Duration) -> Result<u32, LockError> {
    tokio::time::sleep(body).await;
    Ok(id)
}

/// `lock_delay` on the attribute: a body that finished frees the key at once; one whose
/// lease ran out leaves it in the store, taken, for the TTL and the delay.
#[tokio::test]
async fn lock_delay_keeps_a_lost_lock_taken() {
    let server = serve("delayed").await;
    assert_eq!(delayed(1, Duration::ZERO).await.expect("first"), 1);
    assert!(!exists(&server, "lock:{delayed:1}"), "released at once");
    assert_eq!(delayed(1, Duration::ZERO).await.expect("again"), 1);

    let lost = delayed(1, Duration::from_secs(2)).await;
    assert!(matches!(lost, Err(LockError::Lost { .. })), "{lost:?}");
    let after_loss = Instant::now();
    // Not released: the key lives on for the delay past the lease.
    assert!(exists(&server, "lock:{delayed:1}"));
    let ttl_ms: i64 = server.raw(&["PTTL", "lock:{delayed:1}"]).trim()[1..]
        .parse()
        .expect("PTTL");
    assert!(ttl_ms > 1000, "{ttl_ms} ms left after the loss");
    let busy = delayed(1, Duration::ZERO).await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    assert!(
        eventually(Duration::from_secs(10), || !exists(
            &server,
            "lock:{delayed:1}"
        ))
        .await,
        "the key never expired"
    );
    assert!(after_loss.elapsed() + Duration::from_secs(1) >= Duration::from_secs(3));
    assert_eq!(delayed(1, Duration::ZERO).await.expect("free again"), 1);
}
