//! Taking a lock: queueing in the process, trying the store, waiting for a release, and
//! cleaning up after a request whose outcome is unknown.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::Instrument as _;

use crate::{
    backend::{check_lock_delay, check_name, check_ttl, Backend},
    error::LockError,
    guard::{Held, LockGuard},
    holder,
    lease::lease_end,
    local::{Entry, Slot},
    options::LockOptions,
    store::{AcquireRequest, Attempt, LockKind, Operation, StoreError, Watch},
    token::Token,
};

/// First and longest pause before a waiter re-checks a busy lock without having been
/// notified of a release: the bound on how long a lost notification or an expired lock can
/// keep a waiter waiting.
const FIRST_RECHECK: Duration = Duration::from_millis(20);
const LONGEST_RECHECK: Duration = Duration::from_millis(200);
/// How long after a holder's lease ends (by the store's word) a waiter tries again: the
/// store's expiry is exact to the millisecond.
const EXPIRY_SLACK: Duration = Duration::from_millis(1);
/// Pause before an acquire that met a store error is tried again.
const ERROR_RETRY: Duration = Duration::from_millis(20);

/// What the last try of an acquire found, when it did not get the lock.
enum Refused {
    Busy,
    Recovering { left: Duration },
}

mod pending;

use self::pending::{InFlight, Jitter, Mark};

impl Backend {
    /// Takes the lock `name`, trying for up to `options.wait_for()` while another owner
    /// holds it.
    ///
    /// Tasks of this process that want the same lock queue first come first served, and
    /// only the first of them talks to the store. A waiter retries as soon as the store
    /// says the lock was released, and re-checks on a short timer in case that word is
    /// lost. Fails with [`LockError::Busy`] when the lock stayed taken,
    /// [`LockError::Recovering`] while the store is held back after a restart or failover,
    /// and [`LockError::Backend`] or [`LockError::Timeout`] when the store failed (also for
    /// a task queued behind one that met the failure); no call takes longer than the wait
    /// plus one store time bound.
    pub async fn acquire(&self, name: &str, options: &LockOptions) -> Result<LockGuard, LockError> {
        check_request(name, options.ttl())?;
        let token = Token::generate().map_err(|e| LockError::Backend {
            operation: Operation::Acquire,
            source: StoreError::other(e),
        })?;
        let key: Arc<str> = self.key_for(name).into();
        let span = tracing::debug_span!(
            "lock.acquire",
            key = name,
            ttl_ms = options.ttl().as_millis() as u64,
            wait_ms = options.wait_for().as_millis() as u64,
        );
        self.acquire_key(key, token, options).instrument(span).await
    }

