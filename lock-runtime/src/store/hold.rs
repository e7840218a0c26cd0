//! The restart hold: once a store may have lost leases whose holders still work (its
//! server restarted, or another server took its place), no lock is granted for the
//! longest TTL any such lease can have, counted from the moment the change was seen.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

pub(crate) struct RestartHold {
    /// The hold's floor; `None`: no hold.
    guard: Option<Duration>,
    /// The longest TTL asked of this store so far, in milliseconds.
    longest_ttl_ms: AtomicU64,
    /// Set while a hold runs: the hot path reads only this.
    holding: AtomicBool,
    /// When the current hold started.
    from: Mutex<Option<Instant>>,
}

impl RestartHold {
    pub(crate) fn new(guard: Option<Duration>) -> Self {
        Self {
            guard,
            longest_ttl_ms: AtomicU64::new(0),
            holding: AtomicBool::new(false),
            from: Mutex::new(None),
        }
    }

    /// Remembers that a lease of `ttl` was asked for: a hold covers it.
    pub(crate) fn note_ttl(&self, ttl: Duration) {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ms > self.longest_ttl_ms.load(Ordering::Relaxed) {
            self.longest_ttl_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }

    /// Starts a hold now (unless holds are off); returns how long it lasts.
    pub(crate) fn start(&self) -> Option<Duration> {
        self.start_at(Instant::now())
    }

    /// Starts a hold counted from `from` (unless holds are off); returns how long it lasts.
    pub(crate) fn start_at(&self, from: Instant) -> Option<Duration> {
        let span = self.span()?;
        *self.from.lock().unwrap_or_else(PoisonError::into_inner) = Some(from);
        self.holding.store(true, Ordering::Release);
        Some(span)
    }

    /// Whether an acquire of a lease of `ttl` must wait, and how much longer.
    pub(crate) fn left(&self, ttl: Duration) -> Option<Duration> {
        self.note_ttl(ttl);
        if !self.holding.load(Ordering::Acquire) {
            return None;
        }
        let mut from = self.from.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Some(span), Some(since)) = (self.span(), from.map(|f| f.elapsed())) {
            if since < span {
                return Some(span - since);
            }
        }
        *from = None;
        self.holding.store(false, Ordering::Release);
        None
    }

    /// How long a hold lasts: the longest TTL a lease from before can have.
    pub(crate) fn span(&self) -> Option<Duration> {
        let longest = Duration::from_millis(self.longest_ttl_ms.load(Ordering::Relaxed));
        self.guard.map(|floor| floor.max(longest))
    }
}
