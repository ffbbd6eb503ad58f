//! Leading a term: discovery (FOLLOWERINFO -> LEADERINFO -> ACKEPOCH), syncing each
//! learner (DIFF or SNAP, then NEWLEADER and UPTODATE), and the broadcast (PROPOSAL, ACK,
//! COMMIT, INFORM to observers, PING with session touches, REQUEST, REVALIDATE, SYNC), as
//! Apache ZooKeeper 3.8's Leader and LearnerHandler speak them (ZAB-WIRE.md 3.3-3.11).
//!
//! Each learner's socket has a task that runs the handshake steps and then feeds its
//! packets to the ordering core's inbox; everything that touches the tree, the sessions or
//! the proposal stream happens in the ordering task, so syncing a learner and registering
//! it for the live proposals is one step with nothing in between.
//!
//! Invariants: a txn is committed only with a quorum of acknowledgements, the leader's
//! own coming from its log (`zab::broadcast::AckTracker`); COMMITs leave in proposal order;
//! the leader serves clients only once a quorum has acknowledged NEWLEADER, and stops (the
//! term ends) when it no longer hears from a quorum within syncLimit ticks.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::messages::*;
use super::ordering::{Input, Ordering, TxnMeta};
use super::quorum::{self, PeerOut};
use crate::proto::{ErrorCode, Id, OpCode, Request};
use crate::tree::{DataTree, Txn, TxnHeader};
use crate::zab::broadcast::{AckOutcome, AckTracker, CommittedLog, CommittedTxn, SyncPlan};
use crate::zab::txn::{encode_txn, OpHint, TxnDigest, ZkTxnHeader, DIGEST_VERSION};
use crate::zab::wire::{self, packet, QuorumPacket};
use crate::zab::{epoch_of, make_zxid, QuorumConfig, ServerId};

/// Committed txns kept in memory to sync learners by DIFF (ZooKeeper's commitLogCount).
const COMMITTED_LOG_CAPACITY: usize = super::persistence::RECENT_TXNS_MAX;
/// Largest packet data accepted from a learner.
const LEARNER_DATA_MAX: usize = wire::DEFAULT_MAX_QUORUM_DATA_LEN;

/// An event from a learner's link, for the ordering task.
pub(crate) enum LearnerEvent {
    /// The learner finished ACKEPOCH: sync it (and register it for the broadcast).
    Sync {
        link: u64,
        sid: ServerId,
        observer: bool,
        out: Rc<PeerOut>,
        peer_last_zxid: i64,
        /// For a learner older than the committed log: the txns from its last zxid on,
        /// read back from the log files (see [`older_history`]).
        older: Option<Vec<CommittedTxn>>,
    },
    /// The learner acknowledged NEWLEADER.
    NewLeaderAcked {
        link: u64,
    },
    Packet {
        link: u64,
        packet: QuorumPacket,
    },
    Closed {
        link: u64,
        reason: String,
    },
    /// The discovery state changed: re-evaluate the quorums.
    Progress,
}

/// Discovery, shared between the learners' tasks and the ordering task.
pub(crate) struct Discovery {
    me: ServerId,
    config: Arc<QuorumConfig>,
    accepted_epoch: i64,
    /// (currentEpoch, last zxid) of this leader: a learner newer than this is refused.
    summary: (i64, i64),
    /// Voters that sent FOLLOWERINFO, with their accepted epochs.
    connecting: BTreeMap<ServerId, i64>,
    /// The epoch of this term, once a quorum connected.
    pub epoch: Option<i64>,
    /// Voters whose ACKEPOCH counts.
    epoch_acks: BTreeSet<ServerId>,
    /// A quorum acknowledged the epoch (currentEpoch is written).
    pub epoch_acked: bool,
    newleader_acks: BTreeSet<ServerId>,
    pub established: bool,
    /// The term is over (timeout or lost quorum): learner tasks stop.
    pub ended: bool,
    /// Where older txns are read back from for a DIFF (None: never, always SNAP).
    history: Option<super::persistence::LogHistory>,
    /// The committed log's (base, last): a learner behind `base` needs the files.
    committed: (i64, i64),
}

struct Learner {
    sid: ServerId,
    observer: bool,
    out: Rc<PeerOut>,
    /// Acknowledged NEWLEADER and got UPTODATE: in broadcast.
    up_to_date: bool,
    newleader_acked: bool,
    last_heard: Instant,
}

/// The leader's state during a term (in the ordering core's `Role::Leader`).
pub(crate) struct Leading {
    me: ServerId,
    config: Arc<QuorumConfig>,
    config_text: String,
    pub discovery: Rc<RefCell<Discovery>>,
    tracker: AckTracker,
    committed_log: CommittedLog,
    /// Proposals not committed yet, oldest first (for learners that sync meanwhile).
    outstanding: VecDeque<(i64, Bytes)>,
    /// The tree version after each outstanding batch: (its last zxid, version).
    versions: VecDeque<(i64, Arc<DataTree>)>,
    /// The last committed version (what a SNAP sends).
    committed_tree: Arc<DataTree>,
    learners: HashMap<u64, Learner>,
    /// SYNC packets waiting for a zxid to commit: (zxid, link).
    pending_syncs: VecDeque<(i64, u64)>,
    /// Sessions whose connection is on another server: (session, that server).
    pub remote_owner: HashMap<i64, ServerId>,
    sync_limit: Duration,
}

