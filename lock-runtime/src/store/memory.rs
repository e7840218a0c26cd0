//! The in-memory store: the same semantics as Redis (TTL, tokens, owner checks, fencing
//! counters, release notifications) inside one process. For single-process programs and
//! for users' own tests.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::{glob_matches, AcquireRequest, Attempt, Store, StoreFuture, StoredLock, Watch};
use crate::token::Token;

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

    /// Deletes `key` and wakes its waiters.
    fn remove(&mut self, key: &str) {
        self.locks.remove(key);
        if let Some(notify) = self.watchers.get(key).and_then(Weak::upgrade) {
            notify.notify_waiters();
        }
    }

    /// The fencing counter of the lock at `key`, if it issued a token.
    fn counter(&self, key: &str) -> Option<u64> {
        self.fences.get(&super::fence_key(key)).copied()
    }

    /// Drops expired entries and dead watchers now and then, so they do not pile up.
    fn maybe_sweep(&mut self, now: Instant) {
        self.since_sweep += 1;
        if self.since_sweep >= 1024 && self.since_sweep >= self.locks.len() {
            self.locks.retain(|_, e| e.expires_at > now);
            self.watchers.retain(|_, w| w.strong_count() > 0);
            self.since_sweep = 0;
        }
    }
}

fn ready<T: Send + 'static>(value: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Store for MemoryStore {
    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        let now = Instant::now();
        let mut state = self.state();
        state.maybe_sweep(now);
        match state.live(request.key, now) {
            Some(entry) if request.reclaim && entry.token == *request.token => {}
            Some(entry) => {
                let left = entry.expires_at.saturating_duration_since(now);
                return ready(Attempt::BusyFor { left });
            }
            None => {}
        }
        let fence = request.fence_key.map(|fence_key| {
            let counter = state.fences.entry(fence_key.to_owned()).or_insert(0);
            *counter += 1;
            *counter
        });
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
        let now = Instant::now();
        let mut state = self.state();
        let ours = state.live(key, now).is_some_and(|e| e.token == *token);
        if ours {
            state.remove(key);
        }
        ready(ours)
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

    fn watch<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Watch> {
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

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        let now = Instant::now();
        let mut state = self.state();
        let counter = state.counter(key);
        ready(state.live(key, now).map(|e| e.stored(key, now, counter)))
    }

    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        let now = Instant::now();
        let state = self.state();
        let mut found: Vec<StoredLock> = state
            .locks
            .iter()
            .filter(|(key, entry)| entry.expires_at > now && glob_matches(pattern, key))
            .map(|(key, entry)| entry.stored(key, now, state.counter(key)))
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        ready(found)
    }

    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        let now = Instant::now();
        let mut state = self.state();
        let counter = state.counter(key);
        let held = state.live(key, now).map(|e| e.stored(key, now, counter));
        if held.is_some() {
            state.remove(key);
        }
        ready(held)
    }
}
