//! multi (transactions) and multiRead: all-or-nothing, per-op results, the error layout of a
//! failed multi, check ops, and watches fired by a committed multi.

#[macro_use]
mod common;

use std::time::Duration;

use common::raw::{self, decode_multi, encode_multi, MultiOp, MultiResult};
use common::*;
use zookeeper_client::{
    Acls, CheckWriteError, CreateMode, Error, EventType, MultiReadResult, MultiWriteError,
    MultiWriteResult,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_commits_all_ops_at_one_zxid() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "multi-ok").await;
    mk(&c, &format!("{root}/old")).await;

    let mut w = c.new_multi_writer();
    w.add_check_version(&root, 0).unwrap();
    w.add_create(&format!("{root}/a"), b"a", &persistent())
        .unwrap();
    w.add_create(
        &format!("{root}/s-"),
        b"",
        &CreateMode::PersistentSequential.with_acls(Acls::anyone_all()),
    )
    .unwrap();
    w.add_set_data(&format!("{root}/a"), b"aa", Some(0))
        .unwrap();
    w.add_delete(&format!("{root}/old"), Some(0)).unwrap();
    let results = t!(w.commit()).unwrap();
    assert_eq!(results.len(), 5);
    assert!(matches!(results[0], MultiWriteResult::Check));
    let set_stat = match &results[3] {
        MultiWriteResult::SetData { stat } => *stat,
        other => panic!("expected SetData, got {other:?}"),
    };
    assert!(matches!(results[4], MultiWriteResult::Delete));
    match &results[1] {
        MultiWriteResult::Create { path, stat } => {
            assert_eq!(path, &format!("{root}/a"));
            // Apache ZooKeeper 3.8 answers a create2 inside multi with a plain create result
            // (no stat, ZOOKEEPER-4026); when a stat is present it must be right.
            if !stat.is_invalid() {
                assert_eq!(stat.czxid, set_stat.mzxid);
                assert_eq!(stat.version, 0);
            }
        }
        other => panic!("expected Create, got {other:?}"),
    }
    match &results[2] {
        MultiWriteResult::Create { path, .. } => {
            assert_eq!(
                path,
                &format!("{root}/s-0000000002"),
                "old and a came first"
            );
        }
        other => panic!("expected Create, got {other:?}"),
    }

    // Every op of the transaction carries the same zxid.
    assert_eq!(set_stat.version, 1);
    assert_eq!(
        set_stat.czxid, set_stat.mzxid,
        "created and updated in one txn"
    );
    let (data, a_stat) = t!(c.get_data(&format!("{root}/a"))).unwrap();
    assert_eq!(data, b"aa");
    assert_eq!(a_stat, set_stat);
    let s_stat = t!(c.check_stat(&format!("{root}/s-0000000002")))
        .unwrap()
        .unwrap();
    assert_eq!(s_stat.czxid, set_stat.mzxid);
    let parent = t!(c.check_stat(&root)).unwrap().unwrap();
    assert_eq!(parent.pzxid, set_stat.mzxid);
    assert_eq!(parent.num_children, 2);
    assert!(t!(c.check_stat(&format!("{root}/old"))).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_multi_changes_nothing() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "multi-fail").await;
    let before = t!(c.check_stat(&root)).unwrap().unwrap();

    let mut w = c.new_multi_writer();
    w.add_create(&format!("{root}/a"), b"", &persistent())
        .unwrap();
    w.add_set_data(&root, b"x", None).unwrap();
    w.add_check_version(&root, 7).unwrap();
    w.add_create(&format!("{root}/b"), b"", &persistent())
        .unwrap();
    match t!(w.commit()) {
        Err(MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (2, Error::BadVersion));
        }
        other => panic!("expected the check to fail, got {other:?}"),
    }
    assert!(t!(c.check_stat(&format!("{root}/a"))).unwrap().is_none());
    assert!(t!(c.check_stat(&format!("{root}/b"))).unwrap().is_none());
    let after = t!(c.check_stat(&root)).unwrap().unwrap();
    assert_eq!(after, before, "a failed multi left a trace");

    // Each kind of failure is reported at its own index.
    let mut w = c.new_multi_writer();
    w.add_create(&format!("{root}/a"), b"", &persistent())
        .unwrap();
    w.add_create(&format!("{root}/a"), b"", &persistent())
        .unwrap();
    match t!(w.commit()) {
        Err(MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!(
                (index, source),
                (1, Error::NodeExists),
                "ops see earlier ops' effects"
            );
        }
        other => panic!("expected NodeExists, got {other:?}"),
    }
    let mut w = c.new_multi_writer();
    w.add_delete(&format!("{root}/missing"), None).unwrap();
    match t!(w.commit()) {
        Err(MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (0, Error::NoNode));
        }
        other => panic!("expected NoNode, got {other:?}"),
    }
    // An ephemeral created earlier in the same multi cannot get children.
    let mut w = c.new_multi_writer();
    w.add_create(
        &format!("{root}/e"),
        b"",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .unwrap();
    w.add_create(&format!("{root}/e/c"), b"", &persistent())
        .unwrap();
    match t!(w.commit()) {
        Err(MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (1, Error::NoChildrenForEphemerals));
        }
        other => panic!("expected NoChildrenForEphemerals, got {other:?}"),
    }
    assert!(t!(c.list_children(&root)).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_in_a_multi_see_each_other() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "multi-seq").await;
    let a = format!("{root}/a");
    let b = format!("{root}/a/b");
    let mut w = c.new_multi_writer();
    w.add_create(&a, b"", &persistent()).unwrap();
    w.add_create(&b, b"", &persistent()).unwrap();
    w.add_set_data(&a, b"1", Some(0)).unwrap();
    w.add_set_data(&a, b"2", Some(1)).unwrap();
    w.add_check_version(&a, 2).unwrap();
    w.add_delete(&b, Some(0)).unwrap();
    w.add_delete(&a, Some(2)).unwrap();
    w.add_create(&a, b"again", &persistent()).unwrap();
    let results = t!(w.commit()).unwrap();
    assert_eq!(results.len(), 8);
    let (data, stat) = t!(c.get_data(&a)).unwrap();
    assert_eq!(data, b"again");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.num_children, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writer_reports_the_check() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "check").await;
    t!(c.set_data(&root, b"v", None)).unwrap();

    let mut w = c.new_check_writer(&root, Some(0)).unwrap();
    w.add_create(&format!("{root}/x"), b"", &persistent())
        .unwrap();
    match t!(w.commit()) {
        Err(CheckWriteError::CheckFailed { source }) => assert_eq!(source, Error::BadVersion),
        other => panic!("expected the check to fail, got {other:?}"),
    }
    let mut w = c
        .new_check_writer(&format!("{root}/missing"), None)
        .unwrap();
    w.add_create(&format!("{root}/x"), b"", &persistent())
        .unwrap();
    match t!(w.commit()) {
        Err(CheckWriteError::CheckFailed { source }) => assert_eq!(source, Error::NoNode),
        other => panic!("expected NoNode, got {other:?}"),
    }
    let mut w = c.new_check_writer(&root, Some(1)).unwrap();
    w.add_create(&format!("{root}/x"), b"", &persistent())
        .unwrap();
    let results = t!(w.commit()).unwrap();
    assert_eq!(results.len(), 1);
    assert!(t!(c.check_stat(&format!("{root}/x"))).unwrap().is_some());
}

