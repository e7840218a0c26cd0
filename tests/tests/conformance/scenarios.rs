//! The scenarios every store must pass. Each takes the store's servers and its own name
//! (locks are taken under it as a key prefix, so scenarios sharing servers never meet), and
//! says whether it ran or why not.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockError, LockGuard, LockMode, LockOptions};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{stores::Servers, Outcome};

/// A TTL of at least `ttl` that the store keeps (ZooKeeper's are at least its session).
fn ttl(backend: &Backend, ttl: Duration) -> Duration {
    let shortest = backend.capabilities().shortest_ttl();
    shortest.map_or(ttl, |shortest| shortest.max(ttl))
}

/// Why a scenario that needs the store's servers or connections (to kill or to cut) does
/// not run: the store's own declaration where it says its locks live in one process (it
/// has neither). A store with servers must have a fixture that can kill and cut them:
/// `why` (the fixture's limit) fails the scenario, since the suite skips only by a store's
/// declaration.
fn unavailable(backend: &Backend, why: &str) -> Outcome {
    match backend.capabilities().across_processes() {
        false => skipped(
            "the store declares its locks live in one process (`one_process`): it has no \
             server to kill and no connection to cut",
        ),
        true => panic!("the fixture cannot run this scenario on a store with servers: {why}"),
    }
}

fn skipped(why: impl Into<String>) -> Outcome {
    Outcome::Skipped(why.into())
}

/// Three `lock-loop` processes take one lock over and over for three seconds: no two
/// holdings overlap, and fencing tokens grow from each to the next.
pub async fn exclusion_across_processes<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let client = servers.connect(scenario).await;
    let capabilities = client.capabilities();
    if !capabilities.across_processes() {
        return skipped("the store declares its locks live in one process (`one_process`)");
    }
    let ttl_ms = u32::try_from(ttl(&client, Duration::from_secs(2)).as_millis()).unwrap();
    let env = servers.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let loops = lock_tests::LockLoops::spawn_with(
        env!("CARGO_BIN_EXE_lock-loop"),
        &servers.url(),
        &env,
        3,
        3,
        ttl_ms,
    );
    let holdings = loops.holdings().await;
    assert!(holdings.len() >= 10, "only {} holdings", holdings.len());
    for pair in holdings.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(a.exit <= b.enter, "two holders at once: {a:?} and {b:?}");
        if capabilities.has_fencing() {
            assert!(
                a.fence < b.fence,
                "a fencing token did not grow: {a:?} then {b:?}"
            );
        }
    }
    Outcome::Passed
}

/// A waiter is woken by the holder's release, not by its re-check timer (which would
/// leave it 0-200 ms behind, 100 ms on average): in at least seven of ten hand-overs it has
/// the lock within 50 ms of the release (by chance, on the timer, at most 0.4 % of runs
/// would).
pub async fn waiters_are_woken_by_the_release<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    if !a.capabilities().has_notifications() {
        return skipped("the store declares no release notifications: waiters re-check on a timer");
    }
    let options = LockOptions::new(ttl(&a, Duration::from_secs(30)));
    let mut gaps = Vec::new();
    for _ in 0..10 {
        let held = a.acquire("handed", &options).await.expect("acquire");
        let (b, waiting) = (b.clone(), options.clone().wait(Duration::from_secs(20)));
        let waiter = tokio::spawn(async move { b.acquire("handed", &waiting).await });
        gaps.push(lock_tests::handoff_gap(held, waiter).await);
    }
    let quick = gaps
        .iter()
        .filter(|g| **g < Duration::from_millis(50))
        .count();
    assert!(
        quick >= 7,
        "woken within 50 ms {quick} times of 10: {gaps:?}"
    );
    Outcome::Passed
}

/// Two clients take a fenced lock in turn: every token is greater than the one before.
/// A store without fencing refuses a fenced lock before any call, naming the reason.
pub async fn fencing_tokens_grow<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    let fenced = LockOptions::new(ttl(&a, Duration::from_secs(10))).fencing(true);
    if !a.capabilities().has_fencing() {
        let refused = a.acquire("fenced", &fenced).await;
        let Err(LockError::InvalidInput(why)) = refused else {
            panic!("a fenced lock on a store without fencing: {refused:?}");
        };
        return skipped(format!(
            "the store declares no fencing tokens, and says: {why}"
        ));
    }
    let mut last = 0;
    for round in 0..20 {
        let client = if round % 2 == 0 { &a } else { &b };
        let guard = client.acquire("fenced", &fenced).await.expect("acquire");
        let token = guard.fencing_token().expect("a fencing token");
        assert!(token > last, "round {round}: token {token} after {last}");
        last = token;
        guard.release().await.expect("release");
    }
    Outcome::Passed
}

