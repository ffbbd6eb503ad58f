//! The leader's side of the broadcast phase as data: which proposals are outstanding, who
//! has acknowledged them, what is committed; and the in-memory log of recent committed txns
//! that learners are synced from (ZooKeeper's `committedLog`), with the choice between DIFF,
//! TRUNC and SNAP (ZAB-WIRE.md 3.5).
//!
//! Architecture invariant: pure, like the rest of `zab`. An acknowledgement is counted only
//! for a proposal that is outstanding; the leader's own acknowledgement comes only from
//! [`AckTracker::persisted`] (its own log made the txn durable), never from proposing it.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use super::{counter_of, epoch_of, QuorumConfig, ServerId};

/// Outstanding proposals and their acknowledgements.
///
/// Invariant: `committed <= proposed`; `committed` never decreases; every outstanding
/// zxid is in `(committed, proposed]`, in order.
#[derive(Debug)]
pub struct AckTracker {
    me: ServerId,
    config: QuorumConfig,
    /// Outstanding proposals, oldest first: (zxid, servers that acknowledged it).
    outstanding: VecDeque<(i64, BTreeSet<ServerId>)>,
    /// The last zxid proposed.
    proposed: i64,
    /// The last zxid committed.
    committed: i64,
}

/// What an acknowledgement (or a persisted report) did.
#[derive(Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// Commit everything up to and including this zxid (newly committed).
    Commit(i64),
    Nothing,
}

impl AckTracker {
    /// A leader whose history is committed up to `committed` (its last zxid at the start of
    /// its epoch: `epoch << 32`).
    pub fn new(me: ServerId, config: QuorumConfig, committed: i64) -> AckTracker {
        AckTracker {
            me,
            config,
            outstanding: VecDeque::new(),
            proposed: committed,
            committed,
        }
    }

    pub fn committed(&self) -> i64 {
        self.committed
    }

    pub fn proposed(&self) -> i64 {
        self.proposed
    }

    /// Outstanding (proposed, not committed) zxids, oldest first.
    pub fn outstanding(&self) -> impl Iterator<Item = i64> + '_ {
        self.outstanding.iter().map(|(z, _)| *z)
    }

    /// The oldest outstanding zxid, if any.
    pub fn oldest_outstanding(&self) -> Option<i64> {
        self.outstanding.front().map(|(z, _)| *z)
    }

    /// Records a new proposal. Panics if zxids do not increase: the ordering core assigns
    /// them, and a zxid going backwards would break the log and every follower.
    pub fn propose(&mut self, zxid: i64) {
        assert!(
            zxid > self.proposed,
            "proposal 0x{zxid:x} after 0x{:x}",
            self.proposed
        );
        self.proposed = zxid;
        self.outstanding.push_back((zxid, BTreeSet::new()));
    }

    /// `from` acknowledged every proposal up to `zxid` that it was sent (a follower logs
    /// proposals in order, so an ACK of `zxid` implies the earlier ones; ZooKeeper sends one
    /// ACK per proposal, which this also handles). ACKs of zxids with counter 0 (the
    /// NEWLEADER and UPTODATE acks), of committed or of unknown zxids are ignored.
    pub fn ack(&mut self, from: ServerId, zxid: i64) -> AckOutcome {
        if counter_of(zxid) == 0 || zxid <= self.committed || zxid > self.proposed {
            return AckOutcome::Nothing;
        }
        for (z, acks) in self.outstanding.iter_mut() {
            if *z > zxid {
                break;
            }
            acks.insert(from);
        }
        self.advance()
    }

    /// Forgets `from`'s acknowledgements of the outstanding proposals: its link is gone,
    /// and the sync of its next link may truncate them (a TRUNC to the last committed
    /// zxid, then the outstanding proposals again) before it acknowledges them anew.
    pub fn forget(&mut self, from: ServerId) {
        assert_ne!(
            from, self.me,
            "the leader's own acknowledgements come from its log"
        );
        for (_, acks) in self.outstanding.iter_mut() {
            acks.remove(&from);
        }
    }

    /// The leader's own log holds everything up to `upto`: its own acknowledgement.
    pub fn persisted(&mut self, upto: i64) -> AckOutcome {
        let me = self.me;
        for (z, acks) in self.outstanding.iter_mut() {
            if *z > upto {
                break;
            }
            acks.insert(me);
        }
        self.advance()
    }

    /// Commits the longest prefix of outstanding proposals that each have a quorum (commits
    /// are strictly in order: a later proposal with a quorum waits for the earlier ones).
    fn advance(&mut self) -> AckOutcome {
        let mut newly = None;
        while let Some((zxid, acks)) = self.outstanding.front() {
            if !self.config.is_quorum(acks.iter().copied()) {
                break;
            }
            newly = Some(*zxid);
            self.outstanding.pop_front();
        }
        match newly {
            Some(zxid) => {
                debug_assert!(zxid > self.committed);
                self.committed = zxid;
                AckOutcome::Commit(zxid)
            }
            None => AckOutcome::Nothing,
        }
    }
}

