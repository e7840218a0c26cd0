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

use std::time::{Duration, Instant};

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
                    if let Some(left) = self.delay_left(key, &data, theirs) {
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
                            self.delays().remove(key);
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

    /// How long the lock-delay of the holder whose `delay` node says `data` still keeps
    /// `key` out, counted from when this process first saw that node; `None` once over.
    fn delay_left(&self, key: &str, data: &[u8], delay: Duration) -> Option<Duration> {
        let now = Instant::now();
        let mut delays = self.delays();
        let seen = delays
            .entry(key.to_owned())
            .or_insert_with(|| (data.to_vec(), now + delay));
        if seen.0 != data {
            *seen = (data.to_vec(), now + delay);
        }
        let left = seen.1.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
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
}
