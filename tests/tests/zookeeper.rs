//! The ZooKeeper store against a real standalone ZooKeeper server: Curator's lock,
//! read-write lock and semaphore recipes (with Curator itself, in Java), a fair queue across
//! processes, the session as the lease.

use std::time::{Duration, Instant};

use lock_runtime::{Backend, LockError, LockMode, LockOptions};
use lock_tests::{eventually, eventually_async, ZooKeeperServer};
use zookeeper_client as zk;

const SESSION: Duration = Duration::from_secs(2);

/// One test at a time: each runs a ZooKeeper server (a JVM) of its own, and a 2-core machine
/// starting several at once makes their first sessions time out.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn backend(server: &ZooKeeperServer) -> Backend {
    Backend::builder()
        .zookeeper_session_timeout(SESSION)
        .connect(&server.url())
        .await
        .expect("connect to ZooKeeper")
}

/// A client of our own, to look at the nodes past the code under test.
async fn look(server: &ZooKeeperServer) -> zk::Client {
    zk::Client::connect(&server.hosts())
        .await
        .expect("a ZooKeeper client of the test's own")
}

async fn contenders(client: &zk::Client, lock: &str) -> Vec<String> {
    let mut children = match client.list_children(&format!("/locks/{lock}")).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => Vec::new(),
        Err(e) => panic!("list /locks/{lock}: {e}"),
    };
    children.sort_by_key(|c| c.rsplit('-').next().map(str::to_owned));
    children
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_a_curator_node_and_a_busy_contender_leaves_the_queue() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let (a, b) = (backend(&server).await, backend(&server).await);
    let zk = look(&server).await;
    let options = LockOptions::new(Duration::from_secs(5)).fencing(true);
    let guard = a.acquire("order:7", &options).await.expect("acquire");
    let nodes = contenders(&zk, "order:7").await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert!(
        nodes[0].starts_with("_c_") && nodes[0].contains("-lock-"),
        "{nodes:?}"
    );
    // The fencing token is the zxid that created the node.
    let (_, stat) = zk
        .get_data(&format!("/locks/order:7/{}", nodes[0]))
        .await
        .expect("the holder's node");
    assert_eq!(guard.fencing_token(), u64::try_from(stat.czxid).ok());

    let started = Instant::now();
    match b.acquire("order:7", &options).await {
        Err(LockError::Busy { .. }) => {}
        other => panic!("a second owner: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    // The busy contender's node goes (in the background).
    let gone = eventually_async(Duration::from_secs(5), || async {
        contenders(&zk, "order:7").await.len() == 1
    })
    .await;
    assert!(gone, "the busy contender's node stayed");
    guard.release().await.expect("release");
    assert!(contenders(&zk, "order:7").await.is_empty());
    let again = b.acquire("order:7", &options).await.expect("free again");
    assert!(again.fencing_token() > Some(u64::try_from(stat.czxid).unwrap_or(0)));
    again.release().await.expect("release");
}

/// A `lock-hold` process holding `name` for `hold`; its output lines come through the
/// returned receiver.
struct Holder {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Holder {
    fn spawn(url: &str, name: &str, ttl: Duration, session: Duration, hold: Duration) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lock-hold"));
        command.args([
            url,
            name,
            &ttl.as_millis().to_string(),
            &session.as_millis().to_string(),
            &hold.as_millis().to_string(),
        ]);
        Self::start(&mut command)
    }

    /// Runs `command`, its output lines coming through [`line`](Self::line).
    fn start(command: &mut tokio::process::Command) -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a holder process");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = send.send(line);
            }
        });
        Self { child, lines }
    }

    /// Sends it a line (a `CuratorHold` holding "until told" lets go).
    async fn tell(&mut self) {
        use tokio::io::AsyncWriteExt as _;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").await.expect("tell the holder");
        stdin.flush().await.expect("tell the holder");
    }

    /// The next line it prints, within `bound`.
    async fn line(&mut self, bound: Duration) -> String {
        tokio::time::timeout(bound, self.lines.recv())
            .await
            .expect("lock-hold said nothing in time")
            .expect("lock-hold ended")
    }

    /// Its fencing token, once it holds the lock.
    async fn held(&mut self) -> u64 {
        let line = self.line(Duration::from_secs(30)).await;
        line.strip_prefix("held ")
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("expected `held <token>`, got {line:?}"))
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }
}

