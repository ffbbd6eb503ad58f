//! The ordering core: the one place that orders writes.
//!
//! It owns the authoritative (tip) tree and the session table, assigns zxids, validates
//! and applies writes in arrival order, and sends each batch through
//! propose -> persisted -> committed: the batch's txns go to the log task (`log_stage`, on
//! this executor: one O_DIRECT write and one fdatasync per group of batches), the batch
//! itself to the commit releaser, which hands it to every shard once it is committed: for a
//! standalone server as soon as the log task reports it durable (`Input::Persisted`).
//!
//! Invariant: `last_zxid` only grows, by exactly one per txn.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::channels::shared_channel::{SharedReceiver, SharedSender};

use super::log_stage::LogQueue;

use super::messages::*;
use crate::config::Config;
use crate::net::notify::Notify;
use crate::proto::{ErrorCode, Id, OpCode, Request, Response};
use crate::session::SessionTable;
use crate::tree::{DataTree, TxnContext, TxnHeader, WriteOutcome};

/// At most this many inputs are turned into one commit batch.
pub(crate) const BATCH_INPUTS_MAX: usize = 4096;

pub(crate) enum Input {
    External(ToOrdering),
    Tick,
    ContainerCheck,
    /// The log task made everything up to this zxid durable.
    Persisted(i64),
    /// From a learner's link (while leading).
    Learner(super::leader::LearnerEvent),
    /// From the leader's link (while following).
    Leader(super::follower::LeaderEvent),
}

/// The ordering task's inputs, filled by the tasks around it on the same executor (the
/// shards' channel readers, the timers, the log task).
#[derive(Default)]
pub(crate) struct Inbox {
    queue: RefCell<VecDeque<Input>>,
    notify: Notify,
}

impl Inbox {
    pub(crate) fn push(&self, input: Input) {
        self.queue.borrow_mut().push_back(input);
        self.notify.notify();
    }

    /// Drops everything waiting (what clients sent before a new term of service).
    pub(crate) fn clear(&self) {
        self.queue.borrow_mut().clear();
    }

    /// Up to `max` inputs, oldest first; waits while there are none.
    pub(crate) async fn take(&self, max: usize) -> Vec<Input> {
        loop {
            {
                let mut q = self.queue.borrow_mut();
                if !q.is_empty() {
                    let n = q.len().min(max);
                    return q.drain(..n).collect();
                }
            }
            self.notify.wait().await;
        }
    }
}

/// One entry of the commit releaser's queue.
enum Release {
    /// A batch, released once everything up to `zxid` is committed.
    Batch { zxid: i64, batch: Arc<CommitBatch> },
    /// Tell every shard to close its connections (the server stops serving).
    Reset,
}

/// Hands commit batches to the shards, in zxid order, once they are committed. A task of
/// its own on the ordering executor, so that a shard whose channel is full holds up
/// neither the ordering task nor the next group commit.
///
/// Invariant: `released_upto` never decreases; batches leave in the order they were
/// pushed, each only when `released_upto >= zxid`.
#[derive(Default)]
pub(crate) struct Releaser {
    queue: RefCell<VecDeque<Release>>,
    released_upto: std::cell::Cell<i64>,
    notify: Notify,
}

impl Releaser {
    pub(crate) fn push(&self, zxid: i64, batch: Arc<CommitBatch>) {
        self.queue
            .borrow_mut()
            .push_back(Release::Batch { zxid, batch });
        self.notify.notify();
    }

    /// Everything up to `zxid` is committed.
    pub(crate) fn release_upto(&self, zxid: i64) {
        if zxid > self.released_upto.get() {
            self.released_upto.set(zxid);
            self.notify.notify();
        }
    }

    /// Drops every batch not released yet and has the shards close their connections;
    /// the next term starts releasing from `zxid`.
    pub(crate) fn reset(&self, zxid: i64) {
        let mut queue = self.queue.borrow_mut();
        queue.clear();
        queue.push_back(Release::Reset);
        super::SharedStats::reset_released_zxid();
        self.released_upto.set(zxid);
        self.notify.notify();
    }

    fn next(&self) -> Option<Release> {
        let mut queue = self.queue.borrow_mut();
        match queue.front() {
            Some(Release::Reset) => queue.pop_front(),
            Some(Release::Batch { zxid, .. }) if *zxid <= self.released_upto.get() => {
                queue.pop_front()
            }
            _ => None,
        }
    }

