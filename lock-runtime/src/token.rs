//! Owner tokens: a fresh 128-bit random value per acquisition, taken from the operating
//! system's cryptographic random source (`getrandom`). No generator runs in the process:
//! each thread keeps a small buffer of OS random bytes, filled 64 tokens at a time, and
//! hands each token out once, so one token says nothing about the next. A `fork` copies
//! the buffer, so the buffer remembers the process it was filled in and is thrown away in
//! any other: parent and child never draw the same tokens.

use std::{cell::RefCell, fmt};

/// Tokens per refill of a thread's buffer.
const BATCH: usize = 64;

/// A thread's unused OS random bytes, and the process they were drawn in.
struct Pool {
    bytes: [u8; 16 * BATCH],
    next: usize,
    pid: u32,
}

/// Identifies one acquisition of one lock. Only the holder of the token can release or
/// extend the lock; the store compares it before it changes anything.
///
/// It is stored as 32 lowercase hex digits, so a lock is readable in `redis-cli`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// let backend = Backend::memory();
/// let guard = backend.acquire("k", &LockOptions::new(Duration::from_secs(1))).await?;
/// assert_eq!(guard.token().as_str().len(), 32);
/// # guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token([u8; Token::LEN]);

impl Token {
    /// How many bytes a token is.
    pub(crate) const LEN: usize = 32;

    /// Draws a fresh token.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        thread_local! {
            static POOL: RefCell<Pool> = const {
                RefCell::new(Pool { bytes: [0; 16 * BATCH], next: BATCH, pid: 0 })
            };
        }
        let pid = std::process::id();
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.next == BATCH || pool.pid != pid {
                getrandom::fill(&mut pool.bytes)?;
                pool.next = 0;
                pool.pid = pid;
            }
            let at = pool.next * 16;
            let mut raw = [0u8; 16];
            raw.copy_from_slice(&pool.bytes[at..at + 16]);
            // Handed out once: wipe it.
            pool.bytes[at..at + 16].fill(0);
            pool.next += 1;
            Ok(Self::from_random(raw))
        })
    }

    fn from_random(raw: [u8; 16]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 32];
        for (i, byte) in raw.iter().enumerate() {
            hex[2 * i] = HEX[usize::from(byte >> 4)];
            hex[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
        Self(hex)
    }

    /// The token as stored: 32 ASCII hex digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The token as stored, as text.
    pub fn as_str(&self) -> &str {
        // Always ASCII hex by construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Shows only the first four digits: whoever has the whole token can release the lock,
/// and `Debug` output ends up in logs.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", &self.as_str()[..4])
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_encoding_is_lowercase_and_complete() {
        let token =
            Token::from_random([0x00, 0xff, 0x12, 0xab, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(token.as_str(), "00ff12ab000000000000000000000001");
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let token = Token::generate().expect("random source");
        let shown = format!("{token:?}");
        assert!(!shown.contains(token.as_str()), "{shown}");
        assert!(shown.starts_with("Token("), "{shown}");
    }

    #[test]
    fn generated_tokens_differ_within_and_across_threads() {
        let draw = || {
            (0..10_000)
                .map(|_| Token::generate().expect("random source"))
                .collect::<Vec<_>>()
        };
        let mut all = draw();
        all.extend(std::thread::spawn(draw).join().expect("thread"));
        let count = all.len();
        all.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        all.dedup();
        assert_eq!(all.len(), count);
        assert!(all.iter().all(|t| t.as_str().len() == 32));
    }
}
