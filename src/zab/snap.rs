//! ZooKeeper's snapshot body: what a leader sends in a SNAP sync (followed by the
//! signature "BenWasHere") and what a `snapshot.<zxid>` file holds between its header and its
//! seal (`SerializeUtils.serializeSnapshot`, `DataTree.serialize`, branch-3.8).
//!
//! ```text
//! body    := int sessionCount; sessionCount × { long sessionId; int timeoutMs }
//!            int aclCount;     aclCount × { long ref; vector<ACL> acls }
//!            node* ustring "/"                      // "/" only ends the nodes
//! node    := ustring path; buffer data; long aclRef; StatPersisted
//! StatPersisted := long czxid, mzxid, ctime, mtime; int version, cversion, aversion;
//!                  long ephemeralOwner, pzxid        // 60 bytes
//! stream  := body ustring "BenWasHere"
//! ```
//!
//! Nodes come in pre-order from the root, whose path is the empty string; a child's path is
//! its parent's, a slash and its name. The ACL ref -1 means OPEN_ACL_UNSAFE and is never in
//! the map (ZooKeeper uses it for the nodes it creates itself); we also write -1 for every
//! node whose ACL is exactly OPEN_ACL_UNSAFE, which ZooKeeper reads as the same ACL. Stored
//! cversions are written as they are (ours are ZooKeeper's stored cversions).
//!
//! The reader ([`SnapDecoder`]) is incremental: it is fed bytes as they arrive, consumes
//! whole records only, and keeps no more than the records decoded so far (one record is at
//! most a path, a data buffer and an ACL list, each bounded). It checks what ZooKeeper's
//! `DataTree.deserialize` checks (a known ACL ref, a parent for every node) and more (valid
//! paths, no repeated path, non-negative counts), then rebuilds the tree with
//! [`DataTree::from_nodes`] (children from paths, ephemeral/container/TTL indexes from the
//! owners, quotas, node count).
//!
//! Architecture Invariant: pure, and decoding never panics: malformed input is an `Err`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::{Buf, BytesMut};

use super::txn::{open_acl_unsafe, read_acls, read_string};
use crate::proto::{Acl, DecodeError, JuteReader, JuteWriter, DEFAULT_MAX_FIELD_LEN};
use crate::tree::{validate_path, DataTree, Meta, Znode};

/// The signature a leader writes after the snapshot body in a SNAP sync
/// (`LearnerHandler`: `oa.writeString("BenWasHere", "signature")`).
pub const SNAP_SIGNATURE: &str = "BenWasHere";
/// The path that ends the nodes.
pub const END_OF_NODES: &str = "/";
/// The ACL ref of OPEN_ACL_UNSAFE (`ReferenceCountedACLCache.OPEN_UNSAFE_ACL_ID`).
pub const OPEN_ACL_REF: i64 = -1;
/// The most ACL entries one list of the map may have: a list must fit in a client's
/// setACL request, so at most jute.maxbuffer bytes of 12-byte (or larger) entries; we allow
/// the reader's field limit.
const MAX_ACLS_PER_LIST: usize = DEFAULT_MAX_FIELD_LEN / 12;

/// A decoded snapshot: the global sessions with their timeouts, and the tree.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// (session id, timeout ms), in stream order.
    pub sessions: Vec<(i64, i32)>,
    pub tree: DataTree,
}

