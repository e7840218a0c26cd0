//! Making, finding and listing contender nodes.

use zookeeper_client as zk;

use super::{
    failed,
    path::{self, lock_dir, node_prefix, parse, LEASES},
    Contender, ZooKeeperStore,
};
use crate::store::{AcquireRequest, LockKind, StoreError};

impl ZooKeeperStore {
    /// Queues `request`'s contender for an exclusive lock or a read lock, or finds it
    /// queued: the contender and the directory's children (`None` when it was queued
    /// already).
    pub(super) async fn enqueue(
        &self,
        request: &AcquireRequest<'_>,
    ) -> Result<(Contender, Option<Vec<String>>), StoreError> {
        if let Some(contender) = self.contender(request.key, request.token) {
            return Ok((contender, None));
        }
        let session = self.live_session().await?;
        let dir = lock_dir(&self.settings.root, request.key);
        let name = match request.kind {
            LockKind::Read => path::READER,
            _ if self.settings.rw_writers => path::WRITER,
            _ => path::MUTEX,
        };
        let name = node_prefix(request.token, name);
        // The data is the holder's record, as operators read it (see `holder.rs`).
        let data = request.holder.as_bytes();
        let client = &session.client;
        let missing = self.tidy.taken(&dir);
        let (path, czxid, queue) = make_node(
            client,
            &dir,
            &dir,
            &name,
            (data, &[]),
            request.reclaim,
            missing,
        )
        .await?;
        let contender = Contender {
            token: *request.token,
            dir,
            path,
            czxid,
            session: session.clone(),
            kind: request.kind,
            queued: None,
            marker: None,
        };
        self.remember(request.key, contender.clone());
        Ok((contender, queue))
    }
}

/// Creates the node `name…` (ephemeral, sequential, `data.0` in it) in `parent`, the lock
/// directory `dir` and `parent` (with `data.1` in it, if it is not `dir`) first if need
/// be, and lists `parent` in the same round trip (the list is sent right behind the
/// create, and the server answers in order); the list is `None` when the node was found
/// rather than made. When an earlier request may have made it (`unsure`: it failed
/// without an answer), the node is looked for by name first; a create that fails without
/// an answer is looked for the same way, so a contender never queues twice. When the
/// directories are likely gone (`missing`: this process's last release removed them),
/// they are made in that same round trip, ahead of the node, rather than after a create
/// that fails for want of them. Answers the node's path and creating zxid.
pub(super) async fn make_node(
    client: &zk::Client,
    dir: &str,
    parent: &str,
    name: &str,
    (data, parent_data): (&[u8], &[u8]),
    unsure: bool,
    missing: bool,
) -> Result<(String, i64, Option<Vec<String>>), StoreError> {
    let prefix = format!("{parent}/{name}");
    let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    // Containers, as Curator makes them: ZooKeeper removes them once empty.
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    let parents = [(dir, &[][..]), (parent, parent_data)];
    let parents = &parents[..if parent == dir { 1 } else { 2 }];
    let mut look_first = unsure;
    let mut make_parents = missing && !unsure;
    loop {
        if std::mem::take(&mut look_first) {
            if let Some((path, czxid)) = find(client, parent, name).await? {
                return Ok((path, czxid, None));
            }
        }
        // Sent first (the client sends a request when it is called), answered first: the
        // node's create finds them made.
        let parents_made: Vec<_> = match std::mem::take(&mut make_parents) {
            true => parents
                .iter()
                .map(|(path, data)| client.create(path, data, &container))
                .collect(),
            false => Vec::new(),
        };
        let create = client.create(&prefix, data, &ephemeral);
        let made = async {
            for made in parents_made {
                match made.await {
                    Ok(_) | Err(zk::Error::NodeExists) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        };
        let list = client.list_children(parent);
        let (made, created, listed) = tokio::join!(made, create, list);
        if let Err(e) = made {
            tracing::debug!(error = %e, "making a lock directory failed");
        }
        match created {
            Ok((stat, sequence)) => {
                return Ok((format!("{prefix}{sequence}"), stat.czxid, listed.ok()));
            }
            Err(zk::Error::NoNode) => {
                for (path, data) in parents {
                    match client.create(path, data, &container).await {
                        Ok(_) | Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(failed(e)),
                    }
                }
            }
            // The server said no: nothing was made.
            Err(
                e @ (zk::Error::NoAuth
                | zk::Error::InvalidAcl
                | zk::Error::BadArguments(_)
                | zk::Error::NoChildrenForEphemerals
                | zk::Error::SessionExpired),
            ) => return Err(failed(e)),
            // No answer: it may have been made.
            Err(e) => {
                tracing::debug!(error = %e, "creating a contender node failed; looking for it");
                look_first = true;
            }
        }
    }
}

/// The node named `name…` in `dir`, with the zxid that created it, if there is one.
pub(super) async fn find(
    client: &zk::Client,
    dir: &str,
    name: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    let children = match client.list_children(dir).await {
        Err(zk::Error::NoNode) => return Ok(None),
        other => other.map_err(failed)?,
    };
    let Some(ours) = children.iter().find(|c| c.starts_with(name)) else {
        return Ok(None);
    };
    let path = format!("{dir}/{ours}");
    Ok(client
        .check_stat(&path)
        .await
        .map_err(failed)?
        .map(|stat| (path, stat.czxid)))
}

/// The children of a lock's directory; none when it is gone (its last contender
/// removed it).
pub(super) async fn queue(client: &zk::Client, dir: &str) -> Result<Vec<String>, StoreError> {
    match client.list_children(dir).await {
        Err(zk::Error::NoNode) => Ok(Vec::new()),
        listed => listed.map_err(failed),
    }
}

/// Whether the semaphore at `dir` has holders (a lock directory whose children
/// include `leases/`): an exclusive lock waits for them to go.
pub(super) async fn has_leases(
    client: &zk::Client,
    dir: &str,
    children: &[String],
) -> Result<bool, StoreError> {
    if !children.iter().any(|c| c == LEASES) {
        return Ok(false);
    }
    match client.list_children(&format!("{dir}/{LEASES}")).await {
        Err(zk::Error::NoNode) => Ok(false),
        listed => Ok(listed.map_err(failed)?.iter().any(|c| parse(c).is_some())),
    }
}
