//! The data tree: znodes, stats, ACL checks, and the watches a change fires, as data.
//!
//! Architecture Invariant: this module never touches sockets, files, clocks or threads.
//! Time and zxids come in through [`TxnContext`]; watch firing goes out as [`WatchTrigger`]s.
//!
//! A [`DataTree`] is a persistent (structurally shared) value: `clone()` is O(1) and yields
//! an immutable version that shards read without locks while the ordering core keeps
//! applying writes to its own copy.
//!
//! Writes are split the way ZooKeeper splits them, so the log can replay them:
//! `process_write` validates a request against the tree and produces a deterministic
//! [`Txn`]; `apply_txn` applies a txn, which must fit the tree (one that does not means the
//! replicas or the log diverged from the tree: the server stops, see
//! [`DataTree::apply_txn`]; recovery uses [`DataTree::try_apply_txn`] to refuse instead).
//! Both go through one implementation of each mutation (`apply_op`), so a replayed log
//! rebuilds the same tree.
//!
//! The facts followed here come from Apache ZooKeeper 3.8's `PrepRequestProcessor`
//! (validation order and error codes), `DataTree` and `DataNode` (mutations and the stat a
//! client sees), `FinalRequestProcessor` (reads and replies) and `ContainerManager`.

pub mod acl;
pub mod digest;
mod node;
mod path;
mod pmap;
mod quota;
mod read;
pub mod watches;
mod znode;

#[cfg(test)]
mod tests;

pub use node::Children;
pub use path::validate_path;
pub use read::{serve_read, set_watches};
pub use watches::{ConnId, WatchTable};
pub use znode::{Meta, Znode};

use std::sync::Arc;

use bytes::Bytes;

use crate::proto::{
    perms, Acl, CheckVersionRequest, CreateMode, CreateRequest, DeleteRequest, ErrorCode,
    EventType, Id, MultiOp, MultiResult, OpCode, Request, Response, SetAclRequest, SetDataRequest,
    Stat, CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS, TTL_OWNER_HIGH_BYTE,
};

/// What the ordering core knows about the request being processed.
#[derive(Debug, Clone)]
pub struct TxnContext<'a> {
    pub session_id: i64,
    /// The session's authenticated ids (ip, digest, super, ...).
    pub auth: &'a [Id],
    /// The zxid this request's txn gets (failed writes consume one too, as in ZooKeeper).
    pub zxid: i64,
    /// Wall-clock milliseconds since the epoch, for ctime/mtime.
    pub time_ms: i64,
    /// `zookeeper.enforceQuota`: a create or setData past a quota's hard limit fails with
    /// QuotaExceeded. Set where this server decides the txn (standalone, leader); a learner
    /// answering its client from the leader's txn checks nothing the leader did not.
    pub enforce_quota: bool,
    /// The `sasl` ACL scheme is registered (`authProvider.N=...SASLAuthenticationProvider`):
    /// creates and setACL accept `sasl` entries. A learner answering from the leader's txn
    /// sets it (the leader decided).
    pub sasl_acl: bool,
}

/// A txn header as logged: who, which zxid, when, and which request made it (the client's
/// xid and the request's opcode, as in ZooKeeper's TxnHeader: a learner matches a committed
/// txn to its client's request by session and cxid, and a txn sent to a learner from the log
/// carries the header it was proposed with). `cxid` and `op` are 0 for txns read from logs
/// written before they were kept (the op is then derived from the txn).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub zxid: i64,
    pub time_ms: i64,
    pub cxid: i32,
    pub op: i32,
}

/// A validated, deterministic state change. Applying it cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout_ms: i32,
    },
    /// Deletes every ephemeral of the session (paths listed, in deletion order).
    CloseSession {
        ephemerals: Vec<String>,
    },
    Create {
        path: String,
        data: Bytes,
        acl: Vec<Acl>,
        /// 0 persistent, the session id for ephemerals, CONTAINER_EPHEMERAL_OWNER, or a TTL owner.
        ephemeral_owner: i64,
        /// The parent's cversion after this create (the stored create count, see
        /// [`Znode::cversion`]).
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    /// `version` is the node's version after the change.
    SetData {
        path: String,
        data: Bytes,
        version: i32,
    },
    /// `version` is the node's aversion after the change.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// `version` is the checked node's version plus one, as ZooKeeper's CheckVersionTxn.
    Check {
        path: String,
        version: i32,
    },
    /// A multi. A failed multi is logged as ZooKeeper logs it: one `Error` per op,
    /// `Error(Ok)` for the ops before the failing one, the failing op's code, then
    /// `Error(RuntimeInconsistency)` for the rest; it changes nothing.
    Multi(Vec<Txn>),
    /// A failed write: logged so the zxid sequence has no holes.
    Error(ErrorCode),
}

impl Txn {
    /// Whether `self`, a txn a leader committed, makes the change `derived` makes, the txn
    /// this tree derived from the same request (a follower answering its own client checks
    /// this; a mismatch means the replicas diverged). Exact equality, except closeSession,
    /// which deletes every ephemeral of the session whatever it lists: a Java leader lists
    /// them in its hash set's order (or not at all, `zookeeper.closeSessionTxn.enabled=
    /// false`), zkrs in path order cut at [`CLOSE_SESSION_LIST_MAX`] bytes. Two
    /// closeSessions agree when the leader lists nothing, or the same paths in any order,
    /// or more paths than a cut list of ours whose next path would not have fit.
    pub fn same_change_as(&self, derived: &Txn) -> bool {
        match (self, derived) {
            (Txn::CloseSession { ephemerals: leader }, Txn::CloseSession { ephemerals: ours }) => {
                if leader.is_empty() || leader == ours {
                    return true;
                }
                let leader: std::collections::BTreeSet<&str> =
                    leader.iter().map(String::as_str).collect();
                let ours: std::collections::BTreeSet<&str> =
                    ours.iter().map(String::as_str).collect();
                if leader == ours {
                    return true;
                }
                if !ours.is_subset(&leader) {
                    return false;
                }
                // Ours cut: its paths are the first ones in path order, and the next one
                // would have taken the list past the limit.
                let listed: usize = ours.iter().map(|p| 4 + p.len()).sum();
                let last = ours.last().copied().unwrap_or("");
                match leader.difference(&ours).next() {
                    Some(next) => *next > last && listed + 4 + next.len() > CLOSE_SESSION_LIST_MAX,
                    None => true,
                }
            }
            _ => self == derived,
        }
    }
}

/// Watch triggers and the ACL of each (see [`WriteOutcome::trigger_acls`]).
type FiredWithAcls = (Vec<WatchTrigger>, Vec<Arc<Vec<Acl>>>);

/// The most bytes of paths (4 + length each, as logged) a closeSession txn lists; the
/// session's other ephemerals are deleted by the same txn unlisted (see
/// [`DataTree::close_session`]). ZooKeeper's default jute.maxbuffer: the txn also fits a
/// quorum packet and a Java peer's reader.
pub const CLOSE_SESSION_LIST_MAX: usize = crate::proto::JUTE_MAX_BUFFER;

/// A txn that does not fit the tree it is applied to (see [`DataTree::try_apply_txn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMismatch {
    pub zxid: i64,
    /// The tree's last zxid before the txn.
    pub last_zxid: i64,
    /// Why the op failed; None: the zxid is behind the last one.
    pub code: Option<ErrorCode>,
    /// The txn (or the op of a multi) that failed, as Debug text.
    pub txn: String,
}

impl std::fmt::Display for TxnMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            None => write!(
                f,
                "txn 0x{:x} comes after txn 0x{:x} (zxids went backwards): {}",
                self.zxid, self.last_zxid, self.txn
            ),
            Some(code) => write!(
                f,
                "txn 0x{:x} (after 0x{:x}) does not fit the tree ({code:?}): {}",
                self.zxid, self.last_zxid, self.txn
            ),
        }
    }
}

impl std::error::Error for TxnMismatch {}

