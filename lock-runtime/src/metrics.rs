//! Metrics on the `metrics` facade (feature `metrics`, on by default): the application
//! installs a recorder (Prometheus, StatsD, ...) and sees every lock's acquisitions,
//! waits, holds, losses and store calls. The names follow Prometheus' conventions (base
//! units, `_total` counters); docs/operations.md lists them.
//!
//! Handles are registered once per lock template, client and backend, on first use, and
//! kept: an acquisition only bumps them, and with no recorder installed every handle is a
//! no-op. So install the recorder before the first lock is taken. Without the feature,
//! everything here is an empty type whose methods do nothing.

/// The label value of a lock taken without a name template
/// ([`LockOptions::name_template`](crate::LockOptions::name_template)): each lock's own name
/// would make one time series per name.
pub const UNNAMED: &str = "unnamed";

/// The kinds of store errors, as the `kind` label says them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ErrorKind {
    Timeout,
    Backend,
    NotReplicated,
    NoQuorum,
}

#[cfg(feature = "metrics")]
impl ErrorKind {
    const ALL: [&'static str; 4] = ["timeout", "backend", "not_replicated", "no_quorum"];
}

#[cfg(feature = "metrics")]
mod enabled {
    use std::{
        cell::RefCell,
        collections::HashMap,
        sync::{Once, OnceLock, PoisonError, RwLock},
        time::{Duration, Instant},
    };

    use foldhash::fast::FixedState;
    use metrics::{Counter, Gauge, Histogram, Label};

    /// When a store call started, if it is timed.
    pub(crate) struct Started(Option<Instant>);

    /// Whether a recorder is installed: the facade's stand-in when none is, `NoopRecorder`,
    /// is the one recorder without state (an exporter keeps its series in itself).
    fn recording() -> bool {
        metrics::with_recorder(|recorder| size_of_val(recorder) != 0)
    }

    use super::{ErrorKind, UNNAMED};
    use crate::store::Operation;

    /// One lock template's instruments, in one client and backend.
    pub(crate) struct LockMetrics {
        /// A recorder was installed when these were registered (see `CallMetrics`).
        timed: bool,
        acquired: Counter,
        busy: Counter,
        recovering: Counter,
        lost: Counter,
        renewed: Counter,
        waited: Histogram,
        held_for: Histogram,
        holding: Gauge,
    }

    impl LockMetrics {
        fn register(labels: &[Label]) -> Self {
            let counter = |name: &'static str| metrics::counter!(name, labels.iter());
            Self {
                timed: recording(),
                acquired: counter("distributed_lock_acquisitions_total"),
                busy: counter("distributed_lock_busy_total"),
                recovering: counter("distributed_lock_recovering_total"),
                lost: counter("distributed_lock_lost_total"),
                renewed: counter("distributed_lock_renewals_total"),
                waited: metrics::histogram!("distributed_lock_wait_seconds", labels.iter()),
                held_for: metrics::histogram!("distributed_lock_held_seconds", labels.iter()),
                holding: metrics::gauge!("distributed_lock_held", labels.iter()),
            }
        }

        pub(crate) fn acquired(&self, waited: Duration) {
            self.acquired.increment(1);
            self.waited.record(waited);
            self.holding.increment(1.0);
        }

        pub(crate) fn busy(&self) {
            self.busy.increment(1);
        }

        pub(crate) fn recovering(&self) {
            self.recovering.increment(1);
        }

        pub(crate) fn lost(&self) {
            self.lost.increment(1);
        }

        pub(crate) fn renewed(&self) {
            self.renewed.increment(1);
        }

        /// The holder let go of the lock it took at `acquired_at` (released, dropped, or
        /// lost).
        pub(crate) fn ended(&self, acquired_at: Instant) {
            if self.timed {
                self.held_for.record(acquired_at.elapsed());
            }
            self.holding.decrement(1.0);
        }
    }

