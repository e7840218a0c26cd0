//! Waking a waiter when its turn may have come, by watching only what stands before it (as
//! Curator's recipes do), so a release wakes one waiter, not all of them:
//! - an exclusive contender, the node just before its own, and once first the semaphore's
//!   `leases/` if holders are left there;
//! - a reader, the last exclusive node before its own;
//! - a semaphore's contender, the node just before its own in `locks/`, and once first the
//!   children of `leases/`.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use zookeeper_client as zk;

use super::{
    kind_of,
    path::{node_prefix, parse, Node, LEASES, LOCKS},
    sorted, Contender,
};
use crate::store::LockKind;

/// How long a watch that failed waits before it looks again.
const RETRY: Duration = Duration::from_millis(50);

/// What a waiter waits for next.
enum Next {
    /// Its turn may have come: the try that follows looks.
    Due,
    /// The node at this path to go.
    Gone(String),
    /// The children of this directory to change.
    Changed(String),
}

/// Notifies `notify` each time `contender`'s turn may have come, until dropped.
pub(super) async fn when_due(contender: Contender, notify: Arc<Notify>) {
    let client = &contender.session.client;
    loop {
        let next = match next(client, &contender).await {
            Ok(next) => next,
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        match next {
            Next::Due => {
                notify.notify_waiters();
                // A semaphore's first contender may find the permits all taken still,
                // once its lease is made: then it waits on `leases/` (the next round).
                match contender.kind {
                    LockKind::Permit { .. } => tokio::time::sleep(RETRY).await,
                    _ => return,
                }
            }
            Next::Gone(path) => match client.check_and_watch_stat(&path).await {
                Ok((None, _)) => {}
                Ok((Some(_), watcher)) => {
                    watcher.changed().await;
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            },
            Next::Changed(dir) => match client.list_and_watch_children(&dir).await {
                Ok((_, watcher)) => {
                    watcher.changed().await;
                    notify.notify_waiters();
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            },
        }
    }
}

/// What `contender` waits for now.
async fn next(client: &zk::Client, contender: &Contender) -> Result<Next, zk::Error> {
    let dir = &contender.dir;
    let leases = format!("{dir}/{LEASES}");
    if let LockKind::Permit { permits } = contender.kind {
        let locks = format!("{dir}/{LOCKS}");
        let (queue, children, held) = tokio::join!(
            client.list_children(&locks),
            client.list_children(dir),
            client.list_children(&leases)
        );
        let exclusive = listed(children)?
            .into_iter()
            .find(|c| kind_of(c) == Some(Node::Exclusive));
        if let Some(exclusive) = exclusive {
            // An exclusive lock holds or waits: it goes first.
            return Ok(Next::Gone(format!("{dir}/{exclusive}")));
        }
        let queue = sorted(listed(queue)?);
        let ours = node_prefix(&contender.token, "");
        match queue.iter().position(|c| c.starts_with(&ours)) {
            Some(at) if at > 0 => return Ok(Next::Gone(format!("{locks}/{}", queue[at - 1]))),
            _ => {}
        }
        // First in the queue (or past it): due unless our lease waits for the others.
        let held = sorted(listed(held)?);
        let leased = held.iter().any(|c| c.starts_with(&ours));
        return Ok(match leased && held.len() > permits as usize {
            true => Next::Changed(leases),
            false => Next::Due,
        });
    }
    let children = listed(client.list_children(dir).await)?;
    let has_leases = children.iter().any(|c| c == LEASES);
    let queue = sorted(children);
    let Some(at) = queue.iter().position(|c| c == contender.name()) else {
        // Our node is gone: the try that follows finds out.
        return Ok(Next::Due);
    };
    if contender.kind == LockKind::Read {
        let writer = queue[..at]
            .iter()
            .rev()
            .find(|c| kind_of(c) == Some(Node::Exclusive));
        return Ok(match writer {
            Some(writer) => Next::Gone(format!("{dir}/{writer}")),
            None => Next::Due,
        });
    }
    if at > 0 {
        return Ok(Next::Gone(format!("{dir}/{}", queue[at - 1])));
    }
    if has_leases {
        let held = listed(client.list_children(&leases).await)?;
        if held.iter().any(|c| parse(c).is_some()) {
            return Ok(Next::Changed(leases));
        }
    }
    Ok(Next::Due)
}

/// A directory's children, none when it is gone.
fn listed(children: Result<Vec<String>, zk::Error>) -> Result<Vec<String>, zk::Error> {
    match children {
        Err(zk::Error::NoNode) => Ok(Vec::new()),
        other => other,
    }
}

/// Stops a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
