//! A TCP proxy for the faults a real network has.

use std::{
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::*;

/// A TCP proxy on 127.0.0.1 in front of a server, for faults a real network has: it can
/// stop forwarding on the connections it has (a proxy that hangs), stop forwarding on new
/// ones, send new connections elsewhere (DNS or a virtual IP moved), and move the
/// connections it has to another server while their client side stays open (a proxy
/// that hides a restart or failover behind one TCP connection).
///
/// It runs on a thread of its own with its own runtime, and stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    control: Arc<ProxyControl>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct ProxyControl {
    target: AtomicU16,
    /// Connections numbered from `frozen_from` up to below `frozen_below` do not forward.
    frozen_from: std::sync::atomic::AtomicU64,
    frozen_below: std::sync::atomic::AtomicU64,
    freeze_new: std::sync::atomic::AtomicBool,
    next_id: std::sync::atomic::AtomicU64,
    /// Bumped to move every open connection to `target`.
    epoch: std::sync::atomic::AtomicU64,
    /// How long each chunk of the server's replies is held back, in microseconds.
    delay_us: std::sync::atomic::AtomicU64,
    /// Bumped to close every open connection, both sides.
    cut: std::sync::atomic::AtomicU64,
    changed: tokio::sync::Notify,
}

impl Proxy {
    /// A proxy on a free port that forwards to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> Self {
        let control = Arc::new(ProxyControl {
            target: AtomicU16::new(target),
            frozen_from: std::sync::atomic::AtomicU64::new(0),
            frozen_below: std::sync::atomic::AtomicU64::new(0),
            freeze_new: std::sync::atomic::AtomicBool::new(false),
            next_id: std::sync::atomic::AtomicU64::new(0),
            epoch: std::sync::atomic::AtomicU64::new(0),
            delay_us: std::sync::atomic::AtomicU64::new(0),
            cut: std::sync::atomic::AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        });
        let port = free_port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, listening) = std::sync::mpsc::channel();
        let accepting = control.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("bind the proxy");
                let _ = ready.send(());
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        let control = accepting.clone();
                        tokio::spawn(async move {
                            let _ = forward(client, control).await;
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        listening.recv().expect("the proxy listens");
        Self {
            port,
            control,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, for a ZooKeeper client.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops forwarding on every connection open now (they stay open, silent).
    pub fn freeze_existing(&self) {
        self.freeze(0..self.connections());
    }

    /// Stops forwarding on the connections numbered in `ids` (in the order they were
    /// accepted, from 0), and on no other.
    pub fn freeze(&self, ids: std::ops::Range<u64>) {
        self.control.frozen_from.store(ids.start, Ordering::SeqCst);
        self.control.frozen_below.store(ids.end, Ordering::SeqCst);
        self.control.changed.notify_waiters();
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> u64 {
        self.control.next_id.load(Ordering::SeqCst)
    }

    /// Whether connections accepted from now on forward nothing.
    pub fn freeze_new(&self, frozen: bool) {
        self.control.freeze_new.store(frozen, Ordering::SeqCst);
        self.control.changed.notify_waiters();
    }

    /// Sends connections accepted from now on to `127.0.0.1:<target>`.
    pub fn redirect_new(&self, target: u16) {
        self.control.target.store(target, Ordering::SeqCst);
    }

    /// Holds back every reply from the server by `delay` (a slow server or link), on the
    /// connections open now and new ones; requests are forwarded at once meanwhile, and
    /// replies keep their order.
    pub fn delay_replies(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.control.delay_us.store(us, Ordering::SeqCst);
    }

    /// Closes every open connection, client side and server side (a network that drops
    /// them); new ones are forwarded as before.
    pub fn cut_all(&self) {
        self.control.cut.fetch_add(1, Ordering::SeqCst);
        self.control.changed.notify_waiters();
    }

    /// Moves every open connection, and new ones, to `127.0.0.1:<target>`: each drops its
    /// server side and opens a new one there, keeping its client side open.
    pub fn switch_all(&self, target: u16) {
        self.control.target.store(target, Ordering::SeqCst);
        self.control.epoch.fetch_add(1, Ordering::SeqCst);
        self.control.changed.notify_waiters();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn forward(
    mut client: tokio::net::TcpStream,
    control: Arc<ProxyControl>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let id = control.next_id.fetch_add(1, Ordering::SeqCst);
    let frozen_from_start = control.freeze_new.load(Ordering::SeqCst);
    let frozen = |control: &ProxyControl| {
        frozen_from_start
            || (control.frozen_from.load(Ordering::SeqCst)
                ..control.frozen_below.load(Ordering::SeqCst))
                .contains(&id)
    };
    let mut epoch = control.epoch.load(Ordering::SeqCst);
    let cut = control.cut.load(Ordering::SeqCst);
    let mut server =
        tokio::net::TcpStream::connect(("127.0.0.1", control.target.load(Ordering::SeqCst)))
            .await?;
    let (mut up, mut down) = ([0u8; 16384], [0u8; 16384]);
    // Replies held back (`delay_replies`), each until its time, in order: requests keep
    // flowing meanwhile, as over a slow link.
    let mut held: std::collections::VecDeque<(tokio::time::Instant, Vec<u8>)> =
        std::collections::VecDeque::new();
    loop {
        let changed = control.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if control.cut.load(Ordering::SeqCst) != cut {
            return Ok(());
        }
        let now = control.epoch.load(Ordering::SeqCst);
        if now != epoch {
            epoch = now;
            server = tokio::net::TcpStream::connect((
                "127.0.0.1",
                control.target.load(Ordering::SeqCst),
            ))
            .await?;
            continue;
        }
        if frozen(&control) {
            // Hold everything; the sockets stay open.
            changed.await;
            continue;
        }
        let due = held.front().map(|(at, _)| *at);
        tokio::select! {
            () = &mut changed => {}
            n = client.read(&mut up) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                server.write_all(&up[..n]).await?;
            }
            n = server.read(&mut down) => {
                let n = n?;
                if n == 0 {
                    // The server closed: what it said before still arrives, in its time.
                    while let Some((at, reply)) = held.pop_front() {
                        tokio::time::sleep_until(at).await;
                        client.write_all(&reply).await?;
                    }
                    return Ok(());
                }
                let delay = Duration::from_micros(control.delay_us.load(Ordering::SeqCst));
                if delay.is_zero() && held.is_empty() {
                    client.write_all(&down[..n]).await?;
                } else {
                    held.push_back((tokio::time::Instant::now() + delay, down[..n].to_vec()));
                }
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)),
                if due.is_some() =>
            {
                let now = tokio::time::Instant::now();
                while held.front().is_some_and(|(at, _)| *at <= now) {
                    if let Some((_, reply)) = held.pop_front() {
                        client.write_all(&reply).await?;
                    }
                }
            }
        }
    }
}