/// A body three leases long keeps its lock, renewed: another client finds it busy every
/// time it asks, and the body ends with its own value.
pub async fn renewal_keeps_the_lease<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    let lease = ttl(&a, Duration::from_secs(1));
    let options = LockOptions::new(lease).renew(true);
    let once = LockOptions::new(lease);
    let body = async {
        let until = Instant::now() + lease * 3;
        let mut asked = 0;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let other = b.acquire("renewed", &once).await;
            assert!(
                matches!(&other, Err(e) if e.is_busy()),
                "another client, {:?} into a {lease:?} lease: {other:?}",
                until.elapsed()
            );
            asked += 1;
        }
        asked
    };
    let asked = a
        .with_lock("renewed", &options, body)
        .await
        .expect("renewed");
    assert!(asked >= 10, "{asked}");
    Outcome::Passed
}

/// An operator releases a held lock by force: the holder's next renewal finds it gone, the
/// body is cancelled and the call ends with `Lost`, well before the body would have.
pub async fn a_lost_lease_cancels_the_body<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    if !a.capabilities().has_operators() {
        return skipped("the store declares no operators' calls to take a lock away with");
    }
    let lease = ttl(&a, Duration::from_secs(1));
    let options = LockOptions::new(lease).renew(true);
    let finished = std::sync::Arc::new(AtomicBool::new(false));
    let body_finished = finished.clone();
    let holder = tokio::spawn(async move {
        let body = async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            body_finished.store(true, Ordering::SeqCst);
        };
        a.with_lock("taken", &options, body).await
    });
    assert!(
        lock_tests::eventually_async(Duration::from_secs(10), || async {
            matches!(b.inspect("taken").await, Ok(Some(_)))
        })
        .await,
        "the holder never held the lock"
    );
    let taken = b.force_release("taken").await.expect("force release");
    assert!(taken.is_some(), "released by force what was held");
    let ended = tokio::time::timeout(lease * 2 + Duration::from_secs(5), holder)
        .await
        .expect("the body was not cancelled within two leases")
        .expect("task");
    assert!(matches!(&ended, Err(e) if e.is_lost()), "{ended:?}");
    assert!(!finished.load(Ordering::SeqCst), "the body ran to its end");
    Outcome::Passed
}

/// A body that panics, and a call dropped while its body runs, both leave the lock free
/// at once (long before its 30 s lease).
pub async fn release_on_cancel_and_on_panic<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    let options = LockOptions::new(ttl(&a, Duration::from_secs(30)));
    let waiting = options.clone().wait(Duration::from_secs(10));

    let (panicking, opts) = (a.clone(), options.clone());
    let panicked = tokio::spawn(async move {
        panicking
            .with_lock("panics", &opts, async {
                panic!("the body panics (on purpose)")
            })
            .await
    })
    .await;
    assert!(panicked.expect_err("the body panicked").is_panic());
    let started = Instant::now();
    let after = b
        .acquire("panics", &waiting)
        .await
        .expect("free after the panic");
    assert!(started.elapsed() < Duration::from_secs(10));
    after.release().await.expect("release");

    let body = tokio::time::sleep(Duration::from_secs(60));
    let dropped = tokio::time::timeout(
        Duration::from_millis(500),
        a.with_lock("cancelled", &options, body),
    )
    .await;
    assert!(dropped.is_err(), "the call was dropped while its body ran");
    let after = b
        .acquire("cancelled", &waiting)
        .await
        .expect("free after the cancel");
    after.release().await.expect("release");
    Outcome::Passed
}

/// The same lock taken again inside its own body runs at once; another client still finds
/// it busy.
pub async fn nested_calls_reenter<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    let options = LockOptions::new(ttl(&a, Duration::from_secs(10)));
    let inner = async {
        let nested = a.with_lock("nested", &options, async {
            let other = b.acquire("nested", &options).await;
            assert!(matches!(&other, Err(e) if e.is_busy()), "{other:?}");
            7
        });
        nested.await
    };
    let value = a.with_lock("nested", &options, inner).await;
    assert_eq!(value.expect("outer").expect("inner"), 7);
    Outcome::Passed
}

