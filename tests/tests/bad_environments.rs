//! Unreachable, silent, paused or misconfigured stores: each a clear error within the bound.

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use lock_runtime::{Backend, LockError, LockOptions, Operation};
use lock_tests::{free_port, signal, RedisServer};

const BOUND: Duration = Duration::from_millis(400);
/// What a bounded call may take beyond its bound on a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(2);

fn builder() -> lock_runtime::BackendBuilder {
    Backend::builder().op_timeout(BOUND)
}

#[tokio::test]
async fn unreachable_address_is_a_connect_error() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let err = builder()
        .redis(&url)
        .await
        .expect_err("nobody listens there");
    assert!(
        started.elapsed() < BOUND + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            LockError::Backend {
                operation: Operation::Connect,
                ..
            } | LockError::Timeout {
                operation: Operation::Connect,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A connect error names the store and where it was going (without the password): the
/// driver's `Connection refused (os error 111)` names neither.
#[tokio::test]
async fn an_unreachable_store_is_named_with_its_address() {
    let port = free_port();
    for (url, store) in [
        (
            format!("redis://:secret@127.0.0.1:{port}"),
            "Redis at redis://",
        ),
        (
            format!("redis+sentinel://127.0.0.1:{port}/svc"),
            "Redis Sentinel at ",
        ),
        (
            format!("redis+cluster://127.0.0.1:{port}"),
            "Redis Cluster at ",
        ),
        // ZooKeeper tries for a session as long as the session timeout.
        (
            format!("zookeeper://127.0.0.1:{port}?session_timeout=400ms"),
            "ZooKeeper at ",
        ),
        (
            format!("postgres://postgres:secret@127.0.0.1:{port}/test"),
            "PostgreSQL at postgres://",
        ),
    ] {
        let started = Instant::now();
        let err = builder()
            .connect(&url)
            .await
            .expect_err("nobody listens there");
        let told = err.to_string();
        assert!(
            told.contains(store) && told.contains(&format!("127.0.0.1:{port}")),
            "{url}: {told}"
        );
        assert!(
            !told.contains("secret"),
            "{url}: the password shows: {told}"
        );
        assert!(
            matches!(
                err,
                LockError::Backend {
                    operation: Operation::Connect,
                    ..
                }
            ),
            "{url}: {err:?}"
        );
        assert!(
            started.elapsed() < BOUND + SLACK,
            "{url}: took {:?}",
            started.elapsed()
        );
    }
}

/// Redlock: no majority at connect, and the error behind the count names the store and
/// its servers (without passwords).
#[tokio::test]
async fn an_unreachable_redlock_names_its_servers() {
    let ports = [free_port(), free_port(), free_port()];
    let url = format!(
        "redis+redlock://:secret@127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
        ports[0], ports[1], ports[2]
    );
    let started = Instant::now();
    let err = builder().connect(&url).await.expect_err("nobody listens");
    assert!(
        matches!(
            err,
            LockError::NoQuorum {
                operation: Operation::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    let mut told = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(error) = cause {
        told.push_str(&format!(": {error}"));
        cause = error.source();
    }
    assert!(told.contains("Redlock at "), "{told}");
    for port in ports {
        assert!(told.contains(&format!("127.0.0.1:{port}")), "{told}");
    }
    assert!(!told.contains("secret"), "the password shows: {told}");
    assert!(
        started.elapsed() < BOUND + SLACK,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_bound() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "redis://127.0.0.1:{}",
        silent.local_addr().expect("addr").port()
    );
    // Accept connections and never answer.
    let _accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let result = builder().redis(&url).await;
    let elapsed = started.elapsed();
    match result {
        Err(LockError::Timeout {
            operation: Operation::Connect,
            after,
        }) => assert_eq!(after, BOUND),
        Ok(backend) => {
            // Connected without a handshake: the first command must then time out.
            let started = Instant::now();
            let err = backend
                .acquire("k", &LockOptions::new(Duration::from_secs(1)))
                .await;
            assert!(
                matches!(
                    err,
                    Err(LockError::Timeout {
                        operation: Operation::Acquire,
                        ..
                    })
                ),
                "{err:?}"
            );
            assert!(started.elapsed() < BOUND + SLACK);
        }
        Err(other) => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed < BOUND + SLACK, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_gives_timeouts_not_hangs_and_not_busy() {
    let server = RedisServer::start();
    let backend = builder().redis(&server.url()).await.expect("connect");
    let held = backend
        .acquire("held", &LockOptions::new(Duration::from_secs(30)))
        .await
        .expect("acquire");

    signal(server.pid(), "-STOP");
    let started = Instant::now();
    let acquire = backend
        .acquire(
            "k",
            &LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(1)),
        )
        .await;
    let acquire_took = started.elapsed();
    let started = Instant::now();
    let release = held.release().await;
    let release_took = started.elapsed();
    signal(server.pid(), "-CONT");

    assert!(
        matches!(
            acquire,
            Err(LockError::Timeout {
                operation: Operation::Acquire,
                ..
            })
        ),
        "{acquire:?}"
    );
    assert!(
        acquire_took < BOUND + SLACK,
        "acquire took {acquire_took:?}"
    );
    assert!(
        matches!(
            release,
            Err(LockError::Timeout {
                operation: Operation::Release,
                ..
            })
        ),
        "{release:?}"
    );
    assert!(
        release_took < BOUND + SLACK,
        "release took {release_took:?}"
    );
}

#[tokio::test]
async fn wrong_password_is_a_connect_error_that_says_so() {
    let server = RedisServer::start_with(&["--requirepass", "right-secret"]);
    let url = format!("redis://:wrong-secret@127.0.0.1:{}", server.port());
    let started = Instant::now();
    let err = builder().redis(&url).await.expect_err("wrong password");
    assert!(started.elapsed() < BOUND + SLACK);
    match &err {
        LockError::Backend {
            operation: Operation::Connect,
            source,
        } => {
            let text = source.to_string().to_lowercase();
            assert!(text.contains("pass") || text.contains("auth"), "{text}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    let url = format!("redis://:right-secret@127.0.0.1:{}", server.port());
    let backend = builder().redis(&url).await.expect("right password");
    let guard = backend
        .acquire("k", &LockOptions::new(Duration::from_secs(1)))
        .await
        .expect("acquire");
    guard.release().await.expect("release");
}

#[tokio::test]
async fn malformed_urls_are_invalid_input() {
    for url in [
        "",
        "localhost:6379",
        "http://127.0.0.1:6379",
        "redis://127.0.0.1:notaport",
        "memory:",
    ] {
        let err = builder().connect(url).await.expect_err(url);
        assert!(matches!(err, LockError::InvalidInput(_)), "{url}: {err:?}");
        assert!(err.to_string().contains("invalid lock input"), "{err}");
    }
}

#[tokio::test]
async fn bad_backend_settings_are_invalid_input() {
    let braces = Backend::builder().prefix("app:{x}:").memory();
    assert!(
        matches!(braces, Err(LockError::InvalidInput(_))),
        "{braces:?}"
    );
    let zero = Backend::builder().op_timeout(Duration::ZERO).memory();
    assert!(matches!(zero, Err(LockError::InvalidInput(_))), "{zero:?}");
}

/// A restart hold longer than any TTL may be would hold grants for good after a restart:
/// refused before any connection is made, on every Redis store.
#[tokio::test]
async fn a_restart_guard_over_a_year_is_invalid_input() {
    for url in [
        "redis://127.0.0.1:1",
        "redis+cluster://127.0.0.1:1",
        "redis+redlock://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
    ] {
        for longest in [
            Duration::MAX,
            lock_runtime::MAX_TTL + Duration::from_millis(1),
        ] {
            let err = Backend::builder()
                .restart_guard(Some(longest))
                .connect(url)
                .await
                .expect_err(url);
            assert!(matches!(err, LockError::InvalidInput(_)), "{url}: {err:?}");
            assert!(err.to_string().contains("restart_guard"), "{err}");
        }
    }
}
