//! Wire-level behaviour, driven by the independent raw client in tests/common/raw.rs:
//! handshake fields, pings, reply headers, reconnecting a session by id and password, and what
//! a server does with malformed, oversized or unknown requests.

#[macro_use]
mod common;

use std::time::Duration;

use common::raw::{self, handshake, wait_closed, ConnectReq, Enc, Raw};
use common::*;

/// How long a test waits for the server to close a connection.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

#[test]
fn handshake_response_fields() {
    let server = TestServer::start();
    let (min, max) = server.session_bounds_ms();
    let asked = (min + max) / 2;

    let (_s1, r1) = handshake(&server.addr, &ConnectReq::new_session(asked));
    let r1 = r1.expect("connect response");
    assert_eq!(r1.protocol_version, 0);
    assert_eq!(
        r1.timeout_ms, asked,
        "a timeout within bounds is granted as asked"
    );
    assert_ne!(r1.session_id, 0);
    assert_eq!(r1.passwd.len(), 16);
    assert_eq!(r1.read_only, Some(false));
    // int + int + long + (int + 16 bytes) + bool
    assert_eq!(r1.frame_len, 37);

    // An old-style request without the readOnly byte gets an answer without it too.
    let mut old = ConnectReq::new_session(asked);
    old.read_only = None;
    let (_s2, r2) = handshake(&server.addr, &old);
    let r2 = r2.expect("connect response");
    assert_eq!(r2.frame_len, 36);
    assert_eq!(r2.read_only, None);
    assert_eq!(r2.timeout_ms, asked);

    // Sessions are distinct, and so are their passwords.
    assert_ne!(r1.session_id, r2.session_id);
    assert_ne!(r1.passwd, r2.passwd);
}

#[test]
fn ping_and_reply_header_zxids() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("ping");

    let p = c.ping();
    assert_eq!((p.xid, p.err), (raw::XID_PING, raw::OK));
    assert!(p.body.is_empty());
    assert!(p.zxid >= 0);

    let created = c.create(&root, b"", 0).ok();
    assert!(created.zxid > p.zxid);
    assert_eq!(created.dec().string(), root);
    let stat = c.exists(&root, false).ok();
    assert!(
        stat.zxid >= created.zxid,
        "a read's reply carries the latest zxid"
    );
    assert_eq!(
        stat.dec().stat().czxid,
        created.zxid,
        "a create's reply zxid is the czxid"
    );

    let p2 = c.ping();
    assert_eq!(p2.xid, raw::XID_PING);
    assert!(p2.zxid >= created.zxid, "ping carries the latest zxid");

    let set = c.set_data(&root, b"x", -1).ok();
    assert_eq!(
        set.dec().stat().mzxid,
        set.zxid,
        "a setData's reply zxid is the mzxid"
    );

    // Pings keep a session alive well past its timeout.
    let (min, _) = server.session_bounds_ms();
    let mut short = server.raw(min);
    short
        .create(&format!("{root}/e"), b"", raw::CREATE_EPHEMERAL)
        .ok();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(min as u64 / 3));
        assert_eq!(short.ping().err, raw::OK);
    }
    c.sync(&root);
    assert_eq!(
        c.exists(&format!("{root}/e"), false).err,
        raw::OK,
        "pinged session expired"
    );
}

#[test]
fn create2_reply_layout() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("create2");
    let plain = c.create(&root, b"abc", 0).ok();
    let mut d = plain.dec();
    assert_eq!(d.string(), root);
    assert_eq!(d.remaining(), 0, "create (1) replies with the path only");

    let r = c.create2(&format!("{root}/n"), b"xy", 0).ok();
    let mut d = r.dec();
    assert_eq!(d.string(), format!("{root}/n"));
    let stat = d.stat();
    assert_eq!(d.remaining(), 0);
    assert_eq!(
        (stat.czxid, stat.mzxid, stat.pzxid),
        (r.zxid, r.zxid, r.zxid)
    );
    assert_eq!(stat.data_length, 2);

    let r = c.get_data(&format!("{root}/n"), false).ok();
    let mut d = r.dec();
    assert_eq!(d.buffer().as_deref(), Some(&b"xy"[..]));
    assert_eq!(d.stat(), stat);
}

