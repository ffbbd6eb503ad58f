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
//! [`Txn`]; `apply_txn` applies a txn and never fails.

pub mod acl;
pub mod watches;

pub use watches::{ConnId, WatchTable};

use std::sync::Arc;

use bytes::Bytes;

use crate::proto::{Acl, ErrorCode, EventType, Id, Request, Response, SetWatches, Stat, WatcherEvent};

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
}

/// A txn header as logged: who, which zxid, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub zxid: i64,
    pub time_ms: i64,
}

/// A validated, deterministic state change. Applying it cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession { timeout_ms: i32 },
    /// Deletes every ephemeral of the session (paths listed, in deletion order).
    CloseSession { ephemerals: Vec<String> },
    Create {
        path: String,
        data: Bytes,
        acl: Vec<Acl>,
        /// 0 persistent, the session id for ephemerals, CONTAINER_EPHEMERAL_OWNER, or a TTL owner.
        ephemeral_owner: i64,
        /// The parent's cversion after this create.
        parent_cversion: i32,
    },
    Delete { path: String },
    SetData { path: String, data: Bytes, version: i32 },
    SetAcl { path: String, acl: Vec<Acl>, version: i32 },
    Check { path: String, version: i32 },
    Multi(Vec<Txn>),
    /// A failed write: logged so the zxid sequence has no holes.
    Error(ErrorCode),
}

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
    /// The reply header err for a successful-or-multi reply (0 unless a multi failed).
    pub header_err: i32,
    /// In the order ZooKeeper fires them.
    pub triggers: Vec<WatchTrigger>,
}

/// One znode. Children are a persistent sorted set so that a version clone is O(1).
#[derive(Debug, Clone)]
pub struct Znode {
    pub data: Bytes,
    pub acl: Arc<Vec<Acl>>,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub children: imbl::OrdSet<Arc<str>>,
}

impl Znode {
    pub fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            data_length: self.data.len() as i32,
            num_children: self.children.len() as i32,
            pzxid: self.pzxid,
        }
    }
}

/// The session a read is served for (on a shard).
#[derive(Debug, Clone, Default)]
pub struct SessionView {
    pub session_id: i64,
    pub auth: Vec<Id>,
}

#[derive(Debug, Clone)]
pub struct DataTree {
    // fields are the tree module's business
}

impl DataTree {
    /// A tree with `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`.
    pub fn new() -> DataTree {
        todo!()
    }

    /// The zxid of the last txn applied.
    pub fn last_zxid(&self) -> i64 {
        todo!()
    }

    pub fn get(&self, path: &str) -> Option<&Znode> {
        todo!()
    }

    pub fn node_count(&self) -> usize {
        todo!()
    }

    /// Ephemeral paths owned by `session_id`.
    pub fn ephemerals_of(&self, session_id: i64) -> Vec<String> {
        todo!()
    }

    /// Validates a write (create*, delete, setData, setACL, check, multi, deleteContainer)
    /// for the session in `ctx` and applies it. Produces the txn to log, the reply and the
    /// watch triggers.
    pub fn process_write(&mut self, req: &Request, ctx: &TxnContext) -> WriteOutcome {
        todo!()
    }

    /// Applies a logged txn (replay, or a follower applying the leader's txn).
    pub fn apply_txn(&mut self, hdr: &TxnHeader, txn: &Txn) -> Vec<WatchTrigger> {
        todo!()
    }

    /// Paths of containers that had children and are now empty, and TTL nodes whose TTL
    /// ran out since their mtime and have no children, as ZooKeeper's ContainerManager.
    pub fn removable_containers_and_ttls(&self, now_ms: i64) -> Vec<String> {
        todo!()
    }
}

/// Serves a read request (exists, getData, getChildren, getChildren2, getACL,
/// getAllChildrenNumber, getEphemerals, multiRead, addWatch, checkWatches, removeWatches,
/// whoAmI) against one tree version, registering any watch it asks for under `conn`.
pub fn serve_read(
    tree: &DataTree,
    req: &Request,
    session: &SessionView,
    conn: ConnId,
    watches: &mut WatchTable,
) -> Result<Response, ErrorCode> {
    todo!()
}

/// setWatches / setWatches2 after a reconnect: re-registers the watches and returns the
/// events that fire at once for changes made after `relative_zxid` while the client was away.
pub fn set_watches(
    tree: &DataTree,
    sw: &SetWatches,
    conn: ConnId,
    watches: &mut WatchTable,
) -> Vec<WatcherEvent> {
    todo!()
}