/// Three processes take one lock over and over: no two ever hold it at once, and waiting is
/// a fair queue: with all three contending, a process that just released goes to the back,
/// so it (almost) never holds the lock twice in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_take_turns_first_come_first_served() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let workers =
        lock_tests::LockLoops::spawn(env!("CARGO_BIN_EXE_lock-loop"), &server.url(), 3, 6, 2000);
    let holdings = workers.holdings().await;
    let middle = holdings[holdings.len() / 2].enter;
    lock_tests::assert_exclusive_around(&holdings, middle);
    // Count repeats only while all three were contending (the middle 80 %).
    let steady = &holdings[holdings.len() / 10..holdings.len() * 9 / 10];
    let repeats = steady
        .windows(2)
        .filter(|w| w[0].process == w[1].process)
        .count();
    eprintln!("{} holdings, {repeats} repeats", steady.len());
    assert!(steady.len() > 30, "too few holdings: {}", steady.len());
    assert!(
        repeats * 20 <= steady.len(),
        "{repeats} of {} holdings went to the process that held just before",
        steady.len()
    );
}

/// A holder frozen (`SIGSTOP`) past its session timeout: the next contender gets the lock
/// once ZooKeeper ended the frozen session and not before; the frozen holder, resumed, is
/// told `Lost`, and its fencing token is below the new holder's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_holder_loses_the_lock_when_its_session_expires() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let session = Duration::from_secs(2);
    let mut holder = Holder::spawn(
        &server.url(),
        "frozen",
        Duration::from_secs(30),
        session,
        Duration::from_secs(20),
    );
    let frozen_fence = holder.held().await;
    lock_tests::signal(holder.pid(), "-STOP");
    let stopped = Instant::now();
    let next = backend(&server).await;
    let options = LockOptions::new(Duration::from_secs(5))
        .wait(Duration::from_secs(20))
        .fencing(true);
    let guard = next
        .acquire("frozen", &options)
        .await
        .expect("acquire after expiry");
    let waited = stopped.elapsed();
    // ZooKeeper ends the session a whole timeout after it last heard from the holder, whose
    // client pings when idle for 3/8 of its 1 s connection timeout: not before 3/4 of the
    // session after the freeze.
    assert!(
        waited >= session * 3 / 4,
        "granted {waited:?} after the holder froze: before its session could expire"
    );
    assert!(guard.fencing_token() > Some(frozen_fence));
    lock_tests::signal(holder.pid(), "-CONT");
    assert_eq!(holder.line(Duration::from_secs(10)).await, "outcome lost");
    guard.release().await.expect("release");
}

/// A holder killed (`SIGKILL`): the next contender, already waiting, gets the lock within the
/// session timeout (plus 100 ms: ZooKeeper checks sessions once a tick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holders_lock_passes_on_within_the_session_timeout() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let session = Duration::from_secs(2);
    let mut holder = Holder::spawn(
        &server.url(),
        "killed",
        Duration::from_secs(30),
        session,
        Duration::from_secs(20),
    );
    holder.held().await;
    let next = backend(&server).await;
    let waiter = tokio::spawn(async move {
        let options = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(20));
        let guard = next.acquire("killed", &options).await;
        (Instant::now(), guard)
    });
    // The waiter is queued behind the holder before the kill.
    let zk = look(&server).await;
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&zk, "killed").await.len() == 2
        })
        .await
    );
    lock_tests::signal(holder.pid(), "-KILL");
    let killed = Instant::now();
    let (granted, guard) = waiter.await.expect("waiter");
    let guard = guard.expect("the lock passes on");
    let after = granted - killed;
    assert!(
        after <= session + Duration::from_millis(100),
        "granted {after:?} after the kill"
    );
    guard.release().await.expect("release");
}

/// The server restarted quickly (its data, and so its sessions, kept): holders keep their
/// locks and nobody else gets them. Down for longer than a third of the session timeout:
/// every holder is told `Lost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_keeps_locks_when_quick_and_loses_them_when_not() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    // A long session: the restart (a JVM start) must fit in a third of it.
    let client = Backend::builder()
        .zookeeper_session_timeout(Duration::from_secs(45))
        .connect(&server.url())
        .await
        .expect("connect");
    let options = LockOptions::new(Duration::from_secs(60));
    let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let holding = {
        let client = client.clone();
        let options = options.clone();
        tokio::spawn(async move {
            client
                .with_lock("kept", &options, async {
                    let _ = started.send(());
                    let _ = finished.await;
                })
                .await
        })
    };
    running.await.expect("the body started");
    let fenced = LockOptions::new(Duration::from_secs(60)).fencing(true);
    let before = client.acquire("fenced", &fenced).await.expect("acquire");
    let fence_before = before.fencing_token();
    before.release().await.expect("release");
    let server = server.restarted().await;
    // Connected again within the session: still held, and by nobody else.
    let other = backend_with(&server, Duration::from_secs(45)).await;
    match other.acquire("kept", &options).await {
        Err(LockError::Busy { .. }) => {}
        other => panic!("a second holder after a quick restart: {other:?}"),
    }
    assert!(
        !holding.is_finished(),
        "the holder was told its lock was lost"
    );
    // Fencing tokens keep growing across the restart (zxids carry the server's epoch).
    let after = other.acquire("fenced", &fenced).await.expect("acquire");
    assert!(
        after.fencing_token() > fence_before,
        "{fence_before:?} then {:?}",
        after.fencing_token()
    );
    after.release().await.expect("release");
    let _ = finish.send(());
    holding
        .await
        .expect("holder")
        .expect("the body ran under the lock to the end");

    // Now down for longer than a third of a short session: the holder is told `Lost`.
    let short = backend_with(&server, Duration::from_secs(3)).await;
    let (_finish, finished) = tokio::sync::oneshot::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let holding = tokio::spawn(async move {
        short
            .with_lock("lost", &LockOptions::new(Duration::from_secs(60)), async {
                let _ = started.send(());
                let _ = finished.await;
            })
            .await
    });
    running.await.expect("the body started");
    let mut server = server;
    server.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(10), holding)
        .await
        .expect("the holder was never told")
        .expect("holder");
    assert!(
        matches!(outcome, Err(LockError::Lost { .. })),
        "{outcome:?}"
    );
}