    /// Runs until the process ends.
    pub(crate) async fn run(self: Rc<Self>, to_shards: Vec<SharedSender<ToShard>>) {
        let mut shards = Vec::with_capacity(to_shards.len());
        for s in to_shards {
            shards.push(s.connect().await);
        }
        loop {
            let Some(release) = self.next() else {
                self.notify.wait().await;
                continue;
            };
            // Published before any shard has the batch: a shard that gets a read while its
            // applied version is below this waits for it (another shard may answer the
            // write first), so no read sees an older version than an answered write.
            if let Release::Batch { batch, .. } = &release {
                if let Some(tree) = &batch.tree {
                    super::SharedStats::publish_released_zxid(tree.last_zxid());
                }
            }
            for shard in &shards {
                let message = match &release {
                    Release::Batch { batch, .. } => ToShard::Commit(batch.clone()),
                    Release::Reset => ToShard::Reset,
                };
                if shard.send(message).await.is_err() {
                    log::error!("a shard's commit channel is closed");
                }
            }
            super::SharedStats::mark_sent();
        }
    }
}

pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Which request a txn comes from: the client's xid and the request's opcode (they go into
/// the txn's [`TxnHeader`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TxnMeta {
    pub cxid: i32,
    pub op: i32,
}

/// What this server is in the current term.
pub(crate) enum Role {
    Standalone,
    Leader(Box<super::leader::Leading>),
    Follower(Box<super::follower::Following>),
}

pub(crate) struct Ordering {
    pub(crate) tree: DataTree,
    pub(crate) sessions: SessionTable,
    pub(crate) role: Role,
    /// The epoch files' values at the start of the term (ensembles only).
    pub(crate) accepted_epoch: i64,
    pub(crate) current_epoch: i64,
    min_session_timeout_ms: i32,
    /// `enforceQuota`, for the writes this server decides.
    enforce_quota: bool,
    sasl_acl: bool,
    started: Instant,
    /// The clocks, read once per round of inputs (a clock read is ~100 ns on a VM, as much
    /// as the rest of ordering a setData): `now_ms` since `started` for session timeouts,
    /// `wall_ms` for the txns' time (every txn of a round gets the same millisecond).
    now_ms: u64,
    wall_ms: i64,
    stats: Arc<super::SharedStats>,
    /// For each write (incl. sync, closeSession) of the batch being built, in order: whether
    /// its reply item carries its own tree version. Only when the connection's next write
    /// in the batch has a read queued before it (`WriteRequest::read_before`); every other
    /// read behind a write is served from the batch's version.
    own_version: VecDeque<bool>,
    /// Scratch for the pre-scan: each connection's latest write index in the batch.
    last_write: std::collections::HashMap<ConnRef, usize>,
    /// Txns since the last snapshot was requested, and the randomised interval.
    txns_since_snapshot: u64,
    snapshot_interval: u64,
    /// (zxid, tree digest after it) of each txn of the round being built, in order: a
    /// leader's proposals carry them (ZooKeeper's TxnDigest).
    round_digests: Vec<(i64, i64)>,
    /// Ensembles: the txns this server applied last (a follower adds each as it commits;
    /// a leader's are added from its committed log when its term ends), carried into the
    /// next term, where a leader syncs learners from them by DIFF.
    pub(crate) recent: super::persistence::RecentLog,
}

impl Ordering {
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The server's shared counters (mntr).
    pub(crate) fn stats(&self) -> &super::SharedStats {
        &self.stats
    }

