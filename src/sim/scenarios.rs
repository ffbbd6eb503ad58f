//! One test per known ZooKeeper ensemble bug of ZAB-WIRE.md §6, each named after it: the
//! bug's sequence of events replayed deterministically, through the simulation (`Sim`, whose
//! checks run after every step: see `sim/mod.rs`) or by stepping a `Replica` by hand, and
//! the invariant the bug broke asserted.

use bytes::Bytes;

use super::{last_zxid, member, Options, Sim};
use crate::zab::broadcast::CommittedTxn;
use crate::zab::replica::{Action, Input, Msg, Params, Recovered, Replica};
use crate::zab::{counter_of, epoch_of, make_zxid, PeerState, QuorumConfig, ServerId};

// ---- helpers: the simulation ----

/// A fault-free ensemble whose one client is driven by the test.
fn quiet(servers: usize, seed: u64) -> Sim {
    let mut opts = Options::new(servers);
    opts.clients = 1;
    opts.client_load = false;
    opts.committed_log_capacity = 100;
    let mut sim = Sim::new(opts, seed);
    sim.start();
    sim
}

/// Runs until one leader is established and every server that is up serves.
fn settle(sim: &mut Sim) -> ServerId {
    let limit = sim.now_ms() + 60_000;
    let settled = sim.run_while_not(limit, |s| {
        s.leader().is_some() && s.ids().iter().all(|id| !s.is_up(*id) || s.serving(*id))
    });
    assert!(settled, "no settled ensemble: {}", sim.describe());
    sim.leader().expect("a leader")
}

/// Client 0 writes through `server`; returns the zxid once acknowledged (None when its
/// connection was lost first).
fn try_write(sim: &mut Sim, server: ServerId) -> Option<i64> {
    if !sim.connect_client(0, server) {
        return None;
    }
    sim.client_write(0);
    let limit = sim.now_ms() + 5_000;
    sim.run_while_not(limit, |s| {
        s.client_outstanding(0) == 0 || s.client_server(0).is_none()
    });
    (sim.client_server(0).is_some() && sim.client_outstanding(0) == 0).then(|| sim.acked_max())
}

fn write(sim: &mut Sim, server: ServerId) -> i64 {
    try_write(sim, server)
        .unwrap_or_else(|| panic!("the write via {server} failed: {}", sim.describe()))
}

/// Starts a write through the leader and returns without waiting for it.
fn start_write(sim: &mut Sim, server: ServerId) {
    assert!(sim.connect_client(0, server));
    sim.client_write(0);
}

fn holds(sim: &Sim, id: ServerId, zxid: i64) -> bool {
    sim.log(id).iter().any(|t| t.zxid == zxid)
}

fn others(sim: &Sim, id: ServerId) -> Vec<ServerId> {
    sim.ids().into_iter().filter(|x| *x != id).collect()
}

/// Every server that is up holds every acknowledged write `zxids`, and the logs of all
/// serving servers agree up to the shortest.
fn assert_everyone_has(sim: &Sim, zxids: &[i64]) {
    for id in sim.ids() {
        if !sim.is_up(id) {
            continue;
        }
        for z in zxids {
            assert!(
                holds(sim, id, *z),
                "server {id} lacks the acknowledged 0x{z:x}: {}",
                sim.describe()
            );
        }
    }
    let logs: Vec<_> = sim
        .ids()
        .into_iter()
        .map(|id| sim.log(id).to_vec())
        .collect();
    for a in &logs {
        for b in &logs {
            let n = a.len().min(b.len());
            assert_eq!(a[..n], b[..n], "two logs disagree");
        }
    }
}

// ---- helpers: one replica by hand ----

fn config(n: u64) -> QuorumConfig {
    QuorumConfig::new((1..=n).map(member).collect(), 0)
}

fn txn(zxid: i64) -> CommittedTxn {
    CommittedTxn {
        zxid,
        data: Bytes::from(zxid.to_be_bytes().to_vec()),
    }
}

fn z(epoch: u32, counter: u32) -> i64 {
    make_zxid(epoch, counter)
}

