//! For operators: whether a store is set up so that its locks are safe (`lockctl doctor`).

use std::time::{Duration, Instant};

use crate::{
    backend::{store_failure, Backend},
    error::LockError,
    options::{LockMode, LockOptions},
    store::{Finding, LockKind, Operation},
};

/// The name of the lock the check takes and releases (one per process).
const PROBE: &str = "lock-runtime-doctor";

impl Backend {
    /// Checks what decides whether locks on this backend's store are safe, and says how to
    /// fix each finding: the store's own checks ([`Operators::diagnose`]: eviction,
    /// persistence, replicas, Sentinel's quorum, a cluster's slots, ACLs, ZooKeeper's
    /// session timeout, PostgreSQL's commits and privileges, clocks), then a lock taken,
    /// renewed and released (`lock-runtime-doctor:<pid>`), which proves the whole path
    /// works for this user, and a read lock where the store has readers. Each store call
    /// is bounded by the time bound; the store's checks together by thirty of them. An error only where the store could not be
    /// asked at all; a check that could not be made is a [`Status::Warn`] finding.
    ///
    /// [`Operators::diagnose`]: crate::store::Operators::diagnose
    /// [`Status::Warn`]: crate::store::Status::Warn
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), lock_runtime::LockError> {
    /// use lock_runtime::{store::Status, Backend};
    ///
    /// let findings = Backend::memory().doctor().await?;
    /// assert!(findings.iter().all(|f| f.status == Status::Pass), "{findings:?}");
    /// # Ok(()) }
    /// ```
    pub async fn doctor(&self) -> Result<Vec<Finding>, LockError> {
        let name = format!("{PROBE}:{}", std::process::id());
        let key = self.key_for(&name);
        let operators = self.operators(Operation::Diagnose)?;
        let all = self.op_timeout().saturating_mul(30);
        let mut found = match tokio::time::timeout(all, operators.diagnose(&key)).await {
            Ok(found) => found
                .map_err(|source| store_failure(Operation::Diagnose, self.op_timeout(), source))?,
            Err(_) => {
                return Err(LockError::Timeout {
                    operation: Operation::Diagnose,
                    after: all,
                })
            }
        };
        found.push(self.probe(&name).await);
        if self.capabilities().supports(LockKind::Read) {
            found.push(self.probe_readers(&name).await);
        }
        Ok(found)
    }

    /// A lock taken, renewed and released, as the library's users do.
    async fn probe(&self, name: &str) -> Finding {
        let shortest = self.capabilities().shortest_ttl().unwrap_or_default();
        let ttl = shortest.max(Duration::from_secs(10));
        let options = LockOptions::new(ttl).function("lock_runtime::doctor");
        let started = Instant::now();
        let outcome = async {
            let mut guard = self.acquire(name, &options).await?;
            guard.extend(ttl).await?;
            guard.release().await
        }
        .await;
        match outcome {
            Ok(()) => Finding::pass(
                "probe",
                format!(
                    "took, renewed and released `{name}` in {:.1} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                ),
            ),
            Err(e @ LockError::Recovering { .. }) => {
                Finding::warn("probe", format!("`{name}` was not granted yet: {e}"))
                    .fix("wait for the hold to end (see restart_guard), then check again")
            }
            Err(e) => Finding::fail(
                "probe",
                format!("taking and releasing `{name}` failed: {}", chain(&e)),
            )
            .fix("see the other findings; the error names what the store refused"),
        }
    }

    /// A read lock taken and released: readers and semaphores need more of the store
    /// (Redis: its sorted-set commands) than plain locks do. A failure is a warning, since
    /// plain locks work.
    async fn probe_readers(&self, name: &str) -> Finding {
        let shortest = self.capabilities().shortest_ttl().unwrap_or_default();
        let options = LockOptions::new(shortest.max(Duration::from_secs(10)))
            .mode(LockMode::Read)
            .function("lock_runtime::doctor");
        let outcome = async { self.acquire(name, &options).await?.release().await }.await;
        match outcome {
            Ok(()) => Finding::pass(
                "readers",
                format!("took and released a read lock on `{name}`"),
            ),
            Err(e @ LockError::Recovering { .. }) => {
                Finding::warn("readers", format!("`{name}` was not granted yet: {e}"))
                    .fix("wait for the hold to end (see restart_guard), then check again")
            }
            Err(e) => Finding::warn(
                "readers",
                format!(
                    "a read lock on `{name}` failed, so readers and semaphores do: {}",
                    chain(&e)
                ),
            )
            .fix("see the acl finding: readers and semaphores need more commands than plain locks"),
        }
    }
}

/// An error and its sources, one after the other.
fn chain(error: &LockError) -> String {
    let mut said = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !said.contains(&line) {
            said.push_str(": ");
            said.push_str(&line);
        }
        source = cause.source();
    }
    said
}
