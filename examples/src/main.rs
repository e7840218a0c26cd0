//! The main example: four "instances" charge the same orders at the same time, and each
//! order is charged exactly once because the charge runs under the lock `order:<id>`.
//!
//! ```text
//! cargo run -p lock-examples                               # in-memory store
//! cargo run -p lock-examples -- redis://127.0.0.1:6379     # Redis, across processes too
//! ```

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use lock_runtime::{Backend, LockError, LockOptions};

const INSTANCES: usize = 4;
const ORDERS: u64 = 5;

/// Every charge made, in order. In a real service this is the database.
type Ledger = Arc<Mutex<Vec<u64>>>;

#[tokio::main]
async fn main() -> Result<(), LockError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://".to_owned());
    lock_runtime::init(Backend::builder().connect(&url).await?)?;
    println!("lock store: {url}");

    let ledger = Ledger::default();
    let mut instances = Vec::new();
    for instance in 0..INSTANCES {
        let ledger = ledger.clone();
        instances.push(tokio::spawn(async move {
            for order in 0..ORDERS {
                match charge(instance, order, &ledger).await {
                    Ok(true) => println!("instance {instance}: charged order {order}"),
                    Ok(false) => println!("instance {instance}: order {order} was already charged"),
                    Err(e @ LockError::Busy { .. }) => {
                        println!("instance {instance}: {e}; skipped")
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }));
    }
    for instance in instances {
        instance.await.expect("instance task panicked")?;
    }
    let mut charges = ledger.lock().expect("ledger").clone();
    let made = charges.len();
    charges.sort_unstable();
    charges.dedup();
    println!(
        "{made} charges for {} distinct orders of {ORDERS}",
        charges.len()
    );
    if made != charges.len() {
        eprintln!("an order was charged twice");
        std::process::exit(1);
    }
    Ok(())
}

/// Charges `order` unless it was charged already, holding the lock `order:<id>` throughout.
async fn charge(instance: usize, order: u64, ledger: &Ledger) -> Result<bool, LockError> {
    const OPTIONS: LockOptions =
        LockOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(5));
    let key = format!("order:{order}");
    lock_runtime::with_lock(&key, &OPTIONS, async {
        if ledger.lock().expect("ledger").contains(&order) {
            return false;
        }
        // The slow part of a charge: talking to the payment provider.
        tokio::time::sleep(Duration::from_millis(20 + 5 * instance as u64)).await;
        ledger.lock().expect("ledger").push(order);
        true
    })
    .await
}
