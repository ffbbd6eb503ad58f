//! One client shard: accept loop, connections, request routing, commit application.
//!
//! Per connection, requests are answered in arrival order (ZooKeeper's per-session FIFO):
//! a read that arrives while a write of the same connection is outstanding waits in the
//! connection's queue and is served, against the version that includes the write, right
//! after the write's reply. Commit items are applied in zxid order: fire the watches they
//! trigger, switch the read version, then answer the write — so a client always receives a
//! watch event before it can read the data that fired it.
//!
//! A read also waits until this shard has applied the zxid the log task had released when
//! the read arrived (`SharedStats::released_zxid`): another shard may have answered that
//! write already. One client must not hurt the others: a connection's unsent output and its
//! unanswered requests are bounded, and so is the shard's unsent output over all connections
//! (past a bound the connection stops reading: only the connections with output waiting, so
//! clients that do not read hold back only themselves); a request holds its
//! globalOutstandingLimit permit until its reply is queued, as in ZooKeeper; and a connection
//! (or the backlog of waiting reads) is served in turns of `TURN_TIME_BUDGET` before the
//! shard's other tasks run.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::shared_channel::{ConnectedSender, SharedReceiver, SharedSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;

use super::notify::Notify;
use crate::config::Config;
use crate::metrics::{LocalHistogram, PacketTotals};
use crate::proto::codec::{
    decode_connect_request, decode_request_frame, decode_request_header, encode_connect_response,
    encode_connect_response_without_read_only, encode_notification, encode_reply,
};
use crate::proto::frame::FrameDecoder;
use crate::proto::jute::DecodeError;
use crate::proto::{
    perms, xid, ConnectResponse, ErrorCode, Id, OpCode, ReplyHeader, Request, RequestHeader,
    Response,
};
use crate::server::messages::*;
use crate::server::SharedStats;
use crate::tls::TlsServer;
use crate::tree::{self, acl, ConnId, DataTree, SessionView, WatchTable};

/// What a listening port serves.
#[derive(Clone)]
enum Port {
    /// The client port: plaintext.
    Plain,
    /// `secureClientPort`: TLS only.
    Secure(Arc<TlsServer>),
    /// The client port with `client.portUnification=true`: a connection whose first byte
    /// starts a TLS handshake record is TLS, any other plaintext.
    Unified(Arc<TlsServer>),
}

/// A connection must complete its handshake within this time (ZooKeeper's
/// `zookeeper.nio.sessionlessCnxnTimeout` default).
const SESSIONLESS_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Least bound on a connection's unsent output; the bound is the larger of this and
/// [`OUTPUT_BOUND_MAX_BUFFERS`] times jute.maxbuffer (one reply can be that large).
const OUTPUT_BOUND_BYTES_MIN: usize = 4 * 1024 * 1024;
/// The output bound in replies of jute.maxbuffer bytes.
const OUTPUT_BOUND_MAX_BUFFERS: usize = 2;
/// Least bound on a shard's unsent output over all its connections; the bound is the larger
/// of this and [`SHARD_OUTPUT_BOUND_BUFFERS`] connection bounds.
const SHARD_OUTPUT_BOUND_BYTES_MIN: usize = 64 * 1024 * 1024;
/// The shard's output bound in connection bounds.
const SHARD_OUTPUT_BOUND_BUFFERS: usize = 8;
/// Requests one connection may have waiting unanswered, at least (or the shard's whole
/// share of globalOutstandingLimit, when that is smaller).
const QUEUED_PER_CONNECTION_MIN: u64 = 64;

/// A connection's turn: it serves requests in a row for at most this long (or
/// [`FRAMES_PER_TURN`] requests), then lets the shard's other tasks run (other connections,
/// commit application, session touches). Short enough for others' latency; long enough
/// that the pause (a reactor poll) costs a pipelining client little.
const TURN_TIME_BUDGET: Duration = Duration::from_micros(500);
/// Most requests served in one turn.
const FRAMES_PER_TURN: u32 = 1024;
/// The pause after a turn: anything nonzero, so that the reactor is polled before the
/// connection goes on (see `read_loop`).
const TURN_PAUSE: Duration = Duration::from_micros(1);

/// How long a closing connection's writer may take to flush its output to a client that
/// does not read it, before the connection is dropped with its output.
const CLOSING_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Spare output capacity an idle connection keeps; more is given back after a write.
const OUT_IDLE_CAPACITY_MAX_BYTES: usize = 64 * 1024;

/// How often a shard checks whether a burst of output has ended (see
/// `release_memory_after_bursts`).
const MEMORY_RELEASE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Output in one check interval under which the shard counts as quiet.
const MEMORY_RELEASE_QUIET_BYTES: u64 = 1024 * 1024;
/// Output since the last release that makes a burst worth releasing memory after.
const MEMORY_RELEASE_BURST_BYTES: u64 = 32 * 1024 * 1024;
/// Collections per release, one per check interval (mimalloc's purge delay is 1 s).
const MEMORY_RELEASE_PASSES: u32 = 3;

/// A request that waits in its connection's queue.
enum Pending {
    /// Sent to the ordering core; its reply comes with a commit item.
    Write { xid: i32, op: i32, started: Instant },
    /// A read queued behind a write of the same connection, or waiting for the shard to
    /// apply what was released before it arrived.
    Read {
        header: RequestHeader,
        request: Request,
        started: Instant,
        /// The released zxid when the read arrived: it is served only from a version that
        /// includes it, since another shard may already have answered that write.
        min_zxid: i64,
    },
}

/// The shard's request latencies (srvr, stat, mntr add them up over the shards), kept on
/// the shard so that the request path touches no shared cache line.
#[derive(Default)]
pub struct LatencyStats {
    pub min_ms: Cell<u64>,
    pub max_ms: Cell<u64>,
    pub total_ms: Cell<u64>,
    pub count: Cell<u64>,
}

impl LatencyStats {
    fn record(&self, ms: u64) {
        if self.count.get() == 0 || ms < self.min_ms.get() {
            self.min_ms.set(ms);
        }
        self.max_ms.set(self.max_ms.get().max(ms));
        self.total_ms.set(self.total_ms.get() + ms);
        self.count.set(self.count.get() + 1);
    }

    pub fn reset(&self) {
        self.min_ms.set(0);
        self.max_ms.set(0);
        self.total_ms.set(0);
        self.count.set(0);
    }
}

/// Per-connection counters, for the cons four-letter word.
#[derive(Default)]
pub struct ConnStats {
    pub received: Cell<u64>,
    pub sent: Cell<u64>,
    pub last_op: Cell<&'static str>,
    pub last_xid: Cell<i32>,
    pub last_zxid: Cell<i64>,
    pub latency: LatencyStats,
}

pub struct Conn {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub established: Instant,
    pub session_id: Cell<i64>,
    pub timeout_ms: Cell<i32>,
    auth: RefCell<Arc<Vec<Id>>>,
    /// The connection's SASL exchange (DIGEST-MD5), once its first sasl request came.
    sasl: RefCell<Option<crate::sasl::DigestMd5Server>>,
    /// Output not yet taken by the writer.
    out: RefCell<BytesMut>,
    /// Bytes the writer took from `out` and has not finished writing to the socket.
    in_flight_bytes: Cell<usize>,
    /// The shard's total of unsent output (`Shard::unsent_total`): every byte appended to
    /// `out` is added, every byte written (or dropped with the connection) taken off.
    shard_unsent: Rc<Cell<usize>>,
    writer_wake: Notify,
    /// Notified whenever the writer finishes a chunk (or the connection closes): a reader
    /// held back by [`Conn::over_output_bound`] checks again.
    drained: Notify,
    queue: RefCell<VecDeque<Pending>>,
    connect_result: RefCell<Option<Action>>,
    connect_wake: Notify,
    /// Once set, nothing more is read; the writer flushes what is queued and shuts down.
    closing: Cell<bool>,
    /// In the shard's `lagging` list: a read at the head of `queue` waits for the shard to
    /// apply a released zxid. Invariant: the connection is in that list at most once.
    lagging: Cell<bool>,
    fd: i32,
    pub stats: ConnStats,
}

