//! ZooKeeper (feature `zookeeper`): the lock recipe of ZooKeeper's documentation, as Apache
//! Curator's `InterProcessMutex` implements it, with Curator's node names (`path.rs`);
//! readers and semaphores as Curator's `InterProcessReadWriteLock` and
//! `InterProcessSemaphoreV2` keep them (`shared.rs`).
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
    path::{parse, Node},
    session::Session,
};
use super::{
    AcquireRequest, Attempt, Capabilities, LockKind, Operators, SessionWatch, Sessions,
    SharedLocks, Store, StoreError, StoreFuture, Watch,
};
use crate::{error::LockError, store::Operation, token::Token};

mod delay;
mod home;
mod nodes;
mod operate;
mod options;
mod path;
mod release;
mod semaphore;
mod session;
mod tidy;
mod wake;

pub use self::options::{ZooKeeperOptions, DEFAULT_ZOOKEEPER_SESSION_TIMEOUT};

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
    /// Exclusive locks take the write side of Curator's `InterProcessReadWriteLock`
    /// (`__WRIT__` nodes) rather than an `InterProcessMutex` (`lock-` nodes).
    pub(crate) rw_writers: bool,
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
    /// This process's contenders for each lock it is taking or holds (one exclusive, or
    /// any number of readers or permits).
    contenders: Mutex<HashMap<String, Vec<Contender>>>,
    /// Lock directories idle here, removed a while after (`tidy.rs`).
    tidy: tidy::Tidy,
    /// The earlier holders' lock delays contenders here wait out (`delay.rs`).
    delays: delay::Delays,
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
    /// The lock's directory and the node's full path: in the directory for an exclusive
    /// lock or a reader; a permit's lease in `leases/` once it has one, before that its
    /// place in the `locks/` queue.
    dir: String,
    path: String,
    /// The zxid that created it: the fencing token if it gets the lock.
    czxid: i64,
    session: Arc<Session>,
    kind: LockKind,
    /// A permit's place in the `locks/` queue while it has one.
    queued: Option<String>,
    /// The version of the lock-delay node this holder wrote, if it did (`delay.rs`).
    marker: Option<i32>,
}

impl Contender {
    /// The node's name (the last part of its path).
    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }

    /// Whether this is a permit that has its lease (rather than only a place in the queue).
    fn leased(&self) -> bool {
        kind_of(self.name()) == Some(Node::Lease)
    }
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
            source: match (e, settings.hosts.split_once('/')) {
                // Under a chroot that does not exist, every path is missing.
                (zk::Error::NoNode, Some((_, chroot))) => format!(
                    "the chroot `/{chroot}` does not exist on the server: create it (e.g. \
                     `create /{chroot}` in zkCli.sh) or leave it out of the address"
                )
                .into(),
                (e, _) => failed(e),
            },
        })?;
        Ok(Self {
            settings,
            home,
            session: tokio::sync::Mutex::new(Arc::new(session)),
            timeout,
            contenders: Mutex::default(),
            tidy: tidy::Tidy::default(),
            delays: delay::Delays::default(),
        })
    }

    /// Opens a session on the store's own runtime.
    async fn open(home: &Home, settings: &ZooKeeperSettings) -> Result<Session, LockError> {
        let settings = settings.clone();
        home.run(async move { Session::open(&settings).await })
            .await
    }

    fn contenders(&self) -> MutexGuard<'_, HashMap<String, Vec<Contender>>> {
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
            .get(key)?
            .iter()
            .find(|c| c.token == *token && !c.session.ended())
            .cloned()
    }

    /// Records (or updates) `contender` as `key`'s.
    fn remember(&self, key: &str, contender: Contender) {
        let mut contenders = self.contenders();
        let all = contenders.entry(key.to_owned()).or_default();
        match all.iter_mut().find(|c| c.token == contender.token) {
            Some(known) => *known = contender,
            None => all.push(contender),
        }
    }

    /// Forgets `key`'s contender with `token`, if there is one.
    fn forget(&self, key: &str, token: &Token) -> Option<Contender> {
        let mut contenders = self.contenders();
        let all = contenders.get_mut(key)?;
        let at = all.iter().position(|c| c.token == *token)?;
        let contender = all.swap_remove(at);
        if all.is_empty() {
            contenders.remove(key);
        }
        Some(contender)
    }
}

impl Store for ZooKeeperStore {
    /// `{root}/{name}`, the lock's directory (with the name escaped into one path segment
    /// where it is made); the key prefix is not used, the root keeps applications apart.
    fn key(&self, _prefix: &str, name: &str) -> String {
        path::lock_key(&self.settings.root, name)
    }

