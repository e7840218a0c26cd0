//! What `lockctl doctor` checks on Redis: what decides whether its locks are safe, read
//! from `INFO`, `TIME`, `CONFIG GET` and `ACL DRYRUN` (nothing is written). One server's
//! store, a cluster's primaries and each Redlock server share the checks of one server;
//! Sentinel adds its quorum and the primary it names.

use std::{future::Future, time::Instant};

use redis::{Cmd, Value};

use super::RedisStore;
use crate::store::{finding, Finding, StoreError, StoreFuture};

/// What one server says of itself.
pub(super) struct Facts {
    /// `INFO`; `None` where the user may not call it.
    info: Option<String>,
    /// The server's clock against this host's, where `TIME` answered.
    clock: Option<Finding>,
    /// `CONFIG GET appendfsync`, where the user may read the configuration.
    fsync: Option<String>,
}

impl Facts {
    fn field(&self, name: &str) -> Option<&str> {
        self.info
            .as_deref()?
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    }
}

/// Asks the server `send` talks to for its facts: `INFO` (which the library needs anyway),
/// `TIME`, and `CONFIG GET appendfsync` if allowed.
pub(super) async fn facts<F, Fut>(mut send: F) -> Result<Facts, StoreError>
where
    F: FnMut(Cmd) -> Fut,
    Fut: Future<Output = Result<Value, StoreError>>,
{
    let info = match send(redis::cmd("INFO")).await {
        Ok(info) => Some(redis::from_redis_value(info)?),
        // The library works without it (see `conn.rs`): so does the check.
        Err(e) if e.to_string().contains("no permissions") => None,
        Err(e) => return Err(e),
    };
    let asked = Instant::now();
    let time = send(redis::cmd("TIME")).await;
    let rtt = asked.elapsed();
    let clock = time
        .ok()
        .and_then(|time| redis::from_redis_value::<(u64, u64)>(time).ok())
        .map(|(secs, micros)| {
            finding::clock(i128::from(secs) * 1000 + i128::from(micros) / 1000, rtt)
        });
    let mut config = redis::cmd("CONFIG");
    config.arg("GET").arg("appendfsync");
    let fsync = match send(config).await {
        Ok(reply) => redis::from_redis_value::<Vec<String>>(reply)
            .ok()
            .and_then(|pair| pair.into_iter().nth(1)),
        Err(_) => None,
    };
    Ok(Facts { info, clock, fsync })
}

/// The checks of one server: eviction, persistence, replicas against the replicas a grant
/// waits for (`wanted`), and its clock.
pub(super) fn server(facts: &Facts, wanted: Option<u32>) -> Vec<Finding> {
    let mut found = Vec::new();
    if facts.info.is_none() {
        found.push(
            Finding::warn(
                "info",
                "INFO is refused to this user: the library cannot see a restart or a \
                 failover behind an open connection, and eviction, persistence and replicas \
                 could not be checked",
            )
            .fix("ACL SETUSER <user> +info"),
        );
        found.push(clock(facts));
        return found;
    }
    let version = facts.field("redis_version").unwrap_or("?");
    if facts.field("role") == Some("slave") {
        found.push(
            Finding::fail(
                "role",
                format!("Redis {version} is a replica: it cannot take locks"),
            )
            .fix("point the URL at the primary, or at Sentinel (redis+sentinel://)"),
        );
    } else {
        found.push(Finding::pass("role", format!("Redis {version}, a primary")));
    }
    found.push(eviction(facts));
    found.push(persistence(facts));
    found.push(replicas(facts, wanted));
    found.push(clock(facts));
    found
}

fn eviction(facts: &Facts) -> Finding {
    let policy = facts.field("maxmemory_policy").unwrap_or("?");
    let limit: u64 = facts
        .field("maxmemory")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let evicting = policy.starts_with("volatile-") || policy.starts_with("allkeys-");
    match (limit, evicting) {
        (0, _) => Finding::pass(
            "eviction",
            format!("no maxmemory: keys are never evicted (policy {policy})"),
        ),
        (_, false) => Finding::pass(
            "eviction",
            format!("maxmemory-policy {policy}: held locks are never evicted"),
        ),
        (limit, true) => Finding::fail(
            "eviction",
            format!(
                "maxmemory {limit} bytes with maxmemory-policy {policy}: under memory \
                 pressure the server evicts held locks (they carry a TTL), and a second \
                 owner then takes them"
            ),
        )
        .fix("CONFIG SET maxmemory-policy noeviction (and in redis.conf), or a server of its own for locks"),
    }
}

