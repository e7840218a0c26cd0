//! Lock directories no contender of this process uses: removed a while after their last
//! release here, a few at a time, in the round trip of a later release.
//!
//! A lock's directory is a container: ZooKeeper removes it once empty, but only every
//! minute or so, and a bounded number at a time, so names used once (a lock per order, per
//! job run) would pile up faster than that. Removing it on every release instead costs the
//! next acquire of the same lock a round trip (its create finds no directory) and the
//! server two more writes per cycle; a lock taken again within [`IDLE`] keeps its directory.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// How long a lock's directory stays after this process's last release of it.
pub(super) const IDLE: Duration = Duration::from_secs(2);

/// How many directories one release removes at most.
pub(super) const AT_ONCE: usize = 8;

/// The most directories remembered as removed (a hint, not a record: forgotten beyond).
const REMEMBERED: usize = 4096;

#[derive(Default)]
pub(super) struct Tidy(Mutex<Idle>);

#[derive(Default)]
struct Idle {
    /// Each idle directory, with when it was last released here.
    since: HashMap<String, Instant>,
    /// The same, oldest first (entries whose directory was taken or released again since
    /// are skipped).
    order: VecDeque<(String, Instant)>,
    /// Directories this process removed: the next contender makes them ahead of its node.
    removed: HashSet<String>,
}

impl Tidy {
    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        // No critical section below can panic half-way.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `dir`'s lock was released here, now.
    pub(super) fn released(&self, dir: &str) {
        let now = Instant::now();
        let mut idle = self.idle();
        idle.since.insert(dir.to_owned(), now);
        idle.order.push_back((dir.to_owned(), now));
    }

    /// `dir`'s lock is being taken here: it is not idle. Whether this process removed it
    /// (so it is likely gone).
    pub(super) fn taken(&self, dir: &str) -> bool {
        let mut idle = self.idle();
        idle.since.remove(dir);
        idle.removed.remove(dir)
    }

    /// Up to [`AT_ONCE`] directories idle for [`IDLE`], no longer idle once handed out.
    pub(super) fn due(&self) -> Vec<String> {
        let mut idle = self.idle();
        let mut due = Vec::new();
        while due.len() < AT_ONCE {
            match idle.order.front() {
                Some((_, at)) if at.elapsed() >= IDLE => {}
                _ => break,
            }
            let Some((dir, at)) = idle.order.pop_front() else {
                break;
            };
            if idle.since.get(&dir) == Some(&at) {
                idle.since.remove(&dir);
                due.push(dir);
            }
        }
        due
    }

    /// This process removed `dir`.
    pub(super) fn removed(&self, dir: String) {
        let mut idle = self.idle();
        if idle.removed.len() >= REMEMBERED {
            idle.removed.clear();
        }
        idle.removed.insert(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_due_once_idle_and_not_when_taken_again() {
        let tidy = Tidy::default();
        tidy.released("/locks/a");
        tidy.released("/locks/b");
        assert!(tidy.due().is_empty(), "not idle long enough");
        // Taken again: never due for that release; released again: due from then.
        assert!(!tidy.taken("/locks/a"));
        std::thread::sleep(IDLE);
        assert_eq!(tidy.due(), vec!["/locks/b".to_owned()]);
        assert!(tidy.due().is_empty(), "handed out once");
        tidy.removed("/locks/b".to_owned());
        assert!(tidy.taken("/locks/b"), "remembered as removed");
        assert!(!tidy.taken("/locks/b"), "once");
    }
}
