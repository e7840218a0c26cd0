//! The store's Lua scripts, sent as `EVALSHA` commands built in one go (the `redis` crate's
//! `ScriptInvocation` copies every key and argument into vectors of its own first), and
//! loaded with `SCRIPT LOAD` when the server does not know them (`NOSCRIPT`: after a
//! restart, a failover, or `SCRIPT FLUSH`).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use redis::{aio::ConnectionLike, Cmd, ErrorKind, FromRedisValue, RedisResult};

use super::FENCE_COUNTER_LIFE;
use crate::{
    store::{ttl_millis, AcquireRequest, WRITER_WAITING},
    token::Token,
};

/// Where the permit count of the semaphore at `key` lives.
pub(super) fn permits_key(key: &str) -> String {
    format!("{key}:permits")
}

/// Where a waiting writer marks the read-write lock at `key` (as `acquire.lua` names it).
pub(super) fn writer_key(key: &str) -> String {
    format!("{key}:writer")
}

/// The highest fencing token, or server clock in microseconds, this client has seen from
/// a store: every fenced acquire passes it, and its token is above it. Tokens are at least
/// the server's clock; a server whose clock is behind (a promoted replica whose clock lags,
/// with the counter lost in the failover) would otherwise hand out tokens below ones
/// already granted.
#[derive(Debug, Default)]
pub(super) struct Floor(AtomicU64);

impl Floor {
    pub(super) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Raises the floor to `seen`; returns the floor before.
    pub(super) fn raise(&self, seen: u64) -> u64 {
        self.0.fetch_max(seen, Ordering::Relaxed)
    }

    /// Raises the floor to the token of an acquire's answer.
    pub(super) fn note(&self, attempt: &crate::store::Attempt) {
        if let crate::store::Attempt::Acquired { fence: Some(fence) } = attempt {
            self.raise(*fence);
        }
    }
}

/// The store's scripts (see `scripts/`).
pub(super) struct Scripts {
    pub(super) acquire: LuaScript,
    pub(super) release: LuaScript,
    pub(super) extend: LuaScript,
    /// For operators: read a lock, and delete it whoever holds it.
    /// Also the operator's release.
    pub(super) inspect: LuaScript,
    /// Readers and permits (`shared.rs`), and several locks at once.
    pub(super) acquire_shared: LuaScript,
    pub(super) release_shared: LuaScript,
    pub(super) extend_shared: LuaScript,
    pub(super) acquire_all: LuaScript,
    pub(super) release_all: LuaScript,
    /// A waiting writer's mark, taken back.
    pub(super) withdraw: LuaScript,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            acquire: LuaScript::new(include_str!("scripts/acquire.lua")),
            release: LuaScript::new(include_str!("scripts/release.lua")),
            extend: LuaScript::new(include_str!("scripts/extend.lua")),
            inspect: LuaScript::new(include_str!("scripts/inspect.lua")),
            acquire_shared: LuaScript::new(include_str!("scripts/acquire_shared.lua")),
            release_shared: LuaScript::new(include_str!("scripts/release_shared.lua")),
            extend_shared: LuaScript::new(include_str!("scripts/extend_shared.lua")),
            acquire_all: LuaScript::new(include_str!("scripts/acquire_all.lua")),
            release_all: LuaScript::new(include_str!("scripts/release_all.lua")),
            withdraw: LuaScript::new(include_str!("scripts/withdraw.lua")),
        }
    }

    /// The scripted acquire for `request` (see `scripts/acquire.lua`); a fencing token is
    /// drawn above `floor`.
    pub(super) fn acquire_call(&self, request: &AcquireRequest<'_>, floor: u64) -> Cmd {
        let fence_key = request.fencing.then(|| fence_key(request.key));
        let fence_len = fence_key.as_ref().map_or(0, String::len);
        let keys = if request.fencing { 2 } else { 1 };
        let bytes = request.key.len() + fence_len + Token::LEN + request.holder.len() + 48;
        let mut call = self.acquire.call(keys, bytes);
        call.arg(request.key);
        if let Some(fence_key) = &fence_key {
            call.arg(fence_key);
        }
        call.arg(request.token.as_bytes())
            .arg(ttl_millis(request.ttl))
            .arg(u8::from(request.reclaim))
            .arg(ttl_millis(FENCE_COUNTER_LIFE))
            .arg(request.holder);
        if request.waiting || request.fencing {
            call.arg(u8::from(request.waiting))
                .arg(ttl_millis(WRITER_WAITING));
        }
        if request.fencing {
            call.arg(floor);
        }
        call
    }

    /// The operator's read of `key` (see `scripts/inspect.lua`).
    pub(super) fn inspect_call(&self, key: &str, fence_key: &str) -> Cmd {
        let permits = permits_key(key);
        let mut call = self
            .inspect
            .call(3, key.len() + fence_key.len() + permits.len() + 8);
        call.arg(key).arg(fence_key).arg(permits);
        call
    }

    /// The operator's release of `key`, notifying with `SPUBLISH` when `sharded`: the
    /// inspect script, told to release.
    pub(super) fn force_release_call(&self, key: &str, fence_key: &str, sharded: bool) -> Cmd {
        let mut call = self.inspect_call(key, fence_key);
        call.arg(if sharded { "SPUBLISH" } else { "PUBLISH" });
        call
    }

    /// The release of `key` held by `token`, notifying with `SPUBLISH` when `sharded`.
    pub(super) fn release_call(&self, key: &str, token: &Token, sharded: bool) -> Cmd {
        let mut call = self.release.call(1, key.len() + Token::LEN + 8);
        call.arg(key).arg(token.as_bytes());
        if sharded {
            call.arg("SPUBLISH");
        }
        call
    }

    /// The release of every one of `keys` held by `token` (see `scripts/release_all.lua`).
    pub(super) fn release_all_call(&self, keys: &[&str], token: &Token, sharded: bool) -> Cmd {
        let bytes = keys.iter().map(|k| k.len()).sum::<usize>() + Token::LEN + 8;
        let mut call = self.release_all.call(keys.len(), bytes);
        for key in keys {
            call.arg(*key);
        }
        call.arg(token.as_bytes())
            .arg(if sharded { "SPUBLISH" } else { "PUBLISH" });
        call
    }

    /// The extension of `key` held by `token` to `ttl`.
    pub(super) fn extend_call(&self, key: &str, token: &Token, ttl: Duration) -> Cmd {
        let mut call = self.extend.call(1, key.len() + Token::LEN + 20);
        call.arg(key).arg(token.as_bytes()).arg(ttl_millis(ttl));
        call
    }
}

