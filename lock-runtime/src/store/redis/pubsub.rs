//! Release notifications from Redis: one subscription connection per store, shared by all
//! keys and all waiters. A waiter watches its lock's channel; the release script publishes
//! on it.
//!
//! Waiters only change the *wanted* channels (under a mutex, before any `.await`, so a
//! cancelled waiter never leaks its registration). One control task owns the connection
//! and alone sends `SUBSCRIBE` and `UNSUBSCRIBE`, one at a time, to make the subscribed
//! channels match the wanted ones: an `UNSUBSCRIBE` can never overtake a later `SUBSCRIBE`
//! of the same channel. It also drops, on its own timer, the channels nobody has watched
//! for the idle time. On reconnect it subscribes again and wakes every waiter (a release
//! may have been missed); while it is down, waiters fall back to their re-check timer.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use futures_core::Stream;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::{sync::Notify, task::AbortHandle};

use super::endpoint::Endpoint;
use crate::store::Watch;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const LONGEST_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) struct Subscriber {
    shared: Arc<Shared>,
    task: Mutex<Option<AbortHandle>>,
}

struct Shared {
    endpoint: Endpoint,
    bound: Duration,
    /// How long a channel nobody watches stays subscribed.
    idle: Duration,
    state: Mutex<State>,
    /// Wakes the control task: the wanted channels changed.
    wanted_changed: Notify,
    /// Wakes waiters for a subscription: the subscribed channels changed.
    subscribed_changed: Notify,
    /// Tells the control task to drop its connection and connect again: the store's
    /// primary changed (Sentinel).
    moved: Notify,
}

#[derive(Default)]
struct State {
    /// The wanted channels.
    channels: HashMap<String, Channel>,
    /// Whether the control task has a live connection.
    connected: bool,
}

struct Channel {
    notify: Arc<Notify>,
    watchers: usize,
    idle_since: Instant,
    /// Confirmed subscribed on the live connection.
    subscribed: bool,
}

impl Subscriber {
    pub(crate) fn new(endpoint: Endpoint, bound: Duration, idle: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                endpoint,
                bound,
                idle,
                state: Mutex::new(State::default()),
                wanted_changed: Notify::new(),
                subscribed_changed: Notify::new(),
                moved: Notify::new(),
            }),
            task: Mutex::new(None),
        }
    }

    /// Drops the notification connection, if any, to connect again: the store's primary
    /// changed (Sentinel), and notifications come from the new one.
    pub(crate) fn moved(&self) {
        self.shared.moved.notify_one();
    }

    /// Watches the channel of `key`, waiting (within the time bound) until this process is
    /// subscribed to it, so a release published after this returns is not missed. Never
    /// fails: without a subscription the watch just stays quiet.
    pub(crate) async fn watch(&self, key: &str) -> Watch {
        self.start();
        let (notify, wait) = {
            let mut state = self.shared.state();
            let connected = state.connected;
            let channel = state
                .channels
                .entry(key.to_owned())
                .or_insert_with(|| Channel {
                    notify: Arc::new(Notify::new()),
                    watchers: 0,
                    idle_since: Instant::now(),
                    subscribed: false,
                });
            channel.watchers += 1;
            (channel.notify.clone(), connected && !channel.subscribed)
        };
        // Counted before any `.await`: dropping this future now still uncounts it.
        let registration = Registration {
            shared: Arc::downgrade(&self.shared),
            key: key.to_owned(),
        };
        if wait {
            self.shared.wanted_changed.notify_one();
            let subscribed = tokio::time::timeout(self.shared.bound, self.subscribed(key)).await;
            if subscribed.is_err() {
                tracing::debug!(key, "not subscribed in time; waiters re-check on a timer");
            }
        }
        Watch::new(notify, registration)
    }

    /// Completes once `key`'s channel is subscribed (or nobody can subscribe it now).
    async fn subscribed(&self, key: &str) {
        loop {
            let changed = self.shared.subscribed_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.shared.state();
                let done = !state.connected || state.channels.get(key).is_none_or(|c| c.subscribed);
                if done {
                    return;
                }
            }
            changed.await;
        }
    }

    /// Starts the control task, on the current runtime: once, and again if the runtime it
    /// ran on has shut down (the task never ends otherwise).
    fn start(&self) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        if task.is_some() {
            // Whatever it had subscribed went with its connection.
            self.shared.set_connected(false);
        }
        let handle = tokio::spawn(run(Arc::downgrade(&self.shared)));
        *task = Some(handle.abort_handle());
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // No critical section below can panic half-way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self, channel: &str) {
        if let Some(channel) = self.state().channels.get(channel) {
            channel.notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for channel in self.state().channels.values() {
            channel.notify.notify_waiters();
        }
    }

    /// Forgets the channels nobody has watched for the idle time.
    fn sweep(&self) {
        let idle = self.idle;
        self.state()
            .channels
            .retain(|_, c| c.watchers > 0 || c.idle_since.elapsed() < idle);
    }

    /// Records the connection as up or down; down, nothing is subscribed.
    fn set_connected(&self, connected: bool) {
        let mut state = self.state();
        state.connected = connected;
        for channel in state.channels.values_mut() {
            channel.subscribed = false;
        }
        drop(state);
        self.subscribed_changed.notify_waiters();
    }
}

