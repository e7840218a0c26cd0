//! Readers and semaphore permits in PostgreSQL: the shared holders of a key live in its
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

use tokio_postgres::{types::ToSql, Client, Statement};

use super::{millis, sql::CLOCK_US, PostgresStore};
use crate::{
    store::{mismatch, shared_held, AcquireRequest, Attempt, LockKind, StoreError, WRITER_WAITING},
    token::Token,
};

/// The server's clock in milliseconds, as holders' lease ends are kept.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// The shared statements of one table.
#[derive(Debug)]
pub(super) struct SharedSql {
    acquire: String,
    busy: String,
    release: String,
    extend: String,
    mark: String,
    withdraw: String,
}

/// The shared statements prepared on one connection.
pub(super) struct SharedStatements {
    acquire: Statement,
    busy: Statement,
    release: Statement,
    extend: Statement,
    mark: Statement,
    withdraw: Statement,
}

impl SharedSql {
    /// The statements for the table `t` (quoted) and its fencing sequence.
    pub(super) fn new(t: &str, sequence: &str) -> Self {
        let live = |holders: &str| {
            format!(
                "(SELECT count(*) FROM jsonb_each({holders}) AS h(k, v) \
                 WHERE (v->>'e')::bigint > {NOW_MS})"
            )
        };
        let me = format!(
            "jsonb_build_object($2::text, jsonb_build_object('e', {NOW_MS} + $4::bigint, 'h', \
             $3::text))"
        );
        let end = "clock_timestamp() + $4::bigint * interval '1 millisecond'";
        let live_held = live("held.holders");
        Self {
            // $1 key, $2 token, $3 record, $4 TTL ms, $5 permits (0: a reader), $6 reclaim.
            acquire: format!(
                "INSERT INTO {t} AS held (name, token, holder, expires_at, fence, permits, \
                 holders) VALUES ($1, '', '', {end}, GREATEST(nextval('{sequence}'), \
                 {CLOCK_US}), $5::integer, {me}) \
                 ON CONFLICT (name) DO UPDATE SET token = '', holder = '', \
                 permits = $5::integer, \
                 holders = (SELECT COALESCE(jsonb_object_agg(k, v), '{{}}'::jsonb) \
                 FROM jsonb_each(held.holders) AS h(k, v) \
                 WHERE (v->>'e')::bigint > {NOW_MS} AND k <> $2::text) || {me}, \
                 expires_at = GREATEST(CASE WHEN held.token = '' THEN held.expires_at \
                 ELSE clock_timestamp() END, {end}), \
                 fence = GREATEST(nextval('{sequence}'), {CLOCK_US}, held.fence + 1) \
                 WHERE (held.token = '' OR held.expires_at <= clock_timestamp()) AND ( \
                 ($6 AND (held.holders->$2::text->>'e')::bigint > {NOW_MS}) \
                 OR (({live_held} = 0 OR (held.token = '' AND held.permits = $5::integer \
                 AND ($5::integer = 0 OR {live_held} < $5::integer))) \
                 AND ($5::integer > 0 OR held.writer IS NULL \
                 OR held.writer_until <= clock_timestamp())) ) \
                 RETURNING fence"
            ),
            // Why a shared try failed: the row's lease left, its count, its live shared
            // holders, whether an exclusive holder has it.
            busy: format!(
                "SELECT (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint, \
                 permits, {}, token <> '' FROM {t} WHERE name = $1",
                live("holders")
            ),
            // $1 key, $2 token, $3 channel: whether the holder's lease still ran.
            release: format!(
                "WITH was AS (SELECT name, (holders->$2::text->>'e')::bigint > {NOW_MS} AS held \
                 FROM {t} WHERE name = $1 AND token = '' AND holders ? $2::text FOR UPDATE), \
                 gone AS (UPDATE {t} AS cur SET holders = cur.holders - $2::text, \
                 expires_at = COALESCE((SELECT to_timestamp(max((v->>'e')::bigint) / 1000.0) \
                 FROM jsonb_each(cur.holders - $2::text) AS h(k, v) \
                 WHERE (v->>'e')::bigint > {NOW_MS}), clock_timestamp()) \
                 FROM was WHERE cur.name = was.name RETURNING was.name, was.held) \
                 SELECT gone.held FROM gone, pg_notify($3, gone.name)"
            ),
            // $1 key, $2 token, $3 TTL ms.
            extend: format!(
                "UPDATE {t} SET holders = jsonb_set(holders, ARRAY[$2::text], \
                 (holders->$2::text) || jsonb_build_object('e', {NOW_MS} + $3::bigint)), \
                 expires_at = GREATEST(expires_at, \
                 clock_timestamp() + $3::bigint * interval '1 millisecond') \
                 WHERE name = $1 AND token = '' \
                 AND (holders->$2::text->>'e')::bigint > {NOW_MS}"
            ),
            // $1 key, $2 the writer's token, $3 how long the mark lasts, in ms.
            mark: format!(
                "UPDATE {t} SET writer = $2, \
                 writer_until = clock_timestamp() + $3::bigint * interval '1 millisecond' \
                 WHERE name = $1 AND token = ''"
            ),
            // $1 key, $2 the writer's token, $3 channel.
            withdraw: format!(
                "WITH w AS (UPDATE {t} SET writer = NULL, writer_until = NULL \
                 WHERE name = $1 AND writer = $2 RETURNING name) \
                 SELECT 1 FROM w, pg_notify($3, w.name)"
            ),
        }
    }

    /// Prepares the statements on `client`.
    pub(super) async fn prepare(
        &self,
        client: &Client,
    ) -> Result<SharedStatements, tokio_postgres::Error> {
        Ok(SharedStatements {
            acquire: client.prepare(&self.acquire).await?,
            busy: client.prepare(&self.busy).await?,
            release: client.prepare(&self.release).await?,
            extend: client.prepare(&self.extend).await?,
            mark: client.prepare(&self.mark).await?,
            withdraw: client.prepare(&self.withdraw).await?,
        })
    }
}

impl PostgresStore {
    /// One try to join the shared holders of `request.key`.
    pub(super) async fn acquire_shared(
        &self,
        request: AcquireRequest<'_>,
    ) -> Result<Attempt, StoreError> {
        let conn = self.conn().await?;
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
                fence: request.fence_key.and_then(|_| u64::try_from(fence).ok()),
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
        let conn = self.conn().await?;
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
        let conn = self.conn().await?;
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
        let conn = self.conn().await?;
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
        let conn = self.conn().await?;
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

    /// For operators, who see exclusive locks only: the error that says shared holders
    /// hold `key`, if they do.
    pub(super) async fn shared_holders(&self, key: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_opt(&conn.shared.busy, &[&key])
            .await
            .map_err(super::failed)?;
        let Some(row) = row else {
            return Ok(());
        };
        let (held, live, exclusive): (i32, i64, bool) =
            (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
        if exclusive || live == 0 {
            return Ok(());
        }
        let (live, held) = (
            usize::try_from(live).unwrap_or(usize::MAX),
            u32::try_from(held).unwrap_or(0),
        );
        Err(shared_held(key, live, held))
    }
}
