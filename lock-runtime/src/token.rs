//! Owner tokens: a fresh 128-bit random value per acquisition.
//!
//! Each thread seeds two 64-bit generator streams from the operating system's random
//! source once, then draws tokens without a system call. Two tokens collide only if both
//! 64-bit halves do, which for independently seeded streams is as unlikely as for any two
//! 128-bit random values.

use std::{cell::Cell, fmt};

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
pub struct Token([u8; 32]);

impl Token {
    /// Draws a fresh token.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        thread_local! {
            static STREAMS: Cell<Option<[u64; 2]>> = const { Cell::new(None) };
        }
        STREAMS.with(|streams| {
            let [a, b] = match streams.get() {
                Some(state) => state,
                None => {
                    let mut seed = [0u8; 16];
                    getrandom::fill(&mut seed)?;
                    let (a, b) = seed.split_at(8);
                    [
                        u64::from_le_bytes(a.try_into().unwrap_or_default()),
                        u64::from_le_bytes(b.try_into().unwrap_or_default()),
                    ]
                }
            };
            let (a, b) = (a.wrapping_add(GOLDEN), b.wrapping_add(GOLDEN));
            streams.set(Some([a, b]));
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&mix(a).to_le_bytes());
            raw[8..].copy_from_slice(&mix(b).to_le_bytes());
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

/// SplitMix64: the increment and the output mix (a bijection of the 64-bit state).
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.as_str())
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
