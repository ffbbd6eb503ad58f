//! Tests of the data tree against the behaviour of Apache ZooKeeper 3.8 (see mod.rs).

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::proto::{
    add_watch_mode, keeper_state, perms, watcher_type, AddWatchRequest, CheckVersionRequest,
    ClientInfo, CreateRequest, DeleteRequest, MultiOp, MultiResult, OpCode, PathWatchRequest,
    SetAclRequest, SetDataRequest, SetWatches, WatcherEvent, WatchesRequest,
};

// ------------------------------------------------------------------ helpers

fn id(scheme: &str, id: &str) -> Id {
    Id {
        scheme: scheme.to_string(),
        id: id.to_string(),
    }
}

fn acl_of(perms: i32, scheme: &str, ident: &str) -> Acl {
    Acl {
        perms,
        id: id(scheme, ident),
    }
}

fn open_acl() -> Vec<Acl> {
    world_acl(perms::ALL)
}

fn alice() -> Id {
    id("digest", &acl::digest_id("alice:secret"))
}

fn bob() -> Id {
    id("digest", &acl::digest_id("bob:secret"))
}

fn create_req(op: OpCode, path: &str, data: &str, flags: i32, ttl: i64, acl: Vec<Acl>) -> Request {
    Request::Create(
        op,
        CreateRequest {
            path: path.to_string(),
            data: Bytes::from(data.to_string()),
            acl,
            flags,
            ttl,
        },
    )
}

fn multi_create(op: OpCode, path: &str, flags: i32, ttl: i64) -> MultiOp {
    MultiOp::Create(
        op,
        CreateRequest {
            path: path.to_string(),
            data: Bytes::new(),
            acl: open_acl(),
            flags,
            ttl,
        },
    )
}

fn delete_req(path: &str, version: i32) -> Request {
    Request::Delete(DeleteRequest {
        path: path.to_string(),
        version,
    })
}

fn set_data_req(path: &str, data: &str, version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.to_string(),
        data: Bytes::from(data.to_string()),
        version,
    })
}

fn set_acl_req(path: &str, acl: Vec<Acl>, version: i32) -> Request {
    Request::SetAcl(SetAclRequest {
        path: path.to_string(),
        acl,
        version,
    })
}

fn check_req(path: &str, version: i32) -> Request {
    Request::Check(CheckVersionRequest {
        path: path.to_string(),
        version,
    })
}

fn pw(path: &str, watch: bool) -> PathWatchRequest {
    PathWatchRequest {
        path: path.to_string(),
        watch,
    }
}

fn trig(path: &str, event: EventType) -> WatchTrigger {
    WatchTrigger {
        path: Arc::from(path),
        event,
    }
}

/// A tree plus a clock: every write gets the next zxid and a later time, and every
/// (header, txn) is kept so that a replay can be compared.
struct Harness {
    tree: DataTree,
    zxid: i64,
    time_ms: i64,
    session_id: i64,
    auth: Vec<Id>,
    log: Vec<(TxnHeader, Txn)>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            tree: DataTree::new(),
            zxid: 0x100,
            time_ms: 1_000_000,
            session_id: 0x11,
            auth: vec![id("ip", "127.0.0.1")],
            log: Vec::new(),
        }
    }

    fn next_ctx(&mut self) -> (i64, i64) {
        self.zxid += 1;
        self.time_ms += 10;
        (self.zxid, self.time_ms)
    }

    fn header(&self) -> TxnHeader {
        TxnHeader {
            session_id: self.session_id,
            zxid: self.zxid,
            time_ms: self.time_ms,
            ..Default::default()
        }
    }

    fn write(&mut self, req: Request) -> WriteOutcome {
        let (zxid, time_ms) = self.next_ctx();
        let auth = self.auth.clone();
        let ctx = TxnContext {
            session_id: self.session_id,
            auth: &auth,
            zxid,
            time_ms,
            enforce_quota: false,
            sasl_acl: false,
        };
        let out = self.tree.process_write(&req, &ctx);
        assert_eq!(out.triggers.len(), out.trigger_acls.len());
        assert_eq!(self.tree.last_zxid(), zxid, "every write consumes its zxid");
        self.log.push((self.header(), out.txn.clone()));
        out
    }

    fn close_session(&mut self, session_id: i64) -> WriteOutcome {
        let (zxid, time_ms) = self.next_ctx();
        let ctx = TxnContext {
            session_id,
            auth: &[],
            zxid,
            time_ms,
            enforce_quota: false,
            sasl_acl: false,
        };
        let out = self.tree.close_session(&ctx);
        let hdr = TxnHeader {
            session_id,
            zxid,
            time_ms,
            ..Default::default()
        };
        self.log.push((hdr, out.txn.clone()));
        out
    }

    fn create_session(&mut self, session_id: i64) -> WriteOutcome {
        let (zxid, time_ms) = self.next_ctx();
        let ctx = TxnContext {
            session_id,
            auth: &[],
            zxid,
            time_ms,
            enforce_quota: false,
            sasl_acl: false,
        };
        let out = self.tree.create_session(&ctx, 30_000);
        let hdr = TxnHeader {
            session_id,
            zxid,
            time_ms,
            ..Default::default()
        };
        self.log.push((hdr, out.txn.clone()));
        out
    }

    /// create (op 1), world ACL, flags as given.
    fn create(&mut self, path: &str, data: &str, flags: i32) -> Result<Response, ErrorCode> {
        self.write(create_req(
            OpCode::Create,
            path,
            data,
            flags,
            -1,
            open_acl(),
        ))
        .reply
    }

    fn create_ok(&mut self, path: &str) -> String {
        match self.create(path, "", 0) {
            Ok(Response::Create(actual)) => actual,
            other => panic!("create {path}: {other:?}"),
        }
    }

    fn stat(&self, path: &str) -> Stat {
        self.tree
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing"))
            .stat()
    }

    fn read(&self, req: Request) -> Result<Response, ErrorCode> {
        let mut watches = WatchTable::new();
        let session = SessionView {
            session_id: self.session_id,
            auth: Arc::new(self.auth.clone()),
        };
        serve_read(&self.tree, &req, &session, 1, &mut watches)
    }

    /// Rebuilds the tree from the log and checks it equals the live one.
    fn assert_replay_matches(&self) {
        let mut replayed = DataTree::new();
        for (hdr, txn) in &self.log {
            replayed.apply_txn(hdr, txn);
        }
        assert!(replayed == self.tree, "replay differs from the live tree");
        assert_eq!(self.tree.digest(), self.tree.compute_digest());
    }
}

fn ok_create2(out: &WriteOutcome) -> (String, Stat) {
    match &out.reply {
        Ok(Response::Create2(path, stat)) => (path.clone(), *stat),
        other => panic!("expected Create2, got {other:?}"),
    }
}

// ------------------------------------------------------------------ fresh tree

#[test]
fn fresh_tree_is_zookeeper_standalone() {
    let tree = DataTree::new();
    let root = tree.get("/").unwrap().stat();
    // Every stored field is 0, so the visible cversion is 0*2 - numChildren.
    assert_eq!(
        root,
        Stat {
            cversion: -1,
            num_children: 1,
            ..Stat::default()
        }
    );
    let zk = tree.get("/zookeeper").unwrap().stat();
    assert_eq!(zk.cversion, -2);
    assert_eq!(zk.num_children, 2);
    assert_eq!(
        tree.get("/zookeeper/quota").unwrap().stat(),
        Stat::default()
    );
    let config = tree.get("/zookeeper/config").unwrap();
    assert_eq!(
        config.stat(),
        Stat {
            aversion: -1,
            ..Stat::default()
        }
    );
    assert_eq!(*config.acl, world_acl(perms::READ));
    assert_eq!(*tree.get("/").unwrap().acl, open_acl());
    assert_eq!(*tree.get("/zookeeper").unwrap().acl, open_acl());
    assert_eq!(*tree.get("/zookeeper/quota").unwrap().acl, open_acl());
    assert_eq!(tree.node_count(), 4);
    assert_eq!(tree.zk_node_count(), 5);
    assert_eq!(tree.last_zxid(), 0);
    assert_eq!(tree.all_children_number("/"), 3);
    assert_eq!(tree.all_children_number("/zookeeper"), 2);
    // ZooKeeper aliases the root as "".
    assert_eq!(tree.get("").unwrap().stat(), root);
    assert!(tree.ttl_enabled());
}

#[test]
fn znode_stat_counts_deletes_in_cversion_and_hides_non_session_owners() {
    let leaf = || Znode::new(Meta::new(Arc::new(open_acl()), 1, 1, 0), b"");
    let mut node = Znode::new(Meta::new(Arc::new(open_acl()), 7, 9, 0), b"abc");
    node.cversion = 5;
    node.children.insert("y", leaf());
    node.children.insert("x", leaf());
    assert_eq!(node.children.iter().collect::<Vec<_>>(), ["x", "y"]);
    let stat = node.stat();
    assert_eq!(stat.cversion, 8);
    assert_eq!(stat.num_children, 2);
    assert_eq!(stat.data_length, 3);
    assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (7, 7, 7));
    assert_eq!((stat.ctime, stat.mtime), (9, 9));

    node.ephemeral_owner = 0x1234;
    assert_eq!(node.stat().ephemeral_owner, 0x1234);
    node.ephemeral_owner = CONTAINER_EPHEMERAL_OWNER;
    assert_eq!(node.stat().ephemeral_owner, 0);
    node.ephemeral_owner = ttl_owner(5000).unwrap();
    assert_eq!(node.stat().ephemeral_owner, 0);
}

#[test]
fn ephemeral_owner_kinds() {
    assert_eq!(EphemeralKind::of_owner(0), EphemeralKind::Persistent);
    assert_eq!(EphemeralKind::of_owner(5), EphemeralKind::Session(5));
    assert_eq!(EphemeralKind::of_owner(-5), EphemeralKind::Session(-5));
    assert_eq!(
        EphemeralKind::of_owner(CONTAINER_EPHEMERAL_OWNER),
        EphemeralKind::Container
    );
    assert_eq!(ttl_owner(1), Some(0xFF00_0000_0000_0001u64 as i64));
    assert_eq!(
        EphemeralKind::of_owner(ttl_owner(MAX_TTL_MS).unwrap()),
        EphemeralKind::Ttl(MAX_TTL_MS)
    );
    assert_eq!(ttl_owner(0), None);
    assert_eq!(ttl_owner(-1), None);
    assert_eq!(ttl_owner(MAX_TTL_MS + 1), None);
}

// ------------------------------------------------------------------ create

#[test]
fn create_sets_stats_and_parent_and_fires_in_order() {
    let mut h = Harness::new();
    let out = h.write(create_req(OpCode::Create, "/a", "hi", 0, -1, open_acl()));
    let (zxid, time) = (h.zxid, h.time_ms);
    assert_eq!(out.reply, Ok(Response::Create("/a".to_string())));
    assert_eq!(out.header_err, 0);
    assert_eq!(
        out.txn,
        Txn::Create {
            path: "/a".to_string(),
            data: Bytes::from_static(b"hi"),
            acl: open_acl(),
            ephemeral_owner: 0,
            parent_cversion: 1,
        }
    );
    assert_eq!(
        out.triggers,
        vec![
            trig("/a", EventType::NodeCreated),
            trig("/", EventType::NodeChildrenChanged)
        ]
    );
    assert_eq!(*out.trigger_acls[0], open_acl());
    assert_eq!(
        h.stat("/a"),
        Stat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 2,
            num_children: 0,
        }
    );
    let root = h.stat("/");
    assert_eq!(root.pzxid, zxid);
    assert_eq!(root.num_children, 2);
    assert_eq!(root.cversion, 0, "stored 1, two children: 2*1-2");
    assert_eq!(root.mzxid, 0, "a child create leaves the parent's mzxid");
    assert_eq!(h.tree.get("/").unwrap().cversion, 1);

    // create2 returns the stat of the new node.
    let out = h.write(create_req(
        OpCode::Create2,
        "/a/b",
        "xyz",
        0,
        -1,
        open_acl(),
    ));
    let (path, stat) = ok_create2(&out);
    assert_eq!(path, "/a/b");
    assert_eq!(stat, h.stat("/a/b"));
    assert_eq!(stat.data_length, 3);
    let a = h.stat("/a");
    assert_eq!((a.cversion, a.num_children, a.pzxid), (1, 1, h.zxid));
    assert_eq!(a.mzxid, zxid);
    h.assert_replay_matches();
}

