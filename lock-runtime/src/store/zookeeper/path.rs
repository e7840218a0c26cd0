//! Where a lock lives in ZooKeeper, and what its contenders' nodes are called.
//!
//! The lock `order:7` is the directory `{root}/order:7` (a container node, removed by
//! ZooKeeper once empty). Its contenders are ephemeral sequential nodes named as Apache
//! Curator's recipes name their own, `_c_{uuid}-{name}{sequence}`, so that a Java service
//! using Curator on the same path and a Rust service using this crate share one lock:
//! - an exclusive lock is `_c_{uuid}-lock-{sequence}` in the directory (`InterProcessMutex`),
//!   or `_c_{uuid}-__WRIT__{sequence}` (the write side of `InterProcessReadWriteLock`);
//! - a reader is `_c_{uuid}-__READ__{sequence}` in the directory (its read side);
//! - a semaphore (`InterProcessSemaphoreV2`) keeps its holders' leases in `leases/`, as
//!   `_c_{uuid}-lease-{sequence}`, and queues those about to take one with an
//!   `InterProcessMutex` on `locks/`.
//!
//! The uuid is the contender's owner token, so a client that lost its connection while
//! creating its node finds it again by name.

use crate::token::Token;

/// The name of an `InterProcessMutex`'s nodes (after the uuid, before the sequence).
pub(super) const MUTEX: &str = "-lock-";
/// The name of an `InterProcessReadWriteLock`'s writers' nodes.
pub(super) const WRITER: &str = "-__WRIT__";
/// The name of an `InterProcessReadWriteLock`'s readers' nodes.
pub(super) const READER: &str = "-__READ__";
/// The name of an `InterProcessSemaphoreV2`'s lease nodes.
pub(super) const LEASE: &str = "-lease-";
/// Where a semaphore keeps its leases, and where those about to take one queue.
pub(super) const LEASES: &str = "leases";
pub(super) const LOCKS: &str = "locks";

/// What a node in a lock's directory (or its `leases/`) stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Node {
    /// A mutex's or a writer's contender: alone once first.
    Exclusive,
    /// A reader: holds once no exclusive contender is before it.
    Reader,
    /// A semaphore's lease.
    Lease,
}

/// What the node `name` is, and its sequence number, if it is a contender's node.
pub(super) fn parse(name: &str) -> Option<(Node, i64)> {
    [
        (MUTEX, Node::Exclusive),
        (WRITER, Node::Exclusive),
        (READER, Node::Reader),
        (LEASE, Node::Lease),
    ]
    .into_iter()
    .find_map(|(infix, node)| {
        let at = name.rfind(infix)?;
        let sequence = name[at + infix.len()..].parse().ok()?;
        Some((node, sequence))
    })
}

/// The store key of the lock `name`: `root/name`, as written (see [`lock_dir`]).
pub(super) fn lock_key(root: &str, name: &str) -> String {
    let mut key = String::with_capacity(root.len() + 1 + name.len());
    key.push_str(root);
    key.push('/');
    key.push_str(name);
    key
}

/// The lock name in a key made by [`lock_key`].
pub(super) fn name_in<'k>(root: &str, key: &'k str) -> &'k str {
    key.strip_prefix(root)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(key)
}

/// The directory of the lock whose store key is `key` (made by [`lock_key`]): `root/name`,
/// the name escaped so that any lock name is one valid path segment.
pub(super) fn lock_dir(root: &str, key: &str) -> String {
    let name = name_in(root, key);
    let mut dir = String::with_capacity(root.len() + name.len() + 1);
    dir.push_str(root);
    dir.push('/');
    if name == "." || name == ".." || name.is_empty() {
        for _ in 0..name.len().max(1) {
            dir.push_str(if name.is_empty() { "%00" } else { "%2E" });
        }
        return dir;
    }
    for c in name.chars() {
        match c {
            '/' | '%' => dir.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_control() => {
                for byte in c.to_string().bytes() {
                    dir.push_str(&format!("%{byte:02X}"));
                }
            }
            c => dir.push(c),
        }
    }
    dir
}

/// The lock name a directory made by [`lock_dir`] stands for.
pub(super) fn lock_name(dir: &str) -> String {
    if dir == "%00" {
        return String::new();
    }
    let mut bytes = Vec::with_capacity(dir.len());
    let mut rest = dir.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        let hex = tail
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                bytes.push(decoded);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The owner token in a contender node's name (its uuid without dashes), or the name
/// itself if it is not one.
pub(super) fn token_of(node: &str) -> String {
    let uuid = node
        .strip_prefix("_c_")
        .and_then(|rest| rest.get(..36))
        .unwrap_or(node);
    uuid.replace('-', "")
}

/// `_c_{uuid}{name}`: the name of `token`'s node before the sequence number, `name` one
/// of [`MUTEX`], [`WRITER`], [`READER`], [`LEASE`].
pub(super) fn node_prefix(token: &Token, name: &str) -> String {
    let hex = token.as_str();
    format!(
        "_c_{}-{}-{}-{}-{}{name}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_name_is_one_segment_under_the_root() {
        let dir = |root: &str, name: &str| lock_dir(root, &lock_key(root, name));
        assert_eq!(dir("/locks", "order:7"), "/locks/order:7");
        assert_eq!(dir("/locks", "a/b%c"), "/locks/a%2Fb%25c");
        assert_eq!(dir("/locks", ".."), "/locks/%2E%2E");
        assert_eq!(dir("/x", "{inner}"), "/x/{inner}");
        assert_eq!(name_in("/x", &lock_key("/x", "a/b")), "a/b");
    }

    #[test]
    fn directories_and_nodes_read_back() {
        for name in ["order:7", "a/b%c", "..", "", "tab\there"] {
            let dir = lock_dir("/locks", &lock_key("/locks", name));
            assert_eq!(lock_name(&dir["/locks/".len()..]), name);
        }
        let token = Token::generate().expect("token");
        assert_eq!(
            token_of(&format!("{}0000000003", node_prefix(&token, READER))),
            token.as_str()
        );
    }

    #[test]
    fn node_names_are_curators() {
        let token = Token::generate().expect("token");
        let prefix = node_prefix(&token, MUTEX);
        assert!(prefix.starts_with("_c_") && prefix.ends_with("-lock-"));
        assert_eq!(prefix.len(), 3 + 36 + 6);
        assert_eq!(
            parse(&format!("{prefix}0000000042")),
            Some((Node::Exclusive, 42))
        );
        let names = [
            (WRITER, Node::Exclusive),
            (READER, Node::Reader),
            (LEASE, Node::Lease),
        ];
        for (name, node) in names {
            let prefix = node_prefix(&token, name);
            assert_eq!(parse(&format!("{prefix}0000000007")), Some((node, 7)));
        }
        assert_eq!(parse("_c_x-latch-0000000001"), None);
        assert_eq!(parse(LEASES), None);
    }
}
