//! Limits from zoo.cfg: maxClientCnxns per client address, and globalOutstandingLimit as
//! backpressure (requests beyond it wait; none is dropped and replies stay in order).

#[macro_use]
mod common;

use std::time::Duration;

use common::raw::{self, wait_closed, Enc, Raw};
use common::*;

#[test]
fn max_client_cnxns_is_enforced_per_address() {
    if std::env::var("ZKRS_TEST_TARGET").is_ok() {
        // The limit is a server setting; an external server has its own.
        return;
    }
    let server = TestServer::start_with(&["maxClientCnxns=3"]);
    let (_, max) = server.session_bounds_ms();
    let mut open: Vec<Raw> = (0..3).map(|_| server.raw(max)).collect();
    for c in &mut open {
        assert_eq!(c.ping().err, raw::OK);
    }
    // The fourth connection from 127.0.0.1 is closed at once.
    let mut fourth = raw::dial(&server.addr);
    assert!(
        wait_closed(&mut fourth, Duration::from_secs(5)),
        "a connection over maxClientCnxns was accepted"
    );
    // The others are unaffected, and a freed slot can be used again.
    for c in &mut open {
        assert_eq!(c.ping().err, raw::OK);
    }
    let closed = open.pop().expect("three connections");
    drop(closed);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_stream, response) = raw::handshake(&server.addr, &raw::ConnectReq::new_session(max));
        if response.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot of a closed connection was not freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn global_outstanding_limit_applies_backpressure_without_dropping() {
    let server = TestServer::start_with(&["globalOutstandingLimit=2"]);
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("outstanding");
    assert_eq!(c.create(&root, b"", 0).err, raw::OK);
    // Far more pipelined writes and reads than the limit: all are answered, in order.
    let mut xids = Vec::new();
    for i in 0..200 {
        let body = Enc::new()
            .string(&root)
            .buffer(format!("v{i}").as_bytes())
            .int(-1)
            .finish();
        xids.push(c.send(raw::OP_SET_DATA, &body));
        let body = Enc::new().string(&root).bool(false).finish();
        xids.push(c.send(raw::OP_GET_DATA, &body));
    }
    let mut last_zxid = 0;
    for (i, xid) in xids.iter().enumerate() {
        let reply = c.wait_reply(*xid);
        assert_eq!(reply.err, raw::OK, "request {i}");
        assert!(reply.zxid >= last_zxid, "reply zxids go backwards at {i}");
        last_zxid = reply.zxid;
        if i % 2 == 1 {
            // The read behind write i/2 sees that write (per-session FIFO).
            let data = reply.dec().buffer().unwrap_or_default();
            assert_eq!(data, format!("v{}", i / 2).into_bytes(), "read {i}");
        }
    }
}
