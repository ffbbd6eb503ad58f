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