impl ConnStats {
    pub fn reset(&self) {
        self.received.set(0);
        self.sent.set(0);
        self.latency.reset();
    }
}

impl Conn {
    /// A read waits at the back of the queue: a write sent now has a read between it and
    /// the connection's earlier write(s).
    fn read_at_back(&self) -> bool {
        matches!(self.queue.borrow().back(), Some(Pending::Read { .. }))
    }

    /// Whether the oldest unanswered request is a read (waiting behind a write).
    fn has_read_at_head(&self) -> bool {
        matches!(self.queue.borrow().front(), Some(Pending::Read { .. }))
    }

    /// Requests of this connection not answered yet.
    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }

    fn wake_writer(&self) {
        self.writer_wake.notify();
    }

    fn close(&self) {
        self.closing.set(true);
        self.wake_writer();
        self.connect_wake.notify();
        self.drained.notify();
    }

    /// Appends to the connection's output (every append goes through here, so that the
    /// shard's unsent total stays exact) and wakes its writer.
    fn push_out(&self, encode: impl FnOnce(&mut BytesMut)) {
        let added = {
            let mut out = self.out.borrow_mut();
            let before = out.len();
            encode(&mut out);
            out.len() - before
        };
        self.shard_unsent.set(self.shard_unsent.get() + added);
        self.wake_writer();
    }

    fn send_reply(&self, header: &ReplyHeader, body: &Response) {
        self.push_out(|out| encode_reply(out, header, body));
        self.stats.sent.set(self.stats.sent.get() + 1);
    }

    /// Output queued on this connection and not yet written to its socket.
    pub fn unsent_bytes(&self) -> usize {
        self.out.borrow().len() + self.in_flight_bytes.get()
    }

    /// Whether this connection must stop reading requests for now (ZooKeeper stops reading
    /// a connection whose output backs up): its unsent output is past `bound.bytes`; or the
    /// shard's unsent output is past `bound.shard_bytes` and this connection has output of
    /// its own waiting (so that clients that do not read, however many, hold back only
    /// themselves, while the shard's memory stays bounded); or `bound.queued` of its requests
    /// wait unanswered (behind its own write, or for the shard to catch up), each holding a
    /// globalOutstandingLimit permit: one connection cannot take its shard's whole share.
    fn over_output_bound(&self, bound: &OutputBound) -> bool {
        let unsent = self.unsent_bytes();
        unsent > bound.bytes
            || (unsent > 0 && self.shard_unsent.get() > bound.shard_bytes)
            || self.queue.borrow().len() as u64 >= bound.queued
    }
}

pub struct Shard {
    pub index: usize,
    pub config: Arc<Config>,
    pub stats: Arc<SharedStats>,
    pub latency: LatencyStats,
    tree: RefCell<Arc<DataTree>>,
    pub conns: RefCell<HashMap<ConnId, Rc<Conn>>>,
    pub watches: RefCell<WatchTable>,
    to_ordering: ConnectedSender<ToOrdering>,
    /// Sessions with requests since the last touch flush, each with its latest request's
    /// arrival (the clock `on_request` reads anyway).
    touched: RefCell<HashMap<i64, Instant>>,
    next_conn: Cell<ConnId>,
    /// This shard's share of globalOutstandingLimit: a request holds a permit from the
    /// moment it is read until its reply is queued on its connection.
    outstanding: Rc<Semaphore>,
    /// Whether sessions are served: from the first commit batch until a reset (an ensemble
    /// member that is not synced with a leader refuses clients, as ZooKeeper does).
    serving: Cell<bool>,
    /// Set by a reset until the next batch with a version: that one starts a new term and
    /// may be below the last term's (a leader's epoch start is no txn).
    after_reset: Cell<bool>,
    /// When a connection stops reading (see `Conn::over_output_bound`).
    output_bound: OutputBound,
    /// Output appended to this shard's connections and not yet written to their sockets.
    unsent_total: Rc<Cell<usize>>,
    /// Connections whose next read waits until this shard has applied the zxid that was
    /// released when the read arrived; served at the end of each commit batch.
    lagging: RefCell<Vec<Rc<Conn>>>,
    /// Wakes the task that serves the `lagging` reads a batch's application left.
    lagging_wake: Notify,
    /// When the last commit batch was applied (for mntr).
    pub applied_at: Cell<Option<Instant>>,
    /// Bytes written to this shard's client sockets since it started.
    written_bytes: Cell<u64>,
    /// Request latencies for the Prometheus summaries (`readlatency`, `updatelatency`).
    pub read_latency_hist: LocalHistogram,
    pub update_latency_hist: LocalHistogram,
    /// Failed `addAuth` requests (`auth_failed_count`).
    pub auth_failed: Cell<u64>,
    /// Server-wide packet counts beyond the live connections' (see `PacketTotals`).
    pub packet_totals: PacketTotals,
}

/// The limits past which a connection stops reading (`Conn::over_output_bound`).
struct OutputBound {
    /// A connection's own unsent output.
    bytes: usize,
    /// The shard's unsent output, over all its connections.
    shard_bytes: usize,
    /// A connection's requests waiting unanswered.
    queued: u64,
}

fn op_name(op: i32) -> &'static str {
    match OpCode::from_i32(op) {
        Some(OpCode::Create) => "CREA",
        Some(OpCode::Create2) | Some(OpCode::CreateContainer) | Some(OpCode::CreateTtl) => "CRE2",
        Some(OpCode::Delete) => "DELE",
        Some(OpCode::Exists) => "EXIS",
        Some(OpCode::GetData) => "GETD",
        Some(OpCode::SetData) => "SETD",
        Some(OpCode::GetAcl) => "GETA",
        Some(OpCode::SetAcl) => "SETA",
        Some(OpCode::GetChildren) => "GETC",
        Some(OpCode::GetChildren2) => "GETC",
        Some(OpCode::Sync) => "SYNC",
        Some(OpCode::Ping) => "PING",
        Some(OpCode::Multi) => "MULT",
        Some(OpCode::CloseSession) => "CLOS",
        Some(OpCode::SetWatches) | Some(OpCode::SetWatches2) => "SETW",
        _ => "UNKN",
    }
}

/// Opcodes that go through the write pipeline in ZooKeeper (and so consume a zxid even
/// when their body does not decode).
fn is_write_op(op: i32) -> bool {
    matches!(
        OpCode::from_i32(op),
        Some(
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::DeleteContainer
                | OpCode::Delete
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Multi
        )
    )
}