/// What a new leader syncs learners from: the txns its log ends with (`recent`, after
/// `recent_base`: the committed log's start) and, for learners older than those, the log
/// files (None: SNAP them).
pub(crate) struct LeaderHistory<'a> {
    pub recent: &'a super::persistence::RecentLog,
    pub files: Option<super::persistence::LogHistory>,
}

/// A learner to sync (the fields of [`LearnerEvent::Sync`]).
struct SyncRequest {
    link: u64,
    sid: ServerId,
    observer: bool,
    out: Rc<PeerOut>,
    peer_last_zxid: i64,
    older: Option<Vec<CommittedTxn>>,
}

impl Leading {
    pub(crate) fn new(
        me: ServerId,
        config: Arc<QuorumConfig>,
        tree: &DataTree,
        accepted_epoch: i64,
        current_epoch: i64,
        sync_limit: Duration,
        LeaderHistory {
            recent,
            files: history,
        }: LeaderHistory<'_>,
    ) -> Leading {
        let last = tree.last_zxid();
        // The txns this server's log ends with: learners a little behind sync by DIFF from
        // them (they are the history the new epoch adopts, as ZooKeeper's committed log).
        let mut committed_log = CommittedLog::new(recent.base(), COMMITTED_LOG_CAPACITY);
        for (header, txn, digest) in recent.iter() {
            committed_log.push(CommittedTxn {
                zxid: header.zxid,
                data: encode_for_learners(header, txn, Some(*digest)),
            });
        }
        assert_eq!(
            committed_log.last(),
            last,
            "the recovered txns end at 0x{:x}, the tree at 0x{last:x}",
            committed_log.last()
        );
        let mut connecting = BTreeMap::new();
        connecting.insert(me, accepted_epoch);
        Leading {
            me,
            config_text: wire::config_to_zk_string(&config),
            discovery: Rc::new(RefCell::new(Discovery {
                me,
                config: config.clone(),
                accepted_epoch,
                summary: (current_epoch, last),
                connecting,
                epoch: None,
                epoch_acks: BTreeSet::from([me]),
                epoch_acked: false,
                newleader_acks: BTreeSet::from([me]),
                established: false,
                ended: false,
                history,
                committed: (committed_log.base(), committed_log.last()),
            })),
            tracker: AckTracker::new(me, (*config).clone(), last),
            committed_log,
            outstanding: VecDeque::new(),
            versions: VecDeque::new(),
            committed_tree: Arc::new(tree.clone()),
            learners: HashMap::new(),
            pending_syncs: VecDeque::new(),
            remote_owner: HashMap::new(),
            config,
            sync_limit,
        }
    }

    /// The txns after `zxid` that this term made or adopted, committed or still
    /// outstanding, oldest first, each with the tree digest after it (decoded from what
    /// was sent to the learners): with the ones before, the txns the log ends with once
    /// everything queued is durable. An Err if one cannot be decoded or has no digest.
    pub(crate) fn txns_after(
        &self,
        zxid: i64,
    ) -> Result<Vec<super::persistence::RecentTxn>, String> {
        let committed = self.committed_log.iter().map(|t| (t.zxid, &t.data));
        let outstanding = self.outstanding.iter().map(|(z, data)| (*z, data));
        committed
            .chain(outstanding)
            .filter(|(z, _)| *z > zxid)
            .map(|(z, data)| {
                let (header, txn, digest) = crate::zab::txn::decode_txn(data)
                    .map_err(|e| format!("txn 0x{z:x} cannot be decoded: {e}"))?;
                let digest = digest.ok_or_else(|| format!("txn 0x{z:x} has no digest"))?;
                Ok((header.tree_header(), txn, digest.tree_digest))
            })
            .collect()
    }

    /// The term's epoch, once decided.
    pub(crate) fn epoch(&self) -> Option<i64> {
        self.discovery.borrow().epoch
    }

    /// Proposes the txns of one ordered batch to every learner in the broadcast (`tree`:
    /// the version after them), each with the tree digest after it (`digests`: (zxid,
    /// digest) of each txn, in the same order), as a ZooKeeper 3.8 leader does.
    pub(crate) fn propose(
        &mut self,
        txns: &[(TxnHeader, Txn)],
        digests: &[(i64, i64)],
        tree: Option<Arc<DataTree>>,
    ) {
        // Invariant: the ordering core records one digest per txn it makes. A txn without
        // its digest means the bookkeeping broke (Java would accept it without a digest,
        // but a learner could then no longer check this leader): stop loudly.
        assert!(
            digests.len() == txns.len()
                && digests
                    .iter()
                    .zip(txns)
                    .all(|((z, _), (h, _))| *z == h.zxid),
            "proposal digests {:?} do not match the txns {:?}",
            digests.iter().map(|(z, _)| *z).collect::<Vec<_>>(),
            txns.iter().map(|(h, _)| h.zxid).collect::<Vec<_>>()
        );
        for ((header, txn), (_, digest)) in txns.iter().zip(digests) {
            let data = encode_for_learners(header, txn, Some(*digest));
            self.tracker.propose(header.zxid);
            let proposal = QuorumPacket::with_data(packet::PROPOSAL, header.zxid, data.clone());
            for learner in self.learners.values() {
                if !learner.observer {
                    learner.out.send(&proposal);
                }
            }
            self.outstanding.push_back((header.zxid, data));
        }
        crate::metrics::quorum::add(&crate::metrics::quorum::PROPOSAL_COUNT, txns.len() as u64);
        if let (Some(tree), Some((last, _))) = (tree, txns.last()) {
            self.versions.push_back((last.zxid, tree));
        }
    }