/// Appends the snapshot body of `tree` and `sessions` (each (id, timeout ms)).
pub fn encode_snapshot_body(tree: &DataTree, sessions: &[(i64, i32)], out: &mut BytesMut) {
    let mut w = JuteWriter::new(out);
    w.write_i32(count_i32(sessions.len()));
    for &(id, timeout_ms) in sessions {
        w.write_i64(id);
        w.write_i32(timeout_ms);
    }
    let refs = AclRefs::of(tree);
    w.write_i32(count_i32(refs.lists.len()));
    for (i, acls) in refs.lists.iter().enumerate() {
        // Refs are 1, 2, 3... in the order the lists are first met.
        w.write_i64(i as i64 + 1);
        w.write_acl_vec(acls);
    }
    tree.for_each_node(&mut |path, node| {
        w.write_ustring(if path == "/" { "" } else { path });
        w.write_buffer(node.data());
        w.write_i64(refs.ref_of(&node.acl));
        w.write_i64(node.czxid);
        w.write_i64(node.mzxid);
        w.write_i64(node.ctime);
        w.write_i64(node.mtime);
        w.write_i32(node.version);
        w.write_i32(node.cversion);
        w.write_i32(node.aversion);
        w.write_i64(node.ephemeral_owner);
        w.write_i64(node.pzxid);
    });
    w.write_ustring(END_OF_NODES);
}

/// Appends what a leader sends in a SNAP sync: the body, then [`SNAP_SIGNATURE`].
pub fn encode_snap_stream(tree: &DataTree, sessions: &[(i64, i32)], out: &mut BytesMut) {
    encode_snapshot_body(tree, sessions, out);
    JuteWriter::new(out).write_ustring(SNAP_SIGNATURE);
}

fn count_i32(len: usize) -> i32 {
    // Counts of sessions, ACL lists and nodes of one server, far below i32::MAX.
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// The ACL map of a tree: every distinct list but OPEN_ACL_UNSAFE, ref i + 1 for the i-th.
struct AclRefs {
    lists: Vec<Arc<Vec<Acl>>>,
    /// Lists by address (the tree interns its ACLs, so most nodes share few lists). The
    /// addresses stay valid while the tree is borrowed.
    by_address: HashMap<*const Vec<Acl>, i64>,
    by_value: HashMap<Vec<Acl>, i64>,
}

impl AclRefs {
    fn of(tree: &DataTree) -> AclRefs {
        let open = open_acl_unsafe();
        let mut refs = AclRefs {
            lists: Vec::new(),
            by_address: HashMap::new(),
            by_value: HashMap::new(),
        };
        tree.for_each_node(&mut |_, node| {
            let acl = &node.acl;
            if refs.by_address.contains_key(&Arc::as_ptr(acl)) {
                return;
            }
            let id = if acl.as_slice() == open.as_slice() {
                OPEN_ACL_REF
            } else if let Some(id) = refs.by_value.get(acl.as_slice()) {
                *id
            } else {
                refs.lists.push(acl.clone());
                let id = refs.lists.len() as i64;
                refs.by_value.insert(acl.to_vec(), id);
                id
            };
            refs.by_address.insert(Arc::as_ptr(acl), id);
        });
        refs
    }

    fn ref_of(&self, acl: &Arc<Vec<Acl>>) -> i64 {
        match self.by_address.get(&Arc::as_ptr(acl)) {
            Some(id) => *id,
            // Every node's list was seen in `of`, so this is a list equal to one of them.
            None => self
                .by_value
                .get(acl.as_slice())
                .copied()
                .unwrap_or(OPEN_ACL_REF),
        }
    }
}

/// Why a snapshot stream is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapError {
    /// A jute field did not decode (never [`DecodeError::Truncated`]: that waits for more).
    Jute {
        what: &'static str,
        error: DecodeError,
    },
    /// A session or ACL count below zero.
    NegativeCount { what: &'static str, count: i32 },
    /// An ACL list with more entries than any server accepts.
    AclListTooLong(usize),
    /// A node whose ACL ref is neither -1 nor in the ACL map.
    UnknownAclRef { path: String, acl_ref: i64 },
    /// A node path that is neither the root's `""` nor a valid path (a missing end marker
    /// shows up here, as the next record's bytes read as a path).
    BadPath(String),
    /// The nodes do not form a tree (no root, a repeated path, a missing parent).
    Tree(String),
    /// The string after the body is not [`SNAP_SIGNATURE`].
    BadSignature(String),
    /// The input ended before the snapshot did (see [`SnapDecoder::finish`]).
    Incomplete(&'static str),
    /// `feed` after the snapshot was complete.
    AlreadyComplete,
}

impl fmt::Display for SnapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapError::Jute { what, error } => write!(f, "bad {what} in snapshot: {error}"),
            SnapError::NegativeCount { what, count } => {
                write!(f, "negative {what} count {count} in snapshot")
            }
            SnapError::AclListTooLong(n) => write!(f, "ACL list of {n} entries in snapshot"),
            SnapError::UnknownAclRef { path, acl_ref } => {
                write!(
                    f,
                    "node {path:?} refers to ACL {acl_ref}, not in the ACL map"
                )
            }
            SnapError::BadPath(path) => write!(f, "invalid node path {path:?} in snapshot"),
            SnapError::Tree(why) => write!(f, "snapshot nodes do not form a tree: {why}"),
            SnapError::BadSignature(s) => {
                write!(f, "snapshot ends with {s:?}, not {SNAP_SIGNATURE:?}")
            }
            SnapError::Incomplete(at) => write!(f, "snapshot stream ended in {at}"),
            SnapError::AlreadyComplete => write!(f, "snapshot already complete"),
        }
    }
}