#[test]
fn sequential_names_come_from_the_stored_cversion() {
    let mut h = Harness::new();
    h.create_ok("/p");
    assert_eq!(
        h.create("/p/s-", "", 2),
        Ok(Response::Create("/p/s-0000000000".into()))
    );
    assert_eq!(
        h.create("/p/s-", "", 2),
        Ok(Response::Create("/p/s-0000000001".into()))
    );
    // A plain create counts too.
    h.create_ok("/p/plain");
    assert_eq!(
        h.write(delete_req("/p/s-0000000000", -1)).reply,
        Ok(Response::Empty)
    );
    // Deletes do not move the counter: the next suffix is 3, not 2 or 4.
    assert_eq!(
        h.create("/p/s-", "", 2),
        Ok(Response::Create("/p/s-0000000003".into()))
    );
    let p = h.stat("/p");
    assert_eq!(p.num_children, 3);
    // 4 creates + 1 delete.
    assert_eq!(p.cversion, 5);
    assert_eq!(h.tree.get("/p").unwrap().cversion, 4);
    // An empty name before the suffix: "/p/" is refused alone but fine with a suffix.
    assert_eq!(h.create("/p/", "", 0), Err(ErrorCode::BadArguments));
    assert_eq!(
        h.create("/p/", "", 2),
        Ok(Response::Create("/p/0000000004".into()))
    );
    // Ephemeral sequential.
    assert_eq!(
        h.create("/p/e", "", 3),
        Ok(Response::Create("/p/e0000000005".into()))
    );
    // Sequential at the root.
    assert_eq!(
        h.create("/", "", 2),
        Ok(Response::Create("/0000000001".into()))
    );
    h.assert_replay_matches();
}

#[test]
fn sequential_suffix_formats_like_java_percent_010d() {
    let mut h = Harness::new();
    h.create_ok("/p");
    // A parent whose counter is about to wrap (as after 2^31 creates).
    let hdr = TxnHeader {
        session_id: 1,
        zxid: 0x500,
        time_ms: 5,
        ..Default::default()
    };
    h.tree.apply_txn(
        &hdr,
        &Txn::Create {
            path: "/p/x".to_string(),
            data: Bytes::new(),
            acl: open_acl(),
            ephemeral_owner: 0,
            parent_cversion: i32::MAX,
        },
    );
    h.zxid = 0x500;
    assert_eq!(
        h.create("/p/s", "", 2),
        Ok(Response::Create("/p/s2147483647".into()))
    );
    // The next cversion wraps to i32::MIN, which is not greater than i32::MAX: DataTree
    // leaves the parent's cversion (and pzxid) as they are, so ZooKeeper hands out the same
    // suffix again and the create fails with NodeExists, forever.
    let p = h.tree.get("/p").unwrap();
    assert_eq!(p.cversion, i32::MAX);
    assert_ne!(p.pzxid, h.zxid);
    assert_eq!(h.create("/p/s", "", 2), Err(ErrorCode::NodeExists));
    // Negative suffixes print as Java's %010d does.
    let mut n = Harness::new();
    n.create_ok("/n");
    n.tree.apply_txn(
        &TxnHeader { zxid: 0x700, ..hdr },
        &Txn::Create {
            path: "/n/x".to_string(),
            data: Bytes::new(),
            acl: open_acl(),
            ephemeral_owner: 0,
            parent_cversion: -1,
        },
    );
    n.tree.update("/n", |node| node.cversion = -42).unwrap();
    n.zxid = 0x700;
    assert_eq!(
        n.create("/n/s", "", 2),
        Ok(Response::Create("/n/s-000000042".into()))
    );
    let mut h2 = Harness::new();
    h2.create_ok("/q");
    h2.tree.apply_txn(
        &TxnHeader { zxid: 0x600, ..hdr },
        &Txn::Create {
            path: "/q/x".to_string(),
            data: Bytes::new(),
            acl: open_acl(),
            ephemeral_owner: 0,
            parent_cversion: -6,
        },
    );
    // A create whose txn cversion does not raise the parent's leaves cversion and pzxid,
    // and still creates the child.
    let q = h2.tree.get("/q").unwrap();
    assert_eq!(q.cversion, 0);
    assert_eq!(q.pzxid, h2.zxid);
    assert_eq!(q.children.len(), 1);
    assert!(h2.tree.get("/q/x").is_some());
}

