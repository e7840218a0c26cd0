//! The expansion names nothing from the caller's scope: it compiles with `core`, `std` and
//! `lock_runtime` shadowed by local modules, user items named like the expansion's locals,
//! and `unused_qualifications` denied.
#![deny(unused_qualifications)]
#![allow(dead_code, non_camel_case_types)]

mod core {}
mod std {}
mod lock_runtime {}

use ::lock_runtime::{distributed_lock, Backend, LockError};

struct Result;
struct Ok;
struct Err;
struct Option;
struct Default;
struct Duration;
struct LockOptions;
fn with_lock() {}
fn format() {}

#[distributed_lock(key = "hygiene:{key}:{__lock_error}", ttl = "1s", wait = "10ms")]
async fn guarded(
    key: u32,
    __lock_error: u32,
    __lock_output: u32,
    __lock_fake_return: u32,
) -> ::core::result::Result<u32, LockError> {
    let options = 1;
    let guard = 2;
    ::core::result::Result::Ok(key + __lock_error + __lock_output + __lock_fake_return + options + guard)
}

#[distributed_lock(key = "hygiene:skip", ttl = "1s", skip)]
async fn skipping() {}

fn main() {
    let runtime = ::tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        ::lock_runtime::init(Backend::memory()).unwrap();
        ::core::assert_eq!(guarded(1, 2, 3, 4).await.unwrap(), 13);
        skipping().await;
    });
}