    /// The session clock's reading for an instant a shard took (a request's arrival),
    /// rounded up: a deadline counted from it is never before the request's timeout.
    fn ms_at(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.started).as_nanos();
        nanos.div_ceil(1_000_000) as u64
    }

    /// Reads the clocks for the round of inputs about to be handled.
    pub(crate) fn start_round(&mut self) {
        self.now_ms = self.started.elapsed().as_millis() as u64;
        self.wall_ms = wall_ms();
    }

    fn next_zxid(&self) -> i64 {
        self.tree.last_zxid() + 1
    }

    /// The sessions that are not closing (a closing one's closeSession txn is made), as
    /// (id, timeout ms), in id order.
    fn live_sessions(&self) -> Vec<(i64, i32)> {
        let mut list: Vec<(i64, i32)> = self
            .sessions
            .iter()
            .filter(|s| !s.closing)
            .map(|s| (s.id, s.timeout_ms))
            .collect();
        list.sort_unstable();
        list
    }

    fn publish_session_stats(&self) {
        let list = self.live_sessions();
        if let Ok(mut guard) = self.stats.sessions.lock() {
            *guard = list;
        }
    }

    /// Turns one input into zero or more commit items (and txns for the log).
    fn handle(
        &mut self,
        input: Input,
        items: &mut Vec<CommitItem>,
        log: &mut Vec<(TxnHeader, crate::tree::Txn)>,
    ) {
        match input {
            Input::External(ToOrdering::Connect(c)) => self.on_connect(c, items, log),
            Input::External(ToOrdering::Write(w)) => self.on_write(*w, items, log),
            Input::External(ToOrdering::Touch(touches)) => {
                for (id, at) in touches {
                    let at_ms = self.ms_at(at);
                    self.sessions.touch(id, at_ms);
                }
            }
            Input::External(ToOrdering::Disconnected { origin, session_id }) => {
                if self.sessions.get(session_id).and_then(|s| s.owner) == Some(origin) {
                    self.sessions.set_owner(session_id, None);
                }
            }
            Input::Tick => {
                let expired = self.sessions.take_expired(self.now_ms());
                for id in expired {
                    log::info!("Expiring session 0x{id:x}");
                    let owner = self.sessions.get(id).and_then(|s| s.owner);
                    self.close_session(id, 0, owner, Action::Close, items, log);
                }
            }
            // Handled by the term's code (leader.rs, follower.rs) before a round.
            Input::Persisted(_) | Input::Learner(_) | Input::Leader(_) => {}
            Input::ContainerCheck => {
                let paths = self.tree.removable_containers_and_ttls(self.wall_ms);
                let auth = [Id {
                    scheme: "super".into(),
                    id: String::new(),
                }];
                for path in paths {
                    let zxid = self.next_zxid();
                    let time_ms = self.wall_ms;
                    let ctx = TxnContext {
                        session_id: 0,
                        auth: &auth,
                        zxid,
                        time_ms,
                        enforce_quota: self.enforce_quota,
                        sasl_acl: self.sasl_acl,
                    };
                    let out = self
                        .tree
                        .process_write(&Request::DeleteContainer(path), &ctx);
                    let meta = TxnMeta {
                        cxid: 0,
                        op: OpCode::DeleteContainer as i32,
                    };
                    self.push_txn(meta, 0, zxid, time_ms, out, None, None, items, log);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_txn(
        &mut self,
        meta: TxnMeta,
        session_id: i64,
        zxid: i64,
        time_ms: i64,
        out: WriteOutcome,
        target: Option<ConnRef>,
        action: Option<Action>,
        items: &mut Vec<CommitItem>,
        log: &mut Vec<(TxnHeader, crate::tree::Txn)>,
    ) {
        debug_assert_eq!(
            self.tree.last_zxid(),
            zxid,
            "every processed write consumes its zxid"
        );
        if let Role::Leader(_) = self.role {
            // For the proposals (only a leader sends any; cleared every round).
            self.round_digests.push((zxid, self.tree.digest()));
        }
        self.stats.note_digest(zxid, self.tree.digest());
        log.push((
            TxnHeader {
                session_id,
                zxid,
                time_ms,
                cxid: meta.cxid,
                op: meta.op,
            },
            out.txn,
        ));
        items.push(CommitItem {
            zxid,
            tree: None,
            triggers: out.triggers,
            trigger_acls: out.trigger_acls,
            target,
            action: action.unwrap_or(Action::None),
        });
    }

    fn on_connect(
        &mut self,
        c: ConnectAttempt,
        items: &mut Vec<CommitItem>,
        log: &mut Vec<(TxnHeader, crate::tree::Txn)>,
    ) {
        let now = self.now_ms();
        if c.session_id == 0 {
            let id = self.sessions.next_id();
            let zxid = self.next_zxid();
            let time_ms = self.wall_ms;
            let ctx = TxnContext {
                session_id: id,
                auth: &[],
                zxid,
                time_ms,
                enforce_quota: self.enforce_quota,
                sasl_acl: self.sasl_acl,
            };
            let out = self.tree.create_session(&ctx, c.timeout_ms);
            self.sessions.add(id, c.timeout_ms, Some(c.origin), now);
            let passwd = self.sessions.password(id);
            log::info!(
                "Established session 0x{id:x} with negotiated timeout {} for {:?}",
                c.timeout_ms,
                c.origin
            );
            let meta = TxnMeta {
                cxid: 0,
                op: OpCode::CreateSession as i32,
            };
            self.push_txn(
                meta,
                id,
                zxid,
                time_ms,
                out,
                Some(c.origin),
                Some(Action::ConnectAccepted {
                    session_id: id,
                    passwd,
                    timeout_ms: c.timeout_ms,
                }),
                items,
                log,
            );
            self.publish_session_stats();
            return;
        }
        let valid = self.sessions.is_live(c.session_id)
            && c.passwd.as_ref() == self.sessions.password(c.session_id).as_slice();
        if !valid {
            log::info!(
                "Invalid session 0x{:x} for client {:?}, probably expired",
                c.session_id,
                c.origin
            );
            items.push(CommitItem {
                zxid: self.tree.last_zxid(),
                tree: None,
                triggers: Vec::new(),
                trigger_acls: Vec::new(),
                target: Some(c.origin),
                action: Action::ConnectRejected,
            });
            return;
        }
        self.sessions.touch(c.session_id, now);
        if let Role::Leader(leading) = &mut self.role {
            // The session moves here from a learner: its later requests there fail with
            // SessionMoved.
            leading.remote_owner.remove(&c.session_id);
        }
        let previous = self.sessions.set_owner(c.session_id, Some(c.origin));
        if let Some(old) = previous.filter(|old| *old != c.origin) {
            items.push(CommitItem {
                zxid: self.tree.last_zxid(),
                tree: None,
                triggers: Vec::new(),
                trigger_acls: Vec::new(),
                target: Some(old),
                action: Action::Close,
            });
        }
        items.push(CommitItem {
            zxid: self.tree.last_zxid(),
            tree: None,
            triggers: Vec::new(),
            trigger_acls: Vec::new(),
            target: Some(c.origin),
            action: Action::ConnectAccepted {
                session_id: c.session_id,
                passwd: self.sessions.password(c.session_id),
                timeout_ms: c.timeout_ms,
            },
        });
    }

    /// closeSession (or expiry) as a txn.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn close_session(
        &mut self,
        id: i64,
        cxid: i32,
        target: Option<ConnRef>,
        action: Action,
        items: &mut Vec<CommitItem>,
        log: &mut Vec<(TxnHeader, crate::tree::Txn)>,
    ) {
        let zxid = self.next_zxid();
        let time_ms = self.wall_ms;
        let ctx = TxnContext {
            session_id: id,
            auth: &[],
            zxid,
            time_ms,
            enforce_quota: self.enforce_quota,
            sasl_acl: self.sasl_acl,
        };
        let out = self.tree.close_session(&ctx);
        self.sessions.remove(id);
        let meta = TxnMeta {
            cxid,
            op: OpCode::CloseSession as i32,
        };
        self.push_txn(
            meta,
            id,
            zxid,
            time_ms,
            out,
            target,
            Some(action),
            items,
            log,
        );
        self.publish_session_stats();
    }

    fn reply_now(
        &self,
        w: &WriteRequest,
        reply: Result<Response, ErrorCode>,
        items: &mut Vec<CommitItem>,
    ) {
        items.push(CommitItem {
            zxid: self.tree.last_zxid(),
            tree: None,
            triggers: Vec::new(),
            trigger_acls: Vec::new(),
            target: Some(w.origin),
            action: Action::Reply {
                xid: w.xid,
                reply,
                header_err: 0,
                close_after: false,
            },
        });
    }

    fn on_write(
        &mut self,
        w: WriteRequest,
        items: &mut Vec<CommitItem>,
        log: &mut Vec<(TxnHeader, crate::tree::Txn)>,
    ) {
        // Not pre-scanned (cannot happen): a version of its own is always correct.
        let own_version = self.own_version.pop_front().unwrap_or(true);
        let before = items.len();
        self.order_write(w, items, log);
        // Reads queued between this write and the connection's next write in the batch must
        // see this version exactly: only then does the item carry its own.
        if own_version {
            debug_assert_eq!(items.len(), before + 1, "one reply item per write");
            if let Some(item) = items.last_mut() {
                item.tree = Some(Arc::new(self.tree.clone()));
            }
        }
    }

    fn order_write(
        &mut self,
        w: WriteRequest,
        items: &mut Vec<CommitItem>,
        log: &mut Vec<(TxnHeader, crate::tree::Txn)>,
    ) {
        let session = self.sessions.get(w.session_id);
        let live = session.is_some_and(|s| !s.closing);
        let owner = session.and_then(|s| s.owner);
        match &w.request {
            Some(Request::CloseSession) => {
                let action = Action::Reply {
                    xid: w.xid,
                    reply: Ok(Response::Empty),
                    header_err: 0,
                    close_after: true,
                };
                if live && self.sessions.mark_closing(w.session_id) {
                    log::info!(
                        "Closing session 0x{:x} at the client's request",
                        w.session_id
                    );
                    self.close_session(w.session_id, w.xid, Some(w.origin), action, items, log);
                } else {
                    items.push(CommitItem {
                        zxid: self.tree.last_zxid(),
                        tree: None,
                        triggers: Vec::new(),
                        trigger_acls: Vec::new(),
                        target: Some(w.origin),
                        action,
                    });
                }
            }
            _ if !live => self.reply_now(&w, Err(ErrorCode::SessionExpired), items),
            _ if owner != Some(w.origin) => self.reply_now(&w, Err(ErrorCode::SessionMoved), items),
            Some(Request::Sync(path)) => {
                let path = path.clone();
                self.reply_now(&w, Ok(Response::Sync(path)), items)
            }
            _ => {
                let now = self.now_ms();
                self.sessions.touch(w.session_id, now);
                let zxid = self.next_zxid();
                let time_ms = self.wall_ms;
                let ctx = TxnContext {
                    session_id: w.session_id,
                    auth: &w.auth,
                    zxid,
                    time_ms,
                    enforce_quota: self.enforce_quota,
                    sasl_acl: self.sasl_acl,
                };
                let out = match &w.request {
                    Some(request) => self.tree.process_write(request, &ctx),
                    None => self.tree.fail_write(&ctx, ErrorCode::MarshallingError),
                };
                let action = Action::Reply {
                    xid: w.xid,
                    reply: out.reply.clone(),
                    header_err: out.header_err,
                    close_after: false,
                };
                let meta = TxnMeta {
                    cxid: w.xid,
                    op: w.op,
                };
                self.push_txn(
                    meta,
                    w.session_id,
                    zxid,
                    time_ms,
                    out,
                    Some(w.origin),
                    Some(action),
                    items,
                    log,
                );
            }
        }
    }
}

/// The tasks around the ordering task that live as long as the process: the shards'
/// channel readers and the timers feed `inbox`; the releaser feeds the shards.
pub(crate) struct Wiring {
    pub inbox: Rc<Inbox>,
    pub releaser: Rc<Releaser>,
}

/// Spawns the long-lived tasks on the current (ordering) executor.
pub(crate) fn spawn_wiring(
    config: &Config,
    from_shards: Vec<SharedReceiver<ToOrdering>>,
    to_shards: Vec<SharedSender<ToShard>>,
) -> Wiring {
    let inbox = Rc::new(Inbox::default());
    for receiver in from_shards {
        let inbox = inbox.clone();
        glommio::spawn_local(async move {
            let receiver = receiver.connect().await;
            while let Some(message) = receiver.recv().await {
                inbox.push(Input::External(message));
            }
        })
        .detach();
    }
    // Ticks at every multiple of tickTime on the session clock (when the expiry buckets fall
    // due) and every tickTime/2 in between (the leader's pings), at absolute times, so that
    // neither the check's phase nor its drift adds to a session's expiry.
    {
        let inbox = inbox.clone();
        let tick_ms = config.tick_time_ms as u64;
        let step_ms = (tick_ms / 2).clamp(1, 1000);
        let clock = super::process_epoch();
        glommio::spawn_local(async move {
            loop {
                let now = clock.elapsed();
                let at = crate::session::next_check_ms(now.as_millis() as u64, tick_ms, step_ms);
                glommio::timer::sleep(Duration::from_millis(at).saturating_sub(now)).await;
                inbox.push(Input::Tick);
            }
        })
        .detach();
    }
    {
        let inbox = inbox.clone();
        let every = Duration::from_millis(config.container_check_interval_ms.max(1));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                inbox.push(Input::ContainerCheck);
            }
        })
        .detach();
    }
    let releaser = Rc::new(Releaser::default());
    glommio::spawn_local(releaser.clone().run(to_shards)).detach();
    Wiring { inbox, releaser }
}

