//! In-process coalescing: the tasks of one process that want the same lock queue here, first
//! come first served, so only one of them at a time (the holder, or the head of the queue)
//! talks to the store about that lock.
//!
//! A key is present in the map while some task owns its *slot*: it holds the lock or is
//! trying to take it. Everyone else waits in the key's queue until the slot is passed on, or
//! until the holder's lease has run out: then the head of the queue takes the slot over, as
//! a task of another process would take the lock. Each hand-over starts a new generation,
//! so a stale holder that releases late cannot pass on a slot it no longer owns.
//!
//! Only the head of a queue has anything to watch (the owner's lease end); the others wait
//! for their grant alone. So a change wakes the head only, and draining a queue of n
//! waiters costs O(n) wake-ups, not O(n²).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Instant,
};

use tokio::sync::{oneshot, Notify};

use crate::{error::LockError, store::Operation};

#[derive(Debug, Default)]
pub(crate) struct LocalQueue {
    keys: Mutex<Keys>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Key {
    /// Which owner the slot belongs to now.
    generation: u64,
    /// The owner's lease end while it holds the lock; `None` while it is trying.
    lease_end: Option<Instant>,
    waiters: VecDeque<Waiter>,
    /// What a waiter whose wait ends while the owner is still trying is told, rather than
    /// "busy": the store failure the owner's last try met; or, when the store has not
    /// answered the owner at all since `trying_since`, that the store did not answer.
    failure: Option<LockError>,
    /// Since when the owner has been trying without any answer from the store; `None`
    /// once it had one.
    trying_since: Option<Instant>,
}

impl Key {
    /// Tells the head of the queue that the owner, its lease or the head changed.
    fn changed(&self) {
        if let Some(head) = self.waiters.front() {
            head.wake.notify_one();
        }
    }
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    grant: oneshot::Sender<u64>,
    /// Woken when this waiter heads the queue and something it watches changed.
    wake: Arc<Notify>,
}

/// The right to talk to the store about one key; passed on when dropped.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    queue: &'a LocalQueue,
    key: &'a Arc<str>,
    generation: u64,
    owned: bool,
}

/// A place in a key's queue.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    queue: &'a LocalQueue,
    key: &'a Arc<str>,
    id: u64,
    grant: oneshot::Receiver<u64>,
    wake: Arc<Notify>,
    /// When it joined the queue.
    entered: Instant,
    done: bool,
}

pub(crate) enum Entry<'a> {
    /// The slot was free: it is ours now.
    Owner(Slot<'a>),
    /// Someone owns the slot: wait for it.
    Queued(Ticket<'a>),
}

/// Keyed with a fast hash seeded per process (foldhash): every acquire and release looks a
/// key up here, and SipHash, the standard map's, was a visible part of their CPU time.
type Keys = HashMap<Arc<str>, Key, foldhash::fast::RandomState>;

impl LocalQueue {
    fn keys(&self) -> MutexGuard<'_, Keys> {
        // No critical section below can panic half-way.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes the slot of `key` if it is free, or joins its queue; `now` is the caller's
    /// clock reading (the acquire already took one).
    pub(crate) fn enter<'a>(&'a self, key: &'a Arc<str>, now: Instant) -> Entry<'a> {
        let mut keys = self.keys();
        match keys.get_mut(&**key) {
            None => {
                let generation = self.fresh();
                let entry = Key {
                    generation,
                    lease_end: None,
                    waiters: VecDeque::new(),
                    failure: None,
                    trying_since: Some(now),
                };
                keys.insert(key.clone(), entry);
                Entry::Owner(Slot {
                    queue: self,
                    key,
                    generation,
                    owned: true,
                })
            }
            Some(entry) => {
                let id = self.fresh();
                let (grant, receiver) = oneshot::channel();
                let wake = Arc::new(Notify::new());
                entry.waiters.push_back(Waiter {
                    id,
                    grant,
                    wake: wake.clone(),
                });
                Entry::Queued(Ticket {
                    queue: self,
                    key,
                    id,
                    grant: receiver,
                    wake,
                    entered: now,
                    done: false,
                })
            }
        }
    }

    /// A slot of its own for a shared holder (a reader or a permit), which does not queue
    /// behind this process's other holders of `key`: recording, keeping and passing it
    /// touch nothing.
    pub(crate) fn alone<'a>(&'a self, key: &'a Arc<str>) -> Slot<'a> {
        Slot {
            queue: self,
            key,
            generation: self.fresh(),
            owned: false,
        }
    }

    /// Records the lease end of the slot's owner (after acquiring or extending).
    pub(crate) fn set_lease(&self, key: &str, generation: u64, lease_end: Instant) {
        if let Some(entry) = self.keys().get_mut(key) {
            if entry.generation == generation {
                entry.lease_end = Some(lease_end);
                entry.changed();
            }
        }
    }

    /// The lease end last recorded for the slot of `key`, if `generation` owns it.
    pub(crate) fn lease_end(&self, key: &str, generation: u64) -> Option<Instant> {
        let keys = self.keys();
        let entry = keys.get(key).filter(|e| e.generation == generation)?;
        entry.lease_end
    }

    /// Passes the slot of `key`, if `generation` still owns it, to the first waiter still
    /// waiting, or frees it.
    pub(crate) fn pass(&self, key: &str, generation: u64) {
        let mut keys = self.keys();
        if keys.get(key).is_some_and(|e| e.generation == generation) {
            self.hand_over(&mut keys, key);
        }
    }

    fn hand_over(&self, keys: &mut Keys, key: &str) {
        let Some(entry) = keys.get_mut(key) else {
            return;
        };
        while let Some(waiter) = entry.waiters.pop_front() {
            let generation = self.fresh();
            if waiter.grant.send(generation).is_ok() {
                entry.generation = generation;
                entry.lease_end = None;
                entry.failure = None;
                entry.trying_since = Some(Instant::now());
                entry.changed();
                return;
            }
        }
        keys.remove(key);
    }
}

impl Slot<'_> {
    /// The owner generation this slot stands for.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Records what the owner's last try met that was not the lock: an answer (the lock
    /// was busy) for `None`, or a store failure. Only the contended and failing paths call
    /// this; an acquisition is recorded by [`keep`](Self::keep).
    pub(crate) fn record(&self, failure: Option<&LockError>) {
        let mut keys = self.queue.keys();
        if let Some(entry) = keys.get_mut(&**self.key) {
            if entry.generation == self.generation {
                if failure.is_none() {
                    entry.trying_since = None;
                }
                entry.failure = failure.cloned();
            }
        }
    }

    /// Keeps the slot past this value's life: a guard now owns it, and passes it on release.
    pub(crate) fn keep(mut self, lease_end: Instant) {
        self.queue.set_lease(self.key, self.generation, lease_end);
        self.owned = false;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.owned {
            self.queue.pass(self.key, self.generation);
        }
    }
}