/// A client connected on a runtime that has since shut down keeps working on another:
/// single tries, and a waiter woken by a release.
pub async fn the_connecting_runtime_shut_down<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let backend = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let first = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    let backend = first.block_on(servers.connect(scenario));
                    drop(first);
                    backend
                })
                .join()
                .expect("connect on a runtime of its own")
        })
    });
    // Let whatever the first runtime left behind notice it is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let options = LockOptions::new(ttl(&backend, Duration::from_secs(10)));
    for round in 0..5 {
        let guard = backend.acquire("after", &options).await;
        let guard = guard.unwrap_or_else(|e| panic!("round {round}: {e}"));
        let (b, waiting) = (
            backend.clone(),
            options.clone().wait(Duration::from_secs(10)),
        );
        let waiter = tokio::spawn(async move { b.acquire("after", &waiting).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        guard
            .release()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let next = waiter.await.expect("task");
        let next = next.unwrap_or_else(|e| panic!("round {round}, the waiter: {e}"));
        next.release()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    Outcome::Passed
}

/// Empty and over-long names, zero and over-long TTLs: `InvalidInput`, before any call.
pub async fn bad_input_is_refused_before_any_call<S: Servers>(
    servers: &S,
    scenario: &str,
) -> Outcome {
    let backend = servers.connect(scenario).await;
    let good = LockOptions::new(ttl(&backend, Duration::from_secs(10)));
    let long = "n".repeat(lock_runtime::MAX_NAME_LEN + 1);
    for name in ["", long.as_str()] {
        let refused = backend.acquire(name, &good).await;
        assert!(
            matches!(refused, Err(LockError::InvalidInput(_))),
            "{refused:?}"
        );
        let refused = backend.acquire_all([name, "other"], &good).await;
        assert!(
            matches!(refused, Err(LockError::InvalidInput(_))),
            "{refused:?}"
        );
    }
    let year = lock_runtime::MAX_TTL + Duration::from_secs(1);
    for ttl in [Duration::ZERO, year] {
        let refused = backend.acquire("ttl", &LockOptions::new(ttl)).await;
        assert!(
            matches!(refused, Err(LockError::InvalidInput(_))),
            "{ttl:?}: {refused:?}"
        );
    }
    Outcome::Passed
}

/// An operator sees who holds a lock (this process, on this host), lists it, and releases
/// it by force; the old holder's release then leaves the new holder's lock alone.
pub async fn holder_records_and_operators<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    if !a.capabilities().has_operators() {
        return skipped("the store declares no operators' calls (inspect, list, force release)");
    }
    let options = LockOptions::new(ttl(&a, Duration::from_secs(10)));
    let held = a.acquire("held:1", &options).await.expect("acquire");
    let info = b.inspect("held:1").await.expect("inspect").expect("held");
    let holder = info.holder.as_ref().expect("a holder record");
    assert_eq!(holder.pid, std::process::id());
    assert!(!holder.host.is_empty());
    assert_eq!(info.name, "held:1");
    let listed = b.list("held:*").await.expect("list");
    assert!(listed.iter().any(|l| l.name == "held:1"), "{listed:?}");
    assert!(b.inspect("held:2").await.expect("inspect").is_none());

    let taken = b.force_release("held:1").await.expect("force release");
    assert_eq!(taken.expect("it was held").token, info.token);
    let next = b
        .acquire("held:1", &options)
        .await
        .expect("free after the force release");
    let _ = held.release().await;
    let still = a.acquire("held:1", &options).await;
    assert!(matches!(&still, Err(e) if e.is_busy()), "{still:?}");
    next.release().await.expect("the new holder's release");
    Outcome::Passed
}

/// Two tasks take the same two locks, named in opposite orders, ten times each: neither
/// waits forever, and never do both hold them.
pub async fn several_keys_in_both_orders<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    let options = LockOptions::new(ttl(&a, Duration::from_secs(10))).wait(Duration::from_secs(30));
    static INSIDE: [AtomicBool; 8] = [const { AtomicBool::new(false) }; 8];
    let slot = INSIDE
        .iter()
        .position(|s| !s.swap(true, Ordering::SeqCst))
        .expect("a slot");
    let inside = &INSIDE[slot];
    inside.store(false, Ordering::SeqCst);
    let run = |backend: Backend, names: [&'static str; 2]| {
        let options = options.clone();
        async move {
            for round in 0..10 {
                let guard = backend.acquire_all(names, &options).await;
                let guard = guard.unwrap_or_else(|e| panic!("{names:?}, round {round}: {e}"));
                assert!(!inside.swap(true, Ordering::SeqCst), "both hold {names:?}");
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.store(false, Ordering::SeqCst);
                guard.release().await.expect("release");
            }
        }
    };
    let both = async {
        tokio::join!(run(a.clone(), ["x", "y"]), run(b.clone(), ["y", "x"]));
    };
    tokio::time::timeout(Duration::from_secs(60), both)
        .await
        .expect("both orders done within a minute");
    Outcome::Passed
}

/// Readers share a lock and keep a writer out; a semaphore admits its permits and no more,
/// and the next is woken when one is let go. A store without either refuses it before any
/// call.
/// Where the store has operators' calls: `name` is seen held by exactly `holders` (this
/// process), listed with them, and not released by force.
async fn operators_see(backend: &Backend, name: &str, holders: &[&LockGuard]) {
    if !backend.capabilities().has_operators() {
        return;
    }
    let info = backend.inspect(name).await.expect("inspect").expect("held");
    assert!(info.kind.is_shared(), "{info:?}");
    let mut seen: Vec<&str> = info.sharers.iter().map(|s| s.token.as_str()).collect();
    let mut expected: Vec<&str> = holders.iter().map(|g| g.token().as_str()).collect();
    seen.sort_unstable();
    expected.sort_unstable();
    assert_eq!(seen, expected, "{info:?}");
    for sharer in &info.sharers {
        let holder = sharer.holder.as_ref().expect("a holder record");
        assert_eq!(holder.pid, std::process::id(), "{info:?}");
    }
    let listed = backend.list(name).await.expect("list");
    let [only] = listed.as_slice() else {
        panic!("{listed:?}");
    };
    let mut tokens: Vec<&str> = only.sharers.iter().map(|s| s.token.as_str()).collect();
    tokens.sort_unstable();
    assert_eq!((only.kind, tokens), (info.kind, seen), "{listed:?}");
    let refused = backend.force_release(name).await;
    assert!(
        matches!(&refused, Err(LockError::InvalidInput(_))),
        "{refused:?}"
    );
}

