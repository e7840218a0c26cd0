//! The lease a holder may count on, and how a body is kept within it.
//!
//! - **Drift margin.** The store expires a key by its own clock; this process counts the
//!   lease on its own. The local lease therefore ends a margin before the store's could:
//!   `ttl / 100 + 2 ms` (Redlock's choice), counted from before the request was sent.
//! - **Renewal** runs as a task of its own, so a body that blocks its thread does not stop
//!   it. Each extend call is raced against the lease end: a store that never answers cannot
//!   stretch the lease.
//! - **Supervision**: the body is raced against the lease's end. The end moves when renewal
//!   succeeds, and arrives at once when renewal finds the lock gone.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::{
    backend::Backend,
    error::LockError,
    metrics::LockMetrics,
    options::{LockOptions, OnLost},
    store::{drift_margin, Operation, SessionState, SessionWatch},
    token::Token,
};

/// How soon a failed renewal (a store error, not a lost lock) is tried again.
const RENEW_RETRY: Duration = Duration::from_millis(50);

/// The end of a lease of `ttl` asked for at `sent_at`, by this process's clock.
pub(crate) fn lease_end(sent_at: Instant, ttl: Duration) -> Instant {
    sent_at + (ttl - drift_margin(ttl))
}

/// What the holder knows of its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseState {
    /// Held until this instant, unless renewed.
    Until(Instant),
    /// Renewal found the lock gone, or the lease ended while a renewal was unanswered.
    Lost,
}

/// A view of one lease that any number of bodies (the holder's and nested ones) can watch.
pub(crate) type LeaseWatch = watch::Receiver<LeaseState>;

impl LeaseState {
    /// Whether the lease is over by now.
    pub(crate) fn is_over(self) -> bool {
        match self {
            Self::Until(end) => Instant::now() >= end,
            Self::Lost => true,
        }
    }
}

/// Completes when the lease watched by `lease` is over: its end passed, or it was lost.
pub(crate) async fn lost(mut lease: LeaseWatch) {
    loop {
        let state = *lease.borrow_and_update();
        let LeaseState::Until(end) = state else {
            return;
        };
        if Instant::now() >= end {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(end.into()) => {
                // A renewal may have moved the end in the same instant: look again.
                if *lease.borrow() == state {
                    return;
                }
            }
            changed = lease.changed() => {
                if changed.is_err() {
                    // Nobody renews any more: the last end stands.
                    tokio::time::sleep_until(end.into()).await;
                    return;
                }
            }
        }
    }
}

/// Whether the store session a lease rests on is over by now: ended, or cut off for longer
/// than the store can vouch for.
pub(crate) fn session_over(session: &SessionWatch) -> bool {
    match *session.borrow() {
        SessionState::Live => false,
        SessionState::Suspended { since, for_at_most } => since.elapsed() >= for_at_most,
        _ => true,
    }
}

/// Completes when the store session a lease rests on is over (see [`session_over`]); never
/// without a session.
pub(crate) async fn session_lost(session: Option<SessionWatch>) {
    let Some(mut session) = session else {
        return std::future::pending().await;
    };
    loop {
        let state = *session.borrow_and_update();
        match state {
            SessionState::Live => {
                if session.changed().await.is_err() {
                    // The store is gone, and its sessions with it.
                    return;
                }
            }
            SessionState::Suspended { since, for_at_most } => {
                tokio::select! {
                    () = tokio::time::sleep_until((since + for_at_most).into()) => return,
                    changed = session.changed() => if changed.is_err() { return },
                }
            }
            _ => return,
        }
    }
}