    fn name_in<'k>(&self, _prefix: &str, key: &'k str) -> &'k str {
        path::name_in(&self.settings.root, key)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new("zookeeper")
            .readers()
            .permits()
            .fencing()
            .queues_contenders()
            .notifies_waiters()
            .operators()
            .session_leases()
            .min_ttl(
                self.timeout,
                "that is the session timeout: a holder that dies keeps its lock until its \
                 session expires, so the TTL must be at least the session timeout (set a \
                 shorter one with `?session_timeout=4s` on the `zookeeper://` URL or with \
                 `BackendBuilder::zookeeper_session_timeout`; the server grants one between \
                 its `minSessionTimeout`, 4 s by default, and `maxSessionTimeout`)",
            )
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        Box::pin(async move {
            if let LockKind::Permit { permits } = request.kind {
                return self.try_permit(&request, permits).await;
            }
            let (mut contender, children) = self.enqueue(&request).await?;
            let client = &contender.session.client;
            let children = match children {
                Some(children) => children,
                None => nodes::queue(client, &contender.dir).await?,
            };
            let queue = sorted(children.clone());
            let Some(at) = queue.iter().position(|c| c == contender.name()) else {
                // Our node is gone (deleted by hand, or its session ended just now).
                self.forget(request.key, request.token);
                return Err(format!("the contender node {} vanished", contender.path).into());
            };
            let fence = request
                .fencing
                .then(|| u64::try_from(contender.czxid).ok())
                .flatten();
            let ahead = &queue[..at];
            let granted = match request.kind {
                // A reader holds once no exclusive contender is before it.
                LockKind::Read => {
                    if nodes::has_leases(client, &contender.dir, &children).await? {
                        self.release(request.key, request.token).await?;
                        return Err(self.semaphore_here(request.key));
                    }
                    !ahead.iter().any(|c| kind_of(c) == Some(Node::Exclusive))
                }
                // An exclusive contender holds once first, and no semaphore's holder is left.
                _ => {
                    ahead.is_empty()
                        && !nodes::has_leases(client, &contender.dir, &children).await?
                }
            };
            if !granted {
                return Ok(Attempt::Busy);
            }
            // An earlier holder's lock delay keeps readers out too (they write none).
            let delay = request.lock_delay;
            let waited = self.wait_out_delay(request.key, &mut contender, &children, delay);
            if let Some(left) = waited.await? {
                return Ok(Attempt::BusyFor { left });
            }
            if contender.marker.is_some() {
                self.remember(request.key, contender);
            }
            Ok(Attempt::Acquired { fence })
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(self.let_go(key, token, false))
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

    fn watch<'a>(&'a self, key: &'a str, waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        Box::pin(async move {
            // Each waiter watches what stands between it and its turn (an observer, with
            // no node of its own, re-checks on a timer).
            let Some(contender) = waiter.and_then(|token| self.contender(key, token)) else {
                return Ok(Watch::none());
            };
            let notify = Arc::new(Notify::new());
            let task = tokio::spawn(wake::when_due(contender, notify.clone()));
            Ok(Watch::new(notify, wake::AbortOnDrop(task.abort_handle())))
        })
    }

    fn shared(&self) -> Option<&dyn SharedLocks> {
        Some(self)
    }

    fn operators(&self) -> Option<&dyn Operators> {
        Some(self)
    }

    fn sessions(&self) -> Option<&dyn Sessions> {
        Some(self)
    }
}

impl SharedLocks for ZooKeeperStore {
    fn release_shared<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        self.release(key, token)
    }

    fn extend_shared<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.extend(key, token, ttl)
    }

    /// Nothing to take back: a waiting writer keeps later readers out by its place in the
    /// queue, which it leaves with its node.
    fn withdraw<'a>(&'a self, _key: &'a str, _token: &'a Token) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Sessions for ZooKeeperStore {
    fn session(&self, key: &str, token: &Token) -> Option<SessionWatch> {
        self.contender(key, token).map(|c| c.session.watch())
    }

    /// Deletes the holder's node alone: its lock-delay node stays, so the next contender
    /// waits out the delay as after the end of a session.
    fn abandon<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(self.let_go(key, token, true))
    }
}

/// What the node `name` stands for, if it is a contender's.
fn kind_of(name: &str) -> Option<Node> {
    parse(name).map(|(node, _)| node)
}

/// The contenders among a lock directory's (or a semaphore's `leases/`) `children`, by
/// sequence.
fn sorted(mut children: Vec<String>) -> Vec<String> {
    children.retain(|c| parse(c).is_some());
    children.sort_by_key(|c| parse(c).map(|(_, sequence)| sequence));
    children
}
