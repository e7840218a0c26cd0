//! The benchmark's PostgreSQL floor: the library's own statements (an `INSERT .. ON
//! CONFLICT DO UPDATE .. WHERE` expired, returning a fencing token drawn from the sequence
//! where the row is won, floored by the server's clock and the row's last token, and
//! clearing the shared holders' columns; a token-checked `UPDATE` that expires the row and
//! sends `NOTIFY`), prepared once and issued directly with tokio-postgres on as many
//! pipelined connections as the library uses, a key always on the same one, with
//! `synchronous_commit` off, as the library's; waiting retries every millisecond. And what PostgreSQL users run instead:
//! advisory locks, one connection per task (a session-level lock belongs to its
//! connection), either `pg_try_advisory_lock` / `pg_advisory_unlock` or
//! `pg_advisory_xact_lock` in a transaction.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio_postgres::{Client, NoTls, Statement};

use super::{floor_token, Release};

/// The table both sides use (the library's default).
const TABLE: &str = "distributed_locks";
/// The server's clock in microseconds, as the library floors its tokens.
const CLOCK_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

/// The library's number of statement connections, and how it picks one for a key.
const LANES: usize = lock_runtime::DEFAULT_POSTGRES_CONNECTIONS;

fn lane(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % LANES as u64) as usize
}

/// One connection with the two statements prepared on it.
struct Lane {
    client: Client,
    acquire: Statement,
    release: Statement,
}

#[derive(Clone)]
pub struct Floor {
    lanes: Arc<Vec<Lane>>,
}

impl Floor {
    /// Connects to `url` as many times as the library does; the library made the table
    /// beforehand.
    pub async fn connect(url: &str) -> Self {
        let mut lanes = Vec::new();
        for _ in 0..LANES {
            lanes.push(Self::lane(url).await);
        }
        Self {
            lanes: Arc::new(lanes),
        }
    }

    async fn lane(url: &str) -> Lane {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("PostgreSQL floor connection");
        tokio::spawn(connection);
        // As the library's connection: commits answer before their WAL flush.
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .expect("set synchronous_commit");
        let acquire = client
            .prepare(&format!(
                "INSERT INTO {TABLE} AS held (name, token, holder, expires_at, fence) \
                 VALUES ($1, $2, $3, clock_timestamp() + $4::bigint * interval '1 millisecond', \
                 GREATEST(nextval('{TABLE}_fence'), {CLOCK_US})) \
                 ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, \
                 holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, \
                 permits = 0, holders = '{{}}', writer = NULL, writer_until = NULL, \
                 fence = GREATEST(nextval('{TABLE}_fence'), {CLOCK_US}, held.fence + 1) \
                 WHERE held.expires_at <= clock_timestamp() \
                 OR ($5 AND held.token = EXCLUDED.token) \
                 RETURNING fence"
            ))
            .await
            .expect("prepare the floor's acquire");
        let release = client
            .prepare(&format!(
                "WITH was AS (SELECT name, expires_at > clock_timestamp() AS held FROM {TABLE} \
                 WHERE name = $1 AND token = $2 FOR UPDATE), \
                 gone AS (UPDATE {TABLE} AS cur SET token = '', holder = '', \
                 expires_at = clock_timestamp() FROM was WHERE cur.name = was.name \
                 RETURNING was.name, was.held) \
                 SELECT gone.held FROM gone, pg_notify($3, gone.name)"
            ))
            .await
            .expect("prepare the floor's release");
        Lane {
            client,
            acquire,
            release,
        }
    }

    /// Takes `key` (with `poll`, retrying every millisecond until it is free).
    async fn acquire(&self, key: &str, token: &str, poll: bool) {
        loop {
            let lane = &self.lanes[lane(key)];
            let row = lane
                .client
                .query_opt(&lane.acquire, &[&key, &token, &"", &10_000_i64, &false])
                .await
                .expect("floor acquire");
            if row.is_some() {
                return;
            }
            assert!(poll, "floor: the key was taken");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn release(&self, key: &str, token: &str) {
        let lane = &self.lanes[lane(key)];
        let row = lane
            .client
            .query_opt(&lane.release, &[&key, &token, &TABLE])
            .await
            .expect("floor release");
        assert!(row.is_some(), "floor: the key was not ours");
    }

    /// One acquire+release of `key`.
    pub async fn cycle(&self, key: &str) {
        let token = floor_token();
        self.acquire(key, &token, false).await;
        self.release(key, &token).await;
    }
}

/// S3h's cycle for the floor: take the handoff key (polling), then the release to run later.
pub fn handoff(
    floor: Floor,
) -> impl Fn() -> Pin<Box<dyn Future<Output = Release> + Send>> + Send + Sync + Clone {
    move || {
        let floor = floor.clone();
        Box::pin(async move {
            let token = floor_token();
            floor.acquire("lock:{bench:handoff}", &token, true).await;
            let release: Release = Box::new(move || {
                Box::pin(async move { floor.release("lock:{bench:handoff}", &token).await })
            });
            release
        })
    }
}

/// Transactions committed in the server so far (each statement outside a transaction is
/// one), once every backend has reported its count (they do within a second).
pub fn statements(url: &str) -> u64 {
    std::thread::sleep(Duration::from_millis(1_500));
    let output = std::process::Command::new("psql")
        .args([url, "-tAc", "SELECT sum(xact_commit) FROM pg_stat_database"])
        .output()
        .expect("run psql");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Advisory locks as users take them: one connection per task.
#[derive(Clone)]
pub struct Advisory {
    clients: Arc<Vec<Client>>,
    /// `pg_advisory_xact_lock` in a transaction, else `pg_try_advisory_lock` and unlock.
    xact: bool,
}

impl Advisory {
    /// `tasks` connections to `url`.
    pub async fn connect(url: &str, tasks: usize, xact: bool) -> Self {
        let mut clients = Vec::with_capacity(tasks);
        for _ in 0..tasks {
            let (client, connection) = tokio_postgres::connect(url, NoTls)
                .await
                .expect("advisory-lock connection");
            tokio::spawn(connection);
            clients.push(client);
        }
        Self {
            clients: Arc::new(clients),
            xact,
        }
    }

    /// One lock and unlock of `key` on task `i`'s connection.
    pub async fn cycle(&self, i: usize, key: &str) {
        let client = &self.clients[i];
        if self.xact {
            client.batch_execute("BEGIN").await.expect("BEGIN");
            client
                .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key])
                .await
                .expect("pg_advisory_xact_lock");
            client.batch_execute("COMMIT").await.expect("COMMIT");
            return;
        }
        let row = client
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
            .await
            .expect("pg_try_advisory_lock");
        assert!(row.get::<_, bool>(0), "advisory: the key was taken");
        let row = client
            .query_one("SELECT pg_advisory_unlock(hashtext($1))", &[&key])
            .await
            .expect("pg_advisory_unlock");
        assert!(row.get::<_, bool>(0), "advisory: the key was not ours");
    }
}