/// The connection drops while the contender's node is being created (the request reached
/// the server, its answer did not): the client finds its own node by name instead of
/// making a second, and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_create_finds_its_own_node() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let proxy = lock_tests::Proxy::start(server.port());
    let client = Backend::builder()
        .zookeeper_session_timeout(Duration::from_secs(10))
        .zookeeper(&proxy.hosts())
        .await
        .expect("connect through the proxy");
    let zk = look(&server).await;
    // Make the directory first, so the create below is the only request in flight.
    zk.create(
        "/locks/cut",
        &[],
        &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .expect("the lock's directory");
    proxy.delay_replies(Duration::from_secs(3));
    let acquiring = tokio::spawn(async move {
        let options = LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(20));
        let guard = client.acquire("cut", &options).await;
        (client, guard)
    });
    // The create reached the server; cut the connection before its answer comes back.
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&zk, "cut").await.len() == 1
        })
        .await
    );
    proxy.delay_replies(Duration::ZERO);
    proxy.cut_all();
    let (_client, guard) = tokio::time::timeout(Duration::from_secs(20), acquiring)
        .await
        .expect("the acquire finished")
        .expect("task");
    let guard = guard.expect("the lock, after the lost connection");
    assert_eq!(
        contenders(&zk, "cut").await.len(),
        1,
        "a second contender node"
    );
    guard.release().await.expect("release");
    assert!(contenders(&zk, "cut").await.is_empty(), "an orphaned node");
}

async fn backend_with(server: &ZooKeeperServer, session: Duration) -> Backend {
    Backend::builder()
        .zookeeper_session_timeout(session)
        .connect(&server.url())
        .await
        .expect("connect to ZooKeeper")
}

/// Compiles `tests/java/CuratorHold.java` (once per test binary) against Debian's Curator
/// jars; returns the class path to run it with.
fn curator_classpath() -> String {
    static COMPILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COMPILED
        .get_or_init(|| {
            lock_tests::curator_classpath("CuratorHold", env!("CARGO_TARGET_TMPDIR").as_ref())
        })
        .clone()
}

/// `CuratorHold` taking `/locks/<lock>` with Curator's `InterProcessMutex`.
fn curator(server: &ZooKeeperServer, lock: &str, wait: Duration, hold: Duration) -> Holder {
    curator_with(server, lock, wait, Some(hold), "mutex")
}

/// `CuratorHold` taking `/locks/<lock>` with Curator's `recipe` (`mutex`, `read`, `write`,
/// `permits=N`), holding it for `hold` (`None`: until [told](Holder::tell)).
fn curator_with(
    server: &ZooKeeperServer,
    lock: &str,
    wait: Duration,
    hold: Option<Duration>,
    recipe: &str,
) -> Holder {
    let hold = hold.map_or_else(|| "-1".to_owned(), |h| h.as_millis().to_string());
    let mut command = tokio::process::Command::new("java");
    command
        .args(["-cp", &curator_classpath(), "CuratorHold", &server.hosts()])
        .arg(format!("/locks/{lock}"))
        .arg(wait.as_millis().to_string())
        .arg(hold)
        .arg(recipe);
    Holder::start(&mut command)
}