impl<'a> Ticket<'a> {
    /// Waits until the slot is passed to us, the owner's lease runs out while we head the
    /// queue, or `deadline` (`None`: none) passes. At the deadline, the error is the store
    /// failure the owner's last try met, if it failed (`None`: the lock was busy).
    pub(crate) async fn wait(
        mut self,
        deadline: Option<Instant>,
    ) -> Result<Slot<'a>, Option<LockError>> {
        let entered = self.entered;
        loop {
            let lease_end = {
                let keys = self.queue.keys();
                if let Ok(generation) = self.grant.try_recv() {
                    return Ok(self.into_slot(generation));
                }
                let Some(entry) = keys.get(&**self.key) else {
                    return Err(None);
                };
                let first = entry.waiters.front().is_some_and(|w| w.id == self.id);
                entry.lease_end.filter(|_| first)
            };
            // `notify_one` keeps a permit: a change made since the look above is not missed.
            tokio::select! {
                granted = &mut self.grant => {
                    return granted.map(|generation| self.into_slot(generation)).map_err(|_| None);
                }
                () = self.wake.notified() => {}
                () = sleep_until(lease_end) => {
                    if let Some(generation) = self.take_over() {
                        return Ok(self.into_slot(generation));
                    }
                }
                () = sleep_until(deadline) => {
                    return match self.take_over() {
                        Some(generation) => Ok(self.into_slot(generation)),
                        None => Err(self.failure(entered)),
                    };
                }
            }
        }
    }

    /// Why the owner has not got the lock for us, if not because it is busy: the failure
    /// its last try met, or, when the store has not answered it since before we queued
    /// (and we did wait), that the store did not answer within our wait.
    fn failure(&self, entered: Instant) -> Option<LockError> {
        let keys = self.queue.keys();
        let entry = keys.get(&**self.key)?;
        if let Some(failure) = &entry.failure {
            return Some(failure.clone());
        }
        let waited = entered.elapsed();
        let silent =
            entry.lease_end.is_none() && entry.trying_since.is_some_and(|since| since <= entered);
        (silent && !waited.is_zero()).then_some(LockError::Timeout {
            operation: Operation::Acquire,
            after: waited,
        })
    }

    fn into_slot(mut self, generation: u64) -> Slot<'a> {
        self.done = true;
        Slot {
            queue: self.queue,
            key: self.key,
            generation,
            owned: true,
        }
    }

    /// Takes the slot if it was granted meanwhile, or if its owner's lease has run out and
    /// we head the queue.
    fn take_over(&mut self) -> Option<u64> {
        let mut keys = self.queue.keys();
        if let Ok(generation) = self.grant.try_recv() {
            return Some(generation);
        }
        let entry = keys.get_mut(&**self.key)?;
        let expired = entry.lease_end.is_some_and(|end| Instant::now() >= end);
        let first = entry.waiters.front().is_some_and(|w| w.id == self.id);
        if !(expired && first) {
            return None;
        }
        entry.waiters.pop_front();
        let generation = self.queue.fresh();
        entry.generation = generation;
        entry.lease_end = None;
        entry.failure = None;
        entry.trying_since = Some(Instant::now());
        entry.changed();
        Some(generation)
    }
}

/// Sleeps until `when`, or forever for `None`.
async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when.into()).await,
        None => std::future::pending().await,
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut keys = self.queue.keys();
        if self.grant.try_recv().is_ok() {
            // Granted, but nobody is left to use it.
            self.queue.hand_over(&mut keys, self.key);
        } else if let Some(entry) = keys.get_mut(&**self.key) {
            let was_first = entry.waiters.front().is_some_and(|w| w.id == self.id);
            entry.waiters.retain(|w| w.id != self.id);
            if was_first {
                entry.changed();
            }
        }
    }
}
