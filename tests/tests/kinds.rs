//! Read-write locks, semaphores and several keys at once, on memory, Redis, PostgreSQL and
//! ZooKeeper: who may hold a key beside whom, token-checked release and renewal, leases that run out on their own,
//! and clear errors for what a store or a key cannot do.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use lock_runtime::{store::LockKind, Backend, LockError, LockMode, LockOptions};
use lock_tests::{on_both_stores, RedisServer, Stores};

fn options(ttl_ms: u64) -> LockOptions {
    LockOptions::new(Duration::from_millis(ttl_ms))
}

fn read(ttl_ms: u64) -> LockOptions {
    options(ttl_ms).mode(LockMode::Read)
}

on_both_stores!(
    readers_share_and_exclude_writers,
    a_waiting_writer_keeps_new_readers_out,
    readers_release_and_renew_only_their_own_lease,
    a_semaphore_admits_at_most_its_permits,
    a_semaphore_needs_one_permit_count,
    a_vanished_permit_holder_gives_its_permit_back,
    permits_and_readers_renew_and_report_a_lost_lease,
    several_keys_are_taken_all_or_none,
    several_keys_are_released_together,
    several_keys_in_opposite_orders_never_deadlock,
    several_keys_fence_and_renew_each_key,
    operators_see_readers_and_permits,
    a_writer_that_leaves_takes_its_mark_back,
);

/// The same scenarios on PostgreSQL, whose readers and permits live in the key's row.
macro_rules! on_postgres {
    ($($scenario:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(lock_tests::Stores::postgres().await).await;
                }
            )*
        }
    };
}

on_postgres!(
    readers_share_and_exclude_writers,
    a_waiting_writer_keeps_new_readers_out,
    readers_release_and_renew_only_their_own_lease,
    a_semaphore_admits_at_most_its_permits,
    a_semaphore_needs_one_permit_count,
    a_vanished_permit_holder_gives_its_permit_back,
    permits_and_readers_renew_and_report_a_lost_lease,
    several_keys_are_taken_all_or_none,
    several_keys_are_released_together,
    several_keys_in_opposite_orders_never_deadlock,
    several_keys_fence_and_renew_each_key,
    operators_see_readers_and_permits,
    a_writer_that_leaves_takes_its_mark_back,
);

/// The scenarios whose leases are at least ZooKeeper's session timeout, on ZooKeeper
/// (Curator's read-write lock and semaphore layouts); the others need leases shorter than
/// any session.
macro_rules! on_zookeeper {
    ($($scenario:ident),* $(,)?) => {
        mod zookeeper {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(lock_tests::Stores::zookeeper().await).await;
                }
            )*
        }
    };
}

on_zookeeper!(
    readers_share_and_exclude_writers,
    a_waiting_writer_keeps_new_readers_out,
    a_semaphore_admits_at_most_its_permits,
    a_semaphore_needs_one_permit_count,
    several_keys_are_taken_all_or_none,
    several_keys_are_released_together,
    several_keys_in_opposite_orders_never_deadlock,
    operators_see_readers_and_permits,
    a_writer_that_leaves_takes_its_mark_back,
);

async fn readers_share_and_exclude_writers(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let one = a.acquire("rw", &read(5_000)).await.expect("first reader");
    let two = b.acquire("rw", &read(5_000)).await.expect("second reader");
    let writer = b.acquire("rw", &options(5_000)).await;
    assert!(matches!(writer, Err(LockError::Busy { .. })), "{writer:?}");
    one.release().await.expect("release one");
    let writer = a.acquire("rw", &options(5_000)).await;
    assert!(
        matches!(writer, Err(LockError::Busy { .. })),
        "a reader remains"
    );
    two.release().await.expect("release two");
    let writer = a
        .acquire("rw", &options(5_000))
        .await
        .expect("writer alone");
    let reader = b.acquire("rw", &read(5_000)).await;
    assert!(matches!(reader, Err(LockError::Busy { .. })), "{reader:?}");
    // A reader waiting for the writer gets in once it leaves.
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let wait = read(5_000).wait(Duration::from_secs(5));
            let guard = b
                .acquire("rw", &wait)
                .await
                .expect("reader after the writer");
            (started.elapsed(), guard)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer.release().await.expect("release writer");
    let (waited, guard) = waiting.await.expect("task");
    assert!(waited >= Duration::from_millis(90), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "woken late: {waited:?}");
    guard.release().await.expect("release");
}