/// The operators' check of the store's set-up runs, bounded, on every store: the test
/// servers fail none of its checks (they may warn: no AOF, say), its probe lock is taken
/// and released, and a read lock is probed where the store has readers.
pub async fn the_doctor_finds_the_test_servers_safe<S: Servers>(
    servers: &S,
    scenario: &str,
) -> Outcome {
    let backend = servers.connect(scenario).await;
    if !backend.capabilities().has_operators() {
        return skipped("the store declares no operators' calls (doctor is one)");
    }
    let findings = backend.doctor().await.expect("doctor");
    // The store checked something of its own, beside the runtime's probes.
    assert!(
        findings
            .iter()
            .any(|f| f.check != "probe" && f.check != "readers"),
        "{findings:?}"
    );
    let failed: Vec<_> = findings
        .iter()
        .filter(|f| f.status == lock_runtime::store::Status::Fail)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let probe = findings.iter().find(|f| f.check == "probe");
    assert!(
        probe.is_some_and(|p| p.status == lock_runtime::store::Status::Pass),
        "{findings:?}"
    );
    let readers = backend
        .capabilities()
        .supports(lock_runtime::store::LockKind::Read);
    assert_eq!(
        findings.iter().any(|f| f.check == "readers"),
        readers,
        "{findings:?}"
    );
    // Nothing is left behind: the probe's lock is free.
    let left = backend.list("lock-runtime-doctor:*").await.expect("list");
    assert!(left.is_empty(), "{left:?}");
    Outcome::Passed
}

pub async fn readers_and_permits<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    let capabilities = a.capabilities();
    let lease = ttl(&a, Duration::from_secs(10));
    let read = LockOptions::new(lease).mode(LockMode::Read);
    let write = LockOptions::new(lease);
    let permits = LockOptions::new(lease).permits(2);
    let mut missing = Vec::new();
    if capabilities.supports(lock_runtime::store::LockKind::Read) {
        let r1 = a.acquire("rw", &read).await.expect("a reader");
        let r2 = b.acquire("rw", &read).await.expect("a second reader");
        let writer = b.acquire("rw", &write).await;
        assert!(matches!(&writer, Err(e) if e.is_busy()), "{writer:?}");
        operators_see(&b, "rw", &[&r1, &r2]).await;
        r1.release().await.expect("release");
        r2.release().await.expect("release");
        let writer = b
            .acquire("rw", &write)
            .await
            .expect("the writer, readers gone");
        writer.release().await.expect("release");
    } else {
        let refused = a.acquire("rw", &read).await;
        assert!(
            matches!(refused, Err(LockError::InvalidInput(_))),
            "{refused:?}"
        );
        missing.push("readers");
    }
    if capabilities.supports(lock_runtime::store::LockKind::Permit { permits: 2 }) {
        let p1 = a.acquire("sem", &permits).await.expect("a permit");
        let p2 = b.acquire("sem", &permits).await.expect("a second permit");
        let third = b.acquire("sem", &permits).await;
        assert!(matches!(&third, Err(e) if e.is_busy()), "{third:?}");
        operators_see(&a, "sem", &[&p1, &p2]).await;
        let (c, waiting) = (b.clone(), permits.clone().wait(Duration::from_secs(10)));
        let waiter = tokio::spawn(async move { c.acquire("sem", &waiting).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        p1.release().await.expect("release");
        let p3 = waiter.await.expect("task").expect("the third, woken");
        p2.release().await.expect("release");
        p3.release().await.expect("release");
    } else {
        let refused = a.acquire("sem", &permits).await;
        assert!(
            matches!(refused, Err(LockError::InvalidInput(_))),
            "{refused:?}"
        );
        missing.push("semaphores");
    }
    match missing.is_empty() {
        true => Outcome::Passed,
        false => skipped(format!(
            "the store declares no {} (refused with InvalidInput before any call)",
            missing.join(" and ")
        )),
    }
}

/// The process's metrics recorder, installed before the first lock it counts.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("recorder")
    })
}

