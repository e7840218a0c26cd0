//! What operators do with ZooKeeper locks: read the holder (the first contender node, its
//! data the holder's record), list the lock directories, and delete a stuck holder's node.
//! Readers and a semaphore's holders are reported, not shown or deleted, as on every store.

use zookeeper_client as zk;

use super::{
    failed, kind_of,
    path::{lock_dir, lock_key, lock_name, token_of, Node, LEASES},
    sorted, ZooKeeperStore,
};
use crate::store::{glob_matches, shared_held, Operators, StoreError, StoreFuture, StoredLock};

impl ZooKeeperStore {
    /// The holder of the lock at `key`, its node deleted first if `delete`.
    pub(super) async fn holder_of(
        &self,
        key: &str,
        delete: bool,
    ) -> Result<Option<StoredLock>, StoreError> {
        let session = self.live_session().await?;
        let client = &session.client;
        let dir = lock_dir(&self.settings.root, key);
        loop {
            let children = match client.list_children(&dir).await {
                Err(zk::Error::NoNode) => return Ok(None),
                other => other.map_err(failed)?,
            };
            if children.iter().any(|c| c == LEASES) {
                let leases = format!("{dir}/{LEASES}");
                let (held, count) =
                    tokio::join!(client.list_children(&leases), client.get_data(&leases));
                let held = match held {
                    Err(zk::Error::NoNode) => Vec::new(),
                    other => sorted(other.map_err(failed)?),
                };
                if !held.is_empty() {
                    let permits = count
                        .ok()
                        .and_then(|(data, _)| std::str::from_utf8(&data).ok()?.parse().ok())
                        .unwrap_or(0);
                    return Err(shared_held(key, held.len(), permits.max(1)));
                }
            }
            let queue = sorted(children);
            let readers = queue
                .iter()
                .take_while(|c| kind_of(c) == Some(Node::Reader))
                .count();
            if readers > 0 {
                return Err(shared_held(key, readers, 0));
            }
            let Some(first) = queue.first() else {
                return Ok(None);
            };
            let path = format!("{dir}/{first}");
            let (data, stat) = match client.get_data(&path).await {
                // Released in between: look again.
                Err(zk::Error::NoNode) => continue,
                other => other.map_err(failed)?,
            };
            if delete {
                match client.delete(&path, None).await {
                    Err(zk::Error::NoNode) => continue,
                    other => other.map_err(failed)?,
                }
            }
            let mut value = token_of(first);
            // Our record starts with `;`; another client's data (Curator keeps the
            // client's address there) is not a record and is left out.
            if data.first() == Some(&b';') {
                value.push_str(&String::from_utf8_lossy(&data));
            }
            let mut lock = StoredLock::new(key, value);
            // The holder's fencing token: the zxid that created its node.
            lock.fence = u64::try_from(stat.czxid).ok();
            return Ok(Some(lock));
        }
    }

    /// The held locks whose key (`{root}/{name}`) matches `pattern`.
    pub(super) async fn held(&self, pattern: &str) -> Result<Vec<StoredLock>, StoreError> {
        let session = self.live_session().await?;
        let dirs = match session.client.list_children(&self.settings.root).await {
            Err(zk::Error::NoNode) => Vec::new(),
            other => other.map_err(failed)?,
        };
        let mut found = Vec::new();
        for dir in dirs {
            let key = lock_key(&self.settings.root, &lock_name(&dir));
            if !glob_matches(pattern, &key) {
                continue;
            }
            match self.holder_of(&key, false).await {
                Ok(Some(lock)) => found.push(lock),
                // Readers or a semaphore's holders: not an exclusive lock to list.
                Ok(None) | Err(StoreError::KindMismatch(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }
}

impl Operators for ZooKeeperStore {
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(self.holder_of(key, false))
    }

    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        Box::pin(self.held(pattern))
    }

    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(self.holder_of(key, true))
    }
}
