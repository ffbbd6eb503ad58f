//! zkrs's reproduction of ZooKeeper's session ids and passwords, and its txn and snapshot
//! codecs, checked against a real Apache ZooKeeper 3.8 standalone server (Debian's package):
//! the passwords it hands out are `session_password(id)`, its ids carry its server id (1 for a
//! standalone server) in the top byte and its monotonic start time below, a session resumes
//! with the password we derive, and the txn log and `snapshot.0` it writes decode with
//! `zab::txn` and `zab::snap`.
//!
//! Skipped (with a message) when Java or the jar is missing and ZKRS_SKIP_DIFFERENTIAL=1,
//! as tests/differential.rs.

mod common;

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use common::javazk::JavaZk;
use common::raw::{self, ConnectReq, Raw};
use zkrs::proto::ErrorCode;
use zkrs::session::java::{server_of_session, session_password};
use zkrs::tree::{DataTree, Txn};
use zkrs::zab::snap::SnapDecoder;
use zkrs::zab::txn::decode_txn_full;

/// `System.nanoTime() / 1e6` as the JVM reads it on Linux (CLOCK_MONOTONIC), in ms.
fn monotonic_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

fn start_java() -> Option<JavaZk> {
    if let Err(why) = JavaZk::check_available() {
        if std::env::var("ZKRS_SKIP_DIFFERENTIAL").as_deref() == Ok("1") {
            eprintln!("zk_ids skipped (ZKRS_SKIP_DIFFERENTIAL=1): {why}");
            return None;
        }
        panic!("zk_ids needs Apache ZooKeeper 3.8 and Java: {why}");
    }
    Some(JavaZk::start(&[]).unwrap_or_else(|e| panic!("start ZooKeeper: {e}")))
}

fn version_2_dir(zk: &JavaZk) -> PathBuf {
    let dir = zk.log_path().parent().map(Path::to_path_buf).unwrap();
    dir.join("data").join("version-2")
}

/// The txn records of a ZooKeeper txn log file (after the 16-byte file header: checksum,
/// length, bytes, 'B'; a zero length is the preallocated end).
fn txn_log_records(file: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&file[..4], b"ZKLG", "txn log magic");
    let mut at = 16;
    let mut out = Vec::new();
    while at + 12 <= file.len() {
        let len = i32::from_be_bytes(file[at + 8..at + 12].try_into().unwrap());
        if len <= 0 {
            break;
        }
        let start = at + 12;
        let end = start + len as usize;
        assert_eq!(file[end], b'B', "end of record");
        out.push(file[start..end].to_vec());
        at = end + 1;
    }
    out
}