/// Three acquisitions and a busy try move the counters by three and one, under the
/// store's `backend` label.
pub async fn metrics_count_what_happened<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    recorder();
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let template: &'static str = Box::leak(format!("conformance-{n}:{{id}}").into_boxed_str());
    let options = LockOptions::new(ttl(&a, Duration::from_secs(10))).name_template(template);
    let labels = [
        format!(r#"name="{template}""#),
        format!(r#"backend="{}""#, a.capabilities().label()),
    ];
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let value = |metric: &str| lock_tests::prometheus_value(&recorder().render(), metric, &labels);
    for id in 0..3 {
        let guard = a
            .acquire(&format!("counted:{id}"), &options)
            .await
            .expect("acquire");
        guard.release().await.expect("release");
    }
    assert_eq!(value("distributed_lock_acquisitions_total"), 3.0);
    let held = a.acquire("counted:9", &options).await.expect("acquire");
    let busy = b.acquire("counted:9", &options).await;
    assert!(matches!(&busy, Err(e) if e.is_busy()), "{busy:?}");
    assert_eq!(value("distributed_lock_busy_total"), 1.0);
    assert_eq!(value("distributed_lock_held"), 1.0);
    held.release().await.expect("release");
    assert_eq!(value("distributed_lock_held"), 0.0);
    Outcome::Passed
}

/// Fenced tokens after the store was killed and started again are greater than every one
/// before it.
pub async fn fencing_grows_across_a_restart<S: Servers>(
    servers: &mut S,
    scenario: &str,
) -> Outcome {
    let backend = servers.connect(scenario).await;
    if !backend.capabilities().has_fencing() {
        return skipped("the store declares no fencing tokens");
    }
    let fenced = LockOptions::new(ttl(&backend, Duration::from_secs(2))).fencing(true);
    // A store that came back from a crash less than a lease ago (an earlier scenario's)
    // may hold a fresh process back: the first grant is waited for.
    let first = eventually_acquired(&backend, "restarted", &fenced).await;
    let mut before = first.fencing_token().expect("token");
    first.release().await.expect("release");
    for _ in 0..5 {
        let guard = backend
            .acquire("restarted", &fenced)
            .await
            .expect("acquire");
        before = before.max(guard.fencing_token().expect("token"));
        guard.release().await.expect("release");
    }
    if let Err(why) = servers.kill() {
        return unavailable(&backend, why);
    }
    servers.revive().await;
    let after = eventually_acquired(&backend, "restarted", &fenced).await;
    let token = after.fencing_token().expect("token");
    assert!(
        token > before,
        "token {token} after a restart, {before} before"
    );
    let _ = after.release().await;
    Outcome::Passed
}

/// With the store killed, calls fail within their bounds (no hang); started again, it
/// grants locks again.
pub async fn killed_and_back<S: Servers>(servers: &mut S, scenario: &str) -> Outcome {
    let backend = servers.connect(scenario).await;
    let options = LockOptions::new(ttl(&backend, Duration::from_secs(2)));
    // Waited for: a store that came back from a crash less than a lease ago (an earlier
    // scenario's) may hold a fresh process back.
    let guard = eventually_acquired(&backend, "outage", &options).await;
    guard.release().await.expect("release");
    if let Err(why) = servers.kill() {
        return unavailable(&backend, why);
    }
    for waiting in [Duration::ZERO, Duration::from_secs(2)] {
        let started = Instant::now();
        let failed = backend
            .acquire("outage", &options.clone().wait(waiting))
            .await;
        let took = started.elapsed();
        let error = failed.expect_err("no lock from a dead store");
        assert!(!error.is_busy() || waiting > Duration::ZERO, "{error}");
        // The call's own bound (1 s), a reconnection's, and room for the scheduler.
        assert!(took < waiting + Duration::from_secs(5), "{took:?}: {error}");
        let text = error.to_string();
        assert!(!text.is_empty());
    }
    servers.revive().await;
    let back = eventually_acquired(&backend, "outage", &options).await;
    back.release().await.expect("release");
    Outcome::Passed
}

/// `name` taken through `backend` once the store answers again (within 60 s).
async fn eventually_acquired(backend: &Backend, name: &str, options: &LockOptions) -> LockGuard {
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = options.clone().wait(Duration::from_secs(5));
    loop {
        match backend.acquire(name, &waiting).await {
            Ok(guard) => return guard,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the store did not come back within a minute: {e}"),
        }
    }
}

/// The store's row in the README's capability table says what the store declares.
pub async fn the_readme_table_says_what_the_store_declares<S: Servers>(
    servers: &S,
    scenario: &str,
) -> Outcome {
    use lock_runtime::store::LockKind;
    let declared = servers.connect(scenario).await.capabilities();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let header = readme
        .lines()
        .find(|l| l.starts_with("| store |"))
        .map(cells)
        .expect("the capability table");
    let row = readme
        .lines()
        .map(cells)
        .find(|c| c[0] == S::ROW)
        .unwrap_or_else(|| panic!("no row `{}` in the README's capability table", S::ROW));
    assert_eq!(row.len(), header.len(), "{row:?}");
    let says = |column: &str| -> &str {
        let at = header.iter().position(|h| h == column).expect(column);
        &row[at]
    };
    let yes = |column: &str| says(column).starts_with("yes");
    let expected = [
        ("across processes", declared.across_processes()),
        ("readers", declared.supports(LockKind::Read)),
        (
            "semaphores",
            declared.supports(LockKind::Permit { permits: 2 }),
        ),
        ("fencing tokens", declared.has_fencing()),
        ("fair queue", declared.has_queue()),
        (
            "several keys in one step",
            declared.has_several_keys_at_once(),
        ),
        ("operators' calls", declared.has_operators()),
        ("woken by release", declared.has_notifications()),
        ("leases are sessions", declared.has_session_leases()),
    ];
    for (column, value) in expected {
        assert_eq!(
            yes(column),
            value,
            "{}: `{column}` says {:?}",
            S::ROW,
            says(column)
        );
    }
    let shortest = says("shortest TTL");
    match declared.shortest_ttl() {
        None => assert_eq!(shortest, "1 ms", "{}", S::ROW),
        Some(_) => assert!(
            shortest.starts_with("the session timeout"),
            "{}: {shortest}",
            S::ROW
        ),
    }
    Outcome::Passed
}

/// Every connection to the store goes silent (frozen at a proxy, as in a network black
/// hole; new connections still go through): the client opens new ones and grants locks
/// again within seconds, not never.
pub async fn a_silent_connection_is_replaced<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let proxied = match servers.proxied().await {
        Ok(proxied) => proxied,
        Err(why) => return unavailable(&servers.connect(scenario).await, why),
    };
    let (url, proxies) = (&proxied.url, &proxied.proxies);
    let client = servers.connect_to(url, scenario).await;
    let options = LockOptions::new(ttl(&client, Duration::from_secs(5)));
    let warm = client
        .acquire("silent", &options)
        .await
        .expect("before the silence");
    warm.release().await.expect("release");
    let before: Vec<u64> = proxies.iter().map(lock_tests::Proxy::connections).collect();
    for proxy in proxies {
        proxy.freeze_existing();
    }
    let started = Instant::now();
    let guard = eventually_acquired(&client, "silent", &options).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "granted again only after {took:?}"
    );
    for (proxy, before) in proxies.iter().zip(before) {
        assert!(proxy.connections() > before, "no new connection was opened");
    }
    guard.release().await.expect("release");
    Outcome::Passed
}