/// A change that may fire watches: `path` saw `event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTrigger {
    pub path: Arc<str>,
    pub event: EventType,
}

/// The result of processing one write request on the ordering core.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub txn: Txn,
    /// Err(code) is sent as the reply header's err with an empty body. A failed multi is
    /// `Ok(Response::Multi(results))` carrying the per-op errors; its header err is in
    /// `header_err`.
    pub reply: Result<Response, ErrorCode>,
    /// The reply header's err: the code of an `Err` reply, else 0. A failed multi replies
    /// with header err 0 in ZooKeeper 3.8 (FinalRequestProcessor never sets it for multi;
    /// the Java client reads the per-op results only when it is 0).
    pub header_err: i32,
    /// In the order ZooKeeper fires them.
    pub triggers: Vec<WatchTrigger>,
    /// The ACL ZooKeeper passes along with each trigger (same index): the created, changed
    /// or deleted node's ACL, and for NodeChildrenChanged the parent's. Since 3.8.4
    /// (ZOOKEEPER-4799) a connection gets an event only if its ids have READ in that ACL
    /// (the watch is consumed either way).
    pub trigger_acls: Vec<Arc<Vec<Acl>>>,
}

/// Triggers with their ACLs, as a change produces them.
#[derive(Debug, Default)]
struct Fired {
    triggers: Vec<WatchTrigger>,
    acls: Vec<Arc<Vec<Acl>>>,
}

impl Fired {
    fn push(&mut self, path: Arc<str>, event: EventType, acl: Arc<Vec<Acl>>) {
        self.triggers.push(WatchTrigger { path, event });
        self.acls.push(acl);
    }
}

/// What an ephemeralOwner means (ZooKeeper's `EphemeralType`, extended types enabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralKind {
    /// Owner 0.
    Persistent,
    /// An ephemeral of this session.
    Session(i64),
    Container,
    /// A TTL node; the TTL in milliseconds.
    Ttl(i64),
}

const EXTENDED_MASK: i64 = TTL_OWNER_HIGH_BYTE << 56;
const EXTENDED_RESERVED_SHIFT: u32 = 40;
const EXTENDED_RESERVED_MASK: i64 = 0xffff;

impl EphemeralKind {
    pub fn of_owner(owner: i64) -> EphemeralKind {
        if owner & EXTENDED_MASK == EXTENDED_MASK {
            if (owner >> EXTENDED_RESERVED_SHIFT) & EXTENDED_RESERVED_MASK == 0 {
                return EphemeralKind::Ttl(owner & MAX_TTL_MS);
            }
            // ZooKeeper throws on an unknown extended type; session ids never have a high
            // byte of 0xFF here, so treat such an owner as a session.
            return EphemeralKind::Session(owner);
        }
        match owner {
            0 => EphemeralKind::Persistent,
            CONTAINER_EPHEMERAL_OWNER => EphemeralKind::Container,
            id => EphemeralKind::Session(id),
        }
    }
}

/// The ephemeralOwner of a TTL node, or None when the TTL is not in 1..=MAX_TTL_MS.
pub fn ttl_owner(ttl_ms: i64) -> Option<i64> {
    if ttl_ms <= 0 || ttl_ms > MAX_TTL_MS {
        return None;
    }
    Some(EXTENDED_MASK | ttl_ms)
}

/// The session a read is served for (on a shard).
#[derive(Debug, Clone, Default)]
pub struct SessionView {
    pub session_id: i64,
    /// Shared with the connection: serving a read copies no ids.
    pub auth: Arc<Vec<Id>>,
}

/// A few recently used ACL lists, so that the many nodes sharing an ACL share one
/// allocation (ZooKeeper's ReferenceCountedACLCache does this with ids).
#[derive(Debug, Clone, Default)]
struct AclCache {
    recent: [Option<Arc<Vec<Acl>>>; 4],
    next: usize,
}

impl AclCache {
    fn intern(&mut self, acl: &[Acl]) -> Arc<Vec<Acl>> {
        for shared in self.recent.iter().flatten() {
            if shared.as_slice() == acl {
                return shared.clone();
            }
        }
        let shared = Arc::new(acl.to_vec());
        self.remember(&shared);
        shared
    }

    fn remember(&mut self, shared: &Arc<Vec<Acl>>) {
        let slot = self.next % self.recent.len();
        self.recent[slot] = Some(shared.clone());
        self.next = slot + 1;
    }
}

pub(crate) fn world_acl(perms: i32) -> Vec<Acl> {
    vec![Acl {
        perms,
        id: Id {
            scheme: "world".to_string(),
            id: "anyone".to_string(),
        },
    }]
}

#[derive(Debug, Clone)]
pub struct DataTree {
    /// The root (`/`; ZooKeeper also aliases it as `""`, which [`DataTree::get`] honours),
    /// every other node in its parent's children.
    /// Invariant: a node's `path` is its parent's path, a slash (none after the root's)
    /// and its name.
    root: Znode,
    /// Number of nodes, the root included.
    node_count: usize,
    /// Session id -> paths of its ephemerals. Invariant: no empty sets.
    ephemerals: imbl::HashMap<i64, imbl::OrdSet<Arc<str>>>,
    containers: imbl::OrdSet<Arc<str>>,
    ttls: imbl::OrdSet<Arc<str>>,
    /// Paths with a quota (`/app` for `/zookeeper/quota/app/zookeeper_limits`).
    quota_roots: imbl::OrdSet<Arc<str>>,
    /// Invariant: never decreases.
    last_zxid: i64,
    /// ZooKeeper's `zookeeper.extendedTypesEnabled`: when off, createTTL answers
    /// Unimplemented. ZooKeeper's default is off; ours is on.
    ttl_enabled: bool,
    acl_cache: AclCache,
    /// ZooKeeper's tree digest ([`digest`]): the wrapping sum of every node's digest.
    /// Invariant: equals [`DataTree::compute_digest`]; every change of a node goes through
    /// `update`, `create_node` or `delete_node`, which keep it (O(1) per change: the
    /// changed node is hashed before and after).
    digest: i64,
    /// The paths [`DataTree::iter`] lends, built on first use for this version.
    paths: PathCache,
}

/// Every path of one tree version, in walk order, concatenated: (text, end of each path).
/// A clone starts empty; every change empties it.
#[derive(Default)]
struct PathCache(std::sync::OnceLock<Box<(String, Vec<usize>)>>);

impl Clone for PathCache {
    fn clone(&self) -> PathCache {
        PathCache::default()
    }
}

impl std::fmt::Debug for PathCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathCache")
    }
}

impl PartialEq for DataTree {
    /// Same content (nodes, indexes, last zxid); caches do not count.
    fn eq(&self, other: &DataTree) -> bool {
        self.last_zxid == other.last_zxid
            && self.node_count == other.node_count
            && self.root == other.root
            && self.ephemerals == other.ephemerals
            && self.containers == other.containers
            && self.ttls == other.ttls
            && self.quota_roots == other.quota_roots
            && self.digest == other.digest
    }
}

impl Default for DataTree {
    fn default() -> DataTree {
        DataTree::new()
    }
}

/// The outcome of applying one (non-multi) txn to the tree.
#[derive(Debug, Clone, PartialEq)]
enum Applied {
    Created {
        path: Arc<str>,
        stat: Stat,
    },
    Deleted,
    DataSet(Stat),
    AclSet(Stat),
    Checked,
    /// Session txns, errors.
    Nothing,
}