impl Ordering {
    /// The ordering state for a term of service starting from `recovered`.
    pub(crate) fn new(
        config: &Config,
        stats: Arc<super::SharedStats>,
        recovered: super::persistence::Recovered,
    ) -> Ordering {
        let server_id = config.my_id.unwrap_or(0);
        let mut sessions =
            SessionTable::new(config.tick_time_ms as u64, server_id, wall_ms() as u64);
        // The session clock is the process's (the expiry timer's tick boundaries are on it).
        let started = super::process_epoch();
        let now_ms = started.elapsed().as_millis() as u64;
        // Recovered sessions get a full timeout from now to reconnect, as in ZooKeeper.
        for (id, timeout_ms) in &recovered.sessions {
            sessions.add(*id, *timeout_ms, None, now_ms);
        }
        let ordering = Ordering {
            sessions,
            tree: recovered.tree,
            role: Role::Standalone,
            accepted_epoch: 0,
            current_epoch: 0,
            min_session_timeout_ms: config.min_session_timeout_ms as i32,
            enforce_quota: config.enforce_quota,
            sasl_acl: config.auth.sasl_acl_scheme,
            started,
            now_ms,
            wall_ms: 0,
            snapshot_interval: super::persistence::randomized_snapshot_interval(
                config.snap_count.max(2),
            ),
            txns_since_snapshot: 0,
            own_version: VecDeque::new(),
            last_write: std::collections::HashMap::new(),
            stats,
            round_digests: Vec::new(),
            recent: super::persistence::RecentLog::new(recovered.recent_base, recovered.recent),
        };
        ordering.stats.last_zxid.store(
            ordering.tree.last_zxid(),
            std::sync::atomic::Ordering::Relaxed,
        );
        ordering.publish_session_stats();
        ordering
    }

