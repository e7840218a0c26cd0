//! A bank account service: `POST /accounts/{id}/withdraw` is guarded per account by
//! `#[distributed_lock]`, so concurrent withdrawals on one account are serialised (across
//! every instance sharing the store) while other accounts proceed in parallel.
//!
//! ```text
//! cargo run -p lock-examples                                  # self-demo, in-memory store
//! cargo run -p lock-examples -- --redis redis://127.0.0.1:6379 # self-demo against Redis
//! cargo run -p lock-examples -- --serve-for 60 --port 8080 --redis redis://127.0.0.1:6379
//! ```
//!
//! Routes: `GET /accounts/{id}` (balance), `POST /accounts/{id}/deposit` and
//! `POST /accounts/{id}/withdraw` (body: a whole amount). A withdrawal answers 200 with the
//! new balance, 409 when funds are insufficient, 423 Locked with `Retry-After` when another
//! withdrawal on the account held the lock for longer than the 100 ms this one waits, and
//! 503 when the lock was lost mid-way (the withdrawal was cancelled).

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use lock_examples::{AppError, Flags, Ledger};
use lock_runtime::{distributed_lock, LockError};

#[derive(Clone)]
struct App {
    ledger: Ledger,
}

fn balance_key(id: u64) -> String {
    format!("balance:{id}")
}

/// Withdraws `amount` if the balance allows it. The read and the write are apart (a slow
/// ledger); without the lock, two withdrawals could both pass the check and overdraw.
#[distributed_lock(key = "account:{id}", ttl = "5s", wait = "100ms")]
async fn withdraw_locked(ledger: &Ledger, id: u64, amount: i64) -> Result<Option<i64>, AppError> {
    let balance = ledger.get(&balance_key(id)).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    if balance < amount {
        return Ok(None);
    }
    ledger.set(&balance_key(id), balance - amount).await?;
    Ok(Some(balance - amount))
}

#[distributed_lock(key = "account:{id}", ttl = "5s", wait = "2s")]
async fn deposit_locked(ledger: &Ledger, id: u64, amount: i64) -> Result<i64, AppError> {
    let balance = ledger.get(&balance_key(id)).await? + amount;
    ledger.set(&balance_key(id), balance).await?;
    Ok(balance)
}

/// The amount in a request body: a positive whole number.
fn amount(body: &str) -> Option<i64> {
    body.trim().parse::<i64>().ok().filter(|amount| *amount > 0)
}

fn bad_amount() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "the body must be a positive whole amount\n",
    )
        .into_response()
}

/// How a lock or ledger error looks to an HTTP client.
fn error_response(error: &AppError) -> Response {
    match error {
        AppError::Lock(LockError::Busy { .. }) => (
            StatusCode::LOCKED,
            [(header::RETRY_AFTER, "1")],
            "another withdrawal on this account is in progress; retry\n",
        )
            .into_response(),
        AppError::Lock(LockError::Lost { .. }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the account lock was lost; the withdrawal was cancelled\n",
        )
            .into_response(),
        other => (StatusCode::INTERNAL_SERVER_ERROR, format!("{other}\n")).into_response(),
    }
}

async fn withdraw(State(app): State<App>, Path(id): Path<u64>, body: String) -> Response {
    let Some(amount) = amount(&body) else {
        return bad_amount();
    };
    match withdraw_locked(&app.ledger, id, amount).await {
        Ok(Some(balance)) => format!("withdrew {amount}; balance {balance}\n").into_response(),
        Ok(None) => (StatusCode::CONFLICT, "insufficient funds\n").into_response(),
        Err(error) => error_response(&error),
    }
}

async fn deposit(State(app): State<App>, Path(id): Path<u64>, body: String) -> Response {
    let Some(amount) = amount(&body) else {
        return bad_amount();
    };
    match deposit_locked(&app.ledger, id, amount).await {
        Ok(balance) => format!("deposited {amount}; balance {balance}\n").into_response(),
        Err(error) => error_response(&error),
    }
}

async fn balance(State(app): State<App>, Path(id): Path<u64>) -> Response {
    match app.ledger.get(&balance_key(id)).await {
        Ok(balance) => format!("{balance}\n").into_response(),
        Err(e) => error_response(&AppError::Ledger(e)),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::from_args()?;
    let ledger = setup_ledger(&flags).await?;
    let app = Router::new()
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
    match flags.text("redis") {
        Some(url) => println!("lock store and ledger: {url}"),
        None => {
            println!("lock store and ledger: this process's memory (pass --redis URL for Redis)")
        }
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