/// Runs `body` until it ends or the lease is over (its end passed, renewal found it gone, or
/// the store session it rests on ended), reacting as `policy` says: `Err(Lost)` when the
/// lease ended first.
pub(crate) async fn watch_body<F: Future>(
    lease: LeaseWatch,
    session: Option<SessionWatch>,
    options: &LockOptions,
    key: &str,
    body: F,
) -> Result<F::Output, LockError> {
    let client = options.client_label();
    let lost = async {
        tokio::select! {
            () = lost(lease) => {}
            () = session_lost(session) => {}
        }
    };
    tokio::pin!(lost);
    let mut body = std::pin::pin!(body);
    let lost_error = || LockError::Lost {
        key: key.to_owned(),
    };
    tokio::select! {
        // A lease that ended wins over a body that finished in the same poll.
        biased;
        () = &mut lost => match options.lost_policy() {
            OnLost::Finish => {
                tracing::warn!(key, client, "lease lost; the body runs on");
                body.await;
                Err(lost_error())
            }
            _ => {
                tracing::warn!(key, client, "lease lost; the body is cancelled");
                Err(lost_error())
            }
        },
        output = &mut body => Ok(output),
    }
}

/// What the renewal task needs to extend one lease.
pub(crate) struct Renewal {
    pub(crate) backend: Backend,
    pub(crate) store_key: Arc<str>,
    pub(crate) token: Token,
    /// The holder's slot in the local queue, whose lease end is kept up to date.
    pub(crate) generation: u64,
    /// The holder's lease.
    pub(crate) ttl: Duration,
    /// The lease the store keeps: `ttl` plus a lock delay, on a store whose keys expire.
    pub(crate) store_ttl: Duration,
    pub(crate) client: &'static str,
    pub(crate) metrics: &'static LockMetrics,
    /// Held as one of several holders.
    pub(crate) shared: bool,
    /// Renewal stops here; `None`: no bound.
    pub(crate) until: Option<Instant>,
}

/// Stops the renewal task when dropped.
#[derive(Debug)]
pub(crate) struct RenewalTask(tokio::task::AbortHandle);

impl RenewalTask {
    pub(crate) fn new(task: tokio::task::AbortHandle) -> Self {
        Self(task)
    }
}

impl Drop for RenewalTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Renewal {
    /// Starts renewing, on the current runtime, the lease that `lease` publishes.
    pub(crate) fn start(self, lease: watch::Sender<LeaseState>) -> RenewalTask {
        RenewalTask(tokio::spawn(self.run(lease)).abort_handle())
    }

    /// Extends the lease once a third of its TTL has passed, until `until`; publishes
    /// each new end, or `Lost`.
    async fn run(self, lease: watch::Sender<LeaseState>) {
        let key = self.backend.name_in(&self.store_key).to_owned();
        let client = self.client;
        loop {
            let LeaseState::Until(end) = *lease.borrow() else {
                return;
            };
            let now = Instant::now();
            if now >= end || self.until.is_some_and(|until| now >= until) {
                // The supervisor's own timer ends the lease at `end`.
                return;
            }
            let due = end.checked_sub(self.ttl.mul_f64(2.0 / 3.0)).unwrap_or(now);
            if now < due {
                let wake = self.until.map_or(due, |until| due.min(until));
                tokio::time::sleep_until(wake.into()).await;
                continue;
            }
            let sent_at = Instant::now();
            let call = self.backend.store_extend(
                &self.store_key,
                &self.token,
                self.store_ttl,
                self.shared,
            );
            let outcome = tokio::select! {
                outcome = self.backend.bounded(Operation::Extend, call) => outcome,
                () = tokio::time::sleep_until(end.into()) => {
                    tracing::warn!(key, client, "renewal unanswered until the lease ended");
                    lease.send_replace(LeaseState::Lost);
                    return;
                }
            };
            match outcome {
                Ok(true) => {
                    self.metrics.renewed();
                    let new_end = lease_end(sent_at, self.ttl);
                    let local = self.backend.local();
                    local.set_lease(&self.store_key, self.generation, new_end);
                    lease.send_replace(LeaseState::Until(new_end));
                }
                Ok(false) => {
                    tracing::warn!(key, client, "renewal found the lock gone");
                    lease.send_replace(LeaseState::Lost);
                    return;
                }
                Err(error) => {
                    tracing::warn!(key, client, %error, "renewal failed; retrying");
                    let retry = (Instant::now() + RENEW_RETRY).min(end);
                    tokio::time::sleep_until(retry.into()).await;
                }
            }
        }
    }
}