fn persistence(facts: &Facts) -> Finding {
    let aof = facts.field("aof_enabled") == Some("1");
    let fsync = facts.fsync.as_deref();
    let guard = "the library's restart guard (on by default) refuses grants after a \
                 restart until every lease from before can have ended, so this costs \
                 availability after a restart, not safety, while the guard is on";
    match (aof, fsync) {
        (true, Some("always")) => Finding::pass(
            "persistence",
            "appendonly yes, appendfsync always: a restart forgets no lock",
        ),
        (true, Some("everysec")) | (true, None) => Finding::pass(
            "persistence",
            format!(
                "appendonly yes, appendfsync {}: a crash can forget the last second's \
                 locks; {guard}",
                fsync.unwrap_or("not readable (CONFIG refused)")
            ),
        ),
        (true, Some(other)) => Finding::warn(
            "persistence",
            format!("appendonly yes but appendfsync {other}: a crash can forget recent locks; {guard}"),
        )
        .fix("CONFIG SET appendfsync everysec"),
        (false, _) => Finding::warn(
            "persistence",
            format!("appendonly no: a restart forgets every lock taken since the last snapshot; {guard}"),
        )
        .fix("CONFIG SET appendonly yes (and in redis.conf); keep the restart guard on"),
    }
}

fn replicas(facts: &Facts, wanted: Option<u32>) -> Finding {
    let connected: u32 = facts
        .field("connected_slaves")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    match wanted {
        Some(wanted) if connected < wanted => Finding::fail(
            "replicas",
            format!(
                "grants wait for {wanted} replicas to acknowledge (replicas_acknowledge), \
                 but {connected} are connected: every acquire fails"
            ),
        )
        .fix("connect the replicas, or lower replicas_acknowledge"),
        Some(wanted) => Finding::pass(
            "replicas",
            format!("{connected} replicas connected; each grant waits for {wanted} of them"),
        ),
        None if connected > 0 => Finding::warn(
            "replicas",
            format!(
                "{connected} replicas connected, and grants do not wait for them: a failover \
                 to a replica that had not received a lock forgets it (the failover \
                 detection then holds grants for a TTL, see restart_guard)"
            ),
        )
        .fix("BackendBuilder::replicas_acknowledge (say 1 replica within 100 ms), so a grant waits for a replica"),
        None => Finding::pass("replicas", "no replicas: nothing to wait for"),
    }
}

fn clock(facts: &Facts) -> Finding {
    match &facts.clock {
        Some(finding) => finding.clone(),
        None => Finding::warn("clock", "TIME was refused: the server's clock is unknown")
            .fix("allow TIME for the library's user: the scripts need it"),
    }
}

/// What a command is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Every lock: the commands the documentation lists for a minimal ACL user (but
    /// `INFO`).
    Locks,
    /// Readers and semaphores (and operators' looks at their keys).
    Shared,
    /// Several keys in one step.
    Several,
    /// Operators' listings (`lockctl list`).
    Listing,
    /// Seeing a restart or a failover behind an open connection (`INFO`).
    Restarts,
}

impl Need {
    fn feature(self) -> &'static str {
        match self {
            Self::Locks => "locks",
            Self::Shared => "readers and semaphores",
            Self::Several => "several keys in one step",
            Self::Listing => "lockctl list",
            Self::Restarts => "restart and failover detection",
        }
    }
}

/// The commands the library sends, with arguments for a dry run on `key`, at the top and
/// inside its scripts, and what each is for. `sharded`: a cluster's (`SPUBLISH`); `waits`:
/// grants wait for replicas (`WAIT`).
fn needed(key: &str, sharded: bool, waits: bool) -> Vec<(Need, Vec<&str>)> {
    use Need::{Listing, Locks, Restarts, Several, Shared};
    let sha = "0000000000000000000000000000000000000000";
    let mut commands = vec![
        (Locks, vec!["SET", key, "x", "NX", "PX", "1000"]),
        (Locks, vec!["EVALSHA", sha, "1", key]),
        (Locks, vec!["SCRIPT", "LOAD", "return 1"]),
        (Locks, vec!["PING"]),
        (Restarts, vec!["INFO"]),
        (Locks, vec!["GET", key]),
        (Locks, vec!["DEL", key]),
        (Locks, vec!["PEXPIRE", key, "1000"]),
        (Locks, vec!["PTTL", key]),
        (Locks, vec!["TIME"]),
        (Shared, vec!["ZADD", key, "1", "m"]),
        (Shared, vec!["ZCARD", key]),
        (Shared, vec!["ZRANGE", key, "0", "-1"]),
        (Shared, vec!["ZRANGEBYSCORE", key, "0", "1"]),
        (Shared, vec!["ZREMRANGEBYSCORE", key, "0", "1"]),
        (Shared, vec!["ZREM", key, "m"]),
        (Several, vec!["EXISTS", key]),
        (Listing, vec!["SCAN", "0"]),
    ];
    // A cluster's notifications are sharded, and its client learns the slots itself.
    if sharded {
        commands.push((Locks, vec!["SPUBLISH", key, ""]));
        commands.push((Locks, vec!["SSUBSCRIBE", key]));
        commands.push((Locks, vec!["SUNSUBSCRIBE", key]));
        commands.push((Locks, vec!["CLUSTER", "SLOTS"]));
    } else {
        commands.push((Locks, vec!["PUBLISH", key, ""]));
        commands.push((Locks, vec!["SUBSCRIBE", key]));
        commands.push((Locks, vec!["UNSUBSCRIBE", key]));
    }
    if waits {
        commands.push((Locks, vec!["WAIT", "1", "0"]));
    }
    commands
}