#[test]
fn zookeeper_ids_passwords_and_encodings_match_ours() {
    let before_ms = monotonic_ms();
    let Some(zk) = start_java() else {
        return;
    };
    let after_ms = monotonic_ms();

    // Sessions: passwords are ours, ids are server 1's, start time below, one apart.
    let mut sessions: Vec<Raw> = (0..4).map(|_| Raw::connect(&zk.addr, 4000)).collect();
    let time_mask = (1u64 << 40) - 1;
    for (i, s) in sessions.iter().enumerate() {
        assert_eq!(
            s.passwd,
            session_password(s.session_id).to_vec(),
            "password of session {:#x}",
            s.session_id
        );
        assert_eq!(server_of_session(s.session_id), 1, "{:#x}", s.session_id);
        let started = (s.session_id as u64 >> 16) & time_mask;
        let counter = s.session_id as u64 & 0xffff;
        assert!(
            (before_ms as u64 & time_mask..=after_ms as u64 & time_mask).contains(&started),
            "session {:#x}: start time {started} not in {before_ms}..={after_ms}",
            s.session_id
        );
        assert!(counter < 100, "only start-up probes came before: {counter}");
        if i > 0 {
            assert_eq!(s.session_id, sessions[i - 1].session_id + 1);
        }
    }

    // A session resumes on a new connection with the password we derive, not with another.
    let resumed_id = sessions[0].session_id;
    let resumed = Raw::resume(&zk.addr, resumed_id, &session_password(resumed_id), 0, 4000);
    let mut wrong = session_password(resumed_id);
    wrong[0] ^= 1;
    let req = ConnectReq {
        session_id: resumed_id,
        passwd: wrong.to_vec(),
        ..ConnectReq::new_session(4000)
    };
    assert!(Raw::try_handshake(&zk.addr, &req).is_err());
    drop(resumed);

    // Some txns for the log: create, an ephemeral create2, a failed create, a closeSession.
    let owner = sessions[1].session_id;
    sessions[1].create("/zkids", b"hello", 0).ok();
    sessions[1].create2("/zkids/e", b"", 1).ok();
    let failed = sessions[1].create("/zkids", b"again", 0);
    assert_eq!(failed.err, ErrorCode::NodeExists.code());
    sessions[1].call(raw::OP_CLOSE_SESSION, &[]);

    // Every record of the txn log decodes; the ones we caused say what we did.
    let dir = version_2_dir(&zk);
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("log."))
        .expect("a txn log");
    let records = txn_log_records(&std::fs::read(&log).unwrap());
    let decoded: Vec<_> = records
        .iter()
        .map(|r| decode_txn_full(r).unwrap_or_else(|e| panic!("{e}: {r:02x?}")))
        .collect();
    for s in &sessions {
        assert!(
            decoded.iter().any(|d| d.header.client_id == s.session_id
                && d.txn
                    == Txn::CreateSession {
                        timeout_ms: s.timeout_ms
                    }),
            "createSession of {:#x} in the log",
            s.session_id
        );
    }
    let of_owner: Vec<_> = decoded
        .iter()
        .filter(|d| d.header.client_id == owner && d.header.op != -10)
        .collect();
    assert_eq!(of_owner.len(), 4, "{of_owner:#?}");
    assert_eq!(of_owner[0].header.op, 1);
    assert!(matches!(&of_owner[0].txn,
        Txn::Create { path, data, ephemeral_owner: 0, parent_cversion: 1, .. }
        if path == "/zkids" && &data[..] == b"hello"));
    assert_eq!(of_owner[1].header.op, 15);
    assert!(matches!(&of_owner[1].txn,
        Txn::Create { path, ephemeral_owner, parent_cversion: 1, .. }
        if path == "/zkids/e" && *ephemeral_owner == owner));
    assert_eq!(of_owner[2].txn, Txn::Error(ErrorCode::NodeExists));
    assert_eq!(
        of_owner[3].txn,
        Txn::CloseSession {
            ephemerals: vec!["/zkids/e".to_string()]
        }
    );
    // ZooKeeper 3.8 attaches digests (version 2) to the txns that change the tree.
    assert!(of_owner[0].digest.is_some_and(|d| d.version == 2));

    // snapshot.0, written at first start: the body decodes to a fresh tree.
    let snap = std::fs::read(dir.join("snapshot.0")).unwrap();
    assert_eq!(&snap[..4], b"ZKSN", "snapshot magic");
    let mut body = BytesMut::from(&snap[16..]);
    let snapshot = SnapDecoder::body(0)
        .feed(&mut body)
        .unwrap()
        .expect("a complete snapshot body");
    assert!(snapshot.sessions.is_empty());
    let fresh = DataTree::new();
    let ours: Vec<_> = fresh
        .iter()
        .map(|(p, n)| (p.to_string(), n.stat(), n.acl.clone()))
        .collect();
    let theirs: Vec<_> = snapshot
        .tree
        .iter()
        .map(|(p, n)| (p.to_string(), n.stat(), n.acl.clone()))
        .collect();
    assert_eq!(theirs, ours);
    // What follows the body is the file's seal (adler32, then "/").
    assert_eq!(&body[8..13], &[0, 0, 0, 1, b'/']);
}
