//! Who holds a lock: the record every acquisition writes next to its owner token, in the
//! same write, and what [`Backend::inspect`](crate::Backend::inspect) reads back.
//!
//! In Redis a lock's value is the token followed by the record,
//! `<token>;h=<host>;p=<pid>;f=<function>;t=<unix ms>[;fence=<n>]`, readable in
//! `redis-cli`; the store's scripts compare only the token in front. ZooKeeper keeps the
//! record as the contender node's data. Host and function are cut to
//! [`MAX_HOST`] and [`MAX_FUNCTION`] bytes, so a record stays under 256 bytes.

use crate::store::LockKind;
use std::{
    sync::{Mutex, OnceLock, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// The longest host name a record keeps, in bytes.
pub const MAX_HOST: usize = 64;
/// The longest function path a record keeps, in bytes.
pub const MAX_FUNCTION: usize = 96;

/// Who holds a lock, as the holder recorded it when it took the lock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let options = LockOptions::new(Duration::from_secs(10)).function("billing::charge");
/// let guard = backend.acquire("order:7", &options).await?;
/// let info = backend.inspect("order:7").await?.expect("held");
/// let holder = info.holder.expect("a record");
/// assert_eq!(holder.pid, std::process::id());
/// assert_eq!(holder.function.as_deref(), Some("billing::charge"));
/// assert_eq!(info.token, guard.token().as_str());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// The annotated function (its module path and name), when the lock was taken through
    /// `#[distributed_lock]` or options naming one.
    pub function: Option<String>,
    /// When the holder took the lock, by its own clock.
    pub taken_at: SystemTime,
    /// The fencing token it was given, if it asked for one.
    pub fence: Option<u64>,
}

/// A held lock, as [`Backend::inspect`](crate::Backend::inspect) and
/// [`Backend::list`](crate::Backend::list) find it: one exclusive holder, or the readers
/// or permit holders that share it ([`sharers`](Self::sharers)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{store::LockKind, Backend, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let options = LockOptions::new(Duration::from_secs(30));
/// let _one = backend.acquire_permit("pool", 3, &options).await?;
/// let _two = backend.acquire_permit("pool", 3, &options).await?;
/// let info = backend.inspect("pool").await?.expect("held");
/// assert_eq!(info.kind, LockKind::Permit { permits: 3 });
/// assert_eq!(info.sharers.len(), 2);
/// assert_eq!(info.sharers[0].holder.as_ref().expect("a record").pid, std::process::id());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The lock's name (without the backend's prefix).
    pub name: String,
    /// How the key is held: by one owner ([`LockKind::Exclusive`]), by readers
    /// ([`LockKind::Read`]) or by a semaphore's permits ([`LockKind::Permit`], with the
    /// count its holders use).
    pub kind: LockKind,
    /// The holder's owner token; empty for a key held by readers or permits, whose
    /// [`sharers`](Self::sharers) each have their own.
    pub token: String,
    /// The holder's record; `None` when the lock was written without one (by an older
    /// version of this library, or by another client of the same store, such as Curator),
    /// and for a shared key.
    pub holder: Option<Holder>,
    /// How long the lease has left unless renewed (a shared key's: its longest holder's);
    /// `None` on a store whose leases are sessions (ZooKeeper).
    pub remaining: Option<Duration>,
    /// The lock's fencing counter: the last fencing token issued for it, if any is kept.
    pub fence_counter: Option<u64>,
    /// A shared key's live holders, their leases ending soonest first; empty for an
    /// exclusive lock.
    pub sharers: Vec<Sharer>,
}

/// One holder of a key held by readers or a semaphore's permits ([`LockInfo::sharers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sharer {
    /// The holder's owner token.
    pub token: String,
    /// The holder's record, if it wrote one.
    pub holder: Option<Holder>,
    /// How long its lease has left unless renewed; `None` where leases are sessions.
    pub remaining: Option<Duration>,
}

impl LockInfo {
    /// How long ago the holder took the lock (for a shared key, the earliest of its
    /// holders still there), by this machine's clock (zero if the holder's clock is
    /// ahead); `None` without a record.
    pub fn age(&self) -> Option<Duration> {
        let shared = self.sharers.iter().filter_map(|s| s.holder.as_ref());
        let taken = self.holder.iter().chain(shared).map(|h| h.taken_at).min()?;
        Some(SystemTime::now().duration_since(taken).unwrap_or_default())
    }
}

/// The longest record: `;h=` host `;p=` pid `;f=` function `;t=` milliseconds.
const RECORD_MAX: usize = 3 + MAX_HOST + 3 + 10 + 3 + MAX_FUNCTION + 3 + 20;

/// The record of an acquisition made now by this process from `function`:
/// `;h=<host>;p=<pid>[;f=<function>];t=<unix ms>`, to store right after the token. Built
/// on the stack, with no allocation and no formatting machinery: it is made for every
/// acquisition.
pub(crate) struct Record {
    bytes: [u8; RECORD_MAX],
    len: usize,
}