    /// Orders one round of inputs into at most one commit batch: its txns go to the log,
    /// the batch to the releaser (released once committed).
    pub(crate) fn order_round(&mut self, inputs: Vec<Input>, log: &LogQueue, releaser: &Releaser) {
        let mut items = Vec::new();
        let mut txns = Vec::new();
        self.start_round();
        self.own_version.clear();
        self.last_write.clear();
        for input in &inputs {
            if let Input::External(ToOrdering::Write(w)) = input {
                let index = self.own_version.len();
                self.own_version.push_back(false);
                if let Some(previous) = self.last_write.insert(w.origin, index) {
                    if w.read_before {
                        self.own_version[previous] = true;
                    }
                }
            }
        }
        for input in inputs {
            match input {
                // Durability reports are handled by the caller's role.
                Input::Persisted(_) => {}
                input => self.handle(input, &mut items, &mut txns),
            }
        }
        self.finish_batch(items, txns, log, releaser);
    }

    /// Turns a round's items and txns into a commit batch: the txns go to the log (and,
    /// when leading, to the learners as proposals), the batch to the releaser.
    pub(crate) fn finish_batch(
        &mut self,
        items: Vec<CommitItem>,
        txns: Vec<(TxnHeader, crate::tree::Txn)>,
        log: &LogQueue,
        releaser: &Releaser,
    ) {
        let digests = std::mem::take(&mut self.round_digests);
        if items.is_empty() {
            debug_assert!(txns.is_empty(), "every txn has its commit item");
            return;
        }
        let last_zxid = self.tree.last_zxid();
        self.stats
            .last_zxid
            .store(last_zxid, std::sync::atomic::Ordering::Relaxed);
        let txn_count = txns.len() as u64;
        // Error txns move last_zxid too: any txn makes a new version.
        let tree = (!txns.is_empty()).then(|| Arc::new(self.tree.clone()));
        if let Role::Leader(leading) = &mut self.role {
            leading.propose(&txns, &digests, tree.clone());
        }
        log.push_txns(txns);
        releaser.push(last_zxid, Arc::new(CommitBatch { items, tree }));
        self.count_for_snapshot(txn_count, log);
    }

