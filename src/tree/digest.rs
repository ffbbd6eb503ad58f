//! Apache ZooKeeper 3.8's data tree digest, computed exactly as ZooKeeper computes it, so
//! that a Java peer checking our txns' digests (and we checking theirs) agree.
//!
//! Facts (ZooKeeper 3.8.0 to 3.8.4 alike: `DigestCalculator`, `NodeHashMapImpl`,
//! `util/AdHash`, `DataTree`):
//! - A node's digest is the CRC32 (IEEE, `java.util.zip.CRC32`) of its path's bytes, then
//!   its data (none for null data), then 60 big-endian bytes: czxid, mzxid, pzxid, ctime,
//!   mtime (8 each), version, cversion, aversion (4 each), ephemeralOwner (8). The cversion
//!   is the stored one (the create count, [`super::Meta::cversion`]), not the one a client
//!   sees. The root's path is `""` (ZooKeeper maps `"/"` to `""`). A value in 0..2^32.
//! - Nodes whose path starts with `/zookeeper/` (quota and config nodes) count 0;
//!   `/zookeeper` itself counts.
//! - The tree digest is the wrapping 64-bit sum of every node's digest (the root once),
//!   kept incrementally: a change subtracts the node's old digest and adds its new one.
//! - Digest version 2 ([`DIGEST_VERSION`]); `zookeeper.digest.enabled` defaults to true.
//!
//! Paths are hashed as UTF-8 (Java's `String.getBytes()` uses the JVM's default charset:
//! UTF-8 from Java 18, and under a UTF-8 locale before; a non-UTF-8 default would hash a
//! non-ASCII path differently).

use super::znode::Meta;

/// `DigestCalculator.DIGEST_VERSION` in ZooKeeper 3.6 to 3.9.
pub const DIGEST_VERSION: i32 = 2;

/// ZooKeeper's `ZooDefs.ZOOKEEPER_NODE_SUBTREE`: nodes below it are left out of the digest.
const EXCLUDED_SUBTREE: &str = "/zookeeper/";

/// Whether the node at `path` counts in the tree digest.
pub fn counts(path: &str) -> bool {
    !path.starts_with(EXCLUDED_SUBTREE)
}

/// The digest of the node at `path` with `meta` and `data` (0 for an excluded path), as
/// `DigestCalculator.calculateDigest`.
pub fn node_digest(path: &str, meta: &Meta, data: &[u8]) -> i64 {
    if !counts(path) {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let mut stat = [0u8; 60];
    let fields: [&[u8]; 9] = [
        &meta.czxid.to_be_bytes(),
        &meta.mzxid.to_be_bytes(),
        &meta.pzxid.to_be_bytes(),
        &meta.ctime.to_be_bytes(),
        &meta.mtime.to_be_bytes(),
        &meta.version.to_be_bytes(),
        &meta.cversion.to_be_bytes(),
        &meta.aversion.to_be_bytes(),
        &meta.ephemeral_owner.to_be_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        stat[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(path.as_bytes());
    crc.update(data);
    crc.update(&stat);
    i64::from(crc.finalize())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn meta(fields: [i64; 9]) -> Meta {
        let mut meta = Meta::new(Arc::new(Vec::new()), 0, 0, 0);
        meta.czxid = fields[0];
        meta.mzxid = fields[1];
        meta.pzxid = fields[2];
        meta.ctime = fields[3];
        meta.mtime = fields[4];
        meta.version = fields[5] as i32;
        meta.cversion = fields[6] as i32;
        meta.aversion = fields[7] as i32;
        meta.ephemeral_owner = fields[8];
        meta
    }

    // The expected values were computed independently of this code, with Python's
    // zlib.crc32 over path + data + struct.pack('>qqqqqiiiq', czxid, mzxid, pzxid, ctime,
    // mtime, version, cversion, aversion, ephemeralOwner).
    #[test]
    fn node_digests_match_the_algorithm() {
        let zero = meta([0; 9]);
        // A fresh ZooKeeper's root ("" with every stat field 0) and /zookeeper.
        assert_eq!(node_digest("/", &zero, b""), 68323592);
        assert_eq!(node_digest("", &zero, b""), 68323592);
        assert_eq!(node_digest("/zookeeper", &zero, b""), 1303661912);
        let m = meta([
            0x1_0000_0002,
            0x1_0000_0005,
            0x1_0000_0003,
            1_700_000_000_123,
            1_700_000_000_456,
            3,
            2,
            1,
            0x1234_5678_9abc,
        ]);
        assert_eq!(node_digest("/app/node", &m, b"hello"), 776990598);
        // Null data hashes as empty data; a negative field is its two's complement.
        let n = meta([5, 6, 7, -1, i64::MIN, -1, i32::MAX as i64, 0, -2]);
        assert_eq!(node_digest("/ünï", &n, b""), 3663597388);
        assert_eq!(
            node_digest("/ünï", &n, crate::proto::null_slice()),
            3663597388
        );
    }

    #[test]
    fn the_zookeeper_subtree_is_left_out_but_not_zookeeper_itself() {
        let zero = meta([0; 9]);
        assert_eq!(node_digest("/zookeeper/quota", &zero, b""), 0);
        assert_eq!(node_digest("/zookeeper/config", &zero, b"x"), 0);
        assert_eq!(
            node_digest("/zookeeper/quota/a/zookeeper_stats", &zero, b""),
            0
        );
        assert_ne!(node_digest("/zookeeper", &zero, b""), 0);
        assert_ne!(node_digest("/zookeeperx", &zero, b""), 0);
    }
}
