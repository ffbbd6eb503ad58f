//! Fast leader election (FLE) as ZooKeeper 3.8's `FastLeaderElection` runs it, as a pure
//! state machine: `Election::step(input) -> Vec<Action>`. `../shared/ZAB-WIRE.md` §2 lists
//! the rules; each is cited where it is implemented.
//!
//! The driver owns the sockets and the clock. It feeds in `StartElection` (ZooKeeper's
//! `lookForLeader`), every notification received on the election port (its own loopback
//! sends included), and a `Tick` whenever `next_deadline_ms()` has passed; it sends the
//! `Send` actions (to itself too: a server's own vote is received like any other), and acts
//! on `Decided` (become follower / leader / observer). While not looking the machine keeps
//! answering LOOKING peers with the vote it decided, as ZooKeeper's receiver thread does.
//!
//! One state machine covers both of ZooKeeper's FLE threads: the receiver thread's replies
//! (§2.4) are produced when a notification comes in, the election loop (§2.5) processes it
//! right after, as if it had been queued and polled at once.
//!
//! Not covered: dynamic reconfig (a config in a notification is not adopted; the driver
//! stamps our committed config text into outgoing notifications), hierarchical quorum
//! weights, and the two-node oracle (`QuorumOracleMaj`).

use std::collections::BTreeMap;

use super::{Notification, PeerState, QuorumConfig, ServerId, Vote};

/// How long a quorum for our proposal must stand with no better notification before we
/// decide (`FastLeaderElection.finalizeWait`).
pub const FINALIZE_WAIT_MS: u64 = 200;

/// The first notification timeout of a round (`minNotificationInterval`, = finalizeWait).
pub const NOTIFICATION_TIMEOUT_MIN_MS: u64 = 200;

/// The notification timeout doubles up to this (`maxNotificationInterval`).
pub const NOTIFICATION_TIMEOUT_MAX_MS: u64 = 60_000;

/// The message version we send (`Notification.CURRENTVERSION`).
pub const NOTIFICATION_VERSION: i32 = 2;

/// The proposed leader of a server that votes for no one (an observer): `Long.MIN_VALUE`.
pub const NO_LEADER: ServerId = i64::MIN as u64;

const _: () = assert!(NOTIFICATION_TIMEOUT_MIN_MS > 0);
const _: () = assert!(NOTIFICATION_TIMEOUT_MIN_MS <= NOTIFICATION_TIMEOUT_MAX_MS);

/// What the driver feeds in. Every input carries the driver's monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start a new round (`lookForLeader`): `logicalclock++`, vote for ourselves, broadcast.
    /// Also the way back to LOOKING after following, leading or observing.
    StartElection { now_ms: u64 },
    /// A notification that arrived on the election port from `from` (from ourselves too).
    Received {
        now_ms: u64,
        from: ServerId,
        notification: Notification,
    },
    /// Time passed. `have_delivered` is ZooKeeper's `QuorumCnxManager.haveDelivered()`:
    /// some per-peer send queue is empty. It picks what a notification timeout does:
    /// re-broadcast our vote if true, ask for `ReconnectAll` if false.
    Tick { now_ms: u64, have_delivered: bool },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a notification to `to` (to ourselves: loop it back into `step`). `config` is
    /// `None`: the driver stamps its committed config text before encoding.
    Send {
        to: ServerId,
        notification: Notification,
    },
    /// The election is over: take `state` and follow / lead / observe `vote.leader`.
    /// The machine keeps answering LOOKING peers with `vote` until the next `StartElection`.
    Decided {
        state: PeerState,
        vote: Vote,
        /// What the decision rested on.
        basis: DecisionBasis,
        /// The voters whose votes made the quorum (ZooKeeper's `leadingVoteSet`), sorted.
        supporters: Vec<ServerId>,
    },
    /// Reconnect to every peer (`QuorumCnxManager.connectAll`): a notification timeout
    /// passed while every send queue still held an undelivered notification.
    ReconnectAll,
}

