//! Fidelity to Apache ZooKeeper 3.8 on points an outside test report found: null znode
//! data, jute.maxbuffer for field sizes, txns too large for the log.
//!
//! Real zkrs processes (common/durable.rs: a data directory kept across restarts), driven
//! with the raw jute client (common/raw.rs), so the bytes on the wire are exactly the ones a
//! Java client sends (a null buffer is length -1).

mod common;
#[path = "common/durable.rs"]
mod durable;

use common::raw::{Enc, Raw, OK, OP_CREATE, OP_SET_DATA};
use durable::{ServerDir, MAX_SESSION_MS};

/// create(path, null, OPEN_ACL_UNSAFE, PERSISTENT) as the Java client sends it.
fn create_null(raw: &mut Raw, path: &str) {
    let body = Enc::new()
        .string(path)
        .null_buffer()
        .open_acl()
        .int(0)
        .finish();
    raw.call(OP_CREATE, &body).ok();
}

/// setData(path, null, -1).
fn set_null(raw: &mut Raw, path: &str) {
    let body = Enc::new().string(path).null_buffer().int(-1).finish();
    raw.call(OP_SET_DATA, &body).ok();
}

/// getData's buffer (None: null) and the stat's dataLength.
fn get(raw: &mut Raw, path: &str) -> (Option<Vec<u8>>, i32) {
    let reply = raw.get_data(path, false).ok();
    let mut dec = reply.dec();
    let data = dec.buffer();
    (data, dec.stat().data_length)
}

fn check_null_nodes(raw: &mut Raw, when: &str) {
    assert_eq!(get(raw, "/null"), (None, 0), "{when}: create(null)");
    assert_eq!(
        get(raw, "/empty"),
        (Some(vec![]), 0),
        "{when}: create(empty)"
    );
    assert_eq!(get(raw, "/set-null"), (None, 0), "{when}: setData(null)");
    assert_eq!(
        get(raw, "/set-empty"),
        (Some(vec![]), 0),
        "{when}: setData(empty) after null"
    );
    let reply = raw.exists("/null", false).ok();
    assert_eq!(reply.dec().stat().data_length, 0, "{when}: exists");
}

/// ZooKeeper 3.8 answers getData of a node created or set with null data with a null
/// buffer (length -1; kazoo's test_create_null_data / test_set_null_data), and keeps null
/// and empty apart; so must zkrs, live, after a log replay and after a snapshot.
#[test]
fn null_data_reads_back_null_after_restarts_and_snapshots() {
    let dir = ServerDir::new("snapCount=4\n");
    let server = dir.start();
    let mut raw = Raw::connect(&server.addr, MAX_SESSION_MS);
    create_null(&mut raw, "/null");
    raw.create("/empty", b"", 0).ok();
    raw.create("/set-null", b"data", 0).ok();
    set_null(&mut raw, "/set-null");
    create_null(&mut raw, "/set-empty");
    assert_eq!(raw.set_data("/set-empty", b"", -1).err, OK);
    check_null_nodes(&mut raw, "live");
    drop(raw);
    assert!(server.stop().success());

    // Replayed from the log (and whatever snapshot the writes above triggered).
    let server = dir.start();
    let mut raw = Raw::connect(&server.addr, MAX_SESSION_MS);
    check_null_nodes(&mut raw, "after a restart");
    // Enough writes for a snapshot (every 2..=4 txns), then a restart from it.
    for i in 0..8 {
        raw.create(&format!("/filler-{i}"), b"f", 0).ok();
    }
    drop(raw);
    assert!(server.stop().success());
    assert!(!dir.snapshots().is_empty(), "no snapshot was taken");
    let server = dir.start();
    let mut raw = Raw::connect(&server.addr, MAX_SESSION_MS);
    check_null_nodes(&mut raw, "after a restart from a snapshot");
    drop(raw);
    assert!(server.stop().success());
}

/// With jute.maxbuffer raised to 4 MiB, ZooKeeper accepts (and returns) a 3 MiB znode;
/// zkrs used to cap every field near 2 MiB whatever jute.maxbuffer said.
#[test]
fn raised_jute_maxbuffer_allows_a_3_mib_znode() {
    let dir = ServerDir::new("jute.maxbuffer=4194304\n");
    let server = dir.start();
    let mut raw = Raw::connect(&server.addr, MAX_SESSION_MS);
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    raw.create("/big", b"", 0).ok();
    assert_eq!(raw.set_data("/big", &big, -1).err, OK, "setData of 3 MiB");
    let (data, len) = get(&mut raw, "/big");
    assert_eq!(len as usize, big.len());
    assert!(
        data.as_deref() == Some(&big[..]),
        "getData returns the 3 MiB"
    );
    raw.create("/big-create", &big, 0).ok();
    assert_eq!(get(&mut raw, "/big-create").1 as usize, big.len());
    drop(raw);
    // And it is in the log: a restart replays it.
    assert!(server.stop().success());
    let server = dir.start();
    let mut raw = Raw::connect(&server.addr, MAX_SESSION_MS);
    assert!(get(&mut raw, "/big").0.as_deref() == Some(&big[..]));
    drop(raw);
    assert!(server.stop().success());
}