impl std::error::Error for SnapError {}

/// Where the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    SessionCount,
    /// Invariant: `left > 0`.
    Sessions {
        left: u32,
    },
    AclCount,
    /// Invariant: `left > 0`.
    Acls {
        left: u32,
    },
    Nodes,
    Signature,
    Done,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::SessionCount | Stage::Sessions { .. } => "the sessions",
            Stage::AclCount | Stage::Acls { .. } => "the ACL map",
            Stage::Nodes => "the nodes",
            Stage::Signature => "the signature",
            Stage::Done => "nothing (complete)",
        }
    }
}

/// Decodes a snapshot body (and, for a SNAP stream, the signature) from bytes fed as they
/// arrive.
#[derive(Debug)]
pub struct SnapDecoder {
    stage: Stage,
    /// Whether [`SNAP_SIGNATURE`] follows the body.
    signed: bool,
    /// The zxid the tree is at (the SNAP packet's, or the snapshot file name's).
    last_zxid: i64,
    sessions: Vec<(i64, i32)>,
    acls: HashMap<i64, Arc<Vec<Acl>>>,
    nodes: Vec<(String, Znode)>,
}

/// One record's outcome: `Ok(None)` means its bytes have not all arrived.
type Step<T> = Result<Option<T>, SnapError>;

impl SnapDecoder {
    /// A decoder for a SNAP sync: the body, then "BenWasHere". `last_zxid` is the zxid the
    /// leader's SNAP packet carries.
    pub fn stream(last_zxid: i64) -> SnapDecoder {
        Self::new(last_zxid, true)
    }

    /// A decoder for the body alone (as in a snapshot file, whose seal the caller checks
    /// after it; bytes after the body are left in the buffer).
    pub fn body(last_zxid: i64) -> SnapDecoder {
        Self::new(last_zxid, false)
    }

    fn new(last_zxid: i64, signed: bool) -> SnapDecoder {
        SnapDecoder {
            stage: Stage::SessionCount,
            signed,
            last_zxid,
            sessions: Vec::new(),
            acls: HashMap::new(),
            nodes: Vec::new(),
        }
    }

