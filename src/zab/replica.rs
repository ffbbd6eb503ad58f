//! One Zab replica as a pure state machine: `Replica::step(input) -> Vec<Action>`.
//!
//! It covers what `server/leader.rs` and `server/follower.rs` do today around their sockets
//! and files: discovery (FOLLOWERINFO, LEADERINFO, ACKEPOCH with acceptedEpoch and
//! currentEpoch), sync (DIFF, TRUNC or SNAP from the `CommittedLog` plan, NEWLEADER,
//! UPTODATE, in Apache ZooKeeper 3.8.5's learner order: ZAB-WIRE.md 3.6), and the broadcast
//! (PROPOSAL, ACK, COMMIT, INFORM, PING, REQUEST, SYNC), the leader's quorum check every
//! ping round and a learner's giving up on a silent leader.
//!
//! The driver owns the sockets, the disk, the clock and the election port:
//! - The election is not part of this machine: the driver runs `zab::election::Election`
//!   with the position an [`Action::Looking`] gives (last logged zxid, currentEpoch) and
//!   feeds its decision back as [`Input::Elected`]. [`Action::Serving`] carries the epoch
//!   for the election's `update_peer_epoch` (ZOOKEEPER-1732).
//! - Actions are carried out in order. `WriteAcceptedEpoch` / `WriteCurrentEpoch` are
//!   synchronous (the file is durable before the next action), as ZooKeeper's
//!   `AtomicFileWritingIdiom` writes are. `Persist`, `Truncate` and `ApplySnapshot` go to
//!   the log in order and complete later: the driver reports `Persisted { upto }` (the log
//!   is durable up to `upto`), `Truncated { last_zxid }` and `SnapshotApplied { zxid }`.
//! - `Commit { upto }` lets the driver apply (serve) every logged txn up to `upto`: it is
//!   emitted only for txns committed by a quorum and durable here.
//! - Messages mirror `zab::wire`'s QuorumPacket types one to one (see [`Msg`]); a learner's
//!   packets are reported with the server id its FOLLOWERINFO named.
//!
//! Invariants (a broken one panics; input from the network that does not fit only ends the
//! term, except a COMMIT that names another txn than the oldest pending one, which means
//! the replicas diverged and stops the server as ZooKeeper's `System.exit(12)` does):
//! - An ACK of a proposal (the leader's own included, through `AckTracker::persisted`)
//!   comes only after `Persisted` covered it.
//! - The NEWLEADER ACK is sent only after every proposal received before NEWLEADER is
//!   durable and currentEpoch is written (ZOOKEEPER-4646/4785/4643), and it is the first
//!   packet after ACKEPOCH; proposal ACKs follow the UPTODATE ACK (ZOOKEEPER-4685).
//! - A leader writes currentEpoch only once its own history is durable, and counts itself
//!   for NEWLEADER only then.
//! - The advertised last zxid is the log's: nothing received during a sync moves it before
//!   it is logged (ZOOKEEPER-2355, 3642); a learner rejects a gap in a proposal stream
//!   (ZOOKEEPER-4925); a TRUNC never removes a txn this replica applied.
//! - A learner's ACKs of outstanding proposals are forgotten when its link goes: the sync
//!   of its next link may TRUNC them away before it logs and acknowledges them again.
//! - A truncation or snapshot install asked for by an earlier term that completes in a
//!   later one ends that term (the log changed under it); appends never queue behind one.
//! - Zxids of logged txns strictly increase; a leader ends its term before the counter
//!   reaches `Params::counter_limit` (ZOOKEEPER-1277).
//! - At `Start`, a log whose last txn is of a newer epoch than currentEpoch (a crash
//!   between a sync's durable log and its currentEpoch write) adopts that epoch.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::broadcast::{AckOutcome, AckTracker, CommittedLog, CommittedTxn, SyncPlan};
use super::{counter_of, epoch_of, make_zxid, PeerState, QuorumConfig, ServerId};

/// Between a learner's connection attempts (ZooKeeper's
/// `zookeeper.leaderConnectDelayDuringRetryMs`).
pub const CONNECT_RETRY_MS: u64 = 100;

/// Timing and sizes, ZooKeeper's names.
#[derive(Debug, Clone)]
pub struct Params {
    pub tick_ms: u64,
    /// Ticks a learner has to connect and sync, and a leader to establish its epoch.
    pub init_limit: u64,
    /// Ticks a peer may be silent in the broadcast phase.
    pub sync_limit: u64,
    /// Committed txns kept to sync learners by DIFF (ZooKeeper's commitLogCount).
    pub committed_log_capacity: usize,
    /// The last zxid counter a leader may use (ZOOKEEPER-1277).
    pub counter_limit: u32,
}

impl Params {
    pub fn new(tick_ms: u64, init_limit: u64, sync_limit: u64) -> Params {
        Params {
            tick_ms,
            init_limit,
            sync_limit,
            committed_log_capacity: 500,
            counter_limit: u32::MAX - super::COUNTER_MARGIN,
        }
    }
}

/// What a replica starts from: its epoch files and the end of its durable log.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub accepted_epoch: i64,
    pub current_epoch: i64,
    /// The zxid before `tail` (the last zxid, when `tail` is empty).
    pub base: i64,
    /// The last logged txns, oldest first (what a leader can DIFF from; may be empty).
    pub tail: Vec<CommittedTxn>,
}

/// A quorum-port packet (ZooKeeper's `Leader.*` packet types; the driver maps each to a
/// `wire::QuorumPacket` and back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// FOLLOWERINFO / OBSERVERINFO: zxid `accepted_epoch << 32`.
    LearnerInfo {
        accepted_epoch: i64,
        observer: bool,
    },
    /// LEADERINFO: zxid `epoch << 32`.
    LeaderInfo {
        epoch: i64,
    },
    /// ACKEPOCH: zxid the learner's last logged zxid; data its currentEpoch or -1.
    AckEpoch {
        last_zxid: i64,
        current_epoch: i64,
    },
    Diff {
        zxid: i64,
    },
    Trunc {
        zxid: i64,
    },
    /// SNAP and the snapshot stream after it (the driver's encoding of its state at `zxid`).
    Snap {
        zxid: i64,
        state: Bytes,
    },
    Proposal {
        zxid: i64,
        data: Bytes,
    },
    Commit {
        zxid: i64,
    },
    /// A committed txn for an observer.
    Inform {
        zxid: i64,
        data: Bytes,
    },
    NewLeader {
        zxid: i64,
    },
    UpToDate,
    Ack {
        zxid: i64,
    },
    /// Leader -> learner: zxid its last proposed; learner -> leader: the session touches
    /// (the driver fills them in; this machine sends `data` empty).
    Ping {
        zxid: i64,
        data: Bytes,
    },
    /// REQUEST: a client's request forwarded by a learner (`sync`: its op is sync).
    Request {
        sync: bool,
        data: Bytes,
    },
    Sync,
}

