//! What the store's one connection has in flight, bounded.
//!
//! tokio-postgres sends a statement when its future is first polled, and the server runs
//! it whether or not anyone still waits for the answer. Callers that give up (a cancelled
//! acquire, a timed-out call) would otherwise leave statements queued on the connection
//! without bound: under contended, mostly cancelled acquires the queue outgrew what the
//! server could run, every answer came too late, and grants stopped altogether.
//!
//! So a statement is sent only with one of [`IN_FLIGHT`] permits. A caller waiting for a
//! permit that gives up has sent nothing. A statement whose caller gives up after it was
//! sent is driven to its end in the background, still holding its permit, so the permits
//! count exactly what the server has yet to answer.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many statements may be sent and unanswered at once: enough to pipeline many
/// waiters' tries, few enough that one round through them stays short.
pub(super) const IN_FLIGHT: usize = 64;

pub(super) struct Pipeline(Arc<Semaphore>);

impl Pipeline {
    pub(super) fn new() -> Self {
        Self(Arc::new(Semaphore::new(IN_FLIGHT)))
    }

    /// Runs the statement `send` makes once a permit is had.
    pub(super) async fn run<T, F>(&self, send: impl FnOnce() -> F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        // Never closed, so the permit always comes.
        let permit = self.0.clone().acquire_owned().await.ok();
        InFlight {
            work: Some(Box::pin(send())),
            permit,
            polled: false,
        }
        .await
    }
}

/// A statement with its permit; dropped unfinished after it was sent, it finishes in the
/// background.
struct InFlight<T: Send + 'static> {
    work: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
    permit: Option<OwnedSemaphorePermit>,
    polled: bool,
}

impl<T: Send + 'static> Future for InFlight<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.polled = true;
        let Some(work) = self.work.as_mut() else {
            return Poll::Pending;
        };
        let outcome = work.as_mut().poll(cx);
        if outcome.is_ready() {
            self.work = None;
            self.permit = None;
        }
        outcome
    }
}

impl<T: Send + 'static> Drop for InFlight<T> {
    fn drop(&mut self) {
        let (Some(work), true) = (self.work.take(), self.polled) else {
            return;
        };
        let permit = self.permit.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = work.await;
                drop(permit);
            });
        }
    }
}
