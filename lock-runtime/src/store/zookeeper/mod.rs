//! ZooKeeper (feature `zookeeper`): the lock recipe of ZooKeeper's documentation, as Apache
//! Curator's `InterProcessMutex` implements it, with Curator's node names (`path.rs`).
//!
//! - **Acquire** creates the contender's ephemeral sequential node in the lock's directory
//!   (once per acquire: a waiter keeps its place) and lists the directory, the list sent
//!   right behind the create: the lowest sequence holds the lock. One round trip
//!   uncontended; a waiter woken by its watch lists the queue again before it takes the
//!   lock (as Curator does), so a node deleted meanwhile (by an operator, or with a session
//!   the client has not yet heard has expired) is never granted.
//! - **Waiting** is a queue: each waiter watches only the node just before its own and is
//!   woken when it becomes first, so waiters get the lock first come first served, across
//!   processes. A waiter that gives up (or is cancelled) deletes its node.
//! - **The lease is the session.** An ephemeral node lives as long as the session that made
//!   it: a holder whose process dies loses the lock when ZooKeeper expires its session. The
//!   runtime follows the session (`session.rs`): when it ends, every lock it held is lost at
//!   once; while the connection is down, a lock counts as held only for a third of the
//!   session timeout after the loss (the client notices a silent connection within three
//!   fifths of the timeout, Java's within two thirds, and the server ends the session a
//!   whole timeout after it last heard from the client).
//! - **Fencing tokens** are the zxid that created the holder's node: ZooKeeper's own total
//!   order of writes, increasing across the ensemble's restarts and leader changes.
//! - **Release** deletes exactly our node (version-checked), and the lock's directory with
//!   it when no other contender is left (in the same round trip). Lock directories are
//!   container nodes too, which ZooKeeper removes once empty, at its own pace.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::sync::Notify;
use zookeeper_client as zk;

use self::{
    home::Home,
    path::{lock_dir, node_prefix, sequence},
    session::Session,
};
use super::{
    AcquireRequest, Attempt, Capabilities, SessionWatch, Store, StoreError, StoreFuture,
    StoredLock, Watch,
};
use crate::{error::LockError, store::Operation, token::Token};

mod home;
mod operate;
mod path;
mod session;

/// What a ZooKeeper store is set up with (see [`BackendBuilder`](crate::BackendBuilder)).
#[derive(Debug, Clone)]
pub(crate) struct ZooKeeperSettings {
    /// `host:port,host:port[/chroot]`.
    pub(crate) hosts: String,
    /// The directory under which every lock has its own.
    pub(crate) root: String,
    pub(crate) session_timeout: Duration,
    /// The time bound on connecting.
    pub(crate) bound: Duration,
}

/// Locks kept in ZooKeeper; see the module documentation.
pub(crate) struct ZooKeeperStore {
    settings: ZooKeeperSettings,
    /// Where every session's client runs (see `home.rs`).
    home: Home,
    /// The session locks are taken in now; replaced when it ends.
    session: tokio::sync::Mutex<Arc<Session>>,
    /// The session timeout the server granted.
    timeout: Duration,
    /// This process's contender for each lock it is taking or holds.
    contenders: Mutex<HashMap<String, Contender>>,
}

