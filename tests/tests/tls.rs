//! `rediss://`: locks over TLS, against a real redis-server that speaks TLS only.

use std::time::Duration;

use lock_runtime::{Backend, LockError, LockOptions};
use lock_tests::RedisServer;

#[tokio::test]
async fn locks_work_over_tls_with_a_trusted_certificate() {
    let server = RedisServer::start_tls();
    assert!(server.url().starts_with("rediss://"));
    let backend = Backend::builder()
        .tls_root_certificate(server.ca_pem())
        .redis(&server.url())
        .await
        .expect("connect over TLS");
    let options = LockOptions::new(Duration::from_secs(5)).fencing(true);
    let guard = backend
        .acquire("k", &options)
        .await
        .expect("acquire over TLS");
    let busy = backend
        .acquire("k", &LockOptions::new(Duration::from_secs(5)))
        .await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    assert!(guard.fencing_token().is_some());
    guard.release().await.expect("release over TLS");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_connect_error() {
    let server = RedisServer::start_tls();
    // The system's roots do not know the test CA.
    let err = Backend::builder()
        .op_timeout(Duration::from_secs(2))
        .redis(&server.url())
        .await
        .expect_err("the certificate is not trusted");
    assert!(
        matches!(
            err,
            LockError::Backend {
                operation: "connect",
                ..
            }
        ),
        "{err:?}"
    );
}
