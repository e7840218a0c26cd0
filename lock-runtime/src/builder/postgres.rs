//! The PostgreSQL part of [`BackendBuilder`].

use super::{located::located, BackendBuilder};
use crate::{backend::Backend, error::LockError, redact, store::PostgresOptions};

#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
impl BackendBuilder {
    /// The settings only the PostgreSQL store has, all at once (replacing the table set
    /// before with [`postgres_table`](Self::postgres_table)).
    #[must_use]
    pub fn postgres_options(mut self, options: PostgresOptions) -> Self {
        self.postgres = options;
        self
    }

    /// The table PostgreSQL locks live in: `table` or `schema.table`, lowercase letters,
    /// digits and `_` ([`DEFAULT_POSTGRES_TABLE`](crate::DEFAULT_POSTGRES_TABLE) by
    /// default). Its fencing sequence is
    /// `<table>_fence` and its expiry index `<table>_expires`; release notifications go on
    /// the channel named after the table (`schema_table` with a schema).
    #[must_use]
    pub fn postgres_table(mut self, table: impl Into<String>) -> Self {
        self.postgres = self.postgres.table(table);
        self
    }

    /// Connects to PostgreSQL at `url` (`postgres://user[:password]@host[:port]/database`,
    /// or a `key=value` connection string) within the time bound; the same as
    /// [`connect`](Self::connect) with a `postgres://` URL. Needs the crate's `postgres`
    /// feature.
    ///
    /// TLS: with the `tls` feature too, a URL with `sslmode=require` connects over TLS and
    /// verifies the server's certificate, chain and host name, against
    /// [`tls_root_certificate`](Self::tls_root_certificate) or the system's roots (libpq's
    /// `require` does not check the certificate; this does). SCRAM logins are bound to the
    /// channel (`channel_binding=require` works). `sslmode=prefer`, the default, and
    /// `disable` connect in plain; `sslmode=require` without the `tls` feature is
    /// [`LockError::InvalidInput`].
    ///
    /// The lock table, its sequence and its index are created if missing (`IF NOT EXISTS`,
    /// one process at a time). A role that may not create them gets
    /// [`LockError::InvalidInput`] with the statements an administrator runs instead.
    ///
    /// - a lease is a row: the lock's key, the owner token, the holder's record, when the
    ///   lease ends by the server's clock, and the fencing token. Acquire is one statement
    ///   that inserts the row or takes over an expired one; release and extend are one
    ///   token-checked statement each. Every statement reaches its row by primary key;
    /// - fencing tokens come from a sequence, and are at least the server's clock in
    ///   microseconds: strictly increasing across restarts, crashes and restored backups
    ///   as long as the server's clock does not go back;
    /// - statements do not wait for their disk flush (`synchronous_commit` off on the
    ///   store's connection): a crash may lose the last grants, which the restart hold
    ///   covers; see [`PostgresOptions::synchronous_commit`] for what that costs and how
    ///   to turn it on;
    /// - waiters are woken by `NOTIFY` from the release, on a listening connection of the
    ///   process's own, and re-check on a timer as on Redis;
    /// - two connections carry the locks' statements (pipelined; a lock always takes the
    ///   same one; [`PostgresOptions::connections`]), each replaced when it breaks. A lease does not depend on it: a holder whose connection breaks keeps
    ///   its lock until its TTL ends, and renews it on the next connection.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// let backend = lock_runtime::Backend::builder()
    ///     .postgres_table("locks.app")
    ///     .postgres("postgres://app@db.internal/app")
    ///     .await?;
    /// // Over TLS, trusting a CA of your own (with the `tls` feature):
    /// let ca = std::fs::read("/etc/ssl/db-ca.pem").expect("the CA certificate");
    /// let backend = lock_runtime::Backend::builder()
    ///     .tls_root_certificate(ca)
    ///     .postgres("postgres://app@db.internal/app?sslmode=require")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn postgres(self, url: &str) -> Result<Backend, LockError> {
        let common = self.connect_settings()?;
        let table = self.postgres.checked_table()?.to_owned();
        let connections = self.postgres.checked_connections()?;
        {
            use crate::store::postgres::{PostgresSettings, PostgresStore};
            let config: tokio_postgres::Config =
                url.parse().map_err(|e: tokio_postgres::Error| {
                    let detail = redact::scrub(&e.to_string(), redact::password(url));
                    LockError::invalid(format!(
                        "malformed PostgreSQL URL `{}`: {detail}",
                        redact::url(url)
                    ))
                })?;
            let store = PostgresStore::connect(PostgresSettings {
                config,
                table,
                bound: common.bound,
                health_interval: common.health_interval,
                restart_guard: common.restart_guard,
                tls_root: self.tls_root.clone(),
                synchronous_commit: self.postgres.synchronous_commit_on(),
                connections,
            })
            .await
            .map_err(|e| located("PostgreSQL", &redact::url(url), e))?;
            self.store(store)
        }
    }
}

/// The PostgreSQL constructor that starts from the default settings.
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
impl Backend {
    /// Connects to PostgreSQL at `url` with the default settings (see
    /// [`BackendBuilder::postgres`]).
    pub async fn postgres(url: &str) -> Result<Self, LockError> {
        BackendBuilder::default().postgres(url).await
    }
}
