//! The examples, run for real: as processes, against real `redis-server`s.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use lock_examples::http;
use lock_runtime::{Backend, LockOptions};
use lock_tests::RedisServer;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Starts one HTTP service instance and returns it with the address it listens on.
async fn http_service(redis_url: &str) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_http-service"))
        .args(["--redis", redis_url, "--serve-for", "120"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn http-service");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.to_owned();
            }
        }
        panic!("http-service exited before listening");
    })
    .await
    .expect("http-service listens within 30 s");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// The value of `metric` for the account locks on a Prometheus page (0 if absent).
fn sample(page: &str, metric: &str) -> f64 {
    let labels = [r#"name="account:{id}""#, r#"backend="redis""#];
    lock_tests::prometheus_value(page, metric, &labels)
}

/// The metric names that `ops/grafana/distributed-locks.json` and
/// `ops/prometheus/distributed-locks.rules.yml` query.
fn ops_metrics() -> std::collections::BTreeSet<String> {
    let ops = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops");
    let mut names = std::collections::BTreeSet::new();
    for file in [
        "grafana/distributed-locks.json",
        "prometheus/distributed-locks.rules.yml",
    ] {
        let text = std::fs::read_to_string(ops.join(file)).expect("an ops file");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("distributed_lock_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    assert!(names.len() >= 8, "too few metrics found in ops/: {names:?}");
    names
}

/// The alerting rules load, and `promtool test rules` finds each alert firing on the series
/// that should fire it and on no others (`ops/prometheus/distributed-locks.test.yml`).
#[test]
fn the_alerting_rules_pass_promtool() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus");
    for args in [
        ["check", "rules", "distributed-locks.rules.yml"],
        ["test", "rules", "distributed-locks.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool (Debian's `prometheus` package; scripts/test installs it)");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_http_instances_never_overdraw_and_answer_busy_with_423() {
    let server = RedisServer::start();
    let (_a, addr_a) = http_service(&server.url()).await;
    let (_b, addr_b) = http_service(&server.url()).await;
    let deposit = http(&addr_a, "POST", "/accounts/7/deposit", "100")
        .await
        .expect("deposit");
    assert_eq!(deposit.status, 200, "{deposit:?}");

    let mut calls = Vec::new();
    for i in 0..40 {
        let addr = if i % 2 == 0 {
            addr_a.clone()
        } else {
            addr_b.clone()
        };
        calls.push(tokio::spawn(async move {
            http(&addr, "POST", "/accounts/7/withdraw", "10")
                .await
                .expect("withdraw")
        }));
    }
    let mut statuses = BTreeMap::<u16, usize>::new();
    for call in calls {
        let response = call.await.expect("request task");
        if response.status == 423 {
            assert_eq!(response.header("retry-after"), Some("1"), "{response:?}");
        }
        assert!(matches!(response.status, 200 | 409 | 423), "{response:?}");
        *statuses.entry(response.status).or_default() += 1;
    }
    let withdrawn = 10 * statuses.get(&200).copied().unwrap_or(0) as i64;
    let balance: i64 = http(&addr_b, "GET", "/accounts/7", "")
        .await
        .expect("balance")
        .body
        .trim()
        .parse()
        .expect("a number");
    assert!(balance >= 0, "overdrawn: {balance} ({statuses:?})");
    assert_eq!(
        balance,
        100 - withdrawn,
        "money appeared or vanished: {statuses:?}"
    );

    // The two instances' metrics add up to what happened: every deposit and withdrawal
    // that ran took the lock once, every 423 gave up busy, and nothing is held now.
    let mut pages = Vec::new();
    for addr in [&addr_a, &addr_b] {
        let page = http(addr, "GET", "/metrics", "").await.expect("scrape");
        assert_eq!(page.status, 200, "{page:?}");
        pages.push(page.body);
    }
    let total = |metric: &str| -> f64 { pages.iter().map(|page| sample(page, metric)).sum() };
    let ran =
        1 + statuses.get(&200).copied().unwrap_or(0) + statuses.get(&409).copied().unwrap_or(0);
    let busy = statuses.get(&423).copied().unwrap_or(0);
    let shown = pages.join("\n");
    assert_eq!(
        total("distributed_lock_acquisitions_total"),
        ran as f64,
        "{shown}"
    );
    assert_eq!(
        total("distributed_lock_wait_seconds_count"),
        ran as f64,
        "{shown}"
    );
    assert_eq!(
        total("distributed_lock_held_seconds_count"),
        ran as f64,
        "{shown}"
    );
    assert_eq!(total("distributed_lock_busy_total"), busy as f64, "{shown}");
    assert_eq!(total("distributed_lock_held"), 0.0, "{shown}");
    assert_eq!(total("distributed_lock_lost_total"), 0.0, "{shown}");
    assert!(
        shown.contains("distributed_lock_store_call_seconds_count{"),
        "{shown}"
    );
    // Every series the shipped dashboard and alerting rules query is one this service
    // exports after its burst (histograms as buckets).
    for queried in ops_metrics() {
        let exported = shown.lines().any(|line| {
            line.starts_with(&format!("{queried}{{")) || line.starts_with(&format!("{queried} "))
        });
        assert!(
            exported,
            "ops/ queries `{queried}`, which the service does not export:\n{shown}"
        );
    }

    // Busy, for sure: hold the account's lock from here, as a third instance would.
    let backend = Backend::redis(&server.url()).await.expect("connect");
    let held = backend
        .acquire("account:7", &LockOptions::new(Duration::from_secs(30)))
        .await
        .expect("hold the account lock");
    let busy = http(&addr_a, "POST", "/accounts/7/withdraw", "10")
        .await
        .expect("withdraw");
    assert_eq!(busy.status, 423, "{busy:?}");
    assert_eq!(busy.header("retry-after"), Some("1"));
    held.release().await.expect("release");
    let after = http(&addr_a, "POST", "/accounts/7/withdraw", "10")
        .await
        .expect("withdraw");
    assert!(matches!(after.status, 200 | 409), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_jobs_across_3_processes_run_each_tick_exactly_once() {
    let server = RedisServer::start();
    each_tick_runs_once(&server.url()).await;
}

/// The examples take the library's URLs for Redis Cluster and Sentinel too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_jobs_run_each_tick_once_through_a_cluster_and_a_sentinel() {
    let cluster = lock_tests::RedisCluster::start(3, 0).await;
    each_tick_runs_once(&cluster.url()).await;
    let primary = RedisServer::start();
    let sentinel = lock_tests::Sentinel::start("jobs", &primary, 1);
    each_tick_runs_once(&format!(
        "redis+sentinel://127.0.0.1:{}/jobs",
        sentinel.port()
    ))
    .await;
    assert!(
        primary.raw(&["DBSIZE"]).trim() != ":0",
        "nothing reached the primary"
    );
}

/// `--zookeeper`: the locks in ZooKeeper, the ledger in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_jobs_run_each_tick_once_with_locks_in_zookeeper() {
    let zookeeper = lock_tests::ZooKeeperServer::start();
    let ledger = RedisServer::start();
    each_tick_runs_once_with(&["--zookeeper", &zookeeper.hosts(), "--redis", &ledger.url()]).await;
    assert!(
        zookeeper.four_letters("mntr").contains("zk_znode_count"),
        "ZooKeeper answers"
    );
    assert_eq!(
        ledger.calls("set"),
        3,
        "one ledger write per tick, and no lock in Redis"
    );
}

/// `--postgres`: the locks in PostgreSQL, the ledger in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_jobs_run_each_tick_once_with_locks_in_postgres() {
    let ledger = RedisServer::start();
    let postgres = lock_tests::postgres_url();
    each_tick_runs_once_with(&["--postgres", &postgres, "--redis", &ledger.url()]).await;
    assert_eq!(
        ledger.calls("set"),
        3,
        "one ledger write per tick, and no lock in Redis"
    );
}

/// Three scheduled-jobs processes on `url`, three ticks: each tick ran exactly once.
async fn each_tick_runs_once(url: &str) {
    each_tick_runs_once_with(&["--redis", url]).await;
}

/// [`each_tick_runs_once`] with the store flags `store`.
async fn each_tick_runs_once_with(store: &[&str]) {
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        instances.push(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_scheduled-jobs"))
                .args(store)
                .args(["--name", name])
                .args(["--ticks", "3", "--period-ms", "1000", "--job", "test"])
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn scheduled-jobs"),
        );
    }
    let mut per_tick = BTreeMap::<u64, (usize, usize)>::new(); // tick -> (ran, skipped)
    for instance in instances {
        let output = tokio::time::timeout(Duration::from_secs(60), instance.wait_with_output())
            .await
            .expect("the instance exits by itself")
            .expect("instance output");
        assert!(output.status.success(), "{output:?}");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((tick, rest)) = line.strip_prefix("tick ").and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let entry = per_tick
                .entry(tick.parse().expect("tick number"))
                .or_default();
            if rest.ends_with(" ran") {
                entry.0 += 1;
            } else {
                assert!(rest.contains("skipped"), "unexpected line {line:?}");
                entry.1 += 1;
            }
        }
    }
    assert!(per_tick.len() >= 3, "too few ticks: {per_tick:?}");
    for (tick, (ran, skipped)) in &per_tick {
        assert_eq!(
            *ran, 1,
            "tick {tick} ran {ran} times ({skipped} skips): {per_tick:?}"
        );
    }
    let lines: usize = per_tick.values().map(|(r, s)| r + s).sum();
    assert_eq!(lines, 9, "3 instances x 3 ticks: {per_tick:?}");
}

#[tokio::test]
async fn the_worker_pool_never_overlaps_jobs_on_one_resource() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker-pool"))
        .args(["--jobs", "8", "--workers", "4"])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the worker pool exits by itself")
        .expect("worker-pool output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(!stdout.contains("OVERLAP"), "{stdout}");
    assert!(stdout.contains("8 jobs done"), "{stdout}");
}

/// The leader-scheduler in one process: one instance leads and schedules, the leader
/// stops, and another is elected with a higher term; nobody schedules beside a leader.
#[tokio::test]
async fn the_leader_scheduler_hands_over_when_its_leader_stops() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_leader-scheduler"))
        .args([
            "--seconds",
            "4",
            "--stop-leader-after-ms",
            "1500",
            "--period-ms",
            "200",
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("exits by itself")
        .expect("run leader-scheduler");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    // The first leader, and the one after it stopped (a third may be elected while the
    // program shuts its instances down).
    let leads: Vec<&str> = text.lines().filter(|l| l.contains(" leads ")).collect();
    assert!(leads.len() >= 2, "{text}");
    let mut leader = None;
    for line in text.lines() {
        let name = line.split(' ').nth(1).expect("an instance");
        if line.contains(" leads ") {
            assert!(leader.is_none(), "two leaders: {text}");
            leader = Some(name);
        } else if line.ends_with(" stops") {
            assert_eq!(leader.take(), Some(name), "{text}");
        } else {
            assert_eq!(leader, Some(name), "scheduled by a non-leader: {text}");
        }
    }
}

/// Three leader-scheduler processes on one Redis: one leads; killed (`kill -9`), another
/// takes over within the 3 s TTL, with a higher term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_leader_scheduler_processes_survive_a_killed_leader() {
    let redis = RedisServer::start();
    let mut children: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_leader-scheduler"))
                .args(["--redis", &redis.url(), "--name", name, "--seconds", "30"])
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn leader-scheduler")
        })
        .collect();
    let mut lines = lock_tests::output_lines(&mut children);
    let mut next_leader = async || loop {
        let (i, line) = tokio::time::timeout(Duration::from_secs(20), lines.recv())
            .await
            .expect("a leader in time")
            .expect("output");
        if let Some(term) = line
            .split("(term ")
            .nth(1)
            .filter(|_| line.contains(" leads "))
        {
            return (i, term.trim_end_matches(')').parse::<u64>().expect("term"));
        }
    };
    let (first, first_term) = next_leader().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = std::time::Instant::now();
    lock_tests::signal(children[first].id().expect("running"), "-KILL");
    let (second, second_term) = next_leader().await;
    assert_ne!(second, first);
    assert!(second_term > first_term);
    assert!(
        killed.elapsed() < Duration::from_secs(3) + Duration::from_secs(2),
        "{:?}",
        killed.elapsed()
    );
}
