//! Per-session FIFO under pipelining: a read queued between two writes of the same session
//! sees the first write and not the second, even when both writes commit in one batch.

#[macro_use]
mod common;

use common::raw::{self, Enc};
use common::*;

enum Sent {
    Set,
    Get(String),
    Exists,
}

#[test]
fn reads_between_pipelined_writes_see_exactly_the_writes_before_them() {
    let server = TestServer::start();
    check_reads_between_writes(&server);
}

/// The same while other sessions keep the log busy, so that rounds of the ordering core
/// join batches still waiting for the log (and a joined batch must not hide the version a
/// queued read needs).
#[test]
fn reads_between_pipelined_writes_under_concurrent_write_load() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loaders = Vec::new();
    for t in 0..3 {
        let mut w = server.raw(max);
        let stop = stop.clone();
        let path = unique_prefix(&format!("load{t}"));
        assert_eq!(w.create(&path, b"", 0).err, raw::OK);
        loaders.push(std::thread::spawn(move || {
            // Bounded: at most 200 rounds of 32 pipelined writes.
            for _ in 0..200 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let set = Enc::new().string(&path).buffer(b"x").int(-1).finish();
                let xids: Vec<i32> = (0..32).map(|_| w.send(raw::OP_SET_DATA, &set)).collect();
                for xid in xids {
                    assert_eq!(w.wait_reply(xid).err, raw::OK);
                }
            }
        }));
    }
    check_reads_between_writes(&server);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loaders {
        l.join().expect("loader thread");
    }
}

fn check_reads_between_writes(server: &TestServer) {
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("pipelining");
    assert_eq!(c.create(&root, b"v-init", 0).err, raw::OK);
    for round in 0..5 {
        // Everything is sent before any reply is read, so writes share commit batches.
        let mut xids = Vec::new();
        for i in 0..100 {
            let value = format!("r{round}-v{i}");
            let set = Enc::new()
                .string(&root)
                .buffer(value.as_bytes())
                .int(-1)
                .finish();
            xids.push((c.send(raw::OP_SET_DATA, &set), Sent::Set));
            let get = Enc::new().string(&root).bool(false).finish();
            xids.push((c.send(raw::OP_GET_DATA, &get), Sent::Get(value)));
            let exists = Enc::new().string(&root).bool(false).finish();
            xids.push((c.send(raw::OP_EXISTS, &exists), Sent::Exists));
        }
        let mut previous_zxid = 0;
        let mut last_write_zxid = 0;
        for (xid, expected) in xids {
            let reply = c.wait_reply(xid);
            assert_eq!(reply.err, raw::OK);
            assert!(reply.zxid >= previous_zxid, "reply zxids go backwards");
            previous_zxid = reply.zxid;
            match expected {
                Sent::Set => last_write_zxid = reply.zxid,
                Sent::Get(value) => {
                    let mut d = reply.dec();
                    let data = d.buffer().unwrap_or_default();
                    assert_eq!(
                        String::from_utf8_lossy(&data),
                        value,
                        "a read saw another write than the one just before it"
                    );
                    let stat = d.stat();
                    assert_eq!(stat.mzxid, last_write_zxid, "read's mzxid");
                }
                Sent::Exists => {
                    assert_eq!(reply.dec().stat().mzxid, last_write_zxid, "exists' mzxid");
                }
            }
        }
    }
}
