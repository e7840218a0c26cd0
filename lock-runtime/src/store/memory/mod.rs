//! The in-memory store: the same semantics as Redis (TTL, tokens, owner checks, fencing
//! counters, release notifications) inside one process. For single-process programs and
//! for users' own tests.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::{
    mismatch, AcquireRequest, Attempt, Capabilities, LockKind, Operators, SeveralKeys, SharedLocks,
    Store, StoreError, StoreFuture, StoredLock, StoredShare, Watch, WRITER_WAITING,
};
use crate::token::Token;

mod parts;

/// Locks kept in this process's memory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let guard = backend.acquire("job:1", &LockOptions::new(Duration::from_secs(5))).await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    locks: HashMap<String, Entry>,
    fences: HashMap<String, u64>,
    watchers: HashMap<String, Weak<Notify>>,
    /// Keys held by readers or a semaphore's permits.
    shared: HashMap<String, Shared>,
    /// Keys a writer waits for, until when: new readers stay out.
    writer_waiting: HashMap<String, (Instant, Token)>,
    /// Operations since the last sweep of expired entries.
    since_sweep: usize,
}

#[derive(Debug)]
struct Entry {
    token: Token,
    expires_at: Instant,
    /// The holder's record, and its fencing token.
    holder: Box<str>,
    fence: Option<u64>,
}

/// The holders of a shared key.
#[derive(Debug)]
struct Shared {
    /// 0 for readers; else the semaphore's permit count.
    permits: u32,
    holders: Vec<Entry>,
}

impl Shared {
    fn drop_expired(&mut self, now: Instant) {
        self.holders.retain(|h| h.expires_at > now);
    }

    /// The key as operators see it: its live holders, each with its record.
    fn stored(&self, key: &str, now: Instant, counter: Option<u64>) -> StoredLock {
        let sharers = self
            .holders
            .iter()
            .filter(|h| h.expires_at > now)
            .map(|h| {
                let entry = h.stored(key, now, None);
                StoredShare::new(entry.value, entry.remaining)
            })
            .collect();
        let mut stored = StoredLock::shared(key, StoredLock::shared_kind(self.permits), sharers);
        stored.fence = counter;
        stored
    }

    /// When the first of its holders' leases ends.
    fn first_end(&self, now: Instant) -> Duration {
        let first = self.holders.iter().map(|h| h.expires_at).min();
        first.map_or(Duration::ZERO, |end| end.saturating_duration_since(now))
    }
}

impl Entry {
    fn stored(&self, key: &str, now: Instant, counter: Option<u64>) -> StoredLock {
        let mut value = String::with_capacity(Token::LEN + self.holder.len() + 24);
        value.push_str(self.token.as_str());
        value.push_str(&self.holder);
        if let Some(fence) = self.fence {
            value.push_str(";fence=");
            value.push_str(&fence.to_string());
        }
        let mut stored = StoredLock::new(key, value);
        stored.remaining = Some(self.expires_at.saturating_duration_since(now));
        stored.fence = counter;
        stored
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The critical sections below cannot panic half-way, so a poisoned map is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The live entry for `key`, dropping it first if it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.locks.get(key).is_some_and(|e| e.expires_at <= now) {
            self.locks.remove(key);
        }
        self.locks.get_mut(key)
    }

    /// Deletes `key` if `token` holds it, waking its waiters; whether it did.
    fn release(&mut self, key: &str, token: &Token, now: Instant) -> bool {
        let ours = self.live(key, now).is_some_and(|e| e.token == *token);
        if ours {
            self.remove(key);
        }
        ours
    }

    /// Deletes `key` and wakes its waiters.
    fn remove(&mut self, key: &str) {
        self.locks.remove(key);
        self.wake(key);
    }

    fn wake(&self, key: &str) {
        if let Some(notify) = self.watchers.get(key).and_then(Weak::upgrade) {
            notify.notify_waiters();
        }
    }

    /// The live shared holders of `key`, if any, dropping expired ones first.
    fn live_shared(&mut self, key: &str, now: Instant) -> Option<&mut Shared> {
        if self.shared.is_empty() {
            return None;
        }
        let empty = self.shared.get_mut(key).is_some_and(|s| {
            s.drop_expired(now);
            s.holders.is_empty()
        });
        if empty {
            self.shared.remove(key);
        }
        self.shared.get_mut(key)
    }

    /// Whether a writer waits for `key` now.
    fn writer_waits(&self, key: &str, now: Instant) -> Option<Duration> {
        let (until, _) = *self.writer_waiting.get(key)?;
        (until > now).then(|| until - now)
    }

    fn next_fence(&mut self, key: &str, fencing: bool) -> Option<u64> {
        fencing.then(|| {
            let counter = self.fences.entry(key.to_owned()).or_insert(0);
            *counter += 1;
            *counter
        })
    }