#[test]
fn failed_multi_error_layout() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("multi-layout");
    c.create(&root, b"", 0).ok();
    let m1 = format!("{root}/m1");
    let body = encode_multi(&[
        MultiOp::Create {
            path: &m1,
            data: b"",
            flags: 0,
        },
        MultiOp::SetData {
            path: &root,
            data: b"x",
            version: -1,
        },
        MultiOp::Check {
            path: &root,
            version: 5,
        },
        MultiOp::Delete {
            path: &root,
            version: -1,
        },
    ]);
    let r = c.call(raw::OP_MULTI, &body);
    // The reply header reports success; the failure is in the body. Ops before the failing
    // one read OK (0), the failing one its code, the ones after RuntimeInconsistency (-2),
    // all as error results (type -1) whose header err equals the body err.
    assert_eq!(r.err, raw::OK);
    assert_eq!(
        decode_multi(&r.body),
        vec![
            MultiResult::Error {
                header_err: 0,
                err: 0
            },
            MultiResult::Error {
                header_err: 0,
                err: 0
            },
            MultiResult::Error {
                header_err: raw::ERR_BAD_VERSION,
                err: raw::ERR_BAD_VERSION
            },
            MultiResult::Error {
                header_err: raw::ERR_RUNTIME_INCONSISTENCY,
                err: raw::ERR_RUNTIME_INCONSISTENCY
            },
        ]
    );
    assert_eq!(c.exists(&m1, false).err, raw::ERR_NO_NODE);

    // Success layout: create (1) answers with the path, create2 (15) with path and stat in
    // Apache ZooKeeper 3.9 but as a plain create in 3.8; setData with the stat; check and
    // delete with nothing.
    let m2 = format!("{root}/m2");
    let body = encode_multi(&[
        MultiOp::Create {
            path: &m1,
            data: b"",
            flags: 0,
        },
        MultiOp::Create2 {
            path: &m2,
            data: b"",
            flags: 0,
        },
        MultiOp::SetData {
            path: &root,
            data: b"y",
            version: 0,
        },
        MultiOp::Check {
            path: &root,
            version: 1,
        },
        MultiOp::Delete {
            path: &m1,
            version: 0,
        },
    ]);
    let r = c.call(raw::OP_MULTI, &body).ok();
    let results = decode_multi(&r.body);
    assert_eq!(results.len(), 5);
    assert_eq!(
        results[0],
        MultiResult::Create {
            path: m1.clone(),
            stat: None
        }
    );
    match &results[1] {
        MultiResult::Create { path, stat } => {
            assert_eq!(path, &m2);
            if let Some(stat) = stat {
                assert_eq!(stat.czxid, r.zxid);
            }
        }
        other => panic!("expected a create result, got {other:?}"),
    }
    match &results[2] {
        MultiResult::SetData { stat } => {
            assert_eq!(stat.mzxid, r.zxid);
            assert_eq!(stat.version, 1);
            assert_eq!(
                stat.pzxid, r.zxid,
                "the creates in the same txn moved pzxid"
            );
        }
        other => panic!("expected setData, got {other:?}"),
    }
    assert_eq!(results[3], MultiResult::Check);
    assert_eq!(results[4], MultiResult::Delete);

    // An empty multi is answered with just the end marker.
    let r = c.call(raw::OP_MULTI, &encode_multi(&[])).ok();
    assert!(decode_multi(&r.body).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_read_reports_per_op_results() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "multi-read").await;
    let a = format!("{root}/a");
    t!(c.create(&a, b"data-a", &persistent())).unwrap();
    mk(&c, &format!("{a}/x")).await;
    mk(&c, &format!("{a}/y")).await;
    let protected = format!("{root}/p");
    let none = [zookeeper_client::Acl::new(
        zookeeper_client::Permission::CREATE,
        zookeeper_client::AuthId::anyone(),
    )];
    t!(c.create(
        &protected,
        b"",
        &CreateMode::Persistent.with_acls(Acls::new(&none))
    ))
    .unwrap();

    let mut r = c.new_multi_reader();
    r.add_get_data(&a).unwrap();
    r.add_get_children(&a).unwrap();
    r.add_get_data(&format!("{root}/missing")).unwrap();
    r.add_get_data(&protected).unwrap();
    r.add_get_children(&root).unwrap();
    let results = t!(r.commit()).unwrap();
    assert_eq!(results.len(), 5);
    match &results[0] {
        MultiReadResult::Data { data, stat } => {
            assert_eq!(data, b"data-a");
            assert_eq!(stat.num_children, 2);
        }
        other => panic!("expected data, got {other:?}"),
    }
    match &results[1] {
        MultiReadResult::Children { children } => {
            let mut children = children.clone();
            children.sort();
            assert_eq!(children, vec!["x", "y"]);
        }
        other => panic!("expected children, got {other:?}"),
    }
    assert!(
        matches!(&results[2], MultiReadResult::Error { err: Error::NoNode }),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(&results[3], MultiReadResult::Error { err: Error::NoAuth }),
        "{:?}",
        results[3]
    );
    match &results[4] {
        MultiReadResult::Children { children } => {
            let mut children = children.clone();
            children.sort();
            assert_eq!(children, vec!["a", "p"]);
        }
        other => panic!("expected children, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_fires_watches_once_committed() {
    let server = TestServer::start();
    let c = server.client().await;
    let watcher = server.client().await;
    let root = test_root(&c, "multi-watch").await;
    let a = format!("{root}/a");
    mk(&c, &a).await;
    t!(watcher.sync(&a)).unwrap();
    let (_, _, wa) = t!(watcher.get_and_watch_data(&a)).unwrap();
    let (_, wb) = t!(watcher.check_and_watch_stat(&format!("{root}/b"))).unwrap();
    let (_, wc) = t!(watcher.list_and_watch_children(&root)).unwrap();

    // A failed multi fires nothing.
    let (_, max) = server.session_bounds_ms();
    let mut quiet = server.raw(max);
    quiet.sync(&a);
    quiet.get_data(&a, true).ok();
    quiet.get_children(&root, true).ok();
    let mut w = c.new_multi_writer();
    w.add_set_data(&a, b"1", None).unwrap();
    w.add_create(&format!("{root}/b"), b"", &persistent())
        .unwrap();
    w.add_check_version(&a, 99).unwrap();
    assert!(t!(w.commit()).is_err());
    assert!(quiet.drain_events(Duration::from_millis(300)).is_empty());

    let mut w = c.new_multi_writer();
    w.add_set_data(&a, b"1", None).unwrap();
    w.add_create(&format!("{root}/b"), b"", &persistent())
        .unwrap();
    t!(w.commit()).unwrap();
    let ev = t!(wa.changed());
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, a.as_str())
    );
    let ev = t!(wb.changed());
    assert_eq!(ev.event_type, EventType::NodeCreated);
    let ev = t!(wc.changed());
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, root.as_str())
    );
    // On one connection, the events of one multi arrive in op order.
    let events = quiet.drain_events(Duration::from_millis(300));
    let kinds: Vec<(i32, &str)> = events
        .iter()
        .map(|e| (e.event_type, e.path.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (raw::EV_NODE_DATA_CHANGED, a.as_str()),
            (raw::EV_NODE_CHILDREN_CHANGED, root.as_str())
        ]
    );
}