/// Which rule of ZAB-WIRE.md §2.5 decided an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionBasis {
    /// A quorum of this round's votes equal our proposal, and nothing better arrived within
    /// `FINALIZE_WAIT_MS` (§2.5 step 2).
    LookingQuorum,
    /// A quorum of this round's votes (FOLLOWING/LEADING ones among them) names the
    /// leader, which said it is LEADING (§2.5 step 4, recvset).
    RoundQuorum,
    /// A quorum of FOLLOWING/LEADING notifications from any round names the leader, which
    /// said it is LEADING: we join an established ensemble (§2.5 step 4, outofelection).
    EstablishedLeader,
}

/// A vote as the election loop keeps it: ZooKeeper's `Vote` with its state and message
/// version, which the equality rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ballot {
    vote: Vote,
    state: PeerState,
    version: i32,
}

impl Ballot {
    /// `Vote.equals` (ZOOKEEPER-1732/1805): all four fields when either side is LOOKING;
    /// otherwise leader and peer epoch, or only the leader when exactly one side is a
    /// version-0 vote.
    fn matches(&self, other: &Ballot) -> bool {
        if self.state == PeerState::Looking || other.state == PeerState::Looking {
            self.vote == other.vote
        } else if (self.version > 0) != (other.version > 0) {
            self.vote.leader == other.vote.leader
        } else {
            self.vote.leader == other.vote.leader && self.vote.peer_epoch == other.vote.peer_epoch
        }
    }
}

/// The leader we propose and the facts it is ranked by (FLE's proposedLeader / Zxid /
/// Epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    leader: ServerId,
    zxid: i64,
    peer_epoch: i64,
}

impl Candidate {
    fn of(vote: &Vote) -> Candidate {
        Candidate {
            leader: vote.leader,
            zxid: vote.zxid,
            peer_epoch: vote.peer_epoch,
        }
    }

    /// The rank `totalOrderPredicate` compares: peer epoch, then zxid, then id (all as
    /// Java longs).
    fn rank(&self) -> (i64, i64, i64) {
        (self.peer_epoch, self.zxid, self.leader as i64)
    }
}

/// A quorum for our proposal stands; we decide when `deadline_ms` passes with nothing
/// better received (the `finalizeWait` drain loop).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finalization {
    /// 200 ms after the last notification drained: each drained one restarts the wait,
    /// as ZooKeeper's repeated `poll(finalizeWait)` does.
    deadline_ms: u64,
    supporters: Vec<ServerId>,
}

/// Fast leader election for one server.
#[derive(Debug, Clone)]
pub struct Election {
    my_id: ServerId,
    config: QuorumConfig,
    /// Whether we vote (a participant of `config`); an observer proposes `NO_LEADER`.
    participant: bool,
    last_logged_zxid: i64,
    current_epoch: i64,
    /// `logicalclock`: the round. Not monotonic: joining an established ensemble adopts
    /// the round its leader was elected in (ZooKeeper does the same).
    round: i64,
    state: PeerState,
    /// Whether a round was ever started; before that notifications only get replies.
    started: bool,
    /// Our proposal in `round`. Invariant while looking: equal to or better than our
    /// initial vote; within one round it only gets better.
    proposal: Candidate,
    /// `QuorumPeer.currentVote`: our initial vote until the first decision, then the vote
    /// we decided on (its peer epoch updated after sync). What we answer LOOKING peers
    /// with while not looking.
    current_vote: Vote,
    /// `recvset`: the latest vote of each voter in `round`.
    round_ballots: BTreeMap<ServerId, Ballot>,
    /// `outofelection`: the latest FOLLOWING/LEADING vote of each voter, any round.
    established_ballots: BTreeMap<ServerId, Ballot>,
    /// Invariant: within `NOTIFICATION_TIMEOUT_MIN_MS..=NOTIFICATION_TIMEOUT_MAX_MS`.
    notification_timeout_ms: u64,
    /// When the election loop's poll times out. Invariant: `Some` exactly while looking
    /// in a started round and not finalizing.
    poll_deadline_ms: Option<u64>,
    /// Invariant: `Some` only while looking.
    finalization: Option<Finalization>,
}

