//! What a check of a store's set-up found ([`Operators::diagnose`](super::Operators::diagnose),
//! [`Backend::doctor`](crate::Backend::doctor)): one finding per thing that decides whether
//! locks on the store are safe, with what to do about it.

use std::fmt;
#[cfg(any(feature = "redis", feature = "postgres"))]
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Status {
    /// As it should be.
    Pass,
    /// Locks are safe, but something costs availability or hides a risk worth knowing.
    Warn,
    /// Locks are not safe as set up (or do not work at all): two owners may hold one lock,
    /// or every acquire fails.
    Fail,
}

impl Status {
    /// `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a check of a store found.
///
/// ```
/// use lock_runtime::store::{Finding, Status};
///
/// let finding = Finding::fail("eviction", "maxmemory-policy allkeys-lru can evict held locks")
///     .fix("CONFIG SET maxmemory-policy noeviction");
/// assert_eq!(finding.status, Status::Fail);
/// assert_eq!(finding.fix.as_deref(), Some("CONFIG SET maxmemory-policy noeviction"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// What was checked, one word or two: `eviction`, `persistence`, `clock`, ...
    pub check: String,
    /// How it came out.
    pub status: Status,
    /// What was found, in a sentence.
    pub detail: String,
    /// What to do about it, where something should be done.
    pub fix: Option<String>,
}

impl Finding {
    /// A check that passed.
    pub fn pass(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Pass, detail)
    }

    /// A check that found a risk or a cost, not a danger.
    pub fn warn(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Warn, detail)
    }

    /// A check that found locks unsafe, or unusable.
    pub fn fail(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Fail, detail)
    }

    /// This finding with what to do about it.
    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// This finding with its check named after `place` too (`eviction (10.0.0.5:6379)`),
    /// for a store of several servers.
    #[must_use]
    pub fn at(mut self, place: &str) -> Self {
        self.check = format!("{} ({place})", self.check);
        self
    }

    fn new(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// A server's clock further off than this from the client's is worth a word.
#[cfg(any(feature = "redis", feature = "postgres"))]
const CLOCK_WARN_MS: i128 = 500;

/// The `clock` finding of a server whose clock read `server_ms` (Unix milliseconds) in a
/// reply that took `rtt` and arrived just now: against this host's clock at the middle of
/// the round trip.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn clock(server_ms: i128, rtt: Duration) -> Finding {
    let local = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(rtt / 2);
    let skew = server_ms - i128::try_from(local.as_millis()).unwrap_or(i128::MAX);
    let said = format!(
        "the server's clock is {} ms {} this host's (round trip {} µs)",
        skew.unsigned_abs(),
        if skew >= 0 { "ahead of" } else { "behind" },
        rtt.as_micros()
    );
    if skew.abs() > CLOCK_WARN_MS {
        Finding::warn(
            "clock",
            format!(
                "{said}: leases run on the server's clock and are not affected, but holder \
                 records' ages and lockctl's AGE are off by as much"
            ),
        )
        .fix("run NTP (chrony) on both hosts")
    } else {
        Finding::pass("clock", said)
    }
}