fn is_write(request: &Request) -> bool {
    matches!(
        request,
        Request::Create(..)
            | Request::Delete(_)
            | Request::DeleteContainer(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Check(_)
            | Request::Multi(_)
            | Request::Sync(_)
            | Request::CloseSession
    )
}

/// How often a shard flushes its session touches (see `spawn_shard_tasks`' comment).
fn touch_flush_period(config: &Config) -> Duration {
    let tick = config.tick_time_ms as u64;
    let ms = if config.is_distributed() {
        tick / 8
    } else {
        tick / 2
    };
    Duration::from_millis(ms.clamp(1, 1000))
}

impl Shard {
    pub fn tree(&self) -> Arc<DataTree> {
        self.tree.borrow().clone()
    }

    /// The zxid of the version this shard has applied (and serves reads from).
    pub fn last_zxid(&self) -> i64 {
        self.tree.borrow().last_zxid()
    }

    /// Connections with a read waiting for this shard to catch up.
    pub fn lagging_connections(&self) -> usize {
        self.lagging.borrow().len()
    }

    fn mark_lagging(&self, conn: &Rc<Conn>) {
        if !conn.lagging.replace(true) {
            self.lagging.borrow_mut().push(conn.clone());
        }
    }

    /// Serves the reads that waited for this shard to catch up, from its current version,
    /// for at most `budget` (a backlog of dear reads must not hold the shard); those that
    /// still wait for a later batch stay. False when servable reads are left: the
    /// `lagging_wake` task goes on with them in later turns. A read served after a later
    /// batch was applied sees that batch too, whose events went out before its version.
    fn serve_lagging_reads(&self, budget: Duration) -> bool {
        if self.lagging.borrow().is_empty() {
            return true;
        }
        let mut conns: VecDeque<Rc<Conn>> = std::mem::take(&mut *self.lagging.borrow_mut()).into();
        let deadline = Instant::now() + budget;
        let tree = self.tree();
        while let Some(conn) = conns.pop_front() {
            conn.lagging.set(false);
            if !self.drain_reads_until(&conn, &tree, Some(deadline)) {
                // Out of time: this one and the rest go first next turn.
                conn.lagging.set(true);
                conns.push_front(conn);
                let mut lagging = self.lagging.borrow_mut();
                let still_waiting = std::mem::take(&mut *lagging);
                lagging.extend(conns);
                lagging.extend(still_waiting);
                return false;
            }
        }
        true
    }

    async fn send_to_ordering(&self, message: ToOrdering) {
        if self.to_ordering.send(message).await.is_err() {
            log::error!(
                "shard {}: the ordering core's channel is closed",
                self.index
            );
        }
    }

    /// Applies one commit batch from the ordering core: per item, in zxid order, fire its
    /// watches and answer its write; then switch to the batch's version and serve the reads
    /// that waited behind the batch's writes. A read queued between two writes of the same
    /// connection in one batch is served at once from the version after the first write
    /// (the ordering core sends that version with the item).
    fn apply_commit(&self, batch: &CommitBatch) {
        let mut deferred: Vec<Rc<Conn>> = Vec::new();
        for item in &batch.items {
            if !item.triggers.is_empty() {
                let conns = self.conns.borrow();
                let mut watches = self.watches.borrow_mut();
                for (i, trigger) in item.triggers.iter().enumerate() {
                    let acl = item.trigger_acls.get(i);
                    for (conn_id, event) in watches.trigger(trigger) {
                        if let Some(conn) = conns.get(&conn_id) {
                            // The watch is consumed either way; the event only goes to a
                            // connection that may read the node (ZooKeeper 3.8.4+).
                            if let Some(acl) = acl {
                                if acl::check(acl, perms::READ, &conn.auth.borrow()).is_err() {
                                    continue;
                                }
                            }
                            conn.push_out(|out| encode_notification(out, &event));
                            conn.stats.sent.set(conn.stats.sent.get() + 1);
                        }
                    }
                }
            }
            let Some((shard, conn_id)) = item.target else {
                continue;
            };
            if shard != self.index {
                continue;
            }
            let Some(conn) = self.conns.borrow().get(&conn_id).cloned() else {
                continue;
            };
            match &item.action {
                Action::None => {}
                Action::Reply {
                    xid,
                    reply,
                    header_err,
                    close_after,
                } => {
                    self.finish_write(&conn, *xid, item.zxid, reply, *header_err);
                    match &item.tree {
                        Some(version) => self.drain_reads(&conn, version),
                        None => {
                            if conn.has_read_at_head() && !deferred.iter().any(|c| c.id == conn.id)
                            {
                                deferred.push(conn.clone());
                            }
                        }
                    }
                    if *close_after {
                        conn.close();
                    }
                }
                Action::ConnectAccepted { .. } | Action::ConnectRejected => {
                    *conn.connect_result.borrow_mut() = Some(item.action.clone());
                    conn.connect_wake.notify();
                }
                Action::Close => {
                    log::info!(
                        "Closing connection from {} of session 0x{:x}",
                        conn.peer,
                        conn.session_id.get()
                    );
                    conn.close();
                }
            }
        }
        if let Some(tree) = &batch.tree {
            // Invariant: batches arrive in zxid order (the releaser sends them in order, and
            // a new term starts from at least what an earlier one released).
            let applied = self.tree.borrow().last_zxid();
            assert!(
                tree.last_zxid() >= applied || self.after_reset.get(),
                "shard {}: commit batch up to 0x{:x} after 0x{applied:x}",
                self.index,
                tree.last_zxid()
            );
            *self.tree.borrow_mut() = tree.clone();
            self.after_reset.set(false);
        }
        if !deferred.is_empty() {
            let tree = self.tree();
            for conn in deferred {
                self.drain_reads(&conn, &tree);
            }
        }
        if !self.serve_lagging_reads(TURN_TIME_BUDGET) {
            self.lagging_wake.notify();
        }
        self.applied_at.set(Some(Instant::now()));
    }

    fn finish_write(
        &self,
        conn: &Rc<Conn>,
        xid: i32,
        zxid: i64,
        reply: &Result<Response, ErrorCode>,
        header_err: i32,
    ) {
        // Reads behind this connection's previous write were served (from the item's own
        // version, or at the end of its batch) before this write is answered; only reads
        // that waited for the shard to catch up may still be queued ahead of it, and the
        // version applied now includes what they wait for (this write was read after them,
        // so it is ordered after the batch they wait for). Serve them first.
        if conn.has_read_at_head() {
            let tree = self.tree();
            self.drain_reads(conn, &tree);
            if conn.has_read_at_head() {
                debug_assert!(false, "a read is still queued ahead of a write's reply");
                log::error!(
                    "shard {}: a read was still queued ahead of xid {xid}",
                    self.index
                );
            }
        }
        let front = conn.queue.borrow_mut().pop_front();
        match front {
            Some(Pending::Write {
                xid: pending_xid,
                op,
                started,
            }) => {
                debug_assert_eq!(pending_xid, xid, "write replies come back in FIFO order");
                self.record_latency(conn, op, xid, zxid, started);
            }
            _ => {
                log::error!(
                    "shard {}: reply for xid {xid} does not match the head of the queue",
                    self.index
                );
            }
        }
        let (err, body) = match reply {
            Ok(body) => (header_err, body),
            Err(code) => (code.code(), &Response::Empty),
        };
        self.reply_releasing_permit(conn, &ReplyHeader { xid, zxid, err }, body);
    }

    /// Answers a request that held a globalOutstandingLimit permit, and releases it: as in
    /// ZooKeeper, the limit counts requests being processed; the memory their replies take
    /// until written is bounded by [`Conn::over_output_bound`].
    fn reply_releasing_permit(&self, conn: &Conn, header: &ReplyHeader, body: &Response) {
        conn.send_reply(header, body);
        self.outstanding.signal(1);
    }

    fn record_latency(&self, conn: &Conn, op: i32, xid: i32, zxid: i64, started: Instant) {
        let ms = started.elapsed().as_millis() as u64;
        let s = &conn.stats;
        s.last_op.set(op_name(op));
        s.last_xid.set(xid);
        s.last_zxid.set(zxid);
        s.latency.record(ms);
        self.latency.record(ms);
        // ZooKeeper's ServerStats: an update is a request with a txn.
        if is_write_op(op) || op == OpCode::CloseSession as i32 {
            self.update_latency_hist.record(ms);
        } else {
            self.read_latency_hist.record(ms);
        }
    }

    /// Serves the reads queued at the head of the connection's queue, as far as `tree`
    /// includes what each of them must see; a read that needs a later version marks the
    /// connection lagging (it is served at the end of a later batch).
    fn drain_reads(&self, conn: &Rc<Conn>, tree: &DataTree) {
        self.drain_reads_until(conn, tree, None);
    }

    /// As `drain_reads`, stopping at `deadline`: false when reads that `tree` could serve
    /// are left for later.
    fn drain_reads_until(
        &self,
        conn: &Rc<Conn>,
        tree: &DataTree,
        deadline: Option<Instant>,
    ) -> bool {
        let applied = tree.last_zxid();
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) && conn.has_read_at_head() {
                let ready = matches!(
                    conn.queue.borrow().front(),
                    Some(Pending::Read { min_zxid, .. }) if *min_zxid <= applied
                );
                if ready {
                    return false;
                }
            }
            let next = {
                let mut q = conn.queue.borrow_mut();
                match q.front() {
                    Some(Pending::Read { min_zxid, .. }) if *min_zxid > applied => {
                        drop(q);
                        self.mark_lagging(conn);
                        None
                    }
                    Some(Pending::Read { .. }) => q.pop_front(),
                    _ => None,
                }
            };
            let Some(Pending::Read {
                header,
                request,
                started,
                ..
            }) = next
            else {
                return true;
            };
            self.serve_read(conn, header, &request, started, tree);
        }
    }

    fn serve_read(
        &self,
        conn: &Rc<Conn>,
        header: RequestHeader,
        request: &Request,
        started: Instant,
        tree: &DataTree,
    ) {
        let zxid = tree.last_zxid();
        let (err, body) = match request {
            Request::Ping => (0, Response::Empty),
            Request::Reconfig(_) => (ErrorCode::ReconfigDisabled.code(), Response::Empty),
            Request::SetWatches(sw) | Request::SetWatches2(sw) => {
                let events = {
                    let mut watches = self.watches.borrow_mut();
                    tree::set_watches(tree, sw, conn.id, &mut watches)
                };
                conn.push_out(|out| {
                    for event in &events {
                        encode_notification(out, event);
                    }
                });
                (0, Response::Empty)
            }
            _ => {
                let session = SessionView {
                    session_id: conn.session_id.get(),
                    auth: conn.auth.borrow().clone(),
                };
                let mut watches = self.watches.borrow_mut();
                match tree::serve_read(tree, request, &session, conn.id, &mut watches) {
                    Ok(body) => (0, body),
                    Err(code) => (code.code(), Response::Empty),
                }
            }
        };
        if header.xid != xid::PING {
            self.record_latency(conn, header.op, header.xid, zxid, started);
        }
        self.reply_releasing_permit(
            conn,
            &ReplyHeader {
                xid: header.xid,
                zxid,
                err,
            },
            &body,
        );
    }

    /// Routes one decoded request of an established session.
    async fn on_request(
        &self,
        conn: &Rc<Conn>,
        header: RequestHeader,
        request: Request,
        body: Bytes,
    ) {
        let started = Instant::now();
        conn.stats.received.set(conn.stats.received.get() + 1);
        self.touched
            .borrow_mut()
            .insert(conn.session_id.get(), started);
        if let Request::Auth(packet) = &request {
            // As 3.8's X509AuthenticationProvider: `addauth x509` succeeds (adding nothing
            // new) on a connection whose TLS handshake gave it an x509 id, and fails
            // elsewhere.
            let has_certificate = packet.scheme == acl::SCHEME_X509
                && conn
                    .auth
                    .borrow()
                    .iter()
                    .any(|id| id.scheme == acl::SCHEME_X509);
            let result = if has_certificate {
                Ok(Vec::new())
            } else {
                acl::authenticate_from(
                    Some(&conn.peer.ip()),
                    &packet.scheme,
                    &packet.auth,
                    self.config.super_digest.as_deref(),
                )
            };
            match result {
                Ok(ids) => {
                    let mut auth = conn.auth.borrow_mut();
                    let mut list = auth.as_ref().clone();
                    for id in ids {
                        if !list.contains(&id) {
                            list.push(id);
                        }
                    }
                    *auth = Arc::new(list);
                    drop(auth);
                    conn.send_reply(
                        &ReplyHeader {
                            xid: header.xid,
                            zxid: 0,
                            err: 0,
                        },
                        &Response::Empty,
                    );
                }
                Err(code) => {
                    self.auth_failed.set(self.auth_failed.get() + 1);
                    log::warn!(
                        "Authentication failed for scheme {} from {}",
                        packet.scheme,
                        conn.peer
                    );
                    conn.send_reply(
                        &ReplyHeader {
                            xid: header.xid,
                            zxid: 0,
                            err: code.code(),
                        },
                        &Response::Empty,
                    );
                    conn.close();
                }
            }
            return;
        }
        if let Request::Sasl(token) = &request {
            self.on_sasl(conn, header.xid, token);
            return;
        }
        if !self.enforce_authentication(conn, header.xid) {
            return;
        }
        // Backpressure: while the shard's share of globalOutstandingLimit is used up, this
        // connection stops reading.
        if self.outstanding.acquire(1).await.is_err() {
            return;
        }
        if is_write(&request) {
            let read_before = conn.read_at_back();
            conn.queue.borrow_mut().push_back(Pending::Write {
                xid: header.xid,
                op: header.op,
                started,
            });
            let message = ToOrdering::Write(Box::new(WriteRequest {
                origin: (self.index, conn.id),
                xid: header.xid,
                session_id: conn.session_id.get(),
                auth: conn.auth.borrow().clone(),
                request: Some(request),
                read_before,
                op: header.op,
                body,
            }));
            self.send_to_ordering(message).await;
        } else {
            // A write of another session may have been answered by another shard already:
            // this read sees at least what was released before it arrived.
            let min_zxid = SharedStats::released_zxid();
            let queue_empty = conn.queue.borrow().is_empty();
            if queue_empty && self.last_zxid() >= min_zxid {
                let tree = self.tree();
                self.serve_read(conn, header, &request, started, &tree);
                return;
            }
            conn.queue.borrow_mut().push_back(Pending::Read {
                header,
                request,
                started,
                min_zxid,
            });
            if queue_empty {
                self.mark_lagging(conn);
            }
        }
    }

    /// Adds ids to the connection's auth info (a set: ids it holds already change nothing).
    fn add_auth_ids(&self, conn: &Conn, ids: impl IntoIterator<Item = Id>) {
        let mut auth = conn.auth.borrow_mut();
        let mut list = auth.as_ref().clone();
        for id in ids {
            if !list.contains(&id) {
                list.push(id);
            }
        }
        *auth = Arc::new(list);
    }

    /// A sasl request (ZooKeeperServer.processSasl): one step of the connection's DIGEST-MD5
    /// exchange, answered at once with zxid 0. On success the connection gains
    /// `sasl:<user>` (and `super:` for a `zookeeper.superUser`). A failed step is answered
    /// AuthFailed (SessionClosedRequireSaslAuth when SASL is enforced) and the connection
    /// closes, unless `zookeeper.allowSaslFailedClients` keeps it (answered OK, no token).
    fn on_sasl(&self, conn: &Conn, xid: i32, token: &[u8]) {
        let auth = &self.config.auth;
        let reply = |err: i32, body: Response| {
            conn.send_reply(&ReplyHeader { xid, zxid: 0, err }, &body);
        };
        let Some(server) = auth.server.as_deref() else {
            // ZooKeeper without a JAAS Server section has no SASL server on the connection:
            // it logs the null and answers OK with a null token.
            log::error!(
                "SASL request from {} but no SASL server is configured \
                 (java.security.auth.login.config)",
                conn.peer
            );
            reply(0, Response::Sasl(None));
            return;
        };
        let result = match &server.mechanism {
            crate::sasl::Mechanism::Unsupported { module } => Err(format!(
                "the JAAS section uses {module}: Kerberos (GSSAPI) is not supported by zkrs, \
                 only DIGEST-MD5"
            )),
            crate::sasl::Mechanism::DigestMd5 { .. } => {
                let mut state = conn.sasl.borrow_mut();
                let exchange = state.get_or_insert_with(crate::sasl::DigestMd5Server::new);
                exchange.step(token, crate::sasl::new_nonce, |user| auth.password(user))
            }
        };
        match result {
            Ok(crate::sasl::Step::Continue(challenge)) => {
                reply(0, Response::Sasl(Some(Bytes::from(challenge))));
            }
            Ok(crate::sasl::Step::Complete { response, user }) => {
                log::info!(
                    "Session 0x{:x}: adding SASL authorization for authorizationID: {user}",
                    conn.session_id.get()
                );
                let is_super = auth.is_super_user(&user);
                let mut ids = vec![Id {
                    scheme: crate::sasl::SCHEME_SASL.to_string(),
                    id: user.clone(),
                }];
                if is_super {
                    log::info!(
                        "Session 0x{:x}: Authenticated Id '{user}' as super user",
                        conn.session_id.get()
                    );
                    ids.push(acl::super_id());
                }
                self.add_auth_ids(conn, ids);
                reply(0, Response::Sasl(Some(Bytes::from(response))));
            }
            Err(reason) => {
                // Not counted in auth_failed_count: ZooKeeper 3.8 counts only failed TLS
                // handshakes there.
                log::warn!("Client {} failed to SASL authenticate: {reason}", conn.peer);
                if auth.allow_failed_clients && !auth.sasl_required() {
                    log::warn!(
                        "Maintaining client connection despite SASL authentication failure."
                    );
                    reply(0, Response::Sasl(None));
                    return;
                }
                let code = if auth.sasl_required() {
                    ErrorCode::SessionClosedRequireSaslAuth
                } else {
                    ErrorCode::AuthFailed
                };
                log::warn!("Closing client connection due to SASL authentication failure.");
                reply(code.code(), Response::Sasl(None));
                conn.close();
            }
        }
    }

    /// AuthenticationHelper.enforceAuthentication: with `enforce.auth.enabled` (or
    /// `sessionRequireClientSASLAuth`), a request of a connection holding no id of an
    /// enforced scheme is answered SessionClosedRequireSaslAuth (zxid 0) and the connection
    /// closes. False when the request was refused.
    fn enforce_authentication(&self, conn: &Conn, xid: i32) -> bool {
        let auth = &self.config.auth;
        let ids = conn.auth.borrow().clone();
        if auth.enforcement_passes(ids.iter().map(|id| id.scheme.as_str())) {
            return true;
        }
        let schemes: Vec<&str> = ids.iter().map(|id| id.scheme.as_str()).collect();
        log::error!(
            "Client authentication scheme(s) {schemes:?} does not match with any of the expected \
             authentication scheme {:?}, closing session.",
            auth.enforce_schemes
        );
        conn.send_reply(
            &ReplyHeader {
                xid,
                zxid: 0,
                err: ErrorCode::SessionClosedRequireSaslAuth.code(),
            },
            &Response::Empty,
        );
        conn.close();
        false
    }

    /// Answers a request ZooKeeper refuses with `code` (with zxid -1, as ZooKeeper's
    /// UnimplementedRequestProcessor), then closes the connection. Returns the reason to log.
    fn reject_request(&self, conn: &Conn, xid: i32, code: ErrorCode, what: &str) -> String {
        conn.send_reply(
            &ReplyHeader {
                xid,
                zxid: -1,
                err: code.code(),
            },
            &Response::Empty,
        );
        format!("{what} (xid {xid}): answered {code:?} and closing")
    }

    /// A write whose body did not decode: it goes through the ordering core like any write
    /// and comes back as MarshallingError with its own zxid.
    async fn on_undecodable_write(&self, conn: &Rc<Conn>, header: RequestHeader, body: Bytes) {
        conn.stats.received.set(conn.stats.received.get() + 1);
        if self.outstanding.acquire(1).await.is_err() {
            return;
        }
        let read_before = conn.read_at_back();
        conn.queue.borrow_mut().push_back(Pending::Write {
            xid: header.xid,
            op: header.op,
            started: Instant::now(),
        });
        let message = ToOrdering::Write(Box::new(WriteRequest {
            origin: (self.index, conn.id),
            xid: header.xid,
            session_id: conn.session_id.get(),
            auth: conn.auth.borrow().clone(),
            request: None,
            read_before,
            op: header.op,
            body,
        }));
        self.send_to_ordering(message).await;
    }

    /// The server stopped serving: every connection is closed (its client reconnects to
    /// another server), and sessions are refused until the next initial batch.
    fn reset(&self) {
        self.serving.set(false);
        self.after_reset.set(true);
        let conns: Vec<Rc<Conn>> = self.conns.borrow().values().cloned().collect();
        if !conns.is_empty() {
            log::info!(
                "shard {}: not serving any more, closing {} connection(s)",
                self.index,
                conns.len()
            );
        }
        for conn in conns {
            conn.close();
        }
    }

    /// Whether sessions are served now.
    pub fn is_serving(&self) -> bool {
        self.serving.get()
    }

    /// `bytes` of unsent output were written (or dropped with their connection).
    fn take_unsent(&self, bytes: usize) {
        let total = self.unsent_total.get();
        // Invariant: the total is the sum of the connections' unsent output.
        assert!(
            bytes <= total,
            "shard {}: {bytes} unsent bytes taken off a total of {total}",
            self.index
        );
        self.unsent_total.set(total - bytes);
    }

    fn remove_conn(&self, conn: &Conn) {
        self.packet_totals
            .fold(conn.stats.received.get(), conn.stats.sent.get());
        self.conns.borrow_mut().remove(&conn.id);
        self.watches.borrow_mut().remove_conn(conn.id);
        let queued = conn.queue.borrow_mut().drain(..).count() as u64;
        if queued > 0 {
            self.outstanding.signal(queued);
        }
        // Output never written (the writer failed, or gave up on a client that did not read).
        let unsent = conn.out.borrow_mut().split().len() + conn.in_flight_bytes.replace(0);
        self.take_unsent(unsent);
        self.stats.release_ip(conn.peer.ip());
    }
}

