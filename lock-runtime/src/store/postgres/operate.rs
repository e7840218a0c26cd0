//! What operators do with PostgreSQL locks: one row, every live row, and a row deleted
//! whoever holds it (notifying its waiters). A row held by readers or permits shows each
//! holder (from its `holders` column) and is not deleted.

use std::time::Duration;

use super::{failed, PostgresStore};
use crate::store::{
    glob_matches, refuse_shared, Finding, Operators, StoreError, StoreFuture, StoredLock,
    StoredShare,
};

impl Operators for PostgresStore {
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let conn = self.conn(key).await?;
            let rows = conn.client.query(&self.sql.inspect, &[&key]).await;
            let held = rows.map_err(failed)?.first().map(stored).transpose()?;
            if held.is_some() {
                return Ok(held);
            }
            let rows = conn.client.query(&self.sql.inspect_shared, &[&key]).await;
            Ok(shared(&rows.map_err(failed)?)?.pop())
        })
    }

    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        Box::pin(async move {
            let conn = self.conn("").await?;
            let (rows, sharers) = tokio::join!(
                conn.client.query(&self.sql.list, &[]),
                conn.client.query(&self.sql.list_shared, &[])
            );
            let mut found = Vec::new();
            for row in &rows.map_err(failed)? {
                let lock = stored(row)?;
                if glob_matches(pattern, &lock.key) {
                    found.push(lock);
                }
            }
            let sharers = shared(&sharers.map_err(failed)?)?;
            found.extend(
                sharers
                    .into_iter()
                    .filter(|l| glob_matches(pattern, &l.key)),
            );
            Ok(found)
        })
    }

    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let conn = self.conn(key).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&key, &self.sql.channel];
            let rows = conn.client.query(&self.sql.force_release, &params).await;
            let held = rows.map_err(failed)?.first().map(stored).transpose()?;
            if held.is_some() {
                return Ok(held);
            }
            let rows = conn.client.query(&self.sql.inspect_shared, &[&key]).await;
            refuse_shared(shared(&rows.map_err(failed)?)?.pop())
        })
    }

    fn diagnose<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, Vec<Finding>> {
        Box::pin(self.diagnose_store())
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

/// The shared keys whose holders are `rows` (see `sql::SHARERS`), one row per holder, the
/// rows of one key next to each other.
fn shared(rows: &[tokio_postgres::Row]) -> Result<Vec<StoredLock>, StoreError> {
    let mut found: Vec<StoredLock> = Vec::new();
    let mut sharers = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let key: String = row.try_get(0)?;
        let left: i64 = row.try_get(2)?;
        let left = Duration::from_millis(left.max(0).unsigned_abs());
        sharers.push(StoredShare::new(row.try_get::<_, String>(1)?, Some(left)));
        let last_of_key = rows
            .get(i + 1)
            .is_none_or(|next| next.try_get::<_, String>(0).ok().as_deref() != Some(&key));
        if last_of_key {
            let permits: i32 = row.try_get(3)?;
            let kind = StoredLock::shared_kind(u32::try_from(permits).unwrap_or(0));
            let mut lock = StoredLock::shared(key, kind, std::mem::take(&mut sharers));
            lock.fence = u64::try_from(row.try_get::<_, i64>(4)?).ok();
            found.push(lock);
        }
    }
    Ok(found)
}