#[test]
fn create_modes_give_owners_and_reply_shapes() {
    let mut h = Harness::new();
    h.session_id = 0x77;
    // Ephemeral (op 1).
    assert_eq!(h.create("/e", "", 1), Ok(Response::Create("/e".into())));
    assert_eq!(h.stat("/e").ephemeral_owner, 0x77);
    assert_eq!(h.tree.ephemerals_of(0x77), vec!["/e".to_string()]);

    // Container: createContainer, reply Create2, stat shows owner 0.
    let out = h.write(create_req(
        OpCode::CreateContainer,
        "/c",
        "",
        4,
        -1,
        open_acl(),
    ));
    let (path, stat) = ok_create2(&out);
    assert_eq!(path, "/c");
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(
        h.tree.get("/c").unwrap().ephemeral_owner,
        CONTAINER_EPHEMERAL_OWNER
    );
    assert!(
        matches!(out.txn, Txn::Create { ephemeral_owner, .. } if ephemeral_owner == CONTAINER_EPHEMERAL_OWNER)
    );

    // TTL: createTTL, reply Create2, stat shows owner 0, stored owner encodes the TTL.
    let out = h.write(create_req(OpCode::CreateTtl, "/t", "", 5, 5000, open_acl()));
    let (_, stat) = ok_create2(&out);
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(h.tree.get("/t").unwrap().kind(), EphemeralKind::Ttl(5000));
    let out = h.write(create_req(OpCode::CreateTtl, "/t/s", "", 6, 7, open_acl()));
    assert_eq!(ok_create2(&out).0, "/t/s0000000000");
    assert_eq!(
        h.tree.get("/t/s0000000000").unwrap().kind(),
        EphemeralKind::Ttl(7)
    );

    // createContainer decides the kind whatever the flags say...
    let out = h.write(create_req(
        OpCode::CreateContainer,
        "/c2",
        "",
        0,
        -1,
        open_acl(),
    ));
    assert!(out.reply.is_ok());
    assert_eq!(h.tree.get("/c2").unwrap().kind(), EphemeralKind::Container);
    // ...and create / create2 with the container flag make a persistent node, as
    // ZooKeeper's DataTree does with a CreateTxn.
    assert_eq!(
        h.create("/notc", "", 4),
        Ok(Response::Create("/notc".into()))
    );
    assert_eq!(
        h.tree.get("/notc").unwrap().kind(),
        EphemeralKind::Persistent
    );
    let out = h.write(create_req(OpCode::Create2, "/notc2", "", 4, -1, open_acl()));
    assert_eq!(ok_create2(&out).1.ephemeral_owner, 0);
    assert_eq!(
        h.tree.get("/notc2").unwrap().kind(),
        EphemeralKind::Persistent
    );
    // Container and TTL nodes may have children; ephemerals may not.
    assert!(h.create("/c/child", "", 0).is_ok());
    assert!(h.create("/t/child", "", 0).is_ok());
    assert_eq!(
        h.create("/e/child", "", 0),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    h.assert_replay_matches();
}

#[test]
fn create_errors_in_zookeeper_order() {
    let mut h = Harness::new();
    h.create_ok("/a");
    // Unknown flags first of all.
    assert_eq!(h.create("/a", "", 7), Err(ErrorCode::BadArguments));
    assert_eq!(h.create("/a", "", -1), Err(ErrorCode::BadArguments));
    // TTL rules.
    let ttl = |h: &mut Harness, op, flags, ttl| {
        h.write(create_req(op, "/ttl", "", flags, ttl, open_acl()))
            .reply
    };
    assert_eq!(
        ttl(&mut h, OpCode::CreateTtl, 5, 0),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        ttl(&mut h, OpCode::CreateTtl, 5, -1),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        ttl(&mut h, OpCode::CreateTtl, 5, MAX_TTL_MS + 1),
        Err(ErrorCode::BadArguments)
    );
    // A TTL with a non-TTL mode.
    assert_eq!(
        ttl(&mut h, OpCode::CreateTtl, 0, 100),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        ttl(&mut h, OpCode::CreateTtl, 0, -1),
        Err(ErrorCode::BadArguments)
    );
    // A TTL mode under create / create2 (no TTL on the wire).
    assert_eq!(
        ttl(&mut h, OpCode::Create, 5, 100),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        ttl(&mut h, OpCode::Create2, 6, 100),
        Err(ErrorCode::BadArguments)
    );
    assert!(ttl(&mut h, OpCode::CreateTtl, 5, MAX_TTL_MS).is_ok());
    // With extended types off (ZooKeeper's default), TTL modes are Unimplemented, before
    // the TTL is even looked at.
    h.tree.set_ttl_enabled(false);
    assert_eq!(
        ttl(&mut h, OpCode::CreateTtl, 5, 100),
        Err(ErrorCode::Unimplemented)
    );
    assert_eq!(
        ttl(&mut h, OpCode::CreateTtl, 6, 0),
        Err(ErrorCode::Unimplemented)
    );
    h.tree.set_ttl_enabled(true);

    // An ephemeral needs a session; checked before the path.
    h.session_id = 0;
    assert_eq!(h.create("/eph", "", 1), Err(ErrorCode::SessionExpired));
    assert_eq!(h.create("bad", "", 3), Err(ErrorCode::SessionExpired));
    assert!(h.create("/persistent-ok", "", 0).is_ok());
    h.session_id = 0x11;

    // Path shape: no slash, NUL.
    assert_eq!(h.create("a", "", 0), Err(ErrorCode::BadArguments));
    assert_eq!(h.create("", "", 0), Err(ErrorCode::BadArguments));
    assert_eq!(h.create("/a/b\0", "", 0), Err(ErrorCode::BadArguments));
    // ACL before the parent's existence.
    let out = h.write(create_req(OpCode::Create, "/nope/x", "", 0, -1, vec![]));
    assert_eq!(out.reply, Err(ErrorCode::InvalidAcl));
    let out = h.write(create_req(
        OpCode::Create,
        "/nope/x",
        "",
        0,
        -1,
        vec![acl_of(perms::ALL, "world", "someone")],
    ));
    assert_eq!(out.reply, Err(ErrorCode::InvalidAcl));
    // "auth" with no authenticated id.
    let out = h.write(create_req(
        OpCode::Create,
        "/a/x",
        "",
        0,
        -1,
        vec![acl_of(perms::ALL, "auth", "")],
    ));
    assert_eq!(out.reply, Err(ErrorCode::InvalidAcl));
    // Missing parent.
    assert_eq!(h.create("/nope/x", "", 0), Err(ErrorCode::NoNode));
    // "/a//b": the parent is "/a/", which does not exist: NoNode, not BadArguments.
    assert_eq!(h.create("/a//b", "", 0), Err(ErrorCode::NoNode));
    // Full path validation comes after the parent: "/a/." and "/a/" are BadArguments.
    assert_eq!(h.create("/a/.", "", 0), Err(ErrorCode::BadArguments));
    assert_eq!(h.create("/a/..", "", 0), Err(ErrorCode::BadArguments));
    assert_eq!(h.create("/a/\u{1}", "", 0), Err(ErrorCode::BadArguments));
    // Exists.
    assert_eq!(h.create("/a", "", 0), Err(ErrorCode::NodeExists));
    assert_eq!(h.create("/", "", 0), Err(ErrorCode::NodeExists));
    assert_eq!(h.create("/zookeeper", "", 0), Err(ErrorCode::NodeExists));
    // /zookeeper is open, /zookeeper/config read-only.
    assert!(h.create("/zookeeper/mine", "", 0).is_ok());
    assert_eq!(
        h.create("/zookeeper/config/x", "", 0),
        Err(ErrorCode::NoAuth)
    );
    h.assert_replay_matches();
}

#[test]
fn create_checks_create_permission_on_the_parent_before_the_name() {
    let mut h = Harness::new();
    let no_create = vec![acl_of(perms::ALL & !perms::CREATE, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/locked", "", 0, -1, no_create));
    h.write(create_req(
        OpCode::Create,
        "/locked2",
        "",
        0,
        -1,
        open_acl(),
    ));
    assert_eq!(h.create("/locked/x", "", 0), Err(ErrorCode::NoAuth));
    // NoAuth wins over an invalid name and over NodeExists-to-be.
    assert_eq!(h.create("/locked/.", "", 0), Err(ErrorCode::NoAuth));
    // Digest: only alice may create under /mine.
    h.write(create_req(
        OpCode::Create,
        "/mine",
        "",
        0,
        -1,
        vec![
            acl_of(perms::ALL, "digest", &alice().id),
            acl_of(perms::READ, "world", "anyone"),
        ],
    ));
    assert_eq!(h.create("/mine/x", "", 0), Err(ErrorCode::NoAuth));
    h.auth.push(alice());
    assert!(h.create("/mine/x", "", 0).is_ok());
    // super passes everything.
    h.auth = vec![acl::super_id()];
    assert!(h.create("/locked/y", "", 0).is_ok());
    // A failed create consumes its zxid, changes nothing else and fires nothing.
    h.auth = vec![];
    let before = h.tree.clone();
    let out = h.write(create_req(
        OpCode::Create2,
        "/locked/z",
        "",
        0,
        -1,
        open_acl(),
    ));
    assert_eq!(out.reply, Err(ErrorCode::NoAuth));
    assert_eq!(out.header_err, ErrorCode::NoAuth.code());
    assert_eq!(out.txn, Txn::Error(ErrorCode::NoAuth));
    assert!(out.triggers.is_empty());
    assert_eq!(h.tree.last_zxid(), h.zxid);
    assert!(h.tree.root == before.root);
    h.assert_replay_matches();
}

#[test]
fn create_with_auth_acl_expands_to_the_session_digest() {
    let mut h = Harness::new();
    h.auth.push(alice());
    let out = h.write(create_req(
        OpCode::Create,
        "/x",
        "",
        0,
        -1,
        vec![acl_of(perms::ALL, "auth", "")],
    ));
    assert!(out.reply.is_ok());
    assert_eq!(
        *h.tree.get("/x").unwrap().acl,
        vec![acl_of(perms::ALL, "digest", &alice().id)]
    );
}

// ------------------------------------------------------------------ delete

#[test]
fn delete_updates_parent_pzxid_but_not_its_stored_cversion() {
    let mut h = Harness::new();
    h.create_ok("/a");
    h.create_ok("/a/b");
    let created = h.zxid;
    let out = h.write(delete_req("/a/b", 0));
    assert_eq!(out.reply, Ok(Response::Empty));
    assert_eq!(
        out.txn,
        Txn::Delete {
            path: "/a/b".into()
        }
    );
    assert_eq!(
        out.triggers,
        vec![
            trig("/a/b", EventType::NodeDeleted),
            trig("/a", EventType::NodeChildrenChanged)
        ]
    );
    let a = h.stat("/a");
    assert_eq!(a.pzxid, h.zxid);
    assert!(a.pzxid > created);
    assert_eq!(a.num_children, 0);
    assert_eq!(a.cversion, 2, "one create and one delete");
    assert_eq!(h.tree.get("/a").unwrap().cversion, 1);
    assert!(h.tree.get("/a/b").is_none());
    // At the root: the trigger names "/".
    let out = h.write(delete_req("/a", -1));
    assert_eq!(out.triggers[1], trig("/", EventType::NodeChildrenChanged));
    h.assert_replay_matches();
}

#[test]
fn delete_errors_in_zookeeper_order() {
    let mut h = Harness::new();
    h.create_ok("/a");
    h.create_ok("/a/b");
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(
            h.write(delete_req(special, -1)).reply,
            Err(ErrorCode::BadArguments)
        );
    }
    assert_eq!(
        h.write(delete_req("a", -1)).reply,
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        h.write(delete_req("", -1)).reply,
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        h.write(delete_req("/a\0", -1)).reply,
        Err(ErrorCode::BadArguments)
    );
    // Missing parent, then missing node; delete does not validate the rest of the path.
    assert_eq!(
        h.write(delete_req("/x/y", -1)).reply,
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        h.write(delete_req("/a/c", -1)).reply,
        Err(ErrorCode::NoNode)
    );
    assert_eq!(h.write(delete_req("/a/", -1)).reply, Err(ErrorCode::NoNode));
    // BadVersion before NotEmpty.
    assert_eq!(
        h.write(delete_req("/a", 5)).reply,
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(h.write(delete_req("/a", 0)).reply, Err(ErrorCode::NotEmpty));
    assert_eq!(
        h.write(delete_req("/a", -1)).reply,
        Err(ErrorCode::NotEmpty)
    );
    // DELETE is checked on the parent, before the node's existence.
    let no_delete = vec![acl_of(perms::ALL & !perms::DELETE, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/nd", "", 0, -1, no_delete));
    h.create_ok("/nd/c");
    assert_eq!(
        h.write(delete_req("/nd/c", -1)).reply,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        h.write(delete_req("/nd/missing", -1)).reply,
        Err(ErrorCode::NoAuth)
    );
    // The node's own ACL does not matter.
    let nothing = vec![acl_of(0, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/a/locked", "", 0, -1, nothing));
    assert_eq!(
        h.write(delete_req("/a/locked", -1)).reply,
        Ok(Response::Empty)
    );
    // Nodes under /zookeeper other than the special ones can go.
    h.create_ok("/zookeeper/x");
    assert_eq!(
        h.write(delete_req("/zookeeper/x", -1)).reply,
        Ok(Response::Empty)
    );
    h.assert_replay_matches();
}

#[test]
fn delete_container_rules() {
    let mut h = Harness::new();
    h.session_id = 0x42;
    let no_delete = vec![acl_of(perms::ALL & !perms::DELETE, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/p", "", 0, -1, no_delete));
    h.write(create_req(
        OpCode::CreateContainer,
        "/p/c",
        "",
        4,
        -1,
        open_acl(),
    ));
    h.create_ok("/p/c/child");
    h.create_ok("/p/persistent");
    h.create("/p/eph", "", 1).unwrap();
    let dc = |h: &mut Harness, path: &str| h.write(Request::DeleteContainer(path.into())).reply;
    assert_eq!(dc(&mut h, "/p/c"), Err(ErrorCode::NotEmpty));
    // NotEmpty before the ephemeral check; a session ephemeral answers BadVersion.
    assert_eq!(dc(&mut h, "/p/eph"), Err(ErrorCode::BadVersion));
    assert_eq!(dc(&mut h, "/p/missing"), Err(ErrorCode::NoNode));
    assert_eq!(dc(&mut h, "/zookeeper"), Err(ErrorCode::BadArguments));
    assert_eq!(dc(&mut h, "nope"), Err(ErrorCode::BadArguments));
    assert_eq!(
        h.write(delete_req("/p/c/child", -1)).reply,
        Ok(Response::Empty)
    );
    // No ACL check (the parent denies DELETE), no session needed.
    h.session_id = 0;
    let out = h.write(Request::DeleteContainer("/p/c".into()));
    assert_eq!(out.reply, Ok(Response::Empty));
    assert_eq!(
        out.txn,
        Txn::Delete {
            path: "/p/c".into()
        }
    );
    assert_eq!(
        out.triggers,
        vec![
            trig("/p/c", EventType::NodeDeleted),
            trig("/p", EventType::NodeChildrenChanged)
        ]
    );
    // ZooKeeper only refuses session ephemerals: a persistent node goes too.
    assert_eq!(dc(&mut h, "/p/persistent"), Ok(Response::Empty));
    h.assert_replay_matches();
}

// ------------------------------------------------------------------ setData, setACL, check

#[test]
fn set_data_updates_stat_and_fires() {
    let mut h = Harness::new();
    h.write(create_req(OpCode::Create, "/a", "one", 0, -1, open_acl()));
    let created = h.stat("/a");
    let out = h.write(set_data_req("/a", "second", 0));
    let stat = match out.reply {
        Ok(Response::Stat(stat)) => stat,
        other => panic!("{other:?}"),
    };
    assert_eq!(stat, h.stat("/a"));
    assert_eq!(stat.version, 1);
    assert_eq!(stat.mzxid, h.zxid);
    assert_eq!(stat.mtime, h.time_ms);
    assert_eq!(stat.data_length, 6);
    assert_eq!(
        (stat.czxid, stat.ctime, stat.pzxid),
        (created.czxid, created.ctime, created.pzxid)
    );
    assert_eq!(
        out.txn,
        Txn::SetData {
            path: "/a".into(),
            data: Bytes::from_static(b"second"),
            version: 1
        }
    );
    assert_eq!(out.triggers, vec![trig("/a", EventType::NodeDataChanged)]);
    assert_eq!(h.tree.get("/a").unwrap().data(), b"second");
    // The parent is untouched.
    assert_eq!(h.stat("/").mzxid, 0);
    // -1 matches any version.
    assert!(h.write(set_data_req("/a", "", -1)).reply.is_ok());
    assert_eq!(h.stat("/a").version, 2);
    assert_eq!(h.stat("/a").data_length, 0);
    // Errors: path, node, WRITE, version.
    assert_eq!(
        h.write(set_data_req("/a/", "", -1)).reply,
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        h.write(set_data_req("a", "", -1)).reply,
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        h.write(set_data_req("/b", "", -1)).reply,
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        h.write(set_data_req("/a", "", 7)).reply,
        Err(ErrorCode::BadVersion)
    );
    let read_only = vec![acl_of(perms::READ, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/ro", "", 0, -1, read_only));
    // NoAuth before BadVersion.
    assert_eq!(
        h.write(set_data_req("/ro", "", 7)).reply,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        h.write(set_data_req("/zookeeper/config", "x", -1)).reply,
        Err(ErrorCode::NoAuth)
    );
    assert!(h.write(set_data_req("/zookeeper", "x", -1)).reply.is_ok());
    h.assert_replay_matches();
}

#[test]
fn set_acl_bumps_aversion_only() {
    let mut h = Harness::new();
    h.create_ok("/a");
    let before = h.stat("/a");
    let new_acl = vec![acl_of(perms::READ | perms::ADMIN, "world", "anyone")];
    let out = h.write(set_acl_req("/a", new_acl.clone(), 0));
    let stat = match out.reply {
        Ok(Response::Stat(stat)) => stat,
        other => panic!("{other:?}"),
    };
    assert_eq!(stat.aversion, 1);
    assert_eq!(stat.mzxid, before.mzxid, "setACL leaves mzxid");
    assert_eq!(stat.version, 0);
    assert!(out.triggers.is_empty(), "setACL fires nothing");
    assert_eq!(
        out.txn,
        Txn::SetAcl {
            path: "/a".into(),
            acl: new_acl.clone(),
            version: 1
        }
    );
    assert_eq!(*h.tree.get("/a").unwrap().acl, new_acl);
    // Version is the aversion.
    assert_eq!(
        h.write(set_acl_req("/a", open_acl(), 0)).reply,
        Err(ErrorCode::BadVersion)
    );
    assert!(h.write(set_acl_req("/a", open_acl(), 1)).reply.is_ok());
    assert_eq!(h.stat("/a").aversion, 2);
    // Errors: path, then ACL (before existence), node, ADMIN, version.
    assert_eq!(
        h.write(set_acl_req("/a/", open_acl(), -1)).reply,
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        h.write(set_acl_req("/none", vec![], -1)).reply,
        Err(ErrorCode::InvalidAcl)
    );
    assert_eq!(
        h.write(set_acl_req("/none", open_acl(), -1)).reply,
        Err(ErrorCode::NoNode)
    );
    let no_admin = vec![acl_of(perms::ALL & !perms::ADMIN, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/na", "", 0, -1, no_admin));
    assert_eq!(
        h.write(set_acl_req("/na", open_acl(), 9)).reply,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        h.write(set_acl_req("/zookeeper/config", open_acl(), -1))
            .reply,
        Err(ErrorCode::NoAuth)
    );
    h.assert_replay_matches();
}

#[test]
fn check_op() {
    let mut h = Harness::new();
    h.create_ok("/a");
    h.write(set_data_req("/a", "x", -1));
    let out = h.write(check_req("/a", 1));
    assert_eq!(out.reply, Ok(Response::Empty));
    assert_eq!(
        out.txn,
        Txn::Check {
            path: "/a".into(),
            version: 2
        }
    );
    assert!(out.triggers.is_empty());
    assert!(h.write(check_req("/a", -1)).reply.is_ok());
    assert_eq!(
        h.write(check_req("/a", 0)).reply,
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(h.write(check_req("/b", 0)).reply, Err(ErrorCode::NoNode));
    assert_eq!(
        h.write(check_req("/a/", 0)).reply,
        Err(ErrorCode::BadArguments)
    );
    let no_read = vec![acl_of(perms::ALL & !perms::READ, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/nr", "", 0, -1, no_read));
    assert_eq!(h.write(check_req("/nr", 5)).reply, Err(ErrorCode::NoAuth));
    h.assert_replay_matches();
}

#[test]
fn non_write_requests_are_refused() {
    let mut h = Harness::new();
    let out = h.write(Request::GetData(pw("/", false)));
    assert_eq!(out.reply, Err(ErrorCode::Unimplemented));
    assert_eq!(out.txn, Txn::Error(ErrorCode::Unimplemented));
    let out = h.write(Request::Reconfig(crate::proto::ReconfigRequest {
        joining_servers: String::new(),
        leaving_servers: String::new(),
        new_members: String::new(),
        cur_config_id: -1,
    }));
    assert_eq!(out.reply, Err(ErrorCode::ReconfigDisabled));
    assert_eq!(out.txn, Txn::Error(ErrorCode::ReconfigDisabled));
    let out = h.write(create_req(OpCode::Delete, "/x", "", 0, -1, open_acl()));
    assert_eq!(out.reply, Err(ErrorCode::Unimplemented));
    assert!(h.tree.get("/x").is_none());
}

/// Many children under one parent, with a version kept after every write (as the shards
/// keep them): each write must stay cheap (O(log n)), never copy the children.
#[test]
fn writes_stay_cheap_with_versions_kept() {
    let mut h = Harness::new();
    h.create_ok("/big");
    let mut versions = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..20_000 {
        h.create_ok(&format!("/big/n{i}"));
        if i % 100 == 0 {
            versions.push(h.tree.clone());
        }
    }
    assert_eq!(h.stat("/big").num_children, 20_000);
    assert_eq!(versions[1].get("/big").unwrap().children.len(), 101);
    // Generous bound for a debug build; a copy of the children per write would take
    // minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

// ------------------------------------------------------------------ multi

#[test]
fn multi_applies_in_order_under_one_zxid() {
    let mut h = Harness::new();
    h.create_ok("/old");
    let ops = vec![
        multi_create(OpCode::Create, "/m", 0, -1),
        multi_create(OpCode::Create2, "/m/s-", 2, -1),
        MultiOp::SetData(SetDataRequest {
            path: "/m".into(),
            data: Bytes::from_static(b"d"),
            version: 0,
        }),
        MultiOp::Check(CheckVersionRequest {
            path: "/m".into(),
            version: 1,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/old".into(),
            version: -1,
        }),
    ];
    let out = h.write(Request::Multi(ops));
    let zxid = h.zxid;
    let results = match &out.reply {
        Ok(Response::Multi(results)) => results.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(out.header_err, 0);
    assert_eq!(results.len(), 5);
    assert_eq!(results[0], MultiResult::Create("/m".into()));
    match &results[1] {
        MultiResult::Create2(path, stat) => {
            assert_eq!(path, "/m/s-0000000000");
            assert_eq!(stat.czxid, zxid);
        }
        other => panic!("{other:?}"),
    }
    match &results[2] {
        // The stat as of that op: one child already, version 1.
        MultiResult::SetData(stat) => {
            assert_eq!(stat.version, 1);
            assert_eq!(stat.num_children, 1);
            assert_eq!(stat.mzxid, zxid);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(results[3], MultiResult::Check);
    assert_eq!(results[4], MultiResult::Delete);
    assert_eq!(
        out.triggers,
        vec![
            trig("/m", EventType::NodeCreated),
            trig("/", EventType::NodeChildrenChanged),
            trig("/m/s-0000000000", EventType::NodeCreated),
            trig("/m", EventType::NodeChildrenChanged),
            trig("/m", EventType::NodeDataChanged),
            trig("/old", EventType::NodeDeleted),
            trig("/", EventType::NodeChildrenChanged),
        ]
    );
    match &out.txn {
        Txn::Multi(subs) => {
            assert_eq!(subs.len(), 5);
            assert!(matches!(&subs[0], Txn::Create { path, .. } if path == "/m"));
            assert!(matches!(&subs[4], Txn::Delete { path } if path == "/old"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.stat("/m").czxid, zxid);
    assert_eq!(h.stat("/m/s-0000000000").czxid, zxid);
    assert!(h.tree.get("/old").is_none());
    h.assert_replay_matches();
}

#[test]
fn failed_multi_changes_nothing_and_reports_per_op() {
    let mut h = Harness::new();
    h.create_ok("/p");
    let before = h.tree.clone();
    let ops = vec![
        multi_create(OpCode::Create, "/p/s-", 2, -1),
        multi_create(OpCode::Create, "/x", 0, -1),
        multi_create(OpCode::Create, "/x", 0, -1),
        MultiOp::Delete(DeleteRequest {
            path: "/nonexistent".into(),
            version: -1,
        }),
        MultiOp::SetData(SetDataRequest {
            path: "/p".into(),
            data: Bytes::new(),
            version: -1,
        }),
    ];
    let out = h.write(Request::Multi(ops));
    assert_eq!(
        out.reply,
        Ok(Response::Multi(vec![
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::NodeExists),
            MultiResult::Error(ErrorCode::RuntimeInconsistency),
            MultiResult::Error(ErrorCode::RuntimeInconsistency),
        ]))
    );
    assert_eq!(
        out.header_err, 0,
        "ZooKeeper 3.8 answers a failed multi with err 0"
    );
    assert!(out.triggers.is_empty());
    assert_eq!(
        out.txn,
        Txn::Multi(vec![
            Txn::Error(ErrorCode::Ok),
            Txn::Error(ErrorCode::Ok),
            Txn::Error(ErrorCode::NodeExists),
            Txn::Error(ErrorCode::RuntimeInconsistency),
            Txn::Error(ErrorCode::RuntimeInconsistency),
        ])
    );
    assert!(h.tree.root == before.root, "all or nothing");
    assert_eq!(h.tree.last_zxid(), h.zxid);
    // The rolled-back sequential create did not use up its suffix.
    assert_eq!(
        h.create("/p/s-", "", 2),
        Ok(Response::Create("/p/s-0000000000".into()))
    );
    h.assert_replay_matches();
}

#[test]
fn multi_ops_see_earlier_ops() {
    let mut h = Harness::new();
    h.session_id = 0x99;
    // Create then delete the same node; ephemeral parent within the multi.
    let ops = vec![
        multi_create(OpCode::Create, "/t", 0, -1),
        MultiOp::Delete(DeleteRequest {
            path: "/t".into(),
            version: 0,
        }),
        multi_create(OpCode::Create, "/e", 1, -1),
        multi_create(OpCode::Create, "/e/c", 0, -1),
    ];
    let out = h.write(Request::Multi(ops));
    assert_eq!(
        out.reply,
        Ok(Response::Multi(vec![
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::NoChildrenForEphemerals),
        ]))
    );
    assert!(h.tree.get("/t").is_none());
    assert!(h.tree.get("/e").is_none());
    assert!(h.tree.ephemerals_of(0x99).is_empty());
    // The version a setData in the multi gives is what a later check sees.
    h.create_ok("/v");
    let ops = vec![
        MultiOp::SetData(SetDataRequest {
            path: "/v".into(),
            data: Bytes::new(),
            version: 0,
        }),
        MultiOp::Check(CheckVersionRequest {
            path: "/v".into(),
            version: 0,
        }),
    ];
    let out = h.write(Request::Multi(ops));
    assert_eq!(
        out.reply,
        Ok(Response::Multi(vec![
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::BadVersion),
        ]))
    );
    assert_eq!(h.stat("/v").version, 0);
    h.assert_replay_matches();
}

#[test]
fn multi_create_ops_take_the_opcode_zookeeper_decodes() {
    let mut h = Harness::new();
    let ops = vec![
        // The container flag under a create header becomes createContainer.
        multi_create(OpCode::Create, "/c", 4, -1),
        // createTTL without a TTL mode becomes a plain create; the TTL is dropped.
        multi_create(OpCode::CreateTtl, "/plain", 0, 1234),
        multi_create(OpCode::CreateTtl, "/ttl", 5, 1234),
        multi_create(OpCode::Create2, "/two", 0, -1),
    ];
    let out = h.write(Request::Multi(ops));
    let results = match out.reply {
        Ok(Response::Multi(results)) => results,
        other => panic!("{other:?}"),
    };
    assert!(matches!(&results[0], MultiResult::Create2(p, _) if p == "/c"));
    assert_eq!(results[1], MultiResult::Create("/plain".into()));
    assert!(matches!(&results[2], MultiResult::Create2(p, _) if p == "/ttl"));
    assert!(matches!(&results[3], MultiResult::Create2(p, _) if p == "/two"));
    assert_eq!(h.tree.get("/c").unwrap().kind(), EphemeralKind::Container);
    assert_eq!(
        h.tree.get("/plain").unwrap().kind(),
        EphemeralKind::Persistent
    );
    assert_eq!(h.tree.get("/ttl").unwrap().kind(), EphemeralKind::Ttl(1234));

    // A TTL mode under a create header has no TTL: BadArguments for that op.
    let out = h.write(Request::Multi(vec![multi_create(
        OpCode::Create,
        "/t2",
        5,
        99,
    )]));
    assert_eq!(
        out.reply,
        Ok(Response::Multi(vec![MultiResult::Error(
            ErrorCode::BadArguments
        )]))
    );
    // Unknown flags under createTTL decode (as persistent) and fail at the op.
    let out = h.write(Request::Multi(vec![multi_create(
        OpCode::CreateTtl,
        "/t3",
        9,
        99,
    )]));
    assert_eq!(
        out.reply,
        Ok(Response::Multi(vec![MultiResult::Error(
            ErrorCode::BadArguments
        )]))
    );
    h.assert_replay_matches();
}

#[test]
fn multi_that_zookeeper_cannot_decode_is_a_marshalling_error() {
    let mut h = Harness::new();
    // Unknown flags under a create header.
    let out = h.write(Request::Multi(vec![
        multi_create(OpCode::Create, "/ok", 0, -1),
        multi_create(OpCode::Create, "/bad", 9, -1),
    ]));
    assert_eq!(out.reply, Err(ErrorCode::MarshallingError));
    assert_eq!(out.header_err, ErrorCode::MarshallingError.code());
    assert_eq!(out.txn, Txn::Error(ErrorCode::MarshallingError));
    assert!(h.tree.get("/ok").is_none());
    // Read ops in a write multi.
    let out = h.write(Request::Multi(vec![
        multi_create(OpCode::Create, "/ok", 0, -1),
        MultiOp::GetData(pw("/", false)),
    ]));
    assert_eq!(out.reply, Err(ErrorCode::MarshallingError));
    assert!(h.tree.get("/ok").is_none());
    // An empty multi succeeds with no results.
    let out = h.write(Request::Multi(vec![]));
    assert_eq!(out.reply, Ok(Response::Multi(vec![])));
    assert_eq!(out.txn, Txn::Multi(vec![]));
    h.assert_replay_matches();
}

// ------------------------------------------------------------------ sessions

#[test]
fn close_session_deletes_its_ephemerals_in_one_txn() {
    let mut h = Harness::new();
    h.create_session(0x5);
    h.create_ok("/p");
    h.session_id = 0x5;
    h.create("/p/e2", "", 1).unwrap();
    h.create("/e1", "", 1).unwrap();
    h.create("/p/seq", "", 3).unwrap();
    h.session_id = 0x6;
    h.create("/other", "", 1).unwrap();
    assert_eq!(
        h.tree.ephemerals_of(0x5),
        vec!["/e1".to_string(), "/p/e2".into(), "/p/seq0000000001".into()]
    );
    assert_eq!(h.tree.ephemeral_count(), 4);
    assert_eq!(
        h.tree.sessions_with_ephemerals(),
        vec![
            (
                0x5,
                vec!["/e1".to_string(), "/p/e2".into(), "/p/seq0000000001".into()]
            ),
            (0x6, vec!["/other".to_string()])
        ]
    );
    assert_eq!(h.stat("/p/e2").ephemeral_owner, 0x5);

    let out = h.close_session(0x5);
    assert_eq!(out.reply, Ok(Response::Empty));
    assert_eq!(
        out.txn,
        Txn::CloseSession {
            ephemerals: vec!["/e1".to_string(), "/p/e2".into(), "/p/seq0000000001".into()]
        }
    );
    assert_eq!(
        out.triggers,
        vec![
            trig("/e1", EventType::NodeDeleted),
            trig("/", EventType::NodeChildrenChanged),
            trig("/p/e2", EventType::NodeDeleted),
            trig("/p", EventType::NodeChildrenChanged),
            trig("/p/seq0000000001", EventType::NodeDeleted),
            trig("/p", EventType::NodeChildrenChanged),
        ]
    );
    assert!(h.tree.ephemerals_of(0x5).is_empty());
    assert!(h.tree.get("/e1").is_none());
    assert_eq!(h.stat("/p").pzxid, h.zxid);
    assert_eq!(h.stat("/p").num_children, 0);
    assert!(h.tree.get("/other").is_some());
    assert_eq!(h.tree.ephemeral_count(), 1);
    // A session with nothing: an empty txn that still takes a zxid.
    let out = h.close_session(0x5);
    assert_eq!(out.txn, Txn::CloseSession { ephemerals: vec![] });
    assert!(out.triggers.is_empty());
    assert_eq!(h.tree.last_zxid(), h.zxid);
    // closeSession through process_write.
    h.session_id = 0x6;
    let out = h.write(Request::CloseSession);
    assert_eq!(
        out.txn,
        Txn::CloseSession {
            ephemerals: vec!["/other".to_string()]
        }
    );
    assert!(h.tree.get("/other").is_none());
    h.assert_replay_matches();
}

#[test]
fn create_session_only_moves_the_zxid() {
    let mut h = Harness::new();
    let before = h.tree.clone();
    let out = h.create_session(0x1234);
    assert_eq!(out.txn, Txn::CreateSession { timeout_ms: 30_000 });
    assert!(out.triggers.is_empty());
    assert_eq!(h.tree.last_zxid(), h.zxid);
    assert!(h.tree.root == before.root);
}

#[test]
fn close_session_replay_also_deletes_ephemerals_missing_from_the_txn() {
    let mut h = Harness::new();
    h.session_id = 0x8;
    h.create("/a", "", 1).unwrap();
    h.create("/b", "", 1).unwrap();
    h.create("/p", "", 0).unwrap();
    let hdr = TxnHeader {
        session_id: 0x8,
        zxid: 0x900,
        time_ms: 0,
        ..Default::default()
    };
    // A listed path that is not an ephemeral of the session does not fit.
    for bad in ["/gone", "/p"] {
        let err = h
            .tree
            .clone()
            .try_apply_txn(
                &hdr,
                &Txn::CloseSession {
                    ephemerals: vec!["/b".into(), bad.into()],
                },
            )
            .unwrap_err();
        assert_eq!(err.code, Some(ErrorCode::NoNode));
    }
    let triggers = h.tree.apply_txn(
        &hdr,
        &Txn::CloseSession {
            ephemerals: vec!["/b".into()],
        },
    );
    assert!(h.tree.get("/a").is_none());
    assert!(h.tree.get("/b").is_none());
    assert_eq!(triggers[0], trig("/b", EventType::NodeDeleted));
    assert_eq!(triggers[2], trig("/a", EventType::NodeDeleted));
    assert_eq!(h.tree.last_zxid(), 0x900);
}

// ------------------------------------------------------------------ containers and TTLs

#[test]
fn container_removal_candidates() {
    let mut h = Harness::new();
    h.write(create_req(
        OpCode::CreateContainer,
        "/c",
        "",
        4,
        -1,
        open_acl(),
    ));
    let created = h.time_ms;
    // Never had a child: kept (unless maxNeverUsedIntervalMs says otherwise).
    assert!(h
        .tree
        .removable_containers_and_ttls(created + 1_000_000)
        .is_empty());
    assert!(h
        .tree
        .removable_containers_and_ttls_with(created + 100, 100)
        .is_empty());
    assert_eq!(
        h.tree
            .removable_containers_and_ttls_with(created + 101, 100),
        vec!["/c".to_string()]
    );
    h.create_ok("/c/x");
    assert!(h
        .tree
        .removable_containers_and_ttls(created + 1_000_000)
        .is_empty());
    h.write(delete_req("/c/x", -1));
    // Had a child, now empty: removable at once.
    assert_eq!(
        h.tree.removable_containers_and_ttls(created),
        vec!["/c".to_string()]
    );
    h.write(Request::DeleteContainer("/c".into()));
    assert!(h.tree.removable_containers_and_ttls(created).is_empty());
    h.assert_replay_matches();
}

#[test]
fn ttl_removal_candidates() {
    let mut h = Harness::new();
    h.write(create_req(OpCode::CreateTtl, "/t", "", 5, 1000, open_acl()));
    let created = h.time_ms;
    assert!(h
        .tree
        .removable_containers_and_ttls(created + 1000)
        .is_empty());
    assert_eq!(
        h.tree.removable_containers_and_ttls(created + 1001),
        vec!["/t".to_string()]
    );
    // setData moves mtime, which restarts the TTL.
    h.write(set_data_req("/t", "x", -1));
    let touched = h.time_ms;
    assert!(h
        .tree
        .removable_containers_and_ttls(created + 1001)
        .is_empty());
    assert_eq!(
        h.tree.removable_containers_and_ttls(touched + 1001),
        vec!["/t".to_string()]
    );
    // A child keeps it.
    h.create_ok("/t/c");
    assert!(h
        .tree
        .removable_containers_and_ttls(touched + 100_000)
        .is_empty());
    h.write(delete_req("/t/c", -1));
    assert_eq!(
        h.write(Request::DeleteContainer("/t".into())).reply,
        Ok(Response::Empty)
    );
    assert!(h
        .tree
        .removable_containers_and_ttls(touched + 100_000)
        .is_empty());
    h.assert_replay_matches();
}

// ------------------------------------------------------------------ versions and replay

#[test]
fn a_clone_is_an_independent_version() {
    let mut h = Harness::new();
    h.create_ok("/a");
    let v1 = h.tree.clone();
    h.create_ok("/a/b");
    h.write(set_data_req("/a", "new", -1));
    h.session_id = 0x3;
    h.create("/e", "", 1).unwrap();
    assert!(v1.get("/a/b").is_none());
    assert_eq!(v1.get("/a").unwrap().data().len(), 0);
    assert_eq!(v1.get("/a").unwrap().stat().num_children, 0);
    assert!(v1.ephemerals_of(0x3).is_empty());
    assert_eq!(v1.node_count(), 5);
    assert_eq!(h.tree.node_count(), 7);
    assert!(v1.last_zxid() < h.tree.last_zxid());
    // And the other way round: writing to a clone leaves the original.
    let mut v2 = h.tree.clone();
    let ctx = TxnContext {
        session_id: 1,
        auth: &[],
        zxid: h.zxid + 1,
        time_ms: 0,
        enforce_quota: false,
        sasl_acl: false,
    };
    v2.process_write(&delete_req("/a/b", -1), &ctx);
    assert!(v2.get("/a/b").is_none());
    assert!(h.tree.get("/a/b").is_some());
}

#[test]
fn replaying_the_log_rebuilds_the_same_tree_and_triggers() {
    let mut h = Harness::new();
    h.create_session(0x21);
    h.session_id = 0x21;
    h.create_ok("/app");
    for i in 0..20 {
        h.create(&format!("/app/n{i}"), "data", 2).unwrap();
    }
    h.create("/app/eph", "", 1).unwrap();
    h.write(create_req(
        OpCode::CreateContainer,
        "/box",
        "",
        4,
        -1,
        open_acl(),
    ));
    h.write(create_req(
        OpCode::CreateTtl,
        "/ttl",
        "",
        5,
        60_000,
        open_acl(),
    ));
    h.create_ok("/box/item");
    h.write(set_data_req("/app", "v", -1));
    h.write(set_acl_req("/app/n00000000003", world_acl(perms::READ), -1));
    h.write(delete_req("/app/n10000000010", -1));
    h.write(delete_req("/missing", -1));
    h.write(Request::Multi(vec![
        multi_create(OpCode::Create, "/mm", 0, -1),
        multi_create(OpCode::Create, "/mm/x", 2, -1),
    ]));
    h.write(Request::Multi(vec![
        multi_create(OpCode::Create, "/mm2", 0, -1),
        multi_create(OpCode::Create, "/mm", 0, -1),
    ]));
    h.write(delete_req("/box/item", -1));
    h.write(Request::DeleteContainer("/box".into()));
    h.close_session(0x21);
    h.assert_replay_matches();

    // The triggers of a replay are those of the original writes.
    let mut live = Harness::new();
    let mut replayed = DataTree::new();
    live.create_ok("/r");
    let out = live.write(Request::Multi(vec![
        multi_create(OpCode::Create, "/r/a", 0, -1),
        MultiOp::Delete(DeleteRequest {
            path: "/r/a".into(),
            version: -1,
        }),
    ]));
    let mut last = Vec::new();
    for (hdr, txn) in &live.log {
        let (triggers, acls) = replayed.apply_txn_with_acls(hdr, txn);
        assert_eq!(triggers.len(), acls.len());
        last = triggers;
    }
    assert_eq!(last, out.triggers);
}

#[test]
/// Recovery's replay (try_apply_txn): a txn that does not fit is an Err naming it, never a
/// panic, and changes no content.
fn try_apply_txn_refuses_what_does_not_fit() {
    let mut tree = DataTree::new();
    let mut zxid = 0;
    let mut apply = |tree: &mut DataTree, txn: Txn| {
        zxid += 1;
        let hdr = TxnHeader {
            session_id: 1,
            zxid,
            time_ms: 0,
            ..Default::default()
        };
        let before = tree.clone();
        let result = tree.try_apply_txn(&hdr, &txn);
        if let Err(mismatch) = &result {
            assert_eq!(mismatch.zxid, zxid);
            assert!(mismatch.to_string().contains(&format!("txn 0x{zxid:x}")));
            assert_eq!(tree.last_zxid(), before.last_zxid(), "{mismatch}");
        }
        result.map_err(|m| m.code)
    };
    let before = tree.clone();
    let create = |path: &str| Txn::Create {
        path: path.into(),
        data: Bytes::new(),
        acl: open_acl(),
        ephemeral_owner: 0,
        parent_cversion: -1,
    };
    assert!(apply(&mut tree, create("/no/parent")).is_err());
    assert!(apply(&mut tree, create("/bad/")).is_err());
    assert!(apply(&mut tree, create("relative")).is_err());
    assert!(apply(&mut tree, create("")).is_err());
    assert!(apply(&mut tree, Txn::Delete { path: "/".into() }).is_err());
    assert!(apply(&mut tree, Txn::Delete { path: "".into() }).is_err());
    assert!(apply(&mut tree, Txn::Delete { path: "x".into() }).is_err());
    assert!(apply(
        &mut tree,
        Txn::SetData {
            path: "/none".into(),
            data: Bytes::new(),
            version: 3
        }
    )
    .is_err());
    assert!(apply(
        &mut tree,
        Txn::SetAcl {
            path: "/none".into(),
            acl: vec![],
            version: 3
        }
    )
    .is_err());
    assert!(apply(&mut tree, Txn::Multi(vec![Txn::Multi(vec![])])).is_err());
    assert!(tree.root == before.root);
    // Deleting a node that has children would orphan them: refused.
    apply(&mut tree, create("/p")).unwrap();
    apply(&mut tree, create("/p/c")).unwrap();
    assert_eq!(
        apply(&mut tree, Txn::Delete { path: "/p".into() }),
        Err(Some(ErrorCode::NotEmpty))
    );
    assert!(tree.get("/p/c").is_some());
    // A create over an existing node does not fit (it still raises the parent's cversion,
    // as ZooKeeper does, but recovery refuses the log anyway).
    let cversion = tree.get("/p").unwrap().cversion;
    assert!(apply(
        &mut tree,
        Txn::Create {
            path: "/p/c".into(),
            data: Bytes::new(),
            acl: open_acl(),
            ephemeral_owner: 0,
            parent_cversion: cversion + 5,
        }
    )
    .is_err());
    assert_eq!(tree.get("/p").unwrap().cversion, cversion + 5);
    // A zxid behind the last one.
    let hdr = TxnHeader {
        session_id: 1,
        zxid: 1,
        time_ms: 0,
        ..Default::default()
    };
    let behind = tree.try_apply_txn(&hdr, &Txn::Error(ErrorCode::NoNode));
    assert_eq!(behind.as_ref().map_err(|m| m.code), Err(None));
    assert!(behind.unwrap_err().to_string().contains("went backwards"));
}

/// The server's apply_txn stops on a txn that does not fit: the tree diverged.
#[test]
#[should_panic(
    expected = "the data tree diverged: txn 0x7 (after 0x0) does not fit the tree (NoNode)"
)]
fn apply_txn_panics_on_a_txn_that_does_not_fit() {
    let hdr = TxnHeader {
        session_id: 1,
        zxid: 7,
        time_ms: 0,
        ..Default::default()
    };
    DataTree::new().apply_txn(
        &hdr,
        &Txn::Delete {
            path: "/none".into(),
        },
    );
}

#[test]
#[should_panic(expected = "txn 0x3 comes after txn 0x9 (zxids went backwards)")]
fn apply_txn_panics_when_zxids_go_backwards() {
    let mut tree = DataTree::new();
    let at = |zxid| TxnHeader {
        session_id: 1,
        zxid,
        time_ms: 0,
        ..Default::default()
    };
    tree.apply_txn(&at(9), &Txn::CreateSession { timeout_ms: 1 });
    tree.apply_txn(&at(3), &Txn::CreateSession { timeout_ms: 1 });
}

/// A multi whose op does not fit: the mismatch names that op.
#[test]
fn try_apply_txn_names_the_multi_op_that_does_not_fit() {
    let hdr = TxnHeader {
        session_id: 1,
        zxid: 5,
        time_ms: 0,
        ..Default::default()
    };
    let multi = Txn::Multi(vec![
        Txn::Check {
            path: "/".into(),
            version: 1,
        },
        Txn::Delete {
            path: "/missing".into(),
        },
    ]);
    let err = DataTree::new().try_apply_txn(&hdr, &multi).unwrap_err();
    assert_eq!(err.code, Some(ErrorCode::NoNode));
    assert!(err.txn.contains("/missing"), "{err}");
}

#[test]
fn acls_are_shared_between_nodes() {
    let mut h = Harness::new();
    h.create_ok("/a");
    h.create_ok("/b");
    let a = h.tree.get("/a").unwrap().acl.clone();
    let b = h.tree.get("/b").unwrap().acl.clone();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(Arc::ptr_eq(&a, &h.tree.get("/").unwrap().acl));
}

// ------------------------------------------------------------------ reads

fn session(id_: i64, auth: Vec<Id>) -> SessionView {
    SessionView {
        session_id: id_,
        auth: Arc::new(auth),
    }
}

#[test]
fn exists_registers_a_watch_even_on_a_missing_node() {
    let mut h = Harness::new();
    let mut watches = WatchTable::new();
    let s = session(1, vec![]);
    let reply = serve_read(
        &h.tree,
        &Request::Exists(pw("/a", true)),
        &s,
        7,
        &mut watches,
    );
    assert_eq!(reply, Err(ErrorCode::NoNode));
    assert_eq!(watches.len(), 1);
    let out = h.write(create_req(OpCode::Create, "/a", "", 0, -1, open_acl()));
    let events = watches.trigger(&out.triggers[0]);
    assert_eq!(
        events,
        vec![(
            7,
            WatcherEvent {
                event_type: EventType::NodeCreated,
                state: keeper_state::SYNC_CONNECTED,
                path: "/a".into()
            }
        )]
    );
    let reply = serve_read(
        &h.tree,
        &Request::Exists(pw("/a", false)),
        &s,
        7,
        &mut watches,
    );
    assert_eq!(reply, Ok(Response::Stat(h.stat("/a"))));
    assert!(watches.is_empty());
    // NUL: BadArguments, no watch.
    let reply = serve_read(
        &h.tree,
        &Request::Exists(pw("/a\0", true)),
        &s,
        7,
        &mut watches,
    );
    assert_eq!(reply, Err(ErrorCode::BadArguments));
    assert!(watches.is_empty());
    // No ACL check (ZooKeeper 3.8.0-3.8.3): a node without READ still answers exists.
    let no_read = vec![acl_of(perms::ALL & !perms::READ, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/nr", "", 0, -1, no_read));
    let reply = serve_read(
        &h.tree,
        &Request::Exists(pw("/nr", true)),
        &s,
        7,
        &mut watches,
    );
    assert!(matches!(reply, Ok(Response::Stat(_))));
    assert_eq!(watches.len(), 1);
    watches.remove_conn(7);
    // The root alias.
    let reply = serve_read(
        &h.tree,
        &Request::Exists(pw("", false)),
        &s,
        7,
        &mut watches,
    );
    assert_eq!(reply, Ok(Response::Stat(h.stat("/"))));
}

#[test]
fn get_data_and_children() {
    let mut h = Harness::new();
    h.write(create_req(
        OpCode::Create,
        "/a",
        "payload",
        0,
        -1,
        open_acl(),
    ));
    for name in ["zeta", "alpha", "mid"] {
        h.create_ok(&format!("/a/{name}"));
    }
    let mut watches = WatchTable::new();
    let s = session(1, vec![]);
    // getData on a missing node with watch: NoNode and no watch.
    let reply = serve_read(
        &h.tree,
        &Request::GetData(pw("/x", true)),
        &s,
        3,
        &mut watches,
    );
    assert_eq!(reply, Err(ErrorCode::NoNode));
    assert!(watches.is_empty());
    let reply = serve_read(
        &h.tree,
        &Request::GetData(pw("/a", true)),
        &s,
        3,
        &mut watches,
    );
    assert_eq!(
        reply,
        Ok(Response::GetData(
            Bytes::from_static(b"payload"),
            h.stat("/a")
        ))
    );
    assert!(watches.check_watches("/a", watcher_type::DATA, 3));
    assert!(!watches.check_watches("/a", watcher_type::CHILDREN, 3));
    let names = vec!["alpha".to_string(), "mid".into(), "zeta".into()];
    let reply = serve_read(
        &h.tree,
        &Request::GetChildren(pw("/a", true)),
        &s,
        3,
        &mut watches,
    );
    assert_eq!(reply, Ok(Response::GetChildren(names.clone())));
    assert!(watches.check_watches("/a", watcher_type::CHILDREN, 3));
    let reply = serve_read(
        &h.tree,
        &Request::GetChildren2(pw("/a", false)),
        &s,
        3,
        &mut watches,
    );
    assert_eq!(reply, Ok(Response::GetChildren2(names, h.stat("/a"))));
    let reply = serve_read(
        &h.tree,
        &Request::GetChildren(pw("/x", true)),
        &s,
        3,
        &mut watches,
    );
    assert_eq!(reply, Err(ErrorCode::NoNode));
    assert!(!watches.check_watches("/x", watcher_type::ANY, 3));
    // READ needed.
    let no_read = vec![acl_of(perms::ALL & !perms::READ, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/nr", "", 0, -1, no_read));
    for req in [
        Request::GetData(pw("/nr", true)),
        Request::GetChildren(pw("/nr", true)),
        Request::GetChildren2(pw("/nr", true)),
        Request::GetAllChildrenNumber("/nr".into()),
    ] {
        assert_eq!(
            serve_read(&h.tree, &req, &s, 4, &mut watches),
            Err(ErrorCode::NoAuth)
        );
    }
    assert!(!watches.check_watches("/nr", watcher_type::ANY, 4));
}

#[test]
fn get_acl_needs_read_or_admin_and_masks_digests_without_admin() {
    let mut h = Harness::new();
    let alice_acl = acl_of(perms::ALL, "digest", &alice().id);
    let read_acl = vec![alice_acl.clone(), acl_of(perms::READ, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/r", "", 0, -1, read_acl));
    let admin_only = vec![acl_of(perms::ADMIN, "digest", &bob().id)];
    h.write(create_req(
        OpCode::Create,
        "/adm",
        "",
        0,
        -1,
        admin_only.clone(),
    ));
    let mut watches = WatchTable::new();
    let anyone = session(1, vec![id("ip", "10.0.0.1")]);
    let user = acl::digest_id("alice:secret");
    let masked = format!("{}:x", user.split(':').next().unwrap());
    let reply = serve_read(
        &h.tree,
        &Request::GetAcl("/r".into()),
        &anyone,
        1,
        &mut watches,
    );
    assert_eq!(
        reply,
        Ok(Response::GetAcl(
            vec![
                acl_of(perms::ALL, "digest", &masked),
                acl_of(perms::READ, "world", "anyone")
            ],
            h.stat("/r")
        ))
    );
    let as_alice = session(1, vec![alice()]);
    let reply = serve_read(
        &h.tree,
        &Request::GetAcl("/r".into()),
        &as_alice,
        1,
        &mut watches,
    );
    assert!(matches!(reply, Ok(Response::GetAcl(list, _)) if list[0] == alice_acl));
    // ADMIN without READ is enough.
    let as_bob = session(1, vec![bob()]);
    let reply = serve_read(
        &h.tree,
        &Request::GetAcl("/adm".into()),
        &as_bob,
        1,
        &mut watches,
    );
    assert!(matches!(reply, Ok(Response::GetAcl(list, _)) if list == admin_only));
    let reply = serve_read(
        &h.tree,
        &Request::GetAcl("/adm".into()),
        &anyone,
        1,
        &mut watches,
    );
    assert_eq!(reply, Err(ErrorCode::NoAuth));
    let reply = serve_read(
        &h.tree,
        &Request::GetAcl("/none".into()),
        &anyone,
        1,
        &mut watches,
    );
    assert_eq!(reply, Err(ErrorCode::NoNode));
    // /zookeeper/config as a fresh server has it.
    let reply = serve_read(
        &h.tree,
        &Request::GetAcl("/zookeeper/config".into()),
        &anyone,
        1,
        &mut watches,
    );
    assert_eq!(
        reply,
        Ok(Response::GetAcl(
            world_acl(perms::READ),
            Stat {
                aversion: -1,
                ..Stat::default()
            }
        ))
    );
}

#[test]
fn all_children_number_counts_descendants() {
    let mut h = Harness::new();
    h.create_ok("/a");
    h.create_ok("/a/b");
    h.create_ok("/a/b/c");
    h.create_ok("/a/d");
    h.create_ok("/ab");
    assert_eq!(
        h.read(Request::GetAllChildrenNumber("/a".into())),
        Ok(Response::GetAllChildrenNumber(3))
    );
    assert_eq!(
        h.read(Request::GetAllChildrenNumber("/a/b/c".into())),
        Ok(Response::GetAllChildrenNumber(0))
    );
    // "/" counts every node but the root, /zookeeper's three included.
    assert_eq!(
        h.read(Request::GetAllChildrenNumber("/".into())),
        Ok(Response::GetAllChildrenNumber(8))
    );
    assert_eq!(
        h.read(Request::GetAllChildrenNumber("/x".into())),
        Err(ErrorCode::NoNode)
    );
}

#[test]
fn get_ephemerals_filters_by_string_prefix() {
    let mut h = Harness::new();
    h.session_id = 0x9;
    h.create_ok("/a");
    h.create("/a/e1", "", 1).unwrap();
    h.create("/ab", "", 1).unwrap();
    h.create("/b", "", 1).unwrap();
    h.session_id = 0x10;
    h.create("/a/other", "", 1).unwrap();
    let mut watches = WatchTable::new();
    let s = session(0x9, vec![]);
    let get = |prefix: &str, watches: &mut WatchTable| {
        serve_read(
            &h.tree,
            &Request::GetEphemerals(prefix.into()),
            &s,
            1,
            watches,
        )
    };
    let all = Ok(Response::GetEphemerals(vec![
        "/a/e1".to_string(),
        "/ab".into(),
        "/b".into(),
    ]));
    assert_eq!(get("", &mut watches), all);
    assert_eq!(get("/", &mut watches), all);
    assert_eq!(get("  / ", &mut watches), all);
    assert_eq!(
        get("/a", &mut watches),
        Ok(Response::GetEphemerals(vec![
            "/a/e1".to_string(),
            "/ab".into()
        ]))
    );
    assert_eq!(
        get("/a/", &mut watches),
        Ok(Response::GetEphemerals(vec!["/a/e1".to_string()]))
    );
    assert_eq!(
        get("/zzz", &mut watches),
        Ok(Response::GetEphemerals(vec![]))
    );
}

#[test]
fn multi_read_reports_per_op_and_sets_no_watch() {
    let mut h = Harness::new();
    h.write(create_req(OpCode::Create, "/a", "d", 0, -1, open_acl()));
    h.create_ok("/a/c");
    let no_read = vec![acl_of(perms::ALL & !perms::READ, "world", "anyone")];
    h.write(create_req(OpCode::Create, "/nr", "", 0, -1, no_read));
    let mut watches = WatchTable::new();
    let s = session(1, vec![]);
    let req = Request::MultiRead(vec![
        MultiOp::GetChildren(pw("/a", true)),
        MultiOp::GetData(pw("/a", true)),
        MultiOp::GetData(pw("/missing", true)),
        MultiOp::GetChildren(pw("/nr", true)),
    ]);
    let reply = serve_read(&h.tree, &req, &s, 1, &mut watches);
    assert_eq!(
        reply,
        Ok(Response::Multi(vec![
            MultiResult::GetChildren(vec!["c".into()]),
            MultiResult::GetData(Bytes::from_static(b"d"), h.stat("/a")),
            MultiResult::Error(ErrorCode::NoNode),
            MultiResult::Error(ErrorCode::NoAuth),
        ]))
    );
    assert!(watches.is_empty(), "multiRead drops the watch flag");
    let req = Request::MultiRead(vec![
        MultiOp::GetData(pw("/a", false)),
        MultiOp::Check(CheckVersionRequest {
            path: "/a".into(),
            version: 0,
        }),
    ]);
    assert_eq!(
        serve_read(&h.tree, &req, &s, 1, &mut watches),
        Err(ErrorCode::MarshallingError)
    );
}

#[test]
fn watch_management_requests() {
    let h = Harness::new();
    let mut watches = WatchTable::new();
    let s = session(1, vec![]);
    let read = |req: Request, watches: &mut WatchTable| serve_read(&h.tree, &req, &s, 5, watches);
    let add = |path: &str, mode: i32| {
        Request::AddWatch(AddWatchRequest {
            path: path.into(),
            mode,
        })
    };
    let wr = |path: &str, kind: i32| WatchesRequest {
        path: path.into(),
        watcher_type: kind,
    };
    // The node need not exist.
    assert_eq!(
        read(add("/not/there", add_watch_mode::PERSISTENT), &mut watches),
        Ok(Response::AddWatch)
    );
    assert_eq!(
        read(
            add("/r", add_watch_mode::PERSISTENT_RECURSIVE),
            &mut watches
        ),
        Ok(Response::AddWatch)
    );
    assert_eq!(
        read(add("/x", 2), &mut watches),
        Err(ErrorCode::MarshallingError)
    );
    assert_eq!(
        read(
            Request::CheckWatches(wr("/not/there", watcher_type::DATA)),
            &mut watches
        ),
        Ok(Response::Empty)
    );
    assert_eq!(
        read(
            Request::CheckWatches(wr("/nothing", watcher_type::ANY)),
            &mut watches
        ),
        Err(ErrorCode::NoWatcher)
    );
    // 3.8 knows types 1..=3 only.
    assert_eq!(
        read(
            Request::CheckWatches(wr("/r", watcher_type::PERSISTENT)),
            &mut watches
        ),
        Err(ErrorCode::MarshallingError)
    );
    assert_eq!(
        read(
            Request::RemoveWatches(wr("/r", watcher_type::PERSISTENT_RECURSIVE)),
            &mut watches
        ),
        Err(ErrorCode::MarshallingError)
    );
    assert_eq!(
        read(
            Request::RemoveWatches(wr("/r", watcher_type::ANY)),
            &mut watches
        ),
        Ok(Response::Empty)
    );
    assert_eq!(
        read(
            Request::RemoveWatches(wr("/r", watcher_type::ANY)),
            &mut watches
        ),
        Err(ErrorCode::NoWatcher)
    );
    // A missing path answers NoWatcher, not NoNode.
    assert_eq!(
        read(
            Request::RemoveWatches(wr("/missing", watcher_type::DATA)),
            &mut watches
        ),
        Err(ErrorCode::NoWatcher)
    );
    // Write requests are a caller bug.
    assert_eq!(
        read(delete_req("/x", -1), &mut watches),
        Err(ErrorCode::Unimplemented)
    );
}

#[test]
fn who_am_i_lists_scheme_and_user() {
    let h = Harness::new();
    let mut watches = WatchTable::new();
    let s = session(1, vec![id("ip", "127.0.0.1"), alice(), acl::super_id()]);
    assert_eq!(
        serve_read(&h.tree, &Request::WhoAmI, &s, 1, &mut watches),
        Ok(Response::WhoAmI(vec![
            ClientInfo {
                auth_scheme: "ip".into(),
                user: "127.0.0.1".into()
            },
            ClientInfo {
                auth_scheme: "digest".into(),
                user: "alice".into()
            },
            ClientInfo {
                auth_scheme: "super".into(),
                user: "".into()
            },
        ]))
    );
}

// ------------------------------------------------------------------ setWatches

#[test]
fn set_watches_fires_what_changed_and_registers_the_rest() {
    let mut h = Harness::new();
    h.create_ok("/same");
    h.create_ok("/changed");
    h.create_ok("/kids");
    h.create_ok("/quiet");
    let relative = h.zxid;
    h.write(set_data_req("/changed", "x", -1));
    h.create_ok("/kids/new");
    let sw = SetWatches {
        relative_zxid: relative,
        data_watches: vec!["/same".into(), "/changed".into(), "/gone".into()],
        exist_watches: vec!["/same".into(), "/absent".into()],
        child_watches: vec!["/quiet".into(), "/kids".into(), "/gone".into()],
        persistent_watches: vec!["/p".into()],
        persistent_recursive_watches: vec!["/rec".into()],
    };
    let mut watches = WatchTable::new();
    let events = set_watches(&h.tree, &sw, 9, &mut watches);
    let ev = |event_type, path: &str| WatcherEvent {
        event_type,
        state: keeper_state::SYNC_CONNECTED,
        path: path.into(),
    };
    assert_eq!(
        events,
        vec![
            ev(EventType::NodeDataChanged, "/changed"),
            ev(EventType::NodeDeleted, "/gone"),
            ev(EventType::NodeCreated, "/same"),
            ev(EventType::NodeChildrenChanged, "/kids"),
            ev(EventType::NodeDeleted, "/gone"),
        ]
    );
    // Registered: data /same, exist /absent, child /quiet, persistent /p, recursive /rec.
    assert!(watches.check_watches("/same", watcher_type::DATA, 9));
    assert!(watches.check_watches("/absent", watcher_type::DATA, 9));
    assert!(watches.check_watches("/quiet", watcher_type::CHILDREN, 9));
    assert!(!watches.check_watches("/changed", watcher_type::ANY, 9));
    assert!(!watches.check_watches("/kids", watcher_type::ANY, 9));
    assert!(!watches.check_watches("/gone", watcher_type::ANY, 9));
    assert!(watches.check_watches("/p", watcher_type::ANY, 9));
    assert!(watches.check_watches("/rec", watcher_type::ANY, 9));
    // The registered exist watch fires when the node appears.
    let out = h.write(create_req(OpCode::Create, "/absent", "", 0, -1, open_acl()));
    assert_eq!(watches.trigger(&out.triggers[0]).len(), 1);
    // A pzxid equal to relative_zxid does not fire (strictly greater only).
    let sw = SetWatches {
        relative_zxid: h.stat("/kids").pzxid,
        child_watches: vec!["/kids".into()],
        data_watches: vec!["/changed".into()],
        ..SetWatches::default()
    };
    let mut watches = WatchTable::new();
    assert!(set_watches(&h.tree, &sw, 9, &mut watches).is_empty());
}

#[test]
fn trigger_acls_follow_zookeeper() {
    let mut h = Harness::new();
    let parent_acl = vec![acl_of(perms::ALL, "world", "anyone")];
    let child_acl = vec![acl_of(perms::ALL, "digest", &alice().id)];
    h.write(create_req(
        OpCode::Create,
        "/p",
        "",
        0,
        -1,
        parent_acl.clone(),
    ));
    let out = h.write(create_req(
        OpCode::Create,
        "/p/c",
        "",
        0,
        -1,
        child_acl.clone(),
    ));
    assert_eq!(*out.trigger_acls[0], child_acl);
    assert_eq!(*out.trigger_acls[1], parent_acl);
    h.auth.push(alice());
    let out = h.write(set_data_req("/p/c", "x", -1));
    assert_eq!(*out.trigger_acls[0], child_acl);
    let out = h.write(delete_req("/p/c", -1));
    assert_eq!(*out.trigger_acls[0], child_acl);
    assert_eq!(*out.trigger_acls[1], parent_acl);
}

// ------------------------------------------------------------------ quotas and snapshots

fn data_of(h: &Harness, path: &str) -> String {
    String::from_utf8(h.tree.get(path).unwrap().data().to_vec()).unwrap()
}

#[test]
fn quota_usage_is_tracked_like_zookeeper() {
    let mut h = Harness::new();
    h.write(create_req(OpCode::Create, "/app", "abc", 0, -1, open_acl()));
    h.write(create_req(
        OpCode::Create,
        "/app/x",
        "de",
        0,
        -1,
        open_acl(),
    ));
    h.write(create_req(
        OpCode::Create,
        "/application",
        "zzzz",
        0,
        -1,
        open_acl(),
    ));
    // What zkCli's setquota does.
    h.create_ok("/zookeeper/quota/app");
    h.write(create_req(
        OpCode::Create,
        "/zookeeper/quota/app/zookeeper_limits",
        "count=10,bytes=-1",
        0,
        -1,
        open_acl(),
    ));
    let out = h.write(create_req(
        OpCode::Create2,
        "/zookeeper/quota/app/zookeeper_stats",
        "count=0,bytes=0",
        0,
        -1,
        open_acl(),
    ));
    // create2 reports the stat before the recount.
    assert_eq!(ok_create2(&out).1.data_length, 15);
    let stats_path = "/zookeeper/quota/app/zookeeper_stats";
    assert_eq!(data_of(&h, stats_path), "count=2,bytes=5");
    let stats_stat = h.stat(stats_path);

    h.write(create_req(OpCode::Create, "/app/y", "f", 0, -1, open_acl()));
    assert_eq!(data_of(&h, stats_path), "count=3,bytes=6");
    h.write(set_data_req("/app/x", "", -1));
    assert_eq!(data_of(&h, stats_path), "count=3,bytes=4");
    let out = h.write(delete_req("/app/y", -1));
    assert_eq!(data_of(&h, stats_path), "count=2,bytes=3");
    // The stats node changes silently: no trigger, same mzxid and version.
    assert!(out.triggers.iter().all(|t| &*t.path != stats_path));
    let now = h.stat(stats_path);
    assert_eq!(
        (now.mzxid, now.version),
        (stats_stat.mzxid, stats_stat.version)
    );
    // A sibling sharing the string prefix is not under the quota.
    h.write(set_data_req("/application", "", -1));
    assert_eq!(data_of(&h, stats_path), "count=2,bytes=3");
    // Failed writes and rolled-back multis leave it.
    h.write(Request::Multi(vec![
        multi_create(OpCode::Create, "/app/m", 0, -1),
        multi_create(OpCode::Create, "/app/m", 0, -1),
    ]));
    assert_eq!(data_of(&h, stats_path), "count=2,bytes=3");
    h.assert_replay_matches();

    // A snapshot of the tree loads back to the same tree, usage recomputed.
    let nodes: Vec<(String, Znode)> = h
        .tree
        .iter()
        .map(|(path, node)| (path.to_string(), node.clone()))
        .collect();
    let loaded = DataTree::from_nodes(nodes, h.tree.last_zxid()).unwrap();
    assert!(loaded == h.tree);

    // Without the limits node, tracking stops.
    h.write(delete_req("/zookeeper/quota/app/zookeeper_limits", -1));
    h.create_ok("/app/z");
    assert_eq!(data_of(&h, stats_path), "count=2,bytes=3");
    h.assert_replay_matches();
}

#[test]
fn the_deepest_quota_root_takes_the_change() {
    let mut h = Harness::new();
    for path in ["/a", "/a/b", "/zookeeper/quota/a", "/zookeeper/quota/a/b"] {
        h.create_ok(path);
    }
    for root in ["a", "a/b"] {
        h.create_ok(&format!("/zookeeper/quota/{root}/zookeeper_limits"));
        h.create_ok(&format!("/zookeeper/quota/{root}/zookeeper_stats"));
    }
    assert_eq!(
        data_of(&h, "/zookeeper/quota/a/zookeeper_stats"),
        "count=2,bytes=0"
    );
    assert_eq!(
        data_of(&h, "/zookeeper/quota/a/b/zookeeper_stats"),
        "count=1,bytes=0"
    );
    h.write(create_req(
        OpCode::Create,
        "/a/b/c",
        "12",
        0,
        -1,
        open_acl(),
    ));
    assert_eq!(
        data_of(&h, "/zookeeper/quota/a/zookeeper_stats"),
        "count=2,bytes=0"
    );
    assert_eq!(
        data_of(&h, "/zookeeper/quota/a/b/zookeeper_stats"),
        "count=2,bytes=2"
    );
    h.write(create_req(OpCode::Create, "/a/c", "1", 0, -1, open_acl()));
    assert_eq!(
        data_of(&h, "/zookeeper/quota/a/zookeeper_stats"),
        "count=3,bytes=1"
    );
    h.assert_replay_matches();
}

#[test]
fn from_nodes_rebuilds_children_and_indexes() {
    let mut h = Harness::new();
    h.session_id = 0x31;
    h.create_ok("/p");
    h.create("/p/e", "", 1).unwrap();
    h.write(create_req(
        OpCode::CreateContainer,
        "/c",
        "",
        4,
        -1,
        open_acl(),
    ));
    h.write(create_req(OpCode::CreateTtl, "/t", "", 5, 10, open_acl()));
    // Children lists in the input are ignored; order does not matter.
    let mut nodes: Vec<(String, Znode)> = h
        .tree
        .iter()
        .map(|(path, node)| {
            let mut node = node.clone();
            node.children = Default::default();
            (path.to_string(), node)
        })
        .collect();
    nodes.sort_by(|a, b| b.0.cmp(&a.0));
    let loaded = DataTree::from_nodes(nodes.clone(), h.tree.last_zxid()).unwrap();
    assert!(loaded == h.tree);
    assert_eq!(loaded.ephemerals_of(0x31), vec!["/p/e".to_string()]);
    assert_eq!(
        loaded.removable_containers_and_ttls(i64::MAX),
        vec!["/t".to_string()]
    );

    let without = |path: &str| -> Vec<(String, Znode)> {
        nodes.iter().filter(|(p, _)| p != path).cloned().collect()
    };
    assert!(DataTree::from_nodes(without("/p"), 0).is_err());
    assert!(DataTree::from_nodes(without("/"), 0).is_err());
    let mut twice = nodes.clone();
    twice.push(nodes[0].clone());
    assert!(DataTree::from_nodes(twice, 0).is_err());
    let mut bad = nodes.clone();
    bad.push(("/p/".to_string(), nodes[0].1.clone()));
    assert!(DataTree::from_nodes(bad, 0).is_err());
}

#[test]
fn iter_and_for_each_node_walk_parents_first_with_fresh_paths() {
    let mut h = Harness::new();
    for path in [
        "/b",
        "/a-b",
        "/a",
        "/a/x",
        "/a/a-very-long-name-beyond-inline",
        "/a/x/y",
    ] {
        h.create_ok(path);
    }
    let expected = [
        "/",
        "/a",
        "/a/a-very-long-name-beyond-inline",
        "/a/x",
        "/a/x/y",
        "/a-b",
        "/b",
        "/zookeeper",
        "/zookeeper/config",
        "/zookeeper/quota",
    ];
    let paths: Vec<String> = h.tree.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(paths, expected);
    let mut walked = Vec::new();
    h.tree.for_each_node(&mut |path, node| {
        assert!(std::ptr::eq(node, h.tree.get(path).unwrap()));
        walked.push(path.to_string());
    });
    assert_eq!(walked, expected);
    // A version keeps its paths; the tree that changes after it sees its own.
    let version = h.tree.clone();
    h.create_ok("/a/x/z");
    h.write(delete_req("/a-b", -1)).reply.unwrap();
    let paths: Vec<&str> = h.tree.iter().map(|(p, _)| p).collect();
    assert!(paths.contains(&"/a/x/z") && !paths.contains(&"/a-b"));
    assert_eq!(paths.len(), h.tree.node_count());
    let old: Vec<&str> = version.iter().map(|(p, _)| p).collect();
    assert_eq!(old, expected);
    assert_eq!(
        h.tree.approximate_data_size(),
        h.tree.iter().map(|(p, _)| p.len() as u64).sum::<u64>()
    );
    assert_eq!(h.tree.all_children_number("/a"), 4);
    assert_eq!(
        h.read(Request::GetChildren(pw("/a", false))).unwrap(),
        Response::GetChildren(vec!["a-very-long-name-beyond-inline".into(), "x".into()])
    );
    h.assert_replay_matches();
}

#[test]
fn a_deep_tree_is_walked_and_rebuilt_without_recursion() {
    let mut h = Harness::new();
    let mut path = String::new();
    for _ in 0..3000 {
        path.push_str("/d");
        h.create_ok(&path);
    }
    assert_eq!(h.tree.all_children_number("/d"), 2999);
    let nodes: Vec<(String, Znode)> = h
        .tree
        .iter()
        .map(|(p, n)| (p.to_string(), n.clone()))
        .collect();
    let loaded = DataTree::from_nodes(nodes, h.tree.last_zxid()).unwrap();
    assert!(loaded == h.tree);
    assert_eq!(loaded.get(&path).unwrap().stat(), h.stat(&path));
    // A write at the bottom copies the whole chain; the old version alone holds the old
    // chain, and dropping it (like dropping a whole tree) must not recurse per level.
    let version = h.tree.clone();
    h.write(set_data_req(&path, "x", -1)).reply.unwrap();
    assert!(version != h.tree);
    drop(version);
    drop(loaded);
    assert_eq!(h.tree.get(&path).unwrap().data(), b"x");
}

// ------------------------------------------------------------------ null data

/// ZooKeeper keeps a null buffer null: `create(path, null)` and `setData(path, null)` read
/// back as null (jute length -1), with dataLength 0; empty data stays empty.
#[test]
fn null_data_stays_null_through_writes_reads_multis_and_replay() {
    use crate::proto::{is_null_buffer, null_buffer};
    let mut h = Harness::new();
    let create = |path: &str, data: Bytes| {
        Request::Create(
            OpCode::Create,
            CreateRequest {
                path: path.to_string(),
                data,
                acl: open_acl(),
                flags: 0,
                ttl: -1,
            },
        )
    };
    let get = |h: &Harness, path: &str| match h.read(Request::GetData(pw(path, false))) {
        Ok(Response::GetData(data, stat)) => (data, stat),
        other => panic!("getData {path}: {other:?}"),
    };
    assert!(h.write(create("/n", null_buffer())).reply.is_ok());
    assert!(h.write(create("/e", Bytes::new())).reply.is_ok());
    let (data, stat) = get(&h, "/n");
    assert!(is_null_buffer(&data));
    assert_eq!(stat.data_length, 0);
    assert!(!is_null_buffer(&get(&h, "/e").0));

    let set = |path: &str, data: Bytes| {
        Request::SetData(SetDataRequest {
            path: path.to_string(),
            data,
            version: -1,
        })
    };
    assert!(h.write(set("/e", null_buffer())).reply.is_ok());
    assert!(is_null_buffer(&get(&h, "/e").0));
    assert!(h.write(set("/n", Bytes::from_static(b"x"))).reply.is_ok());
    assert_eq!(get(&h, "/n").1.data_length, 1);
    assert!(h.write(set("/n", Bytes::new())).reply.is_ok());
    assert!(!is_null_buffer(&get(&h, "/n").0));

    // Inside a multi, both ways.
    let multi = Request::Multi(vec![
        MultiOp::Create(
            OpCode::Create,
            CreateRequest {
                path: "/m".to_string(),
                data: null_buffer(),
                acl: open_acl(),
                flags: 0,
                ttl: -1,
            },
        ),
        MultiOp::SetData(SetDataRequest {
            path: "/n".to_string(),
            data: null_buffer(),
            version: -1,
        }),
    ]);
    assert!(h.write(multi).reply.is_ok());
    assert!(is_null_buffer(&get(&h, "/m").0));
    assert!(is_null_buffer(&get(&h, "/n").0));
    assert!(h.tree.get("/m").unwrap().data_is_null());

    // The replayed tree has the same null nodes (tree equality tells null from empty).
    h.assert_replay_matches();
    let mut replayed = DataTree::new();
    for (hdr, txn) in &h.log {
        replayed.apply_txn(hdr, txn);
    }
    for (path, null) in [("/n", true), ("/e", true), ("/m", true)] {
        assert_eq!(replayed.get(path).unwrap().data_is_null(), null, "{path}");
    }
    // One null node less: not equal.
    let mut other = replayed.clone();
    let (zxid, time_ms) = (h.zxid + 1, h.time_ms + 1);
    let hdr = TxnHeader {
        session_id: 1,
        zxid,
        time_ms,
        ..Default::default()
    };
    other.apply_txn(
        &hdr,
        &Txn::SetData {
            path: "/m".to_string(),
            data: Bytes::new(),
            version: 1,
        },
    );
    replayed.apply_txn(
        &hdr,
        &Txn::SetData {
            path: "/m".to_string(),
            data: null_buffer(),
            version: 1,
        },
    );
    assert!(other != replayed);
}

// ------------------------------------------------------------------ txns too large

/// A session with more ephemerals than one txn could list closes in one txn anyway: the
/// list is cut to CLOSE_SESSION_LIST_MAX bytes, and applying it deletes the rest too.
#[test]
fn close_session_of_very_many_ephemerals_fits_one_record() {
    let mut h = Harness::new();
    h.session_id = 0x77;
    let name = "e".repeat(500);
    let count = 3 * CLOSE_SESSION_LIST_MAX / 500;
    let nodes_before = h.tree.node_count();
    for i in 0..count {
        h.create(&format!("/{name}{i:06}"), "", 1).unwrap();
    }
    assert_eq!(h.tree.ephemerals_of(0x77).len(), count);
    let out = h.close_session(0x77);
    let Txn::CloseSession { ephemerals } = &out.txn else {
        panic!("{:?}", out.txn)
    };
    let listed = ephemerals.len();
    assert!(listed < count && listed > 0, "{listed} of {count} listed");
    assert!(crate::wal::format::txn_encoded_len(&out.txn) <= CLOSE_SESSION_LIST_MAX + 5);
    assert!(h.tree.ephemerals_of(0x77).is_empty());
    assert_eq!(h.tree.node_count(), nodes_before);
    // One NodeDeleted + one NodeChildrenChanged per node, in path order.
    assert_eq!(out.triggers.len(), 2 * count);
    let deleted: Vec<&str> = out
        .triggers
        .iter()
        .filter(|t| t.event == EventType::NodeDeleted)
        .map(|t| &*t.path)
        .collect();
    assert!(deleted.windows(2).all(|w| w[0] < w[1]));
    let mut log = Vec::new();
    crate::wal::format::encode_record(
        &h.header(),
        &out.txn,
        crate::wal::format::BatchMark {
            seq: 1,
            last_in_batch: true,
        },
        &mut log,
    )
    .unwrap();
    h.assert_replay_matches();
}

/// A multi whose txn would be over the log's record limit is refused whole, as an error
/// txn with MarshallingError, before it changes anything.
#[test]
fn multi_too_large_for_a_log_record_is_refused() {
    let mut h = Harness::new();
    h.create_ok("/big");
    let mib = Bytes::from(vec![1u8; 1 << 20]);
    let ops: Vec<MultiOp> = (0..65)
        .map(|_| {
            MultiOp::SetData(SetDataRequest {
                path: "/big".to_string(),
                data: mib.clone(),
                version: -1,
            })
        })
        .collect();
    let before = h.tree.get("/big").unwrap().stat();
    let out = h.write(Request::Multi(ops.clone()));
    assert_eq!(out.reply, Err(ErrorCode::MarshallingError));
    assert_eq!(out.txn, Txn::Error(ErrorCode::MarshallingError));
    assert!(out.triggers.is_empty());
    assert_eq!(h.tree.get("/big").unwrap().stat(), before);
    // Under the limit it goes through.
    let out = h.write(Request::Multi(ops[..60].to_vec()));
    assert!(
        matches!(out.reply, Ok(Response::Multi(_))),
        "{:?}",
        out.reply
    );
    assert!(crate::wal::format::txn_encoded_len(&out.txn) <= crate::wal::format::TXN_LEN_MAX);
    h.assert_replay_matches();
}

// ------------------------------------------------------------------ digest

#[test]
fn tree_digest_is_zookeepers_sum_of_node_digests() {
    // Expected values computed with Python's zlib.crc32 (see tree/digest.rs): a fresh
    // tree counts "" and /zookeeper (all stat fields 0), not /zookeeper/quota or config.
    let mut h = Harness::new();
    assert_eq!(h.tree.digest(), 68323592 + 1303661912);
    // create /a "x" at 0x101, t=1000010: the root's cversion 1 and pzxid 0x101 change.
    assert_eq!(h.create("/a", "x", 0), Ok(Response::Create("/a".into())));
    assert_eq!(h.tree.digest(), 5729904267);
    let before = h.tree.clone();
    // setData /a "yz" at 0x102, t=1000020: version 1, mzxid, mtime.
    h.write(set_data_req("/a", "yz", -1)).reply.unwrap();
    assert_eq!(h.tree.digest(), 8598941615);
    // An older version keeps its own digest.
    assert_eq!(before.digest(), 5729904267);
    // Nodes under /zookeeper/ count nothing, and their parent is under it too.
    let digest = h.tree.digest();
    h.create("/zookeeper/quota/a", "", 0).unwrap();
    h.write(set_data_req("/zookeeper/quota/a", "q", -1))
        .reply
        .unwrap();
    assert_eq!(h.tree.digest(), digest);
    h.assert_replay_matches();
}

#[test]
fn tree_digest_follows_every_kind_of_change() {
    let mut h = Harness::new();
    h.create_session(0x11);
    h.create_ok("/app");
    h.create("/app/e", "eph", 1).unwrap();
    h.create("/app/s-", "seq", 2).unwrap();
    h.create("/app/es-", "", 3).unwrap();
    h.write(create_req(
        OpCode::CreateContainer,
        "/c",
        "",
        4,
        -1,
        open_acl(),
    ))
    .reply
    .unwrap();
    h.write(create_req(
        OpCode::CreateTtl,
        "/t",
        "ttl",
        5,
        5000,
        open_acl(),
    ))
    .reply
    .unwrap();
    h.write(set_acl_req(
        "/app",
        vec![acl_of(perms::ALL, "ip", "127.0.0.1")],
        -1,
    ))
    .reply
    .unwrap();
    h.write(set_data_req("/", "root data", -1)).reply.unwrap();
    h.write(delete_req("/t", -1)).reply.unwrap();
    let digest = h.tree.digest();
    // A failed write and a failed multi change nothing.
    assert_eq!(
        h.write(delete_req("/nope", -1)).reply,
        Err(ErrorCode::NoNode)
    );
    h.write(Request::Multi(vec![
        multi_create(OpCode::Create, "/m1", 0, -1),
        MultiOp::Delete(DeleteRequest {
            path: "/absent".into(),
            version: -1,
        }),
    ]));
    assert_eq!(h.tree.digest(), digest);
    // A multi that succeeds.
    h.write(Request::Multi(vec![
        multi_create(OpCode::Create, "/m1", 0, -1),
        MultiOp::SetData(SetDataRequest {
            path: "/m1".into(),
            data: Bytes::from_static(b"m"),
            version: -1,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/c".into(),
            version: -1,
        }),
    ]))
    .reply
    .unwrap();
    assert_ne!(h.tree.digest(), digest);
    // Closing the session removes its ephemerals.
    h.close_session(0x11);
    assert!(h.tree.get("/app/e").is_none());
    assert_eq!(h.tree.digest(), h.tree.compute_digest());
    h.assert_replay_matches();
    // A tree rebuilt from its nodes (a snapshot) has the same digest.
    let rebuilt = DataTree::from_nodes(
        h.tree
            .iter()
            .map(|(path, node)| (path.to_string(), node.clone())),
        h.tree.last_zxid(),
    )
    .unwrap();
    assert_eq!(rebuilt.digest(), h.tree.digest());
}

/// A Java leader's closeSession lists the session's ephemerals in hash order, or not at all;
/// a zkrs follower's own derivation (path order, cut at the limit) is the same change.
#[test]
fn close_session_txns_agree_whatever_their_list_order() {
    let close = |paths: &[&str]| Txn::CloseSession {
        ephemerals: paths.iter().map(|p| p.to_string()).collect(),
    };
    let ours = close(&["/a", "/b0000000001"]);
    assert!(close(&["/b0000000001", "/a"]).same_change_as(&ours));
    assert!(close(&["/a", "/b0000000001"]).same_change_as(&ours));
    assert!(
        close(&[]).same_change_as(&ours),
        "a closeSession without body"
    );
    assert!(!close(&["/a"]).same_change_as(&ours), "one ephemeral fewer");
    assert!(!close(&["/a", "/c"]).same_change_as(&ours), "another path");
    assert!(
        !close(&["/a", "/b0000000001", "/c"]).same_change_as(&ours),
        "a path our uncut list lacks"
    );
    // Our list cut at the limit: the leader's longer list agrees only past the cut.
    let long = |i: usize| format!("/e{i:06}{}", "x".repeat(990));
    let all: Vec<String> = (0..2000).map(long).collect();
    let mut listed = 0;
    let cut: Vec<String> = all
        .iter()
        .take_while(|p| {
            listed += 4 + p.len();
            listed <= CLOSE_SESSION_LIST_MAX
        })
        .cloned()
        .collect();
    assert!(cut.len() < all.len());
    let ours = Txn::CloseSession {
        ephemerals: cut.clone(),
    };
    let mut reversed = all.clone();
    reversed.reverse();
    assert!(Txn::CloseSession {
        ephemerals: reversed
    }
    .same_change_as(&ours));
    let mut gap = all.clone();
    gap.remove(cut.len() - 1);
    assert!(!Txn::CloseSession { ephemerals: gap }.same_change_as(&ours));
    // Other txns: exact.
    let create = |v: i32| Txn::SetData {
        path: "/a".into(),
        data: Bytes::from_static(b"x"),
        version: v,
    };
    assert!(create(1).same_change_as(&create(1)));
    assert!(!create(1).same_change_as(&create(2)));
}