/// The TLS side of a shard: the server settings and `secureClientPort`'s address.
pub struct ShardTls {
    pub server: Arc<TlsServer>,
    pub secure_listen: Option<SocketAddr>,
}

/// Runs shard `index` on the current glommio executor.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    index: usize,
    config: Arc<Config>,
    stats: Arc<SharedStats>,
    listen: SocketAddr,
    tls: Option<ShardTls>,
    to_ordering: SharedSender<ToOrdering>,
    from_ordering: SharedReceiver<ToShard>,
    admin_inbox: crate::admin_glue::AdminReceiver,
) {
    let to_ordering = to_ordering.connect().await;
    let from_ordering = from_ordering.connect().await;
    let share = (config.global_outstanding_limit as u64 / config.shards.max(1) as u64).max(1);
    let output_bound_bytes =
        OUTPUT_BOUND_BYTES_MIN.max(OUTPUT_BOUND_MAX_BUFFERS.saturating_mul(config.jute_max_buffer));
    let shard = Rc::new(Shard {
        index,
        config: config.clone(),
        stats,
        latency: LatencyStats::default(),
        tree: RefCell::new(Arc::new(DataTree::new())),
        conns: RefCell::new(HashMap::new()),
        watches: RefCell::new(WatchTable::new()),
        to_ordering,
        touched: RefCell::new(HashMap::new()),
        next_conn: Cell::new(1),
        outstanding: Rc::new(Semaphore::new(share)),
        serving: Cell::new(false),
        after_reset: Cell::new(false),
        output_bound: OutputBound {
            bytes: output_bound_bytes,
            shard_bytes: SHARD_OUTPUT_BOUND_BUFFERS
                .saturating_mul(output_bound_bytes)
                .max(SHARD_OUTPUT_BOUND_BYTES_MIN),
            // A quarter of the share, but never so few that a pipelining client (tens of
            // requests in flight) is throttled on a machine with many shards; at least one.
            queued: (share / 4).max(QUEUED_PER_CONNECTION_MIN.min(share)).max(1),
        },
        unsent_total: Rc::new(Cell::new(0)),
        lagging: RefCell::new(Vec::new()),
        lagging_wake: Notify::new(),
        applied_at: Cell::new(None),
        written_bytes: Cell::new(0),
        read_latency_hist: LocalHistogram::default(),
        update_latency_hist: LocalHistogram::default(),
        auth_failed: Cell::new(0),
        packet_totals: PacketTotals::default(),
    });

    // The first commit carries the recovered tree: a standalone server accepts no
    // connection before it. An ensemble member listens at once (four-letter words answer)
    // but refuses sessions until it serves (it has synced with a leader, or leads).
    if !config.is_distributed() {
        match from_ordering.recv().await {
            Some(ToShard::Commit(batch)) => {
                shard.apply_commit(&batch);
                shard.serving.set(true);
            }
            _ => {
                log::error!("shard {index}: no initial state from the ordering core");
                return;
            }
        }
    }
    // Reads that waited for this shard to catch up, after each batch.
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                shard.lagging_wake.wait().await;
                while !shard.serve_lagging_reads(TURN_TIME_BUDGET) {
                    glommio::timer::sleep(TURN_PAUSE).await;
                }
            }
        })
        .detach();
    }
    // Commits from the ordering core.
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(message) = from_ordering.recv().await {
                match message {
                    ToShard::Commit(batch) => {
                        shard.apply_commit(&batch);
                        // After a reset the next batch is the initial one of a new term.
                        shard.serving.set(true);
                    }
                    ToShard::Reset => shard.reset(),
                }
            }
            log::error!("shard {}: commit channel closed", shard.index);
        })
        .detach();
    }
    // Session touches. Each carries its request's arrival, so a flush's delay does not push
    // the session's deadline on this server's ordering core (twice per tick is enough).
    // A follower's ordering core can only pass them on to the leader in its next PING
    // reply, and the leader counts them from their arrival: there every flush's delay adds
    // to the session's expiry, so an ensemble member flushes eight times per tick (a
    // learner's session expires within timeout + 1.625 ticks of its last request, against
    // ZooKeeper's 1.5: the leader's ping interval, tick/2, is the same in both).
    {
        let shard = shard.clone();
        let every = touch_flush_period(&config);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                let ids: Vec<(i64, Instant)> = shard
                    .touched
                    .borrow_mut()
                    .drain()
                    .filter(|(id, _)| *id != 0)
                    .collect();
                if !ids.is_empty() {
                    shard.send_to_ordering(ToOrdering::Touch(ids)).await;
                }
            }
        })
        .detach();
    }
    crate::admin_glue::spawn_admin_inbox(shard.clone(), admin_inbox);
    glommio::spawn_local(release_memory_after_bursts(shard.clone())).detach();

    let listener = match bind_listener(listen) {
        Ok(l) => l,
        Err(e) => {
            log::error!("shard {index}: cannot bind {listen}: {e}");
            std::process::exit(1);
        }
    };
    let plain_port = match &tls {
        Some(tls) if config.tls.port_unification => Port::Unified(tls.server.clone()),
        _ => Port::Plain,
    };
    if let Some(ShardTls {
        server,
        secure_listen: Some(secure_listen),
    }) = &tls
    {
        let secure = match bind_listener(*secure_listen) {
            Ok(l) => l,
            Err(e) => {
                log::error!("shard {index}: cannot bind secureClientPort {secure_listen}: {e}");
                std::process::exit(1);
            }
        };
        log::info!("shard {index}: accepting TLS on {secure_listen}");
        glommio::spawn_local(accept_loop(
            shard.clone(),
            secure,
            Port::Secure(server.clone()),
        ))
        .detach();
    }
    log::info!("shard {index}: accepting on {listen}");
    accept_loop(shard, listener, plain_port).await;
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, port: Port) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let shard = shard.clone();
                let port = port.clone();
                glommio::spawn_local(async move { handle_connection(shard, stream, port).await })
                    .detach();
            }
            Err(e) => {
                log::warn!("shard {}: accept failed: {e}", shard.index);
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Hands the memory a burst of output freed back to the OS once the shard is quiet again.
///
/// mimalloc keeps the pages a thread freed in that thread's heap and purges them only when
/// the thread allocates or frees again; a shard that goes quiet after a burst (megabytes of
/// replies per connection) would keep them for good. A collection walks the heap, so it
/// runs only after a burst, once a whole check interval was quiet.
async fn release_memory_after_bursts(shard: Rc<Shard>) {
    let mut written_at_check = 0;
    let mut written_at_release = 0;
    // mimalloc purges what a collection freed only once its purge delay (1 s) has passed,
    // at a later call: a release is a collection at each of the next few checks.
    let mut passes_left = 0;
    loop {
        glommio::timer::sleep(MEMORY_RELEASE_CHECK_INTERVAL).await;
        let written = shard.written_bytes.get();
        let quiet = written - written_at_check < MEMORY_RELEASE_QUIET_BYTES;
        written_at_check = written;
        let burst_ended = quiet && written - written_at_release >= MEMORY_RELEASE_BURST_BYTES;
        if burst_ended {
            passes_left = MEMORY_RELEASE_PASSES;
        }
        if passes_left > 0 {
            passes_left -= 1;
            written_at_release = written;
            // SAFETY: mi_collect takes no pointers; it only frees and purges this thread's
            // unused pages.
            unsafe { libmimalloc_sys::mi_collect(true) };
            log::debug!("shard {}: released freed memory after a burst", shard.index);
        }
    }
}

/// The client port's listening socket: SO_REUSEPORT so that every shard accepts on it, and
/// SO_REUSEADDR so that a restart is not blocked by connections in TIME_WAIT.
fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the descriptor is a listening TCP socket we own and hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

async fn handle_connection(shard: Rc<Shard>, stream: TcpStream, port: Port) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    if !shard
        .stats
        .admit_ip(peer.ip(), shard.config.max_client_cnxns)
    {
        log::warn!(
            "Too many connections from {} - max is {}",
            peer.ip(),
            shard.config.max_client_cnxns
        );
        return;
    }
    let tls = match port {
        Port::Plain => None,
        Port::Secure(tls) => Some(tls),
        Port::Unified(tls) => match starts_tls(&stream, peer).await {
            Some(true) => Some(tls),
            Some(false) => None,
            None => {
                shard.stats.release_ip(peer.ip());
                return;
            }
        },
    };
    let Some(tls) = tls else {
        let fd = stream.as_raw_fd();
        let auth = vec![acl::ip_id(&peer.ip())];
        return serve_connection::<_, false>(shard, stream, peer, fd, auth).await;
    };
    let fd = stream.as_raw_fd();
    match tls_handshake(&tls, stream, peer).await {
        Some((stream, x509)) => {
            let mut auth = vec![acl::ip_id(&peer.ip())];
            auth.extend(x509);
            serve_connection::<_, true>(shard, stream, peer, fd, auth).await
        }
        None => {
            // As ZooKeeper: a failed handshake counts as a failed authentication.
            shard.auth_failed.set(shard.auth_failed.get() + 1);
            shard.stats.release_ip(peer.ip());
        }
    }
}

