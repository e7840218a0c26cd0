//! What operators do with ZooKeeper locks: read the holder (the first contender node, its
//! data the holder's record), list the lock directories, and delete a stuck holder's node.
//! Readers and a semaphore's holders are shown, each with its record, but not deleted, as
//! on every store.

use zookeeper_client as zk;

use super::{
    delay::DELAY,
    failed, kind_of,
    path::{lock_dir, lock_key, lock_name, token_of, Node, LEASES},
    sorted, ZooKeeperStore,
};
use crate::store::{
    glob_matches, refuse_shared, Finding, LockKind, Operators, StoreError, StoreFuture, StoredLock,
    StoredShare,
};

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
                    let permits: u32 = count
                        .ok()
                        .and_then(|(data, _)| std::str::from_utf8(&data).ok()?.parse().ok())
                        .unwrap_or(0)
                        .max(1);
                    // Leases past the count wait for one of the first to go.
                    let holders = &held[..held.len().min(permits as usize)];
                    let kind = LockKind::Permit { permits };
                    return self.sharers(key, &leases, holders, kind, delete).await;
                }
            }
            let queue = sorted(children);
            let readers: Vec<String> = queue
                .iter()
                .take_while(|c| kind_of(c) == Some(Node::Reader))
                .cloned()
                .collect();
            if !readers.is_empty() {
                return self
                    .sharers(key, &dir, &readers, LockKind::Read, delete)
                    .await;
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
                // An operator's release frees the lock at once, on every store: no lock
                // delay is left behind (`delay.rs`).
                match client.delete(&format!("{dir}/{DELAY}"), None).await {
                    Ok(()) | Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(failed(e)),
                }
            }
            let mut lock = StoredLock::new(key, value_of(first, &data));
            // The holder's fencing token: the zxid that created its node.
            lock.fence = u64::try_from(stat.czxid).ok();
            return Ok(Some(lock));
        }
    }

    /// The shared holders of `key`: the nodes `holders` in `dir`, read one by one (one
    /// released in between is left out). A release by force leaves them as they are.
    async fn sharers(
        &self,
        key: &str,
        dir: &str,
        holders: &[String],
        kind: LockKind,
        delete: bool,
    ) -> Result<Option<StoredLock>, StoreError> {
        let session = self.live_session().await?;
        let mut sharers = Vec::with_capacity(holders.len());
        for node in holders {
            match session.client.get_data(&format!("{dir}/{node}")).await {
                Err(zk::Error::NoNode) => {}
                Ok((data, _)) => sharers.push(StoredShare::new(value_of(node, &data), None)),
                Err(e) => return Err(failed(e)),
            }
        }
        if sharers.is_empty() {
            return Ok(None);
        }
        let lock = StoredLock::shared(key, kind, sharers);
        if delete {
            return refuse_shared(Some(lock));
        }
        Ok(Some(lock))
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
            if let Some(lock) = self.holder_of(&key, false).await? {
                found.push(lock);
            }
        }
        Ok(found)
    }
}

/// The token of the node `node` followed by its data if that is our record: it starts with
/// `;`, where another client's data (Curator keeps the client's address there) is not a
/// record and is left out.
fn value_of(node: &str, data: &[u8]) -> String {
    let mut value = token_of(node);
    if data.first() == Some(&b';') {
        value.push_str(&String::from_utf8_lossy(data));
    }
    value
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

    /// The session timeout the server granted against the one asked for, and the root.
    fn diagnose<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let asked = self.settings.session_timeout;
            let granted = self.timeout;
            let mut found = vec![if granted == asked {
                Finding::pass(
                    "session",
                    format!(
                        "session timeout {} ms as asked: leases are sessions, so no TTL is \
                         shorter than this",
                        granted.as_millis()
                    ),
                )
            } else {
                Finding::warn(
                    "session",
                    format!(
                        "asked for a {} ms session timeout, the server granted {} ms (it \
                         keeps timeouts within minSessionTimeout and maxSessionTimeout, by \
                         default 2 and 20 tickTimes): TTLs shorter than the granted timeout \
                         are refused, and a holder cut off learns it that late",
                        asked.as_millis(),
                        granted.as_millis()
                    ),
                )
                .fix("ask within the server's bounds (?session_timeout= in the URL), or change minSessionTimeout / maxSessionTimeout in zoo.cfg")
            }];
            let session = self.live_session().await?;
            let root = &self.settings.root;
            found.push(match session.client.list_children(root).await {
                Ok(children) => Finding::pass(
                    "root",
                    format!("{root} exists, with {} lock directories", children.len()),
                ),
                Err(zk::Error::NoNode) => Finding::pass(
                    "root",
                    format!("{root} does not exist yet; the first lock makes it"),
                ),
                Err(zk::Error::NoAuth) => Finding::fail(
                    "root",
                    format!("{root} may not be read with this session's credentials"),
                )
                .fix("grant the library's identity read, create and delete on the root (setAcl)"),
                Err(e) => return Err(failed(e)),
            });
            found.push(Finding::pass(
                "clock",
                "leases are sessions, timed by the server: no clock is compared",
            ));
            Ok(found)
        })
    }
}
