//! Which shard serves a lock, and whether that shard is held back after a restart or a
//! failover. The connection's health task (`connection.rs`) asks every primary who it is (`INFO`: its `run_id` and
//! replication id) and any node which primary serves which slots (`CLUSTER SLOTS`). A
//! primary whose identity changed (it restarted, or lost its data), or that became a
//! primary since the last look (a replica promoted in a failover), starts a hold on its own
//! slots: no lock there is granted until every lease granted before may have ended. Locks
//! on the other shards go on as before; moving slots (a reshard) starts no hold, since
//! their keys move with them.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

use redis::Value;

pub(super) struct Shards {
    /// The hold's floor; `None`: no hold.
    floor: Option<Duration>,
    /// The longest TTL asked of this store so far, in milliseconds.
    longest_ttl_ms: AtomicU64,
    /// Set while some shard is held: the hot path reads only this.
    holding: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Slot ranges and the address of the primary that serves each.
    slots: Vec<(u16, u16, String)>,
    /// Each primary's `(run_id, replication id)`, by address; `None` before the first look.
    identities: Option<HashMap<String, (String, String)>>,
    /// Since when each held primary is held, by address.
    holds: HashMap<String, Instant>,
}

impl Shards {
    pub(super) fn new(floor: Option<Duration>) -> Self {
        Self {
            floor,
            longest_ttl_ms: AtomicU64::new(0),
            holding: AtomicBool::new(false),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No critical section below can panic half-way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a TTL asked for, so a hold covers the longest lease granted.
    pub(super) fn note_ttl(&self, ttl: Duration) {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.longest_ttl_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn span(&self) -> Option<Duration> {
        let longest = Duration::from_millis(self.longest_ttl_ms.load(Ordering::Relaxed));
        self.floor.map(|floor| floor.max(longest))
    }

    /// How long the shard that serves `key` is still held back, if it is.
    pub(super) fn hold(&self, key: &str) -> Option<Duration> {
        if !self.holding.load(Ordering::Acquire) {
            return None;
        }
        let span = self.span()?;
        let mut state = self.state();
        state.holds.retain(|_, since| since.elapsed() < span);
        if state.holds.is_empty() {
            self.holding.store(false, Ordering::Release);
            return None;
        }
        let slot = slot(key.as_bytes());
        let owner = state
            .slots
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, owner)| owner.clone())?;
        let since = state.holds.get(&owner)?;
        Some(span.saturating_sub(since.elapsed()))
    }

    /// Takes in what each primary said of itself (address, `INFO` text) and the slot map.
    pub(super) fn observe(&self, infos: Vec<(String, String)>, slots: Vec<(u16, u16, String)>) {
        let now: HashMap<String, (String, String)> = infos
            .into_iter()
            .map(|(address, info)| {
                let field = |name: &str| {
                    info.lines()
                        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                        .map(str::trim)
                        .unwrap_or_default()
                        .to_owned()
                };
                (address, (field("run_id"), field("master_replid")))
            })
            .collect();
        let mut state = self.state();
        if !slots.is_empty() {
            state.slots = slots;
        }
        if let Some(before) = &state.identities {
            let changed: Vec<String> = now
                .iter()
                .filter(|(address, identity)| before.get(*address) != Some(*identity))
                .map(|(address, _)| address.clone())
                .collect();
            for address in changed {
                if self.floor.is_some() {
                    tracing::warn!(
                        primary = %address,
                        hold = ?self.span(),
                        "a lock store shard restarted or failed over: no lock on its slots is \
                         granted until every earlier lease has ended"
                    );
                    state.holds.insert(address, Instant::now());
                    self.holding.store(true, Ordering::Release);
                }
            }
        }
        state.identities = Some(now);
    }
}

/// `(address, text)` of each node's answer to a command sent to several.
pub(super) fn by_address(answers: Value) -> Vec<(String, String)> {
    let Value::Map(answers) = answers else {
        return Vec::new();
    };
    answers
        .into_iter()
        .filter_map(|(address, answer)| {
            let address = redis::from_redis_value::<String>(address).ok()?;
            let text = redis::from_redis_value::<String>(answer).ok()?;
            Some((address, text))
        })
        .collect()
}

/// `CLUSTER SLOTS`: `[[start, end, [ip, port, ...], replicas...], ...]`.
pub(super) fn slot_ranges(reply: &Value) -> Vec<(u16, u16, String)> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            let number = |value: &Value| match value {
                Value::Int(n) => u16::try_from(*n).ok(),
                _ => None,
            };
            let (start, end) = (number(parts.first()?)?, number(parts.get(1)?)?);
            let Value::Array(primary) = parts.get(2)? else {
                return None;
            };
            let ip = redis::from_redis_value_ref::<String>(primary.first()?).ok()?;
            let port = number(primary.get(1)?)?;
            Some((start, end, format!("{ip}:{port}")))
        })
        .collect()
}

/// The hash slot of `key`: CRC16 (XMODEM) of its hash tag (the part between the first `{`
/// and the next `}`, if not empty) or of the whole key, modulo 16384.
pub(super) fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % 16384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::{crc16, slot};

    #[test]
    fn slots_are_redis_clusters() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"lock:{order:7}"), slot(b"order:7"));
        assert_eq!(slot(b"lock:{order:7}:fence"), slot(b"order:7"));
        // An empty tag is no tag.
        assert_eq!(slot(b"{}x"), crc16(b"{}x") % 16384);
        // As the `redis` crate routes them.
        for key in [
            "lock:{order:7}",
            "plain",
            "a{b}c{d}",
            "{}x",
            "x{",
            "ünïcödé",
        ] {
            assert_eq!(
                redis::cluster_routing::Slot::new(slot(key.as_bytes())),
                Some(redis::cluster_routing::Slot::for_key(key)),
                "{key}"
            );
        }
    }
}
