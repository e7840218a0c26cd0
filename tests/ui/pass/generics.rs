//! Generics, where clauses, `impl Trait` arguments, explicit lifetimes, pattern parameters
//! the key does not use, and tuple fields.
use std::fmt::Display;

use lock_runtime::{distributed_lock, Backend, LockError};

#[distributed_lock(key = "item:{id}", ttl = "1s")]
async fn generic<T, K>(id: K, value: T) -> Result<T, LockError>
where
    T: Clone + Send,
    K: Display,
{
    Ok(value.clone())
}

#[distributed_lock(key = "name:{name}", ttl = "1s")]
async fn impl_trait(name: impl Display + Send, extra: impl Into<u32>) -> Result<u32, LockError> {
    Ok(extra.into())
}

#[distributed_lock(key = "borrowed:{text}", ttl = "1s")]
async fn lifetimes<'a, 'b: 'a>(text: &'a str, _other: &'b str) -> Result<&'a str, LockError> {
    Ok(text)
}

#[distributed_lock(key = "pair:{pair.0}:{pair.1}", ttl = "1s")]
async fn patterns(pair: (u8, char), (a, b): (u32, u32), _: bool) -> Result<u32, LockError> {
    Ok(a + b + u32::from(pair.0))
}

#[distributed_lock(key = "mutable:{n}", ttl = "1s")]
async fn mutable_binding(mut n: u32) -> Result<u32, LockError> {
    n += 1;
    Ok(n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lock_runtime::init(Backend::memory()).unwrap();
    assert_eq!(generic(7, vec![1]).await.unwrap(), vec![1]);
    assert_eq!(impl_trait("x", 3u8).await.unwrap(), 3);
    let owned = String::from("abc");
    assert_eq!(lifetimes(&owned, "z").await.unwrap(), "abc");
    assert_eq!(patterns((1, 'c'), (2, 3), true).await.unwrap(), 6);
    assert_eq!(mutable_binding(1).await.unwrap(), 2);
}