#[test]
fn bad_paths_are_bad_arguments() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("badpath");
    c.create(&root, b"", 0).ok();

    // The parent is looked up first, so these are checked under an existing parent.
    for bad in [
        String::new(),
        "noslash".to_string(),
        format!("{root}/"),
        format!("{root}/."),
        format!("{root}/.."),
        format!("{root}/a\u{0}b"),
    ] {
        let r = c.create(&bad, b"", 0);
        assert_eq!(r.err, raw::ERR_BAD_ARGUMENTS, "create {bad:?}");
    }
    // Under a missing parent, NoNode comes first.
    assert_eq!(
        c.create(&format!("{root}/x//y"), b"", 0).err,
        raw::ERR_NO_NODE
    );
    // A name merely starting with a dot is fine.
    assert_eq!(c.create(&format!("{root}/.x"), b"", 0).err, raw::OK);
    // The root exists already.
    assert_eq!(c.create("/", b"", 0).err, raw::ERR_NODE_EXISTS);
    // Deleting the root or an invalid path is BadArguments.
    assert_eq!(c.delete("/", -1).err, raw::ERR_BAD_ARGUMENTS);
    assert_eq!(c.delete("noslash", -1).err, raw::ERR_BAD_ARGUMENTS);
    // Sequential creates validate the path after the suffix is appended.
    let r = c
        .create(&format!("{root}/"), b"", raw::CREATE_SEQUENTIAL)
        .ok();
    assert_eq!(r.dec().string(), format!("{root}/0000000001"));
    // Unknown create flags are BadArguments.
    assert_eq!(
        c.create(&format!("{root}/f"), b"", 9).err,
        raw::ERR_BAD_ARGUMENTS
    );
}

#[test]
fn ttl_and_container_request_validation() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("ttl-args");
    c.create(&root, b"", 0).ok();
    let ttl_body = |path: &str, flags: i32, ttl: i64| {
        Enc::new()
            .string(path)
            .buffer(b"")
            .open_acl()
            .int(flags)
            .long(ttl)
            .finish()
    };
    // createTTL needs a TTL mode (5 or 6) and 0 < ttl.
    for (flags, ttl) in [(1, 1000), (0, 1000), (4, 1000), (5, 0), (5, -1)] {
        let r = c.call(
            raw::OP_CREATE_TTL,
            &ttl_body(&format!("{root}/t{flags}_{ttl}"), flags, ttl),
        );
        assert_eq!(
            r.err,
            raw::ERR_BAD_ARGUMENTS,
            "createTTL flags {flags} ttl {ttl}"
        );
    }
    let r = c
        .call(
            raw::OP_CREATE_TTL,
            &ttl_body(&format!("{root}/t"), 5, 60_000),
        )
        .ok();
    let mut d = r.dec();
    assert_eq!(d.string(), format!("{root}/t"));
    let stat = d.stat();
    assert_eq!(stat.ephemeral_owner, 0, "TTL nodes report ephemeralOwner 0");
    let r = c
        .call(
            raw::OP_CREATE_TTL,
            &ttl_body(&format!("{root}/s-"), 6, 60_000),
        )
        .ok();
    assert_eq!(r.dec().string(), format!("{root}/s-0000000001"));
    // The TTL modes need the TTL opcode.
    assert_eq!(
        c.create(&format!("{root}/x"), b"", raw::CREATE_TTL).err,
        raw::ERR_BAD_ARGUMENTS
    );

    // createContainer replies like create2.
    let body = Enc::new()
        .string(&format!("{root}/c"))
        .buffer(b"")
        .open_acl()
        .int(raw::CREATE_CONTAINER)
        .finish();
    let r = c.call(raw::OP_CREATE_CONTAINER, &body).ok();
    let mut d = r.dec();
    assert_eq!(d.string(), format!("{root}/c"));
    assert_eq!(d.stat().czxid, r.zxid);
}

#[test]
fn unknown_opcode_gets_unimplemented() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("unknown-op");
    c.create(&root, b"", raw::CREATE_EPHEMERAL).ok();
    let r = c.call(999, &[1, 2, 3]);
    assert_eq!(r.err, raw::ERR_UNIMPLEMENTED);
    assert!(r.body.is_empty());
    // Apache ZooKeeper then closes the connection (not the session); a client reconnects.
    let (id, passwd, zxid) = c.disconnect();
    let mut again = Raw::resume(&server.addr, id, &passwd, zxid, max);
    let r = again.exists(&root, false).ok();
    assert_eq!(
        r.dec().stat().ephemeral_owner,
        id,
        "session survived the unknown opcode"
    );
}

/// Checks that a connection to the server still works.
fn assert_server_healthy(server: &TestServer) {
    let (_, max) = server.session_bounds_ms();
    let mut probe = server.raw(max);
    assert_eq!(probe.ping().err, raw::OK);
    assert_eq!(server.four_letter("ruok"), "imok");
}