async fn a_waiting_writer_keeps_new_readers_out(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let reader = a.acquire("pref", &read(10_000)).await.expect("reader");
    let writer = {
        let b = b.clone();
        tokio::spawn(async move {
            let wait = options(10_000).wait(Duration::from_secs(10));
            b.acquire("pref", &wait).await
        })
    };
    // Once the writer waits (it has tried, found the reader and subscribed), a new reader
    // is turned away although only readers hold the key.
    let kept_out = lock_tests::eventually_async(Duration::from_secs(5), || async {
        match a.acquire("pref", &read(10_000)).await {
            Err(LockError::Busy { .. }) => true,
            Ok(guard) => {
                guard.release().await.expect("release extra reader");
                false
            }
            Err(e) => panic!("{e}"),
        }
    })
    .await;
    assert!(kept_out, "a new reader got in while a writer waited");
    reader.release().await.expect("release reader");
    let writer = writer
        .await
        .expect("task")
        .expect("the writer is not starved");
    writer.release().await.expect("release writer");
    // The writer gone, readers come in again (its mark lasts at most a second).
    let again = read(5_000).wait(Duration::from_secs(3));
    a.acquire("pref", &again)
        .await
        .expect("reader after")
        .release()
        .await
        .expect("release");
}

async fn readers_release_and_renew_only_their_own_lease(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let mut short = a.acquire("own", &read(150)).await.expect("short reader");
    let long = b.acquire("own", &read(5_000)).await.expect("long reader");
    short
        .extend(Duration::from_millis(150))
        .await
        .expect("extend while held");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Its lease ran out on its own while the other reader's runs.
    let extended = short.extend(Duration::from_secs(5)).await;
    assert!(
        matches!(extended, Err(LockError::Lost { .. })),
        "{extended:?}"
    );
    let released = short.release().await;
    assert!(
        matches!(released, Err(LockError::Lost { .. })),
        "{released:?}"
    );
    let writer = a.acquire("own", &options(5_000)).await;
    assert!(
        matches!(writer, Err(LockError::Busy { .. })),
        "the long reader holds"
    );
    long.release()
        .await
        .expect("the long reader's release is its own");
    a.acquire("own", &options(5_000))
        .await
        .expect("free")
        .release()
        .await
        .expect("release");
}

