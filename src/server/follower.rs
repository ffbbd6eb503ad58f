//! Following a leader for a term: the handshake (FOLLOWERINFO, LEADERINFO, ACKEPOCH), the
//! sync (DIFF or SNAP, proposals and commits until NEWLEADER, UPTODATE), then the
//! broadcast: PROPOSAL -> log -> ACK, COMMIT -> apply -> commit batch for the shards, PING
//! answered with the sessions touched since the last one, client writes forwarded as
//! REQUEST, reconnects checked with REVALIDATE, sync answered on SYNC (ZAB-WIRE.md 3.4-3.10).
//!
//! Invariants: a proposal is acknowledged only once this server's log holds it (the ACK
//! comes from `Input::Persisted`); the NEWLEADER ACK is sent only after every proposal
//! received before it is durable and currentEpoch is written (ZOOKEEPER-4646/4785), and it
//! is the first packet after ACKEPOCH; a COMMIT must name the oldest pending proposal, or
//! the replica has diverged and the server stops.

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::messages::*;
use super::ordering::{Input, Ordering};
use super::quorum::{self, PeerOut};
use crate::proto::{ErrorCode, Id, OpCode, Request, Response};
use crate::tree::{Txn, TxnContext};
use crate::zab::txn::{decode_txn, TxnDigest, ZkTxnHeader, DIGEST_VERSION};
use crate::zab::wire::{self, packet, QuorumPacket};
use crate::zab::{epoch_of, make_zxid, ServerId};

const LEADER_DATA_MAX: usize = wire::DEFAULT_MAX_QUORUM_DATA_LEN;

/// An event from the leader's link, for the ordering task.
pub(crate) enum LeaderEvent {
    Packet(QuorumPacket),
    Closed(String),
}

/// A local client's write waiting for its txn to commit.
struct PendingWrite {
    origin: ConnRef,
    xid: i32,
    request: Option<Request>,
    auth: std::sync::Arc<Vec<Id>>,
}

/// The follower's state during a term (in the ordering core's `Role::Follower`).
pub(crate) struct Following {
    out: Rc<PeerOut>,
    /// Proposals logged or being logged, not committed yet, oldest first, with the
    /// leader's TxnDigest when it sent one.
    proposals: VecDeque<(ZkTxnHeader, Txn, Option<TxnDigest>)>,
    /// Proposals not acknowledged yet (zxids, oldest first): acknowledged once durable.
    unacked: VecDeque<i64>,
    /// The last committed zxid. Invariant: only grows.
    committed: i64,
    /// Writes of local clients by (session, cxid).
    pending: HashMap<(i64, i32), PendingWrite>,
    /// Local connects waiting for their createSession txn: session -> (origin, timeout).
    pending_connects: HashMap<i64, (ConnRef, i32)>,
    /// Local reconnects waiting for the leader's REVALIDATE answer.
    pending_revalidations: HashMap<i64, VecDeque<(ConnRef, i32)>>,
    /// Local syncs, in order: answered one per SYNC packet.
    pending_syncs: VecDeque<(ConnRef, i32, String)>,
    /// Which local connection holds each session.
    local_sessions: HashMap<i64, ConnRef>,
    /// Sessions touched since the last PING.
    touched: HashSet<i64>,
    last_heard: Instant,
    sync_limit: Duration,
    session_ids: crate::session::java::JavaSessionIds,
    /// An observer gets committed txns as INFORM and acknowledges nothing but the sync.
    observer: bool,
}

impl Following {
    pub(crate) fn new(
        out: Rc<PeerOut>,
        last_zxid: i64,
        me: ServerId,
        elapsed_ms: i64,
        sync_limit: Duration,
    ) -> Following {
        Following {
            out,
            proposals: VecDeque::new(),
            unacked: VecDeque::new(),
            committed: last_zxid,
            pending: HashMap::new(),
            pending_connects: HashMap::new(),
            pending_revalidations: HashMap::new(),
            pending_syncs: VecDeque::new(),
            local_sessions: HashMap::new(),
            touched: HashSet::new(),
            last_heard: Instant::now(),
            sync_limit,
            session_ids: crate::session::java::JavaSessionIds::new(me, elapsed_ms),
            observer: false,
        }
    }

    fn send(&self, packet: &QuorumPacket) {
        self.out.send(packet);
    }

    /// Acknowledges every proposal the log now holds (one ACK each, as ZooKeeper's
    /// SyncRequestProcessor sends them).
    pub(crate) fn persisted(&mut self, upto: i64) {
        if self.observer {
            self.unacked.clear();
            return;
        }
        while let Some(zxid) = self.unacked.front().copied() {
            if zxid > upto {
                break;
            }
            self.unacked.pop_front();
            self.send(&QuorumPacket::new(packet::ACK, zxid));
        }
    }

    /// What the releaser may hand to the shards: committed and durable here.
    pub(crate) fn releasable(&self, persisted: i64) -> i64 {
        self.committed.min(persisted)
    }

