//! The offline tools (`zkrs log dump`, `zkrs snapshot dump`, `zkrs purge`,
//! `zkrs log truncate`) on real files written by a real server run, and on damaged and
//! garbage files: the human and JSON outputs parse and match what the server served, and
//! bad input gives a clear message and a non-zero exit code, never a panic.

mod common;
#[path = "common/durable.rs"]
mod durable;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::raw::{
    self, encode_multi, Enc, MultiOp, Raw, CREATE_EPHEMERAL, CREATE_PERSISTENT, CREATE_SEQUENTIAL,
    OK,
};
use durable::{
    create_body, flip_byte, run_zkrs, segment_layout, truncate_file, Conn, Rng, ServerDir,
    MAX_SESSION_MS,
};
use serde_json::Value;

/// Bytes that exercise the preview's escaping.
const BINARY: &[u8] = &[0, 1, 2, 0xff, b'"', b'\\', b'a'];

struct Facts {
    /// Stat of /t/bin (data "new") and of /t, as served before the kill.
    bin: raw::RawStat,
    t: raw::RawStat,
    /// The session that owns /t/e, still open at the kill.
    owner: i64,
    /// How many nodes /bulk got.
    bulk: usize,
}

/// A server run with a mix of every txn type, then bulk writes (snapCount=100, so several
/// snapshots come after the mix), ended by kill -9.
fn produce(bulk_count: usize) -> (ServerDir, Facts) {
    let dir = ServerDir::new("snapCount=100\n");
    let server = dir.start();
    let mut a = Raw::connect(&server.addr, MAX_SESSION_MS);
    a.create("/t", b"top", CREATE_PERSISTENT).ok();
    a.create("/t/bin", BINARY, CREATE_PERSISTENT).ok();
    a.create("/t/big", &[b'x'; 1000], CREATE_PERSISTENT).ok();
    a.create("/t/e", b"eph", CREATE_EPHEMERAL).ok();
    for _ in 0..3 {
        a.create("/t/q-", b"", CREATE_SEQUENTIAL).ok();
    }
    a.set_data("/t/bin", b"new", -1).ok();
    let acl = Enc::new()
        .string("/t/big")
        .acls(&[(1, "world", "anyone"), (31, "ip", "127.0.0.1")])
        .int(-1)
        .finish();
    a.call(raw::OP_SET_ACL, &acl).ok();
    // The suffix is the parent's child count so far: /t/bin, /t/big and /t/e came first.
    a.delete("/t/q-0000000003", -1).ok();
    let good = encode_multi(&[
        MultiOp::Create {
            path: "/t/m1",
            data: b"m",
            flags: CREATE_PERSISTENT,
        },
        MultiOp::SetData {
            path: "/t/m1",
            data: b"m2",
            version: 0,
        },
        MultiOp::Check {
            path: "/t/m1",
            version: 1,
        },
    ]);
    a.call(raw::OP_MULTI, &good).ok();
    let bad = encode_multi(&[
        MultiOp::Create {
            path: "/t/m2",
            data: b"",
            flags: CREATE_PERSISTENT,
        },
        MultiOp::Delete {
            path: "/t/none",
            version: -1,
        },
    ]);
    a.call(raw::OP_MULTI, &bad);
    let bin = a.exists("/t/bin", false).ok().dec().stat();
    let t = a.exists("/t", false).ok().dec().stat();
    let owner = a.session_id;

    let mut bulk = Conn::connect(&server.addr, MAX_SESSION_MS);
    assert_eq!(
        bulk.create("/bulk", b"", CREATE_PERSISTENT).unwrap().err,
        OK
    );
    let requests: Vec<(i32, Vec<u8>)> = (0..bulk_count)
        .map(|i| {
            let path = format!("/bulk/n{i}");
            (raw::OP_CREATE, create_body(&path, b"b", CREATE_PERSISTENT))
        })
        .collect();
    for reply in bulk.pipeline(&requests, 32).expect("pipeline") {
        assert_eq!(reply.err, OK);
    }
    bulk.close();
    a.ping();
    server.kill9();
    (
        dir,
        Facts {
            bin,
            t,
            owner,
            bulk: bulk_count,
        },
    )
}

