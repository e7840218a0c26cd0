//! A bank account service: `POST /accounts/{id}/withdraw` is guarded per account by
//! `#[distributed_lock]`, so concurrent withdrawals on one account are serialised (across
//! every instance sharing the store) while other accounts proceed in parallel.
//!
//! ```text
//! cargo run -p lock-examples                                  # self-demo, in-memory store
//! cargo run -p lock-examples -- --redis redis://127.0.0.1:6379 # self-demo against Redis
//! cargo run -p lock-examples -- --serve-for 60 --port 8080 --redis redis://127.0.0.1:6379
//! cargo run -p lock-examples -- --zookeeper 127.0.0.1:2181     # locks in ZooKeeper
//! cargo run -p lock-examples -- --postgres postgres://postgres@127.0.0.1/test # in PostgreSQL
//! ```
//!
//! Routes: `GET /accounts/{id}` (balance), `POST /accounts/{id}/deposit` and
//! `POST /accounts/{id}/withdraw` (body: a whole amount), and `GET /metrics`: the locks'
//! metrics in Prometheus' text format (see docs/operations.md). A withdrawal answers 200 with the
//! new balance, 409 when funds are insufficient, 423 Locked with `Retry-After` when another
//! withdrawal on the account held the lock for longer than the 100 ms this one waits, and
//! 503 when the lock was lost mid-way (the withdrawal was cancelled).

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use lock_examples::{AppError, Flags, Ledger};
use lock_runtime::{distributed_lock, LockError};
use metrics_exporter_prometheus::PrometheusBuilder;

#[derive(Clone)]
struct App {
    ledger: Ledger,
}

fn balance_key(id: u64) -> String {
    format!("balance:{id}")
}

/// The amount in a request body: a positive whole number.
fn amount(body: &str) -> Result<i64, Reply> {
    body.trim()
        .parse::<i64>()
        .ok()
        .filter(|amount| *amount > 0)
        .ok_or(Reply::BadAmount)
}

/// What a handler answers besides success. A lock error answers as the `axum` feature of
/// `lock-runtime` makes it: 423 Locked with `Retry-After` when busy, 503 when the lock was
/// lost (the withdrawal was cancelled) or the store failed.
#[derive(Debug)]
enum Reply {
    BadAmount,
    InsufficientFunds,
    Failed(AppError),
}

impl From<LockError> for Reply {
    fn from(error: LockError) -> Self {
        Self::Failed(AppError::Lock(error))
    }
}

impl From<redis::RedisError> for Reply {
    fn from(error: redis::RedisError) -> Self {
        Self::Failed(AppError::Ledger(error))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::BadAmount => (
                StatusCode::BAD_REQUEST,
                "the body must be a positive whole amount\n",
            )
                .into_response(),
            Self::InsufficientFunds => {
                (StatusCode::CONFLICT, "insufficient funds\n").into_response()
            }
            Self::Failed(AppError::Lock(error)) => error.into_response(),
            Self::Failed(other) => {
                (StatusCode::INTERNAL_SERVER_ERROR, format!("{other}\n")).into_response()
            }
        }
    }
}

/// Withdraws the amount in the body if the balance allows it. The read and the write are
/// apart (a slow ledger); without the lock, two withdrawals could both pass the check and
/// overdraw. The handler itself is guarded: the key names the account id its `Path`
/// extractor binds.
#[distributed_lock(key = "account:{id}", ttl = "5s", wait = "100ms")]
async fn withdraw(
    State(app): State<App>,
    Path(id): Path<u64>,
    body: String,
) -> Result<String, Reply> {
    let amount = amount(&body)?;
    let balance = app.ledger.get(&balance_key(id)).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    if balance < amount {
        return Err(Reply::InsufficientFunds);
    }
    app.ledger.set(&balance_key(id), balance - amount).await?;
    Ok(format!("withdrew {amount}; balance {}\n", balance - amount))
}

#[distributed_lock(key = "account:{id}", ttl = "5s", wait = "2s")]
async fn deposit(
    State(app): State<App>,
    Path(id): Path<u64>,
    body: String,
) -> Result<String, Reply> {
    let amount = amount(&body)?;
    let balance = app.ledger.get(&balance_key(id)).await? + amount;
    app.ledger.set(&balance_key(id), balance).await?;
    Ok(format!("deposited {amount}; balance {balance}\n"))
}

