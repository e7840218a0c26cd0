//! Opening a Redis URL: one server (`redis://`, `rediss://`, `redis+unix://`), the primary
//! Sentinels name (`redis+sentinel://`), or a cluster (`redis+cluster://`), with TLS where
//! the URL asks for it. Passwords never reach an error message.

use super::Endpoint;
use crate::{
    error::LockError,
    redact,
    store::{redis::RedisSettings, Store},
};

/// Where `url` points: one server (for `rediss://`, over TLS, trusting `tls_root` (PEM) if
/// given, else the system's roots), or, for `redis+sentinel://`, the primary its sentinels
/// name.
pub(crate) fn endpoint(url: &str, tls_root: Option<Vec<u8>>) -> Result<Endpoint, LockError> {
    if let Some(rest) = url.strip_prefix("redis+sentinel://") {
        #[cfg(feature = "sentinel")]
        return super::endpoint::sentinel(rest).map_err(|detail| malformed(url, &detail));
        #[cfg(not(feature = "sentinel"))]
        {
            let _ = rest;
            return Err(LockError::invalid(format!(
                "`{}` names Redis Sentinels: enable lock-runtime's `sentinel` feature",
                redact::url(url)
            )));
        }
    }
    client(url, tls_root).map(|client| Endpoint::Server(Box::new(client)))
}

pub(super) fn malformed(url: &str, detail: &str) -> LockError {
    let detail = redact::scrub(detail, redact::password(url));
    LockError::invalid(format!(
        "malformed Redis URL `{}`: {detail}",
        redact::url(url)
    ))
}

pub(super) fn client(url: &str, tls_root: Option<Vec<u8>>) -> Result<redis::Client, LockError> {
    let malformed = |e: redis::RedisError| malformed(url, &e.to_string());
    if !url.starts_with("rediss://") {
        return redis::Client::open(url).map_err(malformed);
    }
    let certificates = tls_config(url, tls_root)?;
    #[cfg(feature = "tls")]
    return redis::Client::build_with_tls(url, certificates).map_err(malformed);
    #[cfg(not(feature = "tls"))]
    match certificates {}
}

/// Connects to the Redis Cluster that `url` (`redis+cluster://[:password@]host:port,...`)
/// names, with requests bounded by `bound`.
pub(crate) async fn cluster(
    url: &str,
    tls_root: Option<Vec<u8>>,
    settings: &RedisSettings,
) -> Result<Box<dyn Store>, LockError> {
    let (tls, rest) = match url.strip_prefix("rediss+cluster://") {
        Some(rest) => (true, rest),
        None => (false, url.trim_start_matches("redis+cluster://")),
    };
    #[cfg(feature = "cluster")]
    {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let hosts = authority
            .rsplit_once('@')
            .map_or(authority, |(_, hosts)| hosts);
        let seeds: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        if seeds.iter().any(String::is_empty) {
            return Err(malformed(url, "an empty node address"));
        }
        let tls = if tls {
            Some(tls_config(url, tls_root)?)
        } else {
            None
        };
        let store =
            super::cluster::ClusterStore::connect(seeds, redact::password(url), tls, settings)
                .await?;
        Ok(Box::new(store))
    }
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (settings, tls, rest, tls_root);
        Err(LockError::invalid(format!(
            "`{}` names a Redis Cluster: enable lock-runtime's `cluster` feature",
            redact::url(url)
        )))
    }
}

/// What a TLS connection trusts: the `redis` crate's certificates with the `tls` feature;
/// nothing can be made without it.
#[cfg(feature = "tls")]
pub(crate) type TlsConfig = redis::TlsCertificates;
#[cfg(not(feature = "tls"))]
pub(crate) type TlsConfig = std::convert::Infallible;

/// The certificates to trust for a TLS `url` (`root`, else the system's roots); an error
/// without the `tls` feature.
pub(super) fn tls_config(url: &str, root: Option<Vec<u8>>) -> Result<TlsConfig, LockError> {
    #[cfg(feature = "tls")]
    {
        let _ = url;
        // One process-wide crypto provider; another part of the program may have set it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(redis::TlsCertificates {
            client_tls: None,
            root_cert: root,
        })
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = root;
        Err(LockError::invalid(format!(
            "`{}` asks for TLS: enable lock-runtime's `tls` feature, or use `redis://`",
            redact::url(url)
        )))
    }
}
