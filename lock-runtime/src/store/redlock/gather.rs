//! One call sent to every server at once, and its answers gathered only until they decide
//! the outcome: a majority that answered quickly is not kept waiting by a slow server.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use crate::store::StoreError;

/// One server's part of a call; it owns what it needs, so it can finish in the background.
pub(super) type NodeCall<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// What the servers said so far: `answers[i]` is server `i`'s answer, `None` while it has
/// not answered; `pending` holds the calls still running, by server.
pub(super) struct Gathered<T> {
    pub(super) answers: Vec<Option<Result<T, StoreError>>>,
    pub(super) pending: Vec<(usize, NodeCall<T>)>,
}

/// Runs `calls` (one per server) at once until `decided` says the answers so far settle the
/// outcome (it is given them and how many calls still run), every call has answered, or
/// `deadline` passes. Calls still running then are handed back, not cancelled.
pub(super) async fn gather<T>(
    calls: Vec<NodeCall<T>>,
    deadline: Option<Instant>,
    mut decided: impl FnMut(&[Option<Result<T, StoreError>>], usize) -> bool,
) -> Gathered<T> {
    let mut running: Vec<Option<NodeCall<T>>> = calls.into_iter().map(Some).collect();
    let mut answers: Vec<Option<Result<T, StoreError>>> = running.iter().map(|_| None).collect();
    let mut left = running.len();
    let mut timer = deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into())));
    std::future::poll_fn(|cx: &mut Context<'_>| {
        for (slot, answer) in running.iter_mut().zip(answers.iter_mut()) {
            let Some(call) = slot else { continue };
            if let Poll::Ready(outcome) = call.as_mut().poll(cx) {
                *answer = Some(outcome);
                *slot = None;
                left -= 1;
            }
        }
        if left == 0 || decided(&answers, left) {
            return Poll::Ready(());
        }
        match timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    })
    .await;
    let pending = running
        .into_iter()
        .enumerate()
        .filter_map(|(index, call)| Some((index, call?)))
        .collect();
    Gathered { answers, pending }
}

/// Lets calls that were still running when the outcome was decided finish on their own.
pub(super) fn finish_in_background<T: Send + 'static>(pending: Vec<(usize, NodeCall<T>)>) {
    if pending.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for (_, call) in pending {
            let _ = call.await;
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn after(ms: u64, value: bool) -> NodeCall<bool> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(value)
        })
    }

    fn yes(answers: &[Option<Result<bool, StoreError>>]) -> usize {
        answers
            .iter()
            .filter(|a| matches!(a, Some(Ok(true))))
            .count()
    }

    #[tokio::test]
    async fn a_quick_majority_does_not_wait_for_a_slow_server() {
        let started = Instant::now();
        let calls = vec![after(1, true), after(2, true), after(10_000, true)];
        let gathered = gather(calls, None, |answers, _| yes(answers) >= 2).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(yes(&gathered.answers), 2);
        assert_eq!(gathered.pending.len(), 1);
        assert_eq!(gathered.pending[0].0, 2);
    }

    #[tokio::test]
    async fn the_deadline_ends_the_gathering() {
        let started = Instant::now();
        let calls = vec![after(1, true), after(10_000, true), after(10_000, true)];
        let deadline = Instant::now() + Duration::from_millis(50);
        let gathered = gather(calls, Some(deadline), |answers, _| yes(answers) >= 2).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50) && waited < Duration::from_secs(5));
        assert_eq!(yes(&gathered.answers), 1);
        assert_eq!(gathered.pending.len(), 2);
    }

    #[tokio::test]
    async fn every_answer_is_gathered_when_none_decides() {
        let calls = vec![after(1, false), after(5, true), after(3, false)];
        let gathered = gather(calls, None, |_, _| false).await;
        assert!(gathered.answers.iter().all(Option::is_some));
        assert!(gathered.pending.is_empty());
    }
}
