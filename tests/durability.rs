//! Durability of the real server: real processes, real files, real fsync.
//!
//! Each test keeps one data directory across several zkrs processes (started from the
//! binary with a zoo.cfg of its own), kills them with SIGKILL or stops them with SIGTERM,
//! damages files between runs, and checks what the next process serves:
//! - every write acknowledged before a kill -9 is there after the restart, with its latest
//!   acknowledged data; sequence suffixes and zxids keep increasing across restarts;
//! - sessions and their ephemerals survive restarts and can be resumed; a session not
//!   resumed expires after its timeout and its ephemerals go, with NodeDeleted to watchers;
//! - snapshots are taken every snapCount txns, a restart loads the newest one plus the log
//!   tail, and `zkrs purge` keeps 3;
//! - damaged files give the documented outcome: corruption of synced data refuses to start
//!   naming the file and offset, a torn tail is cut, a damaged newest snapshot is passed over
//!   when an older one and the log cover it, and no usable snapshot refuses to start.
//!
//! Loopback only; every wait is bounded.

mod common;
#[path = "common/durable.rs"]
mod durable;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::raw::{
    self, Raw, CREATE_EPHEMERAL, CREATE_PERSISTENT, CREATE_SEQUENTIAL, ERR_NO_NODE,
    EV_NODE_DELETED, OK,
};
use durable::{
    create_body, created_path, flip_byte, segment_layout, truncate_file, zero_range, Conn, Rng,
    ServerDir, MAX_SESSION_MS,
};

// ---------------------------------------------------------------------------------------
// kill -9 under concurrent write load

const WRITERS: usize = 4;
const ROUNDS: usize = 8;
/// A load thread stops by itself after this long if the kill somehow did not reach it.
const LOAD_LIMIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
enum Op {
    Create { path: String, data: Vec<u8> },
    Set { path: String, data: Vec<u8> },
    Delete { path: String },
    Sequential,
}

struct Acked {
    op: Op,
    zxid: i64,
    /// The name a sequential create got.
    created: Option<String>,
}

struct LoadOutcome {
    acked: Vec<Acked>,
    /// The request that was in flight when the server died (its outcome is unknown).
    in_flight: Option<Op>,
    /// A write that failed with an error reply (never expected).
    failure: Option<String>,
}

fn writer_dir(t: usize) -> String {
    format!("/d/w{t}")
}

/// One load thread: synchronous writes on its own session until the server dies.
fn load(addr: String, t: usize, round: usize) -> LoadOutcome {
    let mut outcome = LoadOutcome {
        acked: Vec::new(),
        in_flight: None,
        failure: None,
    };
    // The kill may come before this thread got its session: then it did nothing.
    let Ok(mut conn) = Conn::try_connect(&addr, MAX_SESSION_MS) else {
        return outcome;
    };
    let started = Instant::now();
    let dir = writer_dir(t);
    for k in 0.. {
        if started.elapsed() > LOAD_LIMIT {
            break;
        }
        let op = match k % 4 {
            0 => Op::Create {
                path: format!("{dir}/r{round}-{k}"),
                data: format!("c{round}-{k}").into_bytes(),
            },
            1 => Op::Set {
                path: format!("{dir}/x"),
                data: format!("s{round}-{k}").into_bytes(),
            },
            2 => Op::Sequential,
            _ if (k / 4) % 2 == 0 => Op::Delete {
                // Created (and acknowledged) three ops ago.
                path: format!("{dir}/r{round}-{}", k - 3),
            },
            _ => Op::Create {
                path: format!("{dir}/r{round}-{k}"),
                data: format!("c{round}-{k}").into_bytes(),
            },
        };
        outcome.in_flight = Some(op.clone());
        let reply = match &op {
            Op::Create { path, data } => conn.create(path, data, CREATE_PERSISTENT),
            Op::Set { path, data } => conn.set_data(path, data),
            Op::Delete { path } => conn.delete(path),
            Op::Sequential => conn.create("/d/seq/s-", b"", CREATE_SEQUENTIAL),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(_) => return outcome, // the server is gone; `in_flight` is unknown
        };
        outcome.in_flight = None;
        if reply.err != OK {
            outcome.failure = Some(format!("{op:?} failed with error {}", reply.err));
            return outcome;
        }
        let created = matches!(op, Op::Sequential).then(|| created_path(&reply));
        outcome.acked.push(Acked {
            op,
            zxid: reply.zxid,
            created,
        });
    }
    outcome
}

