//! A runtime of the store's own, on a thread of its own, where every session's client
//! runs.
//!
//! A ZooKeeper client's tasks (its connection, its heartbeats) run on the runtime that
//! opened it and die with it. The lease is the session, so a session that died with the
//! runtime that happened to connect (a `#[tokio::test]` ends, a program connects before
//! its main runtime starts) would take with it every lock held from any other runtime. On
//! the store's own runtime the session lives as long as the store; callers on any runtime
//! send their requests to it and await the answers.

use std::future::Future;

use tokio::sync::oneshot;

use crate::{error::LockError, store::Operation};

pub(super) struct Home {
    handle: tokio::runtime::Handle,
    /// Dropped with the store: the thread then ends, and its runtime with it.
    _stop: oneshot::Sender<()>,
}

impl Home {
    /// Starts the thread and its runtime.
    pub(super) async fn start() -> Result<Self, LockError> {
        let (ready, started) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("lock-zookeeper".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = ready.send(Ok(runtime.handle().clone()));
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            });
        let failed = |e: std::io::Error| LockError::Backend {
            operation: Operation::Connect,
            source: format!("starting the ZooKeeper client's thread: {e}").into(),
        };
        spawned.map_err(failed)?;
        let handle = started
            .await
            .map_err(|_| failed(std::io::Error::other("the thread ended")))?
            .map_err(failed)?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Runs `work` on the store's runtime, awaited from the caller's.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, LockError>> + Send + 'static,
    ) -> Result<T, LockError> {
        self.handle
            .spawn(work)
            .await
            .map_err(|e| LockError::Backend {
                operation: Operation::Connect,
                source: format!("the ZooKeeper client's runtime: {e}").into(),
            })?
    }
}