/// A committed txn as learners receive it: its zxid and ZooKeeper's serialization of it
/// (TxnHeader + record), ready to be sent as a PROPOSAL's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedTxn {
    pub zxid: i64,
    pub data: Bytes,
}

/// The most recent committed txns, in zxid order (ZooKeeper's `committedLog`).
///
/// Invariant: zxids strictly increase, and within one epoch they are contiguous (each
/// counter is the previous plus one); an epoch change may start at any counter. `base` is the zxid right before the
/// first entry (the history is known up to `base` only as a whole, e.g. a snapshot).
#[derive(Debug, Clone)]
pub struct CommittedLog {
    entries: VecDeque<CommittedTxn>,
    capacity: usize,
    /// The last committed zxid before the first entry.
    base: i64,
}

/// How a learner is brought up to date (ZooKeeper's `LearnerHandler.syncFollower`).
#[derive(Debug, PartialEq, Eq)]
pub enum SyncPlan {
    /// DIFF: send the committed txns after the learner's last zxid (maybe none); `zxid` is
    /// the DIFF packet's zxid.
    Diff { zxid: i64, txns: Vec<CommittedTxn> },
    /// TRUNC to `zxid`, then these committed txns after it.
    Trunc { zxid: i64, txns: Vec<CommittedTxn> },
    /// The learner's history cannot be reconciled from the log: send a snapshot.
    Snap,
}

impl CommittedLog {
    pub fn new(base: i64, capacity: usize) -> CommittedLog {
        CommittedLog {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            base,
        }
    }

    /// The last committed zxid.
    pub fn last(&self) -> i64 {
        self.entries.back().map_or(self.base, |e| e.zxid)
    }

    /// The last committed zxid before the first entry.
    pub fn base(&self) -> i64 {
        self.base
    }

