//! The table, its statements, and what a failure to set them up means to the user.

use tokio_postgres::{error::SqlState, Client, Statement};

use crate::{error::LockError, store::Operation};

/// Checks a table name: `table` or `schema.table`, each part lowercase letters, digits and
/// `_`, not starting with a digit, at most 48 bytes (the sequence and index names add to
/// it, within PostgreSQL's 63).
pub(crate) fn check_table(table: &str) -> Result<(), String> {
    let parts: Vec<&str> = table.split('.').collect();
    let fine = |part: &str| {
        !part.is_empty()
            && part.len() <= 48
            && !part.starts_with(|c: char| c.is_ascii_digit())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if parts.len() <= 2 && parts.iter().all(|p| fine(p)) {
        Ok(())
    } else {
        Err(format!(
            "`{table}` is not a lock table name: write `table` or `schema.table`, in lowercase \
             letters, digits and `_`"
        ))
    }
}

/// What an operator sees of a row: the key, the token with the holder's record and fencing
/// token after it (as on Redis), the lease's remaining milliseconds, the fencing token.
const SHOWN: &str = "name, token || holder || ';fence=' || fence, \
    (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint, fence";

/// A row whose lease runs, held exclusively (shared holders' rows have no token of their
/// own, see `SHARERS`).
const LIVE: &str = "expires_at > clock_timestamp() AND token <> ''";

/// What an operator sees of a shared row's live holders, one row each, from
/// `{t} AS t, jsonb_each(t.holders) AS h(k, v)`: the key, the holder's token and record,
/// its lease's remaining milliseconds, the permit count (0: readers), the fencing counter.
const SHARERS: &str = "t.name, h.k || COALESCE(h.v->>'h', ''), \
    (h.v->>'e')::bigint - (extract(epoch FROM clock_timestamp()) * 1000)::bigint, \
    t.permits, t.fence";

/// A shared holder whose lease runs, in a row held by no exclusive owner.
const SHARER_LIVE: &str = "t.token = '' \
    AND (h.v->>'e')::bigint > (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// The columns of shared holders (readers, permits) and of a waiting writer's mark: the
/// semaphore's count (0 for readers), the holders (`{token: {"e": lease end in server
/// ms, "h": record}}`), and the writer that keeps new readers out until when.
pub(super) const SHARED_COLUMNS: &str = "permits integer NOT NULL DEFAULT 0, \
    holders jsonb NOT NULL DEFAULT '{}', writer text, writer_until timestamptz";

/// The server's clock in microseconds: the floor of every fencing token, so tokens keep
/// increasing when the sequence (and the rows) went back, after a restore of a backup or
/// the promotion of a standby that lagged, as long as the server's clock did not.
pub(super) const CLOCK_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

/// What a release or a forced release leaves of a row: expired now, with no owner. The row
/// stays (until swept, a minute after), so the next holder's token is drawn above the one
/// it keeps.
const RELEASED: &str = "token = '', holder = '', expires_at = clock_timestamp()";

/// The statements for one table.
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) table: String,
    /// The `NOTIFY` channel: the table's name, schema included.
    pub(super) channel: String,
    schema: Option<String>,
    create: String,
    /// Adds the shared holders' columns to a table made before they existed.
    migrate: String,
    pub(super) acquire: String,
    pub(super) lease_left: String,
    pub(super) release: String,
    pub(super) extend: String,
    pub(super) sweep: String,
    /// For operators: one lock, every live lock, and a delete whoever holds it.
    pub(super) inspect: String,
    pub(super) list: String,
    pub(super) force_release: String,
    /// For operators: one key's shared holders, and every live shared holder.
    pub(super) inspect_shared: String,
    pub(super) list_shared: String,
    /// For `lockctl doctor`: the table's rows, and those held now.
    pub(super) count_held: String,
    /// Readers' and permits' statements.
    pub(super) shared: SharedSql,
}