/// A Java service locking with Curator's `InterProcessMutex` and a Rust one locking the
/// same name here exclude each other, both ways, and hand the lock over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_interprocess_mutex_and_this_crate_exclude_each_other() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let rust = backend(&server).await;
    let options = LockOptions::new(Duration::from_secs(10));

    // Java holds it: Rust is refused, then gets it once Java lets go.
    let mut java = curator(
        &server,
        "interop",
        Duration::from_secs(10),
        Duration::from_secs(2),
    );
    assert_eq!(java.line(Duration::from_secs(30)).await, "held");
    match rust.acquire("interop", &options).await {
        Err(LockError::Busy { .. }) => {}
        other => panic!("Rust got a lock Curator holds: {other:?}"),
    }
    // Curator's node carries its own data (the client's address), not our record: the
    // holder is shown by its token alone.
    let held = rust
        .inspect("interop")
        .await
        .expect("inspect")
        .expect("held");
    assert_eq!(held.holder, None);
    assert_eq!(held.token.len(), 32, "{held:?}");
    assert!(
        held.token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{held:?}"
    );
    let guard = rust
        .acquire("interop", &options.clone().wait(Duration::from_secs(20)))
        .await
        .expect("Rust gets it after Curator");
    assert_eq!(java.line(Duration::from_secs(5)).await, "released");

    // Rust holds it: Curator is refused within its wait, then gets it once Rust lets go.
    let mut java = curator(
        &server,
        "interop",
        Duration::from_millis(500),
        Duration::ZERO,
    );
    assert_eq!(java.line(Duration::from_secs(30)).await, "busy");
    let mut java = curator(&server, "interop", Duration::from_secs(20), Duration::ZERO);
    let zk = look(&server).await;
    // Curator is queued behind us before we let go.
    assert!(
        eventually_async(Duration::from_secs(30), || async {
            contenders(&zk, "interop").await.len() == 2
        })
        .await
    );
    guard.release().await.expect("release");
    assert_eq!(java.line(Duration::from_secs(10)).await, "held");
}

/// A Java service electing a leader with Curator's `LeaderSelector` and a Rust one
/// campaigning here take part in one election: while one side leads, the other waits, and
/// a resignation hands leadership over, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_leader_selector_and_this_crate_share_one_election() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let rust = backend(&server).await;
    let options = lock_runtime::LeaderOptions::new(Duration::from_secs(10));

    // Java leads: Rust waits, and is elected once Java gives leadership up.
    let mut java = curator_with(&server, "election", Duration::from_secs(20), None, "leader");
    assert_eq!(java.line(Duration::from_secs(30)).await, "held");
    let candidate = {
        let (rust, options) = (rust.clone(), options.clone());
        tokio::spawn(async move { rust.campaign("election", &options).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !candidate.is_finished(),
        "Rust leads beside Curator's leader"
    );
    java.tell().await;
    let leading = tokio::time::timeout(Duration::from_secs(10), candidate)
        .await
        .expect("elected once Curator's leader gave up")
        .expect("join")
        .expect("campaign");
    assert!(leading.term() > 0);
    assert_eq!(java.line(Duration::from_secs(5)).await, "released");

    // Rust leads: Curator's selector waits, and is elected once Rust resigns.
    let mut java = curator_with(
        &server,
        "election",
        Duration::from_millis(500),
        Some(Duration::ZERO),
        "leader",
    );
    assert_eq!(java.line(Duration::from_secs(30)).await, "busy");
    let mut java = curator_with(
        &server,
        "election",
        Duration::from_secs(20),
        Some(Duration::ZERO),
        "leader",
    );
    let zk = look(&server).await;
    assert!(
        eventually_async(Duration::from_secs(30), || async {
            contenders(&zk, "election").await.len() == 2
        })
        .await,
        "Curator's candidate never queued"
    );
    leading.resign().await.expect("resign");
    assert_eq!(java.line(Duration::from_secs(10)).await, "held");
}

/// The children of `/locks/<lock>/<sub>` (a semaphore's `leases` or `locks`).
async fn children(client: &zk::Client, lock: &str, sub: &str) -> Vec<String> {
    match client.list_children(&format!("/locks/{lock}/{sub}")).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => Vec::new(),
        Err(e) => panic!("list /locks/{lock}/{sub}: {e}"),
    }
}