impl Election {
    /// A server that has not started looking yet: call `step(StartElection)` next. Its
    /// current vote is its initial vote, as `QuorumPeer.startLeaderElection` sets it.
    pub fn new(
        my_id: ServerId,
        config: QuorumConfig,
        last_logged_zxid: i64,
        current_epoch: i64,
    ) -> Election {
        let participant = config.is_voter(my_id);
        let election = Election {
            my_id,
            participant,
            last_logged_zxid,
            current_epoch,
            round: 0,
            state: PeerState::Looking,
            started: false,
            proposal: Candidate {
                leader: my_id,
                zxid: last_logged_zxid,
                peer_epoch: current_epoch,
            },
            current_vote: Vote {
                leader: my_id,
                zxid: last_logged_zxid,
                election_epoch: -1,
                peer_epoch: current_epoch,
            },
            round_ballots: BTreeMap::new(),
            established_ballots: BTreeMap::new(),
            notification_timeout_ms: NOTIFICATION_TIMEOUT_MIN_MS,
            poll_deadline_ms: None,
            finalization: None,
            config,
        };
        election.check_invariants();
        election
    }

    /// Our server id.
    pub fn my_id(&self) -> ServerId {
        self.my_id
    }

    /// LOOKING while electing, else the role we decided on.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// The round (`logicalclock`).
    pub fn round(&self) -> i64 {
        self.round
    }

    /// `QuorumPeer.currentVote`: what we answer LOOKING peers with while not looking.
    pub fn current_vote(&self) -> Vote {
        self.current_vote
    }

    /// Our proposal in the current round, as we send it.
    pub fn proposal(&self) -> Vote {
        self.proposal_vote()
    }