impl Record {
    pub(crate) fn now(function: Option<&str>) -> Self {
        let mut record = Self {
            bytes: [0; RECORD_MAX],
            len: 0,
        };
        record.push(process_part().as_bytes());
        if let Some(function) = function {
            record.push(b";f=");
            if function.len() <= MAX_FUNCTION && !function.bytes().any(needs_cleaning) {
                record.push(function.as_bytes());
            } else {
                let mut clean = String::with_capacity(MAX_FUNCTION);
                push_clean(&mut clean, function, MAX_FUNCTION);
                record.push(clean.as_bytes());
            }
        }
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        record.push(b";t=");
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = u64::try_from(millis).unwrap_or(u64::MAX);
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        record.push(&digits[at..]);
        record
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(RECORD_MAX);
        self.bytes[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }

    pub(crate) fn as_str(&self) -> &str {
        // Made of whole UTF-8 strings, each cut at a character boundary.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// A byte the record cannot hold as it is: a separator or a control character.
fn needs_cleaning(byte: u8) -> bool {
    byte == b';' || byte == b'=' || byte.is_ascii_control()
}

/// `;h=<host>;p=<pid>`, made once per process (and again after a `fork`).
fn process_part() -> &'static str {
    static PART: OnceLock<(u32, String)> = OnceLock::new();
    let pid = std::process::id();
    let (made_in, part) = PART.get_or_init(|| (pid, process_part_for(pid)));
    if *made_in == pid {
        return part;
    }
    // A forked child: one string per process it ran as, kept for the process's life.
    static FORKED: Mutex<Option<(u32, &'static str)>> = Mutex::new(None);
    let mut forked = FORKED.lock().unwrap_or_else(PoisonError::into_inner);
    match *forked {
        Some((made_in, part)) if made_in == pid => part,
        _ => {
            let part: &'static str = Box::leak(process_part_for(pid).into_boxed_str());
            *forked = Some((pid, part));
            part
        }
    }
}

fn process_part_for(pid: u32) -> String {
    let mut part = String::from(";h=");
    push_clean(&mut part, &host_name(), MAX_HOST);
    part.push_str(";p=");
    part.push_str(&pid.to_string());
    part
}

/// This machine's host name: the kernel's, else `$HOSTNAME`, else `unknown`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Appends `text` cut to `max` bytes, with the record's separators and control characters
/// replaced by `_`.
fn push_clean(out: &mut String, text: &str, max: usize) {
    let mut room = max;
    for c in text.chars() {
        if c.len_utf8() > room {
            break;
        }
        room -= c.len_utf8();
        out.push(
            if c.is_control() || (c.is_ascii() && needs_cleaning(c as u8)) {
                '_'
            } else {
                c
            },
        );
    }
}

/// Splits a stored value into its token and holder record (`None` without one).
pub(crate) fn parse(value: &str) -> (String, Option<Holder>) {
    let mut parts = value.split(';');
    let token = parts.next().unwrap_or_default().to_owned();
    let (mut host, mut pid, mut function, mut taken_at, mut fence) = (None, None, None, None, None);
    for part in parts {
        let Some((field, text)) = part.split_once('=') else {
            continue;
        };
        match field {
            "h" => host = Some(text.to_owned()),
            "p" => pid = text.parse().ok(),
            "f" => function = Some(text.to_owned()),
            "t" => {
                taken_at = text
                    .parse()
                    .ok()
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
            }
            "fence" => fence = text.parse().ok(),
            _ => {}
        }
    }
    let holder = match (host, pid, taken_at) {
        (Some(host), Some(pid), Some(taken_at)) => Some(Holder {
            host,
            pid,
            function,
            taken_at,
            fence,
        }),
        _ => None,
    };
    (token, holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back() {
        let value = format!(
            "{}{};fence=42",
            "a".repeat(32),
            Record::now(Some("app::job")).as_str()
        );
        let (token, holder) = parse(&value);
        assert_eq!(token, "a".repeat(32));
        let holder = holder.expect("a record");
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.function.as_deref(), Some("app::job"));
        assert_eq!(holder.fence, Some(42));
        assert!(!holder.host.is_empty());
        let age = SystemTime::now().duration_since(holder.taken_at).unwrap();
        assert!(age < Duration::from_secs(5), "{age:?}");
    }

    #[test]
    fn a_bare_token_has_no_record_and_fields_are_cleaned_and_cut() {
        assert_eq!(parse("abc"), ("abc".to_owned(), None));
        let long = format!("a;b=c\n{}", "é".repeat(100));
        let (_, holder) = parse(&format!("t{}", Record::now(Some(&long)).as_str()));
        let function = holder.and_then(|h| h.function).expect("a function");
        assert!(function.starts_with("a_b_c_é"), "{function}");
        assert!(function.len() <= MAX_FUNCTION);
        // Token (32), record, `;fence=` and a u64 (27): under 256 bytes.
        let longest = Record::now(Some(&"x".repeat(1000)));
        assert!(32 + longest.as_str().len() + 27 < 256);
        // Cut, the function still leaves room for the time.
        let (_, holder) = parse(&format!("t{}", longest.as_str()));
        let holder = holder.expect("a record");
        assert_eq!(holder.function.map(|f| f.len()), Some(MAX_FUNCTION));
        let age = SystemTime::now().duration_since(holder.taken_at).unwrap();
        assert!(age < Duration::from_secs(5), "{age:?}");
    }
}
