//! Readers and semaphore permits in PostgreSQL (the statements are in `sql.rs`): the shared holders of a key live in its
//! row (`holders`, a JSON object of token to lease end and record, with `permits` the
//! semaphore's count, 0 for readers), so every decision about a key is taken on one row,
//! under its row lock, in one statement: an `INSERT .. ON CONFLICT DO UPDATE .. WHERE`
//! whose condition PostgreSQL evaluates again on the newest version of the row once it
//! holds the lock. A row held by shared holders has no token of its own and expires with
//! its last holder's lease, so an exclusive acquire finds it busy until then, exactly as
//! it finds another exclusive holder. A waiting writer marks the row (`writer`,
//! `writer_until`) and new readers stay out until it wins, gives up (`withdraw`) or the
//! mark ends. Releases and withdrawals `NOTIFY` as exclusive releases do.

use std::time::Duration;

use tokio_postgres::types::ToSql;

use super::{millis, PostgresStore};
use crate::{
    store::{mismatch, AcquireRequest, Attempt, LockKind, StoreError, WRITER_WAITING},
    token::Token,
};

impl PostgresStore {
    /// One try to join the shared holders of `request.key`.
    pub(super) async fn acquire_shared(
        &self,
        request: AcquireRequest<'_>,
    ) -> Result<Attempt, StoreError> {
        let conn = self.conn(request.key).await?;
        if let Some(left) = self.server.hold.left(request.ttl) {
            return Ok(Attempt::Recovering { left });
        }
        let wanted = match request.kind {
            LockKind::Permit { permits } => permits,
            _ => 0,
        };
        let permits = i32::try_from(wanted).unwrap_or(i32::MAX);
        let ttl = millis(request.ttl);
        let (key, token) = (request.key.to_owned(), request.token.as_str().to_owned());
        let (holder, reclaim) = (request.holder.to_owned(), request.reclaim);
        let row = self
            .statement(&conn, |conn| async move {
                let params: [&(dyn ToSql + Sync); 6] =
                    [&key, &token, &holder, &ttl, &permits, &reclaim];
                conn.client.query_opt(&conn.shared.acquire, &params).await
            })
            .await?;
        if let Some(row) = row {
            let fence: i64 = row.try_get(0)?;
            return Ok(Attempt::Acquired {
                fence: request.fencing.then(|| u64::try_from(fence).ok()).flatten(),
            });
        }
        let key = request.key.to_owned();
        let busy = self
            .statement(&conn, |conn| async move {
                conn.client.query_opt(&conn.shared.busy, &[&key]).await
            })
            .await?;
        let Some(busy) = busy else {
            // Gone in between: try again at once.
            return Ok(Attempt::BusyFor {
                left: Duration::ZERO,
            });
        };
        let (left, held, live, exclusive): (i64, i32, i64, bool) = (
            busy.try_get(0)?,
            busy.try_get(1)?,
            busy.try_get(2)?,
            busy.try_get(3)?,
        );
        if !exclusive && live > 0 && held != permits {
            let held = u32::try_from(held).unwrap_or(0);
            return Err(mismatch(request.key, held, wanted));
        }
        Ok(Attempt::BusyFor {
            left: Duration::from_millis(left.max(0).unsigned_abs()),
        })
    }

    /// A waiting writer found shared holders: it marks the key so that no new reader joins.
    pub(super) async fn mark_writer(&self, key: &str, token: &Token) -> Result<(), StoreError> {
        let conn = self.conn(key).await?;
        let (key, token) = (key.to_owned(), token.as_str().to_owned());
        let mark = millis(WRITER_WAITING);
        self.statement(&conn, |conn| async move {
            let params: [&(dyn ToSql + Sync); 3] = [&key, &token, &mark];
            conn.client.execute(&conn.shared.mark, &params).await
        })
        .await?;
        Ok(())
    }

    pub(super) async fn withdraw_writer(&self, key: &str, token: &Token) -> Result<(), StoreError> {
        let conn = self.conn(key).await?;
        let (key, token) = (key.to_owned(), token.as_str().to_owned());
        let channel = self.sql.channel.clone();
        self.statement(&conn, |conn| async move {
            let params: [&(dyn ToSql + Sync); 3] = [&key, &token, &channel];
            conn.client.query_opt(&conn.shared.withdraw, &params).await
        })
        .await?;
        Ok(())
    }

    pub(super) async fn release_one_shared(
        &self,
        key: &str,
        token: &Token,
    ) -> Result<bool, StoreError> {
        let conn = self.conn(key).await?;
        let (key, token) = (key.to_owned(), token.as_str().to_owned());
        let channel = self.sql.channel.clone();
        let row = self
            .statement(&conn, |conn| async move {
                let params: [&(dyn ToSql + Sync); 3] = [&key, &token, &channel];
                conn.client.query_opt(&conn.shared.release, &params).await
            })
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => false,
        })
    }

    pub(super) async fn extend_one_shared(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.server.hold.note_ttl(ttl);
        let conn = self.conn(key).await?;
        let ttl = millis(ttl);
        let (key, token) = (key.to_owned(), token.as_str().to_owned());
        let updated = self
            .statement(&conn, |conn| async move {
                let params: [&(dyn ToSql + Sync); 3] = [&key, &token, &ttl];
                conn.client.execute(&conn.shared.extend, &params).await
            })
            .await?;
        Ok(updated == 1)
    }
}