/// `client.portUnification`: whether the connection's first byte starts a TLS handshake
/// record (ZooKeeper's DualModeSslHandler). None: the client closed, or sent nothing within
/// the sessionless-connection timeout.
async fn starts_tls(stream: &TcpStream, peer: SocketAddr) -> Option<bool> {
    let mut first = [0u8; 1];
    match glommio::timer::timeout(SESSIONLESS_CONNECTION_TIMEOUT, async {
        Ok(stream.peek(&mut first).await)
    })
    .await
    {
        Ok(Ok(1)) => Some(first[0] == crate::tls::TLS_HANDSHAKE_RECORD_TYPE),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            log::debug!("read from {peer} failed: {e}");
            None
        }
        Err(_) => {
            log::info!(
                "Closing connection from {peer}: nothing sent in {SESSIONLESS_CONNECTION_TIMEOUT:?}"
            );
            None
        }
    }
}

/// The TLS handshake, within `ssl.handshakeDetectionTimeoutMillis`. A handshake that fails
/// or stalls is logged once and the connection dropped (nothing else is affected). Some:
/// the stream and the `x509` (and `super`) ids of the client certificate.
async fn tls_handshake(
    tls: &TlsServer,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<(futures_rustls::server::TlsStream<TcpStream>, Vec<Id>)> {
    let _outstanding = crate::tls::HandshakeGuard::start();
    let accepted = glommio::timer::timeout(tls.handshake_timeout, async {
        Ok(tls.acceptor.accept(stream).await)
    })
    .await;
    match accepted {
        Ok(Ok(stream)) => match tls.x509_ids(stream.get_ref().1) {
            Ok(ids) => Some((stream, ids)),
            Err(e) => {
                log::error!("Authentication failed for a TLS connection from {peer}: {e}");
                None
            }
        },
        Ok(Err(e)) => {
            log::warn!("Unsuccessful TLS handshake with {peer}: {e}");
            None
        }
        Err(_) => {
            log::warn!(
                "Unsuccessful TLS handshake with {peer}: not completed in {:?}",
                tls.handshake_timeout
            );
            None
        }
    }
}

/// Serves one admitted connection (plaintext or TLS: `stream` is its byte stream) until it
/// closes. `fd` is its socket; `auth` the ids it starts with. `FLUSH`: the stream buffers
/// (TLS records a write left in rustls when the socket was full), so every write is
/// followed by a flush; a plaintext `TcpStream` writes through and needs none.
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + 'static, const FLUSH: bool>(
    shard: Rc<Shard>,
    stream: S,
    peer: SocketAddr,
    fd: i32,
    auth: Vec<Id>,
) {
    let id = shard.next_conn.get();
    shard.next_conn.set(id + 1);
    let conn = Rc::new(Conn {
        id,
        peer,
        established: Instant::now(),
        session_id: Cell::new(0),
        timeout_ms: Cell::new(0),
        auth: RefCell::new(Arc::new(auth)),
        sasl: RefCell::new(None),
        out: RefCell::new(BytesMut::with_capacity(4096)),
        in_flight_bytes: Cell::new(0),
        shard_unsent: shard.unsent_total.clone(),
        writer_wake: Notify::new(),
        drained: Notify::new(),
        queue: RefCell::new(VecDeque::new()),
        connect_result: RefCell::new(None),
        connect_wake: Notify::new(),
        closing: Cell::new(false),
        lagging: Cell::new(false),
        fd,
        stats: ConnStats::default(),
    });
    shard.conns.borrow_mut().insert(id, conn.clone());
    // As ZooKeeper's sessionless-connection timeout: a connection that has not completed its
    // handshake in time is closed.
    {
        // Weak: a connection that is gone is freed at once, not when this timer ends.
        let conn = Rc::downgrade(&conn);
        glommio::spawn_local(async move {
            glommio::timer::sleep(SESSIONLESS_CONNECTION_TIMEOUT).await;
            let Some(conn) = conn.upgrade() else {
                return;
            };
            if conn.session_id.get() == 0 && !conn.closing.get() {
                log::info!(
                    "Closing connection from {}: no session after {:?}",
                    conn.peer,
                    SESSIONLESS_CONNECTION_TIMEOUT
                );
                conn.close();
            }
        })
        .detach();
    }
    let (reader, writer) = futures_lite::io::split(stream);
    let writer_task =
        glommio::spawn_local(write_loop::<_, FLUSH>(conn.clone(), writer, shard.clone()));
    if let Err(reason) = read_loop(&shard, &conn, reader).await {
        log::info!("Closing connection from {peer}: {reason}");
    }
    conn.close();
    // A client that does not read would keep the writer (and its permits) forever.
    let flushed = futures_lite::future::or(
        async {
            writer_task.await;
            true
        },
        async {
            glommio::timer::sleep(CLOSING_FLUSH_TIMEOUT).await;
            false
        },
    )
    .await;
    if !flushed {
        log::info!(
            "Dropping connection from {peer}: {} bytes not read by the client in {:?}",
            conn.unsent_bytes(),
            CLOSING_FLUSH_TIMEOUT
        );
    }
    shard.remove_conn(&conn);
    let session_id = conn.session_id.get();
    if session_id != 0 {
        shard
            .send_to_ordering(ToOrdering::Disconnected {
                origin: (shard.index, id),
                session_id,
            })
            .await;
    }
}