/// Whether the connection's user may send every command the library sends, on `key` and
/// its channel: `ACL DRYRUN` for each (Redis 7). A command every lock needs missing fails;
/// one only readers, semaphores, several keys, listings or restart detection need is a
/// warning naming them.
/// Where the user may not call `ACL`, says that it could not check.
pub(super) async fn acl<F, Fut>(key: &str, sharded: bool, waits: bool, mut send: F) -> Finding
where
    F: FnMut(Cmd) -> Fut,
    Fut: Future<Output = Result<Value, StoreError>>,
{
    let mut whoami = redis::cmd("ACL");
    whoami.arg("WHOAMI");
    let user: String = match send(whoami).await.map(redis::from_redis_value) {
        Ok(Ok(user)) => user,
        Ok(Err(e)) => return cannot_check(&e.to_string()),
        Err(e) => return cannot_check(&e.to_string()),
    };
    let mut denied: Vec<(Need, String)> = Vec::new();
    for (need, command) in needed(key, sharded, waits) {
        let mut dry = redis::cmd("ACL");
        dry.arg("DRYRUN").arg(&user).arg(&command);
        match send(dry).await {
            Ok(Value::Okay) => {}
            Ok(Value::SimpleString(s)) if s == "OK" => {}
            Ok(_) => denied.push((need, command[0].to_lowercase())),
            Err(e) => return cannot_check(&e.to_string()),
        }
    }
    if denied.is_empty() {
        return Finding::pass(
            "acl",
            format!("user `{user}` may send every command the library sends, on {key}"),
        );
    }
    let names: Vec<&str> = denied.iter().map(|(_, c)| c.as_str()).collect();
    let plus: Vec<String> = names.iter().map(|c| format!("+{c}")).collect();
    let fix = format!(
        "ACL SETUSER {user} {} (with ~<prefix>* and &<prefix>* for keys and channels)",
        plus.join(" ")
    );
    let mut features: Vec<&str> = Vec::new();
    for (need, _) in &denied {
        if !features.contains(&need.feature()) {
            features.push(need.feature());
        }
    }
    let said = format!(
        "user `{user}` may not send {} on {key}: {} fail",
        names.join(", "),
        features.join(", ")
    );
    if denied.iter().any(|(need, _)| *need == Need::Locks) {
        Finding::fail("acl", said).fix(fix)
    } else {
        Finding::warn("acl", said).fix(fix)
    }
}

fn cannot_check(why: &str) -> Finding {
    Finding::warn(
        "acl",
        format!("could not check the user's permissions (ACL WHOAMI / DRYRUN: {why})"),
    )
    .fix(
        "check by hand that the user may send the commands docs/safety.md lists for a minimal ACL user",
    )
}

impl RedisStore {
    /// The checks of one server's (or Sentinel's) store: see [`Operators::diagnose`].
    ///
    /// [`Operators::diagnose`]: crate::store::Operators::diagnose
    pub(crate) fn diagnose_store<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let conn = self.conn.get().await.map_err(|e| self.failed(e))?;
            let send = |command: Cmd| {
                let mut conn = conn.clone();
                async move {
                    command
                        .query_async::<Value>(&mut conn)
                        .await
                        .map_err(StoreError::from)
                }
            };
            let mut found = self.endpoint.diagnose(self.bound).await;
            let facts = facts(send).await?;
            found.extend(server(&facts, self.replicas.map(|(n, _)| n)));
            found.push(acl(key, false, self.replicas.is_some(), send).await);
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{needed, Need};

    #[test]
    fn a_cluster_is_checked_for_its_sharded_notifications() {
        let names = |sharded, waits| -> Vec<(Need, String)> {
            needed("lock:{k}", sharded, waits)
                .into_iter()
                .map(|(need, command)| (need, command.join(" ")))
                .collect()
        };
        let one = names(false, false);
        let cluster = names(true, true);
        let has =
            |list: &[(Need, String)], what: &str| list.iter().any(|(_, c)| c.starts_with(what));
        assert!(has(&one, "SUBSCRIBE lock:{k}") && has(&one, "PUBLISH lock:{k}"));
        assert!(!has(&one, "SSUBSCRIBE") && !has(&one, "WAIT"));
        assert!(has(&cluster, "SSUBSCRIBE lock:{k}") && has(&cluster, "SPUBLISH lock:{k}"));
        assert!(has(&cluster, "CLUSTER SLOTS") && has(&cluster, "WAIT 1 0"));
        assert!(!has(&cluster, "SUBSCRIBE") && !has(&cluster, "PUBLISH"));
        let info = one.iter().find(|(_, c)| c == "INFO").expect("INFO");
        assert_eq!(info.0, Need::Restarts);
    }
}