    /// Tells the recorder each metric's unit and meaning, once per process.
    fn describe() {
        static DESCRIBED: Once = Once::new();
        DESCRIBED.call_once(|| {
            use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
            describe_counter!(
                "distributed_lock_acquisitions_total",
                Unit::Count,
                "Locks taken."
            );
            describe_counter!(
                "distributed_lock_busy_total",
                Unit::Count,
                "Acquires that gave up because another owner held the lock."
            );
            describe_counter!(
                "distributed_lock_recovering_total",
                Unit::Count,
                "Acquires refused while the store was held back after a restart or failover."
            );
            describe_counter!(
                "distributed_lock_lost_total",
                Unit::Count,
                "Leases lost while held: the body was not protected to its end."
            );
            describe_counter!(
                "distributed_lock_renewals_total",
                Unit::Count,
                "Leases extended."
            );
            describe_counter!(
                "distributed_lock_store_errors_total",
                Unit::Count,
                "Store calls that failed, by operation and kind."
            );
            describe_histogram!(
                "distributed_lock_wait_seconds",
                Unit::Seconds,
                "Time from asking for a lock to getting it."
            );
            describe_histogram!(
                "distributed_lock_held_seconds",
                Unit::Seconds,
                "Time a lock was held, from acquisition to release, drop or loss."
            );
            describe_histogram!(
                "distributed_lock_store_call_seconds",
                Unit::Seconds,
                "Latency of store calls, by operation."
            );
            describe_gauge!(
                "distributed_lock_held",
                Unit::Count,
                "Locks this process holds now."
            );
            describe_gauge!(
                "distributed_lock_leader",
                Unit::Count,
                "1 while this process leads the election, 0 after."
            );
        });
    }

    /// The label values of one lock's instruments: template, client and backend.
    type Labels = (&'static str, &'static str, &'static str);

    /// Every lock's instruments in the process, one per set of label values (a number
    /// bounded by the program's lock templates, clients and stores), kept for the process's
    /// life so that a guard holds a plain reference.
    static LOCKS: OnceLock<RwLock<HashMap<Labels, &'static LockMetrics, FixedState>>> =
        OnceLock::new();

    thread_local! {
        /// The instruments this thread used last, by the label strings' addresses: an
        /// acquisition finds its own without a lock or a shared counter.
        static RECENT: RefCell<Vec<(Addresses, &'static LockMetrics)>> =
            const { RefCell::new(Vec::new()) };
    }

    /// Where a lock's label strings are: the key of a thread's own cache.
    type Addresses = (usize, usize, usize);

    /// How many instruments a thread keeps at hand.
    const RECENT_LEN: usize = 16;

    fn lock_metrics(
        template: &'static str,
        client: &'static str,
        backend: &'static str,
    ) -> &'static LockMetrics {
        let address = (
            template.as_ptr() as usize,
            client.as_ptr() as usize,
            backend.as_ptr() as usize,
        );
        let recent = RECENT.with_borrow(|recent| {
            recent
                .iter()
                .find(|(at, _)| *at == address)
                .map(|(_, metrics)| *metrics)
        });
        if let Some(metrics) = recent {
            return metrics;
        }
        let labels = (template, client, backend);
        let locks = LOCKS.get_or_init(|| RwLock::new(HashMap::with_hasher(FixedState::default())));
        let found = locks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&labels)
            .copied();
        let metrics = found.unwrap_or_else(|| {
            describe();
            let mut locks = locks.write().unwrap_or_else(PoisonError::into_inner);
            *locks.entry(labels).or_insert_with(|| {
                let labels = [
                    Label::from_static_parts("name", template),
                    Label::from_static_parts("client", client),
                    Label::from_static_parts("backend", backend),
                ];
                Box::leak(Box::new(LockMetrics::register(&labels)))
            })
        });
        RECENT.with_borrow_mut(|recent| {
            if recent.len() == RECENT_LEN {
                recent.remove(0);
            }
            recent.push((address, metrics));
        });
        metrics
    }

    /// A backend's instruments for its store calls.
    pub(crate) struct Metrics {
        backend: &'static str,
        calls: [OnceLock<CallMetrics>; Operation::ALL.len()],
    }