    pub(crate) fn close(&self) {
        self.out.close();
    }

    /// The proposals logged or being logged and not committed, oldest first.
    pub(crate) fn into_logged(self) -> VecDeque<(ZkTxnHeader, Txn, Option<TxnDigest>)> {
        self.proposals
    }
}

/// Handles a client-side input while following (the ordering core's `handle` delegates
/// here): writes, syncs, connects and closes go to the leader.
pub(crate) fn handle_client(
    ordering: &mut Ordering,
    input: ToOrdering,
    items: &mut Vec<CommitItem>,
) {
    let super::ordering::Role::Follower(following) = &mut ordering.role else {
        return;
    };
    match input {
        ToOrdering::Write(w) => {
            let w = *w;
            if let Some(Request::Sync(path)) = &w.request {
                following
                    .pending_syncs
                    .push_back((w.origin, w.xid, path.clone()));
            } else {
                following.pending.insert(
                    (w.session_id, w.xid),
                    PendingWrite {
                        origin: w.origin,
                        xid: w.xid,
                        request: w.request.clone(),
                        auth: w.auth.clone(),
                    },
                );
            }
            let data = wire::LearnerRequest {
                session_id: w.session_id,
                cxid: w.xid,
                op: w.op,
                body: w.body.clone(),
            }
            .encode();
            let mut request = QuorumPacket::with_data(packet::REQUEST, -1, data);
            request.authinfo = Some(w.auth.as_ref().clone());
            following.send(&request);
        }
        ToOrdering::Connect(c) => {
            if c.session_id == 0 {
                let id = following.session_ids.allocate();
                following
                    .pending_connects
                    .insert(id, (c.origin, c.timeout_ms));
                let data = wire::LearnerRequest {
                    session_id: id,
                    cxid: 0,
                    op: OpCode::CreateSession as i32,
                    body: Bytes::copy_from_slice(&c.timeout_ms.to_be_bytes()),
                }
                .encode();
                following.send(&QuorumPacket::with_data(packet::REQUEST, -1, data));
            } else {
                let expected = crate::session::java::session_password(c.session_id);
                if c.passwd.as_ref() != expected.as_slice() {
                    items.push(ordering_item(
                        following.committed,
                        Some(c.origin),
                        Action::ConnectRejected,
                    ));
                    return;
                }
                following
                    .pending_revalidations
                    .entry(c.session_id)
                    .or_default()
                    .push_back((c.origin, c.timeout_ms));
                following.send(&QuorumPacket::with_data(
                    packet::REVALIDATE,
                    -1,
                    wire::RevalidateRequest {
                        session_id: c.session_id,
                        timeout_ms: c.timeout_ms,
                    }
                    .encode(),
                ));
            }
        }
        ToOrdering::Touch(touches) => following
            .touched
            .extend(touches.into_iter().map(|(id, _)| id)),
        ToOrdering::Disconnected { origin, session_id } => {
            if following.local_sessions.get(&session_id) == Some(&origin) {
                following.local_sessions.remove(&session_id);
            }
        }
    }
}