    /// Takes one of `permits` permits of the semaphore `name`: at most `permits` holders at
    /// once, each with a lease and token of its own, so a holder that vanished gives its
    /// permit back when its TTL runs out. Waiting, renewal, fencing and release are as for
    /// [`acquire`](Self::acquire); the guard releases this permit only.
    ///
    /// Every process must name the same `permits` for a name: while the semaphore has
    /// holders, a request with another count fails with [`LockError::InvalidInput`] rather
    /// than admitting a different number. Fails the same way for `permits == 0`, and on a
    /// store without semaphores (`Capabilities::supports`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{Backend, LockError, LockOptions};
    /// use std::time::Duration;
    ///
    /// let backend = Backend::memory();
    /// let options = LockOptions::new(Duration::from_secs(30));
    /// let one = backend.acquire_permit("exports", 2, &options).await?;
    /// let two = backend.acquire_permit("exports", 2, &options).await?;
    /// let third = backend.acquire_permit("exports", 2, &options).await;
    /// assert!(matches!(third, Err(LockError::Busy { .. })));
    /// let other_count = backend.acquire_permit("exports", 3, &options).await;
    /// assert!(matches!(other_count, Err(LockError::InvalidInput(_))));
    /// one.release().await?;
    /// two.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_permit(
        &self,
        name: &str,
        permits: u32,
        options: &LockOptions,
    ) -> Result<LockGuard, LockError> {
        self.acquire(name, &options.clone().permits(permits)).await
    }

    async fn acquire_key(
        &self,
        key: Arc<str>,
        token: Token,
        options: &LockOptions,
    ) -> Result<LockGuard, LockError> {
        if let Some(why) = self.capabilities().refuses(options.ttl(), options.fenced()) {
            return Err(LockError::invalid(why));
        }
        let kind = options.kind();
        if kind != LockKind::Exclusive {
            self.check_kind(kind)?;
        }
        let lock_delay = options.lock_delay_for();
        check_lock_delay(kind, lock_delay)?;
        let started = Instant::now();
        let metrics = self.lock_metrics(options);
        let deadline = started.checked_add(options.wait_for());
        // Shared holders of this process do not queue behind one another.
        let slot = match match kind.is_shared() {
            true => Entry::Owner(self.local().alone(&key)),
            false => self.local().enter(&key, started),
        } {
            Entry::Owner(slot) => slot,
            Entry::Queued(ticket) => match ticket.wait(deadline).await {
                Ok(slot) => slot,
                // The task ahead met a store failure: that is the answer, not "busy".
                Err(Some(failure)) => return Err(failure),
                Err(None) => {
                    metrics.busy();
                    return Err(self.busy(&key, started));
                }
            },
        };
        let holder = holder::Record::now(options.function_name());
        let request = AcquireRequest {
            key: &key,
            token: &token,
            ttl: self.store_ttl(options.ttl(), lock_delay),
            fencing: options.fenced(),
            reclaim: false,
            waiting: false,
            holder: holder.as_str(),
            kind,
            lock_delay,
        };
        let outcome = self.contend(request, &slot, deadline).await;
        let refused = match outcome {
            Ok(Ok((fence, sent_at))) => {
                let lease_end = lease_end(sent_at, options.ttl());
                let generation = slot.generation();
                slot.keep(lease_end);
                metrics.acquired(sent_at.saturating_duration_since(started));
                tracing::debug!(
                    outcome = "acquired",
                    waited_us = (sent_at - started).as_micros() as u64,
                    fence
                );
                let held = Held {
                    token,
                    fence,
                    generation,
                    lease_end,
                    acquired_at: sent_at,
                    client: options.client_label(),
                    session: self.sessions(&key, &token),
                    metrics,
                    shared: kind.is_shared(),
                    lock_delay,
                };
                return Ok(LockGuard::new(self.clone(), key, held));
            }
            Ok(Err(Refused::Busy)) => {
                metrics.busy();
                self.busy(&key, started)
            }
            Ok(Err(Refused::Recovering { left })) => {
                metrics.recovering();
                LockError::Recovering {
                    key: self.name_in(&key).to_owned(),
                    waited: started.elapsed(),
                    left,
                }
            }
            Err(error) => error,
        };
        drop(slot);
        tracing::debug!(outcome = "refused", error = %refused);
        Err(refused)
    }

    /// Tries until the lock is ours (`(fence, when the winning request was sent)`) or
    /// `deadline` passes: at once; after a busy answer, once subscribed to release
    /// notifications, then after each notification and each re-check timer; after a store
    /// error, again shortly. A request whose outcome is unknown (it timed out or failed on
    /// the wire) may have taken the lock: the next try reclaims the key if it holds our
    /// token, and giving up deletes the key in the background if it does. The last answer
    /// decides the error: a store error or timeout is never reported as busy. Every store
    /// error is also recorded on `slot`, for the tasks queued behind this one.
    async fn contend(
        &self,
        mut request: AcquireRequest<'_>,
        slot: &Slot<'_>,
        deadline: Option<Instant>,
    ) -> Result<Result<(Option<u64>, Instant), Refused>, LockError> {
        let mut unknown = InFlight::new(self, request.key, request.token);
        unknown.shared = request.kind.is_shared();
        // A store that keeps a busy contender queued: leaving without the lock leaves the
        // queue (`unknown` stays armed, and releases when dropped).
        let queued = self.capabilities().has_queue();
        // Release notifications, subscribed to only once the lock was found busy: the
        // uncontended path pays for none of it.
        let mut watch: Option<Watch> = None;
        let mut subscribe = false;
        let mut recheck = FIRST_RECHECK;
        // Whether the last wake-up was a release notification.
        let mut woken = false;
        // Whether the store marked the key for this writer (writer preference), taken back
        // if it leaves without the lock.
        let mut mark = Mark {
            backend: self,
            key: request.key,
            token: request.token,
            set: false,
        };
        // Made on the first pause: the uncontended path never pauses.
        let mut jitter: Option<Jitter> = None;
        loop {
            if std::mem::take(&mut subscribe) {
                watch = Some(self.subscribe(request.key, request.token, deadline).await);
            }
            // Listen before trying, so a release right after the try is not missed.
            let notified = watch.as_ref().map(|w| w.notify().notified());
            tokio::pin!(notified);
            if let Some(notified) = notified.as_mut().as_pin_mut() {
                notified.enable();
            }

            request.reclaim = unknown.armed();
            // Ask for the holder's remaining lease when subscribed and not just woken by a
            // release: a woken waiter most likely finds the lock free, and a plain try is
            // the cheapest. A writer that marked the key against new readers asks as a
            // waiter every time, so that its winning try clears the mark.
            request.waiting = watch.is_some() && (mark.set || !std::mem::take(&mut woken));
            let sent_at = Instant::now();
            unknown.arm(sent_at + request.ttl);
            let answer = self
                .bounded(Operation::Acquire, self.store().try_acquire(request))
                .await;
            // How long the holder's lease has left, when the store says.
            let mut lease_left = None;
            let refused = match answer {
                Ok(Attempt::Acquired { fence }) => {
                    unknown.disarm();
                    // The winning try cleared the mark.
                    mark.set = false;
                    return Ok(Ok((fence, sent_at)));
                }
                Ok(Attempt::Recovering { left }) => {
                    if !queued {
                        unknown.disarm();
                    }
                    slot.record(None);
                    Ok(Refused::Recovering { left })
                }
                Ok(busy) => {
                    if !queued {
                        unknown.disarm();
                    }
                    slot.record(None);
                    match busy {
                        Attempt::BusyFor { left } => lease_left = Some(left),
                        Attempt::BusyShared { left } => {
                            lease_left = Some(left);
                            mark.set |= request.waiting;
                        }
                        _ => {}
                    }
                    Ok(Refused::Busy)
                }
                // Not a passing failure: the key is another kind of lock.
                Err(e @ LockError::InvalidInput(_)) => {
                    unknown.disarm();
                    return Err(e);
                }
                Err(e) => {
                    slot.record(Some(&e));
                    Err(e)
                }
            };
            let now = Instant::now();
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
            if left.is_zero() {
                // `unknown`, still armed after an error, deletes the key if the request
                // did take it.
                mark.withdraw().await;
                if queued && refused.is_ok() {
                    unknown.leave_queue().await;
                }
                return refused.map(Err);
            }
            match refused {
                Err(e) => {
                    tracing::debug!(error = %e, "acquire failed; trying again");
                    tokio::time::sleep(ERROR_RETRY.min(left)).await;
                }
                Ok(_) => match notified.as_mut().as_pin_mut() {
                    // Subscribe, then try again at once: a release in between would be missed.
                    None => subscribe = true,
                    Some(notified) => {
                        // At the latest when the holder's lease ends (a holder that died
                        // publishes nothing), else on the re-check timer, the safety net
                        // for a lost notification.
                        let until_expiry = lease_left.map_or(Duration::MAX, |l| l + EXPIRY_SLACK);
                        let pause = jitter
                            .get_or_insert_with(|| Jitter::from(request.token))
                            .spread(recheck)
                            .min(until_expiry)
                            .min(left);
                        tokio::select! {
                            () = notified => woken = true,
                            () = tokio::time::sleep(pause) => {
                                recheck = (recheck * 2).min(LONGEST_RECHECK);
                            }
                        }
                    }
                },
            }
        }
    }

    /// The store's release notifications for `key` (for the waiter `token`), or none if it
    /// cannot give them now.
    /// Bounded by the time bound and by what is left of the wait, so that subscribing never
    /// stretches an acquire past its wait plus one store call.
    async fn subscribe(&self, key: &str, token: &Token, deadline: Option<Instant>) -> Watch {
        let watch = self.store().watch(key, Some(token));
        let until = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        match tokio::time::timeout(until, self.bounded(Operation::Watch, watch)).await {
            Ok(Ok(watch)) => watch,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no release notifications; re-checking on a timer");
                Watch::none()
            }
            Err(_) => Watch::none(),
        }
    }

    fn busy(&self, key: &str, started: Instant) -> LockError {
        LockError::Busy {
            key: self.name_in(key).to_owned(),
            waited: started.elapsed(),
        }
    }
}

impl Backend {
    /// Refuses a shared kind this backend's store cannot take, or a semaphore of no permits.
    fn check_kind(&self, kind: LockKind) -> Result<(), LockError> {
        if kind == (LockKind::Permit { permits: 0 }) {
            return Err(LockError::invalid(
                "a semaphore needs at least one permit; `permits = 0` admits nobody",
            ));
        }
        if self.capabilities().supports(kind) {
            return Ok(());
        }
        let what = match kind {
            LockKind::Read => "read locks",
            _ => "semaphores",
        };
        Err(LockError::invalid(format!(
            "the {} store does not support {what}; use Redis (one server or a cluster, \
             without `replicas_acknowledge`), PostgreSQL or the in-memory store (see the \
             capability table in the README)",
            self.capabilities().label()
        )))
    }
}

fn check_request(name: &str, ttl: Duration) -> Result<(), LockError> {
    check_name(name)?;
    check_ttl(ttl)
}