    /// Acknowledgements counted; returns the zxid newly committed up to, if any.
    fn on_ack_outcome(&mut self, outcome: AckOutcome) -> Option<i64> {
        match outcome {
            AckOutcome::Commit(upto) => {
                self.commit_upto(upto);
                Some(upto)
            }
            AckOutcome::Nothing => None,
        }
    }

    /// The leader's own log made everything up to `upto` durable.
    pub(crate) fn persisted(&mut self, upto: i64) -> Option<i64> {
        let outcome = self.tracker.persisted(upto);
        self.on_ack_outcome(outcome)
    }

    fn commit_upto(&mut self, upto: i64) {
        let mut committed = false;
        while let Some((zxid, _)) = self.outstanding.front() {
            if *zxid > upto {
                break;
            }
            let Some((zxid, data)) = self.outstanding.pop_front() else {
                break;
            };
            crate::metrics::quorum::add(&crate::metrics::quorum::COMMIT_COUNT, 1);
            let commit = QuorumPacket::new(packet::COMMIT, zxid);
            let inform = QuorumPacket::with_data(packet::INFORM, zxid, data.clone());
            for learner in self.learners.values() {
                if learner.observer {
                    learner.out.send(&inform);
                } else {
                    learner.out.send(&commit);
                }
            }
            self.committed_log.push(CommittedTxn { zxid, data });
            committed = true;
        }
        if committed {
            self.discovery.borrow_mut().committed =
                (self.committed_log.base(), self.committed_log.last());
        }
        while let Some((zxid, _)) = self.versions.front() {
            if *zxid > upto {
                break;
            }
            if let Some((_, tree)) = self.versions.pop_front() {
                self.committed_tree = tree;
            }
        }
        while let Some((zxid, link)) = self.pending_syncs.front().copied() {
            if zxid > upto {
                break;
            }
            self.pending_syncs.pop_front();
            if let Some(learner) = self.learners.get(&link) {
                learner.out.send(&QuorumPacket::new(packet::SYNC, 0));
            }
        }
    }

    /// Syncs a learner that finished ACKEPOCH: DIFF (with the committed txns it lacks) or
    /// SNAP (of the last committed version), the outstanding proposals, then NEWLEADER;
    /// from here on it gets every new proposal.
    fn sync_learner(&mut self, request: SyncRequest, sessions: &[(i64, i32)]) {
        let SyncRequest {
            link,
            sid,
            observer,
            out,
            peer_last_zxid,
            older,
        } = request;
        let Some(epoch) = self.epoch() else {
            out.close();
            return;
        };
        // This server's acknowledgements of outstanding proposals came over an earlier link:
        // this sync may truncate them (TRUNC to the last committed zxid, then the outstanding
        // proposals again), so they count again only once it acknowledges them anew (found
        // by the simulation in src/sim: a commit on a stale ACK after a TRUNC re-sync).
        if sid != self.me {
            self.tracker.forget(sid);
        }
        let plan = match &older {
            Some(older) => self.committed_log.plan_sync_from(peer_last_zxid, older),
            None => self.committed_log.plan_sync(peer_last_zxid),
        };
        // How many of a DIFF's txns came from the files (those up to the log's base).
        let base = self.committed_log.base();
        let from_files = |txns: &[CommittedTxn]| txns.iter().filter(|t| t.zxid <= base).count();
        // ZooKeeper's LearnerHandler counts every sync that is not a SNAP as a diff.
        let kind = match plan {
            SyncPlan::Snap => &crate::metrics::quorum::SNAP_COUNT,
            _ => &crate::metrics::quorum::DIFF_COUNT,
        };
        crate::metrics::quorum::add(kind, 1);
        match plan {
            SyncPlan::Trunc { zxid, txns } => {
                log::info!(
                    "syncing server {sid} by TRUNC from 0x{peer_last_zxid:x} to 0x{zxid:x} (then \
                     {} txns)",
                    txns.len()
                );
                out.send(&QuorumPacket::new(packet::TRUNC, zxid));
                for txn in txns {
                    out.send(&QuorumPacket::with_data(
                        packet::PROPOSAL,
                        txn.zxid,
                        txn.data,
                    ));
                    out.send(&QuorumPacket::new(packet::COMMIT, txn.zxid));
                }
            }
            SyncPlan::Diff { zxid, txns } => {
                if peer_last_zxid < base {
                    log::info!(
                        "syncing server {sid} by DIFF from 0x{peer_last_zxid:x} ({} txns, {} of \
                         them read back from the txn log files)",
                        txns.len(),
                        from_files(&txns)
                    );
                } else {
                    log::info!(
                        "syncing server {sid} by DIFF from 0x{peer_last_zxid:x} ({} txns)",
                        txns.len()
                    );
                }
                out.send(&QuorumPacket::new(packet::DIFF, zxid));
                for txn in txns {
                    out.send(&QuorumPacket::with_data(
                        packet::PROPOSAL,
                        txn.zxid,
                        txn.data,
                    ));
                    out.send(&QuorumPacket::new(packet::COMMIT, txn.zxid));
                }
            }
            SyncPlan::Snap => {
                let tree = &self.committed_tree;
                log::info!(
                    "syncing server {sid} by SNAP of 0x{:x} ({} znodes; it has 0x{peer_last_zxid:x})",
                    tree.last_zxid(),
                    tree.node_count()
                );
                out.send(&QuorumPacket::new(packet::SNAP, tree.last_zxid()));
                // Serialized on a blocking thread (a large tree takes a while; the term
                // goes on meanwhile), sent in its place: the link holds what follows.
                let (tree, sessions) = (tree.clone(), sessions.to_vec());
                out.send_later(Box::pin(glommio::executor().spawn_blocking(move || {
                    let started = Instant::now();
                    let mut stream = BytesMut::new();
                    crate::zab::snap::encode_snap_stream(&tree, &sessions, &mut stream);
                    log::info!(
                        "SNAP of 0x{:x} serialized: {} bytes in {} ms",
                        tree.last_zxid(),
                        stream.len(),
                        started.elapsed().as_millis()
                    );
                    stream.freeze()
                })));
            }
        }
        if !observer {
            for (zxid, data) in &self.outstanding {
                out.send(&QuorumPacket::with_data(
                    packet::PROPOSAL,
                    *zxid,
                    data.clone(),
                ));
            }
        }
        out.send(&QuorumPacket::with_data(
            packet::NEWLEADER,
            make_zxid(epoch as u32, 0),
            wire::encode_new_leader_config(&self.config_text),
        ));
        self.learners.insert(
            link,
            Learner {
                sid,
                observer,
                out,
                up_to_date: false,
                newleader_acked: false,
                last_heard: Instant::now(),
            },
        );
    }