/// A Java service using Curator's `InterProcessReadWriteLock` and a Rust one (writers as
/// Curator's, `zookeeper_curator_write_lock`) share one read-write lock: readers beside
/// readers, a writer alone, each side waiting for the other and woken when it lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_read_write_lock_and_this_crate_share_one_lock() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let rust = Backend::builder()
        .zookeeper_session_timeout(SESSION)
        .zookeeper_curator_write_lock(true)
        .connect(&server.url())
        .await
        .expect("connect to ZooKeeper");
    let zk = look(&server).await;
    let write = LockOptions::new(Duration::from_secs(10));
    let read = write.clone().mode(LockMode::Read);
    let long = Duration::from_secs(20);

    // Java reads: a Rust reader joins it, a Rust writer waits until Java lets go.
    let mut java = curator_with(&server, "rw", long, None, "read");
    assert_eq!(java.line(Duration::from_secs(30)).await, "held");
    let reader = rust
        .acquire("rw", &read)
        .await
        .expect("a reader beside Java's");
    reader.release().await.expect("release");
    let busy = rust.acquire("rw", &write).await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    let waiting = {
        let (rust, write) = (rust.clone(), write.clone().wait(long));
        tokio::spawn(async move { rust.acquire("rw", &write).await })
    };
    // Queued behind Java's reader under Curator's node names (the refused writer's node,
    // deleted in the background, may still be there a moment).
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let queue = contenders(&zk, "rw").await;
            queue.len() == 2
                && queue.iter().any(|c| c.contains("-__WRIT__"))
                && queue.iter().any(|c| c.contains("-__READ__"))
        })
        .await,
        "the Rust writer queued behind Java's reader: {:?}",
        contenders(&zk, "rw").await
    );
    java.tell().await;
    assert_eq!(java.line(Duration::from_secs(10)).await, "released");
    let writer = waiting
        .await
        .expect("task")
        .expect("the Rust writer once Java's reader left");

    // Rust writes: Java's readers and writers are refused, and one that waits gets in once
    // Rust lets go.
    for recipe in ["read", "write"] {
        let mut java = curator_with(
            &server,
            "rw",
            Duration::from_millis(500),
            Some(Duration::ZERO),
            recipe,
        );
        assert_eq!(java.line(Duration::from_secs(30)).await, "busy", "{recipe}");
    }
    let mut java = curator_with(&server, "rw", long, None, "write");
    assert!(
        eventually_async(Duration::from_secs(30), || async {
            contenders(&zk, "rw").await.len() == 2
        })
        .await,
        "Java's writer queued behind Rust's"
    );
    writer.release().await.expect("release");
    assert_eq!(java.line(Duration::from_secs(10)).await, "held");
    // Java writes: a Rust reader waits for it.
    let busy = rust.acquire("rw", &read).await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    let waiting = {
        let (rust, read) = (rust.clone(), read.clone().wait(long));
        tokio::spawn(async move { rust.acquire("rw", &read).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    java.tell().await;
    assert_eq!(java.line(Duration::from_secs(10)).await, "released");
    let reader = waiting
        .await
        .expect("task")
        .expect("the Rust reader once Java's writer left");
    // Rust reads: a Java reader joins, a Java writer is refused.
    let mut java = curator_with(&server, "rw", long, Some(Duration::ZERO), "read");
    assert_eq!(java.line(Duration::from_secs(30)).await, "held");
    let mut java = curator_with(
        &server,
        "rw",
        Duration::from_millis(500),
        Some(Duration::ZERO),
        "write",
    );
    assert_eq!(java.line(Duration::from_secs(30)).await, "busy");
    reader.release().await.expect("release");
}

/// A Java service using Curator's `InterProcessSemaphoreV2` and a Rust one share one
/// semaphore: together they never hold more leases than its count, and each side's
/// waiter gets the lease the other gives back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_semaphore_and_this_crate_share_one_semaphore() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let rust = backend(&server).await;
    let zk = look(&server).await;
    let options = LockOptions::new(Duration::from_secs(10));
    let long = Duration::from_secs(20);

    // Java takes one of two leases, Rust the other: a third is refused on either side.
    let mut first = curator_with(&server, "sem", long, None, "permits=2");
    assert_eq!(first.line(Duration::from_secs(30)).await, "held");
    let permit = rust
        .acquire_permit("sem", 2, &options)
        .await
        .expect("Rust's lease beside Java's");
    let leases = children(&zk, "sem", "leases").await;
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(
        leases
            .iter()
            .all(|l| l.starts_with("_c_") && l.contains("-lease-")),
        "{leases:?}"
    );
    let third = rust.acquire_permit("sem", 2, &options).await;
    assert!(matches!(third, Err(LockError::Busy { .. })), "{third:?}");
    let mut refused = curator_with(
        &server,
        "sem",
        Duration::from_millis(500),
        Some(Duration::ZERO),
        "permits=2",
    );
    assert_eq!(refused.line(Duration::from_secs(30)).await, "busy");

    // A Java waiter gets the lease Rust gives back.
    let mut waiter = curator_with(&server, "sem", long, None, "permits=2");
    assert!(
        eventually_async(Duration::from_secs(30), || async {
            !children(&zk, "sem", "locks").await.is_empty()
        })
        .await,
        "Java's waiter queued"
    );
    permit.release().await.expect("release");
    assert_eq!(waiter.line(Duration::from_secs(10)).await, "held");

    // Full again (two Java holders): a Rust waiter gets the lease Java gives back.
    let busy = rust.acquire_permit("sem", 2, &options).await;
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    let waiting = {
        let (rust, options) = (rust.clone(), options.clone().wait(long));
        tokio::spawn(async move { rust.acquire_permit("sem", 2, &options).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.tell().await;
    assert_eq!(first.line(Duration::from_secs(10)).await, "released");
    let permit = waiting
        .await
        .expect("task")
        .expect("the Rust waiter once Java gave a lease back");
    assert_eq!(children(&zk, "sem", "leases").await.len(), 2);
    waiter.tell().await;
    assert_eq!(waiter.line(Duration::from_secs(10)).await, "released");
    permit.release().await.expect("release");
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            children(&zk, "sem", "leases").await.is_empty()
        })
        .await,
        "every lease given back"
    );
}

/// A waiter cancelled while queued, a guard dropped without release and a body that panics
/// all leave the queue: no node stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_waiters_dropped_guards_and_panics_leave_no_node() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let (a, b) = (backend(&server).await, backend(&server).await);
    let zk = look(&server).await;
    let options = LockOptions::new(Duration::from_secs(10));
    let guard = a.acquire("left", &options).await.expect("acquire");
    let waiter = tokio::spawn(async move {
        b.acquire(
            "left",
            &LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(60)),
        )
        .await
    });
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&zk, "left").await.len() == 2
        })
        .await
    );
    waiter.abort();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&zk, "left").await.len() == 1
        })
        .await,
        "the cancelled waiter's node stayed"
    );
    drop(guard);
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&zk, "left").await.is_empty()
        })
        .await,
        "the dropped guard's node stayed"
    );
    // With a wait: the dropped guard's background release passes this process's turn on
    // once the store answered, a moment after the node is gone.
    let panicking = tokio::spawn({
        let a = a.clone();
        let waiting = options.clone().wait(Duration::from_secs(5));
        async move {
            a.with_lock("left", &waiting, async {
                panic!("the body panics");
            })
            .await
        }
    });
    assert!(panicking.await.is_err(), "the body panicked");
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&zk, "left").await.is_empty()
        })
        .await,
        "the panicking body's node stayed"
    );
    // The panicking body's background release passes this process's turn on once the
    // store answered, a moment after the node is gone: wait for it.
    a.acquire("left", &options.clone().wait(Duration::from_secs(5)))
        .await
        .expect("free")
        .release()
        .await
        .expect("release");
}

