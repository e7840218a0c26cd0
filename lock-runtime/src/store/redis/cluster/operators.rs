//! What operators do with a cluster's locks: the one server's scripts on the lock's slot,
//! and listings that `SCAN` every primary.

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::{
    super::{operate, script::fence_key},
    shards, ClusterStore,
};
use crate::store::{refuse_shared, Operators, StoreFuture, StoredLock};

impl Operators for ClusterStore {
    fn inspect<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let call = self.scripts.inspect_call(key, &fence_key(key));
            let reply = self
                .scripts
                .inspect
                .run(&call, &mut self.conn().await?)
                .await;
            operate::stored(key, reply.map_err(Self::failed)?)
        })
    }

    /// `SCAN` on every primary in turn.
    fn list<'a>(&'a self, pattern: &'a str) -> StoreFuture<'a, Vec<StoredLock>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let slots = conn
                .clone()
                .route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await
                .map_err(Self::failed)?;
            let mut primaries: Vec<String> = shards::slot_ranges(&slots)
                .into_iter()
                .map(|(_, _, address)| address)
                .collect();
            primaries.sort();
            primaries.dedup();
            let mut found = Vec::new();
            for primary in primaries {
                let Some((host, port)) = primary
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
                else {
                    continue;
                };
                let keys = operate::scan(pattern, |step| {
                    let mut conn = conn.clone();
                    let node = SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    };
                    async move {
                        let reply = conn.route_command(step, RoutingInfo::SingleNode(node));
                        reply.await.map_err(Self::failed)
                    }
                })
                .await?;
                found.extend(operate::held(self, keys).await?);
            }
            Ok(found)
        })
    }

    fn force_release<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredLock>> {
        Box::pin(async move {
            let call = self.scripts.force_release_call(key, &fence_key(key), true);
            let reply = self
                .scripts
                .inspect
                .run(&call, &mut self.conn().await?)
                .await;
            refuse_shared(operate::stored(key, reply.map_err(Self::failed)?)?)
        })
    }
}
