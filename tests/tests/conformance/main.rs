//! The conformance suite: one list of behavioural scenarios (`scenarios.rs`), run against
//! every store (`stores.rs`) on real servers. A scenario is skipped only where the store
//! declares (in its [`Capabilities`](lock_runtime::store::Capabilities)) that it lacks what
//! the scenario proves (a fixture that cannot kill or cut a store's servers fails the
//! scenario instead); the reason is printed to standard error (`SKIPPED <store>::<scenario>: <why>`), past the test
//! runner's capture.
//!
//! Each store's servers are started once and shared by the scenarios that cannot disturb
//! one another (each takes locks under a prefix of its own), and stopped by the last of
//! them to finish, a failing one too. Scenarios that kill the servers start their own.
//! Adding a store: a type in `stores.rs` and a line at the end of this file.

mod scenarios;
mod stores;

use std::{
    io::Write,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use stores::Servers;

/// What a scenario found.
pub(crate) enum Outcome {
    Passed,
    /// Not run on this store, for this reason.
    Skipped(String),
}

/// One store's shared servers.
pub(crate) struct Shared<S> {
    servers: Mutex<Option<Arc<S>>>,
    starting: tokio::sync::Mutex<bool>,
    finished: AtomicUsize,
}

impl<S: Servers> Shared<S> {
    pub(crate) const fn new() -> Self {
        Self {
            servers: Mutex::new(None),
            starting: tokio::sync::Mutex::const_new(false),
            finished: AtomicUsize::new(0),
        }
    }

    /// The servers, started by the first caller; the value returned first counts this
    /// scenario as finished when dropped, and the last of `count` stops the servers.
    pub(crate) async fn get(&'static self, count: usize) -> (Finish<S>, Arc<S>) {
        let finish = Finish(self, count);
        let mut started = self.starting.lock().await;
        if !*started {
            *started = true;
            let servers = Arc::new(S::start(false).await);
            *self.servers.lock().unwrap() = Some(servers);
        }
        let servers = self.servers.lock().unwrap().clone();
        (
            finish,
            servers.expect("the store's servers were stopped early"),
        )
    }
}

/// Counts a scenario as finished when dropped, a failing one too.
pub(crate) struct Finish<S: Servers>(&'static Shared<S>, usize);

impl<S: Servers> Drop for Finish<S> {
    fn drop(&mut self) {
        if self.0.finished.fetch_add(1, Ordering::SeqCst) + 1 == self.1 {
            let servers = self
                .0
                .servers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            drop(servers);
        }
    }
}

/// Prints a skip past the test runner's capture.
pub(crate) fn report(store: &str, scenario: &str, outcome: Outcome) {
    if let Outcome::Skipped(why) = outcome {
        let store = store.rsplit("::").next().unwrap_or(store);
        let _ = writeln!(std::io::stderr(), "SKIPPED {store}::{scenario}: {why}");
    }
}

/// The scenarios that share one store's servers.
macro_rules! shared {
    ($($scenario:ident),* $(,)?) => {
        const SHARED_SCENARIOS: usize = [$(stringify!($scenario)),*].len();
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let (_finish, servers) = SHARED.get(SHARED_SCENARIOS).await;
                let outcome = crate::scenarios::$scenario(&*servers, stringify!($scenario)).await;
                crate::report(module_path!(), stringify!($scenario), outcome);
            }
        )*
    };
}

/// The scenarios that stop the servers: each starts its own.
macro_rules! own {
    ($($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let mut servers = <S as crate::stores::Servers>::start(true).await;
                let outcome =
                    crate::scenarios::$scenario(&mut servers, stringify!($scenario)).await;
                crate::report(module_path!(), stringify!($scenario), outcome);
            }
        )*
    };
}

/// Every scenario, on one store.
macro_rules! conformance {
    ($store:ident: $servers:ty) => {
        mod $store {
            type S = $servers;
            static SHARED: crate::Shared<S> = crate::Shared::new();

            shared!(
                exclusion_across_processes,
                waiters_are_woken_by_the_release,
                fencing_tokens_grow,
                renewal_keeps_the_lease,
                a_lost_lease_cancels_the_body,
                release_on_cancel_and_on_panic,
                nested_calls_reenter,
                the_connecting_runtime_shut_down,
                bad_input_is_refused_before_any_call,
                holder_records_and_operators,
                the_doctor_finds_the_test_servers_safe,
                several_keys_in_both_orders,
                readers_and_permits,
                metrics_count_what_happened,
                the_readme_table_says_what_the_store_declares,
                a_silent_connection_is_replaced,
                an_unknown_outcome_leaves_no_orphan,
                an_unreachable_store_ends_the_body_at_the_lease_end,
                lock_delay_after_a_lost_holder,
                leader_election,
            );
            own!(fencing_grows_across_a_restart, killed_and_back);
        }
    };
}

conformance!(memory: crate::stores::Memory);
conformance!(redis: crate::stores::Redis);
conformance!(sentinel: crate::stores::SentinelStore);
conformance!(cluster: crate::stores::Cluster);
conformance!(redlock: crate::stores::Redlock);
conformance!(zookeeper: crate::stores::ZooKeeper);
conformance!(postgres: crate::stores::Postgres);
