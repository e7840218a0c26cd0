//! Election hand-over (`BENCH_ONLY=election`) beside the lock hand-over, on one Redis
//! server. Each side is a pair of candidate processes (this binary with
//! `--election-child`): the leader leads 5 ms and resigns (`Leadership::resign`), then
//! waits 1 ms before campaigning again, so leadership passes to the other process, which
//! is campaigning meanwhile and is woken by the release; on the lock side the same with
//! `acquire` (waiting, fenced as an election is) and `release`. The
//! gap is from the moment one process starts to resign (or release) to the other's
//! election (or acquisition), by the machine's wall clock, over the hand-overs between the two
//! processes only. The rounds alternate the sides; each figure is min / median / max over
//! the rounds, with client CPU (both candidates), server CPU and server commands per
//! holding, and the machine's load.

use std::time::{Duration, Instant};

use lock_runtime::{LeaderOptions, LockOptions};
use lock_tests::RedisServer;

use super::{commandstats_total, fresh_servers, load, micros_now, process_cpu};

/// How long the leader holds before it resigns (long enough for the other process to be
/// campaigning by then), and pauses before it campaigns again (long enough for the woken
/// candidate to win).
const LEAD: Duration = Duration::from_millis(5);
const PAUSE: Duration = Duration::from_millis(1);

/// One round of one side.
struct Round {
    p50: Duration,
    p99: Duration,
    holdings: usize,
    client_cpu_us: f64,
    server_cpu_us: f64,
    commands: f64,
    load: f64,
}

/// Runs the rounds and prints the table.
pub(super) async fn run(server: &RedisServer, rounds: usize, length: Duration) {
    let mut election = Vec::new();
    let mut lock = Vec::new();
    for _ in 0..rounds {
        election.push(round(server, "election", length).await);
        lock.push(round(server, "lock", length).await);
    }
    println!();
    println!(
        "Hand-over between 2 processes, {rounds} alternating rounds of {length:?} each \
         (min / median / max over rounds)"
    );
    println!(
        "{:<10} {:>20} {:>20} {:>9} {:>16} {:>16} {:>16} {:>9}",
        "side",
        "gap p50 us",
        "gap p99 us",
        "holdings",
        "client CPU us",
        "server CPU us",
        "commands",
        "load"
    );
    for (name, side) in [("election", &election), ("lock", &lock)] {
        let spread = |f: &dyn Fn(&Round) -> f64, digits: usize| {
            let mut v: Vec<f64> = side.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            match v.len() {
                0 => "-".to_owned(),
                n => format!(
                    "{:.digits$}/{:.digits$}/{:.digits$}",
                    v[0],
                    v[n / 2],
                    v[n - 1]
                ),
            }
        };
        println!(
            "{:<10} {:>20} {:>20} {:>9} {:>16} {:>16} {:>16} {:>9}",
            name,
            spread(&|r| r.p50.as_secs_f64() * 1e6, 0),
            spread(&|r| r.p99.as_secs_f64() * 1e6, 0),
            spread(&|r| r.holdings as f64, 0),
            spread(&|r| r.client_cpu_us, 1),
            spread(&|r| r.server_cpu_us, 1),
            spread(&|r| r.commands, 2),
            spread(&|r| r.load, 1),
        );
    }
}

/// One round: two candidate processes of `side` for `length`.
async fn round(server: &RedisServer, side: &str, length: Duration) -> Round {
    let name = format!("handover:{}", micros_now());
    let commands_before = commandstats_total(&[server]);
    let server_pid = server.pid().to_string();
    let server_cpu_before = process_cpu(&server_pid);
    let children: Vec<_> = (0..2)
        .map(|_| {
            tokio::process::Command::new(std::env::current_exe().expect("own path"))
                .args([
                    "--election-child",
                    side,
                    &server.url(),
                    &name,
                    &length.as_millis().to_string(),
                ])
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn a candidate")
        })
        .collect();
    let mut holdings: Vec<(u64, u64, usize)> = Vec::new();
    let mut client_cpu = Duration::ZERO;
    for (process, child) in children.into_iter().enumerate() {
        let output = child
            .wait_with_output()
            .await
            .expect("a candidate's output");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("cpu"), Some(ns), None) => {
                    client_cpu += Duration::from_nanos(ns.parse().unwrap_or(0));
                }
                (Some(from), Some(to), None) => {
                    if let (Ok(from), Ok(to)) = (from.parse(), to.parse()) {
                        holdings.push((from, to, process));
                    }
                }
                _ => {}
            }
        }
    }
    let server_cpu = process_cpu(&server_pid) - server_cpu_before;
    let commands = commandstats_total(&[server]) - commands_before;
    holdings.sort_unstable();
    let mut gaps: Vec<Duration> = holdings
        .windows(2)
        .filter(|pair| pair[0].2 != pair[1].2)
        .map(|pair| Duration::from_micros(pair[1].0.saturating_sub(pair[0].1)))
        .collect();
    gaps.sort_unstable();
    let at = |p: f64| {
        gaps.get(((gaps.len() as f64 * p) as usize).min(gaps.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let count = holdings.len().max(1) as f64;
    Round {
        p50: at(0.5),
        p99: at(0.99),
        holdings: holdings.len(),
        client_cpu_us: client_cpu.as_secs_f64() * 1e6 / count,
        server_cpu_us: server_cpu.as_secs_f64() * 1e6 / count,
        commands: commands as f64 / count,
        load: load(),
    }
}

/// One candidate: `--election-child election|lock URL NAME MILLIS`. Prints each holding as
/// `<elected µs> <resigned µs>`, then `cpu <ns>`, its own CPU time.
pub(super) async fn child(args: &[String]) {
    let [side, url, name, millis] = args else {
        panic!("usage: --election-child election|lock URL NAME MILLIS");
    };
    let until = Instant::now() + Duration::from_millis(millis.parse().expect("millis"));
    let backend = fresh_servers().connect(url).await.expect("connect");
    let mut holdings = Vec::new();
    let leader = LeaderOptions::new(Duration::from_secs(10));
    // Fenced, as an election is: the two sides send the same commands to take the key.
    let lock = LockOptions::new(Duration::from_secs(10))
        .wait(Duration::from_secs(30))
        .fencing(true);
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        if side == "election" {
            let Ok(Ok(leading)) = tokio::time::timeout(left, backend.campaign(name, &leader)).await
            else {
                break;
            };
            let elected = micros_now();
            tokio::time::sleep(LEAD).await;
            let resigned = micros_now();
            leading.resign().await.expect("resign");
            holdings.push((elected, resigned));
        } else {
            let Ok(Ok(guard)) = tokio::time::timeout(left, backend.acquire(name, &lock)).await
            else {
                break;
            };
            let acquired = micros_now();
            tokio::time::sleep(LEAD).await;
            let released = micros_now();
            guard.release().await.expect("release");
            holdings.push((acquired, released));
        }
        tokio::time::sleep(PAUSE).await;
    }
    for (from, to) in holdings {
        println!("{from} {to}");
    }
    println!("cpu {}", process_cpu("self").as_nanos());
}
