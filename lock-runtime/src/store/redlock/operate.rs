//! What operators do with Redlock's locks: a lock is shown, listed or released by force as
//! the majority of servers hold it.

use super::{gather::Gathering, RedlockStore};
use crate::store::{Finding, Operators, StoreError, StoreFuture, StoredLock};

impl Operators for RedlockStore {
    /// Held when a majority of servers hold it for one token; the shortest remaining lease
    /// among them.
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let answers = self
                .answers(self.nodes.each(None, |store| store.inspect(key)))
                .await?;
            Ok(self.majority(answers.into_iter().flatten().collect()))
        })
    }

    /// The locks a majority of servers hold, each as [`inspect`](Self::inspect) sees it.
    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        Box::pin(async move {
            let answers = self
                .answers(self.nodes.each(None, |store| store.list(pattern)))
                .await?;
            let mut by_key: std::collections::BTreeMap<String, Vec<StoredLock>> =
                std::collections::BTreeMap::new();
            for lock in answers.into_iter().flatten() {
                by_key.entry(lock.key.clone()).or_default().push(lock);
            }
            Ok(by_key
                .into_values()
                .filter_map(|locks| self.majority(locks))
                .collect())
        })
    }

    /// Deletes the key on every server; what a majority held.
    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let answers = self
                .answers(self.nodes.each(None, |store| store.force_release(key)))
                .await?;
            Ok(self.majority(answers.into_iter().flatten().collect()))
        })
    }

    /// Each server's checks, named after it, and whether enough of them answer for a
    /// majority.
    fn diagnose<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let checks = self.nodes.each(None, |store| store.diagnose_store(key));
            let mut found = Vec::new();
            let mut down = Vec::new();
            for (node, check) in self.nodes.nodes.iter().zip(checks) {
                // `host:port`, as the other stores' findings name servers.
                let place = node
                    .address
                    .split_once("://")
                    .map_or(&*node.address, |(_, a)| a);
                match tokio::time::timeout(self.bound.saturating_mul(10), check).await {
                    Ok(Ok(findings)) => found.extend(findings.into_iter().map(|f| f.at(place))),
                    Ok(Err(e)) => down.push(format!("{place} ({e})")),
                    Err(_) => down.push(format!("{place} (no answer)")),
                }
            }
            let (total, quorum) = (self.nodes.nodes.len(), self.nodes.quorum);
            let up = total - down.len();
            let servers = if down.is_empty() {
                Finding::pass(
                    "servers",
                    format!("all {total} servers answer (majority {quorum})"),
                )
            } else if up >= quorum {
                Finding::warn(
                    "servers",
                    format!(
                        "{up} of {total} servers answer, a majority ({quorum}) still; not: {}",
                        down.join(", ")
                    ),
                )
                .fix("bring the missing servers back: one more down and no lock is granted")
            } else {
                Finding::fail(
                    "servers",
                    format!(
                        "{up} of {total} servers answer, fewer than the majority ({quorum}): no \
                         lock is granted; not: {}",
                        down.join(", ")
                    ),
                )
                .fix("bring the servers back")
            };
            found.insert(0, servers);
            Ok(found)
        })
    }
}

impl RedlockStore {
    /// Every server's answer to one operator call; fails unless a majority answered.
    async fn answers<'a, T: Send + 'a>(
        &self,
        calls: Vec<StoreFuture<'a, T>>,
    ) -> Result<Vec<T>, StoreError> {
        let mut gathered = Gathering::start(calls);
        gathered.until(None, |_, _| false).await;
        let (mut answered, mut failed, mut first_error) = (Vec::new(), 0, None);
        for answer in std::mem::take(&mut gathered.answers) {
            match answer {
                Some(Ok(value)) => answered.push(value),
                Some(Err(error)) => {
                    failed += 1;
                    first_error.get_or_insert(error);
                }
                None => failed += 1,
            }
        }
        if answered.len() < self.nodes.quorum {
            return Err(self.nodes.no_quorum(failed, first_error));
        }
        Ok(answered)
    }

    /// The lock that a majority of `locks` (one key, one per server that holds it) agree
    /// on: the same owner token.
    fn majority(&self, locks: Vec<StoredLock>) -> Option<StoredLock> {
        let token = |lock: &StoredLock| lock.value.split(';').next().map(str::to_owned);
        let mut best: Option<StoredLock> = None;
        for lock in &locks {
            let same: Vec<&StoredLock> = locks.iter().filter(|l| token(l) == token(lock)).collect();
            if same.len() >= self.nodes.quorum {
                let shortest = same.into_iter().min_by_key(|l| l.remaining)?;
                best = Some(shortest.clone());
                break;
            }
        }
        best
    }
}