/// Server 1 of 3, with a log of epoch 1 up to (1, `last`), following server 3 into the
/// handshake: returns the replica after it sent ACKEPOCH for epoch `new_epoch`.
fn follower_in_handshake(last: u32, new_epoch: i64) -> Replica {
    let tail: Vec<CommittedTxn> = (1..=last).map(|c| txn(z(1, c))).collect();
    let mut r = Replica::new(
        1,
        config(3),
        Params::new(100, 10, 5),
        Recovered {
            accepted_epoch: 1,
            current_epoch: 1,
            base: 0,
            tail,
        },
    );
    step(&mut r, Input::Start { now_ms: 0 });
    let acts = step(
        &mut r,
        Input::Elected {
            now_ms: 0,
            state: PeerState::Following,
            leader: 3,
        },
    );
    assert_eq!(acts, vec![Action::Connect { to: 3 }]);
    step(&mut r, Input::Connected { now_ms: 1, peer: 3 });
    let acts = recv(&mut r, Msg::LeaderInfo { epoch: new_epoch });
    assert!(acts.contains(&Action::Send {
        to: 3,
        msg: Msg::AckEpoch {
            last_zxid: z(1, last),
            current_epoch: 1
        }
    }));
    r
}

fn step(r: &mut Replica, input: Input) -> Vec<Action> {
    r.step(input)
}

fn recv(r: &mut Replica, msg: Msg) -> Vec<Action> {
    r.step(Input::Received {
        now_ms: 2,
        from: 3,
        msg,
    })
}

fn proposal(zxid: i64) -> Msg {
    Msg::Proposal {
        zxid,
        data: txn(zxid).data,
    }
}

fn sends(acts: &[Action]) -> Vec<&Msg> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect()
}

fn persisted_zxids(acts: &[Action]) -> Vec<i64> {
    acts.iter()
        .flat_map(|a| match a {
            Action::Persist { txns } => txns.iter().map(|t| t.zxid).collect(),
            _ => Vec::new(),
        })
        .collect()
}

// ---- the scenarios ----

/// ZOOKEEPER-1154: a txn logged only by the old leader (never committed), everyone
/// crashes, the others elect a new leader and commit more; the old leader rejoins with its
/// phantom txn inside the new leader's committed range. It must be truncated away (DIFF
/// would keep it): after the sync its log is a prefix of the leader's.
#[test]
fn zookeeper_1154_a_divergent_uncommitted_txn_is_truncated() {
    let mut sim = quiet(3, 1154);
    let old = settle(&mut sim);
    let committed: Vec<i64> = (0..3).map(|_| write(&mut sim, old)).collect();
    let followers = others(&sim, old);
    for f in &followers {
        sim.hold_disk(*f);
    }
    start_write(&mut sim, old);
    sim.run_until(sim.now_ms() + 100);
    let phantom = last_zxid(sim.durable_log(old));
    assert!(
        phantom > *committed.last().unwrap(),
        "the old leader logged the phantom txn"
    );
    for f in &followers {
        assert_eq!(last_zxid(sim.durable_log(*f)), *committed.last().unwrap());
        sim.crash_losing_pending(*f, false);
    }
    sim.crash(old, false);
    for f in &followers {
        sim.restart(*f);
    }
    let new = settle(&mut sim);
    assert_ne!(new, old);
    let later: Vec<i64> = (0..3).map(|_| write(&mut sim, new)).collect();
    assert!(epoch_of(later[0]) > epoch_of(phantom));
    let truncs_before = sim.stats.truncs;
    sim.restart(old);
    settle(&mut sim);
    assert!(
        sim.stats.truncs > truncs_before,
        "the old leader was synced by TRUNC"
    );
    assert!(
        !holds(&sim, old, phantom),
        "the phantom txn survived the sync"
    );
    assert_everyone_has(&sim, &[committed, later].concat());
}

/// ZOOKEEPER-2355: a learner that fails in the middle of a DIFF sync (after DIFF and some
/// proposals, before NEWLEADER) must not advertise a zxid it never logged, or the next
/// sync skips txns (there: a closeSession, leaving an ephemeral forever).
#[test]
fn zookeeper_2355_an_interrupted_diff_does_not_move_the_advertised_zxid() {
    let mut r = follower_in_handshake(3, 2);
    let mut acts = recv(&mut r, Msg::Diff { zxid: z(1, 6) });
    for c in 4..=6 {
        acts.extend(recv(&mut r, proposal(z(1, c))));
        acts.extend(recv(&mut r, Msg::Commit { zxid: z(1, c) }));
    }
    assert!(
        persisted_zxids(&acts).is_empty(),
        "nothing logged before NEWLEADER"
    );
    assert!(sends(&acts).is_empty(), "nothing sent during the sync");
    let acts = step(&mut r, Input::Disconnected { now_ms: 3, peer: 3 });
    assert!(
        matches!(acts.last(), Some(Action::Looking { last_zxid, .. }) if *last_zxid == z(1, 3)),
        "{acts:?}"
    );
    assert_eq!(r.logged(), z(1, 3));
    // The next term's handshake advertises the same zxid, so it gets (1,4)..(1,6) again.
    let acts = step(
        &mut r,
        Input::Elected {
            now_ms: 10,
            state: PeerState::Following,
            leader: 3,
        },
    );
    assert_eq!(acts, vec![Action::Connect { to: 3 }]);
    step(
        &mut r,
        Input::Connected {
            now_ms: 11,
            peer: 3,
        },
    );
    let acts = recv(&mut r, Msg::LeaderInfo { epoch: 3 });
    assert!(acts.contains(&Action::Send {
        to: 3,
        msg: Msg::AckEpoch {
            last_zxid: z(1, 3),
            current_epoch: 1
        }
    }));
}

