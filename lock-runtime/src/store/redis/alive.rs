//! Whether the Tokio runtime that drives a connection still runs.
//!
//! A connection's driver task runs on the runtime that opened it and dies with it (a
//! `#[tokio::test]` drops its runtime at its end, while the registry lives on). A sentinel
//! task on that runtime says when it is gone, so the next call can open a new connection on
//! its own runtime before it sends anything.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

/// False once the runtime it was made on has shut down: a task on that runtime holds a
/// guard that clears it when the runtime drops the task.
#[derive(Clone)]
pub(super) struct RuntimeAlive(Arc<AtomicBool>);

struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl RuntimeAlive {
    /// Watches the current runtime.
    pub(super) fn current() -> Self {
        let alive = Arc::new(AtomicBool::new(true));
        let guard = ClearOnDrop(alive.clone());
        tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        Self(alive)
    }

    pub(super) fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
