//! One ZooKeeper session, and what the runtime follows of it: live, suspended (the
//! connection is down, the session may still be alive on the server) or ended.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use zookeeper_client as zk;

use super::ZooKeeperSettings;
use crate::{
    error::LockError,
    store::{Operation, SessionState, SessionWatch, StoreError},
};

pub(super) struct Session {
    pub(super) client: zk::Client,
    state: watch::Receiver<SessionState>,
    _follow: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self._follow.abort();
    }
}

impl Session {
    /// Opens a session, within the time bound or the session timeout, whichever is longer
    /// (as ZooKeeper's own clients, it tries the hosts in turn meanwhile).
    pub(super) async fn open(settings: &ZooKeeperSettings) -> Result<Self, LockError> {
        let within = settings.bound.max(settings.session_timeout);
        let connecting = zk::Client::connector()
            .with_session_timeout(settings.session_timeout)
            .with_connection_timeout(settings.bound)
            .connect(&settings.hosts);
        let client = match tokio::time::timeout(within, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                // The driver's own words (`timeout`, `node not exists`) say little alone.
                let what = match e {
                    zk::Error::Timeout => format!(
                        "no ZooKeeper session within {:?}: no server answered, or none \
                         accepted the session (the driver said: {e})",
                        within
                    ),
                    e => format!("could not open a ZooKeeper session: {e}"),
                };
                return Err(LockError::Backend {
                    operation: Operation::Connect,
                    source: StoreError::from(what),
                });
            }
            Err(_) => {
                return Err(LockError::Timeout {
                    operation: Operation::Connect,
                    after: within,
                })
            }
        };
        // The server ends a session a whole timeout after it last heard from the client,
        // and the client notices a silent connection within three fifths of it (eight of
        // its ticks; Java's client within two thirds): a third is left that is sure.
        let sure = client.session_timeout() / 3;
        let (publish, state) = watch::channel(SessionState::Live);
        let follow = tokio::spawn(follow(client.state_watcher(), publish, sure));
        Ok(Self {
            client,
            state,
            _follow: follow,
        })
    }

    pub(super) fn watch(&self) -> SessionWatch {
        self.state.clone()
    }

    pub(super) fn live(&self) -> bool {
        *self.state.borrow() == SessionState::Live
    }

    pub(super) fn ended(&self) -> bool {
        *self.state.borrow() == SessionState::Ended
    }
}

/// Publishes each change of the session's state until it ends.
async fn follow(
    mut states: zk::StateWatcher,
    publish: watch::Sender<SessionState>,
    sure: Duration,
) {
    loop {
        let current = *publish.borrow();
        let state = match states.changed().await {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                tracing::info!("the ZooKeeper connection is back");
                SessionState::Live
            }
            // Still cut off: the window keeps counting from the first loss.
            zk::SessionState::Disconnected if matches!(current, SessionState::Suspended { .. }) => {
                continue
            }
            zk::SessionState::Disconnected => {
                tracing::warn!(
                    "lost the ZooKeeper connection: locks count as held for {sure:?} more"
                );
                SessionState::Suspended {
                    since: Instant::now(),
                    for_at_most: sure,
                }
            }
            other => {
                tracing::warn!(state = ?other, "the ZooKeeper session ended: its locks are lost");
                publish.send_replace(SessionState::Ended);
                return;
            }
        };
        publish.send_replace(state);
    }
}