/// ZOOKEEPER-2678 / 3911: DIFF txns logged after the NEWLEADER ACK; a whole-quorum crash
/// after the leader started serving lost committed txns. Here a lagging follower DIFF-syncs
/// on a slow disk into a new epoch, the leader serves, then the whole quorum of that epoch
/// crashes: nothing acknowledged may be lost.
#[test]
fn zookeeper_2678_3911_a_crash_after_a_diff_sync_loses_nothing() {
    let mut sim = quiet(3, 3911);
    let leader = settle(&mut sim);
    let [lagging, other] = others(&sim, leader)[..] else {
        unreachable!()
    };
    sim.crash(lagging, true);
    let mut acked: Vec<i64> = (0..4).map(|_| write(&mut sim, leader)).collect();
    sim.crash(other, true);
    sim.restart(lagging);
    sim.hold_disk(lagging);
    // The DIFF arrives; the NEWLEADER ACK waits for the disk.
    sim.run_until(sim.now_ms() + 600);
    assert!(
        !sim.serving(leader),
        "established before the learner's history was durable"
    );
    sim.release_disk(lagging);
    let new = settle(&mut sim);
    assert_eq!(new, leader);
    acked.push(write(&mut sim, new));
    assert_eq!(epoch_of(*acked.last().unwrap()), epoch_of(acked[0]) + 1);
    // The whole quorum of the new epoch crashes, losing whatever was not durable.
    sim.crash(leader, false);
    sim.crash(lagging, false);
    for id in sim.ids() {
        sim.restart(id);
    }
    settle(&mut sim);
    assert_everyone_has(&sim, &acked);
}

/// ZOOKEEPER-3642: a learner got a SNAP, the leader died before NEWLEADER; it must not
/// take the snapshot's zxid as its own before the snapshot is durable (the next leader
/// would DIFF from it and a restart would lose everything up to it).
#[test]
fn zookeeper_3642_an_unfinished_snap_sync_changes_nothing() {
    let mut r = follower_in_handshake(3, 2);
    let state = Bytes::from_static(b"the leader's state");
    let acts = recv(
        &mut r,
        Msg::Snap {
            zxid: z(1, 9),
            state: state.clone(),
        },
    );
    assert!(acts.is_empty(), "{acts:?}");
    let acts = step(&mut r, Input::Disconnected { now_ms: 3, peer: 3 });
    assert!(
        !acts.iter().any(|a| matches!(
            a,
            Action::ApplySnapshot { .. } | Action::WriteCurrentEpoch(_)
        )),
        "{acts:?}"
    );
    assert!(
        matches!(acts.last(), Some(Action::Looking { last_zxid, .. }) if *last_zxid == z(1, 3)),
        "{acts:?}"
    );
    // With NEWLEADER, the snapshot is installed first, and only once durable is the ACK
    // sent.
    let mut r = follower_in_handshake(3, 2);
    recv(
        &mut r,
        Msg::Snap {
            zxid: z(1, 9),
            state: state.clone(),
        },
    );
    let acts = recv(&mut r, Msg::NewLeader { zxid: z(2, 0) });
    assert_eq!(
        acts,
        vec![Action::ApplySnapshot {
            zxid: z(1, 9),
            state
        }]
    );
    let acts = step(&mut r, Input::SnapshotApplied { zxid: z(1, 9) });
    assert_eq!(
        acts,
        vec![
            Action::WriteCurrentEpoch(2),
            Action::Send {
                to: 3,
                msg: Msg::Ack { zxid: z(2, 0) }
            }
        ]
    );
    assert_eq!(r.logged(), z(1, 9));
}