/// The store takes a lock but its reply comes after the time bound (held back at a proxy):
/// the caller cannot know it has the lock, and must not wait out the 30 s lease of its own
/// orphan: a later try finds the lock its own (reclaim), or the runtime's clean-up of the
/// unknown outcome freed it first. Either way the caller has it within seconds, another
/// client finds it busy, and its release frees it.
pub async fn an_unknown_outcome_leaves_no_orphan<S: Servers>(
    servers: &S,
    scenario: &str,
) -> Outcome {
    let proxied = match servers.proxied().await {
        Ok(proxied) => proxied,
        Err(why) => return unavailable(&servers.connect(scenario).await, why),
    };
    let (url, proxies) = (&proxied.url, &proxied.proxies);
    let client = servers.connect_to(url, scenario).await;
    let other = servers.connect_to(&proxied.direct, scenario).await;
    let options = LockOptions::new(ttl(&client, Duration::from_secs(30)));
    // Scripts loaded and statements prepared: the delayed request is the acquire itself.
    let warm = client
        .acquire("reclaimed", &options)
        .await
        .expect("warm-up");
    warm.release().await.expect("release");
    for proxy in proxies {
        proxy.delay_replies(Duration::from_millis(1_500));
    }
    let started = Instant::now();
    let (c, waiting) = (
        client.clone(),
        options.clone().wait(Duration::from_secs(20)),
    );
    let acquiring = tokio::spawn(async move { c.acquire("reclaimed", &waiting).await });
    // The first try reached the store by now; its reply is late past the 1 s bound.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Whether the store holds the lock for the first try now depends on the store: Redis
    // and PostgreSQL do (an orphan, until reclaimed); Redlock has taken it back from
    // every server after its failed gathering; ZooKeeper may have ended the session, and
    // the node with it. What every store must give is below.
    let landed = matches!(other.inspect("reclaimed").await, Ok(Some(_)));
    eprintln!("held for the first try while its reply was late: {landed}");
    for proxy in proxies {
        proxy.delay_replies(Duration::ZERO);
    }
    let guard = acquiring.await.expect("task").expect("had by a later try");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "had only after {took:?} (a 30 s lease)"
    );
    let busy = other.acquire("reclaimed", &options).await;
    assert!(matches!(&busy, Err(e) if e.is_busy()), "{busy:?}");
    guard
        .release()
        .await
        .expect("the reclaimed lock is ours to release");
    let next = other
        .acquire("reclaimed", &options)
        .await
        .expect("free after the release");
    next.release().await.expect("release");
    Outcome::Passed
}

