//! What waiters and holders follow of a store: release hints ([`Watch`]) and the state
//! of the session that holds a lock ([`SessionState`]).

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

/// A wake-up hint for waiters: notified when the lock it watches may have been released.
/// Waiters also re-check on a timer, so a store may notify late, spuriously, or never.
///
/// ```
/// use lock_runtime::store::Watch;
/// use std::sync::Arc;
/// use tokio::sync::Notify;
///
/// // A store without notifications returns this (the default `Store::watch`):
/// let quiet = Watch::none();
/// // A store with them hands out its per-key `Notify`, kept registered while the watch lives:
/// let notify = Arc::new(Notify::new());
/// let watch = Watch::new(notify.clone(), ());
/// # drop((quiet, watch));
/// ```
pub struct Watch {
    notify: Arc<Notify>,
    _registration: Option<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

impl Watch {
    /// A watch that never fires: waiters rely on their re-check timer alone.
    pub fn none() -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            _registration: None,
        }
    }

    /// A watch on `notify`, kept registered with the store until dropped (through
    /// `registration`'s `Drop`).
    pub fn new(notify: Arc<Notify>, registration: impl Send + Sync + 'static) -> Self {
        Self {
            notify,
            _registration: Some(Box::new(registration)),
        }
    }

    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }

    /// The notify itself, for a watch that merges several.
    #[cfg_attr(not(feature = "redlock"), allow(dead_code))]
    pub(crate) fn shared_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

/// What the runtime follows of a store session (see [`Sessions::session`](super::Sessions::session)).
pub type SessionWatch = tokio::sync::watch::Receiver<SessionState>;

/// The state of a store session that holds locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Connected: the locks it holds are held.
    Live,
    /// Cut off from the store since `since`: the locks it holds are safe only until
    /// `since + for_at_most` (the store may end the session after that), unless the
    /// session is live again first.
    Suspended {
        /// When the connection was lost.
        since: std::time::Instant,
        /// How long after that the locks are surely still held.
        for_at_most: Duration,
    },
    /// Ended: every lock it held is gone.
    Ended,
}