    /// Sends UPTODATE to every learner that acknowledged NEWLEADER (once established).
    fn release_learners(&mut self) {
        if !self.discovery.borrow().established {
            return;
        }
        for learner in self.learners.values_mut() {
            if learner.newleader_acked && !learner.up_to_date {
                learner.out.send(&QuorumPacket::new(packet::UPTODATE, -1));
                learner.up_to_date = true;
                log::info!("server {} is up to date", learner.sid);
            }
        }
    }

    /// Pings every learner; drops those not heard from within syncLimit ticks. Returns
    /// false when the leader no longer hears from a quorum.
    fn ping(&mut self) -> bool {
        let now = Instant::now();
        let zxid = self.tracker.proposed();
        let mut dead = Vec::new();
        let mut alive = vec![self.me];
        for (link, learner) in &self.learners {
            if now.duration_since(learner.last_heard) > self.sync_limit || learner.out.is_closed() {
                dead.push(*link);
                continue;
            }
            learner.out.send(&QuorumPacket::new(packet::PING, zxid));
            if learner.up_to_date {
                alive.push(learner.sid);
            }
        }
        for link in dead {
            if let Some(learner) = self.learners.remove(&link) {
                log::warn!(
                    "server {} has not answered within syncLimit; dropping it",
                    learner.sid
                );
                learner.out.close();
            }
        }
        self.config.is_quorum(alive)
    }

    /// What mntr shows of the learners.
    fn quorum_stats(&self) -> super::QuorumStats {
        let mut stats = super::QuorumStats {
            learners: self.learners.len() as u32,
            pending_syncs: self.pending_syncs.len() as u32,
            ..super::QuorumStats::default()
        };
        for learner in self.learners.values().filter(|l| l.up_to_date) {
            if learner.observer {
                stats.synced_observers += 1;
            } else {
                stats.synced_followers += 1;
            }
        }
        stats
    }

    /// Closes every learner link (the term is over).
    pub(crate) fn close_all(&mut self) {
        self.discovery.borrow_mut().ended = true;
        for learner in self.learners.values() {
            learner.out.close();
        }
        self.learners.clear();
    }
}

/// ZooKeeper's bytes for one of our txns: TxnHeader + record, then the TxnDigest of the
/// tree after it when known (txns recovered from our log at the start of a term have none;
/// a ZooKeeper learner skips the check for those).
pub(crate) fn encode_for_learners(header: &TxnHeader, txn: &Txn, digest: Option<i64>) -> Bytes {
    let digest = digest.map(|tree_digest| TxnDigest {
        version: DIGEST_VERSION,
        tree_digest,
    });
    let hint = OpHint::from_op(header.op);
    let mut out = BytesMut::new();
    let encoded = ZkTxnHeader::for_txn(
        header.session_id,
        header.cxid,
        header.zxid,
        header.time_ms,
        txn,
        hint,
    )
    .and_then(|zk| encode_txn(&zk, txn, &[], digest.as_ref(), &mut out));
    if let Err(e) = encoded {
        // Every txn the ordering core makes has an encoding; one without is a bug, and
        // proposing something else would make the replicas diverge.
        panic!("txn 0x{:x} has no ZooKeeper encoding: {e}", header.zxid);
    }
    out.freeze()
}

impl Discovery {
    /// Decides what a change made possible: the epoch once a quorum connected, the epoch
    /// acknowledged once a quorum acked it. Writes the epoch files (the caller's `epochs`).
    fn advance(&mut self, epochs: &super::persistence::EpochFiles) -> Result<(), String> {
        if self.epoch.is_none() && self.config.is_quorum(self.connecting.keys().copied()) {
            // getEpochToPropose: one more than every accepted epoch of the quorum.
            let epoch = self.connecting.values().copied().max().unwrap_or(0) + 1;
            epochs.set_accepted(epoch)?;
            self.accepted_epoch = epoch;
            self.epoch = Some(epoch);
            log::info!(
                "leading epoch {epoch} (servers {:?} connected)",
                self.connecting.keys()
            );
        }
        if let Some(epoch) = self.epoch {
            if !self.epoch_acked && self.config.is_quorum(self.epoch_acks.iter().copied()) {
                epochs.set_current(epoch)?;
                self.epoch_acked = true;
            }
            if self.epoch_acked
                && !self.established
                && self.config.is_quorum(self.newleader_acks.iter().copied())
            {
                self.established = true;
            }
        }
        Ok(())
    }
}

