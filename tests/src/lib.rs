//! Support for the integration tests, by concern: servers (`redis_server.rs`, `cluster.rs`,
//! `sentinel.rs`, `redlock.rs`, `zookeeper.rs`, `postgres.rs`, `tls.rs`), the process
//! harness (`process.rs`, `holdings.rs`), a fault-injecting proxy (`proxy.rs`), what the
//! library reports (`events.rs`), and the two-client scenarios (`stores.rs`).
//!
//! Each [`RedisServer`] runs in its own temporary directory with its log beside it, is
//! killed and reaped on drop, and prints its log when the test that owns it panics.

mod cluster;
mod events;
mod holdings;
mod postgres;
mod process;
mod proxy;
mod redis_server;
mod redlock;
mod sentinel;
mod stores;
mod tls;
mod zookeeper;
pub use cluster::RedisCluster;
pub use events::{prometheus_value, CapturedEvents};
pub use holdings::{
    assert_exclusive_around, assert_no_overlap_around, handoff_gap, now_us, Holding, LockLoops,
};
pub use postgres::{
    postgres_url, unique_table, PrivateCluster, POSTGRES_URL_ENV, PRIVATE_PASSWORD,
};
pub(crate) use process::{await_ready, START_BOUND};
pub use process::{
    eventually, eventually_async, free_port, kill_holder_once_held, output_lines, signal,
};
pub use proxy::Proxy;
pub use redis_server::{info_field, raw_command, RedisServer, REDIS_SERVER_ENV};
pub use redlock::RedlockServers;
pub use sentinel::Sentinel;
pub use stores::{fenced_write, guarded_increment, Stores, TestError};
pub use tls::Certificates;
pub use zookeeper::{curator_classpath, ZooKeeperServer, ZOOKEEPER_CLASSPATH_ENV};

/// The README's Rust code compiles (its function is never called: it needs a fixed Redis).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The guide's Rust code compiles and runs.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide.md")]
pub struct GuideDoctests;

/// The safety model's Rust code compiles and runs.
#[cfg(doctest)]
#[doc = include_str!("../../docs/safety.md")]
pub struct SafetyDoctests;

/// The operations page's Rust code compiles and runs.
#[cfg(doctest)]
#[doc = include_str!("../../docs/operations.md")]
pub struct OperationsDoctests;
