//! [`PostgresOptions`]: what only the PostgreSQL store is set up with.

use super::check_table;
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
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            table: DEFAULT_POSTGRES_TABLE.to_owned(),
        }
    }
}

impl PostgresOptions {
    /// The defaults: the table [`DEFAULT_POSTGRES_TABLE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`BackendBuilder::postgres_table`](crate::BackendBuilder::postgres_table).
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The table, checked: [`LockError::InvalidInput`] for a name the store cannot use.
    pub(crate) fn checked_table(&self) -> Result<&str, LockError> {
        check_table(&self.table).map_err(LockError::invalid)?;
        Ok(&self.table)
    }
}