#[test]
fn truncated_request_closes_connection_only() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut bystander = server.raw(max);
    let mut c = server.raw(max);
    // A frame too short to hold a request header.
    c.send_bytes(&raw::frame(&[0, 0, 1])).unwrap();
    assert!(
        wait_closed(&mut c.stream, CLOSE_WAIT),
        "server kept a connection after a short frame"
    );
    assert_eq!(bystander.ping().err, raw::OK);

    assert_server_healthy(&server);
}

#[test]
fn undecodable_request_body_gets_marshalling_error() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    // A request whose path length runs past the end of the frame: the header is fine, so the
    // server answers that request with MarshallingError and keeps the connection.
    for op in [
        raw::OP_GET_DATA,
        raw::OP_EXISTS,
        raw::OP_CREATE,
        raw::OP_SET_DATA,
        raw::OP_DELETE,
    ] {
        let mut c = server.raw(max);
        let body = Enc::new().int(1000).bytes(b"/x").finish();
        let r = c.call(op, &body);
        assert_eq!(r.err, raw::ERR_MARSHALLING, "op {op}");
        assert!(r.body.is_empty());
        assert_eq!(c.ping().err, raw::OK, "connection unusable after op {op}");
    }
    assert_server_healthy(&server);
}

#[test]
fn garbage_handshake_closes_connection() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut bystander = server.raw(max);
    // A length-prefixed blob that is not a ConnectRequest.
    let mut s = raw::dial(&server.addr);
    std::io::Write::write_all(&mut s, &raw::frame(b"hello, world")).unwrap();
    assert!(wait_closed(&mut s, CLOSE_WAIT));
    // A negative length.
    let mut s = raw::dial(&server.addr);
    std::io::Write::write_all(&mut s, &[0xff, 0xff, 0xff, 0xfe, 1, 2, 3]).unwrap();
    assert!(wait_closed(&mut s, CLOSE_WAIT));
    assert_eq!(bystander.ping().err, raw::OK);
    assert_server_healthy(&server);
}

#[test]
fn oversized_frame_closes_connection() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut bystander = server.raw(max);
    let root = unique_prefix("oversized");
    bystander.create(&root, b"", 0).ok();

    // A frame of exactly jute.maxbuffer (0xfffff) bytes is accepted...
    const MAX_BUFFER: usize = 0xfffff;
    let mut c = server.raw(max);
    let fixed = 4 + 4 + (4 + root.len()) + 4 + 4; // header, path, data length, version
    let data = vec![7u8; MAX_BUFFER - fixed];
    let body = Enc::new().string(&root).buffer(&data).int(-1).finish();
    assert_eq!(8 + body.len(), MAX_BUFFER);
    let r = c.call(raw::OP_SET_DATA, &body).ok();
    assert_eq!(r.dec().stat().data_length as usize, data.len());

    // ...one byte more is refused by closing the connection, before the body is sent.
    let mut c = server.raw(max);
    c.send_bytes(&((MAX_BUFFER + 1) as u32).to_be_bytes())
        .unwrap();
    assert!(
        wait_closed(&mut c.stream, CLOSE_WAIT),
        "oversized frame not refused"
    );
    let mut c = server.raw(max);
    c.send_bytes(&0x7fff_ffffu32.to_be_bytes()).unwrap();
    assert!(
        wait_closed(&mut c.stream, CLOSE_WAIT),
        "huge frame not refused"
    );
    assert_eq!(bystander.ping().err, raw::OK);
    assert_server_healthy(&server);
}

#[test]
fn resume_session_by_id_and_password() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("resume");
    c.create(&root, b"", 0).ok();
    let e = format!("{root}/e");
    c.create(&e, b"", raw::CREATE_EPHEMERAL).ok();
    let id = c.session_id;
    let passwd = c.passwd.clone();

    // Resuming while the old connection is open moves the session and closes the old one.
    let mut second = Raw::resume(&server.addr, id, &passwd, c.last_zxid, max);
    assert!(
        wait_closed(&mut c.stream, CLOSE_WAIT),
        "old connection not closed on reconnect"
    );
    let r = second.exists(&e, false).ok();
    assert_eq!(r.dec().stat().ephemeral_owner, id);

    // And again after a plain disconnect; the ephemeral is still owned by the session.
    let (id2, passwd2, zxid) = second.disconnect();
    assert_eq!((id2, &passwd2), (id, &passwd));
    let mut third = Raw::resume(&server.addr, id, &passwd, zxid, max);
    assert_eq!(
        third.exists(&e, false).ok().dec().stat().ephemeral_owner,
        id
    );
    third
        .create(&format!("{root}/e2"), b"", raw::CREATE_EPHEMERAL)
        .ok();
    let mut other = server.raw(max);
    let mut eph = other
        .call(raw::OP_GET_EPHEMERALS, &Enc::new().string(&root).finish())
        .ok()
        .dec()
        .strings();
    assert!(
        eph.is_empty(),
        "another session's ephemerals leaked: {eph:?}"
    );
    eph = third
        .call(raw::OP_GET_EPHEMERALS, &Enc::new().string(&root).finish())
        .ok()
        .dec()
        .strings();
    eph.sort();
    assert_eq!(eph, vec![e.clone(), format!("{root}/e2")]);
}