/// Handles a packet from the leader in the broadcast phase; commit items for the shards go
/// into `items` (one batch per round). Returns Err when the term must end.
pub(crate) fn on_leader_packet(
    ordering: &mut Ordering,
    packet: QuorumPacket,
    items: &mut Vec<CommitItem>,
    log: &mut Vec<(crate::tree::TxnHeader, Txn)>,
) -> Result<(), String> {
    let super::ordering::Role::Follower(following) = &mut ordering.role else {
        return Ok(());
    };
    following.last_heard = Instant::now();
    match packet.kind {
        packet::PROPOSAL => {
            let (header, txn, digest) = decode_txn(packet.data_bytes())
                .map_err(|e| format!("undecodable PROPOSAL 0x{:x}: {e}", packet.zxid))?;
            if header.zxid != packet.zxid {
                return Err(format!(
                    "PROPOSAL 0x{:x} carries txn 0x{:x}",
                    packet.zxid, header.zxid
                ));
            }
            let last = following
                .proposals
                .back()
                .map_or(following.committed, |(h, _, _)| h.zxid);
            if header.zxid <= last {
                return Err(format!(
                    "PROPOSAL 0x{:x} after 0x{last:x}: zxids must increase",
                    header.zxid
                ));
            }
            log.push((header.tree_header(), txn.clone()));
            following.unacked.push_back(header.zxid);
            following.proposals.push_back((header, txn, digest));
        }
        packet::COMMIT => commit(ordering, packet.zxid, items)?,
        packet::INFORM => {
            // An observer's committed txn: a proposal and its commit in one.
            let zxid = packet.zxid;
            let proposal = QuorumPacket {
                kind: packet::PROPOSAL,
                ..packet
            };
            on_leader_packet(ordering, proposal, items, log)?;
            commit(ordering, zxid, items)?;
        }
        packet::PING => {
            // Each touch carries the session's timeout: a Java leader computes the new
            // deadline from it (a 0 would expire the session at its next tick).
            let touches: Vec<wire::SessionTouch> = following
                .touched
                .drain()
                .filter_map(|id| {
                    let session = ordering.sessions.get(id)?;
                    Some(wire::SessionTouch {
                        session_id: id,
                        timeout_ms: session.timeout_ms,
                    })
                })
                .collect();
            let mut reply = QuorumPacket::with_data(
                packet::PING,
                packet.zxid,
                wire::encode_ping_touches(&touches),
            );
            reply.authinfo = packet.authinfo.clone();
            following.send(&reply);
        }
        packet::SYNC => {
            if let Some((origin, xid, path)) = following.pending_syncs.pop_front() {
                items.push(CommitItem {
                    zxid: following.committed,
                    tree: None,
                    triggers: Vec::new(),
                    trigger_acls: Vec::new(),
                    target: Some(origin),
                    action: Action::Reply {
                        xid,
                        reply: Ok(Response::Sync(path)),
                        header_err: 0,
                        close_after: false,
                    },
                });
            }
        }
        packet::REVALIDATE => {
            let reply = wire::RevalidateReply::decode(packet.data_bytes())
                .map_err(|e| format!("bad REVALIDATE reply: {e}"))?;
            let waiting = following
                .pending_revalidations
                .get_mut(&reply.session_id)
                .and_then(|q| q.pop_front());
            if let Some((origin, timeout_ms)) = waiting {
                let action = if reply.valid {
                    let old = following.local_sessions.insert(reply.session_id, origin);
                    if let Some(old) = old.filter(|old| *old != origin) {
                        items.push(ordering_item(following.committed, Some(old), Action::Close));
                    }
                    Action::ConnectAccepted {
                        session_id: reply.session_id,
                        passwd: crate::session::java::session_password(reply.session_id),
                        timeout_ms,
                    }
                } else {
                    Action::ConnectRejected
                };
                items.push(ordering_item(following.committed, Some(origin), action));
            }
        }
        packet::UPTODATE | packet::NEWLEADER => {}
        other => log::warn!(
            "unexpected {} from the leader; ignored",
            wire::packet_name(other)
        ),
    }
    Ok(())
}

fn ordering_item(zxid: i64, target: Option<ConnRef>, action: Action) -> CommitItem {
    CommitItem {
        zxid,
        tree: None,
        triggers: Vec::new(),
        trigger_acls: Vec::new(),
        target,
        action,
    }
}

/// Applies the committed txn `zxid` (the oldest pending proposal) to the tree: a local
/// client's write is answered from it (ordered again against the same tree, which gives
/// the same txn and the reply ZooKeeper's FinalRequestProcessor would give).
fn commit(ordering: &mut Ordering, zxid: i64, items: &mut Vec<CommitItem>) -> Result<(), String> {
    let super::ordering::Role::Follower(following) = &mut ordering.role else {
        return Ok(());
    };
    let Some((header, txn, digest)) = following.proposals.pop_front() else {
        return Err(format!("COMMIT 0x{zxid:x} without a pending proposal"));
    };
    if header.zxid != zxid {
        // ZooKeeper exits here (UNMATCHED_TXN_COMMIT): the histories diverged.
        panic!(
            "COMMIT 0x{zxid:x} does not match the oldest pending proposal 0x{:x}",
            header.zxid
        );
    }
    debug_assert!(zxid > following.committed);
    following.committed = zxid;
    let pending = following.pending.remove(&(header.client_id, header.cxid));
    let connect = match &txn {
        Txn::CreateSession { .. } => following.pending_connects.remove(&header.client_id),
        _ => None,
    };
    let local_owner = following.local_sessions.get(&header.client_id).copied();
    if matches!(txn, Txn::CloseSession { .. }) {
        following.local_sessions.remove(&header.client_id);
    }
    let tree_header = header.tree_header();
    match (pending, &txn) {
        (Some(p), Txn::Error(code)) => {
            // Failed at the leader before the tree (e.g. SessionExpired, SessionMoved).
            let (triggers, trigger_acls) = ordering.tree.apply_txn_with_acls(&tree_header, &txn);
            items.push(CommitItem {
                zxid,
                tree: None,
                triggers,
                trigger_acls,
                target: Some(p.origin),
                action: Action::Reply {
                    xid: p.xid,
                    reply: Err(*code),
                    header_err: code.code(),
                    close_after: false,
                },
            });
        }
        (Some(p), _) => {
            let ctx = TxnContext {
                session_id: header.client_id,
                auth: &p.auth,
                zxid,
                time_ms: header.time_ms,
                // The leader decided (a quota it enforced came as an error txn).
                enforce_quota: false,
                sasl_acl: true,
            };
            let out = match (&p.request, &txn) {
                (Some(Request::CloseSession), _) | (_, Txn::CloseSession { .. }) => {
                    ordering.tree.close_session(&ctx)
                }
                (Some(request), _) => ordering.tree.process_write(request, &ctx),
                (None, _) => ordering.tree.fail_write(&ctx, ErrorCode::MarshallingError),
            };
            if !txn.same_change_as(&out.txn) {
                panic!(
                    "replica divergence at 0x{zxid:x}: the leader committed {txn:?}, this \
                     server's tree gives {:?}",
                    out.txn
                );
            }
            let close_after = matches!(txn, Txn::CloseSession { .. });
            items.push(CommitItem {
                zxid,
                tree: Some(std::sync::Arc::new(ordering.tree.clone())),
                triggers: out.triggers,
                trigger_acls: out.trigger_acls,
                target: Some(p.origin),
                action: Action::Reply {
                    xid: p.xid,
                    reply: out.reply,
                    header_err: out.header_err,
                    close_after,
                },
            });
        }
        (None, _) => {
            let (triggers, trigger_acls) = ordering.tree.apply_txn_with_acls(&tree_header, &txn);
            let (target, action) = match (&txn, connect, local_owner) {
                (Txn::CreateSession { timeout_ms }, Some((origin, _)), _) => {
                    if let super::ordering::Role::Follower(following) = &mut ordering.role {
                        following.local_sessions.insert(header.client_id, origin);
                    }
                    (
                        Some(origin),
                        Action::ConnectAccepted {
                            session_id: header.client_id,
                            passwd: crate::session::java::session_password(header.client_id),
                            timeout_ms: *timeout_ms,
                        },
                    )
                }
                // Expired or closed elsewhere: the local connection goes.
                (Txn::CloseSession { .. }, _, Some(owner)) => (Some(owner), Action::Close),
                _ => (None, Action::None),
            };
            items.push(CommitItem {
                zxid,
                tree: None,
                triggers,
                trigger_acls,
                target,
                action,
            });
        }
    }
    ordering.note_txn_applied(&tree_header, &txn);
    let actual = check_digest(ordering, zxid, digest);
    ordering.recent.push((tree_header, txn, actual));
    Ok(())
}

