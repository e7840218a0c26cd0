//! The global registry: the default client and named clients, each set once.
//!
//! Reads are lock-free and allocate nothing (an `ArcSwap` load and a map lookup by `&str`);
//! writes are rare and serialised.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use arc_swap::ArcSwapOption;

use crate::{backend::Backend, error::LockError};

/// The environment variable [`init_from_env`] reads.
pub const URL_ENV: &str = "LOCK_RUNTIME_URL";

static REGISTRY: ArcSwapOption<Clients> = ArcSwapOption::const_empty();
static WRITER: Mutex<()> = Mutex::new(());

#[derive(Default, Clone)]
struct Clients {
    default: Option<Backend>,
    named: HashMap<Box<str>, Backend>,
}

/// Makes `backend` the default client, used by every lock that names no client.
///
/// The default client is set once: a second call fails with
/// [`LockError::AlreadyRegistered`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// lock_runtime::init(Backend::memory())?;
/// let guard = lock_runtime::acquire("nightly", &LockOptions::new(Duration::from_secs(60))).await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
pub fn init(backend: Backend) -> Result<(), LockError> {
    insert(None, backend)
}

/// Registers `backend` under `name`, for locks whose options (or attribute) say
/// `client = "name"`. Each name is set once.
///
/// ```
/// use lock_runtime::{Backend, LockOptions};
/// use std::time::Duration;
///
/// lock_runtime::register("reports", Backend::memory())?;
/// const OPTIONS: LockOptions = LockOptions::new(Duration::from_secs(30)).client("reports");
/// # Ok::<(), lock_runtime::LockError>(())
/// ```
pub fn register(name: &str, backend: Backend) -> Result<(), LockError> {
    if name.is_empty() {
        return Err(LockError::invalid("a client name may not be empty"));
    }
    insert(Some(name), backend)
}

/// Connects to the store named by the `LOCK_RUNTIME_URL` environment variable and makes it
/// the default client.
///
/// The URL is one of `memory://`, `redis://[:password@]host[:port][/db]`, `rediss://...`,
/// `redis+unix:///path/to/socket`, `redis+sentinel://host:port,host:port/service-name`
/// (with the `sentinel` feature), `redis+cluster://host:port,host:port` (with the
/// `cluster` feature; `rediss+cluster://` over TLS with `tls` too), or
/// `redis+redlock://host:port,host:port,host:port` (with the `redlock` feature),
/// `zookeeper://host:port,host:port[/chroot][?session_timeout=4s&root=/locks]` (with the
/// `zookeeper` feature; the session timeout is also the shortest TTL) or
/// `postgres://user[:password]@host[:port]/database` (`postgresql://` too; with the
/// `postgres` feature). An unset variable or a malformed URL is
/// [`LockError::InvalidInput`]; an unreachable store is [`LockError::Backend`] or
/// [`LockError::Timeout`].
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), lock_runtime::LockError> {
/// // LOCK_RUNTIME_URL=redis://127.0.0.1:6379 ./my-service
/// lock_runtime::init_from_env().await?;
/// # Ok(()) }
/// ```
pub async fn init_from_env() -> Result<(), LockError> {
    let url = std::env::var(URL_ENV).map_err(|e| {
        LockError::invalid(format!(
            "{URL_ENV} must hold the lock store URL (for example `redis://127.0.0.1:6379` or \
             `memory://`): {e}"
        ))
    })?;
    init(Backend::builder().connect(&url).await?)
}

/// The client registered under `name`, or the default client for `None`.
///
/// ```
/// use lock_runtime::LockError;
///
/// let err = lock_runtime::client(Some("never-registered")).unwrap_err();
/// assert!(matches!(err, LockError::NotInitialized { .. }));
/// ```
pub fn client(name: Option<&str>) -> Result<Backend, LockError> {
    let clients = REGISTRY.load();
    let found = clients.as_deref().and_then(|clients| match name {
        None => clients.default.as_ref(),
        Some(name) => clients.named.get(name),
    });
    found.cloned().ok_or_else(|| LockError::NotInitialized {
        client: name.map(str::to_owned),
    })
}

fn insert(name: Option<&str>, backend: Backend) -> Result<(), LockError> {
    let _writer = WRITER.lock().unwrap_or_else(PoisonError::into_inner);
    let mut clients = REGISTRY.load_full().as_deref().cloned().unwrap_or_default();
    let taken = match name {
        None => clients.default.is_some(),
        Some(name) => clients.named.contains_key(name),
    };
    if taken {
        return Err(LockError::AlreadyRegistered {
            client: name.map(str::to_owned),
        });
    }
    match name {
        None => clients.default = Some(backend),
        Some(name) => {
            clients.named.insert(name.into(), backend);
        }
    }
    REGISTRY.store(Some(Arc::new(clients)));
    Ok(())
}
