//! [`PostgresOptions`]: what only the PostgreSQL store is set up with.

use super::{
    check_table,
    lane::{DEFAULT_POSTGRES_CONNECTIONS, MOST_CONNECTIONS},
};
use crate::error::LockError;

/// The table PostgreSQL locks live in unless configured otherwise, in the connection's
/// search path.
pub const DEFAULT_POSTGRES_TABLE: &str = "distributed_locks";

/// The settings only the PostgreSQL store has, given to
/// [`BackendBuilder::postgres_options`](crate::BackendBuilder::postgres_options); the
/// builder's [`postgres_table`](crate::BackendBuilder::postgres_table) sets the table alone.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{store::PostgresOptions, Backend};
///
/// let backend = Backend::builder()
///     .postgres_options(PostgresOptions::new().table("locks.billing"))
///     .postgres("postgres://app@db.internal/app")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    table: String,
    synchronous_commit: bool,
    connections: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            table: DEFAULT_POSTGRES_TABLE.to_owned(),
            synchronous_commit: false,
            connections: DEFAULT_POSTGRES_CONNECTIONS,
        }
    }
}

impl PostgresOptions {
    /// The defaults: the table [`DEFAULT_POSTGRES_TABLE`], commits that do not wait for
    /// their WAL flush (see [`synchronous_commit`](Self::synchronous_commit)),
    /// [`DEFAULT_POSTGRES_CONNECTIONS`] statement connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`BackendBuilder::postgres_table`](crate::BackendBuilder::postgres_table).
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Whether the store's statements wait until their commit is flushed to disk (and to
    /// a synchronous standby, where there is one) before they answer: PostgreSQL's
    /// `synchronous_commit`, set on the store's own connection. Off by default.
    ///
    /// **Off** (the default), a grant, release or renewal answers as soon as it is
    /// committed in memory; PostgreSQL writes it out within `3 x wal_writer_delay` (600 ms
    /// by default). A crash of the server in between loses those last writes, so after
    /// a crash a lease may be gone whose holder still works. The restart hold covers it:
    /// a process connected across the crash sees the server's new start time and grants
    /// nothing for the longest TTL; a process that connects to a server that recovered
    /// from a crash less than the longest TTL it asks for ago holds until that TTL has
    /// passed since the recovery (a clean start loses nothing and holds nobody).
    /// This is what makes a lock cost about what an advisory lock costs (no disk flush per
    /// statement: BENCHMARKS.md). With the hold turned off
    /// ([`restart_guard(None)`](crate::BackendBuilder::restart_guard)) or with a
    /// synchronous standby that may be promoted, turn this on.
    ///
    /// **On**, every statement waits for its flush, as PostgreSQL does by default: a crash
    /// loses nothing that was answered, and a synchronous standby that is promoted has
    /// every grant. A fresh process is not held back by a young server. Each statement
    /// then costs a disk flush (shared with the statements committing at the same moment).
    #[must_use]
    pub fn synchronous_commit(mut self, on: bool) -> Self {
        self.synchronous_commit = on;
        self
    }

    pub(crate) fn synchronous_commit_on(&self) -> bool {
        self.synchronous_commit
    }

    /// How many connections carry the store's statements, 1 to 16
    /// ([`DEFAULT_POSTGRES_CONNECTIONS`] by default), besides the one that listens for
    /// releases. A lock's statements always take the same connection; different locks
    /// spread over them. PostgreSQL runs one connection's statements one after another on
    /// one backend process, so one connection keeps the server to one core however many
    /// locks a process takes at once; each more costs a connection slot
    /// (`max_connections`) per process.
    #[must_use]
    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = connections;
        self
    }

    /// The number of connections, checked: [`LockError::InvalidInput`] outside 1 to 16.
    pub(crate) fn checked_connections(&self) -> Result<usize, LockError> {
        if (1..=MOST_CONNECTIONS).contains(&self.connections) {
            Ok(self.connections)
        } else {
            Err(LockError::invalid(format!(
                "PostgresOptions::connections({}): give 1 to {MOST_CONNECTIONS} statement \
                 connections",
                self.connections
            )))
        }
    }

    /// The table, checked: [`LockError::InvalidInput`] for a name the store cannot use.
    pub(crate) fn checked_table(&self) -> Result<&str, LockError> {
        check_table(&self.table).map_err(LockError::invalid)?;
        Ok(&self.table)
    }
}
