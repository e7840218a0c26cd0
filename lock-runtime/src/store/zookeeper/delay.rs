//! Chubby's lock-delay on ZooKeeper. A lease here is a session, and a holder's node goes
//! the moment its session does, so nothing expires late on its own: a holder taken with a
//! delay leaves a persistent `delay` node in the lock's directory (`{token} {delay ms}`)
//! when it is granted, and deletes it with its own node, in one transaction, when it
//! releases (an operator's release by force deletes it too). A contender that comes first
//! and finds another holder's `delay` node knows that holder went without releasing (its
//! session ended, or it abandoned the lock once its lease ran out), and waits out the
//! delay, counted from when it first saw the node, before it takes the lock and the node
//! over.
//!
//! The `delay` node is not a contender: Curator's recipes, which sort a directory's
//! children by their sequence and watch only their predecessor, sort it after every
//! contender and never wait for it (nor honour it: a Java service on the same lock takes no
//! delay).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use zookeeper_client as zk;

use super::{failed, Contender, ZooKeeperStore};
use crate::{store::StoreError, token::Token};

/// The name of the lock-delay node in a lock's directory.
pub(super) const DELAY: &str = "delay";

/// What a `delay` node says: whose it is and how long it keeps others out.
fn marker(token: &Token, delay: Duration) -> String {
    format!("{token} {}", delay.as_millis())
}

/// The holder's token and delay in a `delay` node's data (a delay that does not parse
/// counts as none).
fn parse(data: &[u8]) -> (&str, Duration) {
    let text = std::str::from_utf8(data).unwrap_or_default();
    let (token, ms) = text.split_once(' ').unwrap_or((text, ""));
    (token, Duration::from_millis(ms.parse().unwrap_or(0)))
}

impl ZooKeeperStore {
    /// For `contender`, which comes first in `key`'s directory (whose `children` were just
    /// listed), asking for `delay`: how long it must still wait for an earlier holder's
    /// delay (`Some`), or `None` once the lock is its own, its `delay` node written if it
    /// asked for one.
    pub(super) async fn wait_out_delay(
        &self,
        key: &str,
        contender: &mut Contender,
        children: &[String],
        delay: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        let client = &contender.session.client;
        let path = format!("{}/{DELAY}", contender.dir);
        let ours = marker(&contender.token, delay);
        if children.iter().any(|c| c == DELAY) {
            match client.get_data(&path).await {
                // Cleared in between.
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(failed(e)),
                Ok((data, stat)) => {
                    let (token, theirs) = parse(&data);
                    if token == contender.token.as_str() {
                        // Ours: a retry of a try that wrote it.
                        contender.marker = Some(stat.version);
                        return Ok(None);
                    }
                    if let Some(left) = self.delays.left(key, &data, theirs, Instant::now()) {
                        return Ok(Some(left));
                    }
                    let taken = match delay.is_zero() {
                        true => client
                            .delete(&path, Some(stat.version))
                            .await
                            .map(|()| None),
                        false => client
                            .set_data(&path, ours.as_bytes(), Some(stat.version))
                            .await
                            .map(|stat| Some(stat.version)),
                    };
                    return match taken {
                        Ok(marker) => {
                            self.delays.forget(key);
                            contender.marker = marker;
                            Ok(None)
                        }
                        // Changed in between: look again at once.
                        Err(zk::Error::NoNode | zk::Error::BadVersion) => Ok(Some(Duration::ZERO)),
                        Err(e) => Err(failed(e)),
                    };
                }
            }
        }
        if delay.is_zero() {
            return Ok(None);
        }
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match client.create(&path, ours.as_bytes(), &options).await {
            Ok(_) => {
                contender.marker = Some(0);
                Ok(None)
            }
            // Another's, made in between: look again at once.
            Err(zk::Error::NodeExists) => Ok(Some(Duration::ZERO)),
            Err(e) => Err(failed(e)),
        }
    }
}

/// How long after an earlier holder's delay ended this process still remembers it: a
/// contender that gave up waiting leaves its lock's entry behind, and a later one seeing
/// the same `delay` node after that waits the whole delay again (later, never sooner).
const REMEMBER: Duration = Duration::from_secs(60);

/// For each lock whose contender here waits out an earlier holder's lock delay: that
/// holder's `delay` node, and when its delay ends, counted from when this process first
/// saw the node.
#[derive(Default)]
pub(super) struct Delays(Mutex<HashMap<String, (Vec<u8>, Instant)>>);

impl Delays {
    /// How long the lock-delay of the holder whose `delay` node says `data` (a delay of
    /// `delay`) still keeps `key` out at `now`; `None` once over. Entries whose delay ended
    /// more than [`REMEMBER`] ago are forgotten whenever a lock is first seen.
    fn left(&self, key: &str, data: &[u8], delay: Duration, now: Instant) -> Option<Duration> {
        // No critical section below can panic half-way.
        let mut delays = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !delays.contains_key(key) {
            delays.retain(|_, (_, end)| now.saturating_duration_since(*end) <= REMEMBER);
        }
        let seen = delays
            .entry(key.to_owned())
            .or_insert_with(|| (data.to_vec(), now + delay));
        if seen.0 != data {
            *seen = (data.to_vec(), now + delay);
        }
        let left = seen.1.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    /// Forgets `key`'s earlier holder once a contender here took the lock over.
    fn forget(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_node_reads_back() {
        let token = Token::generate().expect("random source");
        let written = marker(&token, Duration::from_millis(1500));
        let (read, delay) = parse(written.as_bytes());
        assert_eq!(read, token.as_str());
        assert_eq!(delay, Duration::from_millis(1500));
        assert_eq!(parse(b"garbage"), ("garbage", Duration::ZERO));
    }

    #[test]
    fn a_delay_counts_from_when_its_node_was_first_seen() {
        let delays = Delays::default();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(delays.left("a", b"t1 1000", second, start), Some(second));
        let later = start + Duration::from_millis(400);
        assert_eq!(
            delays.left("a", b"t1 1000", second, later),
            Some(Duration::from_millis(600))
        );
        // Another holder's node starts the count again.
        assert_eq!(delays.left("a", b"t2 1000", second, later), Some(second));
        assert_eq!(delays.left("a", b"t2 1000", second, later + second), None);
        delays.forget("a");
        assert_eq!(delays.len(), 0);
    }

    #[test]
    fn delays_given_up_on_are_forgotten_a_while_after_they_end() {
        let delays = Delays::default();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        delays.left("gave-up", b"t1 1000", second, start);
        // Still remembered while its delay runs and for a while after it ended.
        delays.left("b", b"t2 1000", second, start + REMEMBER);
        assert_eq!(delays.len(), 2);
        // Forgotten once a new lock is seen after that.
        delays.left("c", b"t3 1000", second, start + second + REMEMBER * 2);
        assert_eq!(
            delays.len(),
            2,
            "only b (ended at REMEMBER + 1s) and c are left"
        );
        assert_eq!(
            delays.left("b", b"t2 1000", second, start + second + REMEMBER * 2),
            None
        );
    }
}