    /// Snapshots are taken of versions whose txns are all in the log before them.
    fn count_for_snapshot(&mut self, txn_count: u64, log: &LogQueue) {
        self.txns_since_snapshot += txn_count;
        if self.txns_since_snapshot >= self.snapshot_interval {
            self.txns_since_snapshot = 0;
            let mut sessions: Vec<(i64, i32)> =
                self.sessions.iter().map(|s| (s.id, s.timeout_ms)).collect();
            sessions.sort_unstable();
            log.push_snapshot(self.tree.clone(), sessions);
        }
    }

    /// A commit item that fires nothing and makes no txn.
    pub(crate) fn bare_item(&self, target: Option<ConnRef>, action: Action) -> CommitItem {
        CommitItem {
            zxid: self.tree.last_zxid(),
            tree: None,
            triggers: Vec::new(),
            trigger_acls: Vec::new(),
            target,
            action,
        }
    }

    pub(crate) fn config_min_session_timeout(&self) -> i32 {
        self.min_session_timeout_ms
    }

    /// A session a learner created for its client (the id is the learner's choice).
    pub(crate) fn create_remote_session(
        &mut self,
        id: i64,
        timeout_ms: i32,
        now_ms: u64,
        items: &mut Vec<CommitItem>,
        log: &mut Vec<(TxnHeader, crate::tree::Txn)>,
    ) {
        let zxid = self.next_zxid();
        let time_ms = self.wall_ms;
        let ctx = TxnContext {
            session_id: id,
            auth: &[],
            zxid,
            time_ms,
            enforce_quota: self.enforce_quota,
            sasl_acl: self.sasl_acl,
        };
        let out = self.tree.create_session(&ctx, timeout_ms);
        self.sessions.add(id, timeout_ms, None, now_ms);
        log::info!(
            "Established session 0x{id:x} with negotiated timeout {timeout_ms} on a learner"
        );
        let meta = TxnMeta {
            cxid: 0,
            op: OpCode::CreateSession as i32,
        };
        self.push_txn(meta, id, zxid, time_ms, out, None, None, items, log);
        self.publish_session_stats();
    }

