//! Exact zxid accounting: which requests are transactions (consume a zxid, even when they
//! fail) and which are not, and what zxid each reply header carries.
//!
//! This file holds a single test on purpose: cargo runs test binaries one after another, so
//! against a shared external server (ZKRS_TEST_TARGET) no other test of this suite writes
//! while it runs. A session of an earlier binary may still expire meanwhile (that is a
//! transaction too), so the scenario is retried a few times before failing.

#[macro_use]
mod common;

use common::raw::{self, encode_multi, Enc, MultiOp, Raw};
use common::*;

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $what:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}: {:?} != {:?} (line {})", $what, l, r, line!()));
        }
    }};
}

fn scenario(server: &TestServer) -> Result<(), String> {
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("zxid");
    let a = format!("{root}/a");

    let z0 = c.create(&root, b"", 0).ok().zxid;
    ensure_eq!(
        c.exists(&root, false).ok().zxid,
        z0,
        "a read carries the last zxid"
    );
    ensure_eq!(c.get_data(&root, false).ok().zxid, z0, "getData");
    ensure_eq!(c.ping().zxid, z0, "ping");

    // Failed writes are transactions too: each consumes a zxid and its reply carries it.
    let r = c.create(&root, b"", 0);
    ensure_eq!(
        (r.err, r.zxid),
        (raw::ERR_NODE_EXISTS, z0 + 1),
        "failed create"
    );
    let r = c.create(&format!("{root}/no/such"), b"", 0);
    ensure_eq!(
        (r.err, r.zxid),
        (raw::ERR_NO_NODE, z0 + 2),
        "create under missing parent"
    );
    let r = c.set_data(&root, b"", 5);
    ensure_eq!(
        (r.err, r.zxid),
        (raw::ERR_BAD_VERSION, z0 + 3),
        "setData BadVersion"
    );
    let r = c.delete(&format!("{root}/missing"), -1);
    ensure_eq!((r.err, r.zxid), (raw::ERR_NO_NODE, z0 + 4), "delete NoNode");
    let r = c.create("noslash", b"", 0);
    ensure_eq!(
        (r.err, r.zxid),
        (raw::ERR_BAD_ARGUMENTS, z0 + 5),
        "create BadArguments"
    );
    let body = Enc::new().int(1000).bytes(b"/x").finish();
    let r = c.call(raw::OP_SET_DATA, &body);
    ensure_eq!(
        (r.err, r.zxid),
        (raw::ERR_MARSHALLING, z0 + 6),
        "undecodable setData"
    );
    let r = c.create(&a, b"", 0).ok();
    ensure_eq!(r.zxid, z0 + 7, "the next create");
    let stat = c.exists(&root, false).ok().dec().stat();
    ensure_eq!(stat.pzxid, z0 + 7, "failed txns leave pzxid");
    ensure_eq!(stat.cversion, 1, "failed creates leave cversion");

    // Reads and session-local requests are not.
    c.get_children(&root, true).ok();
    c.add_watch(&root, 1).ok();
    ensure_eq!(
        c.check_watches(&root, raw::WATCHER_CHILDREN).err,
        raw::OK,
        "checkWatches"
    );
    ensure_eq!(
        c.remove_watches(&root, raw::WATCHER_CHILDREN).err,
        raw::OK,
        "removeWatches"
    );
    ensure_eq!(c.auth("digest", b"u:p").err, raw::OK, "auth");
    let r = c.set_watches(z0 + 7, &[], &[], &[]);
    ensure_eq!(r.err, raw::OK, "setWatches");
    let r = c
        .call(raw::OP_SYNC, &Enc::new().string(&root).finish())
        .ok();
    ensure_eq!(r.zxid, z0 + 7, "sync");
    ensure_eq!(c.ping().zxid, z0 + 7, "after non-transactions");

    // A multi is one transaction whatever its size or outcome; an empty one included.
    let b = format!("{root}/b");
    let body = encode_multi(&[
        MultiOp::Create {
            path: &b,
            data: b"",
            flags: 0,
        },
        MultiOp::SetData {
            path: &a,
            data: b"x",
            version: 0,
        },
        MultiOp::Check {
            path: &a,
            version: 1,
        },
    ]);
    ensure_eq!(c.call(raw::OP_MULTI, &body).ok().zxid, z0 + 8, "multi");
    let body = encode_multi(&[
        MultiOp::Delete {
            path: &b,
            version: -1,
        },
        MultiOp::Check {
            path: &a,
            version: 99,
        },
    ]);
    ensure_eq!(
        c.call(raw::OP_MULTI, &body).ok().zxid,
        z0 + 9,
        "failed multi"
    );
    ensure_eq!(
        c.call(raw::OP_MULTI, &encode_multi(&[])).ok().zxid,
        z0 + 10,
        "empty multi"
    );
    let stat = c.exists(&b, false).ok().dec().stat();
    ensure_eq!((stat.czxid, stat.mzxid), (z0 + 8, z0 + 8), "multi create");
    let stat = c.exists(&a, false).ok().dec().stat();
    ensure_eq!((stat.mzxid, stat.version), (z0 + 8, 1), "multi setData");

    // setACL is a transaction.
    let body = Enc::new().string(&a).open_acl().int(-1).finish();
    ensure_eq!(c.call(raw::OP_SET_ACL, &body).ok().zxid, z0 + 11, "setACL");

    // Creating and closing a session are transactions; the close deletes its ephemerals in
    // that same transaction.
    let mut other = Raw::connect(&server.addr, max);
    ensure_eq!(other.ping().zxid, z0 + 12, "createSession");
    let e = format!("{root}/e");
    ensure_eq!(
        other.create(&e, b"", raw::CREATE_EPHEMERAL).ok().zxid,
        z0 + 13,
        "ephemeral"
    );
    ensure_eq!(other.close_session().zxid, z0 + 14, "closeSession");
    let stat = c.exists(&root, false).ok().dec().stat();
    ensure_eq!(
        stat.pzxid,
        z0 + 14,
        "ephemeral deleted by the closeSession txn"
    );
    ensure_eq!(c.ping().zxid, z0 + 14, "final");
    Ok(())
}

#[test]
fn zxid_accounting() {
    let server = TestServer::start();
    let mut failures = Vec::new();
    for _ in 0..5 {
        match scenario(&server) {
            Ok(()) => return,
            Err(e) => failures.push(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!(
        "zxid accounting failed five times:\n{}",
        failures.join("\n")
    );
}