    /// Consumes every complete record at the front of `buf`. `Ok(Some)` once the snapshot
    /// is complete (bytes after it stay in `buf`); `Ok(None)` while more bytes are needed.
    pub fn feed(&mut self, buf: &mut BytesMut) -> Result<Option<Snapshot>, SnapError> {
        loop {
            let progressed = match self.stage {
                Stage::Done => return Err(SnapError::AlreadyComplete),
                Stage::SessionCount => step(buf, |r| read_count(r, "session")).map(|count| {
                    count.map(|count| {
                        self.stage = match count {
                            0 => Stage::AclCount,
                            left => Stage::Sessions { left },
                        };
                    })
                })?,
                Stage::Sessions { left } => step(buf, |r| {
                    let id = r.read_i64().map_err(jute("session"))?;
                    let timeout_ms = r.read_i32().map_err(jute("session"))?;
                    Ok((id, timeout_ms))
                })?
                .map(|session| {
                    self.sessions.push(session);
                    self.stage = match left - 1 {
                        0 => Stage::AclCount,
                        left => Stage::Sessions { left },
                    };
                }),
                Stage::AclCount => step(buf, |r| read_count(r, "ACL map")).map(|count| {
                    count.map(|count| {
                        self.stage = match count {
                            0 => Stage::Nodes,
                            left => Stage::Acls { left },
                        };
                    })
                })?,
                Stage::Acls { left } => step(buf, read_acl_entry)?.map(|(acl_ref, acls)| {
                    // A repeated ref replaces the earlier list, as in ZooKeeper's cache.
                    self.acls.insert(acl_ref, Arc::new(acls));
                    self.stage = match left - 1 {
                        0 => Stage::Nodes,
                        left => Stage::Acls { left },
                    };
                }),
                Stage::Nodes => match step(buf, |r| self.read_node(r))? {
                    None => None,
                    Some(None) if self.signed => {
                        self.stage = Stage::Signature;
                        Some(())
                    }
                    Some(None) => return self.complete().map(Some),
                    Some(Some(node)) => {
                        self.nodes.push(node);
                        Some(())
                    }
                },
                Stage::Signature => match step(buf, |r| read_string(r).map_err(jute("signature")))?
                {
                    None => None,
                    Some(signature) if signature == SNAP_SIGNATURE => {
                        return self.complete().map(Some)
                    }
                    Some(other) => return Err(SnapError::BadSignature(other)),
                },
            };
            if progressed.is_none() {
                return Ok(None);
            }
        }
    }

    /// For the end of the input: Err unless the snapshot was complete.
    pub fn finish(&self) -> Result<(), SnapError> {
        match self.stage {
            Stage::Done => Ok(()),
            stage => Err(SnapError::Incomplete(stage.name())),
        }
    }

    /// One node, or None for the end marker.
    fn read_node(&self, r: &mut JuteReader) -> Result<Option<(String, Znode)>, SnapError> {
        let path = read_string(r).map_err(jute("node path"))?;
        if path == END_OF_NODES {
            return Ok(None);
        }
        let path = if path.is_empty() {
            "/".to_string()
        } else if validate_path(&path).is_ok() {
            path
        } else {
            return Err(SnapError::BadPath(path));
        };
        let data = r.read_buffer_slice().map_err(jute("node data"))?;
        let acl_ref = r.read_i64().map_err(jute("node ACL ref"))?;
        let available = r.remaining();
        if available < 60 {
            return Err(SnapError::Jute {
                what: "node stat",
                error: DecodeError::Truncated {
                    needed: 60,
                    available,
                },
            });
        }
        let stat = jute("node stat");
        let czxid = r.read_i64().map_err(&stat)?;
        let mzxid = r.read_i64().map_err(&stat)?;
        let ctime = r.read_i64().map_err(&stat)?;
        let mtime = r.read_i64().map_err(&stat)?;
        let version = r.read_i32().map_err(&stat)?;
        let cversion = r.read_i32().map_err(&stat)?;
        let aversion = r.read_i32().map_err(&stat)?;
        let ephemeral_owner = r.read_i64().map_err(&stat)?;
        let pzxid = r.read_i64().map_err(&stat)?;
        let acl = if acl_ref == OPEN_ACL_REF {
            Arc::new(open_acl_unsafe())
        } else {
            match self.acls.get(&acl_ref) {
                Some(acl) => acl.clone(),
                None => return Err(SnapError::UnknownAclRef { path, acl_ref }),
            }
        };
        let meta = Meta {
            czxid,
            mzxid,
            pzxid,
            ctime,
            mtime,
            ephemeral_owner,
            acl,
            children: Default::default(),
            version,
            cversion,
            aversion,
        };
        let node = Znode::new(meta, data);
        Ok(Some((path, node)))
    }