/// `ttl` on ZooKeeper: at least the session timeout (a dead holder keeps its lock until its
/// session expires), else a clear error before any node is made; renewal keeps a lock past
/// its TTL while the session lives; an empty lock directory goes away by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_covers_the_session_renewal_keeps_the_lock_and_empty_directories_go() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let client = backend(&server).await;
    let zk = look(&server).await;
    let err = client
        .acquire("short", &LockOptions::new(SESSION / 2))
        .await
        .expect_err("a TTL shorter than the session");
    match &err {
        LockError::InvalidInput(why) => assert!(why.contains("session timeout"), "{why}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(contenders(&zk, "short").await.is_empty());

    let renewed = LockOptions::new(SESSION).renew(true);
    let outcome = client
        .with_lock("renewed", &renewed, async {
            tokio::time::sleep(SESSION * 2).await;
            "finished"
        })
        .await
        .expect("renewal keeps the lock past its TTL");
    assert_eq!(outcome, "finished");
    let gone = eventually_async(Duration::from_secs(20), || async {
        matches!(zk.check_stat("/locks/renewed").await, Ok(None))
    })
    .await;
    assert!(gone, "the empty lock directory stayed");
}

/// The URL sets what the builder would (`LOCK_RUNTIME_URL` reaches no builder): the
/// session timeout, which is the shortest TTL, and the root. A TTL under the session
/// timeout names the URL setting that lowers it; a bad setting is refused before any
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_sets_the_session_timeout_and_the_root() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let zk = look(&server).await;
    let five = LockOptions::new(Duration::from_secs(5));

    let default = Backend::builder()
        .connect(&server.url())
        .await
        .expect("connect");
    match default.acquire("short", &five).await {
        Err(LockError::InvalidInput(why)) => assert!(
            why.contains("6s") && why.contains("?session_timeout="),
            "the error names neither the session timeout nor the URL setting: {why}"
        ),
        other => panic!("a 5 s TTL under a 6 s session: expected InvalidInput, got {other:?}"),
    }

    let url = format!("{}?session_timeout=3s&root=/via-url", server.url());
    let set = Backend::builder()
        .connect(&url)
        .await
        .expect("connect with settings");
    let guard = set
        .acquire("short", &five)
        .await
        .expect("a 5 s TTL under a 3 s session");
    let nodes = zk
        .list_children("/via-url/short")
        .await
        .expect("the lock under the root");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    guard.release().await.expect("release");

    // A chroot that does not exist is named as such (the driver says `node not exists`).
    let missing = format!("{}/no-such-chroot", server.url());
    match Backend::builder().connect(&missing).await {
        Err(err) => assert!(
            err.to_string()
                .contains("the chroot `/no-such-chroot` does not exist"),
            "{err}"
        ),
        Ok(_) => panic!("connected under a chroot that does not exist"),
    }

    for (query, names) in [
        ("session_timeout=3", "unit"),
        ("session_timeout=3 s", "unit"),
        ("sesion_timeout=3s", "unknown setting `sesion_timeout`"),
        ("curator_write_lock=yes", "`true` or `false`"),
    ] {
        let started = Instant::now();
        match Backend::builder()
            .connect(&format!("zookeeper://127.0.0.1:1?{query}"))
            .await
        {
            Err(LockError::InvalidInput(why)) => assert!(why.contains(names), "{query}: {why}"),
            other => panic!("{query}: expected InvalidInput, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{query}: it tried to connect"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_keys_are_taken_in_order_and_semaphores_keep_curators_layout() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let (a, b) = (backend(&server).await, backend(&server).await);
    let wait = LockOptions::new(Duration::from_secs(5)).wait(Duration::from_secs(10));
    let both = a.acquire_all(["k:2", "k:1"], &wait).await.expect("both");
    assert_eq!(both.keys().collect::<Vec<_>>(), ["k:1", "k:2"]);
    let waiter = {
        let (b, wait) = (b.clone(), wait.clone());
        tokio::spawn(async move { b.acquire_all(["k:1", "k:2"], &wait).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "the second owner got in");
    both.release().await.expect("release");
    let next = waiter.await.expect("task").expect("both after the release");
    next.release().await.expect("release");
    // A semaphore: each holder's lease in `leases/`, the count written beside them, and
    // the queue in `locks/` left empty once the leases are taken.
    let zk = look(&server).await;
    let first = a.acquire_permit("k:3", 2, &wait).await.expect("a permit");
    let second = b.acquire_permit("k:3", 2, &wait).await.expect("a second");
    let leases = children(&zk, "k:3", "leases").await;
    assert_eq!(leases.len(), 2, "{leases:?}");
    let (count, _) = zk.get_data("/locks/k:3/leases").await.expect("leases");
    assert_eq!(count, b"2");
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            children(&zk, "k:3", "locks").await.is_empty()
        })
        .await,
        "the queue emptied"
    );
    first.release().await.expect("release");
    second.release().await.expect("release");
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            children(&zk, "k:3", "leases").await.is_empty()
        })
        .await,
        "the leases gone"
    );
}

