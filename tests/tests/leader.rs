//! `#[leader]` at run time, on a real Redis: the body runs only while this process leads,
//! runs again after leadership is lost (with fresh clones of its parameters), hands over on
//! return, and reports what campaigning cannot mend.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use lock_runtime::{leader, Backend, LeaderOptions, LockError};
use lock_tests::RedisServer;

struct Scheduler {
    runs: AtomicU32,
}

impl Scheduler {
    /// Leads for a while, then (on the third run) finishes.
    #[leader(name = "scheduler:{region}", ttl = "1s", client = "leader-tests")]
    async fn schedule(
        &self,
        region: String,
        log: Arc<std::sync::Mutex<Vec<u64>>>,
    ) -> Result<u32, LockError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        log.lock()
            .unwrap()
            .push(lock_runtime::fencing_token().expect("a term"));
        if run < 3 {
            // Outlives the lease: leadership is taken away meanwhile (see the test).
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(run)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_runs_again_after_each_lost_leadership_and_returns_when_done() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    lock_runtime::register("leader-tests", backend.clone()).expect("register");
    let scheduler = Arc::new(Scheduler {
        runs: AtomicU32::new(0),
    });
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let task = {
        let (scheduler, log) = (scheduler.clone(), log.clone());
        tokio::spawn(async move { scheduler.schedule("eu".to_owned(), log).await })
    };
    // Twice, an operator takes the election away from the running body: renewal finds it
    // gone, the body is cancelled, and the function campaigns again.
    for run in 1..=2 {
        let taken = async {
            loop {
                if scheduler.runs.load(Ordering::SeqCst) == run {
                    if let Ok(Some(_)) = backend.force_release("scheduler:eu").await {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), taken)
            .await
            .expect("the body ran and led");
    }
    let runs = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the third run finished")
        .expect("join")
        .expect("led");
    assert_eq!(runs, 3);
    let terms = log.lock().unwrap().clone();
    assert_eq!(terms.len(), 3);
    assert!(terms.windows(2).all(|pair| pair[0] < pair[1]), "{terms:?}");
    // It gave leadership up on return.
    assert_eq!(backend.leader("scheduler:eu").await.expect("leader"), None);
}

#[leader(name = "report", ttl = "10s", client = "leader-tests-unregistered")]
async fn report() -> Result<(), LockError> {
    Ok(())
}

#[tokio::test]
async fn an_unregistered_client_is_an_error_not_an_endless_campaign() {
    let refused = tokio::time::timeout(Duration::from_secs(5), report())
        .await
        .expect("returned at once");
    assert!(
        matches!(refused, Err(LockError::NotInitialized { .. })),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_candidates_one_leader_and_a_resignation_hands_over_at_once() {
    let server = RedisServer::start();
    let (a, b) = (
        Backend::redis(&server.url()).await.expect("connect"),
        Backend::redis(&server.url()).await.expect("connect"),
    );
    let options = LeaderOptions::new(Duration::from_secs(30));
    let first = a.campaign("pair", &options).await.expect("elected");
    let waiting = {
        let (b, options) = (b.clone(), options.clone());
        tokio::spawn(async move { b.campaign("pair", &options).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    let resigned = std::time::Instant::now();
    first.resign().await.expect("resign");
    let second = waiting.await.expect("join").expect("elected");
    // Woken by the release, not by the 30 s lease.
    assert!(
        resigned.elapsed() < Duration::from_secs(2),
        "{:?}",
        resigned.elapsed()
    );
    // A leader dropped without resigning hands over too (released in the background).
    let waiting = {
        let (a, options) = (a.clone(), options.clone());
        tokio::spawn(async move { a.campaign("pair", &options).await })
    };
    drop(second);
    let third = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("handed over on drop")
        .expect("join")
        .expect("elected");
    third.resign().await.expect("resign");
}

/// A leadership (or any renewed lock) taken with a lock delay, given up while renewal still
/// keeps it, is released at once: the delay is for leases that ran out, not for clean ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_leader_with_a_lock_delay_hands_over_at_once() {
    let server = RedisServer::start();
    let (a, b) = (
        Backend::redis(&server.url()).await.expect("connect"),
        Backend::redis(&server.url()).await.expect("connect"),
    );
    // A TTL of 1 s (renewed every third of it) leaves a busy machine room to renew.
    let options = LeaderOptions::new(Duration::from_secs(1)).lock_delay(Duration::from_secs(30));
    let first = a.campaign("delayed", &options).await.expect("elected");
    // Past two TTLs: only renewal keeps it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(first.is_leading());
    let waiting = {
        let (b, options) = (b.clone(), options.clone());
        tokio::spawn(async move { b.campaign("delayed", &options).await })
    };
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("handed over at once, not after the 30 s delay")
        .expect("join")
        .expect("elected");
    // A `with_lock` body cancelled after its lease was renewed: released at once too.
    second.resign().await.expect("resign");
    let renewed = lock_runtime::LockOptions::new(Duration::from_secs(1))
        .renew(true)
        .lock_delay(Duration::from_secs(30));
    let body = a.with_lock(
        "delayed-body",
        &renewed,
        tokio::time::sleep(Duration::from_secs(60)),
    );
    assert!(tokio::time::timeout(Duration::from_millis(2500), body)
        .await
        .is_err());
    let again = tokio::time::timeout(
        Duration::from_secs(5),
        b.acquire(
            "delayed-body",
            &renewed.clone().wait(Duration::from_secs(5)),
        ),
    )
    .await
    .expect("free at once")
    .expect("acquire");
    again.release().await.expect("release");
}