/// What the driver feeds in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Begin: the replica asks for an election.
    Start { now_ms: u64 },
    /// The election decided (`zab::election::Action::Decided`).
    Elected {
        now_ms: u64,
        state: PeerState,
        leader: ServerId,
    },
    /// A quorum-port connection to `peer` is up (a learner's `Connect` succeeded).
    Connected { now_ms: u64, peer: ServerId },
    /// The connection to `peer` is gone (or a `Connect` failed).
    Disconnected { now_ms: u64, peer: ServerId },
    Received {
        now_ms: u64,
        from: ServerId,
        msg: Msg,
    },
    /// Time passed (the driver ticks at least every `tick_ms / 2`).
    Tick { now_ms: u64 },
    /// Leader: propose these txns (zxids from `next_zxid`, in order).
    Propose {
        now_ms: u64,
        txns: Vec<CommittedTxn>,
    },
    /// Learner: forward a local client's request to the leader.
    Forward { now_ms: u64, data: Bytes },
    /// A local client's sync: answered by `SyncDone` once everything committed before it
    /// at the leader is applied here.
    Sync { now_ms: u64 },
    /// The log is durable up to `upto` (never more than was handed to `Persist`).
    Persisted { upto: i64 },
    /// A `Truncate` completed: the log now ends at `last_zxid` (a history that lacked the
    /// truncation point was removed, leaving `last_zxid` lower).
    Truncated { last_zxid: i64 },
    /// An `ApplySnapshot` completed: state and log are the snapshot's, durable.
    SnapshotApplied { zxid: i64 },
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Look for a leader with this position (the term, if any, is over: clients of this
    /// server are disconnected, its applied state rolls back to what is committed).
    Looking {
        last_zxid: i64,
        current_epoch: i64,
        reason: String,
    },
    /// Open the quorum-port connection to the leader.
    Connect {
        to: ServerId,
    },
    /// Close the connection to `peer`.
    Disconnect {
        peer: ServerId,
    },
    Send {
        to: ServerId,
        msg: Msg,
    },
    /// Send SNAP with the driver's state at `zxid` (committed, or the leader's whole
    /// history before its epoch is established).
    SendSnapshot {
        to: ServerId,
        zxid: i64,
    },
    /// Append to the log (then `Persisted`).
    Persist {
        txns: Vec<CommittedTxn>,
    },
    /// Cut the log after `to` (then `Truncated`).
    Truncate {
        to: i64,
    },
    /// Replace state and log with this snapshot, durably (then `SnapshotApplied`).
    ApplySnapshot {
        zxid: i64,
        state: Bytes,
    },
    WriteAcceptedEpoch(i64),
    WriteCurrentEpoch(i64),
    /// Every logged txn up to `upto` is committed and durable here: apply and serve it.
    Commit {
        upto: i64,
    },
    /// The term serves clients from now on, in this role.
    Serving {
        state: PeerState,
        epoch: i64,
    },
    /// Leader: a learner forwarded a client's request; order it (then `Propose`).
    LearnerRequest {
        from: ServerId,
        data: Bytes,
    },
    /// Leader: a learner's PING answer with its session touches.
    PingTouches {
        from: ServerId,
        data: Bytes,
    },
    /// The oldest local sync is answered.
    SyncDone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LearnerPhase {
    /// FOLLOWERINFO received; LEADERINFO waits for the epoch.
    AwaitEpoch,
    /// LEADERINFO sent.
    AwaitAckEpoch,
    /// ACKEPOCH received; the sync waits for a quorum of ACKEPOCHs.
    AwaitSync,
    /// Synced (gets live proposals); NEWLEADER sent.
    AwaitNewLeaderAck,
    /// NEWLEADER acknowledged; UPTODATE waits for the epoch to be established.
    AckedNewLeader,
    UpToDate,
}

#[derive(Debug)]
struct LearnerLink {
    observer: bool,
    voter: bool,
    phase: LearnerPhase,
    peer_last: i64,
    last_heard_ms: u64,
}

impl LearnerLink {
    /// Whether it gets live proposals and commits.
    fn registered(&self) -> bool {
        matches!(
            self.phase,
            LearnerPhase::AwaitNewLeaderAck | LearnerPhase::AckedNewLeader | LearnerPhase::UpToDate
        )
    }
}

#[derive(Debug)]
struct Leading {
    started_ms: u64,
    last_ping_ms: u64,
    /// (currentEpoch, last logged zxid) at the start: a learner newer than this is refused.
    summary: (i64, i64),
    /// Voters that sent FOLLOWERINFO (and this leader), with their accepted epochs.
    connecting: BTreeMap<ServerId, i64>,
    epoch: Option<i64>,
    epoch_acks: BTreeSet<ServerId>,
    /// A quorum acknowledged the epoch and currentEpoch is written.
    epoch_acked: bool,
    newleader_acks: BTreeSet<ServerId>,
    established: bool,
    learners: BTreeMap<ServerId, LearnerLink>,
    /// Created when the epoch is established.
    tracker: Option<AckTracker>,
    /// The committed history learners are synced from: the whole logged history at the
    /// start of the term (it becomes committed with the epoch), then every commit.
    committed_log: CommittedLog,
    /// Proposed, not committed, oldest first.
    outstanding: VecDeque<CommittedTxn>,
    /// SYNCs waiting for a zxid to commit: (zxid, who asked; `me` for a local sync).
    pending_syncs: VecDeque<(i64, ServerId)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowerPhase {
    Connecting,
    AwaitLeaderInfo,
    AwaitSyncMode,
    Syncing,
    /// NEWLEADER acknowledged; waiting for UPTODATE.
    AwaitUpToDate,
    Broadcast,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SyncMode {
    None,
    Diff,
    Trunc {
        to: i64,
        done: bool,
    },
    Snap {
        zxid: i64,
        state: Option<Bytes>,
        applied: bool,
    },
}

#[derive(Debug)]
struct Following {
    leader: ServerId,
    observer: bool,
    phase: FollowerPhase,
    epoch: i64,
    started_ms: u64,
    last_heard_ms: u64,
    /// While connecting: when to try again (the leader may not listen yet).
    retry_at_ms: Option<u64>,
    mode: SyncMode,
    newleader_seen: bool,
    /// The buffered proposals were handed to the log at NEWLEADER.
    flushed: bool,
    /// The log must be durable up to here before the NEWLEADER ACK.
    newleader_target: i64,
    /// Proposals received before the flush.
    buffer: Vec<CommittedTxn>,
    /// Proposals received after the flush, before currentEpoch is written: logged after
    /// it (ZooKeeper's learner handles NEWLEADER synchronously, so nothing of the new
    /// epoch reaches its log before currentEpoch).
    late: Vec<CommittedTxn>,
    /// COMMITs received before UPTODATE.
    commits: Vec<i64>,
    /// The last proposal received in this term (for the contiguity check).
    last_received: i64,
    /// What the sync mode packet says is committed: DIFF's zxid (the leader's last
    /// committed), TRUNC's or SNAP's.
    sync_committed: i64,
    /// Logged in this term, not committed, oldest first.
    pending: VecDeque<i64>,
    /// Logged in this term, not acknowledged yet.
    unacked: VecDeque<i64>,
}

#[derive(Debug)]
enum Role {
    Idle,
    Looking,
    Leading(Box<Leading>),
    Following(Box<Following>),
}

/// One Zab replica.
#[derive(Debug)]
pub struct Replica {
    me: ServerId,
    config: QuorumConfig,
    params: Params,
    accepted_epoch: i64,
    current_epoch: i64,
    /// The recent logged txns (committed or not): a new leader's history.
    tail: CommittedLog,
    /// The last logged zxid (handed to `Persist`, or recovered).
    logged: i64,
    /// The log is durable up to here.
    durable: i64,
    /// `epoch << 32` once everything before the epoch is durable here (leader: at the
    /// epoch ack; learner: at the NEWLEADER ACK); 0 otherwise.
    durable_floor: i64,
    /// Known committed (a zxid; `epoch << 32` covers the history before an epoch).
    committed: i64,
    /// Emitted in `Commit` up to here.
    applied: i64,
    /// The last txn (a real zxid) covered by `applied`.
    applied_txn: i64,
    /// Local syncs: answered once `applied` reaches the zxid.
    sync_waiters: VecDeque<i64>,
    /// Numbers the terms (each `Elected`).
    term: u64,
    /// `Truncate` / `ApplySnapshot` not completed yet, oldest first: the term that asked.
    /// A term's handshake and its first append wait for them; one of an earlier term that
    /// completes in a later one ends that term (the log changed under it).
    rewrites: VecDeque<u64>,
    role: Role,
}

impl Replica {
    pub fn new(
        me: ServerId,
        config: QuorumConfig,
        params: Params,
        recovered: Recovered,
    ) -> Replica {
        assert!(
            recovered.accepted_epoch >= recovered.current_epoch,
            "server {me}: acceptedEpoch {} is behind currentEpoch {}",
            recovered.accepted_epoch,
            recovered.current_epoch
        );
        let mut tail = CommittedLog::new(recovered.base, params.committed_log_capacity);
        for txn in recovered.tail {
            tail.push(txn);
        }
        let logged = tail.last();
        Replica {
            me,
            config,
            params,
            accepted_epoch: recovered.accepted_epoch,
            current_epoch: recovered.current_epoch,
            tail,
            logged,
            durable: logged,
            durable_floor: 0,
            committed: 0,
            applied: 0,
            applied_txn: 0,
            sync_waiters: VecDeque::new(),
            term: 0,
            rewrites: VecDeque::new(),
            role: Role::Idle,
        }
    }

    pub fn id(&self) -> ServerId {
        self.me
    }

    /// The role: LOOKING until a term serves or syncs.
    pub fn state(&self) -> PeerState {
        match &self.role {
            Role::Idle | Role::Looking => PeerState::Looking,
            Role::Leading(_) => PeerState::Leading,
            Role::Following(f) if f.observer => PeerState::Observing,
            Role::Following(_) => PeerState::Following,
        }
    }

    /// Whether clients are served (an established leader, or a learner after UPTODATE).
    pub fn serving(&self) -> bool {
        match &self.role {
            Role::Leading(l) => l.established,
            Role::Following(f) => f.phase == FollowerPhase::Broadcast,
            _ => false,
        }
    }

    /// The epoch of the current term, once known.
    pub fn epoch(&self) -> Option<i64> {
        match &self.role {
            Role::Leading(l) => l.epoch,
            Role::Following(f) if f.epoch > 0 => Some(f.epoch),
            _ => None,
        }
    }

    /// The leader this replica follows (itself when leading).
    pub fn leader(&self) -> Option<ServerId> {
        match &self.role {
            Role::Leading(_) => Some(self.me),
            Role::Following(f) => Some(f.leader),
            _ => None,
        }
    }

    /// The zxid the next proposal must have (an established leader only).
    pub fn next_zxid(&self) -> Option<i64> {
        match &self.role {
            Role::Leading(l) if l.established => {
                let proposed = l.tracker.as_ref().map_or(0, |t| t.proposed());
                Some(proposed + 1)
            }
            _ => None,
        }
    }

    pub fn logged(&self) -> i64 {
        self.logged
    }

    pub fn durable(&self) -> i64 {
        self.durable
    }

    pub fn committed(&self) -> i64 {
        self.committed
    }

    pub fn applied(&self) -> i64 {
        self.applied
    }

    pub fn accepted_epoch(&self) -> i64 {
        self.accepted_epoch
    }

    pub fn current_epoch(&self) -> i64 {
        self.current_epoch
    }

    /// Feed one input; returns what to do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        let mut acts = Vec::new();
        match input {
            Input::Start { .. } => {
                assert!(
                    matches!(self.role, Role::Idle),
                    "server {}: started twice",
                    self.me
                );
                self.role = Role::Looking;
                // A crash between a sync's durable log (or snapshot) and its currentEpoch
                // write leaves txns of a newer epoch than currentEpoch: they are the
                // leader's history, so the epoch of the last one is ours (ZooKeeper 3.8's
                // QuorumPeer.loadDataBase refuses to start then).
                let log_epoch = i64::from(epoch_of(self.logged));
                if log_epoch > self.current_epoch {
                    if log_epoch > self.accepted_epoch {
                        self.accepted_epoch = log_epoch;
                        acts.push(Action::WriteAcceptedEpoch(log_epoch));
                    }
                    self.current_epoch = log_epoch;
                    acts.push(Action::WriteCurrentEpoch(log_epoch));
                }
                acts.push(Action::Looking {
                    last_zxid: self.logged,
                    current_epoch: self.current_epoch,
                    reason: "start".into(),
                });
            }
            Input::Elected {
                now_ms,
                state,
                leader,
            } => self.elected(now_ms, state, leader, &mut acts),
            Input::Connected { now_ms, peer } => self.connected(now_ms, peer, &mut acts),
            Input::Disconnected { now_ms, peer } => self.disconnected(now_ms, peer, &mut acts),
            Input::Received { now_ms, from, msg } => match self.role {
                Role::Leading(_) => self.leader_received(now_ms, from, msg, &mut acts),
                Role::Following(_) => self.follower_received(now_ms, from, msg, &mut acts),
                _ => {}
            },
            Input::Tick { now_ms } => self.tick(now_ms, &mut acts),
            Input::Propose { txns, .. } => self.propose(txns, &mut acts),
            Input::Forward { data, .. } => {
                let leader = match &self.role {
                    Role::Following(f) if f.phase == FollowerPhase::Broadcast => f.leader,
                    _ => panic!("server {}: a request forwarded while not serving", self.me),
                };
                acts.push(Action::Send {
                    to: leader,
                    msg: Msg::Request { sync: false, data },
                });
            }
            Input::Sync { .. } => self.local_sync(&mut acts),
            Input::Persisted { upto } => self.persisted(upto, &mut acts),
            Input::Truncated { last_zxid } => self.truncated(last_zxid, &mut acts),
            Input::SnapshotApplied { zxid } => self.snapshot_applied(zxid, &mut acts),
        }
        self.check_invariants();
        acts
    }

    fn check_invariants(&self) {
        assert!(
            self.durable <= self.logged.max(self.durable_floor),
            "server {}: durable 0x{:x} beyond logged 0x{:x}",
            self.me,
            self.durable,
            self.logged
        );
        assert!(
            self.applied <= self.committed,
            "server {}: applied 0x{:x} beyond committed 0x{:x}",
            self.me,
            self.applied,
            self.committed
        );
        assert!(
            self.current_epoch <= self.accepted_epoch,
            "server {}: currentEpoch {} beyond acceptedEpoch {}",
            self.me,
            self.current_epoch,
            self.accepted_epoch
        );
        if let Role::Leading(l) = &self.role {
            if let Some(t) = &l.tracker {
                assert!(t.committed() <= t.proposed());
                assert_eq!(
                    l.outstanding.front().map(|t| t.zxid),
                    t.oldest_outstanding(),
                    "server {}: outstanding proposals and acks disagree",
                    self.me
                );
            }
        }
    }

    fn effective_durable(&self) -> i64 {
        self.durable.max(self.durable_floor)
    }

    /// Ends the term (if any): back to the election.
    fn end_term(&mut self, reason: String, acts: &mut Vec<Action>) {
        match std::mem::replace(&mut self.role, Role::Looking) {
            Role::Leading(l) => {
                for peer in l.learners.keys() {
                    acts.push(Action::Disconnect { peer: *peer });
                }
            }
            Role::Following(f) => acts.push(Action::Disconnect { peer: f.leader }),
            Role::Idle | Role::Looking => {}
        }
        self.sync_waiters.clear();
        self.durable_floor = 0;
        acts.push(Action::Looking {
            last_zxid: self.logged,
            current_epoch: self.current_epoch,
            reason,
        });
    }

    fn elected(&mut self, now_ms: u64, state: PeerState, leader: ServerId, acts: &mut Vec<Action>) {
        if !matches!(self.role, Role::Looking) {
            return; // a stale decision
        }
        self.term += 1;
        match state {
            PeerState::Leading => {
                assert_eq!(leader, self.me, "elected to lead for another server");
                let mut connecting = BTreeMap::new();
                connecting.insert(self.me, self.accepted_epoch);
                let committed_log = self.tail.clone();
                self.role = Role::Leading(Box::new(Leading {
                    started_ms: now_ms,
                    last_ping_ms: now_ms,
                    summary: (self.current_epoch, self.logged),
                    connecting,
                    epoch: None,
                    epoch_acks: BTreeSet::from([self.me]),
                    epoch_acked: false,
                    newleader_acks: BTreeSet::new(),
                    established: false,
                    learners: BTreeMap::new(),
                    tracker: None,
                    committed_log,
                    outstanding: VecDeque::new(),
                    pending_syncs: VecDeque::new(),
                }));
                self.advance_discovery(acts);
            }
            PeerState::Following | PeerState::Observing => {
                assert_ne!(leader, self.me, "elected to follow itself");
                self.role = Role::Following(Box::new(Following {
                    leader,
                    observer: state == PeerState::Observing,
                    phase: FollowerPhase::Connecting,
                    epoch: 0,
                    started_ms: now_ms,
                    last_heard_ms: now_ms,
                    retry_at_ms: None,
                    mode: SyncMode::None,
                    newleader_seen: false,
                    flushed: false,
                    newleader_target: 0,
                    buffer: Vec::new(),
                    late: Vec::new(),
                    commits: Vec::new(),
                    last_received: self.logged,
                    sync_committed: 0,
                    pending: VecDeque::new(),
                    unacked: VecDeque::new(),
                }));
                acts.push(Action::Connect { to: leader });
            }
            PeerState::Looking => {}
        }
    }

    fn connected(&mut self, now_ms: u64, peer: ServerId, acts: &mut Vec<Action>) {
        let accepted_epoch = self.accepted_epoch;
        if let Role::Following(f) = &mut self.role {
            if peer == f.leader && f.phase == FollowerPhase::Connecting {
                f.phase = FollowerPhase::AwaitLeaderInfo;
                f.last_heard_ms = now_ms;
                acts.push(Action::Send {
                    to: peer,
                    msg: Msg::LearnerInfo {
                        accepted_epoch,
                        observer: f.observer,
                    },
                });
            }
        }
    }

    fn disconnected(&mut self, now_ms: u64, peer: ServerId, acts: &mut Vec<Action>) {
        match &mut self.role {
            Role::Following(f) if f.leader == peer && f.phase == FollowerPhase::Connecting => {
                // Not listening yet (it may decide a little after us): try again shortly,
                // within initLimit, as ZooKeeper's learner retries its connect.
                f.retry_at_ms = Some(now_ms + CONNECT_RETRY_MS);
            }
            Role::Following(f) if f.leader == peer => {
                self.end_term(format!("lost the connection to leader {peer}"), acts)
            }
            Role::Leading(l) => {
                l.learners.remove(&peer);
                Self::forget_acks(l, peer);
            }
            _ => {}
        }
    }

    // ---- leader ----

    /// Discovery: the epoch once a quorum connected, currentEpoch once a quorum acked it
    /// (and this leader's history is durable), established once a quorum acked NEWLEADER.
    fn advance_discovery(&mut self, acts: &mut Vec<Action>) {
        let durable_history = self.durable >= self.logged && self.rewrites.is_empty();
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if l.epoch.is_none() && self.config.is_quorum(l.connecting.keys().copied()) {
            let epoch = l.connecting.values().copied().max().unwrap_or(0) + 1;
            l.epoch = Some(epoch);
            self.accepted_epoch = epoch;
            acts.push(Action::WriteAcceptedEpoch(epoch));
            for (sid, learner) in l.learners.iter_mut() {
                if learner.phase == LearnerPhase::AwaitEpoch {
                    learner.phase = LearnerPhase::AwaitAckEpoch;
                    acts.push(Action::Send {
                        to: *sid,
                        msg: Msg::LeaderInfo { epoch },
                    });
                }
            }
        }
        let Some(epoch) = l.epoch else {
            return;
        };
        if !l.epoch_acked && durable_history && self.config.is_quorum(l.epoch_acks.iter().copied())
        {
            l.epoch_acked = true;
            self.current_epoch = epoch;
            acts.push(Action::WriteCurrentEpoch(epoch));
            // The history is durable and currentEpoch written: this leader's NEWLEADER ack.
            l.newleader_acks.insert(self.me);
            self.durable_floor = make_zxid(epoch as u32, 0);
            let waiting: Vec<ServerId> = l
                .learners
                .iter()
                .filter(|(_, x)| x.phase == LearnerPhase::AwaitSync)
                .map(|(sid, _)| *sid)
                .collect();
            for sid in waiting {
                self.sync_learner(sid, acts);
            }
        }
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if l.epoch_acked
            && !l.established
            && self.config.is_quorum(l.newleader_acks.iter().copied())
        {
            l.established = true;
            let z0 = make_zxid(epoch as u32, 0);
            l.tracker = Some(AckTracker::new(self.me, self.config.clone(), z0));
            l.committed_log.start_epoch(z0);
            self.committed = self.committed.max(z0);
            acts.push(Action::Serving {
                state: PeerState::Leading,
                epoch,
            });
            for (sid, learner) in l.learners.iter_mut() {
                if learner.phase == LearnerPhase::AckedNewLeader {
                    learner.phase = LearnerPhase::UpToDate;
                    acts.push(Action::Send {
                        to: *sid,
                        msg: Msg::UpToDate,
                    });
                }
            }
            self.maybe_apply(acts);
        }
    }

    /// DIFF / TRUNC / SNAP, the outstanding proposals, NEWLEADER; the learner gets live
    /// proposals from here on (ZAB-WIRE.md 3.5).
    fn sync_learner(&mut self, sid: ServerId, acts: &mut Vec<Action>) {
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let Some(epoch) = l.epoch else {
            return;
        };
        let Some(learner) = l.learners.get_mut(&sid) else {
            return;
        };
        let send = |acts: &mut Vec<Action>, msg| acts.push(Action::Send { to: sid, msg });
        let committed_pairs = |acts: &mut Vec<Action>, txns: Vec<CommittedTxn>, observer| {
            for txn in txns {
                if observer {
                    send(
                        acts,
                        Msg::Inform {
                            zxid: txn.zxid,
                            data: txn.data,
                        },
                    );
                } else {
                    send(
                        acts,
                        Msg::Proposal {
                            zxid: txn.zxid,
                            data: txn.data,
                        },
                    );
                    send(acts, Msg::Commit { zxid: txn.zxid });
                }
            }
        };
        match l.committed_log.plan_sync(learner.peer_last) {
            SyncPlan::Diff { zxid, txns } => {
                send(acts, Msg::Diff { zxid });
                committed_pairs(acts, txns, learner.observer);
            }
            SyncPlan::Trunc { zxid, txns } => {
                send(acts, Msg::Trunc { zxid });
                committed_pairs(acts, txns, learner.observer);
            }
            SyncPlan::Snap => acts.push(Action::SendSnapshot {
                to: sid,
                zxid: l.committed_log.last(),
            }),
        }
        if !learner.observer {
            for txn in &l.outstanding {
                send(
                    acts,
                    Msg::Proposal {
                        zxid: txn.zxid,
                        data: txn.data.clone(),
                    },
                );
            }
        }
        send(
            acts,
            Msg::NewLeader {
                zxid: make_zxid(epoch as u32, 0),
            },
        );
        learner.phase = LearnerPhase::AwaitNewLeaderAck;
    }

    fn drop_learner(l: &mut Leading, sid: ServerId, acts: &mut Vec<Action>) {
        if l.learners.remove(&sid).is_some() {
            acts.push(Action::Disconnect { peer: sid });
        }
        Self::forget_acks(l, sid);
    }

    /// A learner's link is gone or replaced: its ACKs of outstanding proposals no longer
    /// count (its next sync may truncate them away).
    fn forget_acks(l: &mut Leading, sid: ServerId) {
        if let Some(tracker) = &mut l.tracker {
            tracker.forget(sid);
        }
    }

    fn leader_received(&mut self, now_ms: u64, from: ServerId, msg: Msg, acts: &mut Vec<Action>) {
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if let Msg::LearnerInfo {
            accepted_epoch,
            observer,
        } = msg
        {
            if from == self.me || self.config.member(from).is_none() {
                acts.push(Action::Disconnect { peer: from });
                return;
            }
            let voter = !observer && self.config.is_voter(from);
            Self::forget_acks(l, from);
            l.learners.insert(
                from,
                LearnerLink {
                    observer,
                    voter,
                    phase: LearnerPhase::AwaitEpoch,
                    peer_last: -1,
                    last_heard_ms: now_ms,
                },
            );
            if let Some(epoch) = l.epoch {
                if let Some(learner) = l.learners.get_mut(&from) {
                    learner.phase = LearnerPhase::AwaitAckEpoch;
                }
                acts.push(Action::Send {
                    to: from,
                    msg: Msg::LeaderInfo { epoch },
                });
            } else if voter {
                l.connecting.insert(from, accepted_epoch);
                self.advance_discovery(acts);
            }
            return;
        }
        let Some(learner) = l.learners.get_mut(&from) else {
            return;
        };
        learner.last_heard_ms = now_ms;
        let (phase, voter) = (learner.phase, learner.voter);
        match (phase, msg) {
            (
                LearnerPhase::AwaitAckEpoch,
                Msg::AckEpoch {
                    last_zxid,
                    current_epoch,
                },
            ) => {
                if current_epoch != -1 && (current_epoch, last_zxid) > l.summary {
                    // The learner is newer than this leader: it must not follow us.
                    return Self::drop_learner(l, from, acts);
                }
                learner.peer_last = last_zxid;
                learner.phase = LearnerPhase::AwaitSync;
                if voter && current_epoch != -1 && last_zxid != -1 {
                    l.epoch_acks.insert(from);
                }
                if l.epoch_acked {
                    self.sync_learner(from, acts);
                } else {
                    self.advance_discovery(acts);
                }
            }
            (LearnerPhase::AwaitNewLeaderAck, Msg::Ack { zxid })
                if zxid == make_zxid(l.epoch.unwrap_or(0) as u32, 0) =>
            {
                learner.phase = LearnerPhase::AckedNewLeader;
                if voter {
                    l.newleader_acks.insert(from);
                }
                if l.established {
                    learner.phase = LearnerPhase::UpToDate;
                    acts.push(Action::Send {
                        to: from,
                        msg: Msg::UpToDate,
                    });
                } else {
                    self.advance_discovery(acts);
                }
            }
            // Nothing is expected before UPTODATE; ZooKeeper's handler would only read it
            // later.
            (LearnerPhase::AckedNewLeader, Msg::Ack { .. } | Msg::Ping { .. }) => {}
            (LearnerPhase::UpToDate, Msg::Ack { zxid }) => {
                if !voter {
                    return;
                }
                let outcome = match &mut l.tracker {
                    Some(tracker) => tracker.ack(from, zxid),
                    None => AckOutcome::Nothing,
                };
                if let AckOutcome::Commit(upto) = outcome {
                    self.leader_commit(upto, acts);
                }
            }
            (LearnerPhase::UpToDate, Msg::Ping { data, .. }) => {
                if !data.is_empty() {
                    acts.push(Action::PingTouches { from, data });
                }
            }
            (LearnerPhase::UpToDate, Msg::Request { sync: true, .. }) => {
                match l.outstanding.back() {
                    None => acts.push(Action::Send {
                        to: from,
                        msg: Msg::Sync,
                    }),
                    Some(last) => l.pending_syncs.push_back((last.zxid, from)),
                }
            }
            (LearnerPhase::UpToDate, Msg::Request { sync: false, data }) => {
                acts.push(Action::LearnerRequest { from, data })
            }
            // Anything else breaks the protocol (e.g. a packet before the NEWLEADER ACK,
            // ZOOKEEPER-4685): the learner is dropped.
            _ => Self::drop_learner(l, from, acts),
        }
    }

    fn leader_commit(&mut self, upto: i64, acts: &mut Vec<Action>) {
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        while l.outstanding.front().is_some_and(|t| t.zxid <= upto) {
            let Some(txn) = l.outstanding.pop_front() else {
                break;
            };
            for (sid, learner) in &l.learners {
                if !learner.registered() {
                    continue;
                }
                let msg = if learner.observer {
                    Msg::Inform {
                        zxid: txn.zxid,
                        data: txn.data.clone(),
                    }
                } else {
                    Msg::Commit { zxid: txn.zxid }
                };
                acts.push(Action::Send { to: *sid, msg });
            }
            l.committed_log.push(txn);
        }
        assert!(upto > self.committed, "commit 0x{upto:x} is not new");
        self.committed = upto;
        while let Some((zxid, who)) = l.pending_syncs.front().copied() {
            if zxid > upto {
                break;
            }
            l.pending_syncs.pop_front();
            if who == self.me {
                self.sync_waiters.push_back(zxid);
            } else if l.learners.get(&who).is_some_and(|x| x.registered()) {
                acts.push(Action::Send {
                    to: who,
                    msg: Msg::Sync,
                });
            }
        }
        self.maybe_apply(acts);
    }

    fn propose(&mut self, txns: Vec<CommittedTxn>, acts: &mut Vec<Action>) {
        let me = self.me;
        let Role::Leading(l) = &mut self.role else {
            panic!("server {me}: proposals while not leading");
        };
        assert!(
            l.established,
            "server {me}: proposals before the epoch is established"
        );
        let Some(tracker) = l.tracker.as_mut() else {
            unreachable!("an established leader has a tracker");
        };
        for txn in &txns {
            let expected = tracker.proposed() + 1;
            assert_eq!(
                txn.zxid, expected,
                "server {me}: proposal 0x{:x}, expected 0x{expected:x}",
                txn.zxid
            );
            assert!(
                counter_of(txn.zxid) <= self.params.counter_limit,
                "server {me}: zxid counter past its limit (ZOOKEEPER-1277)"
            );
            tracker.propose(txn.zxid);
            self.tail.push(txn.clone());
            self.logged = txn.zxid;
            l.outstanding.push_back(txn.clone());
            for (sid, learner) in &l.learners {
                if learner.registered() && !learner.observer {
                    acts.push(Action::Send {
                        to: *sid,
                        msg: Msg::Proposal {
                            zxid: txn.zxid,
                            data: txn.data.clone(),
                        },
                    });
                }
            }
        }
        if !txns.is_empty() {
            acts.push(Action::Persist { txns });
        }
        if counter_of(self.logged) >= self.params.counter_limit {
            let epoch = epoch_of(self.logged);
            self.end_term(
                format!(
                    "the zxid counter of epoch {epoch} is exhausted (0x{:x}): a new epoch is \
                     needed (ZOOKEEPER-1277)",
                    self.logged
                ),
                acts,
            );
        }
    }

    fn local_sync(&mut self, acts: &mut Vec<Action>) {
        let me = self.me;
        match &mut self.role {
            Role::Leading(l) if l.established => match l.outstanding.back() {
                None => {
                    self.sync_waiters.push_back(self.committed);
                    self.maybe_apply(acts);
                }
                Some(last) => l.pending_syncs.push_back((last.zxid, me)),
            },
            Role::Following(f) if f.phase == FollowerPhase::Broadcast => acts.push(Action::Send {
                to: f.leader,
                msg: Msg::Request {
                    sync: true,
                    data: Bytes::new(),
                },
            }),
            _ => panic!("server {me}: a sync while not serving"),
        }
    }

    fn tick(&mut self, now_ms: u64, acts: &mut Vec<Action>) {
        let init_ms = self.params.init_limit * self.params.tick_ms;
        let sync_ms = self.params.sync_limit * self.params.tick_ms;
        match &mut self.role {
            Role::Leading(l) => {
                if !l.established {
                    if now_ms.saturating_sub(l.started_ms) > init_ms {
                        self.end_term(
                            format!("no quorum of followers within initLimit ({init_ms} ms)"),
                            acts,
                        );
                    }
                    return;
                }
                if now_ms.saturating_sub(l.last_ping_ms) < self.params.tick_ms / 2 {
                    return;
                }
                l.last_ping_ms = now_ms;
                let proposed = l.tracker.as_ref().map_or(0, |t| t.proposed());
                let mut dead = Vec::new();
                let mut alive = vec![self.me];
                for (sid, learner) in &l.learners {
                    let limit = if learner.phase == LearnerPhase::UpToDate {
                        sync_ms
                    } else {
                        init_ms
                    };
                    if now_ms.saturating_sub(learner.last_heard_ms) > limit {
                        dead.push(*sid);
                        continue;
                    }
                    if learner.registered() {
                        acts.push(Action::Send {
                            to: *sid,
                            msg: Msg::Ping {
                                zxid: proposed,
                                data: Bytes::new(),
                            },
                        });
                    }
                    if learner.phase == LearnerPhase::UpToDate && learner.voter {
                        alive.push(*sid);
                    }
                }
                for sid in dead {
                    Self::drop_learner(l, sid, acts);
                }
                if !self.config.is_quorum(alive) {
                    self.end_term(
                        "lost the quorum (no answer from a majority within syncLimit)".into(),
                        acts,
                    );
                }
            }
            Role::Following(f) => {
                if f.phase == FollowerPhase::Connecting
                    && f.retry_at_ms.is_some_and(|at| now_ms >= at)
                {
                    f.retry_at_ms = None;
                    acts.push(Action::Connect { to: f.leader });
                }
                let limit = if f.phase == FollowerPhase::Broadcast {
                    sync_ms
                } else {
                    init_ms
                };
                let since = f.last_heard_ms.max(f.started_ms);
                if now_ms.saturating_sub(since) > limit {
                    let leader = f.leader;
                    self.end_term(format!("leader {leader} silent for {limit} ms"), acts);
                }
            }
            Role::Idle | Role::Looking => {}
        }
    }

    // ---- learner ----

    fn follower_received(&mut self, now_ms: u64, from: ServerId, msg: Msg, acts: &mut Vec<Action>) {
        let me = self.me;
        let Role::Following(f) = &mut self.role else {
            return;
        };
        if from != f.leader {
            return;
        }
        f.last_heard_ms = now_ms;
        match (f.phase, msg) {
            (FollowerPhase::AwaitLeaderInfo, Msg::LeaderInfo { epoch }) => {
                let ack = if epoch > self.accepted_epoch {
                    self.accepted_epoch = epoch;
                    acts.push(Action::WriteAcceptedEpoch(epoch));
                    self.current_epoch
                } else if epoch == self.accepted_epoch {
                    -1
                } else {
                    let accepted = self.accepted_epoch;
                    return self.end_term(
                        format!(
                            "the leader proposes epoch {epoch}, behind our accepted {accepted}"
                        ),
                        acts,
                    );
                };
                f.epoch = epoch;
                f.phase = FollowerPhase::AwaitSyncMode;
                acts.push(Action::Send {
                    to: from,
                    msg: Msg::AckEpoch {
                        last_zxid: self.logged,
                        current_epoch: ack,
                    },
                });
            }
            (FollowerPhase::AwaitSyncMode, Msg::Diff { zxid }) => {
                f.mode = SyncMode::Diff;
                f.sync_committed = zxid;
                f.phase = FollowerPhase::Syncing;
                f.last_received = self.logged;
            }
            (FollowerPhase::AwaitSyncMode, Msg::Trunc { zxid }) => {
                let applied_txn = self.applied_txn;
                // (An epoch start, counter 0, stands for a history known only as a whole,
                // e.g. after a SNAP: the simulation checks the real txns.)
                assert!(
                    zxid >= applied_txn || counter_of(applied_txn) == 0,
                    "server {me}: TRUNC to 0x{zxid:x} would remove the applied (committed) \
                     0x{applied_txn:x}"
                );
                f.mode = SyncMode::Trunc {
                    to: zxid,
                    done: false,
                };
                f.sync_committed = zxid;
                f.phase = FollowerPhase::Syncing;
                f.last_received = zxid;
                self.rewrites.push_back(self.term);
                acts.push(Action::Truncate { to: zxid });
            }
            (FollowerPhase::AwaitSyncMode, Msg::Snap { zxid, state }) => {
                // Kept until NEWLEADER: the log and the advertised zxid do not move before
                // the snapshot is durable (ZOOKEEPER-3642).
                f.mode = SyncMode::Snap {
                    zxid,
                    state: Some(state),
                    applied: false,
                };
                f.sync_committed = zxid;
                f.phase = FollowerPhase::Syncing;
                f.last_received = zxid;
            }
            (FollowerPhase::Syncing | FollowerPhase::AwaitUpToDate, msg) => {
                self.follower_sync_packet(msg, acts)
            }
            (FollowerPhase::Broadcast, msg) => self.follower_broadcast(msg, acts),
            (phase, msg) => {
                self.end_term(format!("unexpected {} in {phase:?}", msg_name(&msg)), acts)
            }
        }
    }

    /// A proposal's zxid must follow the previous one: increasing, and within an epoch by
    /// one (ZOOKEEPER-4925: a gap would leave a hole in the log and the committed log).
    fn follows(previous: i64, zxid: i64) -> bool {
        zxid > previous
            && if epoch_of(zxid) == epoch_of(previous) {
                counter_of(zxid) == counter_of(previous) + 1
            } else {
                counter_of(zxid) == 1
            }
    }

    fn follower_sync_packet(&mut self, msg: Msg, acts: &mut Vec<Action>) {
        let Role::Following(f) = &mut self.role else {
            return;
        };
        match msg {
            Msg::Proposal { zxid, data } | Msg::Inform { zxid, data } if !f.flushed => {
                if !Self::follows(f.last_received, zxid) {
                    let last = f.last_received;
                    return self.end_term(
                        format!("proposal 0x{zxid:x} does not follow 0x{last:x} (a gap)"),
                        acts,
                    );
                }
                f.last_received = zxid;
                if f.observer {
                    f.commits.push(zxid);
                }
                f.buffer.push(CommittedTxn { zxid, data });
            }
            Msg::Proposal { zxid, data } | Msg::Inform { zxid, data } => {
                // After the NEWLEADER flush: logged at once, acknowledged after UPTODATE.
                if !Self::follows(f.last_received, zxid) {
                    let last = f.last_received;
                    return self.end_term(
                        format!("proposal 0x{zxid:x} does not follow 0x{last:x} (a gap)"),
                        acts,
                    );
                }
                f.last_received = zxid;
                if f.observer {
                    f.commits.push(zxid);
                }
                let txn = CommittedTxn { zxid, data };
                if f.phase == FollowerPhase::Syncing {
                    f.late.push(txn);
                } else {
                    self.log_txns(vec![txn], acts);
                }
            }
            Msg::Commit { zxid } => f.commits.push(zxid),
            Msg::NewLeader { zxid } if !f.newleader_seen => {
                if zxid != make_zxid(f.epoch as u32, 0) {
                    let epoch = f.epoch;
                    return self.end_term(
                        format!("NEWLEADER 0x{zxid:x} is not of epoch {epoch}"),
                        acts,
                    );
                }
                f.newleader_seen = true;
                self.try_finish_newleader(acts);
            }
            Msg::UpToDate if f.phase == FollowerPhase::AwaitUpToDate => {
                self.uptodate(acts);
            }
            Msg::Ping { .. } => {
                // Not answered during sync: the first packet after ACKEPOCH must be the
                // NEWLEADER ACK (ZooKeeper's learner ignores PINGs here too).
            }
            other => {
                let phase = f.phase;
                self.end_term(
                    format!("unexpected {} during sync ({phase:?})", msg_name(&other)),
                    acts,
                )
            }
        }
    }

    /// Logs txns received in this term (after the NEWLEADER flush).
    fn log_txns(&mut self, txns: Vec<CommittedTxn>, acts: &mut Vec<Action>) {
        let Role::Following(f) = &mut self.role else {
            return;
        };
        for txn in &txns {
            assert!(
                txn.zxid > self.logged,
                "server {}: logging 0x{:x} after 0x{:x}",
                self.me,
                txn.zxid,
                self.logged
            );
            self.tail.push(txn.clone());
            self.logged = txn.zxid;
            f.pending.push_back(txn.zxid);
            if !f.observer {
                f.unacked.push_back(txn.zxid);
            }
        }
        if !txns.is_empty() {
            acts.push(Action::Persist { txns });
        }
    }

    /// NEWLEADER (ZAB-WIRE.md 3.6, 3.8.5): the TRUNC done or the SNAP durable, then every
    /// buffered proposal logged and durable, then currentEpoch, then the ACK.
    fn try_finish_newleader(&mut self, acts: &mut Vec<Action>) {
        let Role::Following(f) = &mut self.role else {
            return;
        };
        if !f.newleader_seen || f.phase != FollowerPhase::Syncing {
            return;
        }
        match &mut f.mode {
            SyncMode::Trunc { done: false, .. } => return,
            SyncMode::Snap {
                zxid,
                state,
                applied: false,
            } => {
                if let Some(state) = state.take() {
                    let applied_txn = self.applied_txn;
                    assert!(
                        *zxid >= applied_txn || counter_of(applied_txn) == 0,
                        "server {}: a SNAP of 0x{zxid:x} would remove the applied 0x{applied_txn:x}",
                        self.me
                    );
                    self.rewrites.push_back(self.term);
                    acts.push(Action::ApplySnapshot { zxid: *zxid, state });
                }
                return;
            }
            _ => {}
        }
        if !self.rewrites.is_empty() {
            return;
        }
        if !f.flushed {
            f.flushed = true;
            let buffered = std::mem::take(&mut f.buffer);
            self.log_txns(buffered, acts);
            let Role::Following(f) = &mut self.role else {
                return;
            };
            f.newleader_target = self.logged;
        }
        let Role::Following(f) = &mut self.role else {
            return;
        };
        if self.durable < f.newleader_target {
            return;
        }
        let epoch = f.epoch;
        self.current_epoch = epoch;
        acts.push(Action::WriteCurrentEpoch(epoch));
        self.durable_floor = make_zxid(epoch as u32, 0);
        f.phase = FollowerPhase::AwaitUpToDate;
        acts.push(Action::Send {
            to: f.leader,
            msg: Msg::Ack {
                zxid: make_zxid(epoch as u32, 0),
            },
        });
        let late = std::mem::take(&mut f.late);
        self.log_txns(late, acts);
    }

    fn uptodate(&mut self, acts: &mut Vec<Action>) {
        let me = self.me;
        let Role::Following(f) = &mut self.role else {
            return;
        };
        let z0 = make_zxid(f.epoch as u32, 0);
        acts.push(Action::Send {
            to: f.leader,
            msg: Msg::Ack { zxid: z0 },
        });
        let commits = std::mem::take(&mut f.commits);
        let mut last_committed = self.committed.max(z0).max(f.sync_committed);
        for zxid in commits {
            if !Self::commit_one(me, f, z0, zxid) {
                return self.end_term(format!("COMMIT 0x{zxid:x} without its proposal"), acts);
            }
            last_committed = last_committed.max(zxid);
        }
        // Everything before the epoch is the leader's history, committed with NEWLEADER,
        // and so is what the sync mode named committed.
        while f
            .pending
            .front()
            .is_some_and(|z| *z < z0 || *z <= last_committed)
        {
            f.pending.pop_front();
        }
        self.committed = last_committed;
        f.phase = FollowerPhase::Broadcast;
        acts.push(Action::Serving {
            state: if f.observer {
                PeerState::Observing
            } else {
                PeerState::Following
            },
            epoch: f.epoch,
        });
        self.flush_acks(acts);
        self.maybe_apply(acts);
    }

    /// Commits `zxid`, which must be the oldest pending proposal (earlier pending txns of
    /// older epochs are committed by the epoch itself). Returns false when there is no
    /// pending proposal to commit at all.
    fn commit_one(me: ServerId, f: &mut Following, z0: i64, zxid: i64) -> bool {
        while f.pending.front().is_some_and(|z| *z < zxid && *z < z0) {
            f.pending.pop_front();
        }
        match f.pending.front().copied() {
            Some(head) if head == zxid => {
                f.pending.pop_front();
                true
            }
            // An old epoch's commit for a txn this sync already covered.
            _ if zxid < z0 => true,
            None => false,
            Some(head) => panic!(
                "server {me}: COMMIT 0x{zxid:x} does not match the oldest pending proposal \
                 0x{head:x}: the replicas diverged"
            ),
        }
    }

    fn follower_broadcast(&mut self, msg: Msg, acts: &mut Vec<Action>) {
        let Role::Following(f) = &mut self.role else {
            return;
        };
        match msg {
            Msg::Proposal { zxid, data } if !f.observer => {
                if !Self::follows(f.last_received, zxid) {
                    let last = f.last_received;
                    return self.end_term(
                        format!("proposal 0x{zxid:x} does not follow 0x{last:x} (a gap)"),
                        acts,
                    );
                }
                f.last_received = zxid;
                self.log_txns(vec![CommittedTxn { zxid, data }], acts);
            }
            Msg::Inform { zxid, data } if f.observer => {
                if !Self::follows(f.last_received, zxid) {
                    let last = f.last_received;
                    return self.end_term(
                        format!("INFORM 0x{zxid:x} does not follow 0x{last:x} (a gap)"),
                        acts,
                    );
                }
                f.last_received = zxid;
                self.log_txns(vec![CommittedTxn { zxid, data }], acts);
                self.follower_commit(zxid, acts);
            }
            Msg::Commit { zxid } if !f.observer => self.follower_commit(zxid, acts),
            Msg::Ping { zxid, .. } => acts.push(Action::Send {
                to: f.leader,
                msg: Msg::Ping {
                    zxid,
                    data: Bytes::new(),
                },
            }),
            Msg::Sync => {
                self.sync_waiters.push_back(self.committed);
                self.maybe_apply(acts);
            }
            other => {
                let name = msg_name(&other);
                self.end_term(format!("unexpected {name} in the broadcast"), acts)
            }
        }
    }

    fn follower_commit(&mut self, zxid: i64, acts: &mut Vec<Action>) {
        let me = self.me;
        let Role::Following(f) = &mut self.role else {
            return;
        };
        let z0 = make_zxid(f.epoch as u32, 0);
        if zxid <= self.committed {
            return self.end_term(
                format!("COMMIT 0x{zxid:x} after 0x{:x}", self.committed),
                acts,
            );
        }
        if !Self::commit_one(me, f, z0, zxid) {
            return self.end_term(format!("COMMIT 0x{zxid:x} without its proposal"), acts);
        }
        self.committed = zxid;
        self.maybe_apply(acts);
    }

    /// ACKs every logged proposal that is durable (broadcast phase only).
    fn flush_acks(&mut self, acts: &mut Vec<Action>) {
        let durable = self.durable;
        let Role::Following(f) = &mut self.role else {
            return;
        };
        if f.phase != FollowerPhase::Broadcast {
            return;
        }
        while let Some(zxid) = f.unacked.front().copied() {
            if zxid > durable {
                break;
            }
            f.unacked.pop_front();
            acts.push(Action::Send {
                to: f.leader,
                msg: Msg::Ack { zxid },
            });
        }
    }

    /// Emits `Commit` up to what is committed and durable here; answers local syncs.
    fn maybe_apply(&mut self, acts: &mut Vec<Action>) {
        if !self.serving() {
            return;
        }
        let target = self.committed.min(self.effective_durable());
        if target > self.applied {
            self.applied = target;
            self.applied_txn = if target >= self.logged {
                self.logged
            } else {
                self.tail
                    .iter()
                    .rev()
                    .map(|t| t.zxid)
                    .find(|z| *z <= target)
                    .unwrap_or(target)
            };
            acts.push(Action::Commit { upto: target });
        }
        while self
            .sync_waiters
            .front()
            .is_some_and(|z| *z <= self.applied)
        {
            self.sync_waiters.pop_front();
            acts.push(Action::SyncDone);
        }
    }

    fn persisted(&mut self, upto: i64, acts: &mut Vec<Action>) {
        assert!(
            upto <= self.logged.max(self.durable_floor),
            "server {}: Persisted 0x{upto:x} beyond the logged 0x{:x}",
            self.me,
            self.logged
        );
        if upto <= self.durable {
            return;
        }
        self.durable = upto;
        match &mut self.role {
            Role::Leading(l) => {
                if let Some(tracker) = &mut l.tracker {
                    if let AckOutcome::Commit(z) = tracker.persisted(upto) {
                        self.leader_commit(z, acts);
                    }
                } else {
                    self.advance_discovery(acts);
                }
                self.maybe_apply(acts);
            }
            Role::Following(_) => {
                self.try_finish_newleader(acts);
                self.flush_acks(acts);
                self.maybe_apply(acts);
            }
            _ => {}
        }
    }

    /// A truncation or snapshot install completed; false when it was asked for by an
    /// earlier term and this term ended because of it.
    fn rewrite_done(&mut self, acts: &mut Vec<Action>) -> bool {
        let asked_by = self.rewrites.pop_front();
        assert!(
            asked_by.is_some(),
            "server {}: a truncation or snapshot completed that was never asked for",
            self.me
        );
        if asked_by != Some(self.term) && !matches!(self.role, Role::Looking | Role::Idle) {
            self.end_term(
                "the log changed under this term (an earlier term's truncation or snapshot                  completed)"
                    .into(),
                acts,
            );
            return false;
        }
        true
    }

    fn truncated(&mut self, last_zxid: i64, acts: &mut Vec<Action>) {
        self.tail.truncate_after(last_zxid);
        if self.tail.last() != last_zxid {
            // The history did not hold the point: the driver removed it.
            self.tail.reset(last_zxid);
        }
        self.logged = last_zxid;
        self.durable = last_zxid;
        if !self.rewrite_done(acts) {
            return;
        }
        let Role::Following(f) = &mut self.role else {
            return;
        };
        if let SyncMode::Trunc { to, done } = &mut f.mode {
            if last_zxid != *to {
                let to = *to;
                return self.end_term(
                    format!("cannot truncate to 0x{to:x}; the local state was removed"),
                    acts,
                );
            }
            *done = true;
        }
        self.try_finish_newleader(acts);
    }

    fn snapshot_applied(&mut self, zxid: i64, acts: &mut Vec<Action>) {
        self.tail.reset(zxid);
        self.logged = zxid;
        self.durable = zxid;
        if !self.rewrite_done(acts) {
            return;
        }
        let Role::Following(f) = &mut self.role else {
            return;
        };
        if let SyncMode::Snap { applied, .. } = &mut f.mode {
            *applied = true;
        }
        self.try_finish_newleader(acts);
    }
}

/// A message's packet name, for reasons and traces.
pub fn msg_name(msg: &Msg) -> &'static str {
    match msg {
        Msg::LearnerInfo {
            observer: false, ..
        } => "FOLLOWERINFO",
        Msg::LearnerInfo { observer: true, .. } => "OBSERVERINFO",
        Msg::LeaderInfo { .. } => "LEADERINFO",
        Msg::AckEpoch { .. } => "ACKEPOCH",
        Msg::Diff { .. } => "DIFF",
        Msg::Trunc { .. } => "TRUNC",
        Msg::Snap { .. } => "SNAP",
        Msg::Proposal { .. } => "PROPOSAL",
        Msg::Commit { .. } => "COMMIT",
        Msg::Inform { .. } => "INFORM",
        Msg::NewLeader { .. } => "NEWLEADER",
        Msg::UpToDate => "UPTODATE",
        Msg::Ack { .. } => "ACK",
        Msg::Ping { .. } => "PING",
        Msg::Request { .. } => "REQUEST",
        Msg::Sync => "SYNC",
    }
}

#[cfg(test)]
mod tests {
    //! The paths the simulation does not drive (it has no observers). The protocol as a
    //! whole is tested by `sim::tests` and `sim::scenarios`.
    use super::*;
    use crate::zab::Member;

    fn config() -> QuorumConfig {
        let member = |id, observer| Member {
            id,
            host: "h".into(),
            quorum_port: 1,
            election_port: 2,
            observer,
            client: None,
        };
        QuorumConfig::new(
            vec![
                member(1, false),
                member(2, false),
                member(3, false),
                member(4, true),
            ],
            0,
        )
    }

    fn txn(zxid: i64) -> CommittedTxn {
        CommittedTxn {
            zxid,
            data: Bytes::from(zxid.to_be_bytes().to_vec()),
        }
    }

    fn fresh(me: ServerId) -> Replica {
        let mut r = Replica::new(
            me,
            config(),
            Params::new(100, 10, 5),
            Recovered {
                accepted_epoch: 0,
                current_epoch: 0,
                base: 0,
                tail: Vec::new(),
            },
        );
        r.step(Input::Start { now_ms: 0 });
        r
    }

    fn received(from: ServerId, msg: Msg) -> Input {
        Input::Received {
            now_ms: 1,
            from,
            msg,
        }
    }

    /// Carries out the leader's actions `out` between `leader` and `learner` (messages,
    /// disks that complete at once), and everything that follows, until quiet.
    fn exchange(leader: &mut Replica, learner: &mut Replica, out: Vec<Action>) {
        let (lid, me) = (leader.id(), learner.id());
        let mut queue: VecDeque<(bool, Action)> = out.into_iter().map(|a| (true, a)).collect();
        let mut steps = 0;
        while let Some((by_leader, action)) = queue.pop_front() {
            steps += 1;
            assert!(steps < 1000, "no quiet point");
            let (next_by_leader, next) = match (by_leader, action) {
                (true, Action::Send { to, msg }) if to == me => {
                    (false, learner.step(received(lid, msg)))
                }
                (true, Action::SendSnapshot { to, zxid }) if to == me => {
                    let state = Bytes::new();
                    (
                        false,
                        learner.step(received(lid, Msg::Snap { zxid, state })),
                    )
                }
                (false, Action::Send { to, msg }) if to == lid => {
                    (true, leader.step(received(me, msg)))
                }
                (false, Action::ApplySnapshot { zxid, .. }) => {
                    (false, learner.step(Input::SnapshotApplied { zxid }))
                }
                (by_leader, Action::Persist { txns }) => {
                    let upto = txns.last().map_or(0, |t| t.zxid);
                    let r = if by_leader {
                        &mut *leader
                    } else {
                        &mut *learner
                    };
                    (by_leader, r.step(Input::Persisted { upto }))
                }
                _ => continue,
            };
            queue.extend(next.into_iter().map(|a| (next_by_leader, a)));
        }
    }

    #[test]
    fn an_observer_gets_informs_and_acknowledges_only_the_sync() {
        let mut leader = fresh(3);
        leader.step(Input::Elected {
            now_ms: 0,
            state: PeerState::Leading,
            leader: 3,
        });
        let mut follower = fresh(2);
        let mut observer = fresh(4);
        for (r, state) in [
            (&mut follower, PeerState::Following),
            (&mut observer, PeerState::Observing),
        ] {
            assert_eq!(
                r.step(Input::Elected {
                    now_ms: 0,
                    state,
                    leader: 3,
                }),
                vec![Action::Connect { to: 3 }]
            );
        }
        let out = follower.step(Input::Connected { now_ms: 1, peer: 3 });
        let mut to_leader = Vec::new();
        for a in out {
            if let Action::Send { msg, .. } = a {
                to_leader.extend(leader.step(received(2, msg)));
            }
        }
        exchange(&mut leader, &mut follower, to_leader);
        assert!(leader.serving() && follower.serving());
        // The observer joins the established epoch: it does not count for the quorum.
        let out = observer.step(Input::Connected { now_ms: 2, peer: 3 });
        let mut to_leader = Vec::new();
        for a in out {
            if let Action::Send { msg, .. } = a {
                assert!(matches!(msg, Msg::LearnerInfo { observer: true, .. }));
                to_leader.extend(leader.step(received(4, msg)));
            }
        }
        exchange(&mut leader, &mut observer, to_leader);
        assert_eq!(observer.state(), PeerState::Observing);
        assert!(observer.serving());
        // A proposal goes to the follower only; its commit reaches the observer as INFORM.
        let zxid = leader.next_zxid().expect("leading");
        let acts = leader.step(Input::Propose {
            now_ms: 3,
            txns: vec![txn(zxid)],
        });
        let targets: Vec<ServerId> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, .. } => Some(*to),
                _ => None,
            })
            .collect();
        assert_eq!(targets, vec![2]);
        assert!(leader.step(Input::Persisted { upto: zxid }).is_empty());
        let follower_acts = follower.step(received(
            3,
            Msg::Proposal {
                zxid,
                data: txn(zxid).data,
            },
        ));
        assert!(matches!(follower_acts[..], [Action::Persist { .. }]));
        let ack = follower.step(Input::Persisted { upto: zxid });
        assert_eq!(
            ack,
            vec![Action::Send {
                to: 3,
                msg: Msg::Ack { zxid }
            }]
        );
        let commit = leader.step(received(2, Msg::Ack { zxid }));
        assert!(commit.contains(&Action::Send {
            to: 2,
            msg: Msg::Commit { zxid }
        }));
        assert!(commit.contains(&Action::Send {
            to: 4,
            msg: Msg::Inform {
                zxid,
                data: txn(zxid).data
            }
        }));
        assert!(commit.contains(&Action::Commit { upto: zxid }));
        let informed = observer.step(received(
            3,
            Msg::Inform {
                zxid,
                data: txn(zxid).data,
            },
        ));
        assert!(matches!(informed[..], [Action::Persist { .. }]));
        let applied = observer.step(Input::Persisted { upto: zxid });
        assert_eq!(
            applied,
            vec![Action::Commit { upto: zxid }],
            "no ACK from an observer"
        );
    }

    #[test]
    fn a_leader_steps_down_without_a_quorum_and_a_follower_on_a_silent_leader() {
        let mut leader = fresh(3);
        leader.step(Input::Elected {
            now_ms: 0,
            state: PeerState::Leading,
            leader: 3,
        });
        let acts = leader.step(Input::Tick { now_ms: 1001 });
        assert!(
            matches!(acts.last(), Some(Action::Looking { reason, .. }) if reason.contains("initLimit")),
            "{acts:?}"
        );
        let mut follower = fresh(2);
        follower.step(Input::Elected {
            now_ms: 0,
            state: PeerState::Following,
            leader: 3,
        });
        // The leader is not listening yet: the connect is retried, then given up.
        let acts = follower.step(Input::Disconnected { now_ms: 5, peer: 3 });
        assert!(acts.is_empty());
        let acts = follower.step(Input::Tick { now_ms: 110 });
        assert_eq!(acts, vec![Action::Connect { to: 3 }]);
        let acts = follower.step(Input::Tick { now_ms: 1100 });
        assert!(
            matches!(acts.last(), Some(Action::Looking { .. })),
            "{acts:?}"
        );
    }
}
