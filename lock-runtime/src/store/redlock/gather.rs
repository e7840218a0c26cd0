//! One call sent to every server at once, and its answers gathered only until they decide
//! the outcome: a majority that answered quickly is not kept waiting by a slow server.

use std::{
    future::Future,
    task::{Context, Poll},
    time::Instant,
};

use crate::store::{StoreError, StoreFuture};

/// One call on every server, running: `answers[i]` is server `i`'s answer, `None` while
/// it has not answered. Dropped, it drops the calls still running (a command one already
/// sent still runs on the server, in order with whatever is sent to it next).
pub(super) struct Gathering<'a, T> {
    running: Vec<Option<StoreFuture<'a, T>>>,
    pub(super) answers: Vec<Option<Result<T, StoreError>>>,
    left: usize,
}

impl<'a, T> Gathering<'a, T> {
    /// Starts `calls` (one per server) at once.
    pub(super) fn start(calls: Vec<StoreFuture<'a, T>>) -> Self {
        let running: Vec<Option<StoreFuture<'a, T>>> = calls.into_iter().map(Some).collect();
        let answers = running.iter().map(|_| None).collect();
        let left = running.len();
        Self {
            running,
            answers,
            left,
        }
    }

    /// Gathers answers until `decided` says the answers so far settle the outcome (it is
    /// given them and how many calls still run), every call has answered, or `deadline`
    /// passes.
    pub(super) async fn until(
        &mut self,
        deadline: Option<Instant>,
        mut decided: impl FnMut(&[Option<Result<T, StoreError>>], usize) -> bool,
    ) {
        let mut timer = deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into())));
        std::future::poll_fn(|cx: &mut Context<'_>| {
            for (slot, answer) in self.running.iter_mut().zip(self.answers.iter_mut()) {
                let Some(call) = slot else { continue };
                if let Poll::Ready(outcome) = call.as_mut().poll(cx) {
                    *answer = Some(outcome);
                    *slot = None;
                    self.left -= 1;
                }
            }
            if self.left == 0 || decided(&self.answers, self.left) {
                return Poll::Ready(());
            }
            match timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(()),
                _ => Poll::Pending,
            }
        })
        .await;
    }

    /// Gives the calls still running until `deadline` to answer: on a refusal or a
    /// release, a server merely a little slower than the others need not be asked again.
    pub(super) async fn stragglers(&mut self, deadline: Instant) {
        if self.left > 0 {
            self.until(Some(deadline), |_, _| false).await;
        }
    }

    /// How many calls still run.
    pub(super) fn running(&self) -> usize {
        self.left
    }

    /// The servers that have not answered.
    pub(super) fn unanswered(&self) -> Vec<usize> {
        self.answers
            .iter()
            .enumerate()
            .filter(|(_, answer)| answer.is_none())
            .map(|(index, _)| index)
            .collect()
    }
}

/// Runs `calls` to the end (or `deadline`), whatever they answer.
pub(super) async fn all<T>(calls: Vec<StoreFuture<'_, T>>, deadline: Option<Instant>) {
    Gathering::start(calls).until(deadline, |_, _| false).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn after(ms: u64, value: bool) -> StoreFuture<'static, bool> {
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
        let mut gathered = Gathering::start(calls);
        gathered.until(None, |answers, _| yes(answers) >= 2).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(yes(&gathered.answers), 2);
        assert_eq!(gathered.unanswered(), [2]);
    }

    #[tokio::test]
    async fn the_deadline_ends_the_gathering() {
        let started = Instant::now();
        let calls = vec![after(1, true), after(10_000, true), after(10_000, true)];
        let deadline = Instant::now() + Duration::from_millis(50);
        let mut gathered = Gathering::start(calls);
        gathered
            .until(Some(deadline), |answers, _| yes(answers) >= 2)
            .await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50) && waited < Duration::from_secs(5));
        assert_eq!(yes(&gathered.answers), 1);
        assert_eq!(gathered.unanswered(), [1, 2]);
    }

    #[tokio::test]
    async fn every_answer_is_gathered_when_none_decides() {
        let calls = vec![after(1, false), after(5, true), after(3, false)];
        let mut gathered = Gathering::start(calls);
        gathered.until(None, |_, _| false).await;
        assert!(gathered.answers.iter().all(Option::is_some));
        assert!(gathered.unanswered().is_empty());
    }

    #[tokio::test]
    async fn stragglers_get_until_their_deadline() {
        let calls = vec![
            after(1, true),
            after(2, true),
            after(30, true),
            after(10_000, true),
        ];
        let mut gathered = Gathering::start(calls);
        gathered.until(None, |answers, _| yes(answers) >= 2).await;
        assert_eq!(gathered.running(), 2);
        gathered
            .stragglers(Instant::now() + Duration::from_millis(500))
            .await;
        assert_eq!(gathered.unanswered(), [3]);
    }
}