/// ZOOKEEPER-4394: DIFF -> PROPOSAL -> COMMIT -> PROPOSAL -> NEWLEADER -> COMMIT -> UPTODATE;
/// in 3.8 the last COMMIT found an empty buffer (NullPointerException) and the sync was
/// abandoned. Here it commits the proposal received before NEWLEADER.
#[test]
fn zookeeper_4394_a_commit_after_newleader_for_an_earlier_proposal() {
    let mut r = follower_in_handshake(3, 2);
    let mut acts = recv(&mut r, Msg::Diff { zxid: z(1, 4) });
    acts.extend(recv(&mut r, proposal(z(1, 4))));
    acts.extend(recv(&mut r, Msg::Commit { zxid: z(1, 4) }));
    acts.extend(recv(&mut r, proposal(z(2, 1))));
    assert!(acts.is_empty());
    let acts = recv(&mut r, Msg::NewLeader { zxid: z(2, 0) });
    assert_eq!(persisted_zxids(&acts), vec![z(1, 4), z(2, 1)]);
    let acts = step(&mut r, Input::Persisted { upto: z(2, 1) });
    assert_eq!(sends(&acts), vec![&Msg::Ack { zxid: z(2, 0) }]);
    assert!(recv(&mut r, Msg::Commit { zxid: z(2, 1) }).is_empty());
    let acts = recv(&mut r, Msg::UpToDate);
    assert_eq!(r.state(), PeerState::Following);
    assert!(r.serving(), "the sync was not abandoned: {acts:?}");
    assert!(acts.contains(&Action::Commit { upto: z(2, 1) }), "{acts:?}");
    assert_eq!(r.committed(), z(2, 1));
}

/// ZOOKEEPER-4643: a follower wrote the new currentEpoch before its DIFF txns were
/// durable, crashed, and with its higher peer epoch won the next election and truncated
/// txns the others had committed. Here its disk stalls during the DIFF sync: currentEpoch
/// stays, it crashes, and the server with the txns leads next.
#[test]
fn zookeeper_4643_current_epoch_only_after_a_durable_history() {
    let mut sim = quiet(3, 4643);
    let leader = settle(&mut sim);
    let [lagging, other] = others(&sim, leader)[..] else {
        unreachable!()
    };
    sim.crash(lagging, true);
    let acked: Vec<i64> = (0..3).map(|_| write(&mut sim, leader)).collect();
    let old_epoch = sim.epochs(lagging).1;
    sim.crash(other, true);
    sim.restart(lagging);
    sim.hold_disk(lagging);
    // It accepts the new epoch and gets the DIFF, but nothing of it becomes durable.
    let limit = sim.now_ms() + 10_000;
    assert!(sim.run_while_not(limit, |s| {
        s.epochs(lagging).0 > old_epoch && s.log(lagging).len() > s.durable_log(lagging).len()
    }));
    sim.run_until(sim.now_ms() + 300);
    assert_eq!(
        sim.epochs(lagging).1,
        old_epoch,
        "currentEpoch moved over a non-durable history"
    );
    assert!(
        !sim.serving(leader),
        "established without the learner's NEWLEADER ACK"
    );
    sim.crash_losing_pending(lagging, false);
    sim.crash(leader, false);
    sim.restart(lagging);
    sim.restart(other);
    let new = settle(&mut sim);
    assert_eq!(new, other, "the server holding the committed txns leads");
    sim.restart(leader);
    settle(&mut sim);
    assert_everyone_has(&sim, &acked);
}