    /// Takes a shared lock (a reader or a permit) for `request`.
    fn acquire_shared(
        &mut self,
        request: &AcquireRequest<'_>,
        now: Instant,
    ) -> Result<Attempt, StoreError> {
        let permits = match request.kind {
            LockKind::Permit { permits } => permits,
            _ => 0,
        };
        if let Some(entry) = self.live(request.key, now) {
            let left = entry.expires_at.saturating_duration_since(now);
            return Ok(Attempt::BusyFor { left });
        }
        if let Some(left) = self.writer_waits(request.key, now).filter(|_| permits == 0) {
            return Ok(Attempt::BusyFor { left });
        }
        if let Some(shared) = self.live_shared(request.key, now) {
            if shared.permits != permits {
                return Err(mismatch(request.key, shared.permits, permits));
            }
            if let Some(held) = shared
                .holders
                .iter_mut()
                .find(|h| h.token == *request.token)
            {
                if request.reclaim {
                    held.expires_at = now + request.ttl;
                    return Ok(Attempt::Acquired { fence: held.fence });
                }
            }
            if permits > 0 && shared.holders.len() >= permits as usize {
                return Ok(Attempt::BusyFor {
                    left: shared.first_end(now),
                });
            }
        }
        let fence = self.next_fence(request.key, request.fencing);
        let holder = Entry {
            token: *request.token,
            expires_at: now + request.ttl,
            holder: request.holder.into(),
            fence,
        };
        self.shared
            .entry(request.key.to_owned())
            .or_insert_with(|| Shared {
                permits,
                holders: Vec::new(),
            })
            .holders
            .push(holder);
        Ok(Attempt::Acquired { fence })
    }

    /// The fencing counter of the lock at `key`, if it issued a token.
    fn counter(&self, key: &str) -> Option<u64> {
        self.fences.get(key).copied()
    }

    /// Drops expired entries and dead watchers now and then, so they do not pile up.
    fn maybe_sweep(&mut self, now: Instant) {
        self.since_sweep += 1;
        if self.since_sweep >= 1024 && self.since_sweep >= self.locks.len() {
            self.locks.retain(|_, e| e.expires_at > now);
            self.shared.retain(|_, s| {
                s.drop_expired(now);
                !s.holders.is_empty()
            });
            self.writer_waiting.retain(|_, (until, _)| *until > now);
            self.watchers.retain(|_, w| w.strong_count() > 0);
            self.since_sweep = 0;
        }
    }
}

fn ready<T: Send + 'static>(value: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Store for MemoryStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("memory")
            .one_process()
            .readers()
            .permits()
            .fencing()
            .notifies_waiters()
            .several_keys_at_once()
            .operators()
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        let now = Instant::now();
        let mut state = self.state();
        state.maybe_sweep(now);
        if request.kind.is_shared() {
            let attempt = state.acquire_shared(&request, now);
            return Box::pin(std::future::ready(attempt));
        }
        if let Some(shared) = state.live_shared(request.key, now) {
            let left = shared.first_end(now);
            if request.waiting {
                // Writer preference: new readers stay out while a writer waits.
                let until = now + WRITER_WAITING;
                let mark = (until, *request.token);
                state.writer_waiting.insert(request.key.to_owned(), mark);
            }
            return ready(Attempt::BusyShared { left });
        }
        match state.live(request.key, now) {
            Some(entry) if request.reclaim && entry.token == *request.token => {}
            Some(entry) => {
                let left = entry.expires_at.saturating_duration_since(now);
                return ready(Attempt::BusyFor { left });
            }
            None => {}
        }
        let fence = state.next_fence(request.key, request.fencing);
        if !state.writer_waiting.is_empty() {
            state.writer_waiting.remove(request.key);
        }
        let entry = Entry {
            token: *request.token,
            expires_at: now + request.ttl,
            holder: request.holder.into(),
            fence,
        };
        state.locks.insert(request.key.to_owned(), entry);
        ready(Attempt::Acquired { fence })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        ready(self.state().release(key, token, Instant::now()))
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut state = self.state();
        let extended = match state.live(key, now) {
            Some(entry) if entry.token == *token => {
                entry.expires_at = now + ttl;
                true
            }
            _ => false,
        };
        ready(extended)
    }

    fn watch<'a>(&'a self, key: &'a str, _waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        let mut state = self.state();
        let notify = match state.watchers.get(key).and_then(Weak::upgrade) {
            Some(notify) => notify,
            None => {
                let notify = Arc::new(Notify::new());
                state
                    .watchers
                    .insert(key.to_owned(), Arc::downgrade(&notify));
                notify
            }
        };
        // The `Arc` kept by the watch is the registration: the map only holds a `Weak`.
        ready(Watch::new(notify.clone(), notify))
    }

    fn shared(&self) -> Option<&dyn SharedLocks> {
        Some(self)
    }

    fn several_keys(&self) -> Option<&dyn SeveralKeys> {
        Some(self)
    }

    fn operators(&self) -> Option<&dyn Operators> {
        Some(self)
    }
}

impl SharedLocks for MemoryStore {
    fn withdraw<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, ()> {
        let mut state = self.state();
        if state
            .writer_waiting
            .get(key)
            .is_some_and(|(_, t)| t == token)
        {
            state.writer_waiting.remove(key);
            state.wake(key);
        }
        ready(())
    }

    fn release_shared<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut state = self.state();
        let Some(shared) = state.live_shared(key, now) else {
            return ready(false);
        };
        let before = shared.holders.len();
        shared.holders.retain(|h| h.token != *token);
        let released = shared.holders.len() < before;
        if shared.holders.is_empty() {
            state.shared.remove(key);
        }
        if released {
            state.wake(key);
        }
        ready(released)
    }

    fn extend_shared<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut state = self.state();
        let held = state
            .live_shared(key, now)
            .and_then(|s| s.holders.iter_mut().find(|h| h.token == *token));
        let extended = held.map(|h| h.expires_at = now + ttl).is_some();
        ready(extended)
    }
}
