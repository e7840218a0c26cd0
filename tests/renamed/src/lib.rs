//! `lock-runtime` renamed to `locks` in Cargo.toml: no `lock_runtime` crate exists here, so
//! the expansion compiles only if it names the runtime through `crate = "locks"`.

/// Counts under the lock `count:{n}`; the fallback when busy is `0`.
#[locks::distributed_lock(key = "count:{n}", ttl = "10s", crate = "locks")]
pub async fn count(n: u32) -> Result<u32, locks::LockError> {
    Ok(n + 1)
}

/// The same with a fallback, which uses more of the runtime's hidden API.
#[locks::distributed_lock(key = "tick", ttl = "10s", crate = "locks", skip)]
pub async fn tick() {}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_renamed_runtime_is_found_through_the_crate_argument() {
        locks::init(locks::Backend::memory()).expect("init");
        assert_eq!(super::count(1).await.expect("lock"), 2);
        super::tick().await;
    }
}
