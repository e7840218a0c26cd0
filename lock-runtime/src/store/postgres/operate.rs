//! What operators do with PostgreSQL locks: one row, every live row, and a row deleted
//! whoever holds it (notifying its waiters); readers' and permits' rows are reported, not
//! shown.

use std::time::Duration;

use super::{failed, PostgresStore};
use crate::store::{glob_matches, Operators, StoreError, StoreFuture, StoredLock};

impl Operators for PostgresStore {
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let conn = self.conn(key).await?;
            let rows = conn.client.query(&self.sql.inspect, &[&key]).await;
            let held = rows.map_err(failed)?.first().map(stored).transpose()?;
            if held.is_none() {
                self.shared_holders(key).await?;
            }
            Ok(held)
        })
    }

    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        Box::pin(async move {
            let conn = self.conn("").await?;
            let rows = conn
                .client
                .query(&self.sql.list, &[])
                .await
                .map_err(failed)?;
            let mut found = Vec::new();
            for row in &rows {
                let lock = stored(row)?;
                if glob_matches(pattern, &lock.key) {
                    found.push(lock);
                }
            }
            Ok(found)
        })
    }

    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let conn = self.conn(key).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&key, &self.sql.channel];
            let rows = conn.client.query(&self.sql.force_release, &params).await;
            let held = rows.map_err(failed)?.first().map(stored).transpose()?;
            if held.is_none() {
                self.shared_holders(key).await?;
            }
            Ok(held)
        })
    }
}

/// A row as operators see it (see `sql::SHOWN`).
pub(super) fn stored(row: &tokio_postgres::Row) -> Result<StoredLock, StoreError> {
    let key: String = row.try_get(0)?;
    let value: String = row.try_get(1)?;
    let left: i64 = row.try_get(2)?;
    let fence: i64 = row.try_get(3)?;
    let mut lock = StoredLock::new(key, value);
    lock.remaining = Some(Duration::from_millis(left.max(0).unsigned_abs()));
    lock.fence = u64::try_from(fence).ok();
    Ok(lock)
}
