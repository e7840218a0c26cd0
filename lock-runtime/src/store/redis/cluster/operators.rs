//! What operators do with a cluster's locks: the one server's scripts on the lock's slot,
//! and listings that `SCAN` every primary.

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::{
    super::{doctor, operate, script::fence_key},
    shards, ClusterStore,
};
use crate::store::{refuse_shared, Finding, Operators, StoreError, StoreFuture, StoredLock};

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
            let mut found = Vec::new();
            for (host, port) in self.primaries(&conn).await? {
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

    /// The cluster's slot coverage, each primary's checks, and the user's permissions.
    fn diagnose<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let random = || RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
            let send_random = |command: redis::Cmd| {
                let mut conn = conn.clone();
                async move {
                    let reply = conn.route_command(command, random()).await;
                    reply.map_err(Self::failed)
                }
            };
            let info = send_random(redis::cmd("CLUSTER").arg("INFO").clone()).await?;
            let info: String = redis::from_redis_value(info)?;
            let field = |name: &str| {
                info.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            let (state, served) = (field("cluster_state"), field("cluster_slots_ok"));
            let primaries = self.primaries(&conn).await?;
            let mut found = vec![if state == "ok" && served == "16384" {
                Finding::pass(
                    "slots",
                    format!("all 16384 slots served by {} primaries", primaries.len()),
                )
            } else {
                Finding::fail(
                    "slots",
                    format!(
                        "cluster_state {state}, {served} of 16384 slots served: locks whose \
                         slot is not served cannot be taken or released"
                    ),
                )
                .fix("assign the missing slots or bring their primary back (redis-cli --cluster check / fix)")
            }];
            for (host, port) in primaries {
                let place = format!("{host}:{port}");
                let facts = doctor::facts(|command| {
                    let mut conn = conn.clone();
                    let node = SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    };
                    async move {
                        let reply = conn.route_command(command, RoutingInfo::SingleNode(node));
                        reply.await.map_err(Self::failed)
                    }
                })
                .await;
                match facts {
                    Ok(facts) => {
                        let wanted = self.replicas.map(|(n, _)| n);
                        let checks = doctor::server(&facts, wanted).into_iter();
                        found.extend(checks.map(|f| f.at(&place)));
                    }
                    // One primary down: said, and the others still checked.
                    Err(e) => found.push(
                        Finding::fail("primary", format!("{place} does not answer: {e}"))
                            .fix("bring the primary back, or let its replica take over"),
                    ),
                }
            }
            found.push(doctor::acl(key, true, self.replicas.is_some(), send_random).await);
            Ok(found)
        })
    }
}

impl ClusterStore {
    /// The primaries' addresses, from `CLUSTER SLOTS`.
    async fn primaries(
        &self,
        conn: &redis::cluster_async::ClusterConnection,
    ) -> Result<Vec<(String, u16)>, StoreError> {
        let slots = conn
            .clone()
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(Self::failed)?;
        let mut primaries: Vec<(String, u16)> = shards::slot_ranges(&slots)
            .into_iter()
            .filter_map(|(_, _, address)| {
                let (host, port) = address.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect();
        primaries.sort();
        primaries.dedup();
        Ok(primaries)
    }
}