/// Runs zkrs; asserts it exited normally with 0 or 1 (never a panic or a signal).
fn tool(args: &[&str]) -> (i32, String, String) {
    let output: Output = run_zkrs(args);
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("zkrs {args:?} died by a signal: {:?}", output.status));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        (code == 0 || code == 1) && !stderr.contains("panicked"),
        "zkrs {args:?} exited {code}: {stderr}"
    );
    (code, stdout, stderr)
}

/// One JSON value per line of `text`; panics naming the line that does not parse.
fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", n + 1))
        })
        .collect()
}

/// A JSON object's fields by type; each panics with the object when the field is missing
/// or of another type.
trait Fields {
    fn str(&self, key: &str) -> &str;
    fn int(&self, key: &str) -> i64;
    /// A hex string (`"0x1f"`) as a number (as an i64: session ids use all 64 bits).
    fn hex(&self, key: &str) -> i64;
    fn bool(&self, key: &str) -> bool;
    fn array(&self, key: &str) -> &[Value];
}

impl Fields for Value {
    fn str(&self, key: &str) -> &str {
        self[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key:?} in {self}"))
    }

    fn int(&self, key: &str) -> i64 {
        self[key]
            .as_i64()
            .unwrap_or_else(|| panic!("no integer {key:?} in {self}"))
    }

    fn hex(&self, key: &str) -> i64 {
        let text = self.str(key);
        let digits = text
            .strip_prefix("0x")
            .unwrap_or_else(|| panic!("{key}: {text:?} is not 0x-hex"));
        u64::from_str_radix(digits, 16).unwrap_or_else(|_| panic!("{key}: bad hex {text:?}")) as i64
    }

    fn bool(&self, key: &str) -> bool {
        self[key]
            .as_bool()
            .unwrap_or_else(|| panic!("no bool {key:?} in {self}"))
    }

