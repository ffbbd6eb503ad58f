//! Ensembles of real zkrs processes on loopback, started from zoo.cfg + myid files as in
//! ZooKeeper's tutorials: election, replication through followers, kill -9 of the leader
//! under write load with no acknowledged write lost, a restarted server catching up (DIFF
//! and SNAP), sessions and ephemerals across a leader failover.

mod common;
#[path = "common/durable.rs"]
mod durable;
#[path = "common/ensemble.rs"]
mod ensemble;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::raw::{self, Enc, Raw, CREATE_EPHEMERAL, CREATE_PERSISTENT, OK};
use durable::{created_path, Conn};
use ensemble::Ensemble;

const SESSION_MS: i32 = 2000;

/// sync then getChildren on one server: what that server has applied of everything the
/// leader committed before the sync.
fn synced_children(addr: &str, path: &str) -> Vec<String> {
    let mut conn = Conn::connect(addr, SESSION_MS);
    let reply = conn
        .call(raw::OP_SYNC, &Enc::new().string(path).finish())
        .expect("sync");
    assert_eq!(reply.err, OK, "sync on {addr}");
    let mut children = conn.children(path).expect("getChildren");
    children.sort();
    conn.close();
    children
}

fn get_data(conn: &mut Conn, path: &str) -> Result<Vec<u8>, i32> {
    let results = conn.get_many(&[path.to_string()]).expect("getData");
    results
        .into_iter()
        .next()
        .expect("one reply")
        .map(|(data, _)| data)
}

#[test]
fn three_servers_elect_one_leader_and_replicate_through_followers() {
    let mut e = Ensemble::start(3, "");
    let leader = e.leader();
    // zkServer.sh habits: `status` prints the Mode line.
    for (i, m) in e.members.iter().enumerate() {
        let out = std::process::Command::new(ensemble::ZKRS)
            .arg("status")
            .arg(m.cfg())
            .output()
            .expect("zkrs status");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let want = if i == leader {
            "Mode: leader"
        } else {
            "Mode: follower"
        };
        assert!(text.contains(want), "server {}: {text}", m.id);
    }
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let addrs = e.addrs();
    let mut writer = Conn::connect(&addrs[follower], SESSION_MS);
    let reply = writer
        .create("/replicated", b"v1", CREATE_PERSISTENT)
        .expect("create through a follower");
    assert_eq!(reply.err, OK);
    assert_eq!(created_path(&reply), "/replicated");
    // A write's reply carries its zxid, in the leader's new epoch (counter from 1).
    assert!(
        reply.zxid >> 32 >= 1,
        "zxid 0x{:x} is not in an epoch",
        reply.zxid
    );
    let seq = writer
        .create("/replicated/s-", b"", CREATE_PERSISTENT | 2)
        .expect("sequential create");
    assert_eq!(created_path(&seq), "/replicated/s-0000000000");
    let eph = writer
        .create("/replicated/eph", b"", CREATE_EPHEMERAL)
        .expect("ephemeral create");
    assert_eq!(eph.err, OK);
    // Failed writes travel as error txns and come back with their code.
    let dup = writer
        .create("/replicated", b"again", CREATE_PERSISTENT)
        .expect("duplicate create");
    assert_eq!(dup.err, raw::ERR_NODE_EXISTS);
    for addr in [&addrs[leader], &addrs[other], &addrs[follower]] {
        assert_eq!(
            synced_children(addr, "/replicated"),
            vec!["eph".to_string(), "s-0000000000".to_string()],
            "on {addr}"
        );
        let mut reader = Conn::connect(addr, SESSION_MS);
        assert_eq!(get_data(&mut reader, "/replicated"), Ok(b"v1".to_vec()));
        reader.close();
    }
    // Writes through the leader reach the followers too.
    let mut on_leader = Conn::connect(&addrs[leader], SESSION_MS);
    assert_eq!(
        on_leader
            .set_data("/replicated", b"v2")
            .expect("setData")
            .err,
        OK
    );
    // After sync, a follower has applied everything the leader committed before it.
    let synced = writer
        .call(raw::OP_SYNC, &Enc::new().string("/").finish())
        .expect("sync");
    assert_eq!(synced.err, OK);
    assert_eq!(get_data(&mut writer, "/replicated"), Ok(b"v2".to_vec()));
    // Closing the session removes its ephemeral everywhere.
    writer.close();
    for addr in &addrs {
        assert_eq!(
            synced_children(addr, "/replicated"),
            vec!["s-0000000000".to_string()],
            "after close on {addr}"
        );
    }
    on_leader.close();
}