/// What must be on the server, from the acknowledged writes.
#[derive(Default)]
struct Model {
    /// Nodes under the writer dirs (x excluded) that must exist, with their data.
    nodes: BTreeMap<String, Vec<u8>>,
    /// Acknowledged deletes: must not exist.
    deleted: BTreeSet<String>,
    /// In-flight creates (Some(data)) and deletes (None): either outcome is allowed.
    unsure: BTreeMap<String, Option<Vec<u8>>>,
    /// Per writer: the x node's acknowledged data and zxid, and an in-flight set.
    x: Vec<(Vec<u8>, i64, Option<Vec<u8>>)>,
    /// Acknowledged sequential nodes (names under /d/seq).
    seq: BTreeSet<String>,
    /// In-flight sequential creates.
    seq_unsure: usize,
    /// The largest suffix under /d/seq seen so far (None before the first).
    seq_max: Option<u64>,
    /// The largest acknowledged zxid.
    max_zxid: i64,
}

fn seq_suffix(name: &str) -> u64 {
    let digits = name.rsplit('-').next().unwrap_or("");
    assert_eq!(digits.len(), 10, "sequence suffix of {name}");
    digits.parse().expect("sequence suffix")
}

/// Checks the restarted server against the model, then resolves every unsure outcome to
/// what the server shows.
fn verify(conn: &mut Conn, model: &mut Model, round: usize) {
    for t in 0..WRITERS {
        let dir = writer_dir(t);
        let children: BTreeSet<String> = conn
            .children(&dir)
            .expect("children")
            .into_iter()
            .map(|c| format!("{dir}/{c}"))
            .collect();
        let prefix = format!("{dir}/");
        for path in model.nodes.keys().filter(|p| p.starts_with(&prefix)) {
            let unsure_delete = matches!(model.unsure.get(path), Some(None));
            assert!(
                children.contains(path) || unsure_delete,
                "round {round}: acknowledged create of {path} lost"
            );
        }
        for path in model.deleted.iter().filter(|p| p.starts_with(&prefix)) {
            assert!(
                !children.contains(path),
                "round {round}: acknowledged delete of {path} undone"
            );
        }
        for path in &children {
            let known = path.ends_with("/x")
                || model.nodes.contains_key(path)
                || matches!(model.unsure.get(path), Some(Some(_)));
            assert!(known, "round {round}: {path} exists but was never created");
        }
        // Resolve the unsure outcomes of this writer.
        let unsure: Vec<(String, Option<Vec<u8>>)> = model
            .unsure
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .map(|(p, d)| (p.clone(), d.clone()))
            .collect();
        for (path, data) in unsure {
            model.unsure.remove(&path);
            match (children.contains(&path), data) {
                (true, Some(data)) => {
                    model.nodes.insert(path, data);
                }
                (false, Some(_)) => {}
                (true, None) => {}
                (false, None) => {
                    model.nodes.remove(&path);
                    model.deleted.insert(path);
                }
            }
        }
    }
    // Data of every node that must exist.
    let paths: Vec<String> = model.nodes.keys().cloned().collect();
    let got = conn.get_many(&paths).expect("getData");
    for (path, result) in paths.iter().zip(got) {
        match result {
            Ok((data, _)) => assert_eq!(&data, &model.nodes[path], "round {round}: data of {path}"),
            Err(e) => panic!("round {round}: {path}: error {e}"),
        }
    }
    // The x nodes: the latest acknowledged data, or the in-flight one.
    let x_paths: Vec<String> = (0..WRITERS)
        .map(|t| format!("{}/x", writer_dir(t)))
        .collect();
    let got = conn.get_many(&x_paths).expect("getData x");
    for (t, result) in got.into_iter().enumerate() {
        let (data, stat) = result.unwrap_or_else(|e| panic!("x of writer {t}: error {e}"));
        let (acked, acked_zxid, in_flight) = &model.x[t];
        assert!(
            &data == acked || in_flight.as_ref() == Some(&data),
            "round {round}: x of writer {t} is {:?}, acknowledged {:?}, in flight {:?}",
            String::from_utf8_lossy(&data),
            String::from_utf8_lossy(acked),
            in_flight
                .as_ref()
                .map(|d| String::from_utf8_lossy(d).into_owned())
        );
        assert!(
            stat.mzxid >= *acked_zxid,
            "round {round}: x of writer {t} has mzxid {:#x} below the acknowledged {acked_zxid:#x}",
            stat.mzxid
        );
        model.x[t] = (data, stat.mzxid, None);
    }
    // Sequential nodes.
    let seq: BTreeSet<String> = conn
        .children("/d/seq")
        .expect("children")
        .into_iter()
        .collect();
    for name in &model.seq {
        assert!(seq.contains(name), "round {round}: sequential {name} lost");
    }
    let extra = seq.difference(&model.seq).count();
    assert!(
        extra <= model.seq_unsure,
        "round {round}: {extra} unexpected sequential nodes ({} were in flight)",
        model.seq_unsure
    );
    model.seq = seq;
    model.seq_unsure = 0;
    model.seq_max = model.seq.iter().map(|n| seq_suffix(n)).max();
}