/// Waits (polling; this runs only while a term starts) until `ready` holds or the term
/// ended or `deadline` passed.
async fn wait_for(
    discovery: &Rc<RefCell<Discovery>>,
    deadline: Instant,
    ready: impl Fn(&Discovery) -> bool,
) -> Result<(), String> {
    loop {
        {
            let d = discovery.borrow();
            if d.ended {
                return Err("the term ended".into());
            }
            if ready(&d) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err("timed out waiting for a quorum".into());
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// One learner's connection: the handshake up to ACKEPOCH here, the sync in the ordering
/// task, then its packets to the inbox.
async fn learner_task(
    link: u64,
    stream: glommio::net::TcpStream,
    discovery: Rc<RefCell<Discovery>>,
    inbox: Rc<super::ordering::Inbox>,
    init_limit: Duration,
) {
    let (out, mut reader) = quorum::split(stream);
    let mut buf = BytesMut::new();
    let result = async {
        let info = quorum::read_one(&mut reader, &mut buf, LEARNER_DATA_MAX, init_limit).await?;
        let observer = match info.kind {
            packet::FOLLOWERINFO => false,
            packet::OBSERVERINFO => true,
            other => {
                return Err(format!(
                    "first packet is {}, not FOLLOWERINFO",
                    wire::packet_name(other)
                ))
            }
        };
        let learner = wire::LearnerInfo::decode(info.data_bytes()).map_err(|e| e.to_string())?;
        let sid = learner.server_id;
        let (me, config_version, voter) = {
            let d = discovery.borrow();
            (d.me, d.config.version, d.config.is_voter(sid) && !observer)
        };
        if sid == me || discovery.borrow().config.member(sid).is_none() {
            return Err(format!(
                "learner claims server id {sid}, which is not a peer"
            ));
        }
        if learner.config_version > config_version {
            return Err(format!("server {sid} is ahead of our config version"));
        }
        let learner_epoch = epoch_of(info.zxid) as i64;
        if voter {
            discovery.borrow_mut().connecting.insert(sid, learner_epoch);
            inbox.push(Input::Learner(LearnerEvent::Progress));
        }
        let deadline = Instant::now() + init_limit;
        wait_for(&discovery, deadline, |d| d.epoch.is_some()).await?;
        let epoch = discovery.borrow().epoch.unwrap_or(0);
        out.send(&QuorumPacket::with_data(
            packet::LEADERINFO,
            make_zxid(epoch as u32, 0),
            wire::LeaderInfo {
                protocol_version: wire::ZAB_PROTOCOL_VERSION,
            }
            .encode(),
        ));
        let ack = quorum::read_one(&mut reader, &mut buf, LEARNER_DATA_MAX, init_limit).await?;
        if ack.kind != packet::ACKEPOCH {
            return Err(format!(
                "expected ACKEPOCH, got {}",
                wire::packet_name(ack.kind)
            ));
        }
        let ack_epoch = wire::AckEpoch::decode(ack.data_bytes()).map_err(|e| e.to_string())?;
        let peer_last_zxid = ack.zxid;
        if ack_epoch.current_epoch != wire::AckEpoch::SAME_EPOCH {
            let summary = discovery.borrow().summary;
            if (ack_epoch.current_epoch as i64, peer_last_zxid) > summary {
                return Err(format!(
                    "server {sid} is ahead of this leader (epoch {}, zxid 0x{peer_last_zxid:x})",
                    ack_epoch.current_epoch
                ));
            }
            if voter && peer_last_zxid != -1 {
                discovery.borrow_mut().epoch_acks.insert(sid);
                inbox.push(Input::Learner(LearnerEvent::Progress));
            }
        }
        wait_for(&discovery, deadline, |d| d.epoch_acked).await?;
        let older = older_history(&discovery, sid, peer_last_zxid).await;
        inbox.push(Input::Learner(LearnerEvent::Sync {
            link,
            sid,
            observer,
            out: out.clone(),
            peer_last_zxid,
            older,
        }));
        let ack = quorum::read_one(&mut reader, &mut buf, LEARNER_DATA_MAX, init_limit).await?;
        if ack.kind != packet::ACK {
            return Err(format!(
                "expected the NEWLEADER ACK, got {}",
                wire::packet_name(ack.kind)
            ));
        }
        if ack.zxid == make_zxid(epoch as u32, 0) && voter {
            discovery.borrow_mut().newleader_acks.insert(sid);
        }
        inbox.push(Input::Learner(LearnerEvent::NewLeaderAcked { link }));
        Ok(sid)
    }
    .await;
    let sid = match result {
        Ok(sid) => sid,
        Err(reason) => {
            log::warn!("learner handshake failed: {reason}");
            out.close();
            inbox.push(Input::Learner(LearnerEvent::Closed { link, reason }));
            return;
        }
    };
    let reason = quorum::read_packets(&mut reader, &mut buf, &out, LEARNER_DATA_MAX, |packet| {
        inbox.push(Input::Learner(LearnerEvent::Packet { link, packet }));
        true
    })
    .await;
    log::info!("server {sid} left: {reason}");
    out.close();
    inbox.push(Input::Learner(LearnerEvent::Closed { link, reason }));
}

/// For a learner whose last zxid is older than the committed log: the txns from that zxid
/// up to the last committed one, read back from the log files on a blocking thread (the
/// ordering core goes on meanwhile). The log may move on before the sync: it keeps
/// `COMMITTED_LOG_CAPACITY` txns, so the read covers its base at sync time unless that many
/// commit meanwhile, and then the sync falls back to SNAP (`CommittedLog::plan_sync_from`).
/// None when the log covers the learner, the learner has nothing (it gets a SNAP), or the
/// files cannot serve it (logged with the reason).
async fn older_history(
    discovery: &Rc<RefCell<Discovery>>,
    sid: ServerId,
    peer_last: i64,
) -> Option<Vec<CommittedTxn>> {
    let (history, (base, last)) = {
        let d = discovery.borrow();
        (d.history.clone()?, d.committed)
    };
    if peer_last >= base || peer_last <= 0 {
        return None;
    }
    let started = Instant::now();
    let read = glommio::executor()
        .spawn_blocking(move || {
            history.read(peer_last, last).map(|txns| {
                txns.iter()
                    .map(|(header, txn)| CommittedTxn {
                        zxid: header.zxid,
                        data: encode_for_learners(header, txn, None),
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await;
    match read {
        Ok(txns) => {
            log::info!(
                "server {sid} is behind the committed log (0x{peer_last:x} < 0x{base:x}): read \
                 {} txns back from the txn log files in {} ms",
                txns.len(),
                started.elapsed().as_millis()
            );
            Some(txns)
        }
        Err(why) => {
            log::info!(
                "server {sid} is behind the committed log (0x{peer_last:x} < 0x{base:x}) and \
                 the txn log files cannot serve a DIFF: {why}"
            );
            None
        }
    }
}

/// Accepts learners on the quorum port until the term ends.
pub(crate) fn spawn_acceptor(
    listener: glommio::net::TcpListener,
    discovery: Rc<RefCell<Discovery>>,
    inbox: Rc<super::ordering::Inbox>,
    init_limit: Duration,
) {
    glommio::spawn_local(async move {
        let mut next_link = 1u64;
        loop {
            let accepted =
                futures_lite::future::or(async { Some(listener.accept().await) }, async {
                    loop {
                        if discovery.borrow().ended {
                            return None;
                        }
                        glommio::timer::sleep(Duration::from_millis(50)).await;
                    }
                })
                .await;
            match accepted {
                None => return,
                Some(Ok(stream)) => {
                    let link = next_link;
                    next_link += 1;
                    glommio::spawn_local(learner_task(
                        link,
                        stream,
                        discovery.clone(),
                        inbox.clone(),
                        init_limit,
                    ))
                    .detach();
                }
                Some(Err(e)) => {
                    log::warn!("quorum port accept failed: {e}");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .detach();
}

/// Handles one learner event in the ordering task. Returns Some(zxid) when it committed up
/// to that zxid; commit items for learner requests are appended to `items`.
pub(crate) fn on_learner_event(
    ordering: &mut Ordering,
    event: LearnerEvent,
    items: &mut Vec<CommitItem>,
    log: &mut Vec<(TxnHeader, Txn)>,
) -> Option<i64> {
    let sessions: Vec<(i64, i32)> = {
        if matches!(event, LearnerEvent::Sync { .. }) {
            let mut s: Vec<(i64, i32)> = ordering
                .sessions
                .iter()
                .map(|s| (s.id, s.timeout_ms))
                .collect();
            s.sort_unstable();
            s
        } else {
            Vec::new()
        }
    };
    let now_ms = ordering.now_ms();
    let super::ordering::Role::Leader(leading) = &mut ordering.role else {
        return None;
    };
    match event {
        LearnerEvent::Progress => None,
        LearnerEvent::Sync {
            link,
            sid,
            observer,
            out,
            peer_last_zxid,
            older,
        } => {
            let request = SyncRequest {
                link,
                sid,
                observer,
                out,
                peer_last_zxid,
                older,
            };
            leading.sync_learner(request, &sessions);
            None
        }
        LearnerEvent::NewLeaderAcked { link } => {
            if let Some(learner) = leading.learners.get_mut(&link) {
                learner.newleader_acked = true;
                learner.last_heard = Instant::now();
            }
            leading.release_learners();
            None
        }
        LearnerEvent::Closed { link, reason } => {
            if let Some(learner) = leading.learners.remove(&link) {
                log::info!("server {} is gone: {reason}", learner.sid);
                learner.out.close();
            }
            None
        }
        LearnerEvent::Packet { link, packet } => {
            let learner = leading.learners.get_mut(&link)?;
            learner.last_heard = Instant::now();
            let sid = learner.sid;
            let observer = learner.observer;
            match packet.kind {
                packet::ACK => {
                    if observer {
                        return None;
                    }
                    let outcome = leading.tracker.ack(sid, packet.zxid);
                    leading.on_ack_outcome(outcome)
                }
                packet::PING => {
                    match wire::decode_ping_touches(packet.data_bytes()) {
                        Ok(touches) => {
                            for touch in touches {
                                ordering.sessions.touch(touch.session_id, now_ms);
                            }
                        }
                        Err(e) => log::warn!("bad PING from server {sid}: {e}"),
                    }
                    None
                }
                packet::REVALIDATE => {
                    on_revalidate(ordering, link, sid, &packet, items);
                    None
                }
                packet::REQUEST => {
                    on_request(ordering, link, sid, packet, items, log);
                    None
                }
                other => {
                    log::warn!(
                        "unexpected {} from server {sid}; ignored",
                        wire::packet_name(other)
                    );
                    None
                }
            }
        }
    }
}

fn on_revalidate(
    ordering: &mut Ordering,
    link: u64,
    sid: ServerId,
    packet: &QuorumPacket,
    items: &mut Vec<CommitItem>,
) {
    let Ok(request) = wire::RevalidateRequest::decode(packet.data_bytes()) else {
        log::warn!("bad REVALIDATE from server {sid}");
        return;
    };
    let id = request.session_id;
    let now_ms = ordering.now_ms();
    let valid = ordering.sessions.is_live(id);
    if valid {
        ordering.sessions.touch(id, now_ms);
        // The session moves to that server: a local connection of it is closed.
        if let Some(old) = ordering.sessions.set_owner(id, None) {
            items.push(ordering.bare_item(Some(old), Action::Close));
        }
    }
    let super::ordering::Role::Leader(leading) = &mut ordering.role else {
        return;
    };
    if valid {
        leading.remote_owner.insert(id, sid);
    }
    if let Some(learner) = leading.learners.get(&link) {
        learner.out.send(&QuorumPacket::with_data(
            packet::REVALIDATE,
            -1,
            wire::RevalidateReply {
                session_id: id,
                valid,
            }
            .encode(),
        ));
    }
}

/// A learner forwarded a client's request: order it like a local write, except that the
/// reply goes back as the committed txn (the learner answers its client from it), so every
/// outcome, failures included, is a txn.
fn on_request(
    ordering: &mut Ordering,
    link: u64,
    sid: ServerId,
    packet: QuorumPacket,
    items: &mut Vec<CommitItem>,
    log: &mut Vec<(TxnHeader, Txn)>,
) {
    let auth: Vec<Id> = packet.authinfo.clone().unwrap_or_default();
    let Some(data) = packet.data.clone() else {
        log::warn!("REQUEST without data from server {sid}");
        return;
    };
    let request = match wire::LearnerRequest::decode(&data) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("bad REQUEST from server {sid}: {e}");
            return;
        }
    };
    let session_id = request.session_id;
    let now_ms = ordering.now_ms();
    let meta = TxnMeta {
        cxid: request.cxid,
        op: request.op,
    };
    match OpCode::from_i32(request.op) {
        Some(OpCode::CreateSession) => {
            let timeout_ms = if request.body.len() >= 4 {
                i32::from_be_bytes([
                    request.body[0],
                    request.body[1],
                    request.body[2],
                    request.body[3],
                ])
            } else {
                ordering.config_min_session_timeout()
            };
            ordering.create_remote_session(session_id, timeout_ms, now_ms, items, log);
            if let super::ordering::Role::Leader(leading) = &mut ordering.role {
                leading.remote_owner.insert(session_id, sid);
            }
            return;
        }
        Some(OpCode::Sync) => {
            // After every proposal before it, including the txns of this batch (not
            // proposed yet): those of requests this learner sent before the sync among
            // them. A Java learner matches the SYNC with the head of its queue of local
            // writes; a SYNC that overtakes the COMMIT of one of its earlier writes leaves
            // its request queue stuck (reads after the sync and later writes of its clients
            // are never answered; ZooKeeper's leader orders a learner's sync after its
            // earlier requests). Found by tests/rolling_migration.rs.
            let last_in_batch = log.last().map(|(header, _)| header.zxid);
            if let super::ordering::Role::Leader(leading) = &mut ordering.role {
                match last_in_batch.or_else(|| leading.tracker.outstanding().last()) {
                    None => {
                        if let Some(learner) = leading.learners.get(&link) {
                            learner.out.send(&QuorumPacket::new(packet::SYNC, 0));
                        }
                    }
                    Some(last) => leading.pending_syncs.push_back((last, link)),
                }
            }
            return;
        }
        _ => {}
    }
    let live = ordering
        .sessions
        .get(session_id)
        .is_some_and(|s| !s.closing);
    let owned = match &ordering.role {
        super::ordering::Role::Leader(leading) => {
            leading.remote_owner.get(&session_id) == Some(&sid)
        }
        _ => false,
    };
    if request.op == OpCode::CloseSession as i32 {
        if live && ordering.sessions.mark_closing(session_id) {
            log::info!("Closing session 0x{session_id:x} at the client's request (server {sid})");
            ordering.close_session(session_id, request.cxid, None, Action::None, items, log);
            if let super::ordering::Role::Leader(leading) = &mut ordering.role {
                leading.remote_owner.remove(&session_id);
            }
        } else {
            ordering.process_remote_write(
                session_id,
                meta,
                Err(ErrorCode::SessionExpired),
                &auth,
                items,
                log,
            );
        }
        return;
    }
    if !live {
        ordering.process_remote_write(
            session_id,
            meta,
            Err(ErrorCode::SessionExpired),
            &auth,
            items,
            log,
        );
        return;
    }
    if !owned {
        ordering.process_remote_write(
            session_id,
            meta,
            Err(ErrorCode::SessionMoved),
            &auth,
            items,
            log,
        );
        return;
    }
    ordering.sessions.touch(session_id, now_ms);
    let decoded = decode_request(request.cxid, request.op, &request.body);
    ordering.process_remote_write(
        session_id,
        meta,
        decoded.as_ref().ok_or(ErrorCode::MarshallingError),
        &auth,
        items,
        log,
    );
}

/// The client request a learner forwarded (header rebuilt from cxid and op).
fn decode_request(cxid: i32, op: i32, body: &Bytes) -> Option<Request> {
    let mut frame = BytesMut::with_capacity(8 + body.len());
    frame.extend_from_slice(&cxid.to_be_bytes());
    frame.extend_from_slice(&op.to_be_bytes());
    frame.extend_from_slice(body);
    crate::proto::codec::decode_request_frame(&frame.freeze())
        .ok()
        .map(|(_, request)| request)
}

/// Runs one term as leader on the ordering executor. Returns when the term ends (no
/// quorum within initLimit, or a quorum lost), after closing every learner link.
/// `listener`: the quorum port, when the caller bound it already (at the decision).
pub(crate) async fn run_term(
    term: super::ensemble::Term<'_>,
    election: &super::election::ElectionHandle,
    listener: Option<glommio::net::TcpListener>,
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
    let member = quorum
        .member(me)
        .ok_or_else(|| format!("no server.{me} line"))?
        .clone();
    let tick = Duration::from_millis(config.tick_time_ms as u64);
    let init_limit = tick * config.init_limit.max(1);
    let listener = match listener {
        Some(listener) => listener,
        None => {
            let listen = super::ensemble::resolve(&member.host, member.quorum_port)?;
            super::ensemble::bind_quorum(listen).await?
        }
    };
    let discovery = match &ordering.role {
        super::ordering::Role::Leader(leading) => leading.discovery.clone(),
        _ => return Err("not leading".into()),
    };
    spawn_acceptor(
        listener,
        discovery.clone(),
        wiring.inbox.clone(),
        init_limit,
    );
    let started = Instant::now();
    // The term's epoch once a quorum acknowledged NEWLEADER: the term serves from then on.
    let mut established: Option<i64> = None;
    let reason = loop {
        let inputs = wiring.inbox.take(super::ordering::BATCH_INPUTS_MAX).await;
        let mut rest = Vec::with_capacity(inputs.len());
        let mut commit_upto = None;
        let mut lost = false;
        let mut items = Vec::new();
        let mut txns = Vec::new();
        ordering.start_round();
        for input in inputs {
            match input {
                Input::Learner(event) => {
                    if let Some(z) = on_learner_event(ordering, event, &mut items, &mut txns) {
                        commit_upto = Some(z);
                    }
                }
                Input::Persisted(upto) => {
                    if let super::ordering::Role::Leader(leading) = &mut ordering.role {
                        if let Some(z) = leading.persisted(upto) {
                            commit_upto = Some(z);
                        }
                    }
                }
                Input::Tick if established.is_some() => {
                    if let super::ordering::Role::Leader(leading) = &mut ordering.role {
                        if !leading.ping() {
                            lost = true;
                        }
                        let quorum_stats = leading.quorum_stats();
                        ordering.publish_quorum_stats(quorum_stats);
                    }
                    rest.push(Input::Tick);
                }
                // Client requests wait for the term to be established (the shards do not
                // serve before; what is left from an earlier term is dropped).
                other if established.is_some() => rest.push(other),
                _ => {}
            }
        }
        if lost {
            break "lost the quorum (no answer from a majority within syncLimit)".to_string();
        }
        // Requests from learners, as one batch of their own, then the local ones.
        ordering.finish_batch(items, txns, log_queue, &wiring.releaser);
        if let Some(epoch) = established {
            ordering.order_round(rest, log_queue, &wiring.releaser);
            if crate::zab::counter_exhausted(ordering.tree.last_zxid()) {
                break format!(
                    "the zxid counter of epoch {epoch} is nearly exhausted (0x{:x}): a new epoch \
                     is needed (ZOOKEEPER-1277)",
                    ordering.tree.last_zxid()
                );
            }
        } else {
            let advanced = discovery.borrow_mut().advance(epochs);
            if let Err(e) = advanced {
                break e;
            }
            if discovery.borrow().established {
                let epoch = discovery.borrow().epoch.unwrap_or(0);
                ordering.start_epoch(make_zxid(epoch as u32, 0));
                if let super::ordering::Role::Leader(leading) = &mut ordering.role {
                    leading.tracker =
                        AckTracker::new(me, (*leading.config).clone(), make_zxid(epoch as u32, 0));
                    leading.release_learners();
                }
                ordering.publish_initial(&wiring.releaser);
                ordering.set_leader(me);
                ordering.set_mode(super::Mode::Leader);
                election.command(super::election::Command::Settled { epoch });
                log::info!(
                    "established epoch {epoch} as leader in {} ms; serving clients",
                    started.elapsed().as_millis()
                );
                established = Some(epoch);
            } else if started.elapsed() > init_limit {
                break format!(
                    "no quorum of followers within initLimit ({} ms)",
                    init_limit.as_millis()
                );
            }
        }
        if let Some(upto) = commit_upto {
            wiring.releaser.release_upto(upto);
        }
    };
    if let super::ordering::Role::Leader(leading) = &mut ordering.role {
        leading.close_all();
    }
    ordering.publish_quorum_stats(super::QuorumStats::default());
    Err(reason)
}
