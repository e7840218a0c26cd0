//! Release notifications: one connection per store that `LISTEN`s on the table's channel,
//! opened when the first waiter subscribes, and kept (reconnecting after a failure) for
//! as long as the store lives. Each notification names the released key; the waiters of
//! that key are woken. After a reconnection every waiter is woken once, since a release
//! may have gone unheard meanwhile. Connecting and `LISTEN` are bounded in time, and the
//! connection answers `SELECT 1` within the bound every health interval or is replaced: a
//! silent one would leave waiters to their re-check timers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    task::Poll,
    time::Duration,
};

use tokio::sync::{mpsc, watch, Notify};
use tokio_postgres::AsyncMessage;

use super::{connect::Target, sql::Sql};
use crate::store::Watch;

/// Pauses between tries to reconnect the listening connection.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const LONGEST_BACKOFF: Duration = Duration::from_secs(2);

pub(super) struct Listener {
    target: Target,
    sql: Arc<Sql>,
    bound: Duration,
    health_interval: Duration,
    waiters: Mutex<HashMap<String, Weak<Notify>>>,
    /// Whether the connection listens now.
    live: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Listener {
    pub(super) fn new(
        target: Target,
        sql: Arc<Sql>,
        bound: Duration,
        health_interval: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            target,
            sql,
            bound,
            health_interval,
            waiters: Mutex::default(),
            live: watch::channel(false).0,
            task: Mutex::default(),
        })
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Notify>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Release notifications for `key`, once the connection listens (the caller bounds the
    /// wait for that).
    pub(super) async fn watch(self: &Arc<Self>, key: &str) -> Watch {
        let notify = {
            let mut waiters = self.waiters();
            waiters.retain(|_, w| w.strong_count() > 0);
            match waiters.get(key).and_then(Weak::upgrade) {
                Some(notify) => notify,
                None => {
                    let notify = Arc::new(Notify::new());
                    waiters.insert(key.to_owned(), Arc::downgrade(&notify));
                    notify
                }
            }
        };
        self.start();
        let mut live = self.live.subscribe();
        let _ = live.wait_for(|live| *live).await;
        Watch::new(notify.clone(), notify)
    }

    fn start(self: &Arc<Self>) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_none() {
            let this = Arc::downgrade(self);
            *task = Some(tokio::spawn(listen(this)).abort_handle());
        }
    }

    pub(super) fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }

    fn wake(&self, key: &str) {
        if let Some(notify) = self.waiters().get(key).and_then(Weak::upgrade) {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for notify in self.waiters().values().filter_map(Weak::upgrade) {
            notify.notify_waiters();
        }
    }
}

/// Listens until the store is gone, reconnecting after each failure.
async fn listen(this: Weak<Listener>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(listener) = this.upgrade() else {
            return;
        };
        let target = listener.target.clone();
        let channel = listener.sql.channel.clone();
        let every = (listener.bound, listener.health_interval);
        drop(listener);
        let outcome = listen_once(&this, &target, &channel, every).await;
        let Some(listener) = this.upgrade() else {
            return;
        };
        listener.live.send_replace(false);
        match outcome {
            Ok(()) => backoff = FIRST_BACKOFF,
            Err(error) => {
                tracing::debug!(%error, "PostgreSQL lock notifications lost; reconnecting");
            }
        }
        // Waiters re-check: a release may have gone unheard.
        listener.wake_all();
        drop(listener);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LONGEST_BACKOFF);
    }
}

/// Why a listening connection ended.
#[derive(Debug)]
enum Ended {
    Failed(tokio_postgres::Error),
    /// Connecting, `LISTEN` or a health check took longer than the time bound.
    Silent,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "{}", super::sql::describe(error)),
            Self::Silent => f.write_str("no answer within the time bound"),
        }
    }
}

/// `work` within `bound`.
async fn within<T>(
    bound: Duration,
    work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Ended> {
    match tokio::time::timeout(bound, work).await {
        Ok(outcome) => outcome.map_err(Ended::Failed),
        Err(_) => Err(Ended::Silent),
    }
}

/// One listening connection, until it ends.
async fn listen_once(
    this: &Weak<Listener>,
    target: &Target,
    channel: &str,
    (bound, interval): (Duration, Duration),
) -> Result<(), Ended> {
    let (client, mut connection) = within(bound, target.connect()).await?;
    let (send, mut keys) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(std::future::poll_fn(move |cx| loop {
        match connection.poll_message(cx) {
            Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => {
                let _ = send.send(n.payload().to_owned());
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    }));
    // Stopped however this ends, so a silent connection's task does not linger.
    let _driver = AbortOnDrop(driver.abort_handle());
    within(
        bound,
        client.batch_execute(&format!("LISTEN \"{channel}\"")),
    )
    .await?;
    match this.upgrade() {
        Some(listener) => {
            listener.live.send_replace(true);
            // Heard nothing before now: every waiter re-checks.
            listener.wake_all();
        }
        None => return Ok(()),
    }
    let mut next_check = tokio::time::Instant::now() + interval;
    loop {
        tokio::select! {
            key = keys.recv() => {
                let Some(key) = key else { break };
                let Some(listener) = this.upgrade() else {
                    return Ok(());
                };
                listener.wake(&key);
            }
            () = tokio::time::sleep_until(next_check) => {
                within(bound, client.simple_query("SELECT 1")).await?;
                next_check = tokio::time::Instant::now() + interval;
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(outcome) => outcome.map_err(Ended::Failed),
        Err(_) => Ok(()),
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