/// A write request, with a create's opcode and TTL normalized (see `normalize_multi_create`).
#[derive(Debug, Clone, Copy)]
enum WriteOp<'a> {
    Create {
        op: OpCode,
        req: &'a CreateRequest,
        ttl: i64,
    },
    Delete(&'a DeleteRequest),
    DeleteContainer(&'a str),
    SetData(&'a SetDataRequest),
    SetAcl(&'a SetAclRequest),
    Check(&'a CheckVersionRequest),
}

impl WriteOp<'_> {
    /// The reply of a successful op outside a multi.
    fn response(&self, applied: Applied) -> Response {
        match (self, applied) {
            (WriteOp::Create { op, .. }, Applied::Created { path, stat }) => {
                if *op == OpCode::Create {
                    Response::Create(path.to_string())
                } else {
                    Response::Create2(path.to_string(), stat)
                }
            }
            (_, Applied::DataSet(stat)) | (_, Applied::AclSet(stat)) => Response::Stat(stat),
            _ => Response::Empty,
        }
    }

    /// The result of an op inside a multi.
    fn multi_result(&self, applied: Result<Applied, ErrorCode>) -> MultiResult {
        match applied {
            Err(code) => MultiResult::Error(code),
            Ok(Applied::Created { path, stat }) => match self {
                WriteOp::Create {
                    op: OpCode::Create, ..
                } => MultiResult::Create(path.to_string()),
                _ => MultiResult::Create2(path.to_string(), stat),
            },
            Ok(Applied::Deleted) => MultiResult::Delete,
            Ok(Applied::DataSet(stat)) | Ok(Applied::AclSet(stat)) => MultiResult::SetData(stat),
            Ok(Applied::Checked) | Ok(Applied::Nothing) => MultiResult::Check,
        }
    }
}

/// ZooKeeper's checkAndIncVersion: -1 matches any version.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// The parent of a path to delete, as PrepRequestProcessor.getParentPathAndValidate:
/// BadArguments without a slash, with a NUL, or for the special nodes.
fn parent_for_delete(path: &str) -> Result<&str, ErrorCode> {
    if path.contains('\0') || path::is_special(path) {
        return Err(ErrorCode::BadArguments);
    }
    path::parent_of(path).ok_or(ErrorCode::BadArguments)
}

impl DataTree {
    /// A tree with `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`, as a fresh
    /// ZooKeeper 3.8 standalone server has them: every stat field 0 (so `/` shows cversion
    /// -1 and `/zookeeper` -2), ACL world:anyone ALL, except `/zookeeper/config`, which is
    /// world:anyone READ with aversion -1.
    pub fn new() -> DataTree {
        let mut acl_cache = AclCache::default();
        let open = Arc::new(world_acl(perms::ALL));
        let read_only = Arc::new(world_acl(perms::READ));
        acl_cache.remember(&read_only);
        acl_cache.remember(&open);
        let empty = |acl: &Arc<Vec<Acl>>, children: Vec<(&str, Znode)>| {
            let mut meta = Meta::new(acl.clone(), 0, 0, 0);
            meta.children = Children::from_sorted(
                children
                    .into_iter()
                    .map(|(name, node)| (node::Name::new(name), node))
                    .collect(),
            );
            meta
        };
        let mut config = empty(&read_only, vec![]);
        config.aversion = -1;
        let config = Znode::new(config, b"");
        let quota = Znode::new(empty(&open, vec![]), b"");
        let zookeeper = Znode::new(
            empty(&open, vec![("config", config), ("quota", quota)]),
            b"",
        );
        let mut tree = DataTree {
            root: Znode::new(empty(&open, vec![("zookeeper", zookeeper)]), b""),
            node_count: 4,
            ephemerals: imbl::HashMap::new(),
            containers: imbl::OrdSet::new(),
            ttls: imbl::OrdSet::new(),
            quota_roots: imbl::OrdSet::new(),
            last_zxid: 0,
            ttl_enabled: true,
            acl_cache,
            digest: 0,
            paths: PathCache::default(),
        };
        tree.digest = tree.compute_digest();
        tree
    }

    /// Rebuilds a tree from a snapshot's nodes, in any order, as ZooKeeper's
    /// `DataTree.deserialize`: the children sets are rebuilt from the paths (the `children`
    /// of the given nodes are ignored), the ephemeral, container and TTL indexes from the
    /// owners, and quota usage is recomputed. Refuses (Err with the reason) a set without
    /// `/`, an invalid or repeated path, or a node whose parent is missing.
    pub fn from_nodes(
        nodes: impl IntoIterator<Item = (String, Znode)>,
        last_zxid: i64,
    ) -> Result<DataTree, String> {
        let mut tree = DataTree::new();
        tree.last_zxid = last_zxid;
        let mut nodes: Vec<(String, Znode)> = nodes.into_iter().collect();
        // Depth-first order: every parent right before its subtree, siblings by name.
        nodes.sort_unstable_by(|a, b| node::walk_order(&a.0, &b.0));
        if let Some(pair) = nodes.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(format!("path {:?} appears twice", pair[0].0));
        }
        if nodes.first().map(|(path, _)| path.as_str()) != Some("/") {
            return Err("no root node".to_string());
        }
        let count = nodes.len();
        // The nodes whose subtree is being read, each with its children so far.
        type Open = Vec<(String, Znode, Vec<(node::Name, Znode)>)>;
        let mut open: Open = Vec::new();
        let close = |open: &mut Open| {
            let (path, mut done, children) = open.pop()?;
            done.children = Children::from_sorted(children);
            match open.last_mut() {
                Some((_, _, siblings)) => {
                    siblings.push((node::Name::new(path::name_of(&path)), done));
                    None
                }
                None => Some(done),
            }
        };
        for (path, mut node) in nodes {
            validate_path(&path).map_err(|_| format!("invalid path {path:?}"))?;
            let parent = path::parent_of(&path).map(path::canonical);
            while let Some((top, _, _)) = open.last() {
                if Some(top.as_str()) == parent {
                    break;
                }
                close(&mut open);
            }
            if open.is_empty() && path != "/" {
                let parent = parent.unwrap_or("");
                return Err(format!("parent {parent:?} of {path:?} is missing"));
            }
            node.children = Children::default();
            node.acl = tree.acl_cache.intern(&node.acl);
            tree.index_owner(&Arc::from(path.as_str()), node.kind());
            open.push((path, node, Vec::new()));
        }
        let mut root = None;
        while !open.is_empty() {
            root = close(&mut open);
        }
        tree.root = root.ok_or("no root node")?;
        tree.node_count = count;
        tree.setup_quotas();
        tree.digest = tree.compute_digest();
        Ok(tree)
    }

    /// Adds a new node to the index its owner kind needs (containers, TTL nodes, a
    /// session's ephemerals).
    fn index_owner(&mut self, key: &Arc<str>, kind: EphemeralKind) {
        match kind {
            EphemeralKind::Persistent => {}
            EphemeralKind::Container => {
                let old = self.containers.insert(key.clone());
                assert!(old.is_none(), "container {key} indexed twice");
            }
            EphemeralKind::Ttl(_) => {
                let old = self.ttls.insert(key.clone());
                assert!(old.is_none(), "TTL node {key} indexed twice");
            }
            EphemeralKind::Session(id) => {
                let old = self.ephemerals.entry(id).or_default().insert(key.clone());
                assert!(old.is_none(), "ephemeral {key} of 0x{id:x} indexed twice");
            }
        }
    }

    /// ZooKeeper's tree digest of this version (`DataTree.getTreeDigest()`, see
    /// [`digest`]): what a TxnDigest carries after the txn that made this version.
    pub fn digest(&self) -> i64 {
        self.digest
    }

    /// The tree digest computed from every node (O(nodes)); equals [`DataTree::digest`].
    pub fn compute_digest(&self) -> i64 {
        let mut sum = 0i64;
        node::walk("/", &self.root, &mut |path, node| {
            sum = sum.wrapping_add(digest::node_digest(path, node, node.data()));
        });
        sum
    }

    /// The zxid of the last txn applied.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Whether createTTL (and TTL modes) are accepted: ZooKeeper's
    /// `zookeeper.extendedTypesEnabled`, off by default in ZooKeeper, on by default here.
    pub fn set_ttl_enabled(&mut self, enabled: bool) {
        self.ttl_enabled = enabled;
    }

    pub fn ttl_enabled(&self) -> bool {
        self.ttl_enabled
    }

    /// The node at `path`; `""` is the root, as in ZooKeeper's node map.
    pub fn get(&self, path: &str) -> Option<&Znode> {
        node::lookup(&self.root, path::canonical(path))
    }

    /// Number of znodes, the root and the three `/zookeeper` nodes included.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// ZooKeeper's `DataTree.getNodeCount()` (mntr's `zk_znode_count`): one more than
    /// [`DataTree::node_count`], because ZooKeeper's map holds the root twice (`""`, `/`).
    pub fn zk_node_count(&self) -> usize {
        self.node_count + 1
    }

    /// Ephemeral paths owned by `session_id`, sorted.
    pub fn ephemerals_of(&self, session_id: i64) -> Vec<String> {
        self.ephemerals
            .get(&session_id)
            .map(|paths| paths.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default()
    }

    /// Number of ephemeral nodes of all sessions (mntr's `zk_ephemerals_count`).
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|paths| paths.len()).sum()
    }

    /// Sessions owning at least one ephemeral, with their paths (for `dump`), sorted.
    pub fn sessions_with_ephemerals(&self) -> Vec<(i64, Vec<String>)> {
        let mut all: Vec<(i64, Vec<String>)> = self
            .ephemerals
            .iter()
            .map(|(id, paths)| (*id, paths.iter().map(|p| p.to_string()).collect()))
            .collect();
        all.sort();
        all
    }

    /// Sum of path lengths and data lengths (ZooKeeper's `approximateDataSize`, mntr's
    /// `zk_approximate_data_size`), counting the root alias `""` as ZooKeeper does (0).
    pub fn approximate_data_size(&self) -> u64 {
        node::Walk::new("/", &self.root)
            .map(|(path_len, node)| (path_len + node.data().len()) as u64)
            .sum()
    }

    /// Every (path, node), parents before children (`/` first), siblings by name.
    ///
    /// Paths are not stored in the tree: the first call on a version builds them all
    /// (kept with this version until it changes). [`DataTree::for_each_node`] builds none.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Znode)> {
        let (text, ends) = &**self.paths.0.get_or_init(|| {
            // Sized up front: one allocation each, no trail of freed smaller ones.
            let total: usize = node::Walk::new("/", &self.root)
                .map(|(path_len, _)| path_len)
                .sum();
            let mut text = String::with_capacity(total);
            let mut ends = Vec::with_capacity(self.node_count);
            node::walk("/", &self.root, &mut |path, _| {
                text.push_str(path);
                ends.push(text.len());
            });
            Box::new((text, ends))
        });
        let mut start = 0;
        node::Walk::new("/", &self.root)
            .zip(ends)
            .map(move |((_, node), &end)| {
                let path = text.get(start..end).unwrap_or_default();
                start = end;
                (path, node)
            })
    }

    /// Visits every (path, node) in [`DataTree::iter`]'s order (parents before children,
    /// so sorted as a snapshot wants them), building each path in one reused buffer.
    pub fn for_each_node(&self, f: &mut dyn FnMut(&str, &Znode)) {
        node::walk("/", &self.root, f);
    }

    /// ZooKeeper's getAllChildrenNumber: the number of descendants (not only children).
    /// ZooKeeper counts the keys of its node map that start with `path + "/"`, so `/`
    /// gives every node but the root (the three `/zookeeper` nodes included) and the root
    /// alias `""` gives every node.
    pub fn all_children_number(&self, path: &str) -> i32 {
        if path.is_empty() {
            return self.node_count as i32;
        }
        if path == "/" {
            return self.node_count as i32 - 1;
        }
        match self.get(path) {
            Some(node) => (node::Walk::new(path, node).count() as i32).wrapping_sub(1),
            None => 0,
        }
    }

    /// Paths of containers that had children and are now empty, and TTL nodes whose TTL
    /// ran out since their mtime and have no children, as ZooKeeper's ContainerManager.
    pub fn removable_containers_and_ttls(&self, now_ms: i64) -> Vec<String> {
        self.removable_containers_and_ttls_with(now_ms, 0)
    }

    /// As [`DataTree::removable_containers_and_ttls`], with ZooKeeper's
    /// `znode.container.maxNeverUsedIntervalMs` (0 = never): a container that never had a
    /// child becomes removable once its mtime is more than that long ago.
    pub fn removable_containers_and_ttls_with(
        &self,
        now_ms: i64,
        max_never_used_interval_ms: i64,
    ) -> Vec<String> {
        let mut candidates = Vec::new();
        for path in self.containers.iter() {
            let Some(node) = self.get(path) else {
                continue;
            };
            if !node.children.is_empty() {
                continue;
            }
            let elapsed = now_ms.saturating_sub(node.mtime);
            if node.cversion > 0
                || (max_never_used_interval_ms != 0 && elapsed > max_never_used_interval_ms)
            {
                candidates.push(path.to_string());
            }
        }
        for path in self.ttls.iter() {
            let Some(node) = self.get(path) else {
                continue;
            };
            if !node.children.is_empty() {
                continue;
            }
            if let EphemeralKind::Ttl(ttl) = node.kind() {
                if ttl != 0 && now_ms.saturating_sub(node.mtime) > ttl {
                    candidates.push(path.to_string());
                }
            }
        }
        candidates
    }

    // ---------------------------------------------------------------- writes

    /// Validates a write (create*, delete, setData, setACL, check, multi, deleteContainer)
    /// for the session in `ctx` and applies it. Produces the txn to log, the reply and the
    /// watch triggers. `Request::CloseSession` is handled as [`DataTree::close_session`];
    /// `Request::Reconfig` fails with ReconfigDisabled, as on a standalone ZooKeeper.
    pub fn process_write(&mut self, req: &Request, ctx: &TxnContext) -> WriteOutcome {
        let hdr = TxnHeader {
            session_id: ctx.session_id,
            zxid: ctx.zxid,
            time_ms: ctx.time_ms,
            ..TxnHeader::default()
        };
        let op = match req {
            Request::Multi(ops) => return self.process_multi(ops, ctx, &hdr),
            Request::CloseSession => return self.close_session(ctx),
            Request::Create(op, create)
                if matches!(
                    op,
                    OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl
                ) =>
            {
                WriteOp::Create {
                    op: *op,
                    req: create,
                    ttl: if *op == OpCode::CreateTtl {
                        create.ttl
                    } else {
                        -1
                    },
                }
            }
            Request::Delete(delete) => WriteOp::Delete(delete),
            Request::DeleteContainer(path) => WriteOp::DeleteContainer(path),
            Request::SetData(set) => WriteOp::SetData(set),
            Request::SetAcl(set) => WriteOp::SetAcl(set),
            Request::Check(check) => WriteOp::Check(check),
            // A standalone server has reconfig disabled (reconfigEnabled=false): the error
            // txn is logged like any failed write.
            Request::Reconfig(_) => return self.fail(&hdr, ErrorCode::ReconfigDisabled),
            other => {
                log::error!("process_write called with a non-write request {other:?}");
                return self.fail(&hdr, ErrorCode::Unimplemented);
            }
        };
        if let WriteOp::SetData(req) = op {
            if !(ctx.enforce_quota && self.has_quota_over(&req.path)) {
                return self.process_set_data(req, ctx, &hdr);
            }
        }
        match self.prepare(&op, ctx, self) {
            Ok(txn) => {
                let mut fired = Fired::default();
                let applied = self.apply_op(&hdr, &txn, &mut fired);
                self.advance_zxid(hdr.zxid);
                let applied = match applied {
                    Ok(applied) => applied,
                    Err(code) => panic!(
                        "validated txn 0x{:x} does not fit the tree ({code:?}): {txn:?}",
                        hdr.zxid
                    ),
                };
                WriteOutcome {
                    txn,
                    header_err: 0,
                    reply: Ok(op.response(applied)),
                    triggers: fired.triggers,
                    trigger_acls: fired.acls,
                }
            }
            Err(code) => self.fail(&hdr, code),
        }
    }

    /// createSession: a txn that changes nothing but the last zxid.
    pub fn create_session(&mut self, ctx: &TxnContext, timeout_ms: i32) -> WriteOutcome {
        let txn = Txn::CreateSession { timeout_ms };
        let (triggers, trigger_acls) = self.apply_txn_with_acls(&Self::header(ctx), &txn);
        WriteOutcome {
            txn,
            reply: Ok(Response::Empty),
            header_err: 0,
            triggers,
            trigger_acls,
        }
    }

    /// closeSession (or expiry): deletes every ephemeral of `ctx.session_id` in one txn,
    /// in path order, with a NodeDeleted and a parent NodeChildrenChanged per node.
    ///
    /// The txn lists the paths only up to [`CLOSE_SESSION_LIST_MAX`] bytes: applying a
    /// closeSession deletes the session's ephemerals it does not list too (in path order,
    /// after the listed ones, as ZooKeeper's killSession does), so a cut list (its first
    /// paths in path order) changes nothing in the outcome, and a session with any number of
    /// ephemerals closes in one txn that fits a log record and a quorum packet.
    pub fn close_session(&mut self, ctx: &TxnContext) -> WriteOutcome {
        let mut ephemerals = self.ephemerals_of(ctx.session_id);
        let mut listed = 0;
        let keep = ephemerals
            .iter()
            .take_while(|path| {
                listed += 4 + path.len();
                listed <= CLOSE_SESSION_LIST_MAX
            })
            .count();
        ephemerals.truncate(keep);
        let txn = Txn::CloseSession { ephemerals };
        let (triggers, trigger_acls) = self.apply_txn_with_acls(&Self::header(ctx), &txn);
        WriteOutcome {
            txn,
            reply: Ok(Response::Empty),
            header_err: 0,
            triggers,
            trigger_acls,
        }
    }

    /// Applies a committed txn (a follower applying the leader's txn; the ordering core's own
    /// session txns). The txn must fit the tree: one that does not (ZooKeeper's
    /// DataTree.processTxn would log and skip it), or a zxid behind the last one, means this
    /// tree diverged from the txns that made it, and going on would serve and log a state no
    /// other replica has: it panics (the server stops), naming the txn and its zxid.
    pub fn apply_txn(&mut self, hdr: &TxnHeader, txn: &Txn) -> Vec<WatchTrigger> {
        self.apply_txn_with_acls(hdr, txn).0
    }

    /// [`DataTree::apply_txn`], also giving the ACL of each trigger (see
    /// [`WriteOutcome::trigger_acls`]).
    pub fn apply_txn_with_acls(
        &mut self,
        hdr: &TxnHeader,
        txn: &Txn,
    ) -> (Vec<WatchTrigger>, Vec<Arc<Vec<Acl>>>) {
        match self.try_apply_txn_with_acls(hdr, txn) {
            Ok(fired) => fired,
            Err(mismatch) => panic!("the data tree diverged: {mismatch}"),
        }
    }

    /// [`DataTree::apply_txn`] for recovery (replaying a txn log over a snapshot): a txn that
    /// does not fit is an `Err` to refuse the start with, not a panic. After an `Err` the
    /// tree may be partly changed (a closeSession, a multi); do not use it.
    pub fn try_apply_txn(
        &mut self,
        hdr: &TxnHeader,
        txn: &Txn,
    ) -> Result<Vec<WatchTrigger>, TxnMismatch> {
        Ok(self.try_apply_txn_with_acls(hdr, txn)?.0)
    }

    /// Applies a txn received right after a leader's fuzzy snapshot (ZooKeeper's leader
    /// streams SNAP while it goes on committing, so the snapshot may already hold some of
    /// the txns that follow it): a txn that does not fit is skipped, as ZooKeeper's
    /// DataTree.processTxn tolerates NodeExists and NoNode there, and the zxid advances.
    /// Only for the txns of a SNAP sync, before the first snapshot of our own is written.
    pub fn apply_txn_fuzzy(&mut self, hdr: &TxnHeader, txn: &Txn) -> bool {
        match self.try_apply_txn_with_acls(hdr, txn) {
            Ok(_) => true,
            Err(mismatch) => {
                log::info!(
                    "fuzzy snapshot already reflects txn 0x{:x}: {mismatch}",
                    hdr.zxid
                );
                if hdr.zxid > self.last_zxid {
                    self.last_zxid = hdr.zxid;
                }
                false
            }
        }
    }

    fn try_apply_txn_with_acls(
        &mut self,
        hdr: &TxnHeader,
        txn: &Txn,
    ) -> Result<FiredWithAcls, TxnMismatch> {
        let last_zxid = self.last_zxid;
        let mismatch = |code: ErrorCode, sub: &Txn| TxnMismatch {
            zxid: hdr.zxid,
            last_zxid,
            code: Some(code),
            txn: format!("{sub:?}"),
        };
        if hdr.zxid < last_zxid {
            return Err(TxnMismatch {
                code: None,
                ..mismatch(ErrorCode::Ok, txn)
            });
        }
        let mut fired = Fired::default();
        match txn {
            Txn::Multi(subs) => {
                let failed = subs.iter().any(|sub| matches!(sub, Txn::Error(_)));
                let outcomes = self.apply_multi(hdr, subs, &mut fired);
                if !failed {
                    let bad = subs.iter().zip(&outcomes).find_map(|(sub, outcome)| {
                        outcome.as_ref().err().map(|code| mismatch(*code, sub))
                    });
                    if let Some(bad) = bad {
                        return Err(bad);
                    }
                }
            }
            single => {
                if let Err(code) = self.apply_op(hdr, single, &mut fired) {
                    return Err(mismatch(code, single));
                }
            }
        }
        self.advance_zxid(hdr.zxid);
        Ok((fired.triggers, fired.acls))
    }

    fn header(ctx: &TxnContext) -> TxnHeader {
        TxnHeader {
            session_id: ctx.session_id,
            zxid: ctx.zxid,
            time_ms: ctx.time_ms,
            ..TxnHeader::default()
        }
    }

    /// A new leader's epoch starts at `zxid` (`epoch << 32`): the next txn is `zxid + 1`.
    /// No txn is made; a version never goes back.
    pub fn start_epoch(&mut self, zxid: i64) {
        assert!(
            zxid >= self.last_zxid,
            "epoch start 0x{zxid:x} behind the last zxid 0x{:x}",
            self.last_zxid
        );
        self.last_zxid = zxid;
    }

    /// Undoes [`DataTree::start_epoch`] for a term that applied no txn after it: the last
    /// zxid goes back to that of the last txn applied, `zxid` (what the log ends with).
    pub fn undo_epoch_start(&mut self, zxid: i64) {
        assert!(
            self.last_zxid & 0xffff_ffff == 0 && zxid < self.last_zxid,
            "0x{:x} is no epoch start after 0x{zxid:x}",
            self.last_zxid
        );
        self.last_zxid = zxid;
    }

    /// Invariant: the last zxid never decreases; a txn behind it is a bug (a replayed or
    /// reordered txn), and the server stops.
    fn advance_zxid(&mut self, zxid: i64) {
        assert!(
            zxid >= self.last_zxid,
            "txn 0x{zxid:x} applied after 0x{:x}: zxids went backwards",
            self.last_zxid
        );
        self.last_zxid = zxid;
    }

    /// A write that fails before validation (e.g. its body did not decode): it still
    /// consumes its zxid as an error txn, as in ZooKeeper.
    pub fn fail_write(&mut self, ctx: &TxnContext, code: ErrorCode) -> WriteOutcome {
        self.fail(&Self::header(ctx), code)
    }

    fn fail(&mut self, hdr: &TxnHeader, code: ErrorCode) -> WriteOutcome {
        let txn = Txn::Error(code);
        let (triggers, trigger_acls) = self.apply_txn_with_acls(hdr, &txn);
        WriteOutcome {
            txn,
            reply: Err(code),
            header_err: code.code(),
            triggers,
            trigger_acls,
        }
    }

    fn process_multi(
        &mut self,
        ops: &[MultiOp],
        ctx: &TxnContext,
        hdr: &TxnHeader,
    ) -> WriteOutcome {
        // What ZooKeeper's MultiOperationRecord refuses while decoding (read ops, a create
        // with unknown flags) fails the whole request with MarshallingError.
        let mut write_ops = Vec::with_capacity(ops.len());
        for op in ops {
            let write_op = match op {
                MultiOp::Create(op, create) => match normalize_multi_create(*op, create) {
                    Some(write_op) => write_op,
                    None => return self.fail(hdr, ErrorCode::MarshallingError),
                },
                MultiOp::Delete(delete) => WriteOp::Delete(delete),
                MultiOp::SetData(set) => WriteOp::SetData(set),
                MultiOp::Check(check) => WriteOp::Check(check),
                MultiOp::GetChildren(_) | MultiOp::GetData(_) => {
                    return self.fail(hdr, ErrorCode::MarshallingError)
                }
            };
            write_ops.push(write_op);
        }

        // Each op is validated against the tree as the ops before it left it: prepare and
        // apply on a scratch version (an O(1) clone), keep it only if every op succeeds.
        let mut scratch = self.clone();
        let mut subs = Vec::with_capacity(write_ops.len());
        let mut results = Vec::with_capacity(write_ops.len());
        let mut fired = Fired::default();
        for (index, op) in write_ops.iter().enumerate() {
            match scratch.prepare(op, ctx, self) {
                Ok(txn) => {
                    let applied = scratch.apply_op(hdr, &txn, &mut fired);
                    assert!(
                        applied.is_ok(),
                        "validated op of multi 0x{:x} does not fit the tree ({applied:?}): {txn:?}",
                        hdr.zxid
                    );
                    results.push(op.multi_result(applied));
                    subs.push(txn);
                }
                Err(code) => {
                    let failed: Vec<Txn> = (0..write_ops.len())
                        .map(|i| {
                            Txn::Error(if i < index {
                                ErrorCode::Ok
                            } else if i == index {
                                code
                            } else {
                                ErrorCode::RuntimeInconsistency
                            })
                        })
                        .collect();
                    let txn = Txn::Multi(failed);
                    let mut none_fired = Fired::default();
                    let outcomes = self.apply_multi(hdr, multi_subs(&txn), &mut none_fired);
                    self.advance_zxid(hdr.zxid);
                    let results = outcomes
                        .into_iter()
                        .map(|outcome| match outcome {
                            Err(code) => MultiResult::Error(code),
                            Ok(_) => MultiResult::Error(ErrorCode::Ok),
                        })
                        .collect();
                    return WriteOutcome {
                        txn,
                        reply: Ok(Response::Multi(results)),
                        header_err: 0,
                        triggers: none_fired.triggers,
                        trigger_acls: none_fired.acls,
                    };
                }
            }
        }
        let txn = Txn::Multi(subs);
        // A multi of many large ops (with jute.maxbuffer raised, or ACLs that expand to
        // many auth ids) can make a txn the log cannot hold. ZooKeeper has no check (it logs
        // a txn that it cannot read back); refuse it whole, as an error txn, with
        // MarshallingError (the code of a multi that cannot be turned into a txn).
        if crate::wal::format::txn_encoded_len(&txn) > crate::wal::format::TXN_LEN_MAX {
            return self.fail(hdr, ErrorCode::MarshallingError);
        }
        *self = scratch;
        self.advance_zxid(hdr.zxid);
        WriteOutcome {
            txn,
            reply: Ok(Response::Multi(results)),
            header_err: 0,
            triggers: fired.triggers,
            trigger_acls: fired.acls,
        }
    }

    /// Applies the ops of a multi txn as ZooKeeper's DataTree.processTxn does: if any op is
    /// an error the multi changes nothing and reports Ok for the ops before the first
    /// error, each error's code, and RuntimeInconsistency for the non-error ops after it.
    fn apply_multi(
        &mut self,
        hdr: &TxnHeader,
        subs: &[Txn],
        fired: &mut Fired,
    ) -> Vec<Result<Applied, ErrorCode>> {
        let failed = subs.iter().any(|sub| matches!(sub, Txn::Error(_)));
        if failed {
            let mut after_error = false;
            return subs
                .iter()
                .map(|sub| match sub {
                    Txn::Error(code) => {
                        after_error = true;
                        Err(*code)
                    }
                    _ if after_error => Err(ErrorCode::RuntimeInconsistency),
                    _ => Err(ErrorCode::Ok),
                })
                .collect();
        }
        subs.iter()
            .map(|sub| {
                // An op that does not fit is the caller's to report (see try_apply_txn).
                match sub {
                    Txn::Multi(_) | Txn::CreateSession { .. } | Txn::CloseSession { .. } => {
                        Err(ErrorCode::MarshallingError)
                    }
                    _ => self.apply_op(hdr, sub, fired),
                }
            })
            .collect()
    }

    // ------------------------------------------------------------- validation

    /// PrepRequestProcessor: checks `op` against the tree and produces its txn. Quotas are
    /// checked against `quota_tree` (ZooKeeper checks them against its database, not the
    /// changes of the multi being prepared: a multi's ops all see the usage before it).
    fn prepare(
        &self,
        op: &WriteOp,
        ctx: &TxnContext,
        quota_tree: &DataTree,
    ) -> Result<Txn, ErrorCode> {
        match *op {
            WriteOp::Create { op, req, ttl } => {
                let txn = self.prepare_create(op, req, ttl, ctx)?;
                if ctx.enforce_quota {
                    if let Txn::Create { path, data, .. } = &txn {
                        quota_tree.check_quota(path, data.len() as i64, 1)?;
                    }
                }
                Ok(txn)
            }
            WriteOp::Delete(req) => {
                let parent_path = parent_for_delete(&req.path)?;
                let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
                acl::check(&parent.acl, perms::DELETE, ctx.auth)?;
                let node = self.get(&req.path).ok_or(ErrorCode::NoNode)?;
                check_version(node.version, req.version)?;
                if !node.children.is_empty() {
                    return Err(ErrorCode::NotEmpty);
                }
                Ok(Txn::Delete {
                    path: req.path.clone(),
                })
            }
            WriteOp::DeleteContainer(path) => {
                // No session or ACL check; anything but a session ephemeral may go.
                let parent_path = parent_for_delete(path)?;
                let node = self.get(path).ok_or(ErrorCode::NoNode)?;
                if !node.children.is_empty() {
                    return Err(ErrorCode::NotEmpty);
                }
                if let EphemeralKind::Session(_) = node.kind() {
                    return Err(ErrorCode::BadVersion);
                }
                self.get(parent_path).ok_or(ErrorCode::NoNode)?;
                Ok(Txn::Delete {
                    path: path.to_string(),
                })
            }
            WriteOp::SetData(req) => {
                validate_path(&req.path)?;
                let node = self.get(&req.path).ok_or(ErrorCode::NoNode)?;
                acl::check(&node.acl, perms::WRITE, ctx.auth)?;
                if ctx.enforce_quota {
                    let diff = req.data.len() as i64 - node.data().len() as i64;
                    quota_tree.check_quota(&req.path, diff, 0)?;
                }
                let version = check_version(node.version, req.version)?;
                Ok(Txn::SetData {
                    path: req.path.clone(),
                    data: req.data.clone(),
                    version,
                })
            }
            WriteOp::SetAcl(req) => {
                validate_path(&req.path)?;
                let acl = acl::expand_and_validate_acl_with(&req.acl, ctx.auth, ctx.sasl_acl)?;
                let node = self.get(&req.path).ok_or(ErrorCode::NoNode)?;
                acl::check(&node.acl, perms::ADMIN, ctx.auth)?;
                let version = check_version(node.aversion, req.version)?;
                Ok(Txn::SetAcl {
                    path: req.path.clone(),
                    acl,
                    version,
                })
            }
            WriteOp::Check(req) => {
                validate_path(&req.path)?;
                let node = self.get(&req.path).ok_or(ErrorCode::NoNode)?;
                acl::check(&node.acl, perms::READ, ctx.auth)?;
                let version = check_version(node.version, req.version)?;
                Ok(Txn::Check {
                    path: req.path.clone(),
                    version,
                })
            }
        }
    }

    /// PrepRequestProcessor.pRequest2TxnCreate, in its order: flags, TTL, session, path
    /// shape, ACL, parent, CREATE permission, sequence suffix, full path validation,
    /// existence, ephemeral parent.
    fn prepare_create(
        &self,
        op: OpCode,
        req: &CreateRequest,
        ttl: i64,
        ctx: &TxnContext,
    ) -> Result<Txn, ErrorCode> {
        let mode = CreateMode::from_flags(req.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.ttl_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        // EphemeralType.validateTTL: a TTL mode needs a TTL in range, other modes none.
        if mode.is_ttl() {
            if ttl_owner(ttl).is_none() {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        // createTTL with a non-TTL mode (and no TTL) passes ZooKeeper's checks and then
        // fails while being applied; refuse it here.
        if op == OpCode::CreateTtl && !mode.is_ttl() {
            return Err(ErrorCode::BadArguments);
        }
        if mode.is_ephemeral() && ctx.session_id == 0 {
            // checkGlobalSession on an unknown session.
            return Err(ErrorCode::SessionExpired);
        }
        if req.path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = path::parent_of(&req.path).ok_or(ErrorCode::BadArguments)?;
        let acl = acl::expand_and_validate_acl_with(&req.acl, ctx.auth, ctx.sasl_acl)?;
        let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        acl::check(&parent.acl, perms::CREATE, ctx.auth)?;
        let path = if mode.is_sequential() {
            format!("{}{:010}", req.path, parent.cversion)
        } else {
            req.path.clone()
        };
        validate_path(&path)?;
        if self.get(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if let EphemeralKind::Session(_) = parent.kind() {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        // The owner follows the txn type as DataTree.processTxn does: createContainer and
        // createTTL make containers and TTL nodes whatever the flags say, and create /
        // create2 with the container flag make a persistent node.
        let ephemeral_owner = match op {
            OpCode::CreateContainer => CONTAINER_EPHEMERAL_OWNER,
            OpCode::CreateTtl => ttl_owner(ttl).ok_or(ErrorCode::BadArguments)?,
            _ if mode.is_ephemeral() => ctx.session_id,
            _ => 0,
        };
        Ok(Txn::Create {
            path,
            data: req.data.clone(),
            acl,
            ephemeral_owner,
            parent_cversion: parent.cversion.wrapping_add(1),
        })
    }

    // ------------------------------------------------------------- mutations

    /// setData outside a multi, validated and applied in one descent to the node (the
    /// same checks, in the same order, as `prepare`, then what `apply_op` does).
    fn process_set_data(
        &mut self,
        req: &SetDataRequest,
        ctx: &TxnContext,
        hdr: &TxnHeader,
    ) -> WriteOutcome {
        if let Err(code) = validate_path(&req.path) {
            return self.fail(hdr, code);
        }
        // A failed check changes no content (the ancestors may have been copied).
        let checked = self.update(&req.path, |node| {
            acl::check(&node.acl, perms::WRITE, ctx.auth)?;
            let version = check_version(node.version, req.version)?;
            Ok((version, set_data_on(node, &req.data, version, hdr)))
        });
        let (version, changed) = match checked {
            None => return self.fail(hdr, ErrorCode::NoNode),
            Some(Err(code)) => return self.fail(hdr, code),
            Some(Ok(done)) => done,
        };
        let mut fired = Fired::default();
        let applied = self.after_set_data(&req.path, req.data.len(), changed, &mut fired);
        self.advance_zxid(hdr.zxid);
        WriteOutcome {
            txn: Txn::SetData {
                path: req.path.clone(),
                data: req.data.clone(),
                version,
            },
            reply: Ok(WriteOp::SetData(req).response(applied)),
            header_err: 0,
            triggers: fired.triggers,
            trigger_acls: fired.acls,
        }
    }

    /// After a node's data changed: its trigger and the quota usage.
    fn after_set_data(
        &mut self,
        path: &str,
        new_len: usize,
        (old_len, stat, acl): (usize, Stat, Arc<Vec<Acl>>),
        fired: &mut Fired,
    ) -> Applied {
        fired.push(
            Arc::from(path::canonical(path)),
            EventType::NodeDataChanged,
            acl,
        );
        self.quota_after_set_data(path, old_len, new_len);
        Applied::DataSet(stat)
    }

    /// The one implementation of every mutation, shared by process_write and apply_txn.
    fn apply_op(
        &mut self,
        hdr: &TxnHeader,
        txn: &Txn,
        fired: &mut Fired,
    ) -> Result<Applied, ErrorCode> {
        match txn {
            Txn::CreateSession { .. } | Txn::Error(_) => Ok(Applied::Nothing),
            Txn::CloseSession { ephemerals } => {
                self.kill_session(hdr, ephemerals, fired)?;
                Ok(Applied::Nothing)
            }
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                let acl = self.acl_cache.intern(acl);
                self.create_node(
                    path,
                    data,
                    acl,
                    *ephemeral_owner,
                    *parent_cversion,
                    hdr,
                    fired,
                )
            }
            Txn::Delete { path } => {
                self.delete_node(path, hdr.zxid, fired)?;
                Ok(Applied::Deleted)
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                let changed = self
                    .update(path, |node| set_data_on(node, data, *version, hdr))
                    .ok_or(ErrorCode::NoNode)?;
                Ok(self.after_set_data(path, data.len(), changed, fired))
            }
            Txn::SetAcl { path, acl, version } => {
                let acl = self.acl_cache.intern(acl);
                let stat = self
                    .update(path, |node| {
                        node.acl = acl;
                        node.aversion = *version;
                        node.stat()
                    })
                    .ok_or(ErrorCode::NoNode)?;
                Ok(Applied::AclSet(stat))
            }
            Txn::Check { path, .. } => {
                if self.get(path).is_none() {
                    return Err(ErrorCode::NoNode);
                }
                Ok(Applied::Checked)
            }
            Txn::Multi(_) => Err(ErrorCode::MarshallingError),
        }
    }

    /// ZooKeeper's `ZKDatabase.initConfigInZKDatabase`: an ensemble member writes its quorum
    /// config (`QuorumVerifier.toString()`) into `/zookeeper/config` when it starts and after
    /// each sync with a leader, outside any txn: the data is that text, mzxid the config's
    /// version, dataVersion -1 (what `DataTree.setData` is given there), mtime `time_ms`.
    /// The node is not part of the tree digest, and `last_zxid` does not move.
    pub fn set_config_node(&mut self, text: &str, config_version: i64, time_ms: i64) {
        let data = Bytes::copy_from_slice(text.as_bytes());
        let hdr = TxnHeader {
            zxid: config_version,
            time_ms,
            ..Default::default()
        };
        let set = self.update("/zookeeper/config", |node| {
            set_data_on(node, &data, -1, &hdr);
        });
        debug_assert!(set.is_some(), "every tree has /zookeeper/config");
    }

    /// Runs `f` on the node at `path`, copying its ancestors (and the node, once `f`
    /// changes it) where an older version shares them. None when there is no such node.
    fn update<R>(&mut self, path: &str, f: impl FnOnce(&mut Znode) -> R) -> Option<R> {
        let path = path::canonical(path);
        if !path.starts_with('/') {
            return None;
        }
        // A missing node is found on the way down; the ancestors copied by then have the
        // same content (this happens only for a txn that does not fit the tree).
        self.paths = PathCache::default();
        // The node's digest leaves the tree's before `f` and its new one joins after.
        let counted = digest::counts(path);
        let mut delta = 0i64;
        let tracked = |node: &mut Znode| {
            let before = if counted {
                digest::node_digest(path, node, node.data())
            } else {
                0
            };
            let result = f(node);
            if counted {
                delta = digest::node_digest(path, node, node.data()).wrapping_sub(before);
            }
            result
        };
        let result = if path == "/" {
            Some(tracked(&mut self.root))
        } else {
            node::update_below(&mut self.root, path, tracked)
        };
        self.digest = self.digest.wrapping_add(delta);
        result
    }

    /// DataTree.createNode.
    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: &[u8],
        acl: Arc<Vec<Acl>>,
        owner: i64,
        parent_cversion: i32,
        hdr: &TxnHeader,
        fired: &mut Fired,
    ) -> Result<Applied, ErrorCode> {
        validate_path(path)?;
        let parent_path = path::canonical(path::parent_of(path).ok_or(ErrorCode::NoNode)?);
        let exists = self.get(path).is_some();
        let key: Arc<str> = Arc::from(path);
        let node = Znode::new(Meta::new(acl.clone(), hdr.zxid, hdr.time_ms, owner), data);
        let stat = node.stat();
        let data_len = data.len();
        let kind = node.kind();
        let node_digest = digest::node_digest(path, &node, node.data());
        let mut node = Some(node);
        let parent = self.update(parent_path, |parent| {
            // The parent takes the txn's cversion (-1: one more) and the zxid as pzxid only
            // if that raises its cversion. ZooKeeper does this even after a NodeExists on
            // create (replaying over a fuzzy snapshot).
            let cversion = if parent_cversion == -1 {
                parent.cversion.wrapping_add(1)
            } else {
                parent_cversion
            };
            if cversion > parent.cversion {
                parent.cversion = cversion;
                parent.pzxid = hdr.zxid;
            }
            if !exists {
                if let Some(node) = node.take() {
                    parent.children.insert(path::name_of(path), node);
                }
            }
            parent.acl.clone()
        });
        let Some(parent_acl) = parent else {
            return Err(ErrorCode::NoNode);
        };
        let parent_key = Arc::from(parent_path);
        if exists {
            return Err(ErrorCode::NodeExists);
        }
        self.node_count += 1;
        self.digest = self.digest.wrapping_add(node_digest);
        self.index_owner(&key, kind);
        self.quota_after_create(path, data_len);
        fired.push(key.clone(), EventType::NodeCreated, acl);
        fired.push(parent_key, EventType::NodeChildrenChanged, parent_acl);
        Ok(Applied::Created { path: key, stat })
    }

    /// DataTree.deleteNode.
    fn delete_node(&mut self, path: &str, zxid: i64, fired: &mut Fired) -> Result<(), ErrorCode> {
        let parent_path = path::canonical(path::parent_of(path).ok_or(ErrorCode::NoNode)?);
        if path == "/" || self.get(parent_path).is_none() {
            return Err(ErrorCode::NoNode);
        }
        let Some(node) = self.get(path) else {
            // ZooKeeper updates the parent's pzxid before finding the node missing.
            self.update(parent_path, |parent| parent.pzxid = parent.pzxid.max(zxid));
            return Err(ErrorCode::NoNode);
        };
        if !node.children.is_empty() {
            // ZooKeeper would orphan the children; keep the tree whole instead.
            return Err(ErrorCode::NotEmpty);
        }
        let removed = self.update(parent_path, |parent| {
            let node = parent.children.remove(path::name_of(path))?;
            parent.pzxid = parent.pzxid.max(zxid);
            Some((node, parent.acl.clone()))
        });
        let Some(Some((node, parent_acl))) = removed else {
            return Err(ErrorCode::NoNode);
        };
        // Invariant: node_count counts every node, the root included.
        assert!(
            self.node_count > 1,
            "node count {} with {path} in the tree",
            self.node_count
        );
        self.node_count -= 1;
        self.digest = self
            .digest
            .wrapping_sub(digest::node_digest(path, &node, node.data()));
        let key: Arc<str> = Arc::from(path);
        let parent_key: Arc<str> = Arc::from(parent_path);
        // Invariant: each index lists exactly the nodes of its kind.
        let unindexed = |kind: &str| panic!("deleted {kind} {path} was not indexed");
        match node.kind() {
            EphemeralKind::Persistent => {}
            EphemeralKind::Container => {
                if self.containers.remove(&key).is_none() {
                    unindexed("container");
                }
            }
            EphemeralKind::Ttl(_) => {
                if self.ttls.remove(&key).is_none() {
                    unindexed("TTL node");
                }
            }
            EphemeralKind::Session(id) => {
                let now_empty = match self.ephemerals.get_mut(&id) {
                    Some(paths) => {
                        if paths.remove(&key).is_none() {
                            unindexed("ephemeral");
                        }
                        paths.is_empty()
                    }
                    None => unindexed("ephemeral"),
                };
                if now_empty {
                    self.ephemerals.remove(&id);
                }
            }
        }
        self.quota_after_delete(path, node.data().len());
        fired.push(key, EventType::NodeDeleted, node.acl.clone());
        fired.push(parent_key, EventType::NodeChildrenChanged, parent_acl);
        Ok(())
    }

    /// DataTree.killSession: deletes the txn's paths, then any other ephemeral the session
    /// still owns (ZooKeeper warns about those and deletes them too). A listed path that is
    /// not an ephemeral of the session does not fit the tree.
    fn kill_session(
        &mut self,
        hdr: &TxnHeader,
        paths: &[String],
        fired: &mut Fired,
    ) -> Result<(), ErrorCode> {
        for path in paths {
            let owner = self.get(path).map(|node| node.kind());
            if owner != Some(EphemeralKind::Session(hdr.session_id)) {
                return Err(ErrorCode::NoNode);
            }
            self.delete_node(path, hdr.zxid, fired)?;
        }
        let leftover = self.ephemerals_of(hdr.session_id);
        if !leftover.is_empty() {
            // A long list is cut to fit (see close_session).
            log::debug!(
                "closeSession 0x{:x}: {} ephemerals not listed in txn 0x{:x}",
                hdr.session_id,
                leftover.len(),
                hdr.zxid
            );
            for path in &leftover {
                self.delete_node(path, hdr.zxid, fired)?;
            }
        }
        Ok(())
    }
}

/// Sets a node's data as a setData txn does: (old length, new stat, the node's ACL).
fn set_data_on(
    node: &mut Znode,
    data: &Bytes,
    version: i32,
    hdr: &TxnHeader,
) -> (usize, Stat, Arc<Vec<Acl>>) {
    let old_len = node.data().len();
    node.set_data(data);
    node.mtime = hdr.time_ms;
    node.mzxid = hdr.zxid;
    node.version = version;
    (old_len, node.stat(), node.acl.clone())
}

fn multi_subs(txn: &Txn) -> &[Txn] {
    match txn {
        Txn::Multi(subs) => subs,
        _ => &[],
    }
}

/// The op a create inside a multi becomes when ZooKeeper's MultiOperationRecord decodes
/// it: TTL flags make a createTTL, the container flag a createContainer, and a createTTL
/// header without TTL flags a plain create (its TTL dropped). None when ZooKeeper refuses
/// to decode it (unknown flags under a create/create2/createContainer header).
fn normalize_multi_create(op: OpCode, req: &CreateRequest) -> Option<WriteOp<'_>> {
    let (op, ttl) = match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer => {
            let mode = CreateMode::from_flags(req.flags)?;
            if mode.is_ttl() {
                (OpCode::CreateTtl, -1)
            } else if mode.is_container() {
                (OpCode::CreateContainer, -1)
            } else {
                (op, -1)
            }
        }
        OpCode::CreateTtl => {
            let mode = CreateMode::from_flags(req.flags).unwrap_or(CreateMode::Persistent);
            if mode.is_ttl() {
                (OpCode::CreateTtl, req.ttl)
            } else if mode.is_container() {
                (OpCode::CreateContainer, -1)
            } else {
                (OpCode::Create, -1)
            }
        }
        _ => return None,
    };
    Some(WriteOp::Create { op, req, ttl })
}
