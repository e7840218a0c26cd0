//! Release notifications from Redis: one subscription connection per store, shared by all
//! keys and all waiters. A waiter watches its lock's channel; the release script publishes
//! on it. The connection reconnects by itself and resubscribes; while it is down, and
//! whenever a message is lost, waiters fall back to their re-check timer.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use futures_core::Stream;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::{sync::Notify, task::AbortHandle};

use super::Watch;

/// How long an unwatched channel stays subscribed, in case a waiter comes back.
const IDLE: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const LONGEST_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) struct Subscriber {
    shared: Arc<Shared>,
    task: Mutex<Option<AbortHandle>>,
}

struct Shared {
    client: redis::Client,
    bound: Duration,
    state: Mutex<State>,
}

struct State {
    channels: HashMap<String, Channel>,
    /// The live connection's sink; `None` while disconnected.
    sink: Option<PubSubSink>,
    last_sweep: Instant,
}

struct Channel {
    notify: Arc<Notify>,
    watchers: usize,
    idle_since: Instant,
}

impl Subscriber {
    pub(crate) fn new(client: redis::Client, bound: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                bound,
                state: Mutex::new(State {
                    channels: HashMap::new(),
                    sink: None,
                    last_sweep: Instant::now(),
                }),
            }),
            task: Mutex::new(None),
        }
    }

    /// Watches the channel of `key`, subscribing to it first if this process was not
    /// subscribed yet. Never fails: without a subscription the watch just stays quiet.
    pub(crate) async fn watch(&self, key: &str) -> Watch {
        self.start();
        let (notify, subscribe_with) = {
            let mut state = self.shared.state();
            state.sweep(&self.shared);
            let sink = state.sink.clone();
            match state.channels.get_mut(key) {
                Some(channel) => {
                    channel.watchers += 1;
                    (channel.notify.clone(), None)
                }
                None => {
                    let notify = Arc::new(Notify::new());
                    let channel = Channel {
                        notify: notify.clone(),
                        watchers: 1,
                        idle_since: Instant::now(),
                    };
                    state.channels.insert(key.to_owned(), channel);
                    (notify, sink)
                }
            }
        };
        if let Some(mut sink) = subscribe_with {
            let subscribed = tokio::time::timeout(self.shared.bound, sink.subscribe(key)).await;
            if !matches!(subscribed, Ok(Ok(()))) {
                tracing::debug!(
                    key,
                    ?subscribed,
                    "subscription failed; waiters re-check on a timer"
                );
            }
        }
        let registration = Registration {
            shared: Arc::downgrade(&self.shared),
            key: key.to_owned(),
        };
        Watch::new(notify, registration)
    }

    /// Starts the connection task once.
    fn start(&self) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_none() {
            let handle = tokio::spawn(run(Arc::downgrade(&self.shared)));
            *task = Some(handle.abort_handle());
        }
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
}

impl State {
    /// Unsubscribes from channels nobody watched for a while.
    fn sweep(&mut self, shared: &Shared) {
        if self.last_sweep.elapsed() < IDLE {
            return;
        }
        self.last_sweep = Instant::now();
        let idle: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.watchers == 0 && c.idle_since.elapsed() >= IDLE)
            .map(|(name, _)| name.clone())
            .collect();
        if idle.is_empty() {
            return;
        }
        for name in &idle {
            self.channels.remove(name);
        }
        if let Some(mut sink) = self.sink.clone() {
            let bound = shared.bound;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(bound, sink.unsubscribe(idle)).await;
            });
        }
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

/// The connection task: connect, resubscribe, dispatch messages; on loss, wake every
/// waiter (a release may have been missed) and reconnect with backoff.
async fn run(shared: Weak<Shared>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let bound = strong.bound;
        let connected = tokio::time::timeout(bound, strong.client.get_async_pubsub()).await;
        let Ok(Ok(pubsub)) = connected else {
            drop(strong);
            tracing::debug!(?backoff, "release notifications: cannot connect; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(LONGEST_BACKOFF);
            continue;
        };
        backoff = FIRST_BACKOFF;
        let (mut sink, mut stream) = pubsub.split();
        let channels: Vec<String> = {
            let mut state = strong.state();
            // Set the sink first: channels added from now on subscribe themselves.
            state.sink = Some(sink.clone());
            state.channels.keys().cloned().collect()
        };
        if !channels.is_empty() {
            let _ = tokio::time::timeout(bound, sink.subscribe(channels)).await;
        }
        strong.wake_all();
        drop(strong);
        while let Some(message) = next(&mut stream).await {
            let Some(strong) = shared.upgrade() else {
                return;
            };
            strong.wake(message.get_channel_name());
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.state().sink = None;
        strong.wake_all();
        tracing::debug!("release notifications: connection lost; reconnecting");
    }
}

async fn next(stream: &mut PubSubStream) -> Option<redis::Msg> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}