/// Keeps one watcher counted on its channel until dropped.
struct Registration {
    shared: Weak<Shared>,
    key: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            if let Some(channel) = shared.state().channels.get_mut(&self.key) {
                channel.watchers = channel.watchers.saturating_sub(1);
                if channel.watchers == 0 {
                    channel.idle_since = Instant::now();
                }
            }
        }
    }
}

/// The control task: connect; then, until the connection is lost, subscribe and
/// unsubscribe as the wanted channels change and sweep idle ones; on loss, wake every
/// waiter and reconnect with backoff.
async fn run(shared: Weak<Shared>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let bound = strong.bound;
        let connect = async { strong.endpoint.client().await?.get_async_pubsub().await };
        let connected = tokio::time::timeout(bound, connect).await;
        let Ok(Ok(pubsub)) = connected else {
            drop(strong);
            tracing::debug!(?backoff, "release notifications: cannot connect; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(LONGEST_BACKOFF);
            continue;
        };
        backoff = FIRST_BACKOFF;
        let (mut sink, stream) = pubsub.split();
        // Completes (its sender dropped) when the connection ends.
        let (reading, mut ended) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn(read(Arc::downgrade(&strong), stream, reading));
        strong.set_connected(true);
        let mut sweep = tokio::time::interval(strong.idle / 2 + Duration::from_millis(1));
        let mut subscribed = HashSet::new();
        let mut synced = reconcile(&strong, &mut sink, &mut subscribed).await;
        // Everything wanted is subscribed again: a release may have been missed meanwhile.
        strong.wake_all();
        drop(strong);
        while synced {
            let Some(strong) = shared.upgrade() else {
                reader.abort();
                return;
            };
            tokio::select! {
                () = strong.wanted_changed.notified() => {}
                _ = sweep.tick() => strong.sweep(),
                _ = &mut ended => break,
                () = strong.moved.notified() => break,
            }
            synced = reconcile(&strong, &mut sink, &mut subscribed).await;
        }
        reader.abort();
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.set_connected(false);
        strong.wake_all();
        tracing::debug!("release notifications: connection lost; reconnecting");
    }
}

/// Makes the subscribed channels match the wanted ones: one `SUBSCRIBE`, then one
/// `UNSUBSCRIBE`, each within the time bound. False if the connection failed.
async fn reconcile(
    shared: &Shared,
    sink: &mut PubSubSink,
    subscribed: &mut HashSet<String>,
) -> bool {
    let (add, remove): (Vec<String>, Vec<String>) = {
        let state = shared.state();
        let add = state
            .channels
            .keys()
            .filter(|name| !subscribed.contains(*name))
            .cloned()
            .collect();
        let remove = subscribed
            .iter()
            .filter(|name| !state.channels.contains_key(*name))
            .cloned()
            .collect();
        (add, remove)
    };
    if !add.is_empty() {
        match tokio::time::timeout(shared.bound, sink.subscribe(add.clone())).await {
            Ok(Ok(())) => {}
            outcome => {
                tracing::debug!(?outcome, "release notifications: SUBSCRIBE failed");
                return false;
            }
        }
        let mut state = shared.state();
        for name in add {
            if let Some(channel) = state.channels.get_mut(&name) {
                channel.subscribed = true;
            }
            subscribed.insert(name);
        }
        drop(state);
        shared.subscribed_changed.notify_waiters();
    }
    if !remove.is_empty() {
        match tokio::time::timeout(shared.bound, sink.unsubscribe(remove.clone())).await {
            Ok(Ok(())) => {}
            outcome => {
                tracing::debug!(?outcome, "release notifications: UNSUBSCRIBE failed");
                return false;
            }
        }
        for name in &remove {
            subscribed.remove(name);
        }
    }
    true
}

/// Dispatches messages until the connection ends; then drops `_reading`.
async fn read(
    shared: Weak<Shared>,
    mut stream: PubSubStream,
    _reading: tokio::sync::oneshot::Sender<()>,
) {
    while let Some(message) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.wake(message.get_channel_name());
    }
}