#[test]
fn wrong_password_is_refused_with_zero_timeout() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let c = server.raw(max);
    let mut bad = c.passwd.clone();
    bad[0] ^= 0xff;
    let req = ConnectReq {
        protocol_version: 0,
        last_zxid_seen: c.last_zxid,
        timeout_ms: max,
        session_id: c.session_id,
        passwd: bad,
        read_only: Some(false),
    };
    let (mut s, resp) = handshake(&server.addr, &req);
    let resp = resp.expect("a refusal is still a ConnectResponse");
    assert_eq!(resp.timeout_ms, 0);
    assert_eq!(resp.session_id, 0);
    assert_eq!(resp.passwd, vec![0; 16]);
    assert_eq!(resp.frame_len, 37);
    assert!(
        wait_closed(&mut s, CLOSE_WAIT),
        "refused connection left open"
    );

    // The session itself is unharmed.
    let (id, passwd, zxid) = c.disconnect();
    let mut again = Raw::resume(&server.addr, id, &passwd, zxid, max);
    assert_eq!(again.ping().err, raw::OK);
}

#[test]
fn closed_session_cannot_be_resumed() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let mut watcher = server.raw(max);
    let root = unique_prefix("close-session");
    c.create(&root, b"", 0).ok();
    let e = format!("{root}/e");
    c.create(&e, b"", raw::CREATE_EPHEMERAL).ok();
    watcher.sync(&root);
    watcher.exists(&e, true).ok();

    let closed = c.close_session();
    assert_eq!(closed.err, raw::OK);
    assert!(closed.body.is_empty());
    assert!(
        wait_closed(&mut c.stream, CLOSE_WAIT),
        "connection left open after closeSession"
    );
    let ev = watcher
        .next_event(Duration::from_secs(5))
        .expect("no NodeDeleted for the ephemeral");
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (raw::EV_NODE_DELETED, e.as_str())
    );
    assert_eq!(watcher.exists(&e, false).err, raw::ERR_NO_NODE);

    let req = ConnectReq {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: max,
        session_id: c.session_id,
        passwd: c.passwd.clone(),
        read_only: Some(false),
    };
    let (mut s, resp) = handshake(&server.addr, &req);
    let resp = resp.expect("refusal response");
    assert_eq!((resp.timeout_ms, resp.session_id), (0, 0));
    assert!(wait_closed(&mut s, CLOSE_WAIT));
}

#[test]
fn client_ahead_of_server_is_refused() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let c = server.raw(max);
    let req = ConnectReq {
        protocol_version: 0,
        last_zxid_seen: i64::MAX / 2,
        timeout_ms: max,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    let (mut s, resp) = handshake(&server.addr, &req);
    // Apache ZooKeeper closes without any ConnectResponse.
    assert!(
        resp.is_err(),
        "a client that has seen a future zxid got {resp:?}"
    );
    assert!(wait_closed(&mut s, CLOSE_WAIT));
    drop(c);
    assert_server_healthy(&server);
}

#[test]
fn auth_with_unknown_scheme_fails_and_closes() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let r = c.auth("no-such-scheme", b"whatever");
    assert_eq!((r.xid, r.err), (raw::XID_AUTH, raw::ERR_AUTH_FAILED));
    assert!(wait_closed(&mut c.stream, CLOSE_WAIT));

    // A good digest auth is acknowledged on xid -4.
    let mut c = server.raw(max);
    let r = c.auth("digest", b"alice:secret");
    assert_eq!((r.xid, r.err), (raw::XID_AUTH, raw::OK));
    assert!(r.body.is_empty());
    assert_eq!(c.ping().err, raw::OK);
}