    fn array(&self, key: &str) -> &[Value] {
        self[key]
            .as_array()
            .unwrap_or_else(|| panic!("no array {key:?} in {self}"))
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Every txn type in a JSON txn, nested multi ops included.
fn txn_types(txn: &Value, out: &mut BTreeSet<String>) {
    out.insert(txn.str("type").to_string());
    if let Some(Value::Array(ops)) = txn.get("ops") {
        for op in ops {
            txn_types(op, out);
        }
    }
}

#[test]
fn log_and_snapshot_dumps_of_a_real_run() {
    let (dir, facts) = produce(300);
    let segments = dir.segments();
    assert!(segments.len() >= 3, "{segments:?}");

    // Every segment, text and JSON: the same records, zxids in order across segments.
    let mut types = BTreeSet::new();
    let mut previous_zxid = 0i64;
    let mut creates: BTreeMap<String, Value> = BTreeMap::new();
    for segment in &segments {
        let (code, text, stderr) = tool(&["log", "dump", s(segment)]);
        assert_eq!(code, 0, "{stderr}");
        let last = text.lines().last().unwrap_or("");
        assert!(last.starts_with("end: clean end"), "{last}");
        let record_lines = text
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()))
            })
            .count();

        let (code, out, stderr) = tool(&["log", "dump", "--json", s(segment)]);
        assert_eq!(code, 0, "{stderr}");
        let lines = parse_lines(&out);
        assert_eq!(lines.first().map(|l| l.str("kind")), Some("header"));
        assert_eq!(lines.last().map(|l| l.str("kind")), Some("end"));
        let header = &lines[0];
        let name = segment.file_name().unwrap().to_str().unwrap();
        assert_eq!(format!("log.{:x}", header.hex("first_zxid")), name);
        let end = lines.last().unwrap();
        assert_eq!(end.str("outcome"), "clean");
        assert!(end.bool("server_would_start"));
        let records: Vec<&Value> = lines[1..lines.len() - 1].iter().collect();
        assert_eq!(end.int("records") as usize, records.len());
        assert_eq!(records.len(), record_lines, "text and JSON of {name}");
        for record in records {
            assert_eq!(record.str("kind"), "record");
            let zxid = record.hex("zxid");
            assert!(
                zxid > previous_zxid,
                "zxid {zxid:#x} after {previous_zxid:#x}"
            );
            previous_zxid = zxid;
            assert!(record.str("time").ends_with('Z'));
            let txn = record.get("txn").expect("txn");
            txn_types(txn, &mut types);
            if txn.str("type") == "create" {
                creates.insert(txn.str("path").to_string(), txn.clone());
            }
        }
    }
    for expected in [
        "createSession",
        "create",
        "setData",
        "setACL",
        "delete",
        "multi",
        "check",
        "error",
        "closeSession",
    ] {
        assert!(types.contains(expected), "no {expected} txn in {types:?}");
    }
    let bin = &creates["/t/bin"];
    assert_eq!(bin.int("data_length"), BINARY.len() as i64);
    assert_eq!(bin.str("data_preview"), r#"\x00\x01\x02\xff\"\\a"#);
    let big = &creates["/t/big"];
    assert_eq!(big.int("data_length"), 1000);
    assert!(big.str("data_preview").ends_with("..."));
    let acl = bin.array("acl");
    assert_eq!(acl.len(), 1);
    assert_eq!(
        (acl[0].str("scheme"), acl[0].str("id")),
        ("world", "anyone")
    );
    assert_eq!(acl[0].int("perms"), 31);
    assert_eq!(creates["/t/e"].hex("ephemeral_owner"), facts.owner);

    // The newest snapshot, JSON: the nodes as the server served them.
    let snapshots = dir.snapshots();
    assert!(snapshots.len() >= 2, "{snapshots:?}");
    let newest = snapshots.last().unwrap();
    let (code, out, stderr) = tool(&["snapshot", "dump", "--json", s(newest)]);
    assert_eq!(code, 0, "{stderr}");
    let lines = parse_lines(&out);
    let header = &lines[0];
    assert_eq!(header.str("kind"), "header");
    let name = newest.file_name().unwrap().to_str().unwrap();
    assert_eq!(format!("snapshot.{:x}", header.hex("last_zxid")), name);
    let nodes: BTreeMap<&str, &Value> = lines
        .iter()
        .filter(|l| l.str("kind") == "node")
        .map(|l| (l.str("path"), l))
        .collect();
    let sessions: Vec<&Value> = lines
        .iter()
        .filter(|l| l.str("kind") == "session")
        .collect();
    let trailer = lines.last().unwrap();
    assert_eq!(trailer.str("kind"), "trailer");
    assert!(trailer.bool("valid"), "{trailer:?}");
    assert_eq!(trailer.int("nodes") as usize, nodes.len());
    assert_eq!(trailer.int("sessions") as usize, sessions.len());
    for (path, stat) in [("/t/bin", &facts.bin), ("/t", &facts.t)] {
        let node = nodes[path];
        assert_eq!(node.hex("czxid"), stat.czxid, "{path}");
        assert_eq!(node.hex("mzxid"), stat.mzxid, "{path}");
        assert_eq!(node.hex("pzxid"), stat.pzxid, "{path}");
        assert_eq!(node.int("ctime_ms"), stat.ctime, "{path}");
        assert_eq!(node.int("version"), i64::from(stat.version), "{path}");
        assert_eq!(node.int("aversion"), i64::from(stat.aversion), "{path}");
        assert_eq!(
            node.int("data_length"),
            i64::from(stat.data_length),
            "{path}"
        );
        assert_eq!(
            node.int("num_children"),
            i64::from(stat.num_children),
            "{path}"
        );
    }
    assert_eq!(nodes["/t/bin"].str("data_preview"), "new");
    assert_eq!(nodes["/t/e"].hex("ephemeral_owner"), facts.owner);
    let big_acl = nodes["/t/big"].array("acl");
    assert_eq!(big_acl.len(), 2);
    assert_eq!(big_acl[1].str("scheme"), "ip");
    let owner = sessions
        .iter()
        .find(|s| s.hex("id") == facts.owner)
        .expect("the owner's session in the snapshot");
    assert_eq!(owner.int("ephemerals"), 1);
    assert_eq!(owner.int("timeout_ms"), i64::from(MAX_SESSION_MS));
    let bulk_in_snapshot = nodes.keys().filter(|p| p.starts_with("/bulk/")).count();
    assert!(bulk_in_snapshot <= facts.bulk);

    // Text: one line per node, and a valid trailer; every snapshot checks.
    for snapshot in &snapshots {
        let (code, text, stderr) = tool(&["snapshot", "dump", s(snapshot)]);
        assert_eq!(code, 0, "{}: {stderr}", snapshot.display());
        assert!(text.lines().next().unwrap().starts_with("snapshot "));
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("trailer: ") && last.contains(": valid:"),
            "{last}"
        );
    }
    let (_, text, _) = tool(&["snapshot", "dump", s(newest)]);
    let node_lines = text.lines().filter(|l| l.starts_with('/')).count();
    assert_eq!(node_lines, nodes.len());
    let bin_line = text.lines().find(|l| l.starts_with("/t/bin ")).unwrap();
    assert!(bin_line.contains("data=3B \"new\""), "{bin_line}");
    assert!(
        bin_line.contains(&format!("mzxid={:#x}", facts.bin.mzxid)),
        "{bin_line}"
    );
}

