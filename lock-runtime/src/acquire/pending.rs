//! What an acquire leaves to settle: a request whose outcome is unknown, a waiting
//! writer's mark against new readers; and the jitter that keeps waiters from retrying in
//! lockstep.

use std::time::{Duration, Instant};

use crate::{
    backend::{Backend, LetGo},
    store::Operation,
    token::Token,
};

/// Cleans up after an acquire whose outcome is unknown: the request timed out, failed on
/// the wire, or its future was dropped while it was in flight. Dropped armed, it deletes the
/// key in the background if the key turns out to hold our token.
pub(super) struct InFlight<'a> {
    pub(super) backend: &'a Backend,
    pub(super) key: &'a str,
    pub(super) token: &'a Token,
    /// While armed: when the key would expire by itself if a request did take it.
    pub(super) expires: Option<Instant>,
    /// The request was for a shared lock.
    pub(super) shared: bool,
}

impl<'a> InFlight<'a> {
    pub(super) fn new(backend: &'a Backend, key: &'a str, token: &'a Token) -> Self {
        Self {
            backend,
            key,
            token,
            expires: None,
            shared: false,
        }
    }

    pub(super) fn arm(&mut self, expires: Instant) {
        self.expires = Some(self.expires.map_or(expires, |e| e.max(expires)));
    }

    pub(super) fn armed(&self) -> bool {
        self.expires.is_some()
    }

    pub(super) fn disarm(&mut self) {
        self.expires = None;
    }

    /// A contender queued in the store (whose last try said busy) leaves the queue now,
    /// before the acquire answers, so that the next try of anyone (a reader behind a writer
    /// that gave up, say) does not find it still there. Should the call fail, the queue
    /// place is left in the background as when dropped.
    pub(super) async fn leave_queue(&mut self) {
        let call = self
            .backend
            .store_release(self.key, self.token, self.shared);
        match self.backend.bounded(Operation::Release, call).await {
            Ok(_) => self.disarm(),
            Err(error) => tracing::debug!(%error, "leaving the store's queue failed"),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(expires) = self.expires {
            self.backend.release_in_background(
                self.key.into(),
                *self.token,
                LetGo::release(self.shared),
                None,
                expires,
            );
        }
    }
}

/// A waiting writer's mark against new readers (writer preference), while `set`: taken
/// back when the writer leaves without the lock, before it answers when it gives up, in
/// the background when it is cancelled, so readers need not wait the mark out.
pub(super) struct Mark<'a> {
    pub(super) backend: &'a Backend,
    pub(super) key: &'a str,
    pub(super) token: &'a Token,
    pub(super) set: bool,
}

impl Mark<'_> {
    pub(super) async fn withdraw(&mut self) {
        if std::mem::take(&mut self.set) {
            let Some(shared) = self.backend.store().shared() else {
                return;
            };
            let withdrawn = self
                .backend
                .bounded(Operation::Release, shared.withdraw(self.key, self.token))
                .await;
            if let Err(error) = withdrawn {
                tracing::debug!(%error, "taking back a waiting writer's mark failed");
            }
        }
    }
}

impl Drop for Mark<'_> {
    fn drop(&mut self) {
        if !self.set {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (backend, key, token) = (self.backend.clone(), self.key.to_owned(), *self.token);
        runtime.spawn(async move {
            let mut mark = Mark {
                backend: &backend,
                key: &key,
                token: &token,
                set: true,
            };
            mark.withdraw().await;
        });
    }
}

/// Spreads retry pauses so waiters on one key do not retry in lockstep.
pub(super) struct Jitter(u64);

impl From<&Token> for Jitter {
    fn from(token: &Token) -> Self {
        let seed = token
            .as_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
            });
        Self(seed | 1)
    }
}

impl Jitter {
    /// A duration between half and all of `pause`.
    pub(super) fn spread(&mut self, pause: Duration) -> Duration {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let fraction = 0.5 + (self.0 >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        pause.mul_f64(fraction)
    }
}
