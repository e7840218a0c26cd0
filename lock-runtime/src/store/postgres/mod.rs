//! The PostgreSQL store: a lease is a row of one table, keyed by the lock's full key.
//!
//! - acquire: one `INSERT .. ON CONFLICT DO UPDATE .. WHERE` the row has expired (or, to
//!   reclaim, holds our token), returning the fencing token: drawn from a sequence where
//!   the row is won, and at least the server's clock in microseconds and one more than the
//!   row's last token, so tokens of one lock follow the order of its grants, also after a
//!   backup was restored; a waiter whose try found the row taken also reads how long its
//!   lease has left;
//! - release: one token-checked `UPDATE` that expires our row (it stays, with its token,
//!   until swept) and sends `NOTIFY` with the key, which the waiters of every process
//!   `LISTEN` for (`listen.rs`);
//! - extend: one token-checked `UPDATE`;
//! - readers and permits: kept in the key's row, each with its own token and lease, and
//!   decided in one statement under the row's lock (`shared.rs`).
//!
//! Expiry is by the server's clock (`clock_timestamp()`), as on Redis. Every statement
//! reaches its row by primary key; rows of holders that vanished are taken over by the
//! next acquire of their key, and swept now and then (through an index on the expiry)
//! so keys never used again do not pile up. A few connections (two by default), shared by
//! every lock of the process, a lock always on the same one (`lane.rs`; tokio-postgres
//! pipelines concurrent statements on each, at most [`pipeline::IN_FLIGHT`] at once),
//! each replaced when it breaks or when a health check (every health interval) goes
//! unanswered within the time bound; one more listens, checked the same way. Connecting
//! takes at most a time bound per statement connection plus two (the table's creation,
//! a durable commit, and the first connection's statements).
//!
//! Statements do not wait for their WAL flush (`synchronous_commit` off on the store's
//! connection, unless `PostgresOptions::synchronous_commit`): a crash may lose the last
//! grants. Each statement connection and each health check read when the server last
//! started afresh (its start, or its last recovery from a crash of a backend: `health.rs`):
//! a new moment means the server restarted, crashed, or another took its place (a standby
//! promoted behind the same address, which may not have the last grants), and no lock is
//! granted for the longest TTL from then (the restart hold, as on Redis). A process that
//! connects to a server that recovered from a crash less than that ago holds from the
//! recovery (a clean start loses nothing: its shutdown wrote every commit out).

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio_postgres::{Client, Statement};

use self::{
    connect::Target,
    health::{since_crash, started, Server},
    lane::Lane,
    listen::Listener,
    pipeline::Pipeline,
    sql::Sql,
};
use super::{
    braced_key, braced_name, hold::RestartHold, ttl_millis, AcquireRequest, Attempt, Capabilities,
    Operators, SharedLocks, Store, StoreError, StoreFuture, Watch,
};
use crate::{error::LockError, store::Operation, token::Token};

mod connect;
mod doctor;
mod health;
mod lane;
mod listen;
mod operate;
mod options;
mod pipeline;
mod shared;
mod sql;

pub use self::lane::DEFAULT_POSTGRES_CONNECTIONS;
pub use self::options::{PostgresOptions, DEFAULT_POSTGRES_TABLE};
use self::sql::check_table;

/// How many acquisitions pass between two sweeps of long-expired rows.
const SWEEP_EVERY: u64 = 1024;

/// What a PostgreSQL store is set up with.
#[derive(Debug, Clone)]
pub(crate) struct PostgresSettings {
    pub(crate) config: tokio_postgres::Config,
    /// `table` or `schema.table`, checked by [`check_table`].
    pub(crate) table: String,
    /// The time bound on each step of connecting and on a health check.
    pub(crate) bound: Duration,
    /// How often each connection is checked.
    pub(crate) health_interval: Duration,
    /// The restart hold's floor; `None`: no hold.
    pub(crate) restart_guard: Option<Duration>,
    /// With `sslmode=require`: the CA certificate (PEM) to trust instead of the system's.
    pub(crate) tls_root: Option<Vec<u8>>,
    /// Whether statements wait for their WAL flush (see `PostgresOptions`).
    pub(crate) synchronous_commit: bool,
    /// How many statement connections (`lane.rs`), at least one.
    pub(crate) connections: usize,
}