/// One script: its source and SHA-1.
pub(super) struct LuaScript {
    source: &'static str,
    hash: String,
}

impl LuaScript {
    pub(super) fn new(source: &'static str) -> Self {
        Self {
            source,
            hash: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    /// `EVALSHA <hash> <keys>`: the caller adds the keys, then the arguments, about `bytes`
    /// long in all (the buffer is made that large at once, not grown argument by argument).
    pub(super) fn call(&self, keys: usize, bytes: usize) -> Cmd {
        let mut cmd = super::command(10, "EVALSHA".len() + self.hash.len() + 1 + bytes);
        cmd.arg("EVALSHA").arg(self.hash.as_str()).arg(keys);
        cmd
    }

    /// Runs `call` (made by [`call`](Self::call)), loading the script first if the server
    /// does not know it.
    pub(super) async fn run<T: FromRedisValue, C: ConnectionLike + Send>(
        &self,
        call: &Cmd,
        conn: &mut C,
    ) -> RedisResult<T> {
        match call.query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // Boxed: the rare path would otherwise make every call's future larger.
                Box::pin(self.load_and_run(call, conn)).await
            }
            answer => answer,
        }
    }

    async fn load_and_run<T: FromRedisValue, C: ConnectionLike + Send>(
        &self,
        call: &Cmd,
        conn: &mut C,
    ) -> RedisResult<T> {
        let _: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(self.source)
            .query_async(conn)
            .await?;
        call.query_async(conn).await
    }
}

/// Where the fencing counter of the lock at `key` lives: beside it, in the same hash slot.
pub(super) fn fence_key(key: &str) -> String {
    let mut fence = String::with_capacity(key.len() + 6);
    fence.push_str(key);
    fence.push_str(":fence");
    fence
}

#[cfg(test)]
mod tests {
    use super::LuaScript;

    #[test]
    fn the_call_names_the_scripts_sha1() {
        let script = LuaScript::new("return 1");
        // SHA-1 of "return 1".
        assert_eq!(script.hash, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        let packed = script.call(1, 1).arg("k").get_packed_command();
        let text = String::from_utf8(packed).expect("ascii");
        assert!(text.contains(
            "EVALSHA\r\n$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n$1\r\n1\r\n$1\r\nk\r\n"
        ));
    }
}