#[test]
fn kill9_under_write_load_keeps_every_acknowledged_write() {
    let started = Instant::now();
    let mut rng = Rng::from_time("kill9_under_write_load");
    // A few snapshots (interval 200..400 txns) happen during the load too.
    let dir = ServerDir::new("snapCount=400\n");
    let mut model = Model::default();
    let mut total_acked = 0usize;
    let mut slowest_start_ms = 0;
    for round in 0..=ROUNDS {
        let server = dir.start();
        let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
        if round == 0 {
            for path in ["/d", "/d/seq"] {
                assert_eq!(conn.create(path, b"", CREATE_PERSISTENT).unwrap().err, OK);
            }
            for t in 0..WRITERS {
                let dir = writer_dir(t);
                assert_eq!(conn.create(&dir, b"", CREATE_PERSISTENT).unwrap().err, OK);
                let reply = conn
                    .create(&format!("{dir}/x"), b"", CREATE_PERSISTENT)
                    .unwrap();
                assert_eq!(reply.err, OK);
                model.x.push((Vec::new(), reply.zxid, None));
            }
        } else {
            verify(&mut conn, &mut model, round);
        }
        conn.close();
        let zxid_at_start = server.last_zxid();
        slowest_start_ms = slowest_start_ms.max(server.startup_ms().unwrap_or(0));
        assert!(
            zxid_at_start >= model.max_zxid,
            "round {round}: the server restarted at zxid {zxid_at_start:#x}, below the acknowledged {:#x}",
            model.max_zxid
        );
        if round == ROUNDS {
            break;
        }

        let threads: Vec<_> = (0..WRITERS)
            .map(|t| {
                let addr = server.addr.clone();
                std::thread::spawn(move || load(addr, t, round))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + rng.below(500)));
        server.kill9();
        let seq_floor = model.seq_max;
        for (t, thread) in threads.into_iter().enumerate() {
            let outcome = thread.join().expect("load thread");
            if let Some(failure) = outcome.failure {
                panic!("round {round}, writer {t}: {failure}");
            }
            total_acked += outcome.acked.len();
            let mut previous_zxid = zxid_at_start;
            let mut previous_seq = seq_floor;
            for acked in outcome.acked {
                assert!(
                    acked.zxid > previous_zxid,
                    "round {round}, writer {t}: zxid {:#x} after {previous_zxid:#x}",
                    acked.zxid
                );
                previous_zxid = acked.zxid;
                model.max_zxid = model.max_zxid.max(acked.zxid);
                match acked.op {
                    Op::Create { path, data } => {
                        model.nodes.insert(path, data);
                    }
                    Op::Set { data, .. } => model.x[t] = (data, acked.zxid, None),
                    Op::Delete { path } => {
                        model.nodes.remove(&path);
                        model.deleted.insert(path);
                    }
                    Op::Sequential => {
                        let name = acked.created.expect("created path");
                        let name = name.trim_start_matches("/d/seq/").to_string();
                        let suffix = seq_suffix(&name);
                        assert!(
                            previous_seq.is_none_or(|p| suffix > p),
                            "round {round}, writer {t}: sequential suffix {suffix} not above {previous_seq:?}"
                        );
                        previous_seq = Some(suffix);
                        model.seq.insert(name);
                    }
                }
            }
            match outcome.in_flight {
                Some(Op::Create { path, data }) => {
                    model.unsure.insert(path, Some(data));
                }
                Some(Op::Delete { path }) => {
                    model.unsure.insert(path, None);
                }
                Some(Op::Set { data, .. }) => model.x[t].2 = Some(data),
                Some(Op::Sequential) => model.seq_unsure += 1,
                None => {}
            }
        }
    }
    assert!(
        total_acked > ROUNDS * WRITERS * 10,
        "too little load to mean anything: {total_acked} acknowledged writes"
    );
    eprintln!(
        "kill9_under_write_load: {ROUNDS} kills, {total_acked} acknowledged writes, {} nodes, {} segments, {} snapshots, slowest start (recovery included) {slowest_start_ms} ms, {:?}",
        model.nodes.len(),
        dir.segments().len(),
        dir.snapshots().len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// sessions and ephemerals across restarts

fn stat_of(raw: &mut Raw, path: &str) -> Option<raw::RawStat> {
    let reply = raw.exists(path, false);
    match reply.err {
        OK => Some(reply.dec().stat()),
        ERR_NO_NODE => None,
        e => panic!("exists {path}: error {e}"),
    }
}

#[test]
fn sessions_and_ephemerals_survive_restarts_until_they_expire() {
    let dir = ServerDir::new("");
    let server = dir.start();
    let mut a = Raw::connect(&server.addr, MAX_SESSION_MS);
    assert_eq!(a.timeout_ms, MAX_SESSION_MS);
    a.create("/eph", b"e", CREATE_EPHEMERAL).ok();
    a.create("/keep", b"k", CREATE_PERSISTENT).ok();
    let (id, password, zxid) = a.disconnect();

    // Clean restart (SIGTERM): the session and its ephemeral are still there.
    assert!(server.stop().success(), "zkrs stop");
    let server = dir.start();
    let mut a = Raw::resume(&server.addr, id, &password, zxid, MAX_SESSION_MS);
    let stat = stat_of(&mut a, "/eph").expect("ephemeral after a clean restart");
    assert_eq!(stat.ephemeral_owner, id);
    a.create("/eph2", b"e2", CREATE_EPHEMERAL).ok();
    let (_, _, zxid) = a.disconnect();

    // kill -9: the same, and the client resumes within its timeout.
    server.kill9();
    let server = dir.start();
    let mut a = Raw::resume(&server.addr, id, &password, zxid, MAX_SESSION_MS);
    for path in ["/eph", "/eph2"] {
        let stat = stat_of(&mut a, path).unwrap_or_else(|| panic!("{path} after kill -9"));
        assert_eq!(stat.ephemeral_owner, id, "{path}");
    }
    a.ping();
    let (_, _, zxid) = a.disconnect();

    // kill -9 again, and this time the client does not come back: the session expires a
    // timeout after the restart, its ephemerals go and a watcher hears of it.
    server.kill9();
    let server = dir.start();
    let restarted = Instant::now();
    let mut w = Raw::connect(&server.addr, MAX_SESSION_MS);
    assert!(
        w.exists("/eph", true).err == OK && w.exists("/eph2", true).err == OK,
        "the ephemerals must still be there right after the restart"
    );
    let mut deleted = BTreeSet::new();
    let deadline = restarted + Duration::from_millis(2 * MAX_SESSION_MS as u64 + 3000);
    // Pings keep the watcher's session alive and collect the notifications that arrive
    // before each reply (no read with a short deadline: raw::read_frame_by may give up
    // between a frame's length and its body at a deadline and lose the stream's framing).
    while deleted.len() < 2 && Instant::now() < deadline {
        w.ping();
        while let Some(event) = w.events.pop_front() {
            assert_eq!(event.event_type, EV_NODE_DELETED, "{event:?}");
            deleted.insert(event.path);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let expired_after = restarted.elapsed();
    assert_eq!(
        deleted,
        BTreeSet::from(["/eph".to_string(), "/eph2".to_string()]),
        "NodeDeleted for both ephemerals within {:?}",
        deadline - restarted
    );
    // Recovered sessions get a whole timeout from the restart (as in ZooKeeper).
    assert!(
        expired_after >= Duration::from_millis(MAX_SESSION_MS as u64 / 2),
        "expired {expired_after:?} after the restart, before its timeout"
    );
    assert!(stat_of(&mut w, "/eph").is_none());
    assert!(stat_of(&mut w, "/keep").is_some());
    // The expired session cannot be resumed.
    let request = raw::ConnectReq {
        protocol_version: 0,
        last_zxid_seen: zxid,
        timeout_ms: MAX_SESSION_MS,
        session_id: id,
        passwd: password.clone(),
        read_only: Some(false),
    };
    let (_stream, response) = raw::handshake(&server.addr, &request);
    let response = response.expect("handshake");
    assert_eq!(response.timeout_ms, 0, "expired session {id:#x} resumed");

    // Expiry is durable too: after one more kill -9 the ephemerals stay gone.
    w.disconnect();
    server.kill9();
    let server = dir.start();
    let mut r = Raw::connect(&server.addr, MAX_SESSION_MS);
    assert!(stat_of(&mut r, "/eph").is_none());
    assert!(stat_of(&mut r, "/eph2").is_none());
    assert!(stat_of(&mut r, "/keep").is_some());
}

// ---------------------------------------------------------------------------------------
// snapshots, restart from snapshot + log tail, purge

type Captured = BTreeMap<String, (Vec<u8>, raw::RawStat)>;

/// Data and stat of `root` and all its children.
fn capture(conn: &mut Conn, root: &str) -> Captured {
    let mut paths = vec![root.to_string()];
    paths.extend(
        conn.children(root)
            .expect("children")
            .into_iter()
            .map(|c| format!("{root}/{c}")),
    );
    let got = conn.get_many(&paths).expect("getData");
    paths
        .into_iter()
        .zip(got)
        .map(|(path, result)| {
            let value = result.unwrap_or_else(|e| panic!("{path}: error {e}"));
            (path, value)
        })
        .collect()
}

fn assert_same(before: &Captured, after: &Captured, when: &str) {
    assert_eq!(before.len(), after.len(), "{when}: node count");
    for (path, value) in before {
        assert_eq!(Some(value), after.get(path), "{when}: {path}");
    }
}

/// "(N txns replayed after PATH)" from the server's recovery line.
fn replayed(log: &str) -> Option<(u64, String)> {
    let line = log.lines().find(|l| l.contains("txns replayed after"))?;
    let start = line.rfind('(')? + 1;
    let text = &line[start..];
    let (count, rest) = text.split_once(' ')?;
    let path = rest
        .strip_prefix("txns replayed after ")?
        .trim_end_matches(')');
    Some((count.parse().ok()?, path.to_string()))
}

#[test]
fn snapshots_restart_from_snapshot_and_log_tail_and_purge_keeps_three() {
    const RUNS: usize = 3;
    const CREATES: usize = 700;
    let dir = ServerDir::new("snapCount=100\n");
    let mut captured = Captured::new();
    for run in 0..RUNS {
        let server = dir.start();
        let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
        if run == 0 {
            assert_eq!(conn.create("/s", b"", CREATE_PERSISTENT).unwrap().err, OK);
        } else {
            assert_same(&captured, &capture(&mut conn, "/s"), &format!("run {run}"));
        }
        let mut requests: Vec<(i32, Vec<u8>)> = (0..CREATES)
            .map(|i| {
                let path = format!("/s/r{run}-{i}");
                let data = format!("v{run}-{i}").into_bytes();
                (raw::OP_CREATE, create_body(&path, &data, CREATE_PERSISTENT))
            })
            .collect();
        requests.extend((0..CREATES / 2).map(|i| {
            let body = common::raw::Enc::new()
                .string(&format!("/s/r{run}-{}", 2 * i))
                .buffer(format!("w{run}-{i}").as_bytes())
                .int(-1)
                .finish();
            (raw::OP_SET_DATA, body)
        }));
        for (i, reply) in conn
            .pipeline(&requests, 64)
            .expect("pipeline")
            .into_iter()
            .enumerate()
        {
            assert_eq!(reply.err, OK, "run {run}, request {i}");
        }
        captured = capture(&mut conn, "/s");
        conn.close();
        if run + 1 == RUNS {
            assert!(server.stop().success());
        } else {
            server.kill9();
        }
    }
    let snapshots = dir.snapshots();
    assert!(
        snapshots.len() >= 10,
        "snapCount=100 over {} txns gave only {} snapshots",
        RUNS * CREATES * 3 / 2,
        snapshots.len()
    );

    // The restart loads the newest snapshot and replays only the log after it.
    let server = dir.start();
    let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
    assert_same(&captured, &capture(&mut conn, "/s"), "after the runs");
    let (count, from) = replayed(&server.log()).expect("recovery line");
    // Only the tail: a snapshot is skipped while the previous one is still being written
    // (as ZooKeeper's "too busy to snap"), so on a busy machine the tail can be a few
    // intervals long, but never the whole log.
    let total = (RUNS * CREATES * 3 / 2) as u64;
    assert!(
        count < total / 3,
        "replayed {count} of about {total} txns after {from}: the snapshot was not used"
    );
    assert_eq!(
        Some(from.as_str()),
        snapshots.last().and_then(|p| p.to_str()),
        "recovery did not start from the newest snapshot"
    );

    // Purge while the server runs (as zkCleanup.sh may): 3 snapshots stay.
    let cfg = dir.cfg_path();
    let output = dir.zkrs(&["purge", cfg.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "purge: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let kept = dir.snapshots();
    assert_eq!(kept.len(), 3, "purge kept {kept:?}");
    assert_eq!(kept[..], snapshots[snapshots.len() - 3..]);
    let removed = stdout
        .lines()
        .filter(|l| l.starts_with("Removing file: "))
        .count();
    assert!(removed >= snapshots.len() - 3, "{stdout}");
    for line in stdout.lines().filter(|l| l.starts_with("Removing file: ")) {
        let path = line.trim_start_matches("Removing file: ");
        assert!(!std::path::Path::new(path).exists(), "{path} still there");
    }
    conn.close();

    // And the purged directory still recovers, after a kill -9.
    server.kill9();
    let server = dir.start();
    let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
    assert_same(&captured, &capture(&mut conn, "/s"), "after purge");
    conn.close();
    server.stop();

    let output = dir.zkrs(&["purge", cfg.to_str().unwrap(), "-n", "2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("greater than or equal to 3"));
}

// ---------------------------------------------------------------------------------------
// damaged files

const N_FIRST: usize = 300;
const N_LATER: usize = 30;

/// A data directory after three runs, each ended by kill -9: run 1 pipelines N_FIRST creates
/// under /c (snapshots happen: snapCount=100), runs 2 and 3 each make N_LATER creates one
/// at a time (one txn per batch), and run 3 ends with the create of /c/last. Returns the
/// directory and the expected children of /c.
fn damage_base() -> (ServerDir, BTreeSet<String>) {
    let dir = ServerDir::new("snapCount=100\n");
    let mut names = BTreeSet::new();
    for run in 0..3 {
        let server = dir.start();
        let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
        if run == 0 {
            assert_eq!(conn.create("/c", b"", CREATE_PERSISTENT).unwrap().err, OK);
            let requests: Vec<(i32, Vec<u8>)> = (0..N_FIRST)
                .map(|i| {
                    let path = format!("/c/n{i}");
                    (raw::OP_CREATE, create_body(&path, b"n", CREATE_PERSISTENT))
                })
                .collect();
            for reply in conn.pipeline(&requests, 64).expect("pipeline") {
                assert_eq!(reply.err, OK);
            }
            names.extend((0..N_FIRST).map(|i| format!("n{i}")));
        } else {
            let letter = if run == 1 { "m" } else { "k" };
            for i in 0..N_LATER {
                let name = format!("{letter}{i}");
                let reply = conn
                    .create(&format!("/c/{name}"), b"x", CREATE_PERSISTENT)
                    .unwrap();
                assert_eq!(reply.err, OK);
                names.insert(name);
            }
        }
        if run == 2 {
            let reply = conn.create("/c/last", b"l", CREATE_PERSISTENT).unwrap();
            assert_eq!(reply.err, OK);
            names.insert("last".to_string());
        } else {
            conn.close();
        }
        server.kill9();
    }
    (dir, names)
}

fn children_of_c(addr: &str) -> BTreeSet<String> {
    let mut conn = Conn::connect(addr, MAX_SESSION_MS);
    let children = conn.children("/c").expect("children").into_iter().collect();
    conn.close();
    children
}

/// The log of a server that must refuse: exit code 1 (not a crash), and every `needles`.
fn assert_refused(dir: &ServerDir, needles: &[String], what: &str) -> String {
    let (status, log) = dir.start_refused();
    assert_eq!(status.code(), Some(1), "{what}: exit status; log:\n{log}");
    for needle in needles {
        assert!(
            log.contains(needle.as_str()),
            "{what}: no {needle:?} in:\n{log}"
        );
    }
    assert!(!log.contains("panicked"), "{what}: panic:\n{log}");
    log
}

#[test]
fn damaged_files_give_the_documented_outcome() {
    let (base, names) = damage_base();
    let segments = base.segments();
    assert!(segments.len() >= 3, "{segments:?}");
    let snapshots = base.snapshots();
    assert!(snapshots.len() >= 2, "{snapshots:?}");
    let file_name = |p: &std::path::Path| p.file_name().unwrap().to_owned();
    let second_last = file_name(&segments[segments.len() - 2]);
    let last = file_name(&segments[segments.len() - 1]);

    // 1. A flipped byte in the records of a segment that is not the last: refuses, naming
    //    the file and the offset of the damaged record.
    {
        let dir = base.copy();
        let segment = dir.files_dir().join(&second_last);
        let (records, _) = segment_layout(&segment);
        assert!(records.len() >= N_LATER, "{records:?}");
        let (offset, _) = records[records.len() / 2];
        flip_byte(&segment, offset + 30);
        let log = assert_refused(
            &dir,
            &[
                format!("{} is corrupt at byte offset {offset}", segment.display()),
                format!("zkrs log truncate {} {offset}", segment.display()),
            ],
            "flipped byte in a non-last segment",
        );
        eprintln!("refusal (non-last segment): {}", last_line(&log));
    }

    // 2. A flipped byte in the middle of the last segment, with valid records of later
    //    batches after it: refuses too.
    {
        let dir = base.copy();
        let segment = dir.files_dir().join(&last);
        let (records, _) = segment_layout(&segment);
        let (offset, _) = records[records.len() / 2];
        flip_byte(&segment, offset + 12);
        let log = assert_refused(
            &dir,
            &[
                format!("{} is corrupt at byte offset {offset}", segment.display()),
                "a valid record of a later batch follows".to_string(),
            ],
            "flipped byte in the middle of the last segment",
        );
        eprintln!("refusal (last segment): {}", last_line(&log));
    }

    // 3. The last record torn at a few offsets (and zeroed in place): the server cuts it
    //    and serves everything before it.
    let (records, end) = segment_layout(&base.files_dir().join(&last));
    let (last_offset, _) = *records.last().unwrap();
    let mut without_last = names.clone();
    without_last.remove("last");
    type Tear = Box<dyn Fn(&std::path::Path)>;
    let tears: Vec<(&str, Tear)> = vec![
        (
            "cut after 1 byte",
            Box::new(move |p| truncate_file(p, last_offset + 1)),
        ),
        (
            "cut after 9 bytes",
            Box::new(move |p| truncate_file(p, last_offset + 9)),
        ),
        (
            "cut 1 byte short",
            Box::new(move |p| truncate_file(p, end - 1)),
        ),
        (
            "payload zeroed",
            Box::new(move |p| zero_range(p, last_offset + 8, end - last_offset - 8)),
        ),
    ];
    for (what, tear) in tears {
        let dir = base.copy();
        let segment = dir.files_dir().join(&last);
        tear(&segment);
        let server = dir.start();
        assert_eq!(
            children_of_c(&server.addr),
            without_last,
            "torn tail, {what}"
        );
        assert!(
            server.log().contains("torn tail"),
            "{what}: {}",
            server.log()
        );
        assert_eq!(
            std::fs::metadata(&segment).unwrap().len(),
            last_offset,
            "{what}: the torn record was not cut off"
        );
        server.kill9();
        // Cut durably: the next start finds a clean log.
        let server = dir.start();
        assert_eq!(
            children_of_c(&server.addr),
            without_last,
            "{what}, restarted"
        );
        assert!(
            !server.log().contains("torn tail"),
            "{what}: {}",
            server.log()
        );
        server.stop();
    }

    // 4. The newest snapshot damaged, an older one and the log cover it: starts, warns.
    {
        let dir = base.copy();
        let newest = dir.snapshots().pop().unwrap();
        let len = std::fs::metadata(&newest).unwrap().len();
        flip_byte(&newest, len / 2);
        let server = dir.start();
        assert_eq!(
            children_of_c(&server.addr),
            names,
            "damaged newest snapshot"
        );
        let log = server.log();
        assert!(
            log.contains(&format!("{} is damaged", newest.display())),
            "no warning about {}:\n{log}",
            newest.display()
        );
        server.stop();
    }

    // 5. The only snapshot zeroed: refuses, naming the snapshot.
    {
        let dir = base.copy();
        let mut snapshots = dir.snapshots();
        let only = snapshots.pop().unwrap();
        for older in snapshots {
            std::fs::remove_file(older).unwrap();
        }
        let len = std::fs::metadata(&only).unwrap().len();
        zero_range(&only, 0, len);
        let log = assert_refused(
            &dir,
            &[
                "no snapshot is usable".to_string(),
                only.display().to_string(),
            ],
            "zeroed only snapshot",
        );
        eprintln!("refusal (no snapshot): {}", last_line(&log));
    }

    // And the undamaged base still starts with everything.
    let server = base.start();
    assert_eq!(children_of_c(&server.addr), names);
    server.stop();
}

fn last_line(log: &str) -> &str {
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}
