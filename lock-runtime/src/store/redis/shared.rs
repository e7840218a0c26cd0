//! Readers, semaphore permits and several locks at once, on one Redis server (see
//! `scripts/acquire_shared.lua`, `release_shared.lua`, `extend_shared.lua` and
//! `acquire_all.lua`). A shared key is a sorted set of its holders; the semaphore's permit
//! count and a waiting writer's mark live beside it, in the same hash slot.

use std::time::Duration;

use super::{
    script::{fence_key, permits_key, writer_key, Scripts},
    RedisStore, FENCE_COUNTER_LIFE,
};
use crate::{
    store::{mismatch, ttl_millis, AcquireRequest, Attempt, LockKind, StoreError, Together},
    token::Token,
};

impl Scripts {
    pub(super) fn acquire_shared_call(
        &self,
        request: &AcquireRequest<'_>,
        floor: u64,
    ) -> redis::Cmd {
        let permits = match request.kind {
            LockKind::Permit { permits } => permits,
            _ => 0,
        };
        let keys = if request.fencing { 4 } else { 3 };
        let mut call = self.acquire_shared.call(keys, 4 * request.key.len() + 160);
        call.arg(request.key)
            .arg(permits_key(request.key))
            .arg(writer_key(request.key));
        if request.fencing {
            call.arg(fence_key(request.key));
        }
        call.arg(request.token.as_bytes())
            .arg(ttl_millis(request.ttl))
            .arg(permits)
            .arg(u8::from(request.reclaim))
            .arg(ttl_millis(FENCE_COUNTER_LIFE))
            .arg(request.holder)
            .arg(floor);
        call
    }

    /// The release (`release_shared.lua`) of the shared holder `token` of `key`, publishing
    /// with `SPUBLISH` when `sharded` (a cluster).
    pub(super) fn release_shared_call(
        &self,
        key: &str,
        token: &Token,
        sharded: bool,
    ) -> redis::Cmd {
        let mut call = self.release_shared.call(2, 2 * key.len() + Token::LEN + 32);
        call.arg(key).arg(permits_key(key)).arg(token.as_bytes());
        if sharded {
            call.arg("SPUBLISH");
        }
        call
    }

    /// The extension (`extend_shared.lua`) of the shared holder `token` of `key` to `ttl`.
    pub(super) fn extend_shared_call(&self, key: &str, token: &Token, ttl: Duration) -> redis::Cmd {
        let mut call = self.extend_shared.call(2, 2 * key.len() + Token::LEN + 32);
        call.arg(key)
            .arg(permits_key(key))
            .arg(token.as_bytes())
            .arg(ttl_millis(ttl));
        call
    }

    /// The withdrawal (`withdraw.lua`) of the waiting writer `token`'s mark on `key`,
    /// publishing with `SPUBLISH` when `sharded`.
    pub(super) fn withdraw_call(&self, key: &str, token: &Token, sharded: bool) -> redis::Cmd {
        let mark = writer_key(key);
        let mut call = self
            .withdraw
            .call(2, key.len() + mark.len() + Token::LEN + 16);
        call.arg(key).arg(mark).arg(token.as_bytes());
        if sharded {
            call.arg("SPUBLISH");
        }
        call
    }
}

