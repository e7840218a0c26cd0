//! Owner tokens: a fresh 128-bit random value per acquisition.

use std::fmt;

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
    /// Draws a fresh token from the operating system's random source.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw)?;
        Ok(Self::from_random(raw))
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
    fn generated_tokens_differ() {
        let a = Token::generate().expect("random source");
        let b = Token::generate().expect("random source");
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
    }
}