/// The store becomes unreachable while a renewed body runs (every connection, and new
/// ones, frozen at proxies): the renewals go unanswered, the body is cancelled at the end
/// of the lease it could last count on, and the call ends with `Lost`; another client gets
/// the lock once that lease is over on the store.
pub async fn an_unreachable_store_ends_the_body_at_the_lease_end<S: Servers>(
    servers: &S,
    scenario: &str,
) -> Outcome {
    let proxied = match servers.proxied().await {
        Ok(proxied) => proxied,
        Err(why) => return unavailable(&servers.connect(scenario).await, why),
    };
    let (url, proxies) = (&proxied.url, &proxied.proxies);
    let client = servers.connect_to(url, scenario).await;
    let other = servers.connect_to(&proxied.direct, scenario).await;
    let lease = ttl(&client, Duration::from_secs(2));
    // Waiting: a first try that a busy machine answers past the time bound is tried again
    // (and reclaims what it took) rather than ending the call before the body runs.
    let options = LockOptions::new(lease)
        .renew(true)
        .wait(Duration::from_secs(10));
    let ended = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let stamp = StampOnDrop(ended.clone());
    let holder = tokio::spawn(async move {
        let body = async move {
            let _stamp = stamp;
            tokio::time::sleep(Duration::from_secs(60)).await;
        };
        client.with_lock("unreachable", &options, body).await
    });
    let once = LockOptions::new(lease);
    assert!(
        lock_tests::eventually_async(Duration::from_secs(10), || async {
            matches!(other.inspect("unreachable").await, Ok(Some(_)))
        })
        .await,
        "the holder never held the lock"
    );
    let cut_at = Instant::now();
    for proxy in proxies {
        proxy.freeze_new(true);
        proxy.freeze_existing();
    }
    let outcome = tokio::time::timeout(lease * 2 + Duration::from_secs(10), holder)
        .await
        .expect("the call did not end")
        .expect("task");
    assert!(matches!(&outcome, Err(e) if e.is_lost()), "{outcome:?}");
    let ended = ended.lock().unwrap().expect("the body ended");
    // The last renewal before the cut was sent before it: the lease ends by `cut_at +
    // lease`, and the body must be gone then (with room for a busy scheduler).
    let late = ended.saturating_duration_since(cut_at + lease);
    assert!(
        late < Duration::from_millis(500),
        "the body ran {late:?} past its lease"
    );
    // New connections go through again (a Cluster's slot map sends every client through
    // the proxies); the ones the cut froze stay silent.
    for proxy in proxies {
        proxy.freeze_new(false);
    }
    let next = eventually_acquired(&other, "unreachable", &once).await;
    next.release().await.expect("release");
    Outcome::Passed
}

/// Records when it is dropped.
struct StampOnDrop(std::sync::Arc<std::sync::Mutex<Option<Instant>>>);

impl Drop for StampOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

