//! The real `lockctl` binary against real stores: what it prints and how it exits.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockError, LockMode, LockOptions};
use lock_tests::{RedisCluster, RedisServer, RedlockServers, ZooKeeperServer};

const LOCKCTL: &str = env!("CARGO_BIN_EXE_lockctl");

/// Runs `lockctl --url <url> <args>` to its end, with `stdin` as its input.
fn lockctl(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(LOCKCTL)
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("LOCK_RUNTIME_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lockctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write lockctl's input");
    child.wait_with_output().expect("lockctl's output")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The lines a running `lockctl` prints, as they come.
fn lines_of(child: &mut std::process::Child) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (lines_in, lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_in.send(line);
        }
    });
    lines
}

/// The next line of [`lines_of`], within 10 s.
async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.recv())
        .await
        .expect("lockctl printed a line in time")
        .expect("lockctl is still running")
}

fn options(function: &'static str) -> LockOptions {
    LockOptions::new(Duration::from_secs(30))
        .fencing(true)
        .function(function)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_show_print_each_holder_and_its_lease() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    let a = backend
        .acquire("order:1", &options("billing::charge"))
        .await
        .expect("order:1");
    let _b = backend
        .acquire("order:2", &LockOptions::new(Duration::from_secs(20)))
        .await
        .expect("order:2");
    let _c = backend
        .acquire("invoice:1", &options("billing::invoice"))
        .await
        .expect("invoice:1");

    let listed = lockctl(&server.url(), &["list", "order:*"], "");
    let (out, err) = text(&listed);
    assert_eq!(listed.status.code(), Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("REMAINING"),
        "{out}"
    );
    let pid = std::process::id().to_string();
    assert!(lines[1].starts_with("order:1 "), "{out}");
    assert!(lines[1].contains(&format!(":{pid} ")), "{out}");
    assert!(lines[1].contains("billing::charge"), "{out}");
    let fence = a.fencing_token().expect("a fence").to_string();
    assert!(lines[1].ends_with(&fence), "{out}");
    assert!(
        lines[2].starts_with("order:2 ") && lines[2].ends_with(" -"),
        "{out}"
    );
    assert!(!out.contains("invoice"), "{out}");

    let everything = lockctl(&server.url(), &["list"], "");
    assert_eq!(text(&everything).0.lines().count(), 4);

    let shown = lockctl(&server.url(), &["show", "order:1"], "");
    let (out, err) = text(&shown);
    assert_eq!(shown.status.code(), Some(0), "{out}{err}");
    assert!(out.contains(&format!("token:     {}", a.token())), "{out}");
    assert!(out.contains(&format!("pid:       {pid}")), "{out}");
    assert!(out.contains("function:  billing::charge"), "{out}");
    assert!(out.contains(&format!("fence:     {fence}")), "{out}");
    let remaining = out
        .lines()
        .find_map(|l| l.strip_prefix("remaining: "))
        .expect("a remaining line");
    let seconds: f64 = remaining.trim_end_matches('s').parse().expect("seconds");
    assert!((25.0..=30.0).contains(&seconds), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_by_force_says_who_held_the_lock_and_wakes_its_waiter() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    let held = backend
        .acquire("stuck", &options("jobs::nightly"))
        .await
        .expect("stuck");

    let without_force = lockctl(&server.url(), &["release", "stuck"], "");
    assert_eq!(without_force.status.code(), Some(2));
    assert!(text(&without_force).1.contains("--force"));
    let declined = lockctl(&server.url(), &["release", "stuck", "--force"], "n\n");
    let (out, err) = text(&declined);
    assert_eq!(declined.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("jobs::nightly") && err.contains("not released"),
        "{out}{err}"
    );
    assert!(backend.inspect("stuck").await.expect("inspect").is_some());

    // A waiter in another backend (another process, as far as the store is concerned).
    let other = Backend::redis(&server.url()).await.expect("connect");
    let waiter = tokio::spawn(async move {
        let waiting = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(20));
        let guard = other.acquire("stuck", &waiting).await;
        (Instant::now(), guard.map(|g| g.token().to_string()))
    });
    // Released once the waiter listens for the release.
    while server
        .raw(&["PUBSUB", "NUMSUB", "lock:{stuck}"])
        .trim_end()
        .ends_with(":0")
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let released = lockctl(&server.url(), &["release", "stuck", "--force"], "y\n");
    let released_at = Instant::now();
    let (out, err) = text(&released);
    assert_eq!(released.status.code(), Some(0), "{out}{err}");
    let pid = std::process::id();
    assert!(
        out.contains("released `stuck`, held by ")
            && out.contains(&format!(":{pid} (jobs::nightly) token {}", held.token())),
        "{out}"
    );
    let (woken_at, next) = waiter.await.expect("the waiter");
    let next = next.expect("the waiter got the lock");
    assert_ne!(next, held.token().to_string());
    assert!(
        woken_at.saturating_duration_since(released_at) < Duration::from_secs(2),
        "the waiter got the lock long before the 30 s lease would have ended"
    );
    // The old holder finds out when it releases.
    assert!(matches!(held.release().await, Err(LockError::Lost { .. })));

    let again = lockctl(
        &server.url(),
        &["release", "nothing", "--force", "--yes"],
        "",
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).1.contains("lock `nothing` is not held"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_each_holder_and_release_as_they_happen() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    let mut child = Command::new(LOCKCTL)
        .args(["--url", &server.url(), "watch", "job", "--count", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lockctl watch");
    let mut lines = lines_of(&mut child);
    let mut next_line = async || next_line(&mut lines).await;
    // --count 4: free, held, free, held.
    assert!(next_line().await.ends_with(" job free"));
    let options = LockOptions::new(Duration::from_secs(10)).function("jobs::run");
    let pid = std::process::id();
    let first = backend.acquire("job", &options).await.expect("job");
    let held = next_line().await;
    assert!(held.contains(" job held by "), "{held}");
    assert!(
        held.contains(&format!(":{pid} (jobs::run) token {}", first.token())),
        "{held}"
    );
    first.release().await.expect("release");
    let freed = next_line().await;
    assert!(freed.ends_with(" job free"), "{freed}");
    let second = backend.acquire("job", &options).await.expect("job");
    let held = next_line().await;
    assert!(held.contains(second.token().as_str()), "{held}");
    let status = child
        .wait()
        .expect("lockctl watch ends after --count lines");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_unreachable_stores_and_unknown_locks_are_clear_errors() {
    let not_a_url = lockctl("redis://:hunter2@[::1", &["list"], "");
    let (out, err) = text(&not_a_url);
    assert_eq!(not_a_url.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("malformed Redis URL") && !err.contains("hunter2"),
        "{err}"
    );

    let unknown = lockctl("mysql://nowhere/db", &["list"], "");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown).1.contains("unsupported lock store URL"));

    let memory = lockctl("memory://", &["list"], "");
    assert_eq!(memory.status.code(), Some(2));
    assert!(text(&memory).1.contains("inside one process"));

    let mut gone = RedisServer::start();
    let url = format!("redis://:hunter2@127.0.0.1:{}", gone.port());
    gone.kill();
    let started = Instant::now();
    let unreachable = lockctl(&url, &["--timeout-ms", "500", "show", "x"], "");
    let (out, err) = text(&unreachable);
    assert_eq!(unreachable.status.code(), Some(3), "{out}{err}");
    assert!(err.contains("connect") && !err.contains("hunter2"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let server = RedisServer::start();
    let missing = lockctl(&server.url(), &["show", "never-taken"], "");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).1.contains("lock `never-taken` is not held"));
    let none = lockctl(&server.url(), &["list", "nothing:*"], "");
    assert_eq!(none.status.code(), Some(0));
    assert_eq!(text(&none).0.lines().count(), 1, "a header alone");

    let usage = Command::new(LOCKCTL)
        .args(["--url", &server.url(), "frobnicate"])
        .output()
        .expect("run lockctl");
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_stores_list_show_and_release_too() {
    // Redis Cluster: keys on every shard are listed.
    let cluster = RedisCluster::start(3, 0).await;
    let backend = Backend::redis(&cluster.url()).await.expect("cluster");
    let names: Vec<String> = (0..12).map(|i| format!("shard:{i}")).collect();
    let mut guards = Vec::new();
    for name in &names {
        guards.push(
            backend
                .acquire(name, &options("cluster::job"))
                .await
                .expect(name),
        );
    }
    let listed = lockctl(&cluster.url(), &["list", "shard:*"], "");
    let (out, err) = text(&listed);
    assert_eq!(listed.status.code(), Some(0), "{out}{err}");
    assert_eq!(out.lines().count(), 1 + names.len(), "{out}");
    let released = lockctl(
        &cluster.url(),
        &["release", "shard:3", "--force", "--yes"],
        "",
    );
    assert_eq!(released.status.code(), Some(0), "{}", text(&released).1);
    assert!(backend.inspect("shard:3").await.expect("inspect").is_none());
    drop(guards);

    // Redlock: a lock is held where a majority holds it.
    let servers = RedlockServers::start(3);
    // The servers are fresh: no hold for their youth (on by default for Redlock).
    let backend = Backend::builder()
        .restart_guard_on_connect(false)
        .redis(&servers.url())
        .await
        .expect("redlock");
    let guard = backend
        .acquire(
            "majority",
            &LockOptions::new(Duration::from_secs(30)).function("redlock::job"),
        )
        .await
        .expect("majority");
    let shown = lockctl(&servers.url(), &["show", "majority"], "");
    let (out, err) = text(&shown);
    assert_eq!(shown.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains(guard.token().as_str()) && out.contains("redlock::job"),
        "{out}"
    );
    servers.servers()[0].raw(&["DEL", "lock:{majority}"]);
    servers.servers()[1].raw(&["DEL", "lock:{majority}"]);
    let minority = lockctl(&servers.url(), &["show", "majority"], "");
    assert_eq!(minority.status.code(), Some(1), "{}", text(&minority).0);

    // ZooKeeper: the holder is the first contender node; its lease is its session.
    let zookeeper = ZooKeeperServer::start();
    let backend = Backend::builder()
        .zookeeper_session_timeout(Duration::from_secs(2))
        .connect(&zookeeper.url())
        .await
        .expect("zookeeper");
    let guard = backend
        .acquire(
            "zk:1",
            &LockOptions::new(Duration::from_secs(5))
                .fencing(true)
                .function("zk::job"),
        )
        .await
        .expect("zk:1");
    let listed = lockctl(&zookeeper.url(), &["list", "zk:*"], "");
    let (out, err) = text(&listed);
    assert_eq!(listed.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("zk::job") && out.contains("while its session lives"),
        "{out}"
    );
    let shown = lockctl(&zookeeper.url(), &["show", "zk:1"], "");
    let out = text(&shown).0;
    assert!(out.contains(guard.token().as_str()), "{out}");
    let fence = guard.fencing_token().expect("a fence").to_string();
    assert!(out.contains(&format!("counter:   {fence}")), "{out}");
    let released = lockctl(
        &zookeeper.url(),
        &["release", "zk:1", "--force", "--yes"],
        "",
    );
    assert_eq!(released.status.code(), Some(0), "{}", text(&released).1);
    assert!(backend.inspect("zk:1").await.expect("inspect").is_none());
    assert!(matches!(guard.release().await, Err(LockError::Lost { .. })));

    // PostgreSQL (the library's default table, keys of this test's own).
    let url = lock_tests::postgres_url();
    let backend = Backend::builder().connect(&url).await.expect("postgres");
    let name = format!("pg:{}", std::process::id());
    let guard = backend
        .acquire(
            &name,
            &LockOptions::new(Duration::from_secs(20))
                .fencing(true)
                .function("pg::job"),
        )
        .await
        .expect("pg lock");
    let listed = lockctl(&url, &["list", &format!("{name}*")], "");
    let (out, err) = text(&listed);
    assert_eq!(listed.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("pg::job") && out.contains(&name), "{out}");
    let fence = guard.fencing_token().expect("a fence").to_string();
    let shown = lockctl(&url, &["show", &name], "");
    let out = text(&shown).0;
    assert!(
        out.contains(guard.token().as_str()) && out.contains(&fence),
        "{out}"
    );
    let released = lockctl(&url, &["release", &name, "--force", "--yes"], "");
    assert_eq!(released.status.code(), Some(0), "{}", text(&released).1);
    assert!(backend.inspect(&name).await.expect("inspect").is_none());
    assert!(matches!(guard.release().await, Err(LockError::Lost { .. })));
}

/// Readers and a semaphore's permits, as `list`, `show` and `release` print them on one
/// store (`url`, reached by `backend`), their names under `prefix`.
async fn shared_keys_are_shown(url: &str, backend: &Backend, prefix: &str, ttl: Duration) {
    let (rw, sem) = (format!("{prefix}rw"), format!("{prefix}sem"));
    let read = LockOptions::new(ttl).mode(LockMode::Read);
    let r1 = backend
        .acquire(&rw, &read.clone().function("reports::daily"))
        .await
        .expect("a reader");
    let r2 = backend.acquire(&rw, &read).await.expect("a second reader");
    let permit = backend
        .acquire_permit(&sem, 3, &LockOptions::new(ttl).function("pool::job"))
        .await
        .expect("a permit");

    let listed = lockctl(url, &["list", &format!("{prefix}*")], "");
    let (out, err) = text(&listed);
    assert_eq!(listed.status.code(), Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with(&format!("{rw} "))
            && lines[1].contains(" 2 readers ")
            && lines[1].contains("reports::daily"),
        "{out}"
    );
    assert!(
        lines[2].starts_with(&format!("{sem} "))
            && lines[2].contains(" 1 of 3 permits ")
            && lines[2].contains("pool::job"),
        "{out}"
    );

    let shown = lockctl(url, &["show", &rw], "");
    let (out, err) = text(&shown);
    assert_eq!(shown.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("holders:   2"), "{out}");
    let pid = format!(":{} ", std::process::id());
    for reader in [&r1, &r2] {
        let line = out
            .lines()
            .find(|l| l.contains(reader.token().as_str()))
            .unwrap_or_else(|| panic!("no line for {}: {out}", reader.token()));
        assert!(line.starts_with("reader:") && line.contains(&pid), "{out}");
    }
    let shown = lockctl(url, &["show", &sem], "");
    let out = text(&shown).0;
    assert!(out.contains("kind:      semaphore of 3 permits"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("permit:") && l.contains(permit.token().as_str())),
        "{out}"
    );

    // A release by force leaves shared holders alone and says why.
    let released = lockctl(url, &["release", &rw, "--force", "--yes"], "");
    let (out, err) = text(&released);
    assert_eq!(released.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("2 readers"), "{err}");
    r1.release().await.expect("the first reader still holds");
    r2.release().await.expect("the second reader still holds");
    permit.release().await.expect("the permit is still held");
    let shown = lockctl(url, &["show", &rw], "");
    assert_eq!(shown.status.code(), Some(1), "{}", text(&shown).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_and_permits_are_listed_and_shown_with_each_holder() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("redis");
    shared_keys_are_shown(&server.url(), &backend, "", Duration::from_secs(30)).await;

    let zookeeper = ZooKeeperServer::start();
    let backend = Backend::builder()
        .zookeeper_session_timeout(Duration::from_secs(2))
        .connect(&zookeeper.url())
        .await
        .expect("zookeeper");
    shared_keys_are_shown(&zookeeper.url(), &backend, "", Duration::from_secs(5)).await;

    let url = lock_tests::postgres_url();
    let backend = Backend::builder().connect(&url).await.expect("postgres");
    let prefix = format!("pgshared:{}:", std::process::id());
    shared_keys_are_shown(&url, &backend, &prefix, Duration::from_secs(30)).await;
}

/// `lockctl leader`: who leads an election, with its term and since when (exit 1 when
/// nobody does), and `--watch` following each new leader, on Redis and ZooKeeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shows_and_watches_who_leads_an_election() {
    use lock_runtime::LeaderOptions;
    let redis = RedisServer::start();
    let zookeeper = tokio::task::spawn_blocking(ZooKeeperServer::start)
        .await
        .expect("start ZooKeeper");
    for url in [redis.url(), zookeeper.url()] {
        let backend = Backend::builder()
            .zookeeper_session_timeout(Duration::from_secs(2))
            .connect(&url)
            .await
            .expect("connect");
        let none = lockctl(&url, &["leader", "scheduler"], "");
        assert_eq!(none.status.code(), Some(1), "{:?}", text(&none));
        assert!(
            text(&none).0.contains("scheduler: no leader"),
            "{:?}",
            text(&none)
        );

        let mut child = Command::new(LOCKCTL)
            .args([
                "--url",
                &url,
                "leader",
                "scheduler",
                "--watch",
                "--count",
                "3",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run lockctl leader --watch");
        let mut lines = lines_of(&mut child);
        let mut next_line = async || next_line(&mut lines).await;
        assert!(next_line().await.ends_with(" scheduler: no leader"));
        let options = LeaderOptions::new(Duration::from_secs(10)).function("jobs::schedule");
        let leading = backend
            .campaign("scheduler", &options)
            .await
            .expect("elected");
        let line = next_line().await;
        let pid = std::process::id();
        let term = leading.term();
        assert!(
            line.contains(&format!(":{pid} (jobs::schedule), term {term}, since ")),
            "{line}"
        );
        let shown = lockctl(&url, &["leader", "scheduler"], "");
        assert!(shown.status.success(), "{:?}", text(&shown));
        assert!(
            text(&shown).0.contains("scheduler: led by "),
            "{:?}",
            text(&shown)
        );
        assert!(text(&shown).0.contains(&format!("term {term}")));
        leading.resign().await.expect("resign");
        assert!(next_line().await.ends_with(" scheduler: no leader"));
        assert!(child.wait().expect("ends after --count lines").success());
    }
}
