//! Correct under faults, against real `redis-server` processes and real signals: a paused
//! store, killed connections, and a holder paused past its lease. Each scenario prints its
//! figures (overlaps, worst call time, worst time a key sat free but unavailable); run with
//! `--nocapture` to see them.

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::{eventually, signal, RedisServer};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

const BOUND: Duration = Duration::from_millis(300);
/// What a call may take beyond its wait and bound on a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(1);
const KEYS: usize = 4;

/// What the workers saw.
#[derive(Default)]
struct Tally {
    overlaps: AtomicU64,
    acquired: AtomicU64,
    worst_call_us: AtomicU64,
    errors: Mutex<HashMap<&'static str, u64>>,
}

impl Tally {
    fn call_took(&self, took: Duration) {
        self.worst_call_us
            .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn error(&self, error: &LockError) {
        let kind = match error {
            LockError::Busy { .. } => "busy",
            LockError::Timeout { .. } => "timeout",
            LockError::Backend { .. } => "backend",
            LockError::Lost { .. } => "lost",
            _ => "other",
        };
        *self.errors.lock().expect("tally").entry(kind).or_default() += 1;
    }

    fn errors(&self) -> HashMap<&'static str, u64> {
        self.errors.lock().expect("tally").clone()
    }
}

/// Workers on two clients taking `KEYS` locks in turn until `stop`, with an overlap
/// detector per key.
async fn workers(
    clients: &[Backend],
    options: LockOptions,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let inside: Arc<Vec<AtomicBool>> =
        Arc::new((0..KEYS).map(|_| AtomicBool::new(false)).collect());
    let mut handles = Vec::new();
    for i in 0..8 {
        let backend = clients[i % clients.len()].clone();
        let (options, stop, tally, inside) =
            (options.clone(), stop.clone(), tally.clone(), inside.clone());
        handles.push(tokio::spawn(async move {
            let mut round = i;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let key = round % KEYS;
                let started = Instant::now();
                let acquired = backend.acquire(&format!("k{key}"), &options).await;
                tally.call_took(started.elapsed());
                let guard = match acquired {
                    Ok(guard) => guard,
                    Err(e) => {
                        tally.error(&e);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                tally.acquired.fetch_add(1, Ordering::Relaxed);
                if inside[key].swap(true, Ordering::SeqCst) {
                    tally.overlaps.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside[key].store(false, Ordering::SeqCst);
                let started = Instant::now();
                let released = guard.release().await;
                tally.call_took(started.elapsed());
                if let Err(e) = released {
                    tally.error(&e);
                }
            }
        }));
    }
    handles
}

async fn clients(server: &RedisServer) -> Vec<Backend> {
    let mut clients = Vec::new();
    for _ in 0..2 {
        let backend = Backend::builder()
            .op_timeout(BOUND)
            .redis(&server.url())
            .await
            .expect("connect");
        clients.push(backend);
    }
    clients
}

/// How long after `since` each key became acquirable (by a fresh client).
async fn worst_unavailable(server: &RedisServer, since: Instant) -> Duration {
    let probe = Backend::builder()
        .op_timeout(BOUND)
        .redis(&server.url())
        .await
        .expect("connect");
    let mut worst = Duration::ZERO;
    for key in 0..KEYS {
        let waiting = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(10));
        let guard = probe
            .acquire(&format!("k{key}"), &waiting)
            .await
            .expect("key acquirable");
        worst = worst.max(since.elapsed());
        guard.release().await.expect("release");
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_paused_for_2s_gives_timeouts_then_frees_every_key_at_once() {
    let server = RedisServer::start();
    let clients = clients(&server).await;
    let wait = Duration::from_millis(500);
    let options = LockOptions::new(Duration::from_secs(5)).wait(wait);
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let handles = workers(&clients, options, stop.clone(), tally.clone()).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(server.pid(), "-STOP");
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(server.pid(), "-CONT");
    let resumed = Instant::now();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.expect("worker");
    }
    let unavailable = worst_unavailable(&server, resumed).await;

    let (overlaps, worst_call) = (
        tally.overlaps.load(Ordering::Relaxed),
        Duration::from_micros(tally.worst_call_us.load(Ordering::Relaxed)),
    );
    let errors = tally.errors();
    println!(
        "store paused 2 s: {} acquisitions, {overlaps} overlaps, errors {errors:?}, worst call \
         {worst_call:?}, keys free {unavailable:?} after SIGCONT",
        tally.acquired.load(Ordering::Relaxed)
    );
    assert_eq!(overlaps, 0);
    assert!(
        errors.get("timeout").copied().unwrap_or(0) > 0,
        "the pause went unnoticed: {errors:?}"
    );
    assert!(!errors.contains_key("lost"), "{errors:?}");
    assert!(
        worst_call < wait + BOUND + SLACK,
        "a call took {worst_call:?}"
    );
    // Well under the 5 s TTL: freed, not expired.
    assert!(
        unavailable < Duration::from_secs(1),
        "keys free only after {unavailable:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_leave_no_orphaned_lock_and_errors_stay_errors() {
    let server = RedisServer::start();
    let clients = clients(&server).await;
    let wait = Duration::from_millis(300);
    let options = LockOptions::new(Duration::from_secs(30)).wait(wait);
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let handles = workers(&clients, options, stop.clone(), tally.clone()).await;

    let mut kills = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let killed = server.raw(&["CLIENT", "KILL", "TYPE", "normal"]);
        assert!(killed.starts_with(':'), "{killed}");
        kills += 1;
    }
    let last_kill = Instant::now();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.expect("worker");
    }
    // Every lock taken or half-taken during the kills is deleted (TTL 30 s: not expired).
    let clean = eventually(Duration::from_secs(5), || {
        server.raw(&["KEYS", "lock:*"]).starts_with("*0")
    })
    .await;
    let settled = last_kill.elapsed();
    let unavailable = worst_unavailable(&server, last_kill).await;

    let overlaps = tally.overlaps.load(Ordering::Relaxed);
    let worst_call = Duration::from_micros(tally.worst_call_us.load(Ordering::Relaxed));
    let errors = tally.errors();
    println!(
        "{kills} CLIENT KILLs in 3 s: {} acquisitions, {overlaps} overlaps, errors {errors:?}, \
         worst call {worst_call:?}, no lock left {settled:?} after the last kill, keys free \
         {unavailable:?} after it",
        tally.acquired.load(Ordering::Relaxed)
    );
    assert!(clean, "orphaned locks: {}", server.raw(&["KEYS", "lock:*"]));
    assert_eq!(overlaps, 0);
    assert!(tally.acquired.load(Ordering::Relaxed) > 0);
    assert!(!errors.contains_key("lost"), "{errors:?}");
    assert!(
        worst_call < wait + BOUND + SLACK,
        "a call took {worst_call:?}"
    );
    assert!(
        unavailable < Duration::from_secs(2),
        "keys free only after {unavailable:?}"
    );
}

/// The holder process, paused (SIGSTOP) past its 500 ms lease while another client takes the
/// lock over, then resumed. Returns what it printed after resuming.
async fn paused_holder(mode: &str) -> (u64, u64, Vec<String>, RedisServer) {
    let server = RedisServer::start();
    let resource = RedisServer::start();
    let mut holder = tokio::process::Command::new(env!("CARGO_BIN_EXE_fenced-holder"))
        .args([&server.url(), &resource.url(), "ledger", "500", mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn fenced-holder");
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the holder reports")
        .expect("read")
        .expect("a line");
    let stale: u64 = first
        .strip_prefix("acquired ")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("unexpected {first:?}"));

    let pid = holder.id().expect("pid");
    signal(pid, "-STOP");
    let taker = Backend::redis(&server.url()).await.expect("connect");
    let waiting = LockOptions::new(Duration::from_secs(30))
        .wait(Duration::from_secs(10))
        .fencing(true);
    let takeover = taker
        .acquire("ledger", &waiting)
        .await
        .expect("taken over after the lease");
    let fresh = takeover.fencing_token().expect("token");
    let mut conn = redis::Client::open(resource.url().as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("resource");
    assert!(lock_tests::fenced_write(&mut conn, fresh, "new holder")
        .await
        .expect("write"));
    signal(pid, "-CONT");
    let mut stdin = holder.stdin.take().expect("stdin");
    let _ = stdin.write_all(b"go\n").await;
    let mut after = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            after.push(line);
        }
    })
    .await
    .expect("the holder finishes");
    let value: String = redis::cmd("GET")
        .arg("value")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(value, "new holder", "the stale write went through");
    takeover
        .release()
        .await
        .expect("the new holder still holds the lock");
    (stale, fresh, after, resource)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_is_fenced_off_and_its_release_reports_lost() {
    let (stale, fresh, after, _resource) = paused_holder("guard").await;
    println!("paused holder (guard): token {stale}, takeover token {fresh}, then {after:?}");
    assert!(fresh > stale, "the takeover got {fresh} after {stale}");
    assert_eq!(after, ["write rejected", "release lost"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_body_is_cancelled_with_lost_when_it_resumes() {
    let (stale, fresh, after, _resource) = paused_holder("body").await;
    println!("paused holder (body): token {stale}, takeover token {fresh}, then {after:?}");
    assert!(fresh > stale);
    // Cancelled at its first await after resuming: it never wrote.
    assert_eq!(after, ["result: lost"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_that_lost_every_lock_none_is_granted_until_earlier_leases_ended() {
    let server = RedisServer::start();
    let longest = Duration::from_millis(1500);
    let connect = || async {
        Backend::builder()
            .op_timeout(BOUND)
            .restart_guard(Some(longest))
            .redis(&server.url())
            .await
            .expect("connect")
    };
    let (holder, waiter) = (connect().await, connect().await);
    let fenced = LockOptions::new(longest).fencing(true);
    let held = holder.acquire("k", &fenced).await.expect("acquire");
    let before = held.fencing_token().expect("token");
    let lease_end = held.lease_end();

    // kill -9 while the holder is inside its critical section; restart with no data.
    let server = server.restarted().await;
    let restarted = Instant::now();

    let waiting = fenced.clone().wait(Duration::from_secs(10));
    let mut errors = Vec::new();
    let taken = loop {
        match waiter.acquire("k", &waiting).await {
            Ok(guard) => break guard,
            // The first calls meet the dead connection, each with an error.
            Err(e @ (LockError::Backend { .. } | LockError::Timeout { .. })) => {
                errors.push(e.to_string());
                assert!(restarted.elapsed() < Duration::from_secs(20), "{errors:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    };
    let granted_after = restarted.elapsed();
    let after = taken.fencing_token().expect("token");
    println!(
        "restart: old lease ended {:?} after the restart, next grant {granted_after:?} after it \
         (guard {longest:?}), tokens {before} then {after}, errors meanwhile {errors:?}",
        lease_end.saturating_duration_since(restarted)
    );
    assert!(
        Instant::now() >= lease_end,
        "granted while the old lease lasted: overlap"
    );
    assert!(
        granted_after >= longest - Duration::from_millis(100),
        "{granted_after:?}"
    );
    assert!(
        after > before,
        "the fencing token went backwards: {before} then {after}"
    );
    taken.release().await.expect("release");
    let old = held.release().await;
    assert!(
        matches!(old, Err(LockError::Lost { .. } | LockError::Backend { .. })),
        "{old:?}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_whose_reply_was_lost_is_recognised_by_its_own_token() {
    let server = RedisServer::start();
    let backend = Backend::builder()
        .op_timeout(BOUND)
        .redis(&server.url())
        .await
        .expect("connect");
    // Warm up the scripts, so the paused server only holds lock traffic.
    let warm = backend
        .acquire("warm", &LockOptions::new(Duration::from_secs(1)))
        .await;
    warm.expect("warm-up").release().await.expect("release");

    signal(server.pid(), "-STOP");
    let waiting = LockOptions::new(Duration::from_secs(30)).wait(Duration::from_secs(10));
    let (b, w) = (backend.clone(), waiting.clone());
    let acquiring = tokio::spawn(async move { b.acquire("k", &w).await });
    // The first requests time out while the server is stopped; their SET is still queued.
    tokio::time::sleep(BOUND * 3).await;
    signal(server.pid(), "-CONT");
    let resumed = Instant::now();
    let guard = acquiring
        .await
        .expect("task")
        .expect("acquired once the server answers");
    let took = resumed.elapsed();
    println!("reply lost while paused: acquired {took:?} after SIGCONT (TTL 30 s)");
    // Its own earlier SET was recognised, not waited out for the 30 s TTL.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(server
        .raw(&["GET", "lock:{k}"])
        .contains(guard.token().as_str()));
    guard.release().await.expect("release");
    assert_eq!(server.raw(&["EXISTS", "lock:{k}"]).trim(), ":0");
}

#[tokio::test]
async fn the_strict_restart_guard_holds_grants_until_a_fresh_server_was_up_for_the_longest_ttl() {
    let server = RedisServer::start();
    let longest = Duration::from_millis(1500);
    let connected = Instant::now();
    let strict = Backend::builder()
        .restart_guard(Some(longest))
        .restart_guard_on_connect(true)
        .redis(&server.url())
        .await
        .expect("connect");
    let held = strict
        .acquire("k", &LockOptions::new(Duration::from_secs(1)))
        .await;
    assert!(
        matches!(held, Err(LockError::Recovering { .. })),
        "{held:?}"
    );
    let waiting = LockOptions::new(Duration::from_secs(1)).wait(Duration::from_secs(10));
    let guard = strict
        .acquire("k", &waiting)
        .await
        .expect("granted once up long enough");
    // The server started before `connected`; uptime is counted in whole seconds.
    assert!(
        connected.elapsed() >= Duration::from_millis(400),
        "{:?}",
        connected.elapsed()
    );
    guard.release().await.expect("release");
}