/// Chubby's lock-delay ([`LockOptions::lock_delay`]): a released lock is free at once; one
/// whose holder vanished without a release (a killed process; in one process, a guard
/// forgotten) is free only after its TTL (ZooKeeper: its session) and the delay; a holder
/// whose lease ran out does not release but leaves the lock to the delay, and says so. An
/// operator's release by force frees the lock at once.
pub async fn lock_delay_after_a_lost_holder<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    let lease = ttl(&a, Duration::from_secs(2));
    let delay = Duration::from_secs(3);
    let options = LockOptions::new(lease)
        .lock_delay(delay)
        .fencing(a.capabilities().has_fencing());
    let waiting = options.clone().wait(Duration::from_secs(30));
    // Released: free at once, for a client that does not wait.
    let guard = a.acquire("delayed", &options).await.expect("acquire");
    guard.release().await.expect("release");
    b.acquire("delayed", &options)
        .await
        .expect("free at once after a release")
        .release()
        .await
        .expect("release");

    // An operator's release by force frees it at once too.
    let guard = a.acquire("delayed", &options).await.expect("acquire");
    let freed = b.force_release("delayed").await.expect("force release");
    assert!(freed.is_some(), "nothing held");
    b.acquire("delayed", &options)
        .await
        .expect("free at once after a release by force")
        .release()
        .await
        .expect("release");
    drop(guard);

    // The holder vanishes once it holds.
    let held_at = match a.capabilities().across_processes() {
        true => {
            let args = [
                servers.url(),
                "delayed".to_owned(),
                lease.as_millis().to_string(),
                lease.as_millis().to_string(),
                "60000".to_owned(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut env = servers.env();
            env.push(("LOCK_HOLD_PREFIX", format!("{scenario}:")));
            env.push(("LOCK_HOLD_DELAY_MS", delay.as_millis().to_string()));
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            lock_tests::kill_holder_once_held(env!("CARGO_BIN_EXE_lock-hold"), &args, &env).await
        }
        false => {
            let guard = a.acquire("delayed", &options).await.expect("acquire");
            let held_at = Instant::now();
            std::mem::forget(guard);
            held_at
        }
    };
    // Past the TTL (and the session), inside the delay: readers are kept out too.
    if a.capabilities()
        .supports(lock_runtime::store::LockKind::Read)
    {
        tokio::time::sleep_until((held_at + lease + delay / 2).into()).await;
        let read = LockOptions::new(lease).mode(LockMode::Read);
        let refused = b.acquire("delayed", &read).await;
        assert!(
            matches!(refused, Err(LockError::Busy { .. })),
            "a reader inside the lock delay: {refused:?}"
        );
    }
    let next = b
        .acquire("delayed", &waiting)
        .await
        .expect("free after the TTL and the delay");
    let after = held_at.elapsed();
    // The lease was taken before `held_at`; a scheduler's second of room below.
    assert!(
        after + Duration::from_secs(1) >= lease + delay,
        "taken {after:?} after the holder vanished: TTL {lease:?}, delay {delay:?}"
    );
    next.release().await.expect("release");

    // A lease that runs out (no renewal) is not released: the delay holds after it.
    let guard = a.acquire("delayed", &options).await.expect("acquire");
    tokio::time::sleep_until((guard.lease_end() + Duration::from_millis(20)).into()).await;
    let released = guard.release().await;
    let let_go = Instant::now();
    assert!(
        matches!(released, Err(LockError::Lost { .. })),
        "a release after the lease ran out, with a lock delay: {released:?}"
    );
    let next = b
        .acquire("delayed", &waiting)
        .await
        .expect("free after the delay");
    let after = let_go.elapsed();
    assert!(
        after + Duration::from_secs(1) >= delay,
        "taken {after:?} after a lease ran out: delay {delay:?}"
    );
    next.release().await.expect("release");
    Outcome::Passed
}

/// Leader election ([`Backend::campaign`], [`Backend::lead`]): one leader at a time, each
/// term greater than the last, a resignation handed over by notification, the leader seen
/// by any client and its watch, a leadership whose lock is taken away ended by renewal, and
/// `lead` running work only while leading. A store without fencing tokens refuses
/// elections (terms are fencing tokens).
pub async fn leader_election<S: Servers>(servers: &S, scenario: &str) -> Outcome {
    use lock_runtime::LeaderOptions;
    let (a, b) = (
        servers.connect(scenario).await,
        servers.connect(scenario).await,
    );
    let options = LeaderOptions::new(ttl(&a, Duration::from_secs(2)));
    if !a.capabilities().has_fencing() {
        let refused = a.campaign("leader", &options).await;
        let Err(LockError::InvalidInput(why)) = refused else {
            panic!("an election on a store without fencing: {refused:?}");
        };
        return skipped(format!(
            "the store declares no fencing tokens (terms), and says: {why}"
        ));
    }
    let mut watch = b.watch_leader("leader").await.expect("watch");
    assert_eq!(watch.next().await.expect("watch"), None);
    let first = a.campaign("leader", &options).await.expect("elected");
    assert!(first.is_leading());
    let first_term = first.term();
    let seen = watch.next().await.expect("watch").expect("a leader");
    assert_eq!(
        (seen.pid, seen.term),
        (Some(std::process::id()), Some(first.term()))
    );

    // A second candidate waits while the first leads.
    let candidate = {
        let (b, options) = (b.clone(), options.clone());
        tokio::spawn(async move { b.campaign("leader", &options).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!candidate.is_finished(), "two leaders at once");
    let resigned_at = Instant::now();
    first.resign().await.expect("resign");
    let second = tokio::time::timeout(Duration::from_secs(10), candidate)
        .await
        .expect("elected after the resignation")
        .expect("join")
        .expect("campaign");
    let gap = resigned_at.elapsed();
    // Handed over by the release notification where the store has them: well before the
    // re-check timer's longest pause and the TTL.
    if a.capabilities().has_notifications() {
        assert!(gap < Duration::from_secs(1), "hand-over took {gap:?}");
    }
    assert!(second.term() > 0, "no term");
    let leader = a.leader("leader").await.expect("leader").expect("a leader");
    assert_eq!(leader.term, Some(second.term()));
    let terms = vec![first_term, second.term()];

    // An operator takes the lock away: renewal finds it gone, and leadership ends.
    a.force_release("leader").await.expect("force release");
    tokio::time::timeout(options.ttl() * 3, second.lost())
        .await
        .expect("leadership ended within the lease");
    assert!(!second.is_leading());
    drop(second);

    // `lead`: work runs only while leading, one leader at a time, terms growing in the
    // order the leaders came.
    let running = std::sync::Arc::new(AtomicBool::new(false));
    let order = std::sync::Arc::new(std::sync::Mutex::new(terms));
    let work = |backend: Backend| {
        let (running, order, options) = (running.clone(), order.clone(), options.clone());
        async move {
            for _ in 0..3 {
                let (running, order) = (running.clone(), order.clone());
                backend
                    .lead("leader", &options, || {
                        let (running, order) = (running.clone(), order.clone());
                        async move {
                            assert!(!running.swap(true, Ordering::SeqCst), "two leaders at once");
                            let term = lock_runtime::fencing_token().expect("a term");
                            order.lock().unwrap().push(term);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            running.store(false, Ordering::SeqCst);
                        }
                    })
                    .await
                    .expect("lead");
            }
        }
    };
    let (one, two) = tokio::join!(tokio::spawn(work(a.clone())), tokio::spawn(work(b.clone())));
    one.expect("join");
    two.expect("join");
    let terms = order.lock().unwrap().clone();
    assert_eq!(terms.len(), 8, "{terms:?}");
    assert!(
        terms.windows(2).all(|pair| pair[0] < pair[1]),
        "terms did not grow with each leader: {terms:?}"
    );
    Outcome::Passed
}