async fn write_loop<W: AsyncWrite + Unpin, const FLUSH: bool>(
    conn: Rc<Conn>,
    mut writer: futures_lite::io::WriteHalf<W>,
    shard: Rc<Shard>,
) {
    loop {
        let chunk: Bytes = conn.out.borrow_mut().split().freeze();
        if !chunk.is_empty() {
            conn.in_flight_bytes.set(chunk.len());
            let result = match writer.write_all(&chunk).await {
                Ok(()) if FLUSH => writer.flush().await,
                result => result,
            };
            conn.in_flight_bytes.set(0);
            shard.take_unsent(chunk.len());
            shard
                .written_bytes
                .set(shard.written_bytes.get() + chunk.len() as u64);
            drop(chunk);
            // After a burst, `out` keeps the rest of the burst's buffer (split leaves its
            // spare capacity): an idle connection would hold megabytes. Start small again.
            {
                let mut out = conn.out.borrow_mut();
                if out.is_empty() && out.capacity() > OUT_IDLE_CAPACITY_MAX_BYTES {
                    *out = BytesMut::new();
                }
            }
            conn.drained.notify();
            if let Err(e) = result {
                log::debug!("write to {} failed: {e}", conn.peer);
                conn.closing.set(true);
            }
            continue;
        }
        if conn.closing.get() {
            let _ = writer.flush().await;
            // Wakes the reader's pending read too.
            // SAFETY: the fd belongs to the stream whose halves are alive in this task and
            // the reader; shutdown does not close the descriptor.
            unsafe {
                libc::shutdown(conn.fd, libc::SHUT_RDWR);
            }
            return;
        }
        conn.writer_wake.wait().await;
    }
}