impl std::fmt::Debug for ZooKeeperStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZooKeeperStore")
            .field("root", &self.settings.root)
            .field("session_timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A contender's node.
#[derive(Clone)]
struct Contender {
    token: Token,
    /// The lock's directory and the node's full path.
    dir: String,
    path: String,
    /// The zxid that created it: the fencing token if it gets the lock.
    czxid: i64,
    session: Arc<Session>,
}

fn failed(error: zk::Error) -> StoreError {
    StoreError::from(error)
}

/// A new session that could not be opened, as the failure of the call that needed it.
fn not_reopened(error: LockError) -> StoreError {
    match error {
        LockError::Timeout { .. } => StoreError::TimedOut,
        LockError::Backend { source, .. } => source,
        other => StoreError::other(other),
    }
}

impl ZooKeeperStore {
    /// Connects (within the time bound) and makes sure the root directory exists.
    pub(crate) async fn connect(settings: ZooKeeperSettings) -> Result<Self, LockError> {
        if !settings.root.starts_with('/')
            || settings.root.len() < 2
            || settings.root.ends_with('/')
        {
            return Err(LockError::invalid(format!(
                "the ZooKeeper root `{}` must be an absolute path such as `/locks`",
                settings.root
            )));
        }
        let home = Home::start().await?;
        let session = Self::open(&home, &settings).await?;
        let timeout = session.client.session_timeout();
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        tokio::time::timeout(
            settings.bound,
            session.client.mkdir(&settings.root, &options),
        )
        .await
        .map_err(|_| LockError::Timeout {
            operation: Operation::Connect,
            after: settings.bound,
        })?
        .map_err(|e| LockError::Backend {
            operation: Operation::Connect,
            source: failed(e),
        })?;
        Ok(Self {
            settings,
            home,
            session: tokio::sync::Mutex::new(Arc::new(session)),
            timeout,
            contenders: Mutex::default(),
        })
    }

    /// Opens a session on the store's own runtime.
    async fn open(home: &Home, settings: &ZooKeeperSettings) -> Result<Session, LockError> {
        let settings = settings.clone();
        home.run(async move { Session::open(&settings).await })
            .await
    }

    fn contenders(&self) -> MutexGuard<'_, HashMap<String, Contender>> {
        // No critical section below can panic half-way.
        self.contenders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The session to take locks in: the current one, or a new one if it ended.
    async fn live_session(&self) -> Result<Arc<Session>, StoreError> {
        let mut current = self.session.lock().await;
        if current.ended() {
            tracing::warn!("the ZooKeeper session ended; starting a new one");
            *current = Arc::new(
                Self::open(&self.home, &self.settings)
                    .await
                    .map_err(not_reopened)?,
            );
        }
        Ok(current.clone())
    }

    /// This process's contender for `key` with `token`, if it has one in a session that
    /// has not ended.
    fn contender(&self, key: &str, token: &Token) -> Option<Contender> {
        self.contenders()
            .get(key)
            .filter(|c| c.token == *token && !c.session.ended())
            .cloned()
    }

    /// Creates `token`'s node for `key`, the directory first if need be, and lists the
    /// queue in the same round trip (the list is sent right behind the create, and the
    /// server answers in order); the queue is `None` when the node was found rather than
    /// made. When an earlier request may have made it (`unsure`: it failed without an
    /// answer), the node is looked for by name first; a create that fails without an answer
    /// is looked for the same way, so a contender never queues twice.
    async fn enqueue(
        &self,
        session: &Arc<Session>,
        key: &str,
        token: &Token,
        holder: &str,
        unsure: bool,
    ) -> Result<(Contender, Option<Vec<String>>), StoreError> {
        let client = &session.client;
        let dir = lock_dir(&self.settings.root, key);
        let name = node_prefix(token);
        let prefix = format!("{dir}/{name}");
        let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let mut look_first = unsure;
        let (path, czxid, queue) = loop {
            if std::mem::take(&mut look_first) {
                if let Some((path, czxid)) = Self::find(client, &dir, &name).await? {
                    break (path, czxid, None);
                }
            }
            // The data is the holder's record, as operators read it (see `holder.rs`).
            let create = client.create(&prefix, holder.as_bytes(), &ephemeral);
            let list = client.list_children(&dir);
            let (created, listed) = tokio::join!(create, list);
            match created {
                Ok((stat, sequence)) => {
                    break (format!("{prefix}{sequence}"), stat.czxid, listed.ok());
                }
                Err(zk::Error::NoNode) => {
                    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
                    match client.create(&dir, &[], &container).await {
                        Ok(_) | Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(failed(e)),
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
        };
        let contender = Contender {
            token: *token,
            dir,
            path,
            czxid,
            session: session.clone(),
        };
        self.contenders().insert(key.to_owned(), contender.clone());
        Ok((contender, queue.map(sorted)))
    }

    /// The node named `name…` in `dir`, with the zxid that created it, if there is one.
    async fn find(
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

    /// The contenders queued for a lock, by sequence; none when its directory is gone (its
    /// last contender removed it).
    async fn queue(client: &zk::Client, dir: &str) -> Result<Vec<String>, StoreError> {
        match client.list_children(dir).await {
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            listed => Ok(sorted(listed.map_err(failed)?)),
        }
    }

    /// Forgets `key`'s contender if it is `token`'s.
    fn forget(&self, key: &str, token: &Token) -> Option<Contender> {
        let mut contenders = self.contenders();
        match contenders.get(key) {
            Some(c) if c.token == *token => contenders.remove(key),
            _ => None,
        }
    }
}

impl Store for ZooKeeperStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("zookeeper")
            .fencing()
            .queues_contenders()
            .notifies_waiters()
            .operators()
            .session_leases()
            .min_ttl(
                self.timeout,
                "that is the session timeout: a holder that dies keeps its lock until its \
                 session expires, so the TTL must be at least the session timeout (see \
                 `BackendBuilder::zookeeper_session_timeout`)",
            )
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        Box::pin(async move {
            let (contender, queue) = match self.contender(request.key, request.token) {
                Some(contender) => (contender, None),
                None => {
                    let session = self.live_session().await?;
                    let (key, token) = (request.key, request.token);
                    self.enqueue(&session, key, token, request.holder, request.reclaim)
                        .await?
                }
            };
            let fence = request.fence_key.and(u64::try_from(contender.czxid).ok());
            let queue = match queue {
                Some(queue) => queue,
                None => Self::queue(&contender.session.client, &contender.dir).await?,
            };
            let ours = contender.path.rsplit('/').next().unwrap_or_default();
            match queue.iter().position(|c| c == ours) {
                Some(0) => Ok(Attempt::Acquired { fence }),
                Some(_) => Ok(Attempt::Busy),
                None => {
                    // Our node is gone (deleted by hand, or its session ended just now).
                    self.forget(request.key, request.token);
                    Err(format!("the contender node {} vanished", contender.path).into())
                }
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let contender = match self.forget(key, token) {
                Some(contender) => contender,
                None => {
                    // No record (a release retried in the background): look for the node,
                    // in the current session only: one that ended took its nodes along.
                    let session = self.session.lock().await.clone();
                    if session.ended() {
                        return Ok(false);
                    }
                    let dir = lock_dir(&self.settings.root, key);
                    let name = node_prefix(token);
                    let children = match session.client.list_children(&dir).await {
                        Err(zk::Error::NoNode) => return Ok(false),
                        other => other.map_err(failed)?,
                    };
                    let Some(ours) = children.into_iter().find(|c| c.starts_with(&name)) else {
                        return Ok(false);
                    };
                    Contender {
                        token: *token,
                        path: format!("{dir}/{ours}"),
                        dir,
                        czxid: 0,
                        session,
                    }
                }
            };
            if contender.session.ended() {
                // The node went with its session.
                return Ok(false);
            }
            // Version 0: nobody wrote to our node since we made it. The directory goes
            // too if that left it empty, in the same round trip (the server answers in
            // order, and refuses a directory that still has contenders; one that makes its
            // node after finds none and makes the directory again): names used once do not
            // pile up faster than the server removes empty containers.
            let client = &contender.session.client;
            let (deleted, _) = tokio::join!(
                client.delete(&contender.path, Some(0)),
                client.delete(&contender.dir, None)
            );
            match deleted {
                Ok(()) => Ok(true),
                Err(zk::Error::NoNode | zk::Error::BadVersion) => Ok(false),
                Err(e) => {
                    // Keep the record so a retry finds it.
                    self.contenders().insert(key.to_owned(), contender);
                    Err(failed(e))
                }
            }
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        _ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let Some(contender) = self.contender(key, token) else {
                return Ok(false);
            };
            if !contender.session.live() {
                return Err("the ZooKeeper connection is suspended".into());
            }
            // The session keeps the node; make sure nobody deleted it by hand.
            let stat = contender
                .session
                .client
                .check_stat(&contender.path)
                .await
                .map_err(failed)?;
            Ok(stat.is_some())
        })
    }

    fn watch<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Watch> {
        Box::pin(async move {
            let contender = self.contenders().get(key).cloned();
            let Some(contender) = contender else {
                return Ok(Watch::none());
            };
            let notify = Arc::new(Notify::new());
            let task = tokio::spawn(wake_when_first(contender, notify.clone()));
            Ok(Watch::new(notify, AbortOnDrop(task.abort_handle())))
        })
    }

    fn session(&self, key: &str, token: &Token) -> Option<SessionWatch> {
        self.contender(key, token).map(|c| c.session.watch())
    }

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

/// The contenders among a lock directory's `children`, by sequence.
fn sorted(mut children: Vec<String>) -> Vec<String> {
    children.retain(|c| sequence(c).is_some());
    children.sort_by_key(|c| sequence(c));
    children
}

/// Watches the node just before `contender`'s and notifies once `contender` is first.
async fn wake_when_first(contender: Contender, notify: Arc<Notify>) {
    let client = &contender.session.client;
    let ours = contender.path.rsplit('/').next().unwrap_or_default();
    loop {
        let queue = match ZooKeeperStore::queue(client, &contender.dir).await {
            Ok(queue) => queue,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let predecessor = match queue.iter().position(|c| c == ours) {
            // First now (the try that follows looks again), or our node is gone.
            Some(0) | None => {
                notify.notify_waiters();
                return;
            }
            Some(at) => format!("{}/{}", contender.dir, queue[at - 1]),
        };
        match client.check_and_watch_stat(&predecessor).await {
            Ok((None, _)) => {}
            Ok((Some(_), watcher)) => {
                watcher.changed().await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