/// Acknowledged creates of the load threads, and whether to go on.
struct Load {
    acknowledged: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// Creates /load/<thread>-<n> one at a time through any live server, reconnecting (a new
/// session) when its server goes away; records every create that was answered OK.
fn load_thread(load: Arc<Load>, addrs: Vec<String>, thread: usize) {
    let mut n = 0u64;
    let mut target = thread;
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !load.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let addr = &addrs[target % addrs.len()];
        let Ok(mut conn) = Conn::try_connect(addr, SESSION_MS) else {
            target += 1;
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        while !load.stop.load(Ordering::Relaxed) {
            let path = format!("/load/t{thread}-{n:06}");
            n += 1;
            match conn.create(&path, b"x", CREATE_PERSISTENT) {
                Ok(reply) if reply.err == OK => {
                    load.acknowledged.lock().unwrap().push(path);
                }
                Ok(reply) => panic!("create {path} failed with {}", reply.err),
                // The server went away mid-request: this create's fate is unknown.
                Err(_) => break,
            }
        }
        target += 1;
    }
}

#[test]
fn killing_the_leader_under_write_load_loses_no_acknowledged_write() {
    let mut e = Ensemble::start(3, "");
    let addrs = e.addrs();
    {
        let mut setup = Conn::connect(&addrs[0], SESSION_MS);
        assert_eq!(
            setup.create("/load", b"", CREATE_PERSISTENT).unwrap().err,
            OK
        );
        setup.close();
    }
    let load = Arc::new(Load {
        acknowledged: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let load = load.clone();
            let addrs = addrs.clone();
            std::thread::spawn(move || load_thread(load, addrs, t))
        })
        .collect();
    // tests/ensemble_soak.sh runs more rounds.
    let rounds: usize = std::env::var("ZKRS_ENSEMBLE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(700));
        let leader = e.leader();
        let before = load.acknowledged.lock().unwrap().len();
        e.members[leader].kill9();
        let started = Instant::now();
        let new_leader = e.wait_serving(2, Duration::from_secs(20));
        assert_ne!(new_leader, leader);
        eprintln!(
            "round {round}: killed leader server {} after {before} acknowledged creates; \
             server {} leads after {} ms",
            leader + 1,
            new_leader + 1,
            started.elapsed().as_millis()
        );
        e.start_member(leader);
        e.wait_serving(3, Duration::from_secs(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    load.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread");
    }
    let acknowledged: BTreeSet<String> = load
        .acknowledged
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.trim_start_matches("/load/").to_string())
        .collect();
    assert!(
        acknowledged.len() > 50,
        "too little load got through ({})",
        acknowledged.len()
    );
    e.wait_serving(3, Duration::from_secs(20));
    let mut views = Vec::new();
    for addr in &addrs {
        let children: BTreeSet<String> = synced_children(addr, "/load").into_iter().collect();
        let lost: Vec<&String> = acknowledged.difference(&children).collect();
        assert!(
            lost.is_empty(),
            "{addr} lost {} acknowledged creates, e.g. {:?}; logs:\n{}",
            lost.len(),
            lost.iter().take(5).collect::<Vec<_>>(),
            e.logs()
        );
        views.push(children);
    }
    // The survivors of each kill started their next term from the state in memory, with
    // the proposals they had logged and not seen committed applied: every txn applied
    // since gave the digest the leader computed.
    assert_same_everywhere(&e, &views);
}

/// Every server's view is the same, and no server's tree digest ever differed from its
/// leader's.
fn assert_same_everywhere<T: PartialEq + std::fmt::Debug>(e: &Ensemble, views: &[T]) {
    assert_eq!(views[0], views[1], "servers 1 and 2 differ");
    assert_eq!(views[1], views[2], "servers 2 and 3 differ");
    for addr in &e.addrs() {
        assert_eq!(
            digest_mismatches(addr),
            0,
            "{addr}: a tree digest differed; logs:\n{}",
            e.logs()
        );
    }
}

#[test]
fn a_restarted_follower_catches_up_by_diff_and_by_snap() {
    let mut e = Ensemble::start(3, "");
    let addrs = e.addrs();
    let leader = e.leader();
    let follower = (leader + 1) % 3;
    let mut writer = Conn::connect(&addrs[leader], SESSION_MS);
    assert_eq!(writer.create("/c", b"", CREATE_PERSISTENT).unwrap().err, OK);
    // A few writes while the follower is down: it comes back by DIFF.
    e.members[follower].kill9();
    for i in 0..20 {
        let path = format!("/c/diff-{i}");
        assert_eq!(
            writer.create(&path, b"d", CREATE_PERSISTENT).unwrap().err,
            OK
        );
    }
    e.start_member(follower);
    e.wait_serving(3, Duration::from_secs(20));
    assert_eq!(synced_children(&addrs[follower], "/c").len(), 20);
    // Many more writes than the leader keeps for DIFF in memory (500), and the only
    // snapshot is of the empty tree (snapCount is 100000), so the txn log files cannot
    // serve a DIFF under snapshotSizeFactor either: it comes back by SNAP.
    e.members[follower].kill9();
    let requests: Vec<(i32, Vec<u8>)> = (0..1200)
        .map(|i| {
            (
                raw::OP_CREATE,
                durable::create_body(&format!("/c/snap-{i:04}"), b"s", CREATE_PERSISTENT),
            )
        })
        .collect();
    for reply in writer.pipeline(&requests, 64).expect("pipelined creates") {
        assert_eq!(reply.err, OK);
    }
    e.start_member(follower);
    e.wait_serving(3, Duration::from_secs(20));
    let expected = synced_children(&addrs[leader], "/c");
    assert_eq!(expected.len(), 1220);
    assert_eq!(synced_children(&addrs[follower], "/c"), expected);
    let logs = e.members[follower].logs();
    assert!(
        logs.contains("syncing with the leader by DIFF") && logs.contains("by SNAP"),
        "the follower did not sync by DIFF and then by SNAP:\n{logs}"
    );
    writer.close();
}

/// The data of `path` as the server at `addr` has it, after a sync.
fn synced_data(addr: &str, path: &str) -> Vec<u8> {
    let mut conn = Conn::connect(addr, SESSION_MS);
    let reply = conn
        .call(raw::OP_SYNC, &Enc::new().string(path).finish())
        .expect("sync");
    assert_eq!(reply.err, OK, "sync {path} on {addr}");
    let mut got = conn.get_many(&[path.to_string()]).expect("getData");
    conn.close();
    got.remove(0).expect("getData reply").0
}

/// A follower further behind than the leader's in-memory committed log (500 txns) is synced
/// by DIFF from the leader's txn log files while the txns to send take less than
/// snapshotSizeFactor (0.33) of the newest snapshot's size, as ZooKeeper's leader does
/// (LearnerHandler from the txn log); past that share it gets a SNAP.
#[test]
fn a_follower_behind_the_committed_log_gets_a_diff_from_the_log_files() {
    let mut e = Ensemble::start(3, "snapCount=100\npreAllocSize=64\n");
    let addrs = e.addrs();
    let leader = e.leader();
    let follower = (leader + 1) % 3;
    let follower_id = e.members[follower].id;
    let mut writer = Conn::connect(&addrs[leader], SESSION_MS);
    // A tree of about 640 KiB, then enough txns that a snapshot (every 50-100) holds it.
    assert_eq!(
        writer.create("/big", b"", CREATE_PERSISTENT).unwrap().err,
        OK
    );
    let big: Vec<(i32, Vec<u8>)> = (0..40)
        .map(|i| {
            let body = durable::create_body(
                &format!("/big/{i:02}"),
                &vec![b'b'; 16 * 1024],
                CREATE_PERSISTENT,
            );
            (raw::OP_CREATE, body)
        })
        .collect();
    for reply in writer.pipeline(&big, 16).expect("big creates") {
        assert_eq!(reply.err, OK);
    }
    assert_eq!(writer.create("/c", b"", CREATE_PERSISTENT).unwrap().err, OK);
    for i in 0..150 {
        assert_eq!(
            writer
                .set_data("/c", format!("{i}").as_bytes())
                .unwrap()
                .err,
            OK
        );
    }
    // 700 small creates (about 70 KiB of records, far under a third of the snapshot) while
    // the follower is down: more than the committed log keeps, so they come from the files.
    e.members[follower].kill9();
    let small: Vec<(i32, Vec<u8>)> = (0..700)
        .map(|i| {
            let body = durable::create_body(&format!("/c/n-{i:04}"), b"s", CREATE_PERSISTENT);
            (raw::OP_CREATE, body)
        })
        .collect();
    for reply in writer.pipeline(&small, 64).expect("small creates") {
        assert_eq!(reply.err, OK);
    }
    e.start_member(follower);
    e.wait_serving(3, Duration::from_secs(30));
    let expected = synced_children(&addrs[leader], "/c");
    assert_eq!(expected.len(), 700);
    assert_eq!(synced_children(&addrs[follower], "/c"), expected);
    assert_eq!(synced_data(&addrs[follower], "/c"), b"149");
    let logs = e.members[leader].logs();
    assert!(
        logs.lines().any(
            |l| l.contains(&format!("syncing server {follower_id} by DIFF"))
                && l.contains("read back from the txn log files")
                && !l.contains(" 0 of them")
        ),
        "the leader did not sync server {follower_id} by DIFF from its log files:\n{logs}"
    );
    assert!(
        !logs.contains(&format!("syncing server {follower_id} by SNAP")),
        "the leader sent server {follower_id} a SNAP:\n{logs}"
    );
    // 600 writes of 2 KiB (1.2 MiB, past a third of the snapshot): SNAP.
    e.members[follower].kill9();
    let payload = vec![b'p'; 2048];
    let large: Vec<(i32, Vec<u8>)> = (0..600)
        .map(|_| {
            let body = Enc::new()
                .string("/big/00")
                .buffer(&payload)
                .int(-1)
                .finish();
            (raw::OP_SET_DATA, body)
        })
        .collect();
    for reply in writer.pipeline(&large, 64).expect("large setData") {
        assert_eq!(reply.err, OK);
    }
    e.start_member(follower);
    e.wait_serving(3, Duration::from_secs(30));
    assert_eq!(synced_data(&addrs[follower], "/big/00"), payload);
    assert_eq!(synced_children(&addrs[follower], "/c"), expected);
    let logs = e.members[leader].logs();
    assert!(
        logs.contains("cannot serve a DIFF: the txns to send take more than")
            && logs.contains(&format!("syncing server {follower_id} by SNAP")),
        "the leader did not fall back to SNAP for server {follower_id}:\n{logs}"
    );
    writer.close();
}

/// A new leader syncs a learner a few txns behind by DIFF from the txns its own log ends
/// with (as ZooKeeper's leader does from the committed log it loads), not by a SNAP of the
/// whole tree: before, a new leader knew no txn older than its last one.
#[test]
fn a_new_leader_syncs_a_lagging_follower_by_diff_from_its_log() {
    let mut e = Ensemble::start(3, "");
    let addrs = e.addrs();
    let leader = e.leader();
    let lagging = (leader + 1) % 3;
    let next_leader = (leader + 2) % 3;
    let mut writer = Conn::connect(&addrs[leader], SESSION_MS);
    assert_eq!(writer.create("/r", b"", CREATE_PERSISTENT).unwrap().err, OK);
    e.members[lagging].kill9();
    for i in 0..30 {
        let path = format!("/r/n-{i}");
        assert_eq!(
            writer.create(&path, b"d", CREATE_PERSISTENT).unwrap().err,
            OK
        );
    }
    writer.close();
    // The old leader goes; the follower that has every write leads the lagging one.
    e.members[leader].kill9();
    e.start_member(lagging);
    e.wait_serving(2, Duration::from_secs(30));
    assert_eq!(e.members[next_leader].mode().as_deref(), Some("leader"));
    assert_eq!(synced_children(&addrs[lagging], "/r").len(), 30);
    let lagging_id = e.members[lagging].id;
    let logs = e.members[next_leader].logs();
    assert!(
        logs.contains(&format!("syncing server {lagging_id} by DIFF")),
        "the new leader did not sync server {lagging_id} by DIFF:\n{logs}"
    );
    assert!(
        !logs.contains(&format!("syncing server {lagging_id} by SNAP")),
        "the new leader sent server {lagging_id} a SNAP:\n{logs}"
    );
    // The old leader rejoins with the same data.
    e.start_member(leader);
    e.wait_serving(3, Duration::from_secs(30));
    assert_eq!(
        synced_children(&addrs[leader], "/r"),
        synced_children(&addrs[next_leader], "/r")
    );
}

#[test]
fn sessions_and_ephemerals_survive_a_leader_failover() {
    let mut e = Ensemble::start(3, "");
    let addrs = e.addrs();
    let leader = e.leader();
    let follower = (leader + 1) % 3;
    // A session on a follower with an ephemeral node.
    let mut client = Raw::connect(&addrs[follower], 6000);
    let session_id = client.session_id;
    let passwd = client.passwd.clone();
    let reply = client.call(
        raw::OP_CREATE,
        &Enc::new()
            .string("/owner")
            .buffer(b"")
            .open_acl()
            .int(CREATE_EPHEMERAL)
            .finish(),
    );
    assert_eq!(reply.err, OK);
    drop(client);
    e.members[leader].kill9();
    e.wait_serving(2, Duration::from_secs(20));
    // The client reconnects with its session to another server: the leader that expires
    // sessions changed, the session did not.
    let survivor = (leader + 2) % 3;
    let resumed = Raw::resume(&addrs[survivor], session_id, &passwd, 0, 6000);
    assert_eq!(
        resumed.session_id, session_id,
        "the session was not resumed"
    );
    assert_eq!(
        synced_children(&addrs[survivor], "/"),
        vec!["owner".to_string(), "zookeeper".to_string()]
    );
    // Session ids never repeat across terms: the follower's next session comes after the
    // one it gave out in the earlier term (same server id byte, a later clock).
    let later = Raw::connect(&addrs[follower], 6000);
    assert_eq!(later.session_id >> 56, session_id >> 56, "server id byte");
    assert!(
        later.session_id > session_id,
        "session id 0x{:x} of the second term is not after 0x{session_id:x}",
        later.session_id
    );
    drop(later);
    // And the old leader rejoins as a follower with the same data.
    e.start_member(leader);
    e.wait_serving(3, Duration::from_secs(20));
    assert_eq!(e.members[leader].mode().as_deref(), Some("follower"));
    assert_eq!(
        synced_children(&addrs[leader], "/"),
        vec!["owner".to_string(), "zookeeper".to_string()]
    );
    drop(resumed);
}

#[test]
fn an_observer_serves_clients_without_voting() {
    let mut e = Ensemble::with_observers(3, 1, "");
    for i in 0..4 {
        e.start_member(i);
    }
    e.wait_serving(4, Duration::from_secs(30));
    assert_eq!(e.members[3].mode().as_deref(), Some("observer"));
    let addrs = e.addrs();
    // Writes through the observer are forwarded and come back as INFORM.
    let mut on_observer = Conn::connect(&addrs[3], SESSION_MS);
    assert_eq!(
        on_observer
            .create("/obs", b"o", CREATE_PERSISTENT)
            .unwrap()
            .err,
        OK
    );
    let leader = e.leader();
    let mut on_leader = Conn::connect(&addrs[leader], SESSION_MS);
    assert_eq!(on_leader.set_data("/obs", b"from-leader").unwrap().err, OK);
    let synced = on_observer
        .call(raw::OP_SYNC, &Enc::new().string("/obs").finish())
        .unwrap();
    assert_eq!(synced.err, OK);
    assert_eq!(
        get_data(&mut on_observer, "/obs"),
        Ok(b"from-leader".to_vec())
    );
    on_observer.close();
    on_leader.close();
    // Two voters down: one voter and the observer are no quorum, so nobody leads.
    let voters: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    e.members[voters[0]].kill9();
    e.members[leader].kill9();
    std::thread::sleep(Duration::from_millis(2500));
    let modes: Vec<Option<String>> = e.members.iter().map(|m| m.mode()).collect();
    assert!(
        !modes.iter().any(|m| m.as_deref() == Some("leader")),
        "a leader without a quorum of voters: {modes:?}"
    );
    assert_eq!(
        e.members[3].mode(),
        None,
        "the observer still serves: {modes:?}"
    );
}

#[test]
fn five_servers_started_one_by_one_elect_server_3_once_three_are_up() {
    let mut e = Ensemble::new(5, "");
    for i in 0..5 {
        e.start_member(i);
        if i == 2 {
            let leader = e.wait_serving(3, Duration::from_secs(30));
            assert_eq!(leader, 2, "server 3 leads once servers 1-3 are up");
        }
        if i < 2 {
            // No quorum yet: nobody serves.
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                e.members[i].mode().is_none(),
                "server {} serves alone",
                i + 1
            );
        }
    }
    let leader = e.wait_serving(5, Duration::from_secs(30));
    assert_eq!(leader, 2, "servers 4 and 5 join the established leader");
    // Any minority can go: two down, still writable.
    e.members[0].kill9();
    e.members[4].kill9();
    let mut conn = Conn::connect(&e.addrs()[1], SESSION_MS);
    assert_eq!(
        conn.create("/five", b"", CREATE_PERSISTENT).unwrap().err,
        OK
    );
    conn.close();
}

/// An ensemble whose every link goes through a proxy of its own (each direction of each
/// pair: each side dials the other), so that any server can be cut off. Returns the
/// leader's index and the proxies as (from, to, proxy).
fn ensemble_behind_proxies() -> (Ensemble, usize, Vec<(usize, usize, ensemble::Proxy)>) {
    let mut e = Ensemble::new(3, "");
    let mut proxies = Vec::new();
    for from in 0..3 {
        for to in 0..3 {
            if from == to {
                continue;
            }
            let (quorum, election) = e.peer_ports(to);
            let q = ensemble::Proxy::start(quorum);
            let el = ensemble::Proxy::start(election);
            e.route(from, to, q.port, el.port);
            proxies.push((from, to, q));
            proxies.push((from, to, el));
        }
    }
    for i in 0..3 {
        e.start_member(i);
    }
    let leader = e.wait_serving(3, Duration::from_secs(30));
    (e, leader, proxies)
}

/// Cuts server `cut` off and waits until the two others have a leader and `cut` serves
/// nothing.
fn partition(e: &mut Ensemble, cut: usize, proxies: &[(usize, usize, ensemble::Proxy)]) {
    for (from, to, p) in proxies {
        if *from == cut || *to == cut {
            p.block();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let modes: Vec<Option<String>> = e.members.iter().map(|m| m.mode()).collect();
        let majority_leads = (0..3)
            .filter(|i| *i != cut)
            .any(|i| modes[i].as_deref() == Some("leader"));
        if majority_leads && modes[cut].is_none() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader on the majority side, or the isolated server still serves: \
             {modes:?}; logs:\n{}",
            e.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn heal(proxies: &[(usize, usize, ensemble::Proxy)]) {
    for (_, _, p) in proxies {
        p.heal();
    }
}

#[test]
fn a_partitioned_leader_steps_down_and_rejoins_after_the_partition_heals() {
    let (mut e, leader, proxies) = ensemble_behind_proxies();
    let addrs = e.addrs();
    let (one, two) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut on_one = Conn::connect(&addrs[one], SESSION_MS);
    assert_eq!(
        on_one
            .create("/p", b"before", CREATE_PERSISTENT)
            .unwrap()
            .err,
        OK
    );
    on_one.close();
    partition(&mut e, leader, &proxies);
    let mut on_two = Conn::connect(&addrs[two], SESSION_MS);
    assert_eq!(
        on_two.set_data("/p", b"during").unwrap().err,
        OK,
        "the majority side is writable"
    );
    on_two.close();
    heal(&proxies);
    e.wait_serving(3, Duration::from_secs(30));
    let mut on_three = Conn::connect(&addrs[leader], SESSION_MS);
    let reply = on_three
        .call(raw::OP_SYNC, &Enc::new().string("/p").finish())
        .unwrap();
    assert_eq!(reply.err, OK);
    assert_eq!(get_data(&mut on_three, "/p"), Ok(b"during".to_vec()));
    on_three.close();
}

/// A leader that committed nothing in its epoch served the version `epoch << 32` (no txn);
/// after a partition it rejoins a leader whose history ends before that zxid (DIFF, no
/// txn): its shards start the new term from the lower version and serve reads.
#[test]
fn a_leader_that_committed_nothing_rejoins_from_a_lower_zxid_and_serves() {
    let (mut e, leader, proxies) = ensemble_behind_proxies();
    let addrs = e.addrs();
    // The leader's shards serve the epoch-start version (no session yet: that would be a
    // txn).
    let srvr = common::four_letter_opt(&addrs[leader], "srvr").expect("srvr");
    assert!(srvr.contains("Zxid: 0x100000000"), "{srvr}");
    partition(&mut e, leader, &proxies);
    heal(&proxies);
    e.wait_serving(3, Duration::from_secs(30));
    assert_eq!(e.members[leader].mode().as_deref(), Some("follower"));
    let mut on_three = Conn::connect(&addrs[leader], SESSION_MS);
    assert_eq!(
        on_three.children("/").expect("read after rejoining"),
        vec!["zookeeper".to_string()]
    );
    assert_eq!(
        on_three
            .create("/after", b"", CREATE_PERSISTENT)
            .unwrap()
            .err,
        OK
    );
    on_three.close();
}

/// Every node under `/kept` as one server has it after a sync: (name, data, stat).
fn synced_tree(addr: &str) -> Vec<(String, Vec<u8>, raw::RawStat)> {
    let names = synced_children(addr, "/kept");
    let mut conn = Conn::connect(addr, SESSION_MS);
    let paths: Vec<String> = names.iter().map(|n| format!("/kept/{n}")).collect();
    let got = conn.get_many(&paths).expect("getData");
    conn.close();
    names
        .into_iter()
        .zip(got)
        .map(|(name, reply)| {
            let (data, stat) = reply.unwrap_or_else(|e| panic!("getData /kept/{name}: {e}"));
            (name, data, stat)
        })
        .collect()
}

fn digest_mismatches(addr: &str) -> u64 {
    let mntr = common::four_letter_opt(addr, "mntr").expect("mntr");
    mntr.lines()
        .find_map(|l| l.strip_prefix("zk_digest_mismatches_count"))
        .map(|v| v.trim().parse().expect("a count"))
        .unwrap_or_else(|| panic!("no zk_digest_mismatches_count in {mntr}"))
}

/// A term hands its state to the next one in memory (a failover must not wait for a
/// large database to be read back): a leader that lost its quorum with proposals logged
/// and not committed, and the followers whose leader went, start their next terms from
/// what they hold, and that state is the one their logs hold. Checked from outside: the
/// servers' logs say where each term started from, the trees' digests (every txn a
/// follower applies is compared with the leader's digest after it) never differ, every
/// server shows the same data and stats, and so does the old leader once it restarted
/// from its files.
#[test]
fn the_next_term_starts_from_the_state_in_memory_which_matches_the_log() {
    // The ephemeral's session must outlive every failover below.
    let mut e = Ensemble::start(3, "maxSessionTimeout=60000\n");
    let addrs = e.addrs();
    let leader = e.leader();
    let (one, two) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut owner = Raw::connect(&addrs[one], 60000);
    let reply = owner.call(
        raw::OP_CREATE,
        &Enc::new()
            .string("/eph")
            .buffer(b"")
            .open_acl()
            .int(CREATE_EPHEMERAL)
            .finish(),
    );
    assert_eq!(reply.err, OK);
    let (session_id, passwd) = (owner.session_id, owner.passwd.clone());
    drop(owner);
    let mut conn = Conn::connect(&addrs[leader], SESSION_MS);
    assert_eq!(
        conn.create("/kept", b"", CREATE_PERSISTENT).unwrap().err,
        OK
    );
    for i in 0..20 {
        let path = format!("/kept/n{i}");
        assert_eq!(
            conn.create(&path, b"v1", CREATE_PERSISTENT).unwrap().err,
            OK
        );
        assert_eq!(conn.set_data(&path, b"v2").unwrap().err, OK);
    }
    // The leader's quorum goes; writes sent now are proposed and logged by the leader but
    // cannot commit (their clients see the connection go, no reply).
    e.members[one].kill9();
    e.members[two].kill9();
    for i in 0..5 {
        let body = Enc::new()
            .string(&format!("/kept/late{i}"))
            .buffer(b"late")
            .open_acl()
            .int(CREATE_PERSISTENT)
            .finish();
        let _ = conn.send(raw::OP_CREATE, &body);
    }
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.members[leader].mode().is_some() {
        assert!(Instant::now() < deadline, "the leader did not step down");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kept = "the next term starts from the state in memory";
    let wait_for = |e: &Ensemble, index: usize, text: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !e.members[index].logs().contains(text) {
            assert!(
                Instant::now() < deadline,
                "server {} never logged {text:?}:\n{}",
                index + 1,
                e.members[index].logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(&e, leader, kept);
    e.start_member(one);
    e.start_member(two);
    e.wait_serving(3, Duration::from_secs(30));
    // Another failover, where the survivors keep their state (whoever leads now).
    let second = e.leader();
    e.members[second].kill9();
    e.wait_serving(2, Duration::from_secs(20));
    for i in (0..3).filter(|i| *i != second) {
        wait_for(&e, i, kept);
    }
    let mut conn = Conn::connect(&addrs[(second + 1) % 3], SESSION_MS);
    for i in 0..20 {
        let path = format!("/kept/n{i}");
        assert_eq!(conn.set_data(&path, b"v3").unwrap().err, OK);
    }
    conn.close();
    e.start_member(second);
    e.wait_serving(3, Duration::from_secs(30));
    // The old leader, restarted from its files, applies new txns on that state.
    e.members[leader].kill9();
    e.start_member(leader);
    e.wait_serving(3, Duration::from_secs(30));
    let mut conn = Conn::connect(&addrs[leader], SESSION_MS);
    for i in 0..20 {
        let path = format!("/kept/n{i}");
        assert_eq!(conn.set_data(&path, b"v4").unwrap().err, OK);
    }
    conn.close();
    let views: Vec<_> = addrs.iter().map(|a| synced_tree(a)).collect();
    assert!(
        views[0]
            .iter()
            .filter(|(n, _, _)| n.starts_with('n'))
            .count()
            == 20
            && views[0]
                .iter()
                .filter(|(n, _, _)| n.starts_with('n'))
                .all(|(_, data, stat)| data == b"v4" && stat.version == 3),
        "{:?}",
        views[0]
    );
    assert_same_everywhere(&e, &views);
    for addr in &addrs {
        assert_eq!(
            synced_children(addr, "/"),
            vec![
                "eph".to_string(),
                "kept".to_string(),
                "zookeeper".to_string()
            ],
            "{addr}: the ephemeral's session lives on"
        );
    }
    let resumed = Raw::resume(&addrs[two], session_id, &passwd, 0, 60000);
    assert_eq!(resumed.session_id, session_id);
    drop(resumed);
}

/// ZooKeeper's SessionMoved: once a session reconnected through another server, a request
/// on its old connection fails (the leader owns the session table and knows the move).
#[test]
fn the_old_connection_of_a_moved_session_gets_session_moved() {
    let mut e = Ensemble::start(3, "");
    let addrs = e.addrs();
    let leader = e.leader();
    let a = (leader + 1) % 3;
    let b = (leader + 2) % 3;
    let mut old = Raw::connect(&addrs[a], 6000);
    let create = |path: &str| {
        Enc::new()
            .string(path)
            .buffer(b"")
            .open_acl()
            .int(CREATE_PERSISTENT)
            .finish()
    };
    assert_eq!(old.call(raw::OP_CREATE, &create("/moved-1")).err, OK);
    let mut moved = Raw::resume(&addrs[b], old.session_id, &old.passwd.clone(), 0, 6000);
    assert_eq!(moved.call(raw::OP_CREATE, &create("/moved-2")).err, OK);
    let reply = old.call(raw::OP_CREATE, &create("/moved-3"));
    assert_eq!(
        reply.err, -118,
        "the old connection's write is not SessionMoved"
    );
    assert_eq!(
        synced_children(&addrs[leader], "/")
            .into_iter()
            .filter(|c| c.starts_with("moved"))
            .collect::<Vec<_>>(),
        vec!["moved-1".to_string(), "moved-2".to_string()]
    );
}

/// A client with all three servers in its connect string keeps its session, ephemeral and
/// watch across a leader failover (every member closes its connections when the term ends;
/// the client reconnects with its session and re-registers its watch with setWatches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_host_client_keeps_session_ephemeral_and_watch_across_failover() {
    use zookeeper_client as zk;
    let mut e = Ensemble::start(3, "");
    let hosts = e.addrs().join(",");
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(8))
        .connect(&hosts)
        .await
        .expect("connect");
    let session = client.session_id();
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    client
        .create("/w", b"0", &persistent)
        .await
        .expect("create /w");
    client
        .create("/w-eph", b"", &ephemeral)
        .await
        .expect("create ephemeral");
    let (_, _, watcher) = client.get_and_watch_data("/w").await.expect("watch /w");
    let leader = e.leader();
    e.members[leader].kill9();
    e.wait_serving(2, Duration::from_secs(20));
    // Another session changes /w once the ensemble serves again.
    let other = zk::Client::connector()
        .connect(&hosts)
        .await
        .expect("second client");
    other.set_data("/w", b"1", None).await.expect("setData /w");
    let event = tokio::time::timeout(Duration::from_secs(20), watcher.changed())
        .await
        .expect("the watch fired after the failover");
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
    assert_eq!(client.session_id(), session, "the session changed");
    assert!(
        other.check_stat("/w-eph").await.expect("exists").is_some(),
        "the ephemeral of the surviving session is gone"
    );
}

/// One `server.N` line is not an ensemble (ZooKeeper runs standalone then, with a warning).
#[test]
fn single_server_line_still_runs_standalone() {
    let dir = durable::ServerDir::new("server.1=127.0.0.1:2888:3888\n");
    std::fs::write(dir.data_dir().join("myid"), "1\n").expect("write myid");
    let server = dir.start();
    assert!(server.last_zxid() >= 0);
    server.stop();
}