async fn balance(State(app): State<App>, Path(id): Path<u64>) -> Result<String, Reply> {
    Ok(format!("{}\n", app.ledger.get(&balance_key(id)).await?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Before the first lock: the library registers each lock's instruments once.
    // Histograms as buckets (not the exporter's default summaries), so that waits and
    // store latencies add up across instances (ops/grafana, ops/prometheus).
    let metrics = PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ])?
        .install_recorder()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let flags = Flags::from_args()?;
    let ledger = setup_ledger(&flags).await?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/accounts/{id}", get(balance))
        .route("/accounts/{id}/deposit", post(deposit))
        .route("/accounts/{id}/withdraw", post(withdraw))
        .with_state(App { ledger });
    let port: u16 = flags.number("port", 0)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?.to_string();
    println!("listening on {addr}");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    match flags.text("serve-for") {
        Some(_) => {
            let seconds: f64 = flags.number("serve-for", 0.0)?;
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        }
        None => self_demo(&addr, flags.number("requests", 30)?).await?,
    }
    server.abort();
    Ok(())
}

async fn setup_ledger(flags: &Flags) -> Result<Ledger, Box<dyn std::error::Error>> {
    let ledger = lock_examples::setup(flags).await?;
    if let Some(url) = flags.text("postgres") {
        println!("lock store: PostgreSQL at {}", lock_examples::redacted(url));
    }
    match (flags.text("zookeeper"), flags.text("redis")) {
        (Some(hosts), Some(url)) => println!("lock store: ZooKeeper at {hosts}; ledger: {url}"),
        (Some(hosts), None) => {
            println!("lock store: ZooKeeper at {hosts}; ledger: this process's memory")
        }
        (None, Some(url)) => println!("lock store and ledger: {url}"),
        (None, None) => println!(
            "lock store and ledger: this process's memory (pass --redis URL for Redis, \
             --zookeeper HOST:PORT for ZooKeeper, --postgres URL for PostgreSQL)"
        ),
    }
    Ok(ledger)
}

/// Deposits 100 on accounts 1 and 2, then sends `requests` withdrawals of 10 at once, half
/// to each account, and shows what came back.
async fn self_demo(addr: &str, requests: usize) -> Result<(), Box<dyn std::error::Error>> {
    for id in [1, 2] {
        let before: i64 = lock_examples::http(addr, "GET", &format!("/accounts/{id}"), "")
            .await?
            .body
            .trim()
            .parse()?;
        let topped_up = 100 - before.min(100);
        if topped_up > 0 {
            lock_examples::http(
                addr,
                "POST",
                &format!("/accounts/{id}/deposit"),
                &topped_up.to_string(),
            )
            .await?;
        }
    }
    println!("accounts 1 and 2 hold 100 each; {requests} withdrawals of 10 arrive at once");
    let addr: Arc<str> = addr.into();
    let mut calls = Vec::new();
    for i in 0..requests {
        let addr = addr.clone();
        let id = 1 + i % 2;
        calls.push(tokio::spawn(async move {
            let response =
                lock_examples::http(&addr, "POST", &format!("/accounts/{id}/withdraw"), "10").await;
            (id, response)
        }));
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for call in calls {
        let (id, response) = call.await?;
        let response = response?;
        let retry = response
            .header("retry-after")
            .map(|s| format!(" (Retry-After: {s})"))
            .unwrap_or_default();
        println!(
            "account {id}: {} {}{retry}",
            response.status,
            response.body.trim()
        );
        *statuses.entry(response.status).or_default() += 1;
    }
    for id in [1, 2] {
        let balance = lock_examples::http(&addr, "GET", &format!("/accounts/{id}"), "").await?;
        println!("account {id} balance: {}", balance.body.trim());
    }
    let summary: Vec<String> = statuses
        .iter()
        .map(|(status, n)| format!("{n} x {status}"))
        .collect();
    println!("responses: {}", summary.join(", "));
    Ok(())
}
