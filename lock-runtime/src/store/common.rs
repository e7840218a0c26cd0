//! What several stores share below the contract: their connection settings, TTLs in
//! milliseconds, the drift margin, glob matching for operators' listings, the writer mark's
//! life, and the words of a kind mismatch.

use std::time::Duration;

use super::{LockKind, StoreError, StoredLock};

/// A TTL in whole milliseconds, rounded up, as Redis' `PX` takes it.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    let ms = ttl.as_millis() + u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The part of a TTL this process does not count on, for clock drift between it and the
/// store: 1 % of the TTL plus 2 ms, and never more than the TTL.
pub(crate) fn drift_margin(ttl: Duration) -> Duration {
    (ttl / 100 + Duration::from_millis(2)).min(ttl)
}

/// How long a writer that found readers in the way keeps new readers out after its last
/// try: several of a waiter's longest re-check pauses, so a writer that keeps waiting keeps
/// its place, and one that gave up blocks readers only this long.
pub(crate) const WRITER_WAITING: Duration = Duration::from_secs(1);

/// Whether `text` matches the glob `pattern` (`*` any run, `?` any one character, `\`
/// quotes the next), as Redis' `SCAN MATCH` does.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                back = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some('\\') if p.get(pi + 1) == Some(&t[ti]) => {
                pi += 2;
                ti += 1;
                continue;
            }
            Some(c) if *c == t[ti] && *c != '\\' => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match back {
            Some((star, at)) => {
                pi = star + 1;
                ti = at + 1;
                back = Some((star, at + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The error an operator's release by force of `key` gets while readers or a semaphore's
/// permits (`permits`, 0 for readers) hold it: it releases exclusive locks only, and a
/// shared holders' key is left as it is.
pub(crate) fn shared_held(key: &str, holders: usize, permits: u32) -> StoreError {
    let who = match (permits, holders) {
        (0, 1) => "1 reader of a read-write lock".to_owned(),
        (0, n) => format!("{n} readers of a read-write lock"),
        (p, n) => format!("{n} of a semaphore's {p} permits"),
    };
    StoreError::KindMismatch(format!(
        "`{key}` is held by {who}; releasing by force clears exclusive locks only (their \
         leases end on their own)"
    ))
}

/// What an operator's release by force found, with a shared key (which it leaves as it
/// is) turned into the error naming its holders.
pub(crate) fn refuse_shared(found: Option<StoredLock>) -> Result<Option<StoredLock>, StoreError> {
    match found {
        Some(lock) if lock.kind.is_shared() => {
            let permits = match lock.kind {
                LockKind::Permit { permits } => permits,
                _ => 0,
            };
            Err(shared_held(&lock.key, lock.sharers.len(), permits))
        }
        found => Ok(found),
    }
}

/// Why a shared request cannot join the holders of `key`, which hold it with `held`
/// permits (0: as readers) where the request says `wanted`.
pub(crate) fn mismatch(key: &str, held: u32, wanted: u32) -> StoreError {
    StoreError::KindMismatch(match (held, wanted) {
        (0, _) => format!("`{key}` is held by readers of a read-write lock, not as a semaphore"),
        (_, 0) => format!("`{key}` is a semaphore of {held} permits; it cannot be read-locked"),
        _ => format!(
            "`{key}` is a semaphore of {held} permits, but this request says {wanted}: every \
             process must name the same count"
        ),
    })
}

/// `{prefix}{{name}}`: the key shape of Redis (a hash tag, so a lock's keys share a
/// cluster slot) and of PostgreSQL (the rows earlier versions wrote).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn braced_key(prefix: &str, name: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + name.len() + 2);
    key.push_str(prefix);
    key.push('{');
    key.push_str(name);
    key.push('}');
    key
}

/// The name in a key made by [`braced_key`].
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn braced_name<'k>(prefix: &str, key: &'k str) -> &'k str {
    key.get(prefix.len() + 1..key.len().saturating_sub(1))
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn globs_match_as_redis_does() {
        assert!(glob_matches("lock:{*}", "lock:{order:7}"));
        assert!(!glob_matches("lock:{*}", "lock:{order:7}:fence"));
        assert!(glob_matches("lock:{order:?}", "lock:{order:7}"));
        assert!(!glob_matches("lock:{order:?}", "lock:{order:17}"));
        assert!(glob_matches("*a*b", "xxaxxb"));
        assert!(glob_matches("a\\*", "a*"));
        assert!(!glob_matches("a\\*", "ab"));
        assert!(glob_matches("", ""));
        assert!(!glob_matches("", "a"));
    }
}

/// What every store that connects is set up with (see
/// [`BackendBuilder`](crate::BackendBuilder)): its time bound, restart hold and health
/// checks. Each store's own settings are its options type.
#[derive(Debug, Clone)]
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
pub(crate) struct ConnectSettings {
    /// The time bound on one call.
    pub(crate) bound: Duration,
    /// The restart hold's floor; `None`: no hold.
    pub(crate) restart_guard: Option<Duration>,
    pub(crate) health_interval: Duration,
}
