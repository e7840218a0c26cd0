//! Release notifications from every server, merged into one watch for a waiter.

use std::{future::Future as _, sync::Arc};

use tokio::sync::Notify;

use crate::store::Watch;

/// One watch that fires when any of `watches` does: a task forwards their notifications
/// for as long as the merged watch lives.
pub(super) fn merged(mut watches: Vec<Watch>) -> Watch {
    if watches.len() <= 1 {
        return watches.pop().unwrap_or_else(Watch::none);
    }
    let merged = Arc::new(Notify::new());
    let sources: Vec<Arc<Notify>> = watches.iter().map(Watch::shared_notify).collect();
    let forward = tokio::spawn(forward(sources, merged.clone()));
    Watch::new(merged, (watches, AbortOnDrop(forward.abort_handle())))
}

/// Notifies `merged`'s waiters each time one of `sources` is notified.
async fn forward(sources: Vec<Arc<Notify>>, merged: Arc<Notify>) {
    loop {
        let mut notified: Vec<_> = sources.iter().map(|n| Box::pin(n.notified())).collect();
        for one in &mut notified {
            one.as_mut().enable();
        }
        std::future::poll_fn(|cx| {
            if notified.iter_mut().any(|n| n.as_mut().poll(cx).is_ready()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        merged.notify_waiters();
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
