//! Messages between the client shards and the ordering core.
//!
//! Everything that changes state, or must be ordered after state changes (writes, sync,
//! closeSession, session creation and reconnection), goes to the ordering core; everything
//! it decides comes back to every shard as one [`CommitBatch`], in zxid order.

use std::sync::Arc;

use bytes::Bytes;

use crate::proto::{Acl, ErrorCode, Id, Request, Response};
use crate::tree::{ConnId, DataTree, WatchTrigger};

/// A connection somewhere in the server: (shard index, connection id on that shard).
pub type ConnRef = (usize, ConnId);

#[derive(Debug)]
pub struct ConnectAttempt {
    pub origin: ConnRef,
    /// 0 asks for a new session.
    pub session_id: i64,
    pub passwd: Bytes,
    /// Already clamped to [minSessionTimeout, maxSessionTimeout].
    pub timeout_ms: i32,
}

#[derive(Debug)]
pub struct WriteRequest {
    pub origin: ConnRef,
    pub xid: i32,
    pub session_id: i64,
    pub auth: Arc<Vec<Id>>,
    /// A write (create*, delete, setData, setACL, check, multi), sync or closeSession;
    /// None for a write whose body did not decode (it fails with MarshallingError but
    /// still consumes a zxid, as in ZooKeeper).
    pub request: Option<Request>,
    /// A read of the same connection was queued after an earlier write that is still in
    /// flight: that earlier write's reply item must carry its own tree version (so the read
    /// sees it and not this write). False when no read sits between the two.
    pub read_before: bool,
    /// The request's opcode and its body as received (the frame after the 8-byte request
    /// header): a follower forwards exactly these bytes to its leader (a REQUEST packet).
    pub op: i32,
    pub body: Bytes,
}

#[derive(Debug)]
pub enum ToOrdering {
    Connect(ConnectAttempt),
    Write(Box<WriteRequest>),
    /// Sessions that showed life since the last flush, each with when its latest request
    /// arrived (the shard reads that clock for the request anyway): a session's deadline
    /// counts from its request, not from when the flush reaches the ordering core.
    Touch(Vec<(i64, std::time::Instant)>),
    /// A connection went away (the session lives on until it expires or is closed).
    Disconnected {
        origin: ConnRef,
        session_id: i64,
    },
}

#[derive(Debug)]
pub enum ToShard {
    Commit(Arc<CommitBatch>),
    /// The server stopped serving (an ensemble member lost its leader or its quorum):
    /// close every client connection and wait for the next initial batch.
    Reset,
}

/// What the owning shard does for the connection an item targets.
#[derive(Debug, Clone)]
pub enum Action {
    None,
    Reply {
        xid: i32,
        reply: Result<Response, ErrorCode>,
        header_err: i32,
        /// closeSession: send the reply, then close the connection.
        close_after: bool,
    },
    ConnectAccepted {
        session_id: i64,
        passwd: [u8; 16],
        timeout_ms: i32,
    },
    /// Unknown or expired session, or wrong password: the timeout-0 answer, then close.
    ConnectRejected,
    /// The session expired or moved to another connection: close this one.
    Close,
}

#[derive(Debug, Clone)]
pub struct CommitItem {
    /// The item's txn zxid, or the last zxid when it made no txn (sync, reconnect).
    pub zxid: i64,
    /// The tree version right after this item, sent only when the item answers a write of
    /// a connection whose next write in the same batch has a read queued before it (so that
    /// the read sees the first write and not the second). Otherwise None: reads waiting
    /// behind the write are served from the batch's version.
    pub tree: Option<Arc<DataTree>>,
    /// Watches to fire, in order, before the version switch and the reply.
    pub triggers: Vec<WatchTrigger>,
    /// The ACL each trigger's event is filtered by (a connection needs READ in it, as in
    /// ZooKeeper 3.8.4+); parallel to `triggers`.
    pub trigger_acls: Vec<Arc<Vec<Acl>>>,
    pub target: Option<ConnRef>,
    pub action: Action,
}

#[derive(Debug, Default)]
pub struct CommitBatch {
    pub items: Vec<CommitItem>,
    /// The tree version after the whole batch; None when the batch changed nothing.
    pub tree: Option<Arc<DataTree>>,
}
