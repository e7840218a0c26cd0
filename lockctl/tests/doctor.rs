//! `lockctl doctor` against real servers set up well and badly: what each finding says,
//! the exit code (0 pass, 1 warn, 2 fail, 3 unreachable), and the JSON for scripts.

use std::{
    process::{Command, Output},
    time::Duration,
};

use lock_runtime::{
    store::{PostgresOptions, Status},
    Backend,
};
use lock_tests::{free_port, RedisCluster, RedisServer, Sentinel, ZooKeeperServer};

const LOCKCTL: &str = env!("CARGO_BIN_EXE_lockctl");

/// `lockctl doctor <url> [args]`: its exit code and its output.
fn doctor(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(LOCKCTL)
        .arg("doctor")
        .arg(url)
        .args(args)
        .env_remove("LOCK_RUNTIME_URL")
        .output()
        .expect("run lockctl");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The line of the check `check` (the status, then the check, then what it found).
fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{out}"))
}

#[test]
fn a_redis_that_evicts_fails_and_one_set_up_well_passes() {
    let bad =
        RedisServer::start_with(&["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]);
    let (code, out, err) = doctor(&bad.url(), &[]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(line(&out, "eviction").starts_with("FAIL"), "{out}");
    assert!(line(&out, "eviction").contains("allkeys-lru"), "{out}");
    assert!(
        out.contains("fix: CONFIG SET maxmemory-policy noeviction"),
        "{out}"
    );
    // The test servers keep no AOF: a warning that names the restart guard.
    assert!(line(&out, "persistence").starts_with("WARN"), "{out}");
    assert!(line(&out, "persistence").contains("restart guard"), "{out}");
    for check in ["role", "replicas", "clock", "acl", "probe"] {
        assert!(line(&out, check).starts_with("PASS"), "{check}: {out}");
    }
    assert!(
        out.ends_with("redis: 1 failed, 1 warning, 6 passed\n"),
        "{out}"
    );

    let (code, json, err) = doctor(&bad.url(), &["--json"]);
    assert_eq!(code, Some(2), "{json}{err}");
    assert_eq!(json.lines().count(), 1, "{json}");
    assert!(
        json.starts_with(r#"{"store":"redis","status":"fail","passed":6,"warnings":1,"failed":1,"findings":[{"check":"role","status":"pass","#),
        "{json}"
    );
    assert!(
        json.contains(r#"{"check":"eviction","status":"fail","detail":"maxmemory 104857600 bytes"#),
        "{json}"
    );

    let good = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--maxmemory",
        "100mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let (code, out, err) = doctor(&good.url(), &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(line(&out, "eviction").contains("noeviction"), "{out}");
    assert!(
        line(&out, "persistence").contains("appendfsync everysec"),
        "{out}"
    );
    assert!(
        out.ends_with("redis: 0 failed, 0 warnings, 8 passed\n"),
        "{out}"
    );
}

#[test]
fn an_acl_user_that_may_not_publish_fails_and_its_password_stays_out() {
    let server = RedisServer::start();
    server.raw(&[
        "ACL",
        "SETUSER",
        "locks",
        "on",
        ">s3cret-pw",
        "~lock:*",
        "&lock:*",
        "+@all",
        "-publish",
    ]);
    let port = server.port();
    let url = format!("redis://locks:s3cret-pw@127.0.0.1:{port}");
    let (code, out, err) = doctor(&url, &[]);
    assert_eq!(code, Some(2), "{out}{err}");
    let acl = line(&out, "acl");
    assert!(
        acl.starts_with("FAIL") && acl.contains("`locks` may not send publish"),
        "{out}"
    );
    assert!(out.contains("fix: ACL SETUSER locks +publish"), "{out}");
    // The release publishes inside its script: the probe fails there.
    let probe = line(&out, "probe");
    assert!(
        probe.starts_with("FAIL") && probe.contains("during release"),
        "{out}"
    );
    assert!(
        !out.contains("s3cret") && !err.contains("s3cret"),
        "{out}{err}"
    );

    // Exactly the commands docs/safety.md lists for a minimal user: locks work; readers,
    // semaphores, several keys at once and listings would not, which is a warning.
    server.raw(&[
        "ACL",
        "SETUSER",
        "locker",
        "on",
        ">pw",
        "resetkeys",
        "~lock:*",
        "resetchannels",
        "&lock:*",
        "-@all",
        "+set",
        "+evalsha",
        "+script|load",
        "+subscribe",
        "+unsubscribe",
        "+ping",
        "+info",
        "+get",
        "+del",
        "+pexpire",
        "+pttl",
        "+publish",
        "+time",
    ]);
    let (code, out, err) = doctor(&format!("redis://locker:pw@127.0.0.1:{port}"), &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    // Such a user may not call ACL: the check says it could not look, and the read lock
    // shows what fails.
    let acl = line(&out, "acl");
    assert!(
        acl.starts_with("WARN") && acl.contains("could not check"),
        "{out}"
    );
    assert!(line(&out, "probe").starts_with("PASS"), "{out}");
    let readers = line(&out, "readers");
    assert!(
        readers.starts_with("WARN") && readers.contains("can't run this command"),
        "{out}"
    );

    // With ACL DRYRUN allowed, the missing commands are named.
    server.raw(&["ACL", "SETUSER", "locker", "+acl|whoami", "+acl|dryrun"]);
    let (code, out, err) = doctor(&format!("redis://locker:pw@127.0.0.1:{port}"), &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    let acl = line(&out, "acl");
    assert!(
        acl.starts_with("WARN")
            && acl.contains("zadd")
            && acl.contains("readers and semaphores, several keys in one step, lockctl list fail"),
        "{out}"
    );

    // Without INFO the library works (blind to restarts): a warning, and the rest checked.
    server.raw(&["ACL", "SETUSER", "locker", "-info"]);
    let (code, out, err) = doctor(&format!("redis://locker:pw@127.0.0.1:{port}"), &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    let info = line(&out, "info");
    assert!(
        info.starts_with("WARN") && info.contains("INFO is refused"),
        "{out}"
    );
    assert!(out.contains("fix: ACL SETUSER <user> +info"), "{out}");
    assert!(line(&out, "probe").starts_with("PASS"), "{out}");

    // A URL that is no URL: exit 2, and JSON still for scripts.
    let (code, json, err) = doctor("redis://:s3cret-pw@127.0.0.1:notaport", &["--json"]);
    assert_eq!(code, Some(2), "{json}{err}");
    assert!(json.starts_with(r#"{"status":"usage","error":"#), "{json}");
    assert!(
        !json.contains("s3cret") && !err.contains("s3cret"),
        "{json}{err}"
    );

    // Nothing listens: exit 3, the address named, the password not.
    let (code, out, err) = doctor(
        &format!("redis://:s3cret-pw@127.0.0.1:{}", free_port()),
        &[],
    );
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(err.contains("Redis at redis://:***@127.0.0.1:"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_checked_against_the_acknowledgements_grants_wait_for() {
    let primary = RedisServer::start();
    let waits = Backend::builder()
        .replicas_acknowledge(1, Duration::from_millis(100))
        .redis(&primary.url())
        .await
        .expect("connect");
    let findings = waits.doctor().await.expect("doctor");
    let replicas = findings
        .iter()
        .find(|f| f.check == "replicas")
        .expect("replicas");
    assert_eq!(replicas.status, Status::Fail, "{findings:?}");
    assert!(
        replicas.detail.contains("but 0 are connected"),
        "{replicas:?}"
    );

    let _replica = RedisServer::start_replica_of(&primary);
    let connected = lock_tests::eventually(Duration::from_secs(20), || {
        lock_tests::info_field(&primary, "replication", "connected_slaves") == Some(1)
    })
    .await;
    assert!(connected, "the replica never connected");
    let findings = waits.doctor().await.expect("doctor");
    let replicas = findings
        .iter()
        .find(|f| f.check == "replicas")
        .expect("replicas");
    assert_eq!(replicas.status, Status::Pass, "{findings:?}");
    // Without acknowledgements, a replica is a failover that can forget a lock.
    let (code, out, err) = doctor(&primary.url(), &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    let line = line(&out, "replicas");
    assert!(
        line.starts_with("WARN") && line.contains("1 replicas connected"),
        "{out}"
    );
    assert!(
        out.contains("fix: BackendBuilder::replicas_acknowledge"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_without_their_quorum_fail_and_a_silent_one_is_named() {
    let primary = RedisServer::start();
    // One sentinel that needs two to agree: no failover can happen.
    let sentinel = Sentinel::start("locks", &primary, 2);
    let silent = free_port();
    let url = format!(
        "redis+sentinel://127.0.0.1:{},127.0.0.1:{silent}/locks",
        sentinel.port()
    );
    let (code, out, err) = doctor(&url, &[]);
    assert_eq!(code, Some(2), "{out}{err}");
    let sentinels = line(&out, "sentinels");
    assert!(
        sentinels.starts_with("WARN") && sentinels.contains(&format!("127.0.0.1:{silent}")),
        "{out}"
    );
    let quorum = line(&out, "quorum");
    assert!(
        quorum.starts_with("FAIL") && quorum.contains("NOQUORUM"),
        "{out}"
    );
    let named = line(&out, "primary");
    assert!(
        named.starts_with("PASS") && named.contains(&format!("127.0.0.1:{}", primary.port())),
        "{out}"
    );
    assert!(line(&out, "probe").starts_with("PASS"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_unserved_slots_fails() {
    let cluster = RedisCluster::start(3, 0).await;
    let (code, out, err) = doctor(&cluster.url(), &[]);
    assert!(line(&out, "slots").starts_with("PASS"), "{out}{err}");
    assert!(line(&out, "slots").contains("by 3 primaries"), "{out}");
    // Every primary is checked, each named.
    assert_eq!(
        out.matches("PASS  eviction (127.0.0.1:").count(),
        3,
        "{out}"
    );
    assert_eq!(code, Some(1), "no AOF on the test servers: {out}{err}");

    // A slot nobody serves: every node forgets it.
    let node = cluster.node_for("anything");
    let slot = node.raw(&["CLUSTER", "KEYSLOT", "anything"]);
    let slot = slot.trim().trim_start_matches(':');
    for node in cluster.nodes() {
        node.raw(&["CLUSTER", "DELSLOTS", slot]);
    }
    let unserved = lock_tests::eventually(Duration::from_secs(20), || {
        cluster.nodes().iter().all(|n| {
            let info = n.raw(&["CLUSTER", "INFO"]);
            info.contains("cluster_slots_ok:16383") && info.contains("cluster_state:fail")
        })
    })
    .await;
    assert!(
        unserved,
        "the slot stayed served: {}",
        node.raw(&["CLUSTER", "INFO"])
    );
    let (code, out, err) = doctor(&cluster.url(), &[]);
    assert_eq!(code, Some(2), "{out}{err}");
    let slots = line(&out, "slots");
    assert!(
        slots.starts_with("FAIL") && slots.contains("16383 of 16384"),
        "{out}"
    );
}

#[test]
fn a_zookeeper_session_timeout_below_the_servers_bounds_is_named() {
    let zookeeper = ZooKeeperServer::start();
    // The test server's minSessionTimeout is 1 s.
    let url = format!("{}?session_timeout=500ms", zookeeper.url());
    let (code, out, err) = doctor(&url, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    let session = line(&out, "session");
    assert!(
        session.starts_with("WARN")
            && session.contains("asked for a 500 ms")
            && session.contains("granted 1000 ms"),
        "{out}"
    );
    assert!(
        out.contains("fix: ask within the server's bounds (?session_timeout="),
        "{out}"
    );
    assert!(line(&out, "probe").starts_with("PASS"), "{out}");

    let (code, out, err) = doctor(&format!("{}?session_timeout=3s", zookeeper.url()), &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(line(&out, "session").contains("3000 ms as asked"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_privileges_and_commits_are_checked() {
    let url = lock_tests::postgres_url();
    let (code, out, err) = doctor(&url, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    for check in [
        "role",
        "commits",
        "standbys",
        "privileges",
        "table",
        "clock",
        "probe",
    ] {
        assert!(line(&out, check).starts_with("PASS"), "{check}: {out}");
    }

    // A role that may log in and nothing more.
    let role = format!("lt_doctor_{}", std::process::id());
    let psql = |sql: &str| {
        let done = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            done.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    };
    psql(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN"
    ));
    let bare = url.replacen("postgres@", &format!("{role}@"), 1);
    let (code, out, err) = doctor(&bare, &[]);
    psql(&format!("DROP ROLE {role}"));
    assert_eq!(code, Some(2), "{out}{err}");
    let privileges = line(&out, "privileges");
    assert!(
        privileges.starts_with("FAIL") && privileges.contains(&role),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "fix: GRANT SELECT, INSERT, UPDATE, DELETE ON distributed_locks TO {role}"
        )),
        "{out}"
    );
    assert!(line(&out, "probe").starts_with("FAIL"), "{out}");

    // Grants asked to wait for their commit, on a session whose default does not.
    let lazy = format!(
        "{url}{}options=-c%20synchronous_commit%3Doff",
        if url.contains('?') { '&' } else { '?' }
    );
    let backend = Backend::builder()
        .postgres_options(PostgresOptions::new().synchronous_commit(true))
        .connect(&lazy)
        .await
        .expect("connect");
    let findings = backend.doctor().await.expect("doctor");
    let commits = findings
        .iter()
        .find(|f| f.check == "commits")
        .expect("commits");
    assert_eq!(commits.status, Status::Warn, "{findings:?}");
    assert!(
        commits.detail.contains("synchronous_commit is off"),
        "{commits:?}"
    );
}

#[test]
fn a_server_clock_seconds_ahead_is_a_warning() {
    let primary = RedisServer::start();
    let ahead = RedisServer::start_replica_shifted(&primary, 3_000_000);
    ahead.raw(&["REPLICAOF", "NO", "ONE"]);
    let (code, out, err) = doctor(&ahead.url(), &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    let clock = line(&out, "clock");
    assert!(
        clock.starts_with("WARN") && clock.contains("ms ahead of"),
        "{out}"
    );
    let ms: u64 = clock
        .split("clock is ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .expect("the skew in ms");
    assert!((2_500..=3_500).contains(&ms), "{out}");
    assert!(out.contains("fix: run NTP"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_checks_each_server_and_the_majority() {
    let mut servers = lock_tests::RedlockServers::start(3);
    // The servers are fresh: no hold for their youth (on by default for Redlock).
    let backend = Backend::builder()
        .restart_guard_on_connect(false)
        .redis(&servers.url())
        .await
        .expect("redlock");
    let findings = backend.doctor().await.expect("doctor");
    let status = |check: &str| {
        findings
            .iter()
            .find(|f| f.check == check)
            .map(|f| f.status)
            .unwrap_or_else(|| panic!("no {check}: {findings:?}"))
    };
    assert_eq!(status("servers"), Status::Pass, "{findings:?}");
    assert_eq!(status("probe"), Status::Pass, "{findings:?}");
    for server in servers.servers() {
        let place = format!("eviction (127.0.0.1:{})", server.port());
        assert_eq!(status(&place), Status::Pass, "{findings:?}");
    }

    let gone = servers.servers()[2].port();
    servers.kill(2);
    let findings = backend.doctor().await.expect("doctor");
    let servers_found = findings
        .iter()
        .find(|f| f.check == "servers")
        .expect("servers");
    assert_eq!(servers_found.status, Status::Warn, "{findings:?}");
    assert!(
        servers_found.detail.contains("2 of 3 servers answer")
            && servers_found.detail.contains(&format!("127.0.0.1:{gone}")),
        "{servers_found:?}"
    );
    let probe = findings.iter().find(|f| f.check == "probe").expect("probe");
    assert_eq!(probe.status, Status::Pass, "{findings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_that_does_not_answer_is_named() {
    let mut cluster = RedisCluster::start(3, 0).await;
    let gone = cluster.nodes()[2].port();
    cluster.kill(gone);
    for _ in 0..3 {
        let (code, out, err) = doctor(&cluster.url(), &[]);
        assert_eq!(code, Some(2), "{out}{err}");
        let primary = line(&out, "primary");
        assert!(
            primary.starts_with("FAIL")
                && primary.contains(&format!("127.0.0.1:{gone} does not answer")),
            "{out}"
        );
    }
}