    /// A learner's write, validated and applied like a local one (`Err(code)`: it failed
    /// before the tree, e.g. SessionExpired, SessionMoved, or its body did not decode), as a
    /// txn either way: its reply travels as the committed txn.
    pub(crate) fn process_remote_write(
        &mut self,
        session_id: i64,
        meta: TxnMeta,
        request: Result<&Request, ErrorCode>,
        auth: &[Id],
        items: &mut Vec<CommitItem>,
        log: &mut Vec<(TxnHeader, crate::tree::Txn)>,
    ) {
        let zxid = self.next_zxid();
        let time_ms = self.wall_ms;
        let ctx = TxnContext {
            session_id,
            auth,
            zxid,
            time_ms,
            enforce_quota: self.enforce_quota,
            sasl_acl: self.sasl_acl,
        };
        let out = match request {
            Ok(request) => self.tree.process_write(request, &ctx),
            Err(code) => self.tree.fail_write(&ctx, code),
        };
        self.push_txn(meta, session_id, zxid, time_ms, out, None, None, items, log);
    }

    /// A new leader's history ends at `epoch << 32`: its first txn is `(epoch << 32) + 1`.
    pub(crate) fn start_epoch(&mut self, zxid: i64) {
        self.tree.start_epoch(zxid);
        self.stats
            .last_zxid
            .store(zxid, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hands the shards the version they start serving from.
    pub(crate) fn publish_initial(&self, releaser: &Releaser) {
        let zxid = self.tree.last_zxid();
        releaser.push(
            zxid,
            Arc::new(CommitBatch {
                items: Vec::new(),
                tree: Some(Arc::new(self.tree.clone())),
            }),
        );
        releaser.release_upto(zxid);
        self.publish_session_stats();
    }

    pub(crate) fn publish_quorum_stats(&self, stats: super::QuorumStats) {
        if let Ok(mut guard) = self.stats.quorum.lock() {
            *guard = stats;
        }
    }

    pub(crate) fn set_mode(&self, mode: super::Mode) {
        self.stats.set_mode(mode);
    }

    /// The leader this server follows or is (for the AdminServer's `leader`, `zabstate`).
    pub(crate) fn set_leader(&self, id: u64) {
        self.stats.set_leader(Some(id));
    }

    /// The state a SNAP sync left on disk, recovered.
    pub(crate) fn replace_state(&mut self, recovered: super::persistence::Recovered) {
        self.tree = recovered.tree;
        self.recent = super::persistence::RecentLog::new(recovered.recent_base, recovered.recent);
        let ids: Vec<i64> = self.sessions.iter().map(|s| s.id).collect();
        for id in ids {
            self.sessions.remove(id);
        }
        for (id, timeout_ms) in &recovered.sessions {
            self.sessions.add(*id, *timeout_ms, None, 0);
        }
        self.stats
            .last_zxid
            .store(self.tree.last_zxid(), std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn become_follower(
        &mut self,
        out: Rc<super::quorum::PeerOut>,
        me: u64,
        sync_limit: Duration,
    ) {
        // The wall clock, not this term's age: ids must not repeat across terms and
        // restarts while sessions outlive them (the top byte is the server id).
        let elapsed_ms = wall_ms();
        self.role = Role::Follower(Box::new(super::follower::Following::new(
            out,
            self.tree.last_zxid(),
            me,
            elapsed_ms,
            sync_limit,
        )));
    }

    /// What an ended term of an ensemble member leaves for the next one, in memory: the
    /// state recovery would read from the files now, without reading them (a failover
    /// with a large database must not wait for a reload). `durable`: the log's end, after
    /// the log task wrote everything queued ([`LogQueue::stop`]).
    ///
    /// A leader's tree already holds every txn it made (all of them logged now); a
    /// follower's holds the committed ones, and the proposals it logged after them are
    /// applied here, as ZooKeeper's `fastForwardDataBase` replays the log's tail onto the
    /// tree it keeps. Sessions closing have their closeSession txn in the tree. An Err
    /// (the tree does not end where the log does: a txn made but never queued) means the
    /// next term recovers from the files.
    pub(crate) fn into_recovered(
        mut self,
        durable: i64,
    ) -> Result<super::persistence::Recovered, String> {
        match std::mem::replace(&mut self.role, Role::Standalone) {
            Role::Leader(leading) => {
                for txn in leading.txns_after(self.recent.last())? {
                    self.recent.push(txn);
                }
                let last = self.tree.last_zxid();
                if crate::zab::counter_of(last) == 0 && last > durable {
                    // Established an epoch and made no txn in it (a txn would have
                    // counter 1 or more).
                    self.tree.undo_epoch_start(durable);
                }
            }
            Role::Follower(following) => {
                for (header, txn, _) in following.into_logged() {
                    if header.zxid > durable {
                        break;
                    }
                    let header = header.tree_header();
                    self.tree
                        .try_apply_txn(&header, &txn)
                        .map_err(|e| format!("a logged proposal does not apply: {e}"))?;
                    self.note_txn_applied(&header, &txn);
                    self.recent.push((header, txn, self.tree.digest()));
                }
            }
            Role::Standalone => {}
        }
        let last = self.tree.last_zxid();
        if last != durable || self.recent.last() != durable {
            return Err(format!(
                "the tree ends at 0x{last:x} and its recent txns at 0x{:x}, the log at \
                 0x{durable:x}",
                self.recent.last()
            ));
        }
        let sessions = self.live_sessions();
        let recent_base = self.recent.base();
        Ok(super::persistence::Recovered {
            tree: self.tree,
            sessions,
            recent: self.recent.into_vec(),
            recent_base,
        })
    }

    /// Keeps the session table in step with txns applied from the leader.
    pub(crate) fn note_txn_applied(&mut self, header: &TxnHeader, txn: &crate::tree::Txn) {
        match txn {
            crate::tree::Txn::CreateSession { timeout_ms } => {
                self.sessions
                    .add(header.session_id, *timeout_ms, None, self.now_ms);
            }
            crate::tree::Txn::CloseSession { .. } => {
                self.sessions.remove(header.session_id);
            }
            _ => {}
        }
        self.stats
            .last_zxid
            .store(self.tree.last_zxid(), std::sync::atomic::Ordering::Relaxed);
    }

    /// A follower's round of commits as one batch for the shards.
    pub(crate) fn push_follower_batch(
        &mut self,
        items: Vec<CommitItem>,
        releaser: &Releaser,
        log: &LogQueue,
    ) {
        if items.is_empty() {
            return;
        }
        let applied = items.iter().filter(|i| i.zxid > 0).count() as u64;
        let zxid = items.iter().map(|i| i.zxid).max().unwrap_or(0);
        releaser.push(
            zxid,
            Arc::new(CommitBatch {
                items,
                tree: Some(Arc::new(self.tree.clone())),
            }),
        );
        self.publish_session_stats();
        self.count_for_snapshot(applied, log);
    }
}

/// Starts the log task over `persistence` on this executor; it reports to `inbox`.
pub(crate) fn spawn_log_task(
    persistence: super::persistence::Persistence,
    queue: &LogQueue,
    inbox: &Rc<Inbox>,
) {
    queue.mark_started();
    let inbox = inbox.clone();
    glommio::spawn_local(super::log_stage::run(
        persistence,
        queue.clone(),
        Rc::new(move |upto| inbox.push(Input::Persisted(upto))),
    ))
    .detach();
}

/// Runs a standalone server's ordering core on the current glommio executor until the
/// process ends.
pub async fn run(
    config: Arc<Config>,
    stats: Arc<super::SharedStats>,
    recovered: super::persistence::Recovered,
    from_shards: Vec<SharedReceiver<ToOrdering>>,
    persistence: super::persistence::Persistence,
    to_shards: Vec<SharedSender<ToShard>>,
) {
    let wiring = spawn_wiring(&config, from_shards, to_shards);
    let mut ordering = Ordering::new(&config, stats, recovered);
    // Only an ensemble member syncs learners from its recent txns.
    ordering.recent = Default::default();
    let last_zxid = ordering.tree.last_zxid();
    // The log task shares this executor: handing it txns is a local queue push, and its
    // writes and syncs go through io_uring while ordering goes on.
    let log = LogQueue::new(last_zxid);
    spawn_log_task(persistence, &log, &wiring.inbox);
    // The shards start from the recovered version.
    wiring.releaser.push(
        last_zxid,
        Arc::new(CommitBatch {
            items: Vec::new(),
            tree: Some(Arc::new(ordering.tree.clone())),
        }),
    );
    wiring.releaser.release_upto(last_zxid);
    loop {
        let inputs = wiring.inbox.take(BATCH_INPUTS_MAX).await;
        // Standalone: a txn is committed once it is durable in the log.
        for input in &inputs {
            if let Input::Persisted(upto) = input {
                wiring.releaser.release_upto(*upto);
            }
        }
        ordering.order_round(inputs, &log, &wiring.releaser);
    }
}