/// One connection with the store's statements prepared on it.
pub(super) struct Conn {
    client: Client,
    /// The task that drives it: stopped when the connection is replaced, so statements
    /// stuck on a silent one fail at once.
    driver: tokio::task::AbortHandle,
    acquire: Statement,
    lease_left: Statement,
    release: Statement,
    extend: Statement,
    shared: sql::SharedStatements,
    /// Its lane's bound on statements in flight.
    pipeline: Arc<Pipeline>,
}

/// Locks kept in a PostgreSQL table (see the module documentation).
pub(crate) struct PostgresStore {
    target: Target,
    sql: Arc<Sql>,
    /// The statement connections (`lane.rs`).
    lanes: Box<[Lane]>,
    /// Who the server is, and the hold after it changed.
    server: Arc<Server>,
    bound: Duration,
    health_interval: Duration,
    listener: Arc<Listener>,
    acquires: AtomicU64,
    synchronous_commit: bool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.sql.table)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, creates the table, its sequence and index if they are missing, and
    /// prepares the statements, within `settings.bound`.
    pub(crate) async fn connect(settings: PostgresSettings) -> Result<Self, LockError> {
        let sql = Arc::new(Sql::new(&settings.table));
        let password = settings
            .config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let target = Target::new(settings.config, settings.tls_root.as_deref())
            .map_err(LockError::invalid)?;
        let (bound, health_interval) = (settings.bound, settings.health_interval);
        let store = Self {
            listener: Listener::new(target.clone(), sql.clone(), bound, health_interval),
            target,
            sql,
            lanes: (0..settings.connections).map(|_| Lane::new()).collect(),
            server: Arc::new(Server {
                started: Mutex::new(None),
                hold: RestartHold::new(settings.restart_guard),
            }),
            bound,
            health_interval,
            acquires: AtomicU64::new(0),
            synchronous_commit: settings.synchronous_commit,
        };
        let first = async {
            let (client, driver) = store.open().await?;
            store.sql.create(&client).await?;
            let conn = store.prepare(&store.lanes[0], client, driver).await?;
            store.server.observe(&started(&conn.client).await?);
            let mut others = Vec::new();
            for lane in &store.lanes[1..] {
                let (client, driver) = store.open().await?;
                others.push(store.prepare(lane, client, driver).await?);
            }
            if !store.synchronous_commit {
                // A crash may have lost the last grants: a server that recovered from one
                // less than a lease ago may not know of a lease that still runs.
                let since = since_crash(&conn.client).await?;
                if let Some(from) = since.and_then(|s| std::time::Instant::now().checked_sub(s)) {
                    store.server.hold.start_at(from);
                }
            }
            Ok((conn, others))
        };
        // A time bound for each step that waits on the server: the first connection with
        // the table (a durable commit, which waits for its flush and for other processes
        // creating it at the same moment), its statements, every further connection. One
        // bound for all of them timed out three processes starting at once on a busy
        // machine.
        let steps = u32::try_from(settings.connections).unwrap_or(u32::MAX);
        let allowance = settings.bound.saturating_mul(steps.saturating_add(2));
        match tokio::time::timeout(allowance, first).await {
            Ok(Ok((conn, others))) => {
                for (lane, conn) in store.lanes.iter().zip(std::iter::once(conn).chain(others)) {
                    store.install(lane, conn);
                }
                Ok(store)
            }
            Ok(Err(error)) => Err(sql::connect_error(&error, password.as_deref(), &store.sql)),
            Err(_) => Err(LockError::Timeout {
                operation: Operation::Connect,
                after: allowance,
            }),
        }
    }

    /// Runs the statement `make` builds on `conn`, with one of its lane's pipeline permits
    /// (see `pipeline.rs`).
    async fn statement<T, F>(
        &self,
        conn: &Arc<Conn>,
        make: impl FnOnce(Arc<Conn>) -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
        T: Send + 'static,
    {
        conn.pipeline
            .run(|| make(conn.clone()))
            .await
            .map_err(failed)
    }

    /// Now and then, deletes rows whose lease ended long ago, in the background.
    fn maybe_sweep(&self, conn: &Arc<Conn>) {
        if self.acquires.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        let (conn, sql) = (conn.clone(), self.sql.clone());
        tokio::spawn(async move {
            if let Err(error) = conn.client.execute(&sql.sweep, &[]).await {
                tracing::debug!(%error, "sweeping expired lock rows failed");
            }
        });
    }
}

