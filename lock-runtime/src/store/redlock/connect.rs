//! Connecting to Redlock's servers: a majority at once, the others in the background
//! until they answer.

use std::sync::{Arc, OnceLock, Weak};

use super::{Node, Nodes, RedlockStore, RECONNECT_EVERY};
use crate::{
    error::LockError,
    redact,
    store::{
        redis::{endpoint, Endpoint, RedisSettings},
        Operation, RedisStore, StoreError,
    },
};

impl RedlockStore {
    /// Connects to every server in `urls` at once (each within the time bound of
    /// `settings`); succeeds once a majority is connected and keeps trying the others in
    /// the background.
    pub(crate) async fn connect(
        urls: &[String],
        tls_root: Option<Vec<u8>>,
        settings: RedisSettings,
    ) -> Result<Self, LockError> {
        if urls.is_empty() {
            return Err(LockError::invalid(
                "Redlock needs at least one Redis server",
            ));
        }
        // Every URL is checked before any connection is made.
        let endpoints = urls
            .iter()
            .map(|url| endpoint(url, tls_root.clone()))
            .collect::<Result<Vec<Endpoint>, LockError>>()?;
        let nodes = Arc::new(Nodes {
            nodes: urls
                .iter()
                .map(|url| Node {
                    address: redact::url(url),
                    store: OnceLock::new(),
                })
                .collect(),
            quorum: urls.len() / 2 + 1,
        });
        if urls.len().is_multiple_of(2) {
            tracing::warn!(
                servers = urls.len(),
                "Redlock over an even number of servers tolerates no more failures than one \
                 server fewer would, and needs {} of them to agree",
                nodes.quorum
            );
        }
        let attempts: Vec<_> = endpoints
            .iter()
            .zip(urls)
            .map(|(endpoint, url)| {
                let (endpoint, url, settings) = (endpoint.clone(), url.clone(), settings.clone());
                tokio::spawn(async move {
                    RedisStore::connect(endpoint, redact::password(&url), settings).await
                })
            })
            .collect();
        let mut failures = Vec::new();
        for (index, attempt) in attempts.into_iter().enumerate() {
            let outcome = attempt.await.unwrap_or_else(|e| {
                Err(LockError::Backend {
                    operation: Operation::Connect,
                    source: e.to_string().into(),
                })
            });
            match outcome {
                Ok(store) => {
                    let _ = nodes.nodes[index].store.set(store);
                }
                Err(error) => failures.push((index, error)),
            }
        }
        if urls.len() - failures.len() < nodes.quorum {
            let failed = failures.len();
            let source = failures
                .into_iter()
                .next()
                .map(|(_, e)| StoreError::other(e));
            return Err(LockError::NoQuorum {
                operation: Operation::Connect,
                failed: u32::try_from(failed).unwrap_or(u32::MAX),
                nodes: nodes.count(),
                needed: u32::try_from(nodes.quorum).unwrap_or(u32::MAX),
                source,
            });
        }
        for (index, error) in failures {
            tracing::warn!(
                server = %nodes.nodes[index].address,
                %error,
                "a Redlock server is unreachable; connecting to it in the background"
            );
            let late = RedisSettings {
                // It may have restarted while out of reach: hold it back if it is young.
                strict: true,
                ..settings.clone()
            };
            let (endpoint, url) = (endpoints[index].clone(), urls[index].clone());
            tokio::spawn(connect_later(
                Arc::downgrade(&nodes),
                index,
                endpoint,
                url,
                late,
            ));
        }
        Ok(Self {
            nodes,
            bound: settings.bound,
        })
    }
}

/// Connects to server `index` until it answers, then puts it to use; ends early if the
/// store is dropped.
async fn connect_later(
    nodes: Weak<Nodes>,
    index: usize,
    endpoint: Endpoint,
    url: String,
    settings: RedisSettings,
) {
    loop {
        tokio::time::sleep(RECONNECT_EVERY).await;
        if nodes.strong_count() == 0 {
            return;
        }
        let connected =
            RedisStore::connect(endpoint.clone(), redact::password(&url), settings.clone()).await;
        let Some(nodes) = nodes.upgrade() else { return };
        if let Ok(store) = connected {
            tracing::info!(server = %nodes.nodes[index].address, "a Redlock server is connected");
            let _ = nodes.nodes[index].store.set(store);
            return;
        }
    }
}
