//! The lock channels a process watches on a cluster (sharded pub/sub), and the
//! notifications that wake their waiters.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use arc_swap::ArcSwap;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

use super::Current;

/// The lock channels this process watches: each one's notify and watcher count.
#[derive(Default)]
pub(super) struct Channels(Mutex<HashMap<String, (Arc<Notify>, usize)>>);

impl Channels {
    pub(super) fn map(&self) -> MutexGuard<'_, HashMap<String, (Arc<Notify>, usize)>> {
        // No critical section below can panic half-way.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes the waiters of the lock whose release notification `push` is.
pub(super) fn deliver(channels: &std::sync::Weak<Channels>, push: &PushInfo) {
    if push.kind != PushKind::SMessage {
        return;
    }
    let Some(channels) = channels.upgrade() else {
        return;
    };
    if let Some(Value::BulkString(name)) = push.data.first() {
        let name = String::from_utf8_lossy(name);
        if let Some((notify, _)) = channels.map().get(name.as_ref()) {
            notify.notify_waiters();
        }
    }
}

/// Keeps one lock's channel watched; the last one dropped unsubscribes.
pub(super) struct Registration {
    pub(super) channels: Arc<Channels>,
    pub(super) current: Arc<ArcSwap<Current>>,
    pub(super) name: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.channels.map();
        let Some(entry) = map.get_mut(&self.name) else {
            return;
        };
        entry.1 -= 1;
        if entry.1 > 0 {
            return;
        }
        map.remove(&self.name);
        let current = self.current.load();
        // A connection whose runtime is gone subscribed to nothing its successor keeps.
        if !current.runtime.get() {
            return;
        }
        let (mut conn, name) = (current.conn.clone(), std::mem::take(&mut self.name));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = conn.sunsubscribe(name).await;
            });
        }
    }
}
