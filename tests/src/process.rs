//! Processes of the tests: free ports, waiting for a server to be ready, signals, a holder
//! killed once it holds, and conditions awaited instead of fixed sleeps.

use std::{
    net::{Ipv4Addr, SocketAddrV4, TcpListener},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU16, Ordering},
    time::{Duration, Instant},
};

/// How long a server may take to start answering.
pub(crate) const START_BOUND: Duration = Duration::from_secs(20);

/// Ports are handed out below Linux's ephemeral range (32768 and up), so they cannot
/// collide with the source ports of outgoing connections. Each test process starts at a
/// different offset (from its pid) and every candidate is probed before use.
const PORT_BASE: u16 = 20_000;
const PORT_SPAN: u16 = 12_000;
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// Waits until the server process `child` (`what`, on `port`) is `ready`: `Some(child)`
/// then, `None` if it exited first (its port was taken). One that stays up but never gets
/// ready is killed and fails the test with its `log`: another port would not help.
pub(crate) fn await_ready(
    mut child: Child,
    what: &str,
    port: u16,
    bound: Duration,
    ready: impl Fn() -> bool,
    log: impl Fn() -> String,
) -> Option<Child> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if ready() {
            reap_with_this_process(child.id());
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "{what} on port {port} did not become ready within {bound:?}; log:\n{}",
        log()
    );
}

/// Makes sure the server `pid` does not outlive this test process: a small shell watches
/// both and, once this process is gone while the server still runs (a server kept in a
/// static, or a test binary killed), kills the server and removes its directory under the
/// temporary directory. A server stopped as usual ends the watch (within a second).
fn reap_with_this_process(pid: u32) {
    let dir = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .ok()
        .filter(|dir| {
            dir.starts_with(std::env::temp_dir()) && dir.to_string_lossy().contains("lock-tests")
        })
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let watch = r#"while kill -0 "$1" 2>/dev/null; do
        if ! kill -0 "$2" 2>/dev/null; then
            kill -9 "$1"; [ -n "$3" ] && rm -rf "$3"; exit 0
        fi
        sleep 1
    done"#;
    let spawned = Command::new("sh")
        .args(["-c", watch, "reaper", &pid.to_string()])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("cannot watch server {pid} ({e}): it may outlive a failed test run");
    }
}

/// A port on 127.0.0.1 that nobody listens on right now.
pub fn free_port() -> u16 {
    let offset = (std::process::id() % u32::from(PORT_SPAN)) as u16;
    loop {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = PORT_BASE + (offset.wrapping_add(n.wrapping_mul(7))) % PORT_SPAN;
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        if TcpListener::bind(addr).is_ok() {
            return port;
        }
    }
}

/// Sends a signal (`"-STOP"`, `"-CONT"`, `"-KILL"`, ...) to a process with `kill`.
pub fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}

/// Polls `condition` every few milliseconds until it holds or `bound` passes; returns
/// whether it held. For tests that must await a state, not sleep a fixed time.
pub async fn eventually(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the `lock-hold` binary (`binary`: the test's `CARGO_BIN_EXE_lock-hold`) with
/// `args` and `env`, waits (up to 30 s) until it says it holds its lock, then kills it with
/// SIGKILL; returns when it said so. A dead holder that never released.
pub async fn kill_holder_once_held(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Instant {
    let mut holder = tokio::process::Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn lock-hold");
    let stdout = holder.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let held = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("lock-hold held in time")
        .expect("read")
        .expect("a line");
    let held_at = Instant::now();
    assert!(held.starts_with("held "), "{held}");
    signal(holder.id().expect("running"), "-KILL");
    let _ = holder.wait().await;
    held_at
}

/// The lines the processes `children` print on their standard output (which they must have
/// piped), as they come, each with the index of the process in `children`. The channel
/// ends once every process closed its output.
pub fn output_lines(
    children: &mut [tokio::process::Child],
) -> tokio::sync::mpsc::UnboundedReceiver<(usize, String)> {
    let (send, lines) = tokio::sync::mpsc::unbounded_channel();
    for (index, child) in children.iter_mut().enumerate() {
        let stdout = child.stdout.take().expect("a piped standard output");
        let send = send.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
            while let Ok(Some(line)) = lines.next_line().await {
                if send.send((index, line)).is_err() {
                    break;
                }
            }
        });
    }
    lines
}

/// [`eventually`] with a condition that awaits (a store call, say).
pub async fn eventually_async<F: std::future::Future<Output = bool>>(
    bound: Duration,
    mut condition: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