/// A waiter whose node is deleted (by an operator, or with a session the client has not
/// yet heard has expired) around the moment the holder releases is granted only on a node
/// of its own, made again, never on the one that vanished. Replies to the waiter are held
/// back 3 s and the node is deleted while they are on their way. (The exact window of the
/// old fault, a waiter granting on its watch's word between that listing and its try, is
/// microseconds wide and not hit reliably here; the try now always lists the queue.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_node_vanished_is_granted_only_on_a_node_of_its_own() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let proxy = lock_tests::Proxy::start(server.port());
    let session = Duration::from_secs(20);
    let waiter = Backend::builder()
        .zookeeper_session_timeout(session)
        .zookeeper(&proxy.hosts())
        .await
        .expect("connect through the proxy");
    let holder = backend(&server).await;
    let zk = look(&server).await;
    let options = LockOptions::new(session);
    let held = holder.acquire("gone", &options).await.expect("holder");
    let waiting = options.clone().wait(Duration::from_secs(60));
    let acquiring = tokio::spawn(async move {
        let guard = waiter.acquire("gone", &waiting).await;
        (waiter, guard)
    });
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&zk, "gone").await.len() == 2
        })
        .await,
        "the waiter never queued"
    );
    // Its watch on the holder's node is set right after it queued.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delay = Duration::from_secs(3);
    proxy.delay_replies(delay);
    let released = Instant::now();
    held.release().await.expect("release");
    // The watch event reaches the waiter after one delay, its listing (answered at once:
    // the waiter is first) after a second one. Delete the node between the two.
    tokio::time::sleep_until((released + delay + delay / 2).into()).await;
    let queue = contenders(&zk, "gone").await;
    assert_eq!(queue.len(), 1, "{queue:?}");
    zk.delete(&format!("/locks/gone/{}", queue[0]), None)
        .await
        .expect("delete the waiter's node");
    proxy.delay_replies(Duration::ZERO);
    let (_waiter, guard) = tokio::time::timeout(Duration::from_secs(60), acquiring)
        .await
        .expect("the acquire finished")
        .expect("task");
    let guard = guard.expect("the lock, on a node of its own");
    // Granted on a node that exists: the one it made after finding its first one gone.
    assert_eq!(
        contenders(&zk, "gone").await.len(),
        1,
        "granted without a node in the queue"
    );
    guard.release().await.expect("release");
}