    fn complete(&mut self) -> Result<Snapshot, SnapError> {
        self.stage = Stage::Done;
        self.acls.clear();
        let nodes = std::mem::take(&mut self.nodes);
        let tree = DataTree::from_nodes(nodes, self.last_zxid).map_err(SnapError::Tree)?;
        Ok(Snapshot {
            sessions: std::mem::take(&mut self.sessions),
            tree,
        })
    }
}

/// Runs `read` over the front of `buf`; consumes what it read if it succeeded, nothing if
/// the record has not all arrived (a truncated field).
fn step<T>(
    buf: &mut BytesMut,
    read: impl FnOnce(&mut JuteReader) -> Result<T, SnapError>,
) -> Step<T> {
    let mut r = JuteReader::new(buf);
    match read(&mut r) {
        Ok(value) => {
            let used = r.position();
            buf.advance(used);
            Ok(Some(value))
        }
        Err(SnapError::Jute {
            error: DecodeError::Truncated { .. },
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn jute(what: &'static str) -> impl Fn(DecodeError) -> SnapError {
    move |error| SnapError::Jute { what, error }
}

/// A count ZooKeeper reads with `while (count > 0)`; we refuse negative ones.
fn read_count(r: &mut JuteReader, what: &'static str) -> Result<u32, SnapError> {
    let count = r.read_i32().map_err(jute(what))?;
    u32::try_from(count).map_err(|_| SnapError::NegativeCount { what, count })
}

/// `long ref; vector<ACL>` of the ACL map. The count is bounded but not by the bytes present
/// (they may still be arriving); a null vector is refused, as ZooKeeper refuses it.
fn read_acl_entry(r: &mut JuteReader) -> Result<(i64, Vec<Acl>), SnapError> {
    let acl_ref = r.read_i64().map_err(jute("ACL map ref"))?;
    let mut probe = r.clone();
    let count = probe.read_i32().map_err(jute("ACL list"))?;
    if count < 0 {
        return Err(SnapError::NegativeCount {
            what: "ACL list",
            count,
        });
    }
    let count = count as usize;
    if count > MAX_ACLS_PER_LIST {
        return Err(SnapError::AclListTooLong(count));
    }
    // Every entry takes at least 12 bytes: with fewer present, wait for more.
    if probe.remaining() < count * 12 {
        return Err(SnapError::Jute {
            what: "ACL list",
            error: DecodeError::Truncated {
                needed: count * 12,
                available: probe.remaining(),
            },
        });
    }
    let acls = read_acls(r).map_err(jute("ACL list"))?;
    Ok((acl_ref, acls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Id, CONTAINER_EPHEMERAL_OWNER};
    use crate::session::java::JavaRandom;
    use crate::tree::{ttl_owner, Txn, TxnHeader};
    use bytes::Bytes;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id {
                scheme: scheme.to_string(),
                id: id.to_string(),
            },
        }
    }

    fn ustring(s: &str) -> Vec<u8> {
        let mut b = (s.len() as i32).to_be_bytes().to_vec();
        b.extend(s.as_bytes());
        b
    }

    /// A node record with every stat field 0.
    fn zero_node(path: &str, acl_ref: i64) -> Vec<u8> {
        let mut b = ustring(path);
        b.extend([0, 0, 0, 0]);
        b.extend(acl_ref.to_be_bytes());
        b.extend([0u8; 60]);
        b
    }

    #[test]
    fn byte_exact_layout_of_a_fresh_tree() {
        let tree = DataTree::new();
        let mut out = BytesMut::new();
        encode_snap_stream(&tree, &[(0x0100_0000_0000_0001, 30_000)], &mut out);
        let mut expected = vec![0, 0, 0, 1];
        expected.extend(0x0100_0000_0000_0001i64.to_be_bytes());
        expected.extend(30_000i32.to_be_bytes());
        // One ACL list in the map: /zookeeper/config's world:anyone READ.
        expected.extend([0, 0, 0, 1]);
        expected.extend(1i64.to_be_bytes());
        expected.extend([0, 0, 0, 1, 0, 0, 0, 1]);
        expected.extend(ustring("world"));
        expected.extend(ustring("anyone"));
        expected.extend(zero_node("", -1));
        expected.extend(zero_node("/zookeeper", -1));
        // /zookeeper/config: aversion -1 (offset 4 + 8 + 28 within the stat).
        let mut config = zero_node("/zookeeper/config", 1);
        let stat_at = config.len() - 60;
        config[stat_at + 40..stat_at + 44].copy_from_slice(&(-1i32).to_be_bytes());
        expected.extend(config);
        expected.extend(zero_node("/zookeeper/quota", -1));
        expected.extend(ustring("/"));
        expected.extend(ustring("BenWasHere"));
        assert_eq!(out.to_vec(), expected);

        let mut decoder = SnapDecoder::stream(0);
        let snapshot = decoder.feed(&mut out).unwrap().unwrap();
        assert!(out.is_empty());
        decoder.finish().unwrap();
        assert_eq!(snapshot.sessions, vec![(0x0100_0000_0000_0001, 30_000)]);
        assert_eq!(snapshot.tree, tree);
    }

    /// A tree with every node kind: persistent, ephemerals of two sessions, a container, a
    /// TTL node, sequential-looking names, unicode, custom ACLs, data, a quota.
    fn rich_tree() -> DataTree {
        let mut tree = DataTree::new();
        let digest = vec![acl(31, "digest", "u:hash"), acl(1, "world", "anyone")];
        let mut zxid = 0x1_0000_0000;
        let mut apply = |tree: &mut DataTree, session: i64, txn: Txn| {
            zxid += 1;
            let hdr = TxnHeader {
                session_id: session,
                zxid,
                time_ms: 1_700_000_000_000 + zxid,
                ..Default::default()
            };
            tree.apply_txn(&hdr, &txn);
        };
        let create = |path: &str, data: &'static [u8], acl: Vec<Acl>, owner: i64| Txn::Create {
            path: path.to_string(),
            data: Bytes::from_static(data),
            acl,
            ephemeral_owner: owner,
            parent_cversion: -1,
        };
        let open = open_acl_unsafe();
        apply(&mut tree, 1, create("/app", b"root data", open.clone(), 0));
        apply(&mut tree, 1, create("/app/e1", b"", open.clone(), 0x11));
        apply(&mut tree, 2, create("/app/e2", b"x", digest.clone(), 0x22));
        apply(
            &mut tree,
            1,
            create("/app/lock-0000000003", b"", digest.clone(), 0),
        );
        apply(
            &mut tree,
            1,
            create("/c", b"", open.clone(), CONTAINER_EPHEMERAL_OWNER),
        );
        apply(&mut tree, 1, create("/c/child", b"", open.clone(), 0));
        apply(
            &mut tree,
            1,
            create("/t", b"ttl", open.clone(), ttl_owner(60_000).unwrap()),
        );
        apply(&mut tree, 1, create("/ünï", b"", open.clone(), 0));
        apply(
            &mut tree,
            1,
            create("/ünï/日本", b"", vec![acl(3, "ip", "10.0.0.0/8")], 0),
        );
        apply(
            &mut tree,
            1,
            create("/zookeeper/quota/app", b"", open.clone(), 0),
        );
        apply(
            &mut tree,
            1,
            create(
                "/zookeeper/quota/app/zookeeper_limits",
                b"count=10,bytes=-1",
                open.clone(),
                0,
            ),
        );
        apply(
            &mut tree,
            1,
            Txn::SetData {
                path: "/app".into(),
                data: Bytes::from_static(b"v2"),
                version: 1,
            },
        );
        apply(
            &mut tree,
            1,
            Txn::Delete {
                path: "/app/e1".into(),
            },
        );
        apply(&mut tree, 1, create("/app/e1", b"", open, 0x11));
        tree
    }

    #[test]
    fn every_node_kind_round_trips() {
        let tree = rich_tree();
        assert!(tree.get("/ünï/日本").is_some());
        let sessions = vec![(0x11, 4000), (0x22, 30_000), (0x33, 2000)];
        let mut out = BytesMut::new();
        encode_snap_stream(&tree, &sessions, &mut out);
        let mut decoder = SnapDecoder::stream(tree.last_zxid());
        let snapshot = decoder.feed(&mut out).unwrap().unwrap();
        assert_eq!(snapshot.sessions, sessions);
        assert_eq!(snapshot.tree, tree);
        assert_eq!(
            snapshot.tree.ephemerals_of(0x11),
            vec!["/app/e1".to_string()]
        );
        assert_eq!(
            snapshot.tree.ephemerals_of(0x22),
            vec!["/app/e2".to_string()]
        );
        assert_eq!(snapshot.tree.node_count(), tree.node_count());
        assert_eq!(
            snapshot.tree.get("/app").unwrap().stat(),
            tree.get("/app").unwrap().stat()
        );
        // Containers and TTL nodes are indexed again: the empty container is not removable
        // (it has a child), the TTL node expires after its TTL.
        assert_eq!(
            snapshot.tree.removable_containers_and_ttls(i64::MAX / 2),
            tree.removable_containers_and_ttls(i64::MAX / 2)
        );
        assert!(snapshot
            .tree
            .removable_containers_and_ttls(i64::MAX / 2)
            .contains(&"/t".to_string()));
        // Same encoding again.
        let mut again = BytesMut::new();
        encode_snap_stream(&snapshot.tree, &snapshot.sessions, &mut again);
        let mut first = BytesMut::new();
        encode_snap_stream(&tree, &sessions, &mut first);
        assert_eq!(again, first);
    }

    #[test]
    fn fed_a_byte_at_a_time_or_cut_anywhere_it_waits() {
        let tree = rich_tree();
        let sessions = vec![(7, 4000)];
        let mut whole = BytesMut::new();
        encode_snap_stream(&tree, &sessions, &mut whole);
        whole.extend_from_slice(b"next packet");
        let bytes = whole.to_vec();
        let total = bytes.len() - b"next packet".len();
        // One byte at a time.
        let mut decoder = SnapDecoder::stream(tree.last_zxid());
        let mut buf = BytesMut::new();
        let mut result = None;
        for (i, b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            match decoder.feed(&mut buf).unwrap() {
                None => assert!(i + 1 < total, "complete only with the signature"),
                Some(snapshot) => {
                    assert_eq!(i + 1, total);
                    result = Some(snapshot);
                    break;
                }
            }
            // Memory: never more buffered than one record (the largest here is small).
            assert!(buf.len() < 200, "{} bytes held at {i}", buf.len());
        }
        assert_eq!(result.unwrap().tree, tree);
        assert!(matches!(
            decoder.feed(&mut buf),
            Err(SnapError::AlreadyComplete)
        ));
        // Every prefix is incomplete, never an error; the rest completes it.
        for cut in 0..total {
            let mut decoder = SnapDecoder::stream(tree.last_zxid());
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(decoder.feed(&mut buf).unwrap().is_none(), "cut {cut}");
            assert!(decoder.finish().is_err());
            buf.extend_from_slice(&bytes[cut..]);
            let snapshot = decoder.feed(&mut buf).unwrap().unwrap();
            assert_eq!(snapshot.tree, tree);
            assert_eq!(&buf[..], b"next packet", "bytes after it are left");
        }
    }

    #[test]
    fn body_decoder_stops_at_the_end_marker() {
        let tree = DataTree::new();
        let mut out = BytesMut::new();
        encode_snapshot_body(&tree, &[], &mut out);
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, b'/']); // a file's seal
        let snapshot = SnapDecoder::body(5).feed(&mut out).unwrap().unwrap();
        assert_eq!(snapshot.tree.last_zxid(), 5);
        assert_eq!(out.len(), 13);
    }

    fn body_with(nodes: &[Vec<u8>], end: &[u8]) -> BytesMut {
        let mut b = vec![0, 0, 0, 0, 0, 0, 0, 0];
        for n in nodes {
            b.extend(n);
        }
        b.extend(end);
        BytesMut::from(&b[..])
    }

    #[test]
    fn malformed_streams_are_errors() {
        let end = [ustring("/"), ustring("BenWasHere")].concat();
        let decode = |mut b: BytesMut| SnapDecoder::stream(0).feed(&mut b);
        // A node whose parent is absent.
        let orphan = body_with(&[zero_node("", -1), zero_node("/a/b", -1)], &end);
        assert!(matches!(decode(orphan), Err(SnapError::Tree(_))));
        // No root.
        let rootless = body_with(&[zero_node("/a", -1)], &end);
        assert!(matches!(decode(rootless), Err(SnapError::Tree(_))));
        // Repeated path.
        let twice = body_with(
            &[zero_node("", -1), zero_node("/a", -1), zero_node("/a", -1)],
            &end,
        );
        assert!(matches!(decode(twice), Err(SnapError::Tree(_))));
        // The end marker missing: the signature reads as a path.
        let unmarked = body_with(&[zero_node("", -1)], &ustring("BenWasHere"));
        assert_eq!(
            decode(unmarked).unwrap_err(),
            SnapError::BadPath("BenWasHere".into())
        );
        // The wrong signature.
        let unsigned = body_with(
            &[zero_node("", -1)],
            &[ustring("/"), ustring("Ben")].concat(),
        );
        assert_eq!(
            decode(unsigned).unwrap_err(),
            SnapError::BadSignature("Ben".into())
        );
        // An ACL ref not in the map.
        let bad_ref = body_with(&[zero_node("", 4)], &end);
        assert!(matches!(
            decode(bad_ref),
            Err(SnapError::UnknownAclRef { acl_ref: 4, .. })
        ));
        // Negative counts, a null or huge ACL list.
        let negative = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert!(matches!(
            decode(negative),
            Err(SnapError::NegativeCount { .. })
        ));
        let mut null_list = vec![0, 0, 0, 0, 0, 0, 0, 1];
        null_list.extend(1i64.to_be_bytes());
        null_list.extend([0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode(BytesMut::from(&null_list[..])),
            Err(SnapError::NegativeCount { .. })
        ));
        let mut huge_list = vec![0, 0, 0, 0, 0, 0, 0, 1];
        huge_list.extend(1i64.to_be_bytes());
        huge_list.extend([0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode(BytesMut::from(&huge_list[..])),
            Err(SnapError::AclListTooLong(_))
        ));
        // A data length over the field limit.
        let mut big = ustring("");
        big.extend(0x7fff_ffffi32.to_be_bytes());
        let big = body_with(&[big], &[]);
        assert!(matches!(decode(big), Err(SnapError::Jute { .. })));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = JavaRandom::new(77);
        let mut good = BytesMut::new();
        encode_snap_stream(&rich_tree(), &[(1, 2)], &mut good);
        for _ in 0..3_000 {
            let mut bytes = good.to_vec();
            for _ in 0..1 + rng.next_int_below(3).unwrap_or(0) {
                let at = rng.next_int_below(bytes.len() as i32).unwrap_or(0) as usize;
                bytes[at] = rng.next_int() as u8;
            }
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = SnapDecoder::stream(0).feed(&mut buf);
        }
        for _ in 0..3_000 {
            let len = rng.next_int_below(200).unwrap_or(0) as usize;
            let mut noise = vec![0u8; len];
            rng.next_bytes(&mut noise);
            let _ = SnapDecoder::stream(0).feed(&mut BytesMut::from(&noise[..]));
        }
    }
}
