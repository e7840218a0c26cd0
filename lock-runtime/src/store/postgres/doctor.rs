//! What `lockctl doctor` checks on PostgreSQL: that the server is a primary, how grants
//! are made durable (against standbys and the library's `synchronous_commit`), the lock
//! table's privileges, and the server's clock. Nothing is written.

use std::time::Instant;

use super::{failed, PostgresStore};
use crate::store::{finding, Finding, StoreError};

impl PostgresStore {
    pub(super) async fn diagnose_store(&self) -> Result<Vec<Finding>, StoreError> {
        let conn = self.conn("").await?;
        let table = &self.sql.table;
        let sequence = format!("{table}_fence");
        let asked = Instant::now();
        let row = conn
            .client
            .query_one(
                "SELECT pg_is_in_recovery(), \
                 (SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'), \
                 current_setting('synchronous_standby_names'), \
                 (SELECT count(*) FROM pg_stat_replication), current_user::text, \
                 has_table_privilege($1::text, 'SELECT, INSERT, UPDATE, DELETE'), \
                 has_sequence_privilege($2::text, 'USAGE'), \
                 (extract(epoch FROM clock_timestamp()) * 1000)::bigint, \
                 current_setting('server_version')",
                &[table, &sequence],
            )
            .await
            .map_err(failed)?;
        let rtt = asked.elapsed();
        let standby: bool = row.try_get(0)?;
        let server_commit: String = row.try_get(1)?;
        let standby_names: String = row.try_get(2)?;
        let standbys: i64 = row.try_get(3)?;
        let user: String = row.try_get(4)?;
        let (table_ok, sequence_ok): (bool, bool) = (row.try_get(5)?, row.try_get(6)?);
        let server_ms: i64 = row.try_get(7)?;
        let version: String = row.try_get(8)?;

        let mut found = vec![if standby {
            Finding::fail(
                "role",
                format!("PostgreSQL {version} is a standby in recovery: it cannot take locks"),
            )
            .fix("point the URL at the primary")
        } else {
            Finding::pass("role", format!("PostgreSQL {version}, a primary"))
        }];
        found.push(self.commits(&server_commit));
        found.push(match (standbys, standby_names.is_empty()) {
            (0, _) => Finding::pass("standbys", "no standbys stream from this server"),
            (n, false) => Finding::pass(
                "standbys",
                format!("{n} standbys; synchronous_standby_names = '{standby_names}'"),
            ),
            (n, true) => Finding::warn(
                "standbys",
                format!(
                    "{n} standbys stream asynchronously: a promoted standby may lack the last \
                     grants (the restart hold sees a promotion behind the same address and \
                     holds grants for the longest TTL; clients that move to the standby's own \
                     address are not held)"
                ),
            )
            .fix("keep the primary's address stable across failovers, or list the standbys in synchronous_standby_names and set PostgresOptions::synchronous_commit"),
        });
        let mut missing = Vec::new();
        if !table_ok {
            missing.push(format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {user}"
            ));
        }
        if !sequence_ok {
            missing.push(format!("GRANT USAGE ON SEQUENCE {sequence} TO {user}"));
        }
        found.push(if missing.is_empty() {
            Finding::pass(
                "privileges",
                format!("`{user}` may read and write {table} and draw from {sequence}"),
            )
        } else {
            Finding::fail(
                "privileges",
                format!("`{user}` lacks privileges on the lock table: locks cannot be taken"),
            )
            .fix(missing.join("; "))
        });
        if table_ok {
            let held = conn.client.query_one(&self.sql.count_held, &[]).await;
            let held = held.map_err(failed)?;
            let (rows, live): (i64, i64) = (held.try_get(0)?, held.try_get(1)?);
            found.push(Finding::pass(
                "table",
                format!(
                    "{table}: {rows} rows, {live} held now (rows of released locks are \
                     swept after a minute)"
                ),
            ));
        }
        found.push(finding::clock(i128::from(server_ms), rtt));
        Ok(found)
    }

    /// How grants are made durable: the library's setting against the server's default.
    fn commits(&self, server: &str) -> Finding {
        match (self.synchronous_commit, server) {
            (false, _) => Finding::pass(
                "commits",
                "grants do not wait for their WAL flush (the default): a crash can lose the \
                 last grants, and the restart hold, which sees the recovery, holds grants for \
                 the longest TTL after it; this costs availability after a crash, not safety",
            ),
            (true, "off" | "local") => Finding::warn(
                "commits",
                format!(
                    "PostgresOptions::synchronous_commit is set, but the server's \
                     synchronous_commit is {server}: grants do not wait for what it asks"
                ),
            )
            .fix("ALTER SYSTEM SET synchronous_commit = on (or remote_apply), then SELECT pg_reload_conf()"),
            (true, server) => Finding::pass(
                "commits",
                format!("each grant waits for its commit (synchronous_commit {server})"),
            ),
        }
    }
}
