//! Readers, permits and several keys on a cluster: the one server's scripts, run on the
//! lock's slot (several keys only when they share one).

use std::time::Duration;

use super::{
    super::{script::fence_key, shared},
    shards, ClusterStore,
};
use crate::{
    store::{Attempt, SeveralKeys, SharedLocks, StoreFuture, Together, TogetherFuture},
    token::Token,
};

impl SharedLocks for ClusterStore {
    fn release_shared<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let call = self.scripts.release_shared_call(key, token, true);
            self.done(&self.scripts.release_shared, &call).await
        })
    }

    fn extend_shared<'a>(
        &'a self,
        key: &'a str,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.shards.note_ttl(ttl);
        Box::pin(async move {
            let call = self.scripts.extend_shared_call(key, token, ttl);
            self.done(&self.scripts.extend_shared, &call).await
        })
    }

    fn withdraw<'a>(&'a self, key: &'a str, token: &'a Token) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let call = self.scripts.withdraw_call(key, token, true);
            self.done(&self.scripts.withdraw, &call).await.map(drop)
        })
    }
}

impl SeveralKeys for ClusterStore {
    /// In one script when every key lies in one hash slot (and grants need no replicas'
    /// confirmation); else `None`: one by one.
    fn try_acquire_all<'a>(
        &'a self,
        keys: &'a [Together<'a>],
        token: &'a Token,
        ttl: Duration,
        holder: &'a str,
    ) -> TogetherFuture<'a> {
        let first = shards::slot(keys.first()?.key.as_bytes());
        let one_slot = keys.iter().all(|k| {
            shards::slot(k.key.as_bytes()) == first
                && (!k.fencing || shards::slot(fence_key(k.key).as_bytes()) == first)
        });
        if !one_slot || self.replicas.is_some() {
            return None;
        }
        self.shards.note_ttl(ttl);
        Some(Box::pin(async move {
            if let Some(left) = self.shards.hold(keys[0].key) {
                return Ok(Err(Attempt::Recovering { left }));
            }
            let floor = self.floor.get();
            let call = self
                .scripts
                .acquire_all_call(keys, token, ttl, holder, floor);
            let reply: Vec<i64> = self
                .scripts
                .acquire_all
                .run(&call, &mut self.conn().await?)
                .await
                .map_err(Self::failed)?;
            let taken = shared::all_taken(keys, &reply)?;
            if let Ok(fences) = &taken {
                for fence in fences.iter().flatten() {
                    self.floor.raise(*fence);
                }
            }
            Ok(taken)
        }))
    }

    /// In one script when every key lies in one hash slot; else `None`: one by one.
    fn release_all<'a>(
        &'a self,
        keys: &'a [&'a str],
        token: &'a Token,
    ) -> Option<StoreFuture<'a, Vec<bool>>> {
        let first = shards::slot(keys.first()?.as_bytes());
        if !keys.iter().all(|k| shards::slot(k.as_bytes()) == first) {
            return None;
        }
        Some(Box::pin(async move {
            let call = self.scripts.release_all_call(keys, token, true);
            let released: Vec<i64> = self
                .scripts
                .release_all
                .run(&call, &mut self.conn().await?)
                .await
                .map_err(Self::failed)?;
            Ok(released.into_iter().map(|r| r == 1).collect())
        }))
    }
}