    /// When the driver must `Tick` next, if the election is waiting on time at all.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match &self.finalization {
            Some(finalization) => Some(finalization.deadline_ms),
            None => self.poll_deadline_ms,
        }
    }

    /// Record where our log stands (after syncing with a leader, or writing as one), for
    /// the next round's initial vote. Call it only while not looking: ZooKeeper's log does
    /// not move during an election.
    pub fn set_log_position(&mut self, last_logged_zxid: i64, current_epoch: i64) {
        debug_assert!(
            self.state != PeerState::Looking || !self.started,
            "the log moved during an election"
        );
        self.last_logged_zxid = last_logged_zxid;
        self.current_epoch = current_epoch;
    }

    /// `QuorumPeer.updateElectionVote` (ZOOKEEPER-1732): after syncing with the leader of
    /// `new_epoch`, answer LOOKING peers with that peer epoch. The zxid and round of the
    /// vote stay as they were at election time.
    pub fn update_peer_epoch(&mut self, new_epoch: i64) {
        self.current_vote.peer_epoch = new_epoch;
    }

    /// Feed one input; returns what to do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::StartElection { now_ms } => self.start_round(now_ms, &mut actions),
            Input::Received {
                now_ms,
                from,
                notification,
            } => self.receive(now_ms, from, &notification, &mut actions),
            Input::Tick {
                now_ms,
                have_delivered,
            } => self.tick(now_ms, have_delivered, &mut actions),
        }
        self.check_invariants();
        actions
    }

    /// `lookForLeader`'s start (§2.2).
    fn start_round(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        // A garbage notification can have set the round to i64::MAX; Java wraps too.
        self.round = self.round.wrapping_add(1);
        self.state = PeerState::Looking;
        self.started = true;
        self.proposal = self.initial_candidate();
        self.round_ballots.clear();
        self.established_ballots.clear();
        self.finalization = None;
        self.notification_timeout_ms = NOTIFICATION_TIMEOUT_MIN_MS;
        self.poll_deadline_ms = Some(now_ms.saturating_add(self.notification_timeout_ms));
        log::info!(
            "election: server {} starts round {:#x} proposing {:?}",
            self.my_id,
            self.round,
            self.proposal
        );
        self.broadcast(actions);
    }

    /// The receiver thread (§2.4), then the election loop (§2.5).
    fn receive(
        &mut self,
        now_ms: u64,
        from: ServerId,
        notification: &Notification,
        actions: &mut Vec<Action>,
    ) {
        if !self.config.is_voter(from) {
            // An observer (or unknown sender) gets our current vote at once, stamped with
            // our logicalclock, and goes no further.
            let vote = Vote {
                election_epoch: self.round,
                ..self.current_vote
            };
            actions.push(self.send(from, self.state, vote));
            return;
        }
        if self.state == PeerState::Looking {
            if notification.state == PeerState::Looking
                && notification.vote.election_epoch < self.round
            {
                // A peer lagging rounds behind learns our round and proposal.
                actions.push(self.send(from, PeerState::Looking, self.proposal_vote()));
            }
            if self.started {
                self.poll(now_ms, from, notification, actions);
            }
        } else if notification.state == PeerState::Looking {
            // Not looking: tell a looking peer whom we follow / that we lead. The vote
            // keeps the round we decided in, not our logicalclock.
            actions.push(self.send(from, self.state, self.current_vote));
        }
    }

    /// The election loop's handling of one polled notification (§2.5).
    fn poll(
        &mut self,
        now_ms: u64,
        from: ServerId,
        notification: &Notification,
        actions: &mut Vec<Action>,
    ) {
        if self.finalization.is_some() {
            let better = self.beats(&Candidate::of(&notification.vote), &self.proposal);
            match &mut self.finalization {
                Some(finalization) if !better => {
                    // Drained and dropped, as ZooKeeper's finalizeWait loop drops it; the
                    // wait starts over.
                    finalization.deadline_ms = now_ms.saturating_add(FINALIZE_WAIT_MS);
                    return;
                }
                // Better than our proposal: ZooKeeper puts it back and polls it again.
                _ => self.finalization = None,
            }
        }
        self.poll_deadline_ms = Some(now_ms.saturating_add(self.notification_timeout_ms));
        if !self.config.is_voter(from) || !self.config.is_voter(notification.vote.leader) {
            log::debug!(
                "election: server {} ignores a vote for {} from {}",
                self.my_id,
                notification.vote.leader,
                from
            );
            return;
        }
        match notification.state {
            PeerState::Looking => self.poll_looking(now_ms, from, notification, actions),
            PeerState::Observing => {}
            PeerState::Following | PeerState::Leading => {
                self.poll_announcement(from, notification, actions)
            }
        }
    }

    /// §2.5 step 2: a LOOKING peer's vote.
    fn poll_looking(
        &mut self,
        now_ms: u64,
        from: ServerId,
        notification: &Notification,
        actions: &mut Vec<Action>,
    ) {
        // A server whose log could not be read (zxid -1) takes no part.
        if self.initial_candidate().zxid == -1 || notification.vote.zxid == -1 {
            return;
        }
        let offered = Candidate::of(&notification.vote);
        let offered_round = notification.vote.election_epoch;
        if offered_round > self.round {
            // We are behind: join the newer round with the better of its vote and our
            // initial vote (not our old proposal).
            self.round = offered_round;
            self.round_ballots.clear();
            let initial = self.initial_candidate();
            let proposal = if self.beats(&offered, &initial) {
                offered
            } else {
                initial
            };
            self.set_proposal(proposal, true);
            self.broadcast(actions);
        } else if offered_round < self.round {
            return;
        } else if self.beats(&offered, &self.proposal) {
            self.set_proposal(offered, false);
            self.broadcast(actions);
        }
        self.round_ballots.insert(
            from,
            Ballot {
                vote: notification.vote,
                state: PeerState::Looking,
                version: 0,
            },
        );
        let target = Ballot {
            vote: self.proposal_vote(),
            state: PeerState::Looking,
            version: 0,
        };
        let supporters = supporters(&self.round_ballots, &target);
        if self.config.is_quorum(supporters.iter().copied()) {
            self.poll_deadline_ms = None;
            self.finalization = Some(Finalization {
                deadline_ms: now_ms.saturating_add(FINALIZE_WAIT_MS),
                supporters,
            });
        }
    }

    /// §2.5 step 4: a FOLLOWING or LEADING peer's vote (`receivedFollowingNotification`).
    fn poll_announcement(
        &mut self,
        from: ServerId,
        notification: &Notification,
        actions: &mut Vec<Action>,
    ) {
        let vote = notification.vote;
        let target = Ballot {
            vote,
            state: notification.state,
            version: notification.version,
        };
        if vote.election_epoch == self.round {
            // ZooKeeper stores this round's entry without the message version, so against
            // the (versioned) target only the leader id is compared.
            self.round_ballots.insert(
                from,
                Ballot {
                    vote,
                    state: notification.state,
                    version: 0,
                },
            );
            let supporters = supporters(&self.round_ballots, &target);
            if self.config.is_quorum(supporters.iter().copied())
                && self.leader_confirmed(&self.round_ballots, vote.leader, vote.election_epoch)
            {
                self.decide(vote, DecisionBasis::RoundQuorum, supporters, actions);
                return;
            }
        }
        // Joining an established ensemble: a quorum following the same leader, whatever
        // round they were elected in.
        self.established_ballots.insert(from, target);
        let supporters = supporters(&self.established_ballots, &target);
        if self.config.is_quorum(supporters.iter().copied())
            && self.leader_confirmed(&self.established_ballots, vote.leader, vote.election_epoch)
        {
            self.round = vote.election_epoch;
            self.decide(vote, DecisionBasis::EstablishedLeader, supporters, actions);
        }
    }

    /// `checkLeader`: another leader must itself have said it is LEADING (so that a
    /// crashed leader is not elected again and again); we lead only for our own round.
    fn leader_confirmed(
        &self,
        ballots: &BTreeMap<ServerId, Ballot>,
        leader: ServerId,
        election_epoch: i64,
    ) -> bool {
        if leader != self.my_id {
            ballots
                .get(&leader)
                .is_some_and(|ballot| ballot.state == PeerState::Leading)
        } else {
            self.round == election_epoch
        }
    }

    fn tick(&mut self, now_ms: u64, have_delivered: bool, actions: &mut Vec<Action>) {
        if self.state != PeerState::Looking || !self.started {
            return;
        }
        if let Some(finalization) = &self.finalization {
            if now_ms >= finalization.deadline_ms {
                let supporters = finalization.supporters.clone();
                let vote = self.proposal_vote();
                self.decide(vote, DecisionBasis::LookingQuorum, supporters, actions);
            }
            return;
        }
        let Some(deadline_ms) = self.poll_deadline_ms else {
            return;
        };
        if now_ms < deadline_ms {
            return;
        }
        // §2.5 step 1: nothing arrived for a whole timeout.
        if have_delivered {
            self.broadcast(actions);
        } else {
            actions.push(Action::ReconnectAll);
        }
        let doubled_ms = self.notification_timeout_ms.saturating_mul(2);
        self.notification_timeout_ms = doubled_ms.min(NOTIFICATION_TIMEOUT_MAX_MS);
        self.poll_deadline_ms = Some(now_ms.saturating_add(self.notification_timeout_ms));
        log::info!(
            "election: server {} notification timeout, next {} ms",
            self.my_id,
            self.notification_timeout_ms
        );
    }

    /// Leave the election (`setPeerState` + `leaveInstance`).
    fn decide(
        &mut self,
        vote: Vote,
        basis: DecisionBasis,
        supporters: Vec<ServerId>,
        actions: &mut Vec<Action>,
    ) {
        let state = if vote.leader == self.my_id {
            PeerState::Leading
        } else if self.participant {
            PeerState::Following
        } else {
            PeerState::Observing
        };
        debug_assert!(self.config.is_voter(vote.leader), "decided for a non-voter");
        log::info!(
            "election: server {} decided {} of {} in round {:#x} ({:?})",
            self.my_id,
            state.mode_name(),
            vote.leader,
            vote.election_epoch,
            basis
        );
        self.state = state;
        self.current_vote = vote;
        self.round_ballots.clear();
        self.established_ballots.clear();
        self.finalization = None;
        self.poll_deadline_ms = None;
        actions.push(Action::Decided {
            state,
            vote,
            basis,
            supporters,
        });
    }

    /// Send our proposal to every voter, ourselves included when we vote.
    fn broadcast(&self, actions: &mut Vec<Action>) {
        let vote = self.proposal_vote();
        for to in self.config.voters() {
            actions.push(self.send(to, PeerState::Looking, vote));
        }
    }

    fn send(&self, to: ServerId, state: PeerState, vote: Vote) -> Action {
        Action::Send {
            to,
            notification: Notification {
                state,
                vote,
                version: NOTIFICATION_VERSION,
                config: None,
            },
        }
    }

    fn proposal_vote(&self) -> Vote {
        Vote {
            leader: self.proposal.leader,
            zxid: self.proposal.zxid,
            election_epoch: self.round,
            peer_epoch: self.proposal.peer_epoch,
        }
    }

    /// Our own vote (§2.2): ourselves if we vote, else no one.
    fn initial_candidate(&self) -> Candidate {
        if self.participant {
            Candidate {
                leader: self.my_id,
                zxid: self.last_logged_zxid,
                peer_epoch: self.current_epoch,
            }
        } else {
            Candidate {
                leader: NO_LEADER,
                zxid: i64::MIN,
                peer_epoch: i64::MIN,
            }
        }
    }

    /// `totalOrderPredicate` (§2.3). A non-voter never wins (ZooKeeper: weight 0; its
    /// majority verifier gives every id weight 1, but the loop drops votes for non-voters
    /// anyway, so only the finalize drain could tell the difference).
    fn beats(&self, offered: &Candidate, current: &Candidate) -> bool {
        self.config.is_voter(offered.leader) && offered.rank() > current.rank()
    }

    fn set_proposal(&mut self, proposal: Candidate, new_round: bool) {
        debug_assert!(
            new_round || proposal.rank() >= self.proposal.rank(),
            "a proposal got worse within a round"
        );
        self.proposal = proposal;
    }

    fn check_invariants(&self) {
        debug_assert!((NOTIFICATION_TIMEOUT_MIN_MS..=NOTIFICATION_TIMEOUT_MAX_MS)
            .contains(&self.notification_timeout_ms));
        let looking = self.state == PeerState::Looking && self.started;
        debug_assert!(self.finalization.is_none() || looking);
        debug_assert_eq!(
            self.poll_deadline_ms.is_some(),
            looking && self.finalization.is_none()
        );
        if looking {
            let initial = self.initial_candidate();
            debug_assert!(
                self.proposal == initial || self.proposal.rank() > initial.rank(),
                "proposal {:?} below our initial vote {:?}",
                self.proposal,
                initial
            );
        } else {
            debug_assert!(self.round_ballots.is_empty() && self.established_ballots.is_empty());
        }
    }
}

/// The voters whose ballot matches `target` (`getVoteTracker`), sorted.
fn supporters(ballots: &BTreeMap<ServerId, Ballot>, target: &Ballot) -> Vec<ServerId> {
    ballots
        .iter()
        .filter(|(_, ballot)| target.matches(ballot))
        .map(|(id, _)| *id)
        .collect()
}