    /// The oldest zxid held (ZooKeeper's minCommittedLog; `base` when empty).
    pub fn min(&self) -> i64 {
        self.entries.front().map_or(self.base, |e| e.zxid)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a newly committed txn. Panics when the zxid does not follow: a hole here
    /// would make a later DIFF skip txns (ZOOKEEPER-4925).
    pub fn push(&mut self, txn: CommittedTxn) {
        let last = self.last();
        assert!(
            follows(last, txn.zxid),
            "committed log: 0x{:x} does not follow 0x{last:x}",
            txn.zxid
        );
        if self.entries.len() == self.capacity {
            if let Some(dropped) = self.entries.pop_front() {
                self.base = dropped.zxid;
            }
        }
        self.entries.push_back(txn);
    }

    /// Drops every entry after `zxid` (a TRUNC, or a log cut after a crash). When `zxid`
    /// lies before the first entry, the log knows nothing but `zxid` as a whole.
    pub fn truncate_after(&mut self, zxid: i64) {
        while self.entries.back().is_some_and(|e| e.zxid > zxid) {
            self.entries.pop_back();
        }
        if self.entries.is_empty() {
            self.base = self.base.min(zxid);
        }
    }

    /// Forgets every entry: the history up to `base` is now known only as a whole (a SNAP).
    pub fn reset(&mut self, base: i64) {
        self.entries.clear();
        self.base = base;
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, CommittedTxn> {
        self.entries.iter()
    }

    /// The leader's last committed zxid moves to the start of a new epoch (`epoch << 32`)
    /// without a txn; the entries stay (a learner may still be synced across it by DIFF).
    pub fn start_epoch(&mut self, zxid: i64) {
        assert!(zxid >= self.last(), "new epoch 0x{zxid:x} behind the log");
        if self.entries.is_empty() {
            self.base = zxid;
        }
    }

    /// Chooses how to sync a learner whose last logged zxid is `peer_last` (ZAB-WIRE.md 3.5):
    /// equal -> empty DIFF; ahead of everything committed -> TRUNC to the last committed
    /// (unless its zxid starts a new epoch); inside the log -> DIFF of what follows, or TRUNC
    /// to the last common zxid when the learner has a txn the leader lacks in the same epoch;
    /// older than the log -> SNAP.
    pub fn plan_sync(&self, peer_last: i64) -> SyncPlan {
        let last = self.last();
        let peer_new_epoch = counter_of(peer_last) == 0;
        if peer_last == last {
            return SyncPlan::Diff {
                zxid: peer_last,
                txns: Vec::new(),
            };
        }
        if peer_last > last {
            if peer_new_epoch && epoch_of(peer_last) <= epoch_of(last) + 1 {
                // An empty new epoch the leader never committed into: nothing to undo.
                return SyncPlan::Diff {
                    zxid: last,
                    txns: Vec::new(),
                };
            }
            return SyncPlan::Trunc {
                zxid: last,
                txns: Vec::new(),
            };
        }
        if peer_last < self.base {
            return SyncPlan::Snap;
        }
        // base <= peer_last < last: find the first entry >= peer_last.
        let mut previous = self.base;
        for (index, entry) in self.entries.iter().enumerate() {
            if entry.zxid < peer_last {
                previous = entry.zxid;
                continue;
            }
            let rest: Vec<CommittedTxn> = self.entries.iter().skip(index).cloned().collect();
            if entry.zxid == peer_last {
                return SyncPlan::Diff {
                    zxid: last,
                    txns: rest.into_iter().skip(1).collect(),
                };
            }
            if peer_new_epoch || peer_last == self.base {
                return SyncPlan::Diff {
                    zxid: last,
                    txns: rest,
                };
            }
            // The learner holds a txn the leader never committed. Truncating is only safe
            // inside one epoch (ZOOKEEPER-1154): across epochs, send a snapshot.
            if epoch_of(previous) != epoch_of(peer_last) {
                return SyncPlan::Snap;
            }
            return SyncPlan::Trunc {
                zxid: previous,
                txns: rest,
            };
        }
        SyncPlan::Snap
    }

    /// [`CommittedLog::plan_sync`] for a learner older than the log, given `older`: txns
    /// read back from the leader's log files, which must start with the learner's own last
    /// zxid and run without a gap to at least `base`. Then the learner gets a DIFF of the
    /// rest of them up to `base` and the log's entries after it; otherwise (and for a
    /// learner the log itself covers) the plan is `plan_sync`'s.
    pub fn plan_sync_from(&self, peer_last: i64, older: &[CommittedTxn]) -> SyncPlan {
        let plan = self.plan_sync(peer_last);
        if plan != SyncPlan::Snap || peer_last >= self.base {
            return plan;
        }
        if older.first().map(|t| t.zxid) != Some(peer_last)
            || !older.windows(2).all(|w| follows(w[0].zxid, w[1].zxid))
        {
            return plan;
        }
        let Some(end) = older.iter().position(|t| t.zxid == self.base) else {
            return plan;
        };
        let mut txns: Vec<CommittedTxn> = older[1..=end].to_vec();
        txns.extend(self.entries.iter().cloned());
        SyncPlan::Diff {
            zxid: self.last(),
            txns,
        }
    }
}

/// Whether `next` may come right after `previous` in a history (the next counter, or a
/// later epoch at any counter).
fn follows(previous: i64, next: i64) -> bool {
    next > previous
        && (epoch_of(next) > epoch_of(previous) || counter_of(next) == counter_of(previous) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::{make_zxid, Member};

    fn config(voters: &[ServerId], observers: &[ServerId]) -> QuorumConfig {
        let mut members = Vec::new();
        for (ids, observer) in [(voters, false), (observers, true)] {
            for &id in ids {
                members.push(Member {
                    id,
                    host: "127.0.0.1".into(),
                    quorum_port: 1,
                    election_port: 2,
                    observer,
                    client: None,
                });
            }
        }
        QuorumConfig::new(members, 0)
    }

    fn z(epoch: u32, counter: u32) -> i64 {
        make_zxid(epoch, counter)
    }

    #[test]
    fn the_leaders_own_ack_comes_only_from_its_log() {
        let mut t = AckTracker::new(1, config(&[1, 2, 3], &[]), z(1, 0));
        t.propose(z(1, 1));
        // A follower alone is not a quorum of three.
        assert_eq!(t.ack(2, z(1, 1)), AckOutcome::Nothing);
        // Proposing did not count as the leader's ack; its log does.
        assert_eq!(t.persisted(z(1, 1)), AckOutcome::Commit(z(1, 1)));
        assert_eq!(t.committed(), z(1, 1));
    }

    #[test]
    fn commits_are_in_order_and_observers_do_not_count() {
        let mut t = AckTracker::new(1, config(&[1, 2, 3], &[4]), z(2, 0));
        for c in 1..=3 {
            t.propose(z(2, c));
        }
        // The leader persisted only the first; follower 2 acks the third only, observer 4 all.
        assert_eq!(t.persisted(z(2, 1)), AckOutcome::Nothing);
        assert_eq!(t.ack(4, z(2, 3)), AckOutcome::Nothing);
        // An ACK of zxid n covers the earlier proposals too (followers log in order).
        assert_eq!(t.ack(2, z(2, 3)), AckOutcome::Commit(z(2, 1)));
        assert_eq!(t.persisted(z(2, 3)), AckOutcome::Commit(z(2, 3)));
        assert_eq!(t.outstanding().count(), 0);
    }

    #[test]
    fn stale_unknown_and_epoch_acks_are_ignored() {
        let mut t = AckTracker::new(1, config(&[1, 2, 3], &[]), z(3, 0));
        t.propose(z(3, 1));
        assert_eq!(t.ack(2, z(3, 0)), AckOutcome::Nothing); // NEWLEADER ack
        assert_eq!(t.ack(2, z(3, 7)), AckOutcome::Nothing); // never proposed
        assert_eq!(t.ack(2, z(2, 9)), AckOutcome::Nothing); // old epoch
        assert_eq!(t.outstanding().collect::<Vec<_>>(), vec![z(3, 1)]);
        assert_eq!(t.ack(3, z(3, 1)), AckOutcome::Nothing);
        assert_eq!(t.persisted(z(3, 1)), AckOutcome::Commit(z(3, 1)));
        assert_eq!(t.ack(3, z(3, 1)), AckOutcome::Nothing); // already committed
    }

    #[test]
    #[should_panic(expected = "proposal")]
    fn proposals_must_increase() {
        let mut t = AckTracker::new(1, config(&[1], &[]), z(1, 0));
        t.propose(z(1, 2));
        t.propose(z(1, 2));
    }

    #[test]
    fn a_single_voter_commits_on_its_own_log() {
        let mut t = AckTracker::new(1, config(&[1], &[]), 0);
        t.propose(1);
        t.propose(2);
        assert_eq!(t.persisted(2), AckOutcome::Commit(2));
    }

    fn log_with(base: i64, zxids: &[i64]) -> CommittedLog {
        let mut log = CommittedLog::new(base, 100);
        for &zxid in zxids {
            log.push(CommittedTxn {
                zxid,
                data: Bytes::from(zxid.to_be_bytes().to_vec()),
            });
        }
        log
    }

    fn zxids(txns: &[CommittedTxn]) -> Vec<i64> {
        txns.iter().map(|t| t.zxid).collect()
    }

    #[test]
    fn sync_plans_follow_zookeepers_rules() {
        let log = log_with(z(1, 3), &[z(1, 4), z(1, 5), z(2, 1), z(2, 2)]);
        // Up to date.
        assert_eq!(
            log.plan_sync(z(2, 2)),
            SyncPlan::Diff {
                zxid: z(2, 2),
                txns: vec![]
            }
        );
        // Behind, inside the log.
        match log.plan_sync(z(1, 5)) {
            SyncPlan::Diff { zxid, txns } => {
                assert_eq!(zxid, z(2, 2));
                assert_eq!(zxids(&txns), vec![z(2, 1), z(2, 2)]);
            }
            other => panic!("{other:?}"),
        }
        // Exactly at the base: everything in the log.
        match log.plan_sync(z(1, 3)) {
            SyncPlan::Diff { txns, .. } => assert_eq!(txns.len(), 4),
            other => panic!("{other:?}"),
        }
        // A new-epoch zxid the leader lacks: DIFF from the next entry.
        match log.plan_sync(z(2, 0)) {
            SyncPlan::Diff { txns, .. } => assert_eq!(zxids(&txns), vec![z(2, 1), z(2, 2)]),
            other => panic!("{other:?}"),
        }
        // Ahead of everything committed, same epoch: TRUNC to the last committed.
        assert_eq!(
            log.plan_sync(z(2, 5)),
            SyncPlan::Trunc {
                zxid: z(2, 2),
                txns: vec![]
            }
        );
        // Older than the log: SNAP.
        assert_eq!(log.plan_sync(z(1, 2)), SyncPlan::Snap);
        assert_eq!(log.plan_sync(0), SyncPlan::Snap);
    }

    #[test]
    fn an_older_learner_gets_a_diff_from_the_txns_read_back_from_the_files() {
        let log = log_with(z(1, 5), &[z(1, 6), z(2, 1)]);
        let files = |zxids: &[i64]| -> Vec<CommittedTxn> {
            zxids
                .iter()
                .map(|&zxid| CommittedTxn {
                    zxid,
                    data: Bytes::from(zxid.to_be_bytes().to_vec()),
                })
                .collect()
        };
        // The files hold the learner's (1,2) and everything up to the base (1,5) and past.
        let older = files(&[z(1, 2), z(1, 3), z(1, 4), z(1, 5), z(1, 6)]);
        match log.plan_sync_from(z(1, 2), &older) {
            SyncPlan::Diff { zxid, txns } => {
                assert_eq!(zxid, z(2, 1));
                assert_eq!(
                    zxids(&txns),
                    vec![z(1, 3), z(1, 4), z(1, 5), z(1, 6), z(2, 1)]
                );
                assert_eq!(txns[0].data, older[1].data);
            }
            other => panic!("{other:?}"),
        }
        // Exactly at the base's predecessor, across an epoch change in the files.
        let older = files(&[z(0, 9), z(1, 1), z(1, 2), z(1, 3), z(1, 4), z(1, 5)]);
        match log.plan_sync_from(z(0, 9), &older) {
            SyncPlan::Diff { txns, .. } => assert_eq!(txns.len(), 7),
            other => panic!("{other:?}"),
        }
        // The files do not start at the learner's zxid (it may hold a txn the leader never
        // had), skip one, or stop before the base: SNAP.
        let snap = [
            (
                z(1, 2),
                files(&[z(1, 1), z(1, 2), z(1, 3), z(1, 4), z(1, 5)]),
            ),
            (z(1, 2), files(&[z(1, 3), z(1, 4), z(1, 5)])),
            (z(1, 2), files(&[z(1, 2), z(1, 4), z(1, 5)])),
            (z(1, 2), files(&[z(1, 2), z(1, 3), z(1, 4)])),
            (z(1, 2), Vec::new()),
        ];
        for (peer, older) in snap {
            assert_eq!(
                log.plan_sync_from(peer, &older),
                SyncPlan::Snap,
                "{:?}",
                zxids(&older)
            );
        }
        // A learner the in-memory log covers gets the same plan as without the files.
        let older = files(&[z(1, 5), z(1, 6)]);
        assert_eq!(log.plan_sync_from(z(1, 5), &older), log.plan_sync(z(1, 5)));
        assert_eq!(log.plan_sync_from(z(1, 6), &older), log.plan_sync(z(1, 6)));
    }

    #[test]
    fn a_divergent_txn_is_truncated_within_its_epoch_only() {
        // The learner logged (1,6), which the new leader never had: (1,5) then (2,1).
        let log = log_with(z(1, 3), &[z(1, 4), z(1, 5), z(2, 1)]);
        // (1,6) sits between (1,5) and (2,1): previous (1,5) is in the same epoch -> TRUNC.
        match log.plan_sync(z(1, 6)) {
            SyncPlan::Trunc { zxid, txns } => {
                assert_eq!(zxid, z(1, 5));
                assert_eq!(zxids(&txns), vec![z(2, 1)]);
            }
            other => panic!("{other:?}"),
        }
        // ZOOKEEPER-1154: the learner's divergent txn (1,7) comes after a zxid of another
        // epoch in the leader's history (base (0,3), then epoch 2): never TRUNC across
        // epochs, send a snapshot.
        let log = log_with(z(0, 3), &[z(2, 1), z(2, 2)]);
        assert_eq!(log.plan_sync(z(1, 7)), SyncPlan::Snap);
    }

    #[test]
    fn the_log_keeps_its_capacity_and_refuses_holes() {
        let mut log = CommittedLog::new(0, 2);
        for c in 1..=3 {
            log.push(CommittedTxn {
                zxid: z(0, c),
                data: Bytes::new(),
            });
        }
        assert_eq!(log.len(), 2);
        assert_eq!(log.min(), z(0, 2));
        assert_eq!(
            log.plan_sync(z(0, 1)),
            SyncPlan::Diff {
                zxid: z(0, 3),
                txns: vec![
                    CommittedTxn {
                        zxid: z(0, 2),
                        data: Bytes::new()
                    },
                    CommittedTxn {
                        zxid: z(0, 3),
                        data: Bytes::new()
                    },
                ],
            }
        );
        assert_eq!(log.plan_sync(0), SyncPlan::Snap);
        let hole = std::panic::catch_unwind(move || {
            let mut log = log;
            log.push(CommittedTxn {
                zxid: z(0, 5),
                data: Bytes::new(),
            });
        });
        assert!(
            hole.is_err(),
            "a hole in the committed log must stop the server"
        );
    }
}
