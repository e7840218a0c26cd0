//! The in-memory store: the same semantics as Redis (TTL, tokens, owner checks) inside one
//! process. For single-process programs and for users' own tests.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use super::{Store, StoreFuture};
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
    locks: Mutex<Locks>,
}

#[derive(Debug, Default)]
struct Locks {
    entries: HashMap<String, Entry>,
    /// Operations since the last sweep of expired entries.
    since_sweep: usize,
}

#[derive(Debug)]
struct Entry {
    token: Token,
    expires_at: Instant,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn locks(&self) -> MutexGuard<'_, Locks> {
        // The critical sections below cannot panic half-way, so a poisoned map is consistent.
        self.locks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Locks {
    /// The live entry for `key`, dropping it first if it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| e.expires_at <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// Drops expired entries now and then, so abandoned keys do not pile up.
    fn maybe_sweep(&mut self, now: Instant) {
        self.since_sweep += 1;
        if self.since_sweep >= 1024 && self.since_sweep >= self.entries.len() {
            self.entries.retain(|_, e| e.expires_at > now);
            self.since_sweep = 0;
        }
    }
}

impl Store for MemoryStore {
    fn try_acquire<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut locks = self.locks();
        locks.maybe_sweep(now);
        let acquired = match locks.live(key, now) {
            Some(_) => false,
            None => {
                let entry = Entry {
                    token: *token,
                    expires_at: now + ttl,
                };
                locks.entries.insert(key.to_owned(), entry);
                true
            }
        };
        Box::pin(std::future::ready(Ok(acquired)))
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut locks = self.locks();
        let ours = locks.live(key, now).is_some_and(|e| e.token == *token);
        if ours {
            locks.entries.remove(key);
        }
        Box::pin(std::future::ready(Ok(ours)))
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut locks = self.locks();
        let extended = match locks.live(key, now) {
            Some(entry) if entry.token == *token => {
                entry.expires_at = now + ttl;
                true
            }
            _ => false,
        };
        Box::pin(std::future::ready(Ok(extended)))
    }
}
