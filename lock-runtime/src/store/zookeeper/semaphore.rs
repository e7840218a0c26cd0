//! Semaphores as Curator's `InterProcessSemaphoreV2` keeps them: each holder has an
//! ephemeral lease node in the lock's `leases/`, and a contender about to take one first
//! queues with an `InterProcessMutex` in `locks/`. The first of that queue makes its lease
//! and holds once at most `permits` leases exist; it leaves the queue then, and the next
//! one takes its turn. Only the first of the queue ever waits with a lease made, so two
//! contenders never wait on each other's leases, and contenders are served in order.
//!
//! Curator keeps no permit count in ZooKeeper; this crate writes it into `leases/` when it
//! makes it, and refuses a request that names another count while that node lives.

use super::{
    kind_of, nodes,
    path::{lock_dir, node_prefix, Node, LEASE, LEASES, LOCKS, MUTEX},
    sorted, Contender, ZooKeeperStore,
};
use crate::store::{mismatch, AcquireRequest, Attempt, Store, StoreError};

impl ZooKeeperStore {
    /// One try of `request` for one of `permits` permits.
    pub(super) async fn try_permit(
        &self,
        request: &AcquireRequest<'_>,
        permits: u32,
    ) -> Result<Attempt, StoreError> {
        let (key, token) = (request.key, request.token);
        let dir = lock_dir(&self.settings.root, key);
        let (leases_dir, locks_dir) = (format!("{dir}/{LEASES}"), format!("{dir}/{LOCKS}"));
        let (contender, leases) = match self.contender(key, token) {
            Some(contender) if contender.leased() => {
                let leases = nodes::queue(&contender.session.client, &leases_dir).await?;
                (contender, leases)
            }
            known => {
                let session = match &known {
                    Some(contender) => contender.session.clone(),
                    None => self.live_session().await?,
                };
                let client = &session.client;
                // Queue in `locks/` (or find our place), and see what else holds the key.
                let (place, children) = match &known {
                    Some(contender) => {
                        let (locks, children) = tokio::join!(
                            nodes::queue(client, &locks_dir),
                            nodes::queue(client, &dir)
                        );
                        (
                            (contender.path.clone(), contender.czxid, Some(locks?)),
                            children,
                        )
                    }
                    None => {
                        let name = node_prefix(token, MUTEX);
                        let (made, children) = tokio::join!(
                            nodes::make_node(
                                client,
                                &dir,
                                &locks_dir,
                                &name,
                                (request.holder.as_bytes(), &[]),
                                request.reclaim,
                                false
                            ),
                            nodes::queue(client, &dir)
                        );
                        (made?, children)
                    }
                };
                let (path, czxid, locks) = place;
                let mut contender = Contender {
                    token: *token,
                    dir: dir.clone(),
                    queued: Some(path.clone()),
                    marker: None,
                    path,
                    czxid,
                    session: session.clone(),
                    kind: request.kind,
                };
                self.remember(key, contender.clone());
                let children = children?;
                if children.iter().any(|c| kind_of(c) == Some(Node::Reader)) {
                    self.release(key, token).await?;
                    return Err(mismatch(key, 0, permits));
                }
                if children.iter().any(|c| kind_of(c) == Some(Node::Exclusive)) {
                    // An exclusive lock holds or waits: it goes first.
                    return Ok(Attempt::Busy);
                }
                let locks = match locks {
                    Some(locks) => locks,
                    None => nodes::queue(client, &locks_dir).await?,
                };
                let locks = sorted(locks);
                match locks.iter().position(|c| c == contender.name()) {
                    Some(0) => {}
                    Some(_) => return Ok(Attempt::Busy),
                    None => {
                        self.forget(key, token);
                        return Err(vanished(&contender.path));
                    }
                }
                // First in the queue: take a lease, checking the count the semaphore has.
                let name = node_prefix(token, LEASE);
                let count = permits.to_string();
                let (made, counted) = tokio::join!(
                    nodes::make_node(
                        client,
                        &dir,
                        &leases_dir,
                        &name,
                        (request.holder.as_bytes(), count.as_bytes()),
                        request.reclaim,
                        false
                    ),
                    client.get_data(&leases_dir)
                );
                let (path, czxid, leases) = made?;
                contender.path = path;
                contender.czxid = czxid;
                self.remember(key, contender.clone());
                let held = counted
                    .ok()
                    .and_then(|(data, _)| std::str::from_utf8(&data).ok()?.parse::<u32>().ok());
                if let Some(held) = held.filter(|held| *held != permits) {
                    self.release(key, token).await?;
                    return Err(mismatch(key, held, permits));
                }
                let leases = match leases {
                    Some(leases) => leases,
                    None => nodes::queue(client, &leases_dir).await?,
                };
                (contender, leases)
            }
        };
        let leases = sorted(leases);
        if !leases.iter().any(|c| c == contender.name()) {
            self.forget(key, token);
            return Err(vanished(&contender.path));
        }
        if leases.len() > permits as usize {
            return Ok(Attempt::Busy);
        }
        // Ours: leave the queue, so the next contender takes its turn, before answering:
        // another client asking after this acquire returned must find the queue free (a
        // delete not yet done let a second permit, free, answer Busy under load). The place
        // stays on record if the delete fails, and the release deletes it then.
        if let Some(queued) = &contender.queued {
            match contender.session.client.delete(queued, None).await {
                Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => tracing::debug!(error = %e, "leaving the semaphore's queue failed"),
            }
        }
        let fence = request
            .fencing
            .then(|| u64::try_from(contender.czxid).ok())
            .flatten();
        Ok(Attempt::Acquired { fence })
    }

    /// The error a reader gets on a semaphore's key.
    pub(super) fn semaphore_here(&self, key: &str) -> StoreError {
        StoreError::KindMismatch(format!("`{key}` is a semaphore; it cannot be read-locked"))
    }
}

fn vanished(path: &str) -> StoreError {
    format!("the contender node {path} vanished").into()
}
