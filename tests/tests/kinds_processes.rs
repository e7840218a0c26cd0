//! Several keys, read-write locks and semaphores across processes on a real `redis-server`:
//! transfers between accounts conserve money and never deadlock, writers hold alone and are
//! not starved by readers, a semaphore never has more holders than permits, and a killed
//! holder's permit comes back after its TTL.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::RedisServer;

/// Runs `binary` with `args` and returns its standard output; fails the test if it fails.
async fn run(binary: &str, args: &[String]) -> String {
    let output = tokio::process::Command::new(binary)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the process finished in time")
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{binary} failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_between_ten_accounts_from_three_processes_conserve_money() {
    let server = RedisServer::start();
    let accounts = 10;
    for account in 0..accounts {
        server.raw(&["SET", &format!("balance:{account}"), "1000"]);
    }
    let started = Instant::now();
    // 1000 transfers in all, four tasks per process.
    let processes = [334, 333, 333].iter().enumerate().map(|(seed, transfers)| {
        let args = [
            server.url(),
            accounts.to_string(),
            transfers.to_string(),
            "4".to_owned(),
            (seed + 1).to_string(),
        ];
        async move { run(env!("CARGO_BIN_EXE_transfer"), &args).await }
    });
    let mut reports = Vec::new();
    for process in processes.collect::<Vec<_>>() {
        reports.push(tokio::spawn(process));
    }
    for report in reports {
        eprintln!("transfer: {}", report.await.expect("task").trim());
    }
    eprintln!("1000 transfers from 3 processes in {:?}", started.elapsed());
    let total: i64 = (0..accounts)
        .map(|account| {
            let reply = server.raw(&["GET", &format!("balance:{account}")]);
            let value = reply
                .trim()
                .rsplit('\n')
                .next()
                .unwrap_or_default()
                .to_owned();
            value
                .trim()
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("balance {reply:?}"))
        })
        .sum();
    assert_eq!(total, 10_000, "money was created or lost");
}

/// One holding reported by `kind-loop`.
#[derive(Debug, Clone)]
struct Holding {
    role: String,
    enter: u128,
    exit: u128,
}

fn holdings(output: &str) -> Vec<Holding> {
    output
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "a holding that outlived its lease: {line}");
            Holding {
                role: fields[0].to_owned(),
                enter: fields[1].parse().expect("enter"),
                exit: fields[2].parse().expect("exit"),
            }
        })
        .collect()
}

fn overlap(a: &Holding, b: &Holding) -> bool {
    a.enter < b.exit && b.enter < a.exit
}

/// `kind-loop` processes, one per `(role, tasks)`, on one key for `seconds`; all their
/// holdings.
async fn kind_loops(
    url: &str,
    key: &str,
    roles: &[(&str, u32)],
    seconds: u32,
    hold_ms: u32,
) -> Vec<Holding> {
    let runs: Vec<_> = roles
        .iter()
        .map(|(role, tasks)| {
            let args = [
                url.to_owned(),
                key.to_owned(),
                (*role).to_owned(),
                tasks.to_string(),
                seconds.to_string(),
                hold_ms.to_string(),
            ];
            tokio::spawn(async move { run(env!("CARGO_BIN_EXE_kind-loop"), &args).await })
        })
        .collect();
    let mut all = Vec::new();
    for output in runs {
        all.extend(holdings(&output.await.expect("task")));
    }
    all.sort_by_key(|h| h.enter);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_hold_alone_readers_together_and_writers_are_not_starved() {
    let server = RedisServer::start();
    // Two processes of three readers each keep the key read-locked almost all the time;
    // one writer process wants it too.
    let all = kind_loops(
        &server.url(),
        "doc",
        &[("read", 3), ("read", 3), ("write", 1)],
        4,
        6,
    )
    .await;
    let writes: Vec<&Holding> = all.iter().filter(|h| h.role == "write").collect();
    let reads: Vec<&Holding> = all.iter().filter(|h| h.role == "read").collect();
    for write in &writes {
        let beside: Vec<_> = all
            .iter()
            .filter(|other| !std::ptr::eq(*write, *other) && overlap(write, other))
            .collect();
        assert!(
            beside.is_empty(),
            "a writer held {write:?} beside {beside:?}"
        );
    }
    let shared = reads
        .windows(2)
        .filter(|pair| overlap(pair[0], pair[1]))
        .count();
    assert!(
        shared > 10,
        "readers hardly overlapped: {shared} of {}",
        reads.len()
    );
    // Readers never stop coming; a writer without preference would rarely see none.
    assert!(
        writes.len() >= 20,
        "the writer was starved: {} holdings in 4 s",
        writes.len()
    );
    eprintln!(
        "{} reads ({shared} overlapping the next), {} writes",
        reads.len(),
        writes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_never_has_more_holders_than_permits() {
    let server = RedisServer::start();
    let role = "permits=3";
    let all = kind_loops(
        &server.url(),
        "jobs",
        &[(role, 2), (role, 2), (role, 2)],
        3,
        4,
    )
    .await;
    // The most holders at any instant: walk every entry and exit in time order.
    let mut events: Vec<(u128, i32)> = all
        .iter()
        .flat_map(|h| [(h.enter, 1), (h.exit, -1)])
        .collect();
    // At one instant, an exit before an entry: touching holdings do not overlap.
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, step) in events {
        now += step;
        most = most.max(now);
    }
    assert!(most <= 3, "{most} holders of 3 permits");
    assert_eq!(most, 3, "the permits were never all in use");
    assert!(all.len() > 100, "only {} holdings", all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holders_permit_comes_back_after_its_ttl() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(1_500);
    let url = server.url();
    let ttl_ms = ttl.as_millis().to_string();
    let args = [url.as_str(), "slot", &ttl_ms, "0", "60000", "1"];
    let held_at =
        lock_tests::kill_holder_once_held(env!("CARGO_BIN_EXE_lock-hold"), &args, &[]).await;

    let backend = Backend::redis(&server.url()).await.expect("connect");
    let options = LockOptions::new(Duration::from_secs(5));
    let at_once = backend.acquire_permit("slot", 1, &options).await;
    assert!(
        matches!(at_once, Err(LockError::Busy { .. })),
        "the dead holder's permit is held: {at_once:?}"
    );
    let waiting = options.clone().wait(Duration::from_secs(10));
    let permit = backend
        .acquire_permit("slot", 1, &waiting)
        .await
        .expect("the permit came back");
    let after = held_at.elapsed();
    assert!(
        after < ttl + Duration::from_millis(700),
        "the permit came back late: {after:?}"
    );
    assert!(
        after >= ttl - Duration::from_millis(200),
        "before its TTL: {after:?}"
    );
    permit.release().await.expect("release");
}