/// ZooKeeper's `DataTree.compareDigest` after applying the committed txn `zxid` (see
/// [`compare_digest`]); also notes the digest for `hash`. Returns this tree's digest.
fn check_digest(ordering: &Ordering, zxid: i64, digest: Option<TxnDigest>) -> i64 {
    let actual = ordering.tree.digest();
    ordering.stats().note_digest(zxid, actual);
    compare_digest(ordering.stats(), zxid, actual, digest);
    actual
}

/// Compares the leader's TxnDigest of txn `zxid` (the leader's tree digest after it) with
/// this tree's digest after applying it (`actual`); true when they match or there is
/// nothing to compare. A mismatch means the replicas' trees differ (or the two servers
/// compute digests differently). ZooKeeper 3.8 counts it (`zk_digest_mismatches_count`),
/// logs the first one as an error, and carries on (no DigestWatcher is registered); so
/// does this server, logging an error naming the zxid at the 1st, 2nd, 4th, 8th, ...
/// mismatch. No digest (an older leader, or a txn a zkrs leader read back from its older log
/// files for a DIFF) or another digest version: nothing to compare, as in ZooKeeper.
pub(crate) fn compare_digest(
    stats: &super::SharedStats,
    zxid: i64,
    actual: i64,
    digest: Option<TxnDigest>,
) -> bool {
    let Some(digest) = digest else {
        return true;
    };
    if digest.version != DIGEST_VERSION {
        log::debug!(
            "txn 0x{zxid:x} carries digest version {}, not {DIGEST_VERSION}: not compared",
            digest.version
        );
        return true;
    }
    if digest.tree_digest == actual {
        return true;
    }
    stats.count_digest_mismatch();
    let count = stats
        .digest_mismatches
        .load(std::sync::atomic::Ordering::Relaxed);
    if count.is_power_of_two() {
        log::error!(
            "digest mismatch on txn 0x{zxid:x}: the leader's tree digest after it is {}, this \
             server's is {actual} ({count} mismatches so far): the replicas' data trees \
             differ; compare the servers' `hash` four-letter words",
            digest.tree_digest
        );
    }
    false
}

/// Connects to the leader's quorum port. The leader binds it only once it has decided,
/// which may be a moment after this server decided: the first retries come quickly (5 ms,
/// doubling), then as ZooKeeper's Learner (every 100 ms), 10 tries in all.
async fn connect_leader(
    address: std::net::SocketAddr,
    timeout: Duration,
) -> Result<glommio::net::TcpStream, String> {
    let mut last = String::new();
    for attempt in 0..10u32 {
        match glommio::net::TcpStream::connect_timeout(address, timeout).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e.to_string(),
        }
        let pause_ms = (5u64 << attempt.min(5)).min(100);
        glommio::timer::sleep(Duration::from_millis(pause_ms)).await;
    }
    Err(format!("cannot connect to the leader at {address}: {last}"))
}