/// ZOOKEEPER-4646 / 4685: the follower ACKed NEWLEADER while the DIFF txns were still being
/// written (4646), and could send proposal ACKs before the NEWLEADER ACK, which the leader
/// mis-counts (4685). Here: no ACK before `Persisted`, the NEWLEADER ACK is the first packet
/// after ACKEPOCH, proposal ACKs follow the UPTODATE ACK; and a leader drops a learner whose
/// first packet after ACKEPOCH is not the NEWLEADER ACK.
#[test]
fn zookeeper_4646_4685_the_newleader_ack_waits_for_the_disk_and_comes_first() {
    let mut r = follower_in_handshake(3, 2);
    let mut acts = recv(&mut r, Msg::Diff { zxid: z(1, 5) });
    for c in 4..=5 {
        acts.extend(recv(&mut r, proposal(z(1, c))));
        acts.extend(recv(&mut r, Msg::Commit { zxid: z(1, c) }));
    }
    acts.extend(recv(&mut r, proposal(z(2, 1))));
    acts.extend(recv(&mut r, Msg::NewLeader { zxid: z(2, 0) }));
    acts.extend(recv(&mut r, proposal(z(2, 2))));
    acts.extend(recv(
        &mut r,
        Msg::Ping {
            zxid: z(2, 2),
            data: Bytes::new(),
        },
    ));
    assert!(
        sends(&acts).is_empty(),
        "nothing sent before the history is durable: {acts:?}"
    );
    assert_eq!(persisted_zxids(&acts), vec![z(1, 4), z(1, 5), z(2, 1)]);
    let acts = step(&mut r, Input::Persisted { upto: z(1, 5) });
    assert!(sends(&acts).is_empty(), "{acts:?}");
    let acts = step(&mut r, Input::Persisted { upto: z(2, 1) });
    let epoch_at = acts.iter().position(|a| *a == Action::WriteCurrentEpoch(2));
    let ack_at = acts.iter().position(|a| {
        *a == Action::Send {
            to: 3,
            msg: Msg::Ack { zxid: z(2, 0) },
        }
    });
    assert!(epoch_at.is_some() && ack_at > epoch_at, "{acts:?}");
    assert_eq!(sends(&acts).len(), 1, "only the NEWLEADER ACK: {acts:?}");
    // (2,2), received after NEWLEADER, is logged after currentEpoch; no ACK yet.
    assert_eq!(persisted_zxids(&acts), vec![z(2, 2)]);
    let acts = step(&mut r, Input::Persisted { upto: z(2, 2) });
    assert!(
        sends(&acts).is_empty(),
        "proposal ACKs wait for UPTODATE: {acts:?}"
    );
    let acts = recv(&mut r, Msg::UpToDate);
    let acks: Vec<i64> = sends(&acts)
        .into_iter()
        .filter_map(|m| match m {
            Msg::Ack { zxid } => Some(*zxid),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![z(2, 0), z(1, 4), z(1, 5), z(2, 1), z(2, 2)]);

    // The leader's side: a proposal ACK before the NEWLEADER ACK drops the learner.
    let mut leader = Replica::new(
        3,
        config(3),
        Params::new(100, 10, 5),
        Recovered {
            accepted_epoch: 1,
            current_epoch: 1,
            base: 0,
            tail: vec![txn(z(1, 1))],
        },
    );
    leader.step(Input::Start { now_ms: 0 });
    leader.step(Input::Elected {
        now_ms: 0,
        state: PeerState::Leading,
        leader: 3,
    });
    let from = |from: ServerId, msg: Msg| Input::Received {
        now_ms: 1,
        from,
        msg,
    };
    let acts = leader.step(from(
        1,
        Msg::LearnerInfo {
            accepted_epoch: 1,
            observer: false,
        },
    ));
    assert!(acts.contains(&Action::WriteAcceptedEpoch(2)), "{acts:?}");
    let acts = leader.step(from(
        1,
        Msg::AckEpoch {
            last_zxid: z(1, 1),
            current_epoch: 1,
        },
    ));
    assert!(acts.contains(&Action::WriteCurrentEpoch(2)), "{acts:?}");
    assert!(sends(&acts).contains(&&Msg::NewLeader { zxid: z(2, 0) }));
    let acts = leader.step(from(1, Msg::Ack { zxid: z(2, 1) }));
    assert_eq!(acts, vec![Action::Disconnect { peer: 1 }]);
    assert!(!leader.serving());
}

/// ZOOKEEPER-4785 (DIFFSyncTest): S0 lags one txn and restarts; in 3.8.4 it ACKed
/// NEWLEADER without persisting the txn, the leader died, and S0 with the new epoch led and
/// lost the txn. Here the ACK waits for the slow disk, the new epoch commits on it, the
/// leader dies, S0 leads with the txn, and nothing is lost.
#[test]
fn zookeeper_4785_diff_sync_then_the_leader_dies() {
    let mut sim = quiet(3, 4785);
    let leader = settle(&mut sim);
    let [s0, s1] = others(&sim, leader)[..] else {
        unreachable!()
    };
    sim.crash(s0, true);
    let lagged = write(&mut sim, leader);
    sim.crash(s1, true);
    let old_epoch = sim.epochs(s0).1;
    sim.restart(s0);
    sim.hold_disk(s0);
    let limit = sim.now_ms() + 10_000;
    assert!(sim.run_while_not(limit, |s| {
        s.epochs(s0).0 > old_epoch && holds(s, s0, lagged)
    }));
    sim.run_until(sim.now_ms() + 300);
    assert!(!sim.durable_log(s0).iter().any(|t| t.zxid == lagged));
    assert!(
        !sim.serving(s0),
        "S0 must not finish the sync before the txn is durable"
    );
    assert_eq!(sim.epochs(s0).1, old_epoch);
    sim.release_disk(s0);
    settle(&mut sim);
    let in_new_epoch = write(&mut sim, leader);
    assert!(epoch_of(in_new_epoch) > epoch_of(lagged));
    sim.crash(leader, false);
    sim.restart(s1);
    let next = settle(&mut sim);
    assert_eq!(next, s0, "S0 has the newest epoch and log");
    let after = write(&mut sim, next);
    sim.restart(leader);
    settle(&mut sim);
    assert_everyone_has(&sim, &[lagged, in_new_epoch, after]);
}

/// ZOOKEEPER-4925: a learner applied DIFF txns without adding them to its committed log;
/// when it later led, it DIFF-synced others across the hole. Here a server that got txns by
/// DIFF later leads and DIFF-syncs a lagging server, which must get all of them; and a
/// learner refuses a proposal stream with a gap.
#[test]
fn zookeeper_4925_a_leader_that_got_txns_by_diff_syncs_others_without_a_hole() {
    let mut sim = quiet(5, 4925);
    let first = settle(&mut sim);
    // lagging: the lowest id; diffed: the highest (it wins ties later).
    let rest = others(&sim, first);
    // rest[1] stays up throughout.
    let (lagging, diffed, gone) = (rest[0], rest[3], rest[2]);
    sim.crash(lagging, true);
    sim.crash(diffed, true);
    let txns: Vec<i64> = (0..3).map(|_| write(&mut sim, first)).collect();
    sim.restart(diffed);
    settle(&mut sim);
    assert!(
        txns.iter().all(|z| holds(&sim, diffed, *z)),
        "it got the txns by DIFF"
    );
    sim.crash(first, true);
    sim.crash(gone, true);
    sim.restart(lagging);
    let diffs_before = sim.stats.diffs;
    let second = settle(&mut sim);
    assert_eq!(
        second,
        diffed,
        "the server synced by DIFF leads: {}",
        sim.describe()
    );
    assert!(sim.stats.diffs > diffs_before);
    assert!(
        txns.iter().all(|z| holds(&sim, lagging, *z)),
        "no hole: {}",
        sim.describe()
    );
    let more = write(&mut sim, second);
    for id in [first, gone] {
        sim.restart(id);
    }
    settle(&mut sim);
    assert_everyone_has(&sim, &[txns, vec![more]].concat());

    // A gap in a DIFF's proposals ends the sync instead of leaving a hole.
    let mut r = follower_in_handshake(3, 2);
    recv(&mut r, Msg::Diff { zxid: z(1, 6) });
    recv(&mut r, proposal(z(1, 4)));
    let acts = recv(&mut r, proposal(z(1, 6)));
    assert!(
        matches!(acts.last(), Some(Action::Looking { reason, .. }) if reason.contains("gap")),
        "{acts:?}"
    );
}

/// ZOOKEEPER-1277: the zxid counter must never wrap into the epoch bits; a leader whose
/// counter reaches the limit ends its term so the next leader starts a new epoch. Replayed
/// with the limit scaled down to 4 txns per epoch.
#[test]
fn zookeeper_1277_an_exhausted_counter_forces_a_new_epoch() {
    let mut opts = Options::new(3);
    opts.clients = 1;
    opts.client_load = false;
    opts.counter_limit = 4;
    let mut sim = Sim::new(opts, 1277);
    sim.start();
    let mut acked = Vec::new();
    while acked.len() < 14 {
        let leader = settle(&mut sim);
        if let Some(zxid) = try_write(&mut sim, leader) {
            acked.push(zxid);
        }
    }
    assert!(acked
        .iter()
        .all(|z| counter_of(*z) <= 4 && counter_of(*z) >= 1));
    assert!(sim.leaders().len() >= 4, "epochs: {:?}", sim.leaders());
    assert!(acked.windows(2).all(|w| w[0] < w[1]));
    settle(&mut sim);
    assert_everyone_has(&sim, &acked);
}