/// A statement's error as a store error, in the server's own words; the connection is
/// replaced on the next call if it broke.
fn failed(error: tokio_postgres::Error) -> StoreError {
    sql::describe(&error).into()
}

/// A TTL in milliseconds as the statements take it.
fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl_millis(ttl)).unwrap_or(i64::MAX)
}

impl Store for PostgresStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("postgres")
            .readers()
            .permits()
            .fencing()
            .notifies_waiters()
            .operators()
    }

    /// `{prefix}{{name}}` in the `name` column, the shape earlier versions wrote (and Redis
    /// uses), so a process upgraded beside older ones takes the very same rows.
    fn key(&self, prefix: &str, name: &str) -> String {
        braced_key(prefix, name)
    }

    fn name_in<'k>(&self, prefix: &str, key: &'k str) -> &'k str {
        braced_name(prefix, key)
    }

    fn try_acquire<'a>(&'a self, request: AcquireRequest<'a>) -> StoreFuture<'a, Attempt> {
        Box::pin(async move {
            self.server.hold.note_ttl(request.ttl);
            if request.kind.is_shared() {
                return self.acquire_shared(request).await;
            }
            // A new connection is where a changed server is seen: the hold is asked after.
            let conn = self.conn(request.key).await?;
            if let Some(left) = self.server.hold.left(request.ttl) {
                // The server restarted or was replaced: a holder from before may still work.
                return Ok(Attempt::Recovering { left });
            }
            self.maybe_sweep(&conn);
            let ttl = millis(request.ttl);
            let (key, token) = (request.key.to_owned(), request.token.as_str().to_owned());
            let (holder, reclaim) = (request.holder.to_owned(), request.reclaim);
            let row = self
                .statement(&conn, |conn| async move {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                        [&key, &token, &holder, &ttl, &reclaim];
                    conn.client.query_opt(&conn.acquire, &params).await
                })
                .await?;
            if let Some(row) = row {
                let fence: i64 = row.try_get(0)?;
                return Ok(Attempt::Acquired {
                    fence: request.fencing.then(|| u64::try_from(fence).ok()).flatten(),
                });
            }
            if !request.waiting {
                return Ok(Attempt::Busy);
            }
            let key = request.key.to_owned();
            let left = self
                .statement(&conn, |conn| async move {
                    conn.client.query_opt(&conn.lease_left, &[&key]).await
                })
                .await?;
            let (left, shared): (i64, bool) = match left {
                Some(row) => (row.try_get(0)?, row.try_get(1)?),
                // Released in between: try again at once.
                None => (0, false),
            };
            let left = Duration::from_millis(left.max(0).unsigned_abs());
            if shared && !left.is_zero() {
                // Readers or permits hold it: keep new readers out while this writer waits.
                self.mark_writer(request.key, request.token).await?;
                return Ok(Attempt::BusyShared { left });
            }
            Ok(Attempt::BusyFor { left })
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let conn = self.conn(key).await?;
            let (key, token) = (key.to_owned(), token.as_str().to_owned());
            let channel = self.sql.channel.clone();
            let row = self
                .statement(&conn, |conn| async move {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                        [&key, &token, &channel];
                    conn.client.query_opt(&conn.release, &params).await
                })
                .await?;
            Ok(match row {
                Some(row) => row.try_get(0)?,
                None => false,
            })
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.server.hold.note_ttl(ttl);
        Box::pin(async move {
            let ttl = millis(ttl);
            let conn = self.conn(key).await?;
            let (key, token) = (key.to_owned(), token.as_str().to_owned());
            let updated = self
                .statement(&conn, |conn| async move {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                        [&key, &token, &ttl];
                    conn.client.execute(&conn.extend, &params).await
                })
                .await?;
            Ok(updated == 1)
        })
    }

    fn watch<'a>(&'a self, key: &'a str, _waiter: Option<&'a Token>) -> StoreFuture<'a, Watch> {
        Box::pin(async move { Ok(self.listener.watch(key).await) })
    }

    fn shared(&self) -> Option<&dyn SharedLocks> {
        Some(self)
    }

    fn operators(&self) -> Option<&dyn Operators> {
        Some(self)
    }
}

impl SharedLocks for PostgresStore {
    fn release_shared<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(self.release_one_shared(key, token))
    }

    fn extend_shared<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.extend_one_shared(key, token, ttl))
    }

    fn withdraw<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, ()> {
        Box::pin(self.withdraw_writer(key, token))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.stop();
    }
}