    struct CallMetrics {
        /// A recorder was installed when these were registered: time the calls. Without
        /// one, no clock is read.
        timed: bool,
        took: Histogram,
        errors: [Counter; ErrorKind::ALL.len()],
    }

    impl Metrics {
        pub(crate) fn new(backend: &'static str) -> Self {
            Self {
                backend,
                calls: Default::default(),
            }
        }

        /// The instruments of the locks named by `template` (`None`: [`UNNAMED`]) in
        /// `client`, on this backend's kind of store.
        pub(crate) fn lock(
            &self,
            template: Option<&'static str>,
            client: &'static str,
        ) -> &'static LockMetrics {
            lock_metrics(template.unwrap_or(UNNAMED), client, self.backend)
        }

        fn call(&self, operation: Operation) -> &CallMetrics {
            self.calls[operation as usize].get_or_init(|| {
                let labels = [
                    Label::from_static_parts("operation", operation.as_str()),
                    Label::from_static_parts("backend", self.backend),
                ];
                CallMetrics {
                    timed: recording(),
                    took: metrics::histogram!("distributed_lock_store_call_seconds", labels.iter()),
                    errors: ErrorKind::ALL.map(|kind| {
                        let mut labels = labels.to_vec();
                        labels.push(Label::from_static_parts("kind", kind));
                        metrics::counter!("distributed_lock_store_errors_total", labels.iter())
                    }),
                }
            })
        }

        /// A store call for `operation` starts now.
        pub(crate) fn start(&self, operation: Operation) -> Started {
            Started(self.call(operation).timed.then(Instant::now))
        }

        /// One store call for `operation`, started at `started`, ended now, failing as
        /// `failed` says.
        pub(crate) fn called(
            &self,
            operation: Operation,
            started: Started,
            failed: Option<ErrorKind>,
        ) {
            let call = self.call(operation);
            if let Some(started) = started.0 {
                call.took.record(started.elapsed());
            }
            if let Some(kind) = failed {
                call.errors[kind as usize].increment(1);
            }
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use std::time::Duration;

    use super::ErrorKind;

    pub(crate) struct LockMetrics;

    #[allow(clippy::unused_self)]
    impl LockMetrics {
        pub(crate) fn acquired(&self, _waited: Duration) {}
        pub(crate) fn busy(&self) {}
        pub(crate) fn recovering(&self) {}
        pub(crate) fn lost(&self) {}
        pub(crate) fn renewed(&self) {}
        pub(crate) fn ended(&self, _acquired_at: std::time::Instant) {}
    }

    pub(crate) struct Metrics;

    /// Nothing: without the feature no clock is read.
    pub(crate) struct Started;

    #[allow(clippy::unused_self)]
    impl Metrics {
        pub(crate) fn new(_backend: &'static str) -> Self {
            Self
        }

        pub(crate) fn lock(
            &self,
            _template: Option<&'static str>,
            _client: &'static str,
        ) -> &'static LockMetrics {
            &LockMetrics
        }

        pub(crate) fn start(&self, _: crate::store::Operation) -> Started {
            Started
        }

        pub(crate) fn called(&self, _: crate::store::Operation, _: Started, _: Option<ErrorKind>) {}
    }
}

#[cfg(not(feature = "metrics"))]
pub(crate) use self::disabled::{LockMetrics, Metrics};
#[cfg(feature = "metrics")]
pub(crate) use self::enabled::{LockMetrics, Metrics};

/// Whether this process leads the election `name` (through the client `client`): the
/// gauge `distributed_lock_leader`, 1 while leading and 0 after, one series per election
/// name and client (as Kubernetes' `leader_election_master_status`).
#[cfg(feature = "metrics")]
pub(crate) fn leading(name: &str, client: &'static str, leads: bool) {
    let labels = [
        metrics::Label::new("election", name.to_owned()),
        metrics::Label::new("client", client),
    ];
    metrics::gauge!("distributed_lock_leader", labels.iter()).set(f64::from(u8::from(leads)));
}

/// Whether this process leads: nothing to record without the `metrics` feature.
#[cfg(not(feature = "metrics"))]
pub(crate) fn leading(_name: &str, _client: &'static str, _leads: bool) {}
