//! The store contract, for [`TestStore`]: the in-memory store's answers, each through the
//! faults set for its lock.

use std::time::Duration;

use super::TestStore;
use crate::{
    store::{
        AcquireRequest, Attempt, Capabilities, Finding, Operators, SessionWatch, Sessions,
        SeveralKeys, SharedLocks, Store, StoreFuture, StoredLock, Together, TogetherFuture, Watch,
    },
    token::Token,
};

impl Store for TestStore {
    fn capabilities(&self) -> Capabilities {
        self.inner.locks.capabilities()
    }

    /// The name alone: the store is the test's own.
    fn key(&self, _prefix: &str, name: &str) -> String {
        name.to_owned()
    }

    fn name_in<'k>(&self, _prefix: &str, key: &'k str) -> &'k str {
        key
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        Box::pin(async move {
            if let Some(left) = self.inner.recovering(request.key) {
                let answer = move || -> StoreFuture<'a, Attempt> {
                    Box::pin(std::future::ready(Ok(Attempt::Recovering { left })))
                };
                return self.inner.faulty(request.key, answer).await;
            }
            let attempt = self
                .inner
                .faulty(request.key, || self.inner.locks.try_acquire(request))
                .await?;
            if let Attempt::Acquired { .. } = attempt {
                let shared = request.kind.is_shared();
                self.inner.took(request.key, request.token, shared);
            }
            Ok(attempt)
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        self.inner.let_go(key, token);
        Box::pin(
            self.inner
                .faulty(key, move || self.inner.locks.release(key, token)),
        )
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(
            self.inner
                .faulty(key, move || self.inner.locks.extend(key, token, ttl)),
        )
    }

    fn watch<'a>(&'a self, key: &'a str, waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        Box::pin(
            self.inner
                .faulty(key, move || self.inner.locks.watch(key, waiter)),
        )
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

    /// Each holder's lease, which [`end_lease`](TestStore::end_lease) ends. The leases are
    /// TTLs (the store does not declare session leases): this only tells a holder at once.
    fn sessions(&self) -> Option<&dyn Sessions> {
        Some(self)
    }
}

impl Sessions for TestStore {
    fn session(&self, key: &str, token: &Token) -> Option<SessionWatch> {
        let leases = self.inner.leases();
        let lease = leases.get(key)?.iter().find(|l| l.token == *token)?;
        Some(lease.state.subscribe())
    }

    /// Nothing to do: the key expires with its TTL, which includes the lock delay.
    fn abandon<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        self.inner.let_go(key, token);
        Box::pin(std::future::ready(Ok(true)))
    }
}

/// The optional parts, each through the faults.
impl SharedLocks for TestStore {
    fn release_shared<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        self.inner.let_go(key, token);
        let locks = &self.inner.locks;
        Box::pin(
            self.inner
                .faulty(key, move || locks.release_shared(key, token)),
        )
    }

    fn extend_shared<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let locks = &self.inner.locks;
        Box::pin(
            self.inner
                .faulty(key, move || locks.extend_shared(key, token, ttl)),
        )
    }

    fn withdraw<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, ()> {
        let locks = &self.inner.locks;
        Box::pin(self.inner.faulty(key, move || locks.withdraw(key, token)))
    }
}

impl SeveralKeys for TestStore {
    fn try_acquire_all<'a>(
        &'a self,
        keys: &'a [Together<'a>],
        token: &'a Token,
        ttl: Duration,
        holder: &'a str,
    ) -> TogetherFuture<'a> {
        let locks = &self.inner.locks;
        Some(Box::pin(async move {
            let first = keys.first().map_or("", |k| k.key);
            if let Some(left) = keys.iter().find_map(|k| self.inner.recovering(k.key)) {
                return Ok(Err(Attempt::Recovering { left }));
            }
            let call = move || match locks.try_acquire_all(keys, token, ttl, holder) {
                Some(call) => call,
                None => crate::store::unsupported(),
            };
            let taken = self.inner.faulty(first, call).await?;
            if taken.is_ok() {
                for key in keys {
                    self.inner.took(key.key, token, false);
                }
            }
            Ok(taken)
        }))
    }

    fn release_all<'a>(
        &'a self,
        keys: &'a [&'a str],
        token: &'a Token,
    ) -> Option<StoreFuture<'a, Vec<bool>>> {
        for key in keys {
            self.inner.let_go(key, token);
        }
        let locks = &self.inner.locks;
        let call = move || match locks.release_all(keys, token) {
            Some(call) => call,
            None => crate::store::unsupported(),
        };
        let first = keys.first().copied().unwrap_or_default();
        Some(Box::pin(self.inner.faulty(first, call)))
    }
}

impl Operators for TestStore {
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        let locks = &self.inner.locks;
        Box::pin(self.inner.faulty(key, move || locks.inspect(key)))
    }

    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        let locks = &self.inner.locks;
        Box::pin(self.inner.faulty(pattern, move || locks.list(pattern)))
    }

    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        let locks = &self.inner.locks;
        Box::pin(self.inner.faulty(key, move || locks.force_release(key)))
    }

    fn diagnose<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Finding>> {
        let locks = &self.inner.locks;
        Box::pin(self.inner.faulty(key, move || locks.diagnose(key)))
    }
}
