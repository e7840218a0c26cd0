//! The lease is the law: a body runs only inside the lease this process can be sure of,
//! whatever the store does, and renewal keeps it alive whatever the body does.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockError, LockOptions, OnLost};
use lock_tests::{signal, RedisServer};

/// Item 1: a renewal that never gets an answer (the server is paused) cannot stretch the
/// lease: the body is cancelled before the key can expire on the server, although one
/// store call may take far longer (`op_timeout` 4 s against a 2 s TTL). The expiry is read
/// from the server (`PTTL`, asked just before the pause): the key expires no earlier than
/// the moment that question was sent plus the answer. The TTL leaves the runtime's drift
/// margin (1 % + 2 ms: 22 ms) for the scheduler of a busy machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_renewal_does_not_stretch_the_lease() {
    let server = RedisServer::start();
    let backend = Backend::builder()
        .op_timeout(Duration::from_secs(4))
        .redis(&server.url())
        .await
        .expect("connect");
    let ttl = Duration::from_secs(2);
    for policy in [OnLost::Cancel, OnLost::Finish] {
        let options = LockOptions::new(ttl).renew(true).on_lost(policy);
        let started = Instant::now();
        let pid = server.pid();
        let port = server.port();
        let body_ended = std::sync::Arc::new(std::sync::Mutex::new(None));
        let stamp = StampOnDrop(body_ended.clone());
        let expiry = std::sync::Arc::new(std::sync::Mutex::new(None));
        let expiry_seen = expiry.clone();
        let outcome = backend
            .with_lock("k", &options, async move {
                let _stamp = stamp;
                let asked = Instant::now();
                let pttl = lock_tests::raw_command(port, &["PTTL", "lock:{k}"]).expect("PTTL");
                let pttl: u64 = pttl[1..].trim().parse().expect("PTTL");
                *expiry_seen.lock().unwrap() = Some(asked + Duration::from_millis(pttl));
                // Every renewal from now on goes unanswered.
                signal(pid, "-STOP");
                tokio::time::sleep(ttl * 2).await;
            })
            .await;
        let returned = started.elapsed();
        signal(server.pid(), "-CONT");
        assert!(
            matches!(outcome, Err(LockError::Lost { .. })),
            "{outcome:?}"
        );
        let body_ended = body_ended.lock().unwrap().expect("the body ended");
        let expires = expiry.lock().unwrap().expect("the key's expiry");
        if policy == OnLost::Cancel {
            // The body must be gone before the key can expire. (The caller hears of it once
            // the release, bounded by the 4 s time bound, gives up.)
            assert!(
                body_ended < expires,
                "the body ran {:?} past the key's earliest expiry",
                body_ended - expires
            );
            assert!(
                returned < ttl + Duration::from_secs(6),
                "returned after {returned:?}"
            );
        } else {
            // Finish: the body ran to its end, and was then told the lease was lost.
            assert!(
                body_ended - started >= ttl * 2,
                "{:?}",
                body_ended - started
            );
        }
        // Let the paused calls drain before the next round.
        let _ = backend
            .acquire("k", &LockOptions::new(ttl).wait(Duration::from_secs(10)))
            .await
            .expect("free again")
            .release()
            .await;
    }
}

/// Records when it is dropped.
struct StampOnDrop(std::sync::Arc<std::sync::Mutex<Option<Instant>>>);

impl Drop for StampOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

/// Item 2: the local lease ends a drift margin (1 % + 2 ms) before the store could expire
/// the key, so at the local lease end the key still exists.
#[tokio::test]
async fn the_local_lease_ends_before_the_key_can_expire() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    let ttl = Duration::from_millis(500);
    let guard = backend
        .acquire("k", &LockOptions::new(ttl))
        .await
        .expect("acquire");
    let answered = Instant::now();
    // The request was sent before `answered` (by about one round trip, far less than the
    // margin), so without a margin the lease would end later than this.
    let margin = ttl / 100 + Duration::from_millis(2);
    assert!(
        guard.lease_end() <= answered + ttl - margin,
        "no drift margin: the lease ends {:?} after the answer",
        guard.lease_end() - answered
    );
    // The key expires no earlier than when this question was sent plus the answer: the
    // local lease must end by then. (Sleeping to the lease end and asking then would
    // measure the scheduler of a busy machine, not the margin.)
    let asked = Instant::now();
    let pttl: u64 = server.raw(&["PTTL", "lock:{k}"])[1..]
        .trim()
        .parse()
        .expect("PTTL");
    let expires = asked + Duration::from_millis(pttl);
    assert!(
        guard.lease_end() <= expires,
        "the local lease ends {:?} after the key's earliest expiry",
        guard.lease_end() - expires
    );
    drop(guard);
}

/// Item 10: renewal runs as a task of its own, so a body that blocks its thread (here for
/// four TTLs) keeps the lock; nobody else gets it meanwhile. The TTL (1 s, renewed every
/// third of it) leaves room for the scheduler of a busy machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_goes_on_while_the_body_blocks_its_thread() {
    let server = RedisServer::start();
    let holder = Backend::redis(&server.url()).await.expect("connect");
    let other = Backend::redis(&server.url()).await.expect("connect");
    let ttl = Duration::from_secs(1);
    let options = LockOptions::new(ttl).renew(true);
    let (running, started) = tokio::sync::oneshot::channel();
    // Set when the body has ended: the release comes after it, so another client may get
    // the lock from then on, before the task is seen finished (a busy machine widens that
    // gap; checking `is_finished` there failed once under load).
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body_ended = ended.clone();
    let body = tokio::spawn(async move {
        holder
            .with_lock("k", &options, async {
                let _ = running.send(());
                std::thread::sleep(ttl * 4);
                body_ended.store(true, std::sync::atomic::Ordering::SeqCst);
                "done"
            })
            .await
    });
    started.await.expect("the body started");
    let mut tries = 0;
    while !body.is_finished() {
        let attempt = other.acquire("k", &LockOptions::new(ttl)).await;
        assert!(
            matches!(attempt, Err(LockError::Busy { .. }))
                || ended.load(std::sync::atomic::Ordering::SeqCst),
            "another client got the lock while the body ran: {attempt:?}"
        );
        tries += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(tries > 10, "only {tries} tries");
    assert_eq!(body.await.expect("task").expect("kept the lock"), "done");
}

/// Item 5: `max_hold(Duration::MAX)` means renewal without bound, not no renewal.
#[tokio::test]
async fn an_unbounded_max_hold_still_renews() {
    let backend = Backend::memory();
    let ttl = Duration::from_millis(100);
    let options = LockOptions::new(ttl).renew(true).max_hold(Duration::MAX);
    let outcome = backend
        .with_lock("k", &options, tokio::time::sleep(ttl * 6))
        .await;
    assert!(outcome.is_ok(), "{outcome:?}");
}
