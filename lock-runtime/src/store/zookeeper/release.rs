//! Letting go: deleting exactly a contender's own nodes.

use zookeeper_client as zk;

use super::{
    delay::DELAY,
    failed,
    path::{lock_dir, node_prefix, LEASES, LOCKS},
    Contender, ZooKeeperStore,
};
use crate::{
    store::{LockKind, StoreError},
    token::Token,
};

impl ZooKeeperStore {
    /// `token`'s nodes for `key`, found by name, when this process keeps no record of them
    /// (a release retried in the background): in the current session only, as one that
    /// ended took its nodes along.
    pub(super) async fn look_up(
        &self,
        key: &str,
        token: &Token,
    ) -> Result<Option<Contender>, StoreError> {
        let session = self.session.lock().await.clone();
        if session.ended() {
            return Ok(None);
        }
        let client = &session.client;
        let dir = lock_dir(&self.settings.root, key);
        let (leases, locks) = (format!("{dir}/{LEASES}"), format!("{dir}/{LOCKS}"));
        // `_c_{uuid}`: any of our nodes.
        let ours = node_prefix(token, "");
        let listed = tokio::join!(
            client.list_children(&dir),
            client.list_children(&leases),
            client.list_children(&locks)
        );
        let mut found = Vec::new();
        for (parent, children) in [(&dir, listed.0), (&leases, listed.1), (&locks, listed.2)] {
            let children = match children {
                Err(zk::Error::NoNode) => continue,
                other => other.map_err(failed)?,
            };
            if let Some(node) = children.iter().find(|c| c.starts_with(&ours)) {
                found.push(format!("{parent}/{node}"));
            }
        }
        let mut found = found.into_iter();
        let Some(path) = found.next() else {
            return Ok(None);
        };
        Ok(Some(Contender {
            token: *token,
            dir,
            path,
            czxid: 0,
            session,
            kind: LockKind::Exclusive,
            queued: found.next(),
            marker: None,
        }))
    }

    /// Deletes `token`'s nodes for `key` (from this process's record, or found by name);
    /// with `keep_delay`, its lock-delay node stays (`Sessions::abandon`). Whether its node
    /// was still there.
    pub(super) async fn let_go(
        &self,
        key: &str,
        token: &Token,
        keep_delay: bool,
    ) -> Result<bool, StoreError> {
        let contender = match self.forget(key, token) {
            Some(contender) => contender,
            None => match self.look_up(key, token).await? {
                Some(contender) => contender,
                None => return Ok(false),
            },
        };
        let marker = contender.marker.filter(|_| !keep_delay);
        self.delete(
            key,
            Contender {
                marker,
                ..contender
            },
        )
        .await
    }

    /// Deletes `contender`'s nodes (its `key`), and in the same round trip a semaphore's
    /// directories when that left them empty, or the directories of locks idle here for a
    /// while (`tidy.rs`; the server answers in order, and refuses a directory that still
    /// has children; a contender that makes its node after finds none and makes the
    /// directory again): names used once do not pile up faster than the server removes
    /// empty containers. Whether its node was still there.
    pub(super) async fn delete(&self, key: &str, contender: Contender) -> Result<bool, StoreError> {
        if contender.session.ended() {
            // The nodes went with their session.
            return Ok(false);
        }
        let client = &contender.session.client;
        let queued = contender.queued.as_ref().filter(|q| **q != contender.path);
        let dir = &contender.dir;
        let (leases, locks) = (format!("{dir}/{LEASES}"), format!("{dir}/{LOCKS}"));
        let semaphore = matches!(contender.kind, LockKind::Permit { .. }) || queued.is_some();
        // Version 0: nobody wrote to our node since we made it. With it, in one
        // transaction, the lock-delay node it wrote (`delay.rs`): a clean release leaves no
        // delay behind, and one whose node was gone already leaves the delay standing.
        let deleted = async {
            let Some(version) = contender.marker else {
                return client.delete(&contender.path, Some(0)).await;
            };
            let mut both = client.new_multi_writer();
            both.add_delete(&contender.path, Some(0))?;
            both.add_delete(&format!("{dir}/{DELAY}"), Some(version))?;
            match both.commit().await {
                Ok(_) => Ok(()),
                // Its delay node was changed by hand: our own node goes alone.
                Err(zk::MultiWriteError::OperationFailed { index: 1, .. }) => {
                    client.delete(&contender.path, Some(0)).await
                }
                Err(e) => Err(zk::Error::from(e)),
            }
        };
        let unqueued = async {
            match queued {
                Some(queued) => client.delete(queued, None).await,
                None => Ok(()),
            }
        };
        // A semaphore's directories go now; a lock's stays while it may be taken again
        // here, and older idle ones go behind this delete (`tidy.rs`).
        let due = match semaphore {
            true => Vec::new(),
            false => {
                self.tidy.released(dir);
                self.tidy.due()
            }
        };
        let removing: Vec<_> = due.iter().map(|d| client.delete(d, None)).collect();
        let tidied = async {
            if semaphore {
                let _ = tokio::join!(
                    client.delete(&leases, None),
                    client.delete(&locks, None),
                    client.delete(dir, None)
                );
            }
            for (dir, removed) in due.into_iter().zip(removing) {
                if removed.await.is_ok() {
                    self.tidy.removed(dir);
                }
            }
        };
        let (deleted, unqueued, ()) = tokio::join!(deleted, unqueued, tidied);
        let outcome = match (deleted, unqueued) {
            (Ok(()), Ok(()) | Err(zk::Error::NoNode)) => Ok(true),
            (Err(zk::Error::NoNode | zk::Error::BadVersion), Ok(()) | Err(zk::Error::NoNode)) => {
                Ok(false)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        outcome.map_err(|e| {
            // Keep the record so a retry finds it.
            self.remember(key, contender);
            failed(e)
        })
    }
}
