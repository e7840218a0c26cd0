//! The plain commands the Redis store sends (`SET NX PX`, `WAIT`) and what the scripts'
//! replies mean.

use std::time::Duration;

use redis::Value;

use crate::{
    store::{ttl_millis, AcquireRequest, Attempt, StoreError},
    token::Token,
};

/// Whether `request` can be one plain `SET NX PX` (no fencing, no reclaim, no lease
/// report for a waiter).
pub(super) fn plain(request: &AcquireRequest<'_>) -> bool {
    !request.reclaim && !request.fencing && !request.waiting
}

/// `SET key <token><holder record> NX PX ttl`.
pub(super) fn set_nx(request: &AcquireRequest<'_>) -> redis::Cmd {
    let mut set = command(
        6,
        request.key.len() + Token::LEN + request.holder.len() + 32,
    );
    set.arg("SET").arg(request.key);
    // The value written straight into the command: the token, then the holder's record.
    redis::RedisWrite::write_arg_fmt(&mut set, LockValue(request.token, request.holder));
    set.arg("NX").arg("PX").arg(ttl_millis(request.ttl));
    set
}

/// A lock's value: the owner token followed by the holder's record.
pub(super) struct LockValue<'a>(&'a Token, &'a str);

impl std::fmt::Display for LockValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())?;
        f.write_str(self.1)
    }
}

/// Whether `SET NX` took the key, from its reply.
pub(super) fn set_nx_taken(reply: Value) -> Result<bool, StoreError> {
    match reply {
        Value::Okay => Ok(true),
        Value::Nil => Ok(false),
        other => Err(format!("unexpected reply to SET NX: {other:?}").into()),
    }
}

pub(super) fn set_nx_attempt(taken: bool) -> Attempt {
    if taken {
        Attempt::Acquired { fence: None }
    } else {
        Attempt::Busy
    }
}

/// What `scripts/acquire.lua` adds to a busy reply's lease when readers or permits hold
/// the key.
pub(super) const SHARED_BUSY: u64 = 1 << 40;

/// What the acquire script's `reply` means (see `scripts/acquire.lua`).
pub(super) fn attempt(reply: i64, fenced: bool) -> Attempt {
    match reply {
        // -1 - the holder's remaining lease in milliseconds (plus `SHARED_BUSY`).
        busy if busy < 0 => match busy.unsigned_abs() - 1 {
            shared if shared >= SHARED_BUSY => Attempt::BusyShared {
                left: Duration::from_millis(shared - SHARED_BUSY),
            },
            left => Attempt::BusyFor {
                left: Duration::from_millis(left),
            },
        },
        _ if !fenced => Attempt::Acquired { fence: None },
        fence => Attempt::Acquired {
            fence: u64::try_from(fence).ok(),
        },
    }
}

/// `WAIT wanted timeout`: how many replicas have confirmed this connection's writes so far,
/// once `wanted` have or `timeout` passed.
pub(super) fn wait(wanted: u32, timeout: Duration) -> redis::Cmd {
    let mut wait = command(3, 24);
    wait.arg("WAIT").arg(wanted).arg(ttl_millis(timeout));
    wait
}

/// An empty command with room for `args` arguments of `bytes` bytes in all, so that adding
/// them does not grow its buffers one argument at a time.
pub(super) fn command(args: usize, bytes: usize) -> redis::Cmd {
    redis::Cmd::with_capacity(args, bytes)
}
