//! The in-memory store's several keys at once (all or none, under its one mutex) and its
//! operators' calls.

use std::time::{Duration, Instant};

use super::{ready, Entry, MemoryStore};
use crate::{
    store::{
        glob_matches, refuse_shared, Attempt, Finding, Operators, SeveralKeys, StoreFuture,
        StoredLock, Together, TogetherFuture,
    },
    token::Token,
};

impl SeveralKeys for MemoryStore {
    fn try_acquire_all<'a>(
        &'a self,
        keys: &'a [Together<'a>],
        token: &'a Token,
        ttl: Duration,
        holder: &'a str,
    ) -> TogetherFuture<'a> {
        let now = Instant::now();
        let mut state = self.state();
        state.maybe_sweep(now);
        for together in keys {
            let busy = match state.live(together.key, now) {
                Some(entry) => Some(entry.expires_at.saturating_duration_since(now)),
                None => state
                    .live_shared(together.key, now)
                    .map(|s| s.first_end(now)),
            };
            if let Some(left) = busy {
                return Some(ready(Err(Attempt::BusyFor { left })));
            }
        }
        let fences = keys
            .iter()
            .map(|together| {
                let fence = state.next_fence(together.key, together.fencing);
                let entry = Entry {
                    token: *token,
                    expires_at: now + ttl,
                    holder: holder.into(),
                    fence,
                };
                state.locks.insert(together.key.to_owned(), entry);
                fence
            })
            .collect();
        Some(ready(Ok(fences)))
    }

    fn release_all<'a>(
        &'a self,
        keys: &'a [&'a str],
        token: &'a Token,
    ) -> Option<StoreFuture<'a, Vec<bool>>> {
        let (now, mut state) = (Instant::now(), self.state());
        let released = keys.iter().map(|key| state.release(key, token, now));
        Some(ready(released.collect()))
    }
}

impl Operators for MemoryStore {
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        let now = Instant::now();
        let mut state = self.state();
        let counter = state.counter(key);
        if let Some(shared) = state.live_shared(key, now) {
            return ready(Some(shared.stored(key, now, counter)));
        }
        ready(state.live(key, now).map(|e| e.stored(key, now, counter)))
    }

    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        let now = Instant::now();
        let state = self.state();
        let exclusive = state
            .locks
            .iter()
            .filter(|(key, entry)| entry.expires_at > now && glob_matches(pattern, key))
            .map(|(key, entry)| entry.stored(key, now, state.counter(key)));
        let shared = state
            .shared
            .iter()
            .filter(|(key, _)| glob_matches(pattern, key))
            .map(|(key, shared)| shared.stored(key, now, state.counter(key)))
            .filter(|lock| !lock.sharers.is_empty());
        let mut found: Vec<StoredLock> = exclusive.chain(shared).collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        ready(found)
    }

    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        let now = Instant::now();
        let mut state = self.state();
        let counter = state.counter(key);
        if let Some(shared) = state.live_shared(key, now) {
            let found = refuse_shared(Some(shared.stored(key, now, counter)));
            return Box::pin(std::future::ready(found));
        }
        let held = state.live(key, now).map(|e| e.stored(key, now, counter));
        if held.is_some() {
            state.remove(key);
        }
        ready(held)
    }

    fn diagnose<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, Vec<Finding>> {
        ready(vec![Finding::pass(
            "store",
            "in memory: locks live in this process only, with nothing to set up",
        )])
    }
}
