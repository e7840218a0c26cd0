//! Methods taking `&self`, `&mut self` and `self`, with `self` fields in the key.
use lock_runtime::{distributed_lock, Backend, LockError};

struct Account {
    id: u32,
    tenant: String,
    balance: i64,
}

impl Account {
    #[distributed_lock(key = "{self.tenant}:account:{self.id}", ttl = "5s")]
    async fn balance(&self) -> Result<i64, LockError> {
        Ok(self.balance)
    }

    #[distributed_lock(key = "{self.tenant}:account:{self.id}", ttl = "5s")]
    async fn deposit(&mut self, cents: i64) -> Result<i64, LockError> {
        self.balance += cents;
        Ok(self.balance)
    }

    #[distributed_lock(key = "account:{self.id}", ttl = "5s")]
    async fn close(self) -> Result<String, LockError> {
        Ok(self.tenant) // `self` moves into the body
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    let mut account = Account { id: 1, tenant: "acme".into(), balance: 10 };
    assert_eq!(account.balance().await.unwrap(), 10);
    assert_eq!(account.deposit(5).await.unwrap(), 15);
    assert_eq!(account.close().await.unwrap(), "acme");
}