#[test]
fn damaged_and_garbage_files_give_clear_errors_never_panics() {
    let dir = ServerDir::new("");
    let server = dir.start();
    let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
    for i in 0..20 {
        let reply = conn
            .create(&format!("/g{i}"), b"data", CREATE_PERSISTENT)
            .unwrap();
        assert_eq!(reply.err, OK);
    }
    conn.close();
    server.kill9();
    let segment = dir.segments().pop().expect("a segment");
    let snapshot = dir.snapshots().pop().expect("a snapshot");
    let (records, end) = segment_layout(&segment);
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng::from_time("damaged_and_garbage_files");

    // A segment cut anywhere: a torn tail (or a bad header when the cut is inside it).
    let copy = work.path().join(segment.file_name().unwrap());
    let mut cuts: Vec<u64> = (0..60).map(|_| rng.below(end + 1)).collect();
    cuts.extend([0, 1, 39, 40, 41, records[5].0 + 3, end - 1, end]);
    for cut in cuts {
        std::fs::copy(&segment, &copy).unwrap();
        truncate_file(&copy, cut);
        let (code, text, stderr) = tool(&["log", "dump", s(&copy)]);
        let last = text.lines().last().unwrap_or("");
        if cut < 40 {
            assert_eq!(code, 1, "cut at {cut}");
            assert!(last.starts_with("end: bad header"), "cut at {cut}: {last}");
            assert!(
                stderr.contains("not a valid zkrs txn log segment"),
                "{stderr}"
            );
        } else if records.iter().any(|(o, _)| *o == cut) || cut == end || cut == 40 {
            assert_eq!(code, 0, "cut at {cut}: {text}");
            assert!(last.starts_with("end: clean end"), "cut at {cut}: {last}");
        } else {
            assert_eq!(code, 0, "cut at {cut}: {text}");
            assert!(last.starts_with("end: torn tail"), "cut at {cut}: {last}");
        }
        let (json_code, out, _) = tool(&["log", "dump", "--json", s(&copy)]);
        assert_eq!(json_code, code);
        let lines = parse_lines(&out);
        assert_eq!(lines.last().unwrap().str("kind"), "end");
    }

    // A flipped byte in a record followed by records of later batches: corruption, with
    // the offset; anywhere else (random): never a panic.
    std::fs::copy(&segment, &copy).unwrap();
    let (offset, _) = records[records.len() / 2];
    flip_byte(&copy, offset + 20);
    let (code, text, stderr) = tool(&["log", "dump", s(&copy)]);
    assert_eq!(code, 1);
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "end: corruption after {} record(s), at offset {offset}:",
            records.len() / 2
        )),
        "{last}"
    );
    assert!(last.contains("zkrs log truncate"), "{last}");
    assert!(stderr.contains("corrupt"), "{stderr}");
    for _ in 0..40 {
        std::fs::copy(&segment, &copy).unwrap();
        flip_byte(&copy, rng.below(end));
        tool(&["log", "dump", s(&copy)]);
        tool(&["log", "dump", "--json", s(&copy)]);
    }

    // A snapshot cut or flipped anywhere: DAMAGED, exit code 1.
    let snap_copy = work.path().join(snapshot.file_name().unwrap());
    let snap_len = std::fs::metadata(&snapshot).unwrap().len();
    for round in 0..40 {
        std::fs::copy(&snapshot, &snap_copy).unwrap();
        if round % 2 == 0 {
            truncate_file(&snap_copy, rng.below(snap_len));
        } else {
            flip_byte(&snap_copy, rng.below(snap_len));
        }
        let (code, text, stderr) = tool(&["snapshot", "dump", s(&snap_copy)]);
        assert_eq!(code, 1, "round {round}: {text}");
        assert!(text.lines().last().unwrap().contains("DAMAGED"), "{text}");
        assert!(stderr.contains("the snapshot is damaged"), "{stderr}");
        let (code, out, _) = tool(&["snapshot", "dump", "--json", s(&snap_copy)]);
        assert_eq!(code, 1);
        let lines = parse_lines(&out);
        let trailer = lines.last().unwrap();
        assert_eq!(trailer.str("kind"), "trailer");
        assert!(!trailer.bool("valid"));
    }

    // Garbage, empty files, directories, missing files, devices.
    let garbage_dir = work.path().join("garbage");
    std::fs::create_dir(&garbage_dir).unwrap();
    let garbage = garbage_dir.join("log.1");
    std::fs::write(
        &garbage,
        (0..5000).map(|_| rng.next() as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    let empty = garbage_dir.join("snapshot.1");
    std::fs::write(&empty, b"").unwrap();
    let missing = garbage_dir.join("log.missing");
    for (verb, file) in [
        ("log", &garbage),
        ("snapshot", &garbage),
        ("log", &empty),
        ("snapshot", &empty),
        ("log", &work.path().to_path_buf()),
        ("snapshot", &missing),
        ("log", &PathBuf::from("/dev/zero")),
    ] {
        for json in [false, true] {
            let mut args = vec![verb, "dump"];
            if json {
                args.push("--json");
            }
            args.push(s(file));
            let (code, out, stderr) = tool(&args);
            assert_eq!(code, 1, "{args:?}: {out}");
            assert!(!stderr.trim().is_empty(), "{args:?}: no message");
            if json {
                parse_lines(&out);
            }
        }
    }
    let (_, _, stderr) = tool(&["log", "dump", "/dev/zero"]);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    let (_, _, stderr) = tool(&["snapshot", "dump", s(&missing)]);
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn purge_and_truncate_on_real_files() {
    // Over 500 txns at a snapshot interval of 50..=100: at least 5 snapshots after snapshot.0.
    let (dir, facts) = produce(500);
    let cfg = dir.cfg_path();
    let snapshots = dir.snapshots();
    assert!(snapshots.len() >= 5, "{snapshots:?}");

    // purge -n 5, then the default 3: the newest stay, with the segments they need.
    for keep in [5usize, 3] {
        let mut args = vec!["purge", s(&cfg)];
        let count = keep.to_string();
        if keep != 3 {
            args.extend(["-n", &count]);
        }
        let output = run_zkrs(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert_eq!(dir.snapshots()[..], snapshots[snapshots.len() - keep..]);
        assert!(
            stdout.contains(&format!("kept {keep} snapshot(s)")),
            "{stdout}"
        );
    }
    let oldest_kept = dir.snapshots()[0].clone();
    let oldest_zxid = u64::from_str_radix(
        &oldest_kept.file_name().unwrap().to_str().unwrap()["snapshot.".len()..],
        16,
    )
    .unwrap();
    let first_segment = dir.segments()[0].clone();
    let first_zxid = u64::from_str_radix(
        &first_segment.file_name().unwrap().to_str().unwrap()["log.".len()..],
        16,
    )
    .unwrap();
    assert!(
        first_zxid <= oldest_zxid + 1,
        "a segment the oldest snapshot needs is gone"
    );
    let server = dir.start();
    let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
    assert_eq!(conn.children("/bulk").unwrap().len(), facts.bulk);
    conn.close();
    server.kill9();
    for bad in ["2", "0", "x"] {
        let output = run_zkrs(&["purge", s(&cfg), "-n", bad]);
        assert_eq!(output.status.code(), Some(2), "-n {bad}");
    }

    // Two more runs, a few txns each (no snapshot: the interval is at least 50 txns), so
    // that the second-last segment lies after every snapshot.
    let mut after = 0;
    for run in 0..2 {
        let server = dir.start();
        let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
        if run == 0 {
            assert_eq!(
                conn.create("/after", b"", CREATE_PERSISTENT).unwrap().err,
                OK
            );
        }
        for _ in 0..10 {
            let path = format!("/after/a{after}");
            assert_eq!(conn.create(&path, b"", CREATE_PERSISTENT).unwrap().err, OK);
            after += 1;
        }
        conn.close();
        server.kill9();
    }

    // log truncate: refuses without --yes and changes nothing; with it, cuts and removes
    // the later segments; the server then starts with everything before the cut.
    let segments = dir.segments();
    let target = segments[segments.len() - 2].clone();
    let (records, _) = segment_layout(&target);
    // records: createSession, create /after, a0..a9, closeSession; cut before a5.
    assert_eq!(records.len(), 13, "{records:?}");
    let (offset, first_lost) = records[7];
    let before = std::fs::read(&target).unwrap();
    let (code, out, stderr) = tool(&["log", "truncate", s(&target), &offset.to_string()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(out.contains(&format!("zxids {first_lost:#x} to")), "{out}");
    assert!(out.contains("would be removed (a later segment)"), "{out}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "changed without --yes"
    );
    assert_eq!(dir.segments(), segments);

    let (code, _, stderr) = tool(&["log", "truncate", s(&target), "999999999", "--yes"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("past the end"), "{stderr}");
    let (code, _, stderr) = tool(&["log", "truncate", s(&dir.snapshots()[0]), "40", "--yes"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a txn log segment"), "{stderr}");

    let (code, out, stderr) = tool(&["log", "truncate", s(&target), &offset.to_string(), "--yes"]);
    assert_eq!(code, 0, "{out} {stderr}");
    assert_eq!(std::fs::metadata(&target).unwrap().len(), offset);
    assert_eq!(dir.segments().last(), Some(&target));
    let server = dir.start();
    assert_eq!(server.last_zxid(), first_lost - 1);
    let mut conn = Conn::connect(&server.addr, MAX_SESSION_MS);
    let mut kept = conn.children("/after").unwrap();
    kept.sort();
    assert_eq!(kept, ["a0", "a1", "a2", "a3", "a4"]);
    conn.close();
    let (code, text, _) = tool(&["log", "dump", s(&target)]);
    assert_eq!(code, 0);
    assert!(
        text.lines().last().unwrap().starts_with("end: clean end"),
        "{text}"
    );
    server.stop();
}