/// Runs one term as follower of `leader`. Returns when the link to the leader fails or
/// the leader goes silent for syncLimit ticks.
pub(crate) async fn run_term(
    term: super::ensemble::Term<'_>,
    leader: ServerId,
    persistence: &mut Option<super::persistence::Persistence>,
    election: &super::election::ElectionHandle,
    observer: bool,
) -> Result<(), String> {
    let super::ensemble::Term {
        config,
        quorum,
        ordering,
        wiring,
        log: log_queue,
        epochs,
    } = term;
    let me = config.my_id.unwrap_or(0);
    let tick = Duration::from_millis(config.tick_time_ms as u64);
    let init_limit = tick * config.init_limit.max(1);
    let sync_limit = tick * config.sync_limit.max(1);
    let member = quorum
        .member(leader)
        .ok_or_else(|| format!("no server.{leader} line"))?
        .clone();
    let address = super::ensemble::resolve(&member.host, member.quorum_port)?;
    let stream = connect_leader(address, init_limit).await?;
    let (out, mut reader) = quorum::split(stream);
    let mut buf = BytesMut::new();
    let synced = sync_with_leader(
        config,
        ordering,
        wiring,
        log_queue,
        epochs,
        persistence,
        me,
        observer,
        init_limit,
        out.clone(),
        &mut reader,
        &mut buf,
    )
    .await;
    if let Err(e) = synced {
        out.close();
        return Err(e);
    }
    election.command(super::election::Command::Settled {
        epoch: ordering.current_epoch,
    });
    {
        let inbox = wiring.inbox.clone();
        let out = out.clone();
        glommio::spawn_local(async move {
            let reason =
                quorum::read_packets(&mut reader, &mut buf, &out, LEADER_DATA_MAX, |packet| {
                    inbox.push(Input::Leader(LeaderEvent::Packet(packet)));
                    true
                })
                .await;
            out.close();
            inbox.push(Input::Leader(LeaderEvent::Closed(reason)));
        })
        .detach();
    }
    if let super::ordering::Role::Follower(following) = &mut ordering.role {
        following.sync_limit = sync_limit;
        following.last_heard = Instant::now();
    }
    ordering.set_leader(leader);
    if observer {
        ordering.set_mode(super::Mode::Observer);
        log::info!("observing server {leader}; serving clients");
    } else {
        ordering.set_mode(super::Mode::Follower);
        log::info!("following server {leader}; serving clients");
    }
    let result = loop {
        let inputs = wiring.inbox.take(super::ordering::BATCH_INPUTS_MAX).await;
        let mut items = Vec::new();
        let mut txns = Vec::new();
        let mut end = None;
        ordering.start_round();
        for input in inputs {
            match input {
                Input::Leader(LeaderEvent::Packet(packet)) => {
                    // Counted in the broadcast only, as Follower/Observer.processPacket do.
                    use crate::metrics::quorum;
                    match packet.kind {
                        packet::PROPOSAL => {
                            quorum::add(&quorum::LEARNER_PROPOSAL_RECEIVED_COUNT, 1)
                        }
                        packet::COMMIT | packet::INFORM => {
                            quorum::add(&quorum::LEARNER_COMMIT_RECEIVED_COUNT, 1)
                        }
                        _ => {}
                    }
                    if let Err(e) = on_leader_packet(ordering, packet, &mut items, &mut txns) {
                        end = Some(e);
                        break;
                    }
                }
                Input::Leader(LeaderEvent::Closed(reason)) => {
                    end = Some(format!("lost the leader: {reason}"));
                    break;
                }
                Input::Persisted(upto) => {
                    if let super::ordering::Role::Follower(following) = &mut ordering.role {
                        following.persisted(upto);
                    }
                }
                Input::External(message) => handle_client(ordering, message, &mut items),
                Input::Tick => {
                    if let super::ordering::Role::Follower(following) = &ordering.role {
                        if following.last_heard.elapsed() > following.sync_limit {
                            end = Some("the leader has been silent for syncLimit".to_string());
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        if !txns.is_empty() {
            log_queue.push_txns(txns);
        }
        ordering.push_follower_batch(items, &wiring.releaser, log_queue);
        if let super::ordering::Role::Follower(following) = &ordering.role {
            wiring
                .releaser
                .release_upto(following.releasable(log_queue.persisted()));
        }
        if let Some(reason) = end {
            break Err(reason);
        }
    };
    if let super::ordering::Role::Follower(following) = &ordering.role {
        following.close();
    }
    result
}

/// A SNAP's tree with the txns committed during the sync applied (ZooKeeper applies them
/// to the fuzzy snapshot as their COMMITs come); the applied proposals leave `buffered`.
fn apply_committed_to_snapshot(
    mut snapshot: crate::zab::snap::Snapshot,
    buffered: &mut Vec<QuorumPacket>,
    committed: &[i64],
) -> Result<crate::zab::snap::Snapshot, String> {
    let mut sessions: std::collections::BTreeMap<i64, i32> =
        snapshot.sessions.iter().copied().collect();
    for zxid in committed {
        let Some(index) = buffered.iter().position(|p| p.zxid == *zxid) else {
            // As ZooKeeper's learner: a COMMIT that matches no buffered proposal is only
            // worth a warning (the fuzzy snapshot holds its txn).
            log::warn!("COMMIT 0x{zxid:x} during SNAP sync without its proposal; ignored");
            continue;
        };
        let packet = buffered.remove(index);
        let (header, txn, _) = decode_txn(packet.data_bytes())
            .map_err(|e| format!("undecodable proposal 0x{zxid:x}: {e}"))?;
        snapshot.tree.apply_txn_fuzzy(&header.tree_header(), &txn);
        match &txn {
            Txn::CreateSession { timeout_ms } => {
                sessions.insert(header.client_id, *timeout_ms);
            }
            Txn::CloseSession { .. } => {
                sessions.remove(&header.client_id);
            }
            _ => {}
        }
    }
    snapshot.sessions = sessions.into_iter().collect();
    Ok(snapshot)
}

/// Recovers the state the files now hold (after a SNAP or TRUNC replaced or cut them);
/// the log task is not running yet.
fn reopen(
    config: &crate::config::Config,
    ordering: &mut Ordering,
    log_queue: &mut super::log_stage::LogQueue,
    persistence: &mut Option<super::persistence::Persistence>,
) -> Result<(), String> {
    // The recovery below must be the only reader and writer of the files.
    *persistence = None;
    install(
        config,
        ordering,
        log_queue,
        persistence,
        super::persistence::Persistence::open(config)?,
    );
    Ok(())
}

/// Takes up the state the files now hold, `(persistence, recovered)`: the ordering core's
/// tree and sessions, and a log queue that starts where the log ends.
fn install(
    config: &crate::config::Config,
    ordering: &mut Ordering,
    log_queue: &mut super::log_stage::LogQueue,
    persistence: &mut Option<super::persistence::Persistence>,
    (files, mut recovered): (
        super::persistence::Persistence,
        super::persistence::Recovered,
    ),
) {
    *persistence = Some(files);
    // The snapshot holds the leader's `/zookeeper/config`; a learner writes its own after
    // the sync, as ZooKeeper's Learner does.
    super::ensemble::init_config_node(&mut recovered.tree, &super::ensemble::quorum_config(config));
    ordering.replace_state(recovered);
    *log_queue = super::log_stage::LogQueue::new(ordering.tree.last_zxid());
}

/// The handshake and sync, up to UPTODATE; leaves the ordering core following with the
/// synced tree and the log task running.
#[allow(clippy::too_many_arguments)]
async fn sync_with_leader(
    config: &crate::config::Config,
    ordering: &mut Ordering,
    wiring: &super::ordering::Wiring,
    log_queue: &mut super::log_stage::LogQueue,
    epochs: &super::persistence::EpochFiles,
    persistence: &mut Option<super::persistence::Persistence>,
    me: ServerId,
    observer: bool,
    init_limit: Duration,
    out: Rc<PeerOut>,
    reader: &mut futures_lite::io::ReadHalf<glommio::net::TcpStream>,
    buf: &mut BytesMut,
) -> Result<(), String> {
    let (accepted_epoch, current_epoch) = (ordering.accepted_epoch, ordering.current_epoch);
    out.send(&QuorumPacket::with_data(
        if observer {
            packet::OBSERVERINFO
        } else {
            packet::FOLLOWERINFO
        },
        make_zxid(accepted_epoch as u32, 0),
        wire::LearnerInfo {
            server_id: me,
            protocol_version: wire::ZAB_PROTOCOL_VERSION,
            config_version: 0,
        }
        .encode(),
    ));
    let info = quorum::read_one(reader, buf, LEADER_DATA_MAX, init_limit).await?;
    if info.kind != packet::LEADERINFO {
        return Err(format!(
            "expected LEADERINFO, got {}",
            wire::packet_name(info.kind)
        ));
    }
    let new_epoch = epoch_of(info.zxid) as i64;
    let ack_data = if new_epoch > accepted_epoch {
        epochs.set_accepted(new_epoch)?;
        current_epoch as i32
    } else if new_epoch == accepted_epoch {
        wire::AckEpoch::SAME_EPOCH
    } else {
        return Err(format!(
            "the leader proposes epoch {new_epoch}, behind our accepted epoch {accepted_epoch}"
        ));
    };
    let last_zxid = ordering.tree.last_zxid();
    out.send(&QuorumPacket::with_data(
        packet::ACKEPOCH,
        last_zxid,
        wire::AckEpoch {
            current_epoch: ack_data,
        }
        .encode(),
    ));
    let first = quorum::read_one(reader, buf, LEADER_DATA_MAX, init_limit).await?;
    let mut snap: Option<crate::zab::snap::Snapshot> = None;
    match first.kind {
        packet::DIFF => log::info!("syncing with the leader by DIFF from 0x{last_zxid:x}"),
        packet::SNAP => {
            log::info!("syncing with the leader by SNAP of 0x{:x}", first.zxid);
            let mut decoder = crate::zab::snap::SnapDecoder::stream(first.zxid);
            let started = Instant::now();
            // One read buffer for the whole stream (a 1M-znode snapshot is ~200 MB).
            let mut scratch = vec![0u8; 256 * 1024];
            let snapshot = loop {
                match decoder.feed(buf) {
                    Ok(Some(snapshot)) => break snapshot,
                    Ok(None) => {}
                    Err(e) => return Err(format!("bad SNAP stream: {e}")),
                }
                if started.elapsed() > init_limit * 10 {
                    return Err("the SNAP stream did not complete".into());
                }
                let n = glommio::timer::timeout(init_limit, async {
                    use futures_lite::AsyncReadExt;
                    reader
                        .read(&mut scratch)
                        .await
                        .map_err(glommio::GlommioError::from)
                })
                .await
                .map_err(|e| format!("reading the SNAP stream: {e}"))?;
                if n == 0 {
                    return Err("the leader closed the link during SNAP".into());
                }
                buf.extend_from_slice(&scratch[..n]);
            };
            // Kept in memory until NEWLEADER: the snapshot may be fuzzy (a Java leader keeps
            // committing while it streams), so what goes to disk is the snapshot with the
            // txns committed meanwhile applied.
            snap = Some(snapshot);
        }
        packet::TRUNC => {
            log::info!(
                "syncing with the leader by TRUNC from 0x{last_zxid:x} to 0x{:x}",
                first.zxid
            );
            super::persistence::truncate_after(config, first.zxid)?;
            reopen(config, ordering, log_queue, persistence)?;
            if ordering.tree.last_zxid() != first.zxid {
                // The history did not hold the truncation point and was removed: the next
                // sync sends a snapshot.
                return Err(format!(
                    "cannot truncate to 0x{:x}; the local state was removed",
                    first.zxid
                ));
            }
        }
        other => {
            return Err(format!(
                "expected DIFF, SNAP or TRUNC, got {}",
                wire::packet_name(other)
            ))
        }
    }
    // Proposals (INFORMs) and commits until NEWLEADER are buffered; at NEWLEADER a SNAP's
    // state (with the commits applied) goes to disk, every remaining proposal is logged and
    // made durable, currentEpoch is written, and only then the NEWLEADER ACK is sent.
    let mut buffered: Vec<QuorumPacket> = Vec::new();
    let mut committed: Vec<i64> = Vec::new();
    let mut newleader_seen = false;
    loop {
        let p = quorum::read_one(reader, buf, LEADER_DATA_MAX, init_limit).await?;
        match p.kind {
            packet::PROPOSAL | packet::INFORM if !newleader_seen => {
                if p.kind == packet::INFORM {
                    committed.push(p.zxid);
                }
                buffered.push(p);
            }
            packet::COMMIT if !newleader_seen => committed.push(p.zxid),
            packet::PROPOSAL => {
                let mut txns = Vec::new();
                let mut items = Vec::new();
                on_leader_packet(ordering, p, &mut items, &mut txns)?;
                if let super::ordering::Role::Follower(following) = &mut ordering.role {
                    // Acknowledged after the UPTODATE ACK (ZOOKEEPER-4685), below.
                    following.unacked.clear();
                }
                log_queue.push_txns(txns);
            }
            packet::INFORM => {
                let mut txns = Vec::new();
                let mut items = Vec::new();
                let proposal = QuorumPacket {
                    kind: packet::PROPOSAL,
                    ..p.clone()
                };
                on_leader_packet(ordering, proposal, &mut items, &mut txns)?;
                if let super::ordering::Role::Follower(following) = &mut ordering.role {
                    following.unacked.clear();
                }
                log_queue.push_txns(txns);
                committed.push(p.zxid);
            }
            packet::COMMIT => committed.push(p.zxid),
            packet::NEWLEADER if !newleader_seen => {
                newleader_seen = true;
                if let Some(snapshot) = snap.take() {
                    let rest = apply_committed_to_snapshot(snapshot, &mut buffered, &committed)?;
                    committed.clear();
                    // The files become the snapshot and an empty log after it; the tree
                    // in memory is what they now hold (not read back).
                    *persistence = None;
                    let replaced = super::persistence::Persistence::replace_with(
                        config,
                        rest.tree,
                        rest.sessions,
                    )?;
                    install(config, ordering, log_queue, persistence, replaced);
                    log::info!(
                        "SNAP sync: state at 0x{:x} written",
                        ordering.tree.last_zxid()
                    );
                }
                // The log task for this term (after a SNAP or TRUNC, over the new files).
                if let Some(persistence) = persistence.take() {
                    super::ordering::spawn_log_task(persistence, log_queue, &wiring.inbox);
                }
                ordering.become_follower(out.clone(), config.my_id.unwrap_or(0), init_limit);
                if let super::ordering::Role::Follower(following) = &mut ordering.role {
                    following.observer = observer;
                }
                for packet in buffered.drain(..) {
                    let mut txns = Vec::new();
                    let mut items = Vec::new();
                    let proposal = QuorumPacket {
                        kind: packet::PROPOSAL,
                        ..packet
                    };
                    on_leader_packet(ordering, proposal, &mut items, &mut txns)?;
                    log_queue.push_txns(txns);
                }
                if let super::ordering::Role::Follower(following) = &mut ordering.role {
                    following.unacked.clear();
                }
                // Everything received so far durable, then currentEpoch, then the ACK.
                let target = log_queue.queued();
                while log_queue.persisted() < target {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                epochs.set_current(new_epoch)?;
                ordering.current_epoch = new_epoch;
                out.send(&QuorumPacket::new(
                    packet::ACK,
                    make_zxid(new_epoch as u32, 0),
                ));
            }
            packet::UPTODATE if newleader_seen => break,
            packet::PING => {
                // Not answered during sync: the first packet after ACKEPOCH must be the
                // NEWLEADER ACK (ZooKeeper's learner ignores PINGs here too).
            }
            other => {
                return Err(format!(
                    "unexpected {} during sync",
                    wire::packet_name(other)
                ))
            }
        }
    }
    out.send(&QuorumPacket::new(
        packet::ACK,
        make_zxid(new_epoch as u32, 0),
    ));
    // ACKs for what was logged during the sync: now for what the log already holds, the
    // rest (proposals received after NEWLEADER) once it is durable (`Following::persisted`);
    // then the commits received meanwhile.
    let durable = log_queue.persisted();
    if let super::ordering::Role::Follower(following) = &mut ordering.role {
        if !observer {
            let logged: Vec<i64> = following.proposals.iter().map(|(h, _, _)| h.zxid).collect();
            for zxid in logged {
                if zxid <= durable {
                    out.send(&QuorumPacket::new(packet::ACK, zxid));
                } else {
                    following.unacked.push_back(zxid);
                }
            }
        }
    }
    let mut items = Vec::new();
    for zxid in committed {
        commit(ordering, zxid, &mut items)?;
    }
    // Commit items of the sync carry no replies; the shards start from this version.
    drop(items);
    ordering.publish_initial(&wiring.releaser);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_digest_is_counted_and_a_missing_one_is_not_compared() {
        let stats = super::super::SharedStats::default();
        let good = TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: 12345,
        };
        assert!(compare_digest(&stats, 0x100000001, 12345, Some(good)));
        assert!(compare_digest(&stats, 0x100000002, 12345, None));
        let other_version = TxnDigest {
            version: 1,
            tree_digest: 7,
        };
        assert!(compare_digest(
            &stats,
            0x100000003,
            12345,
            Some(other_version)
        ));
        let count = || {
            stats
                .digest_mismatches
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(count(), 0);
        let wrong = TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: 12346,
        };
        assert!(!compare_digest(&stats, 0x100000004, 12345, Some(wrong)));
        assert!(!compare_digest(&stats, 0x100000005, 12345, Some(wrong)));
        assert_eq!(count(), 2);
    }

    #[test]
    fn a_leaders_proposal_carries_the_digest_a_follower_checks() {
        // The leader's encoding of a txn with the digest of its tree after the txn, decoded
        // as a follower does, then checked against the follower's own tree.
        let mut leader_tree = crate::tree::DataTree::new();
        let mut follower_tree = crate::tree::DataTree::new();
        let header = crate::tree::TxnHeader {
            session_id: 0x5,
            zxid: 0x100000001,
            time_ms: 1_700_000_000_000,
            cxid: 3,
            op: 1,
        };
        let txn = Txn::Create {
            path: "/a".into(),
            data: bytes::Bytes::from_static(b"data"),
            acl: crate::zab::txn::open_acl_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: 1,
        };
        leader_tree.apply_txn(&header, &txn);
        let data =
            super::super::leader::encode_for_learners(&header, &txn, Some(leader_tree.digest()));
        let (zk_header, decoded, digest) = decode_txn(&data).unwrap();
        assert_eq!(decoded, txn);
        assert_eq!(
            digest,
            Some(TxnDigest {
                version: DIGEST_VERSION,
                tree_digest: leader_tree.digest(),
            })
        );
        let stats = super::super::SharedStats::default();
        assert!(
            !compare_digest(&stats, header.zxid, follower_tree.digest(), digest),
            "before applying the txn the trees differ"
        );
        follower_tree.apply_txn(&zk_header.tree_header(), &decoded);
        assert!(compare_digest(
            &stats,
            header.zxid,
            follower_tree.digest(),
            digest
        ));
        assert_eq!(
            stats
                .digest_mismatches
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
