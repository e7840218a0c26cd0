//! Redis Cluster (feature `cluster`; `rediss+cluster://` over TLS with `tls`): the same commands and scripts as one server, sent on
//! the `redis` crate's cluster connection, which routes each by its key's hash slot and
//! follows `MOVED`/`ASK` redirections while slots move. Every key of one lock shares the
//! lock name's hash tag, so each script runs on one shard. Releases publish with
//! `SPUBLISH` and waiters listen with `SSUBSCRIBE` (Redis 7's sharded pub/sub): a release
//! wakes only the shard that holds the lock, one subscription per process per lock.
//!
//! A shard that restarts or fails over holds back grants on its own slots (`shards.rs`).
//! The cluster connection is replaced when it can no longer carry requests: when the
//! runtime that drives it is gone (see `alive.rs`), or when the health check that asks
//! every primary about itself goes unanswered within the time bound (a connection gone
//! silent, as behind a network black hole). The next call then opens a new connection
//! (new connections to every node), watches the shards from there and subscribes again
//! to the channels that waiters still watch.
//! With replica acknowledgements, each grant and extension is followed by a `WAIT` sent to
//! the primary that serves the lock (a second round trip: the cluster connection cannot
//! pipeline a keyless `WAIT` behind a keyed command to the same node).

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use redis::{
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr},
    PushInfo, Value,
};
use tokio::sync::Notify;

use self::{
    channels::{deliver, Channels, Registration},
    connection::Current,
    shards::Shards,
};
use super::{
    braced_key, braced_name,
    script::{Floor, LuaScript, Scripts},
    shared, Capabilities, TlsConfig,
};

mod channels;
mod connection;
mod operators;
mod parts;
mod shards;

use crate::{
    error::LockError,
    redact,
    store::{
        redis::RedisSettings, AcquireRequest, Attempt, Operation, Operators, SeveralKeys,
        SharedLocks, Store, StoreError, StoreFuture, Watch,
    },
    token::Token,
};

/// Locks kept in a Redis Cluster; see the module documentation.
pub(crate) struct ClusterStore {
    client: ClusterClient,
    current: Arc<ArcSwap<Current>>,
    /// Serialises the replacements of a connection whose runtime is gone.
    replacing: tokio::sync::Mutex<()>,
    bound: Duration,
    health_interval: Duration,
    scripts: Scripts,
    /// The highest token this client was granted: later tokens are drawn above it.
    floor: Floor,
    channels: Arc<Channels>,
    shards: Arc<Shards>,
    replicas: Option<(u32, Duration)>,
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterStore").finish_non_exhaustive()
    }
}

impl ClusterStore {
    /// Connects to the cluster that `seeds` (`host:port` each) belong to, within the time
    /// bound; every request is bounded by it too.
    pub(crate) async fn connect(
        seeds: Vec<String>,
        password: Option<&str>,
        tls: Option<TlsConfig>,
        settings: &RedisSettings,
    ) -> Result<Self, LockError> {
        let bound = settings.bound;
        let channels = Arc::new(Channels::default());
        // Delivered on the connection's driver, with no task of ours in between.
        let watched = Arc::downgrade(&channels);
        let pushes = move |push: PushInfo| {
            deliver(&watched, &push);
            Ok::<(), std::convert::Infallible>(())
        };
        let scheme = if tls.is_some() { "rediss" } else { "redis" };
        let nodes: Vec<String> = seeds
            .iter()
            .map(|seed| match password {
                Some(password) => format!("{scheme}://:{password}@{seed}/?protocol=resp3"),
                None => format!("{scheme}://{seed}/?protocol=resp3"),
            })
            .collect();
        let builder = ClusterClientBuilder::new(nodes)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes)
            .connection_timeout(bound)
            .response_timeout(bound);
        #[cfg(feature = "tls")]
        let builder = match tls {
            Some(certificates) => builder.certs(certificates),
            None => builder,
        };
        #[cfg(not(feature = "tls"))]
        if let Some(never) = tls {
            match never {}
        }
        let client = builder.build().map_err(|e| {
            LockError::invalid(format!(
                "malformed Redis Cluster seeds: {}",
                redact::scrub(&e.to_string(), password)
            ))
        })?;
        let conn = match tokio::time::timeout(bound, client.get_async_connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(LockError::Backend {
                    operation: Operation::Connect,
                    source: redact::scrub(&e.to_string(), password).into(),
                })
            }
            Err(_) => {
                return Err(LockError::Timeout {
                    operation: Operation::Connect,
                    after: bound,
                })
            }
        };
        let shards = Arc::new(Shards::new(settings.restart_guard));
        let this = Self {
            client,
            current: Arc::new(ArcSwap::from_pointee(Current::new(conn))),
            replacing: tokio::sync::Mutex::new(()),
            bound,
            health_interval: settings.health_interval,
            shards,
            replicas: settings.replicas,
            scripts: Scripts::new(),
            floor: Floor::default(),
            channels,
        };
        this.watch_shards(this.current.load_full());
        Ok(this)
    }

    /// With replica acknowledgements: `WAIT` on the primary that serves `key`; what fell
    /// short, if the replicas that confirmed were too few.
    async fn replicated(
        &self,
        conn: &mut ClusterConnection,
        key: &str,
    ) -> Result<Option<StoreError>, StoreError> {
        let Some((wanted, timeout)) = self.replicas else {
            return Ok(None);
        };
        let route = Route::with_key(key, SlotAddr::Master);
        let reply = conn
            .route_command(
                super::wait(wanted, timeout),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
            )
            .await
            .map_err(Self::failed)?;
        let acknowledged: u32 = redis::from_redis_value(reply)?;
        Ok(
            (acknowledged < wanted).then_some(StoreError::NotAcknowledged {
                acknowledged,
                wanted,
                timeout,
            }),
        )
    }

    /// After taking `key` for `token`: fine unless too few replicas confirmed it; then the
    /// key is deleted again and the grant fails with [`StoreError::NotAcknowledged`].
    async fn confirmed(
        &self,
        conn: &mut ClusterConnection,
        key: &str,
        token: &Token,
    ) -> Result<(), StoreError> {
        let Some(short) = self.replicated(conn, key).await? else {
            return Ok(());
        };
        let call = self.scripts.release_call(key, token, true);
        let _: i64 = self
            .scripts
            .release
            .run(&call, conn)
            .await
            .map_err(Self::failed)?;
        Err(short)
    }

    /// Runs `call` of `script` on the connection: whether it answered 1 (the token held
    /// the key, and the script acted on it).
    async fn done(&self, script: &LuaScript, call: &redis::Cmd) -> Result<bool, StoreError> {
        let answer: i64 = script
            .run(call, &mut self.conn().await?)
            .await
            .map_err(Self::failed)?;
        Ok(answer == 1)
    }

    fn failed(error: redis::RedisError) -> StoreError {
        if error.is_timeout() {
            return StoreError::TimedOut;
        }
        StoreError::from(error)
    }
}