async fn a_semaphore_admits_at_most_its_permits(stores: Stores) {
    let held = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let backend = if i % 2 == 0 {
                stores.a.clone()
            } else {
                stores.b.clone()
            };
            let (held, most) = (held.clone(), most.clone());
            tokio::spawn(async move {
                let wait = options(5_000).wait(Duration::from_secs(20));
                for _ in 0..5 {
                    backend
                        .with_permit("sem", 3, &wait, async {
                            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            // Long enough beside a hand-over for all three permits to be
                            // used at once also where taking one costs several writes
                            // (ZooKeeper's queue and lease).
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            held.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                        .expect("a permit within the wait");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} holders of 3 permits");
    assert_eq!(most, 3, "the permits were never all used at once");
    let zero = stores.a.acquire_permit("sem", 0, &options(1_000)).await;
    assert!(matches!(zero, Err(LockError::InvalidInput(_))), "{zero:?}");
}

async fn a_semaphore_needs_one_permit_count(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let first = a
        .acquire_permit("count", 2, &options(5_000))
        .await
        .expect("permit");
    let started = Instant::now();
    let other = b
        .acquire_permit("count", 5, &options(5_000).wait(Duration::from_secs(5)))
        .await;
    let Err(LockError::InvalidInput(message)) = other else {
        panic!("{other:?}");
    };
    assert!(
        message.contains("2 permits") && message.contains('5'),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "it did not wait for nothing"
    );
    let reader = b.acquire("count", &read(5_000)).await;
    assert!(
        matches!(reader, Err(LockError::InvalidInput(_))),
        "{reader:?}"
    );
    first.release().await.expect("release");
    // No holders: the count is the next holder's to set.
    let five = b
        .acquire_permit("count", 5, &options(5_000))
        .await
        .expect("five now");
    five.release().await.expect("release");
}

async fn a_vanished_permit_holder_gives_its_permit_back(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let gone = a
        .acquire_permit("vanish", 1, &options(300))
        .await
        .expect("permit");
    let taken_at = Instant::now();
    // A holder that never releases (its process died): nothing but the TTL frees it.
    std::mem::forget(gone);
    let wait = options(5_000).wait(Duration::from_secs(5));
    let next = b
        .acquire_permit("vanish", 1, &wait)
        .await
        .expect("the permit came back");
    let after = taken_at.elapsed();
    assert!(
        after >= Duration::from_millis(290),
        "before the TTL: {after:?}"
    );
    assert!(
        after < Duration::from_millis(1_500),
        "long after the TTL: {after:?}"
    );
    next.release().await.expect("release");
}

/// Keys taken together are released together (one store call where the store can: one
/// script on Redis), each against the owner token: a key taken away from the holder
/// reports `Lost` and stays with its new holder, the others are freed and their waiters
/// get them.
async fn several_keys_are_released_together(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let names = ["rel:1", "rel:2", "rel:3"];
    let all = a.acquire_all(names, &options(30_000)).await.expect("taken");
    let taken = b.force_release("rel:2").await.expect("force release");
    assert!(taken.is_some(), "rel:2 was held");
    let other = b
        .acquire("rel:2", &options(30_000))
        .await
        .expect("rel:2 for b");
    let waiting = options(30_000).wait(Duration::from_secs(20));
    let (waiter, w) = (b.clone(), waiting.clone());
    let waiter = tokio::spawn(async move { waiter.acquire("rel:1", &w).await });
    let released = all.release().await;
    assert!(
        matches!(&released, Err(LockError::Lost { key }) if key == "rel:2"),
        "{released:?}"
    );
    let got = waiter.await.expect("task").expect("the waiter got rel:1");
    let busy = a.acquire("rel:2", &options(30_000)).await;
    assert!(
        matches!(busy, Err(LockError::Busy { .. })),
        "b keeps rel:2: {busy:?}"
    );
    let free = a
        .acquire("rel:3", &options(30_000))
        .await
        .expect("rel:3 is free");
    for guard in [got, other, free] {
        guard.release().await.expect("release");
    }

    // On one Redis server: one script for all three, each key deleted and published.
    if let Some(server) = &stores.server {
        let again = a.acquire_all(names, &options(30_000)).await.expect("again");
        let calls = |c: &str| server.calls(c);
        let (scripts, deletes, publishes) = (calls("evalsha"), calls("del"), calls("publish"));
        again.release().await.expect("released together");
        assert_eq!(calls("evalsha") - scripts, 1, "one script for three keys");
        assert_eq!(calls("del") - deletes, 3);
        assert_eq!(calls("publish") - publishes, 3);
    }
}

async fn several_keys_are_taken_all_or_none(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let empty: [&str; 0] = [];
    let none = a.acquire_all(empty, &options(1_000)).await;
    assert!(matches!(none, Err(LockError::InvalidInput(_))), "{none:?}");
    let zero = a.acquire_all(["acct:a", "acct:b"], &options(0)).await;
    assert!(matches!(zero, Err(LockError::InvalidInput(_))), "{zero:?}");
    let both = a
        .acquire_all(["acct:b", "acct:a", "acct:b"], &options(5_000))
        .await
        .expect("both");
    assert_eq!(both.keys().collect::<Vec<_>>(), ["acct:a", "acct:b"]);
    both.release().await.expect("release both");

    let blocker = b.acquire("acct:d", &options(5_000)).await.expect("blocker");
    let started = Instant::now();
    let wait = options(5_000).wait(Duration::from_millis(300));
    let blocked = a.acquire_all(["acct:c", "acct:d"], &wait).await;
    assert!(
        matches!(blocked, Err(LockError::Busy { .. })),
        "{blocked:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(290));
    // What it took while waiting for the busy key is given back.
    b.acquire("acct:c", &options(5_000))
        .await
        .expect("c was released")
        .release()
        .await
        .expect("r");
    // Waiting for the busy key: taken as soon as it is released.
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move {
            let wait = options(5_000).wait(Duration::from_secs(5));
            a.acquire_all(["acct:d", "acct:c"], &wait).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    blocker.release().await.expect("release blocker");
    let both = waiter.await.expect("task").expect("both after the release");
    both.release().await.expect("release");
}

async fn several_keys_in_opposite_orders_never_deadlock(stores: Stores) {
    let balances = Arc::new(std::sync::Mutex::new([1_000_i64; 4]));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let backend = if i % 2 == 0 {
                stores.a.clone()
            } else {
                stores.b.clone()
            };
            let balances = balances.clone();
            tokio::spawn(async move {
                let wait = options(5_000).wait(Duration::from_secs(20));
                for round in 0..20_usize {
                    let (from, to) = ((i + round) % 4, (i + round + 1) % 4);
                    let names = [format!("bank:{from}"), format!("bank:{to}")];
                    let names = if round % 2 == 0 {
                        names
                    } else {
                        [names[1].clone(), names[0].clone()]
                    };
                    let balances = balances.clone();
                    backend
                        .with_locks(&names, &wait, async move {
                            let amount = balances.lock().unwrap()[from] / 10;
                            tokio::task::yield_now().await;
                            balances.lock().unwrap()[from] -= amount;
                            balances.lock().unwrap()[to] += amount;
                        })
                        .await
                        .expect("both accounts within the wait");
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("no deadlock")
            .expect("task");
    }
    assert_eq!(balances.lock().unwrap().iter().sum::<i64>(), 4_000);
}

async fn several_keys_fence_and_renew_each_key(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let fenced = options(300).fencing(true).renew(true);
    let (tokens, outlived) = a
        .with_locks(["f:1", "f:2"], &fenced, async {
            let tokens = (
                lock_runtime::fencing_token_of("f:1"),
                lock_runtime::fencing_token_of("f:2"),
            );
            // Longer than the TTL: renewal keeps both.
            tokio::time::sleep(Duration::from_millis(800)).await;
            let busy = b.acquire("f:2", &options(1_000)).await;
            (tokens, matches!(busy, Err(LockError::Busy { .. })))
        })
        .await
        .expect("held throughout");
    assert!(tokens.0.is_some() && tokens.1.is_some(), "{tokens:?}");
    assert!(outlived, "renewal kept the second key");
    // Losing one key is losing the lock: a body past an unrenewed TTL is cancelled.
    let lost = a
        .with_locks(
            ["f:3", "f:4"],
            &options(200),
            tokio::time::sleep(Duration::from_secs(2)),
        )
        .await;
    assert!(matches!(lost, Err(LockError::Lost { .. })), "{lost:?}");
}

#[tokio::test]
async fn a_store_without_shared_kinds_says_so() {
    let server = RedisServer::start();
    let backend = Backend::builder()
        .replicas_acknowledge(1, Duration::from_millis(50))
        .redis(&server.url())
        .await
        .expect("connect");
    let reader = backend.acquire("k", &read(1_000)).await;
    let Err(LockError::InvalidInput(message)) = reader else {
        panic!("{reader:?}");
    };
    assert!(message.contains("read locks"), "{message}");
    let permit = backend.acquire_permit("k", 2, &options(1_000)).await;
    let Err(LockError::InvalidInput(message)) = permit else {
        panic!("{permit:?}");
    };
    assert!(message.contains("semaphores"), "{message}");
}

#[tokio::test]
async fn two_keys_on_one_redis_take_one_round_trip() {
    let server = RedisServer::start();
    let backend = Backend::redis(&server.url()).await.expect("connect");
    // The first call also loads the script.
    let warm = backend
        .acquire_all(["w:1", "w:2"], &options(5_000))
        .await
        .expect("warm");
    warm.release().await.expect("release");
    let before = server.calls("evalsha");
    let both = backend
        .acquire_all(["x:1", "x:2"], &options(5_000))
        .await
        .expect("both");
    assert_eq!(
        server.calls("evalsha") - before,
        1,
        "one script for both keys"
    );
    assert_eq!(
        server.raw(&["EXISTS", "lock:{x:1}", "lock:{x:2}"]).trim(),
        ":2"
    );
    both.release().await.expect("release");
    assert_eq!(
        server.raw(&["EXISTS", "lock:{x:1}", "lock:{x:2}"]).trim(),
        ":0"
    );
}

#[tokio::test]
async fn a_nested_call_cannot_change_the_kind() {
    let backend = Backend::memory();
    let outcome = backend
        .with_lock(
            "nest",
            &read(5_000),
            backend.with_lock("nest", &options(5_000), async {}),
        )
        .await
        .expect("the reader ran");
    assert!(
        matches!(outcome, Err(LockError::InvalidInput(_))),
        "{outcome:?}"
    );
}

async fn permits_and_readers_renew_and_report_a_lost_lease(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let renewed = options(300).renew(true).fencing(true);
    let (fence, crowded) = a
        .with_permit("renew", 1, &renewed, async {
            // Longer than the TTL: renewal keeps the only permit.
            tokio::time::sleep(Duration::from_millis(900)).await;
            let other = b.acquire_permit("renew", 1, &options(1_000)).await;
            (
                lock_runtime::fencing_token(),
                matches!(other, Err(LockError::Busy { .. })),
            )
        })
        .await
        .expect("held throughout");
    assert!(fence.is_some() && crowded, "{fence:?} {crowded}");
    let reader = read(300).renew(true);
    a.with_lock(
        "renew-r",
        &reader,
        tokio::time::sleep(Duration::from_millis(900)),
    )
    .await
    .expect("a renewed reader keeps its lease");
    // Without renewal the lease runs out under the body: `Lost`.
    let lost = a
        .with_lock(
            "renew-r",
            &read(200),
            tokio::time::sleep(Duration::from_secs(2)),
        )
        .await;
    assert!(matches!(lost, Err(LockError::Lost { .. })), "{lost:?}");
}

async fn operators_see_readers_and_permits(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let plain = a.acquire("plain", &options(5_000)).await.expect("plain");
    let one = a
        .acquire("rw", &read(5_000).function("reports::daily"))
        .await
        .expect("first reader");
    let two = b.acquire("rw", &read(5_000)).await.expect("second reader");
    let permit = b
        .acquire_permit("sem", 3, &options(5_000).function("pool::job"))
        .await
        .expect("permit");

    let rw = a.inspect("rw").await.expect("inspect").expect("held");
    assert_eq!(rw.kind, LockKind::Read);
    assert!(rw.token.is_empty() && rw.holder.is_none(), "{rw:?}");
    // Its age is its earliest reader's, from the readers' records.
    assert!(
        rw.age().is_some_and(|age| age < Duration::from_secs(60)),
        "{rw:?}"
    );
    let mut tokens: Vec<&str> = rw.sharers.iter().map(|s| s.token.as_str()).collect();
    tokens.sort_unstable();
    let mut expected = [one.token().as_str(), two.token().as_str()];
    expected.sort_unstable();
    assert_eq!(tokens, expected, "{rw:?}");
    for sharer in &rw.sharers {
        let holder = sharer.holder.as_ref().expect("a record");
        assert_eq!(holder.pid, std::process::id());
        // A lease each where the store keeps leases; none where they are sessions.
        assert_eq!(sharer.remaining.is_some(), rw.remaining.is_some(), "{rw:?}");
        assert!(
            sharer
                .remaining
                .is_none_or(|left| left <= Duration::from_secs(5)),
            "{rw:?}"
        );
    }
    let daily = rw.sharers.iter().find(|s| s.token == one.token().as_str());
    let daily = daily.and_then(|s| s.holder.as_ref()?.function.as_deref());
    assert_eq!(daily, Some("reports::daily"), "{rw:?}");

    let sem = a.inspect("sem").await.expect("inspect").expect("held");
    assert_eq!(sem.kind, LockKind::Permit { permits: 3 });
    assert_eq!(sem.sharers.len(), 1, "{sem:?}");
    assert_eq!(sem.sharers[0].token, permit.token().as_str());
    let function = sem.sharers[0]
        .holder
        .as_ref()
        .and_then(|h| h.function.as_deref());
    assert_eq!(function, Some("pool::job"), "{sem:?}");

    // The listing shows every kind; a release by force leaves shared keys as they are.
    let listed = a.list("*").await.expect("list");
    let kinds: Vec<(&str, LockKind, usize)> = listed
        .iter()
        .map(|info| (info.name.as_str(), info.kind, info.sharers.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("plain", LockKind::Exclusive, 0),
            ("rw", LockKind::Read, 2),
            ("sem", LockKind::Permit { permits: 3 }, 1)
        ]
    );
    let told = |outcome: Result<Option<lock_runtime::LockInfo>, LockError>, what: &str| {
        let Err(LockError::InvalidInput(message)) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(message.contains(what), "{message}");
    };
    told(b.force_release("rw").await, "is held by 2 readers");
    told(a.force_release("sem").await, "1 of a semaphore's 3 permits");
    let writer = b.acquire("rw", &options(5_000)).await;
    assert!(matches!(writer, Err(LockError::Busy { .. })), "{writer:?}");

    // A watch sees readers come and go.
    let mut watch = b.watch_lock("rw").await.expect("watch");
    let first = watch.next().await.expect("watch").expect("held");
    assert_eq!(first.sharers.len(), 2, "{first:?}");
    one.release().await.expect("first reader still held");
    let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the watch saw the reader leave")
        .expect("watch")
        .expect("still held");
    assert_eq!(next.sharers.len(), 1, "{next:?}");
    let rw = a.inspect("rw").await.expect("inspect").expect("held");
    let tokens: Vec<&str> = rw.sharers.iter().map(|s| s.token.as_str()).collect();
    assert_eq!(tokens, [two.token().as_str()], "{rw:?}");
    two.release().await.expect("second reader still held");
    permit.release().await.expect("permit still held");
    assert!(a.inspect("rw").await.expect("inspect").is_none());
    assert!(a.inspect("sem").await.expect("inspect").is_none());
    plain.release().await.expect("release");
}

/// A waiting writer keeps new readers out (for up to a second after each try); one that
/// gives up, or is cancelled, takes that mark back, so readers need not wait it out.
async fn a_writer_that_leaves_takes_its_mark_back(stores: Stores) {
    let (a, b) = (&stores.a, &stores.b);
    let reader = a.acquire("marked", &read(10_000)).await.expect("a reader");
    // Gives up after its wait: the mark is gone before it answers.
    let writer = b
        .acquire("marked", &options(10_000).wait(Duration::from_millis(300)))
        .await;
    assert!(matches!(writer, Err(LockError::Busy { .. })), "{writer:?}");
    let second = a
        .acquire("marked", &read(10_000))
        .await
        .expect("a new reader, at once, after the writer gave up");
    second.release().await.expect("release");

    // Cancelled while waiting: the mark goes in the background, well before its second.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        b.acquire("marked", &options(10_000).wait(Duration::from_secs(10))),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the writer got the lock beside a reader"
    );
    let started = Instant::now();
    let third = a
        .acquire("marked", &read(10_000).wait(Duration::from_millis(500)))
        .await
        .expect("a new reader soon after the writer was cancelled");
    println!(
        "a reader got in {:?} after the writer was cancelled",
        started.elapsed()
    );
    third.release().await.expect("release");
    reader.release().await.expect("release");
}
