//! Leader election across processes (`leader-proc`), on Redis (one server, Sentinel,
//! Cluster), ZooKeeper and PostgreSQL: a killed leader is replaced within its TTL plus 50
//! ms, a leader frozen (SIGSTOP) past its lease finds its leadership lost on resume and a
//! late write with its term refused, and a fenced resource accepts every leader's writes
//! in term order only: never one from a deposed leader after its successor's.

use std::{process::Stdio, time::Duration};

use lock_tests::{
    now_us, output_lines, postgres_url, signal, unique_table, RedisServer, ZooKeeperServer,
};
use tokio::{
    process::{Child, Command},
    sync::mpsc,
};

/// One line a candidate printed.
struct Line {
    candidate: usize,
    text: String,
}

struct Candidates {
    children: Vec<Child>,
    lines: mpsc::UnboundedReceiver<(usize, String)>,
}

impl Candidates {
    fn spawn(
        count: usize,
        store: &str,
        resource: &str,
        ttl: Duration,
        env: &[(&str, String)],
    ) -> Self {
        let mut children: Vec<Child> = (0..count)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_leader-proc"))
                    .args([store, resource, "scheduler", &ttl.as_millis().to_string()])
                    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                    .stdout(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("spawn leader-proc")
            })
            .collect();
        let lines = output_lines(&mut children);
        Self { children, lines }
    }

    /// The next line starting with `word` (from `candidate` if given), within `bound`.
    async fn next(&mut self, word: &str, candidate: Option<usize>, bound: Duration) -> Line {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let (candidate_of, text) = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no `{word}` line within {bound:?}"))
                .expect("the candidates' output");
            let line = Line {
                candidate: candidate_of,
                text,
            };
            if line.text.starts_with(word) && candidate.is_none_or(|c| c == line.candidate) {
                return line;
            }
        }
    }

    fn pid(&self, candidate: usize) -> u32 {
        self.children[candidate].id().expect("running")
    }
}

fn term_of(line: &Line) -> u64 {
    line.text
        .split(' ')
        .nth(1)
        .and_then(|t| t.parse().ok())
        .expect("a term")
}

/// Kill the leader, freeze the next one past its lease, and check the resource's log.
async fn kill_and_freeze(store: &str, ttl: Duration, env: &[(&str, String)]) {
    let resource = RedisServer::start();
    let mut candidates = Candidates::spawn(3, store, &resource.url(), ttl, env);

    let first = candidates
        .next("leading", None, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed_us = now_us();
    signal(candidates.pid(first.candidate), "-KILL");
    let second = candidates.next("leading", None, ttl * 5).await;
    assert_ne!(second.candidate, first.candidate);
    // By the new leader's own reading of this machine's wall clock when elected.
    let elected_us: u128 = second
        .text
        .split(' ')
        .nth(2)
        .and_then(|t| t.parse().ok())
        .expect("µs");
    let takeover = Duration::from_micros(u64::try_from(elected_us - killed_us).expect("µs"));
    eprintln!("takeover after kill -9: {takeover:?} (TTL {ttl:?})");
    assert!(
        takeover <= ttl + Duration::from_millis(50),
        "takeover took {takeover:?}"
    );
    assert!(term_of(&second) > term_of(&first));

    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(candidates.pid(second.candidate), "-STOP");
    let third = candidates.next("leading", None, ttl * 5).await;
    assert!(![first.candidate, second.candidate].contains(&third.candidate));
    assert!(term_of(&third) > term_of(&second));
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(candidates.pid(second.candidate), "-CONT");
    let lost = candidates
        .next("lost", Some(second.candidate), Duration::from_secs(10))
        .await;
    assert_eq!(term_of(&lost), term_of(&second));
    // A write with the deposed leader's term, arriving late: the resource refuses it.
    let late = candidates
        .next("late", Some(second.candidate), Duration::from_secs(10))
        .await;
    assert_eq!(late.text, format!("late {} refused", term_of(&second)));

    let log = resource.raw(&["LRANGE", "resource:log", "0", "-1"]);
    let accepted: Vec<u64> = log
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    assert!(accepted.len() >= 3, "{log}");
    assert!(
        accepted.windows(2).all(|pair| pair[0] <= pair[1]),
        "the resource accepted a lower term after a higher one: {accepted:?}"
    );
    for leader in [&first, &second, &third] {
        assert!(accepted.contains(&term_of(leader)), "{accepted:?}");
    }
    drop(candidates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_killed_leader_is_replaced_and_a_frozen_one_deposed() {
    let store = RedisServer::start();
    kill_and_freeze(&store.url(), Duration::from_secs(1), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_zookeeper_a_killed_leader_is_replaced_and_a_frozen_one_deposed() {
    let server = tokio::task::spawn_blocking(ZooKeeperServer::start)
        .await
        .expect("start ZooKeeper");
    kill_and_freeze(&server.url(), Duration::from_secs(2), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_killed_leader_is_replaced_and_a_frozen_one_deposed() {
    let table = unique_table("leader");
    kill_and_freeze(
        &postgres_url(),
        Duration::from_secs(1),
        &[("LOCK_TESTS_TABLE", table)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_a_killed_leader_is_replaced_and_a_frozen_one_deposed() {
    let primary = RedisServer::start();
    let sentinel = lock_tests::Sentinel::start("leaders", &primary, 1);
    let url = lock_tests::Sentinel::url(std::slice::from_ref(&sentinel), "leaders");
    kill_and_freeze(&url, Duration::from_secs(1), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_killed_leader_is_replaced_and_a_frozen_one_deposed() {
    let cluster = lock_tests::RedisCluster::start(3, 0).await;
    kill_and_freeze(&cluster.url(), Duration::from_secs(1), &[]).await;
}