/// A request frame's body: what follows the 8-byte request header (xid, type).
fn request_body(frame: &Bytes) -> Bytes {
    if frame.len() >= 8 {
        frame.slice(8..)
    } else {
        Bytes::new()
    }
}

async fn read_exact_frame<R: AsyncRead + Unpin>(
    reader: &mut futures_lite::io::ReadHalf<R>,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
    scratch: &mut [u8],
) -> Result<Option<Bytes>, String> {
    loop {
        match decoder.decode(buf) {
            Ok(Some(frame)) => return Ok(Some(frame)),
            Ok(None) => {}
            Err(e) => return Err(format!("bad frame: {e}")),
        }
        let n = reader
            .read(scratch)
            .await
            .map_err(|e| format!("read error: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&scratch[..n]);
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    mut reader: futures_lite::io::ReadHalf<R>,
) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut scratch = vec![0u8; 64 * 1024];
    // As ZooKeeper: a frame longer than jute.maxbuffer closes the connection.
    let mut decoder = FrameDecoder::new(shard.config.jute_max_buffer);

    // The first bytes are either a four-letter word or the connect request's frame.
    while buf.len() < 4 {
        let n = reader.read(&mut scratch).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&scratch[..n]);
    }
    if let Some(word) = crate::admin_glue::parse_four_letter(&buf[..4]) {
        // As ZooKeeper 3.8: an allowed `stmk` is followed by the new mask (8 bytes); without
        // them the connection closes unanswered.
        if word == "stmk" && crate::admin::is_enabled(word, &shard.config) {
            let wait = crate::admin_glue::STMK_MASK_WAIT;
            let read = glommio::timer::timeout(wait, async {
                while buf.len() < 12 {
                    let n = reader.read(&mut scratch).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&scratch[..n]);
                }
                Ok(())
            })
            .await;
            let mask = read.ok().and(crate::admin_glue::stmk_mask(&buf[4..]));
            let Some(mask) = mask else {
                return Err("stmk without its 8-byte trace mask: closing unanswered".into());
            };
            crate::admin_glue::set_trace_mask(mask);
        }
        let text = crate::admin_glue::four_letter(shard, word).await;
        conn.push_out(|out| out.extend_from_slice(text.as_bytes()));
        return Ok(());
    }
    if !shard.serving.get() {
        return Err("refusing a session: this server is not currently serving requests".into());
    }
    let Some(frame) = read_exact_frame(&mut reader, &mut buf, &mut decoder, &mut scratch).await?
    else {
        return Ok(());
    };
    let connect =
        decode_connect_request(&frame).map_err(|e| format!("bad connect request: {e}"))?;
    // What the client saw may come from another shard that is ahead of this one; what was
    // released counts (reads here wait until this shard has applied it).
    let last_zxid = shard.last_zxid().max(SharedStats::released_zxid());
    if connect.last_zxid_seen > last_zxid {
        return Err(format!(
            "refusing session request: client has seen zxid 0x{:x}, our last zxid is 0x{:x}",
            connect.last_zxid_seen, last_zxid
        ));
    }
    let config = &shard.config;
    let timeout_ms = connect.timeout.clamp(
        config.min_session_timeout_ms as i32,
        config.max_session_timeout_ms as i32,
    );
    shard
        .send_to_ordering(ToOrdering::Connect(ConnectAttempt {
            origin: (shard.index, conn.id),
            session_id: connect.session_id,
            passwd: connect.passwd.clone(),
            timeout_ms,
        }))
        .await;
    let outcome = loop {
        if let Some(outcome) = conn.connect_result.borrow_mut().take() {
            break outcome;
        }
        if conn.closing.get() {
            return Ok(());
        }
        conn.connect_wake.wait().await;
    };
    let read_only = false;
    // ZooKeeper leaves readOnly out of the response when the client's request had none.
    let encode_response = if connect.read_only.is_some() {
        encode_connect_response
    } else {
        encode_connect_response_without_read_only
    };
    match outcome {
        Action::ConnectAccepted {
            session_id,
            passwd,
            timeout_ms,
        } => {
            conn.session_id.set(session_id);
            conn.timeout_ms.set(timeout_ms);
            conn.push_out(|out| {
                encode_response(
                    out,
                    &ConnectResponse {
                        protocol_version: 0,
                        timeout: timeout_ms,
                        session_id,
                        passwd: Bytes::copy_from_slice(&passwd),
                        read_only,
                    },
                )
            });
        }
        _ => {
            conn.push_out(|out| {
                encode_response(
                    out,
                    &ConnectResponse {
                        protocol_version: 0,
                        timeout: 0,
                        session_id: 0,
                        passwd: Bytes::from_static(&[0u8; 16]),
                        read_only,
                    },
                )
            });
            return Err(format!(
                "session 0x{:x} is invalid or expired",
                connect.session_id
            ));
        }
    }

    let mut frames_this_turn = 0;
    let mut turn_started = Instant::now();
    while !conn.closing.get() {
        // Bounded output: a client that does not read its replies stops being read (its
        // requests wait in its socket) until the writer gets its output out.
        while conn.over_output_bound(&shard.output_bound) {
            if conn.closing.get() {
                return Ok(());
            }
            conn.drained.wait().await;
            frames_this_turn = 0;
            turn_started = Instant::now();
        }
        // A burst of frames (one socket read can hold thousands, and a read of a socket
        // that has data returns without yielding) must not hold the shard's executor.
        frames_this_turn += 1;
        if frames_this_turn >= FRAMES_PER_TURN || turn_started.elapsed() >= TURN_TIME_BUDGET {
            // Not yield_now: a task that is always runnable keeps glommio from polling for
            // I/O until its preempt timer (100 ms) fires, so other connections' requests
            // would wait that long. A timer is only seen expired at the next poll, when
            // every other connection's completed reads have woken their tasks too.
            glommio::timer::sleep(TURN_PAUSE).await;
            frames_this_turn = 0;
            turn_started = Instant::now();
        } else {
            glommio::yield_if_needed().await;
        }
        let Some(frame) =
            read_exact_frame(&mut reader, &mut buf, &mut decoder, &mut scratch).await?
        else {
            return Ok(());
        };
        match decode_request_frame(&frame) {
            Ok((header, request)) => {
                shard
                    .on_request(conn, header, request, request_body(&frame))
                    .await
            }
            // As ZooKeeper: an unknown opcode gets Unimplemented, then the connection closes.
            Err(DecodeError::UnknownOpcode { xid, op }) => {
                return Err(shard.reject_request(
                    conn,
                    xid,
                    ErrorCode::Unimplemented,
                    &format!("unknown opcode {op}"),
                ));
            }
            // A readable header with a body that does not decode: ZooKeeper answers
            // MarshallingError and keeps the connection.
            Err(e) => match decode_request_header(&frame) {
                // ZooKeeper's processSasl fails reading the record: the connection closes.
                Ok(header) if header.op == OpCode::Sasl as i32 => {
                    return Err(format!("malformed sasl request (xid {}): {e}", header.xid));
                }
                Ok(header) if is_write_op(header.op) => {
                    log::warn!(
                        "Malformed request (xid {}) from {}: {e}",
                        header.xid,
                        conn.peer
                    );
                    shard
                        .on_undecodable_write(conn, header, request_body(&frame))
                        .await;
                }
                Ok(header) => {
                    log::warn!(
                        "Malformed request (xid {}) from {}: {e}",
                        header.xid,
                        conn.peer
                    );
                    conn.send_reply(
                        &ReplyHeader {
                            xid: header.xid,
                            zxid: shard.last_zxid(),
                            err: ErrorCode::MarshallingError.code(),
                        },
                        &Response::Empty,
                    );
                }
                Err(_) => return Err(format!("malformed request: {e}")),
            },
        }
    }
    Ok(())
}