impl Scripts {
    /// The call of `scripts/acquire_all.lua` for `keys` (fencing counters with them when
    /// every key has one, tokens drawn above `floor`).
    pub(super) fn acquire_all_call(
        &self,
        keys: &[Together<'_>],
        token: &Token,
        ttl: Duration,
        holder: &str,
        floor: u64,
    ) -> redis::Cmd {
        let fenced = keys.iter().all(|k| k.fencing);
        let bytes: usize = keys.iter().map(|k| 2 * k.key.len() + 10).sum();
        let count = if fenced { 2 * keys.len() } else { keys.len() };
        let mut call = self.acquire_all.call(count, bytes + holder.len() + 64);
        for together in keys {
            call.arg(together.key);
        }
        if fenced {
            for together in keys {
                call.arg(fence_key(together.key));
            }
        }
        call.arg(token.as_bytes())
            .arg(ttl_millis(ttl))
            .arg(keys.len())
            .arg(ttl_millis(FENCE_COUNTER_LIFE))
            .arg(holder)
            .arg(floor);
        call
    }
}

/// What `scripts/acquire_all.lua` answered for `keys`: their fencing tokens, or why not.
pub(super) fn all_taken(
    keys: &[Together<'_>],
    reply: &[i64],
) -> Result<Result<Vec<Option<u64>>, Attempt>, StoreError> {
    let fenced = keys.iter().all(|k| k.fencing);
    match reply {
        [1, fences @ ..] if fences.len() == keys.len() => Ok(Ok(fences
            .iter()
            .map(|f| fenced.then(|| u64::try_from(*f).ok()).flatten())
            .collect())),
        [0, left] => Ok(Err(Attempt::BusyFor {
            left: Duration::from_millis(left.unsigned_abs()),
        })),
        other => Err(format!("unexpected reply to the acquire-all script: {other:?}").into()),
    }
}

/// The reply of `acquire_shared.lua` for `request`.
pub(super) fn shared_attempt(
    request: &AcquireRequest<'_>,
    reply: (i64, i64),
) -> Result<Attempt, StoreError> {
    match reply {
        (1, fence) => Ok(Attempt::Acquired {
            fence: request.fencing.then(|| u64::try_from(fence).ok()).flatten(),
        }),
        (0, left) => Ok(Attempt::BusyFor {
            left: Duration::from_millis(left.unsigned_abs()),
        }),
        (_, held) => {
            let wanted = match request.kind {
                LockKind::Permit { permits } => permits,
                _ => 0,
            };
            let held = u32::try_from(held).unwrap_or(u32::MAX);
            Err(mismatch(request.key, held, wanted))
        }
    }
}

impl RedisStore {
    pub(super) async fn acquire_shared(
        &self,
        request: AcquireRequest<'_>,
    ) -> Result<Attempt, StoreError> {
        let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
        if let Some(left) = self.conn.hold(request.ttl) {
            return Ok(Attempt::Recovering { left });
        }
        let call = self
            .scripts
            .acquire_shared_call(&request, self.conn.floor.get());
        let reply = self.scripts.acquire_shared.run(&call, &mut conn).await;
        let attempt = shared_attempt(&request, reply.map_err(|e| self.failed(e))?)?;
        self.conn.floor.note(&attempt);
        Ok(attempt)
    }

    /// Takes back the waiting writer `token`'s mark on `key` (see `scripts/withdraw.lua`).
    pub(super) async fn withdraw_writer(&self, key: &str, token: &Token) -> Result<(), StoreError> {
        let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
        let call = self.scripts.withdraw_call(key, token, false);
        let _: i64 = self
            .scripts
            .withdraw
            .run(&call, &mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    pub(super) async fn release_one_shared(
        &self,
        key: &str,
        token: &Token,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
        let call = self.scripts.release_shared_call(key, token, false);
        let released: i64 = self
            .scripts
            .release_shared
            .run(&call, &mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(released == 1)
    }

    pub(super) async fn extend_one_shared(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.conn.note_ttl(ttl);
        let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
        let call = self.scripts.extend_shared_call(key, token, ttl);
        let extended: i64 = self
            .scripts
            .extend_shared
            .run(&call, &mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(extended == 1)
    }

    /// Takes every one of `keys` or none, in one script (see `scripts/acquire_all.lua`).
    pub(super) async fn acquire_all(
        &self,
        keys: &[Together<'_>],
        token: &Token,
        ttl: Duration,
        holder: &str,
    ) -> Result<Result<Vec<Option<u64>>, Attempt>, StoreError> {
        let mut conn = self.conn.get().await.map_err(|e| self.failed(e))?;
        if let Some(left) = self.conn.hold(ttl) {
            return Ok(Err(Attempt::Recovering { left }));
        }
        let floor = &self.conn.floor;
        let call = self
            .scripts
            .acquire_all_call(keys, token, ttl, holder, floor.get());
        let reply: Result<Vec<i64>, _> = self.scripts.acquire_all.run(&call, &mut conn).await;
        let taken = all_taken(keys, &reply.map_err(|e| self.failed(e))?)?;
        if let Ok(fences) = &taken {
            for fence in fences.iter().flatten() {
                floor.raise(*fence);
            }
        }
        Ok(taken)
    }
}