impl Sql {
    /// The statements for `table` (checked by [`check_table`]).
    pub(super) fn new(table: &str) -> Self {
        let (schema, name) = match table.split_once('.') {
            Some((schema, name)) => (Some(schema.to_owned()), name),
            None => (None, table),
        };
        let prefix = schema
            .as_ref()
            .map_or(String::new(), |s| format!("\"{s}\"."));
        let t = format!("{prefix}\"{name}\"");
        let sequence = format!("{prefix}\"{name}_fence\"");
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n\
             \x20   name text PRIMARY KEY,\n\
             \x20   token text NOT NULL,\n\
             \x20   holder text NOT NULL,\n\
             \x20   expires_at timestamptz NOT NULL,\n\
             \x20   fence bigint NOT NULL,\n\
             \x20   {SHARED_COLUMNS}\n\
             );\n\
             CREATE SEQUENCE IF NOT EXISTS {sequence};\n\
             CREATE INDEX IF NOT EXISTS \"{name}_expires\" ON {t} (expires_at);"
        );
        let migrate = format!(
            "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {}",
            SHARED_COLUMNS.replace(", ", ", ADD COLUMN IF NOT EXISTS ")
        );
        let create = match &schema {
            Some(schema) => format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";\n{create}"),
            None => create,
        };
        Self {
            table: table.to_owned(),
            channel: table.replace('.', "_"),
            // A token is drawn where the row is won: in the update, once the row is locked
            // and found free (after every earlier holder of the key), and above the
            // token the row keeps. The insert's token serves a key with no row at all.
            acquire: format!(
                "INSERT INTO {t} AS held (name, token, holder, expires_at, fence) \
                 VALUES ($1, $2, $3, clock_timestamp() + $4::bigint * interval '1 millisecond', \
                 GREATEST(nextval('{sequence}'), {CLOCK_US})) \
                 ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, \
                 holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, \
                 permits = 0, holders = '{{}}', writer = NULL, writer_until = NULL, \
                 fence = GREATEST(nextval('{sequence}'), {CLOCK_US}, held.fence + 1) \
                 WHERE held.expires_at <= clock_timestamp() \
                 OR ($5 AND held.token = EXCLUDED.token) \
                 RETURNING fence"
            ),
            lease_left: format!(
                "SELECT (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint, \
                 token = '' FROM {t} WHERE name = $1"
            ),
            release: format!(
                "WITH was AS (SELECT name, {LIVE} AS held FROM {t} \
                 WHERE name = $1 AND token = $2 FOR UPDATE), \
                 gone AS (UPDATE {t} AS cur SET {RELEASED} FROM was \
                 WHERE cur.name = was.name RETURNING was.name, was.held) \
                 SELECT gone.held FROM gone, pg_notify($3, gone.name)"
            ),
            extend: format!(
                "UPDATE {t} SET expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond' \
                 WHERE name = $1 AND token = $2 AND expires_at > clock_timestamp()"
            ),
            sweep: format!(
                "DELETE FROM {t} WHERE name IN (SELECT name FROM {t} \
                 WHERE expires_at < clock_timestamp() - interval '1 minute' LIMIT 1000)"
            ),
            inspect: format!("SELECT {SHOWN} FROM {t} WHERE name = $1 AND {LIVE}"),
            list: format!("SELECT {SHOWN} FROM {t} WHERE {LIVE} ORDER BY name"),
            force_release: format!(
                "WITH was AS (SELECT * FROM {t} WHERE name = $1 AND {LIVE} FOR UPDATE), \
                 gone AS (UPDATE {t} AS cur SET {RELEASED} FROM was \
                 WHERE cur.name = was.name RETURNING was.*) \
                 SELECT {SHOWN} FROM gone, pg_notify($2, gone.name)"
            ),
            inspect_shared: format!(
                "SELECT {SHARERS} FROM {t} AS t, jsonb_each(t.holders) AS h(k, v) \
                 WHERE t.name = $1 AND {SHARER_LIVE}"
            ),
            list_shared: format!(
                "SELECT {SHARERS} FROM {t} AS t, jsonb_each(t.holders) AS h(k, v) \
                 WHERE t.expires_at > clock_timestamp() AND {SHARER_LIVE} ORDER BY t.name"
            ),
            count_held: format!(
                "SELECT count(*), count(*) FILTER (WHERE expires_at > clock_timestamp()) FROM {t}"
            ),
            shared: SharedSql::new(&t, &sequence),
            schema,
            create,
            migrate,
        }
    }

    /// The statements an administrator runs for a role that may not create tables (or add
    /// the shared holders' columns to an older table).
    pub(super) fn setup(&self) -> String {
        format!("{}\n{};", self.create, self.migrate)
    }

    /// Creates the table, sequence and index unless the table exists; one process at a
    /// time (concurrent `CREATE .. IF NOT EXISTS` can collide), committed durably whatever
    /// the connection's `synchronous_commit` (a crash must not take the table away).
    pub(super) async fn create(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        let exists = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.regclass()])
            .await?;
        if exists.try_get::<_, bool>(0)? {
            // A table made before readers and permits: add their columns.
            let current = client
                .query_one(
                    "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) \
                     AND attname = 'holders' AND NOT attisdropped",
                    &[&self.regclass()],
                )
                .await?;
            if current.try_get::<_, i64>(0)? == 1 {
                return Ok(());
            }
            return client
                .batch_execute(&format!(
                    "BEGIN;\nSET LOCAL synchronous_commit = on;\nSELECT pg_advisory_xact_lock(7042351926);\n{};\nCOMMIT;",
                    self.migrate
                ))
                .await;
        }
        client
            .batch_execute(&format!(
                "BEGIN;\nSET LOCAL synchronous_commit = on;\nSELECT pg_advisory_xact_lock(7042351926);\n{}\nCOMMIT;",
                self.create
            ))
            .await
    }

    fn regclass(&self) -> String {
        let name = self.table.rsplit('.').next().unwrap_or(&self.table);
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{name}\""),
            None => format!("\"{name}\""),
        }
    }
}

/// What a failure to connect or set up the table means, with `password` kept out.
pub(super) fn connect_error(
    error: &tokio_postgres::Error,
    password: Option<&str>,
    sql: &Sql,
) -> LockError {
    let text = crate::redact::scrub(&describe(error), password);
    if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        return LockError::invalid(format!(
            "the PostgreSQL role may not create the lock table `{}` ({text}); have an \
             administrator run:\n{}\nand grant the role SELECT, INSERT, UPDATE, DELETE on the \
             table and USAGE on its sequence",
            sql.table,
            sql.setup()
        ));
    }
    let hint = if text.contains("UnknownIssuer") {
        "; to trust a CA of your own, give it to `BackendBuilder::tls_root_certificate`"
    } else {
        ""
    };
    LockError::Backend {
        operation: Operation::Connect,
        source: format!("{text}{hint}").into(),
    }
}

/// An error's message with the server's own words, which tokio-postgres keeps in its
/// source ("db error" alone says nothing).
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(inner) = source {
                text.push_str(": ");
                text.push_str(&inner.to_string());
                source = inner.source();
            }
            text
        }
    }
}

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
    pub(super) acquire: Statement,
    pub(super) busy: Statement,
    pub(super) release: Statement,
    pub(super) extend: Statement,
    pub(super) mark: Statement,
    pub(super) withdraw: Statement,
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