impl Store for ClusterStore {
    /// Every request carries the client's response timeout, set to the time bound. Several
    /// keys are taken in one script when they share a slot. Readers and permits run the
    /// single server's scripts on the lock's slot (not with replica acknowledgements, as on
    /// one server).
    fn capabilities(&self) -> Capabilities {
        let plain = Capabilities::new("redis-cluster")
            .fencing()
            .notifies_waiters()
            .several_keys_at_once()
            .operators()
            .bounds_own_calls();
        match self.replicas {
            None => plain.readers().permits(),
            Some(_) => plain,
        }
    }

    /// `{prefix}{{name}}`: the name is a hash tag, so a lock's keys (its fencing counter,
    /// its permits, a writer's mark) lie in one cluster slot.
    fn key(&self, prefix: &str, name: &str) -> String {
        braced_key(prefix, name)
    }

    fn name_in<'k>(&self, prefix: &str, key: &'k str) -> &'k str {
        braced_name(prefix, key)
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        self.shards.note_ttl(request.ttl);
        Box::pin(async move {
            if let Some(left) = self.shards.hold(request.key) {
                // The lock's shard restarted or failed over: a holder from before may still
                // work.
                return Ok(Attempt::Recovering { left });
            }
            let mut conn = self.conn().await?;
            if request.kind.is_shared() {
                let call = self.scripts.acquire_shared_call(&request, self.floor.get());
                let reply = self.scripts.acquire_shared.run(&call, &mut conn).await;
                let attempt = shared::shared_attempt(&request, reply.map_err(Self::failed)?)?;
                self.floor.note(&attempt);
                return Ok(attempt);
            }
            if super::plain(&request) {
                let reply: Value = super::set_nx(&request)
                    .query_async(&mut conn)
                    .await
                    .map_err(Self::failed)?;
                let taken = super::set_nx_taken(reply)?;
                if taken {
                    self.confirmed(&mut conn, request.key, request.token)
                        .await?;
                }
                return Ok(super::set_nx_attempt(taken));
            }
            let call = self.scripts.acquire_call(&request, self.floor.get());
            let reply: i64 = self
                .scripts
                .acquire
                .run(&call, &mut conn)
                .await
                .map_err(Self::failed)?;
            if reply >= 0 {
                self.confirmed(&mut conn, request.key, request.token)
                    .await?;
            }
            let attempt = super::attempt(reply, request.fencing);
            self.floor.note(&attempt);
            Ok(attempt)
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let call = self.scripts.release_call(key, token, true);
            self.done(&self.scripts.release, &call).await
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.shards.note_ttl(ttl);
        Box::pin(async move {
            let call = self.scripts.extend_call(key, token, ttl);
            let mut conn = self.conn().await?;
            let extended: i64 = self
                .scripts
                .extend
                .run(&call, &mut conn)
                .await
                .map_err(Self::failed)?;
            if extended == 1 {
                if let Some(short) = self.replicated(&mut conn, key).await? {
                    // The extension does not count: a failover now could bring back the
                    // old TTL.
                    return Err(short);
                }
            }
            Ok(extended == 1)
        })
    }

    fn watch<'a>(&'a self, key: &'a str, _waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        Box::pin(async move {
            let (notify, first) = {
                let mut map = self.channels.map();
                let entry = map
                    .entry(key.to_owned())
                    .or_insert_with(|| (Arc::new(Notify::new()), 0));
                entry.1 += 1;
                (entry.0.clone(), entry.1 == 1)
            };
            let registration = Registration {
                channels: self.channels.clone(),
                current: self.current.clone(),
                name: key.to_owned(),
            };
            if first {
                // Subscribed before the waiter tries again, so no release in between is
                // missed; a failure leaves the waiter its re-check timer.
                self.conn()
                    .await?
                    .ssubscribe(key)
                    .await
                    .map_err(Self::failed)?;
            }
            Ok(Watch::new(notify, registration))
        })
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
}