/// Names used once leave no directory behind (a server removes empty containers at its
/// own pace, slower than new names can arrive): a lock's directory is removed by a later
/// release of the same process once the lock has been idle there for a while, a lock taken
/// again meanwhile keeps it (its next acquire is one round trip), and a directory stays
/// while anyone is queued in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_of_idle_locks_are_removed_by_later_releases() {
    let _serial = SERIAL.lock().await;
    let server = ZooKeeperServer::start();
    let (a, b) = (backend(&server).await, backend(&server).await);
    let zk = look(&server).await;
    let options = LockOptions::new(Duration::from_secs(10));
    let cycle = |backend: &Backend, name: &'static str| {
        let (backend, options) = (backend.clone(), options.clone());
        async move {
            let guard = backend.acquire(name, &options).await.expect("acquire");
            guard.release().await.expect("release");
        }
    };
    let left = |prefix: &'static str| {
        let zk = &zk;
        async move {
            zk.list_children("/locks")
                .await
                .expect("list /locks")
                .into_iter()
                .filter(|d| d.starts_with(prefix))
                .count()
        }
    };
    for i in 0..200 {
        let guard = a
            .acquire(&format!("once:{i}"), &options)
            .await
            .expect("acquire");
        guard.release().await.expect("release");
    }
    // Idle long enough (`tidy.rs` checks that a directory is kept before): each later
    // release removes a few.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    for _ in 0..30 {
        cycle(&a, "hot").await;
    }
    assert_eq!(left("once:").await, 0, "directories of idle locks left");
    assert_eq!(left("hot").await, 1, "the lock in use keeps its directory");

    let held = a.acquire("kept", &options).await.expect("holder");
    let waiting = options.clone().wait(Duration::from_secs(20));
    let (b2, w) = (b.clone(), waiting.clone());
    let waiter = tokio::spawn(async move { b2.acquire("kept", &w).await });
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&zk, "kept").await.len() == 2
        })
        .await
    );
    held.release().await.expect("release");
    let taken = waiter.await.expect("task").expect("the waiter's turn");
    assert_eq!(contenders(&zk, "kept").await.len(), 1, "the waiter's node");
    taken.release().await.expect("release");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    cycle(&b, "hot").await;
    assert!(
        matches!(zk.check_stat("/locks/kept").await, Ok(None)),
        "the directory outlived its last contender"
    );
}

/// A three-server ensemble loses its leader while a lock is held and a waiter queued:
/// every follower drops its clients until a new leader is elected, the sessions move to
/// the servers left (the client tries the hosts in turn), the holder
/// keeps its lock (its release succeeds; the waiter never got it meanwhile), and the
/// waiter is granted once the lock is released, after the new election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_keeps_locks_across_the_loss_of_its_leader() {
    let _serial = SERIAL.lock().await;
    let mut servers = tokio::task::spawn_blocking(|| ZooKeeperServer::ensemble(3))
        .await
        .expect("start the ensemble");
    let hosts = ZooKeeperServer::hosts_of(&servers);
    // Long enough that a reconnect within a third of it keeps the locks.
    let session = Duration::from_secs(30);
    let client = || async {
        Backend::builder()
            .zookeeper_session_timeout(session)
            .zookeeper(&hosts)
            .await
            .expect("connect to the ensemble")
    };
    let (a, b) = (client().await, client().await);
    let options = LockOptions::new(session);
    let held = a.acquire("kept", &options).await.expect("holder");
    let waiting = options.clone().wait(Duration::from_secs(60));
    let waiter = tokio::spawn(async move { b.acquire("kept", &waiting).await });
    let look = zk::Client::connect(&hosts)
        .await
        .expect("a client of the test's own");
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            contenders(&look, "kept").await.len() == 2
        })
        .await,
        "the waiter never queued"
    );
    drop(look);
    let leader = servers
        .iter()
        .position(ZooKeeperServer::leads)
        .expect("a leader");
    servers[leader].kill();
    let killed = Instant::now();
    let elected = {
        let servers = &servers;
        eventually(Duration::from_secs(30), move || {
            servers.iter().any(ZooKeeperServer::leads)
        })
        .await
    };
    assert!(elected, "no new leader");
    println!("new leader after {:?}", killed.elapsed());
    // The holder still holds it: the waiter is still waiting, and the release succeeds.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter finished while the lock was held"
    );
    assert!(!held.is_expired());
    held.release()
        .await
        .expect("the holder's session survived the leader");
    let taken = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter's turn came")
        .expect("task")
        .expect("the lock, after the new election");
    println!("waiter granted {:?} after the kill", killed.elapsed());
    taken.release().await.expect("release");
}
