//! Watches: one-shot data/exists/child watches, persistent and recursive watches, event order,
//! the "event before new data" guarantee, per-session FIFO, setWatches after a reconnect, and
//! checkWatches/removeWatches. The raw client is used wherever a test must see exact frames or
//! prove that something did NOT arrive.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::raw::{self, Raw, RawEvent};
use common::*;
use zookeeper_client::{AddWatchMode, EventType, SessionState, WatchedEvent};

/// How long a test waits to conclude that no (further) event is coming.
const QUIET: Duration = Duration::from_millis(300);

fn ev(event_type: i32, path: &str) -> (i32, String) {
    (event_type, path.to_string())
}

fn kinds(events: &[RawEvent]) -> Vec<(i32, String)> {
    events
        .iter()
        .map(|e| (e.event_type, e.path.clone()))
        .collect()
}

fn assert_event(event: &WatchedEvent, event_type: EventType, path: &str) {
    assert_eq!(event.event_type, event_type, "event {event:?}");
    assert_eq!(event.path, path, "event {event:?}");
    assert_eq!(
        event.session_state,
        SessionState::SyncConnected,
        "event {event:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_watch_fires_on_change_and_delete() {
    let server = TestServer::start();
    let c = server.client().await;
    let writer = server.client().await;
    let root = test_root(&c, "data-watch").await;
    let path = format!("{root}/n");
    mk(&c, &path).await;

    let (_, _, watcher) = t!(c.get_and_watch_data(&path)).unwrap();
    t!(writer.set_data(&path, b"1", None)).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeDataChanged, &path);

    let (_, _, watcher) = t!(c.get_and_watch_data(&path)).unwrap();
    t!(writer.delete(&path, None)).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeDeleted, &path);

    // A failed write triggers nothing.
    mk(&c, &path).await;
    let (_, _, watcher) = t!(c.get_and_watch_data(&path)).unwrap();
    assert!(t!(writer.set_data(&path, b"x", Some(9))).is_err());
    assert!(tokio::time::timeout(QUIET, watcher.changed())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_watch_fires_on_create_change_delete() {
    let server = TestServer::start();
    let c = server.client().await;
    let writer = server.client().await;
    let root = test_root(&c, "exists-watch").await;
    let path = format!("{root}/n");

    let (stat, watcher) = t!(c.check_and_watch_stat(&path)).unwrap();
    assert!(stat.is_none());
    t!(writer.create(&path, b"", &persistent())).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeCreated, &path);

    let (stat, watcher) = t!(c.check_and_watch_stat(&path)).unwrap();
    assert!(stat.is_some());
    t!(writer.set_data(&path, b"v", None)).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeDataChanged, &path);

    let (_, watcher) = t!(c.check_and_watch_stat(&path)).unwrap();
    t!(writer.delete(&path, None)).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeDeleted, &path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_watch_fires_on_membership_only() {
    let server = TestServer::start();
    let c = server.client().await;
    let writer = server.client().await;
    let root = test_root(&c, "child-watch").await;
    mk(&c, &format!("{root}/a")).await;

    let (_, watcher) = t!(c.list_and_watch_children(&root)).unwrap();
    mk(&writer, &format!("{root}/b")).await;
    assert_event(
        &t!(watcher.changed()),
        EventType::NodeChildrenChanged,
        &root,
    );

    // Changing a child's data or the node's own data is not a child change.
    let (_, _, watcher) = t!(c.get_and_watch_children(&root)).unwrap();
    t!(writer.set_data(&format!("{root}/a"), b"x", None)).unwrap();
    t!(writer.set_data(&root, b"x", None)).unwrap();
    // Grandchildren are not children.
    mk(&writer, &format!("{root}/a/g")).await;
    t!(writer.delete(&format!("{root}/b"), None)).unwrap();
    assert_event(
        &t!(watcher.changed()),
        EventType::NodeChildrenChanged,
        &root,
    );

    // Deleting the watched node itself fires NodeDeleted.
    let sub = format!("{root}/a/g");
    let (_, watcher) = t!(c.list_and_watch_children(&sub)).unwrap();
    t!(writer.delete(&sub, None)).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeDeleted, &sub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watching_session_is_notified() {
    let server = TestServer::start();
    let writer = server.client().await;
    let root = test_root(&writer, "fanout").await;
    let mut clients = Vec::new();
    let mut watchers = Vec::new();
    for _ in 0..4 {
        let c = server.client().await;
        t!(c.sync(&root)).unwrap();
        let (_, _, w) = t!(c.get_and_watch_data(&root)).unwrap();
        watchers.push(w);
        clients.push(c);
    }
    t!(writer.set_data(&root, b"go", None)).unwrap();
    for w in watchers {
        assert_event(&t!(w.changed()), EventType::NodeDataChanged, &root);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watch_stays_armed() {
    let server = TestServer::start();
    let c = server.client().await;
    let writer = server.client().await;
    let root = test_root(&c, "persistent").await;
    let path = format!("{root}/p");

    let mut watcher = t!(c.watch(&path, AddWatchMode::Persistent)).unwrap();
    mk(&writer, &path).await;
    assert_event(&t!(watcher.changed()), EventType::NodeCreated, &path);
    t!(writer.set_data(&path, b"1", None)).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeDataChanged, &path);
    t!(writer.set_data(&path, b"2", None)).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeDataChanged, &path);
    mk(&writer, &format!("{path}/child")).await;
    assert_event(
        &t!(watcher.changed()),
        EventType::NodeChildrenChanged,
        &path,
    );
    // Not recursive: a grandchild or a child's data is not reported.
    mk(&writer, &format!("{path}/child/g")).await;
    t!(writer.set_data(&format!("{path}/child"), b"x", None)).unwrap();
    t!(writer.delete(&format!("{path}/child/g"), None)).unwrap();
    t!(writer.delete(&format!("{path}/child"), None)).unwrap();
    assert_event(
        &t!(watcher.changed()),
        EventType::NodeChildrenChanged,
        &path,
    );
    t!(writer.delete(&path, None)).unwrap();
    assert_event(&t!(watcher.changed()), EventType::NodeDeleted, &path);
    mk(&writer, &path).await;
    assert_event(&t!(watcher.changed()), EventType::NodeCreated, &path);
    assert!(tokio::time::timeout(QUIET, watcher.changed())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_watch_sees_subtree_without_child_events() {
    let server = TestServer::start();
    let c = server.client().await;
    let writer = server.client().await;
    let root = test_root(&c, "recursive").await;

    let mut watcher = t!(c.watch(&root, AddWatchMode::PersistentRecursive)).unwrap();
    let a = format!("{root}/a");
    let b = format!("{root}/a/b");
    mk(&writer, &a).await;
    mk(&writer, &b).await;
    t!(writer.set_data(&b, b"1", None)).unwrap();
    t!(writer.set_data(&root, b"1", None)).unwrap();
    t!(writer.delete(&b, None)).unwrap();
    t!(writer.delete(&a, None)).unwrap();
    let expected = [
        (EventType::NodeCreated, &a),
        (EventType::NodeCreated, &b),
        (EventType::NodeDataChanged, &b),
        (EventType::NodeDataChanged, &root),
        (EventType::NodeDeleted, &b),
        (EventType::NodeDeleted, &a),
    ];
    for (event_type, path) in expected {
        assert_event(&t!(watcher.changed()), event_type, path);
    }
    // In particular, no NodeChildrenChanged ever.
    assert!(tokio::time::timeout(QUIET, watcher.changed())
        .await
        .is_err());
}

#[test]
fn one_shot_watches_fire_exactly_once() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let mut writer = server.raw(max);
    let root = unique_prefix("exactly-once");
    writer.create(&root, b"", 0).ok();
    let n = format!("{root}/n");
    writer.create(&n, b"", 0).ok();

    w.sync(&n);
    w.get_data(&n, true).ok();
    w.exists(&n, true).ok();
    w.get_children(&root, true).ok();
    writer.set_data(&n, b"1", -1).ok();
    writer.set_data(&n, b"2", -1).ok();
    writer.create(&format!("{root}/c1"), b"", 0).ok();
    writer.create(&format!("{root}/c2"), b"", 0).ok();
    // One data change event for the getData and exists watches together (one watcher per
    // session and path), one child event for two creates.
    let events = w.settled_events(QUIET);
    assert_eq!(
        kinds(&events),
        vec![
            ev(raw::EV_NODE_DATA_CHANGED, &n),
            ev(raw::EV_NODE_CHILDREN_CHANGED, &root)
        ]
    );
    for e in &events {
        assert_eq!(e.state, 3, "SyncConnected");
    }
}

#[test]
fn notification_frame_fields() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let root = unique_prefix("notification");
    w.create(&root, b"", 0).ok();
    w.get_data(&root, true).ok();
    let mut writer = server.raw(max);
    let set = writer.set_data(&root, b"x", -1).ok();
    let event = w
        .next_event(Duration::from_secs(5))
        .expect("no notification");
    assert_eq!(event.event_type, raw::EV_NODE_DATA_CHANGED);
    assert_eq!(event.state, 3);
    assert_eq!(event.path, root);
    // Apache ZooKeeper 3.8 sends -1 in the notification's ReplyHeader.zxid (3.9 started
    // sending the triggering zxid); a server may send either but nothing else.
    assert!(
        event.zxid == -1 || event.zxid == set.zxid,
        "notification zxid {} (write was {})",
        event.zxid,
        set.zxid
    );
}

#[test]
fn delete_fires_node_deleted_then_parent_child_change() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let mut writer = server.raw(max);
    let root = unique_prefix("delete-order");
    writer.create(&root, b"", 0).ok();
    let n = format!("{root}/n");
    writer.create(&n, b"", 0).ok();

    // Data, exists and child watches on n, child watch on the parent.
    w.sync(&n);
    w.get_data(&n, true).ok();
    w.exists(&n, true).ok();
    w.get_children(&n, true).ok();
    w.get_children(&root, true).ok();
    writer.delete(&n, -1).ok();
    assert_eq!(
        kinds(&w.settled_events(QUIET)),
        vec![
            ev(raw::EV_NODE_DELETED, &n),
            ev(raw::EV_NODE_CHILDREN_CHANGED, &root)
        ],
        "one NodeDeleted per session, then the parent's child change"
    );

    // Creation: NodeCreated for the node first, then the parent's child change.
    assert_eq!(w.exists(&n, true).err, raw::ERR_NO_NODE);
    w.get_children(&root, true).ok();
    writer.create(&n, b"", 0).ok();
    assert_eq!(
        kinds(&w.settled_events(QUIET)),
        vec![
            ev(raw::EV_NODE_CREATED, &n),
            ev(raw::EV_NODE_CHILDREN_CHANGED, &root)
        ]
    );
}

#[test]
fn events_arrive_in_commit_order() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let mut writer = server.raw(max);
    let root = unique_prefix("event-order");
    writer.create(&root, b"", 0).ok();
    let paths: Vec<String> = (0..8).map(|i| format!("{root}/n{i}")).collect();
    for p in &paths {
        writer.create(p, b"", 0).ok();
        w.sync(p);
        w.get_data(p, true).ok();
    }
    // Change them in a scrambled order; events must follow it.
    let order = [5, 2, 7, 0, 3, 6, 1, 4];
    for i in order {
        writer.set_data(&paths[i], b"x", -1).ok();
    }
    let got = kinds(&w.settled_events(QUIET));
    let want: Vec<_> = order
        .iter()
        .map(|&i| ev(raw::EV_NODE_DATA_CHANGED, &paths[i]))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn persistent_and_one_shot_watch_on_same_path_fire_once() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let mut writer = server.raw(max);
    let root = unique_prefix("dedup");
    writer.create(&root, b"", 0).ok();
    let n = format!("{root}/n");
    writer.create(&n, b"", 0).ok();

    // Sync first: w's shard may not have applied the creates yet, and a recursive watch
    // registered before that would (rightly) report n's creation.
    w.sync(&n);
    w.add_watch(&n, 0).ok();
    w.add_watch(&root, 1).ok();
    w.get_data(&n, true).ok();
    writer.set_data(&n, b"1", -1).ok();
    assert_eq!(
        kinds(&w.settled_events(QUIET)),
        vec![ev(raw::EV_NODE_DATA_CHANGED, &n)]
    );
    // The persistent watches remain: the next change is reported again, once.
    writer.set_data(&n, b"2", -1).ok();
    assert_eq!(
        kinds(&w.settled_events(QUIET)),
        vec![ev(raw::EV_NODE_DATA_CHANGED, &n)]
    );
    // A child of n: the recursive watch reports the creation, the persistent one on n the
    // child change.
    let c = format!("{n}/c");
    writer.create(&c, b"", 0).ok();
    assert_eq!(
        kinds(&w.settled_events(QUIET)),
        vec![
            ev(raw::EV_NODE_CREATED, &c),
            ev(raw::EV_NODE_CHILDREN_CHANGED, &n)
        ]
    );
}

#[test]
fn watch_event_precedes_new_data_on_the_connection() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let mut writer = server.raw(max);
    let root = unique_prefix("event-first");
    writer.create(&root, b"", 0).ok();
    w.sync(&root);

    for round in 0..20 {
        w.log.clear();
        w.get_data(&root, true).ok();
        // Pipeline the write from another session and reads from the watcher without waiting.
        let write_xid = writer.send(
            raw::OP_SET_DATA,
            &raw::Enc::new().string(&root).buffer(b"v").int(-1).finish(),
        );
        let mut seen_new = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !seen_new {
            assert!(Instant::now() < deadline, "new data never became visible");
            // Back to back, as fast as one client thread can poll: a shard serving this
            // connection's reads must still apply commits (and its reads wait for what was
            // released before them).
            let r = w.get_data(&root, false).ok();
            let mut d = r.dec();
            d.buffer();
            let stat = d.stat();
            seen_new = stat.version == round + 1;
            if seen_new {
                // The reply carrying the new version must come after the notification.
                let event_pos = w.log.iter().position(|f| matches!(f, raw::Frame::Event(_)));
                let reply_pos = w.log.len() - 1;
                assert!(
                    matches!(event_pos, Some(p) if p < reply_pos),
                    "round {round}: new data visible before the watch event: {:?}",
                    w.log
                );
            }
        }
        writer.wait_reply(write_xid).ok();
        w.events.clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_event_delivered_before_read_returns_new_data() {
    let server = TestServer::start();
    let c = server.client().await;
    let writer = server.client().await;
    let root = test_root(&c, "event-first-crate").await;
    for round in 0..10 {
        let (_, stat, watcher) = t!(c.get_and_watch_data(&root)).unwrap();
        assert_eq!(stat.version, round);
        let write = writer.set_data(&root, b"v", None);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < deadline, "new data never became visible");
            let (_, s) = t!(c.get_data(&root)).unwrap();
            if s.version == round + 1 {
                break;
            }
        }
        // The event was delivered before the read that returned new data.
        let event = tokio::time::timeout(Duration::ZERO, watcher.changed())
            .await
            .expect("read returned new data before the watch event arrived");
        assert_event(&event, EventType::NodeDataChanged, &root);
        t!(write).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_operations_complete_in_order() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "fifo").await;
    let n = format!("{root}/n");
    mk(&c, &n).await;

    // Requests are sent when the futures are created; nothing is awaited until all are out.
    // Each setData names the exact version the previous one produces, each getData must see
    // the write queued right before it, and sequential creates get increasing suffixes.
    let seq_path = format!("{root}/s-");
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    let mut creates = Vec::new();
    let seq_opts = zookeeper_client::CreateMode::PersistentSequential
        .with_acls(zookeeper_client::Acls::anyone_all());
    for i in 0..100i32 {
        sets.push(c.set_data(&n, &i.to_be_bytes(), Some(i)));
        gets.push(c.get_data(&n));
        creates.push(c.create(&seq_path, b"", &seq_opts));
    }
    for (i, ((set, get), create)) in sets.into_iter().zip(gets).zip(creates).enumerate() {
        let i = i as i32;
        let stat = t!(set).unwrap_or_else(|e| panic!("setData #{i}: {e}"));
        assert_eq!(stat.version, i + 1);
        let (data, stat) = t!(get).unwrap();
        assert_eq!(data, i.to_be_bytes(), "getData #{i} saw another write");
        assert_eq!(stat.version, i + 1);
        let (_, seq) = t!(create).unwrap();
        // n is the first child, so the i-th sequential create gets suffix i + 1.
        assert_eq!(seq.into_i64(), i64::from(i) + 1);
    }
}

#[test]
fn pipelined_raw_replies_keep_request_order() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("fifo-raw");
    c.create(&root, b"", 0).ok();
    let mut xids = Vec::new();
    for i in 0..200 {
        let path = format!("{root}/n{}", i % 10);
        let xid = match i % 4 {
            0 => c.send(
                raw::OP_CREATE,
                &raw::Enc::new()
                    .string(&path)
                    .buffer(b"")
                    .open_acl()
                    .int(0)
                    .finish(),
            ),
            1 => c.send(
                raw::OP_GET_DATA,
                &raw::Enc::new().string(&path).bool(false).finish(),
            ),
            2 => c.send(
                raw::OP_SET_DATA,
                &raw::Enc::new().string(&path).buffer(b"x").int(-1).finish(),
            ),
            _ => c.send(
                raw::OP_EXISTS,
                &raw::Enc::new().string(&root).bool(false).finish(),
            ),
        };
        xids.push(xid);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_zxid = 0;
    for want in xids {
        match c.read_frame(deadline).expect("reply") {
            raw::Frame::Reply(r) => {
                assert_eq!(r.xid, want, "replies out of order");
                assert!(r.zxid >= last_zxid, "reply zxid went backwards");
                last_zxid = r.zxid;
            }
            raw::Frame::Event(e) => panic!("unexpected event {e:?}"),
        }
    }
}

#[test]
fn check_and_remove_watches() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let mut writer = server.raw(max);
    let root = unique_prefix("remove-watches");
    writer.create(&root, b"", 0).ok();
    let n = format!("{root}/n");
    writer.create(&n, b"", 0).ok();

    w.sync(&n);
    assert_eq!(
        w.check_watches(&n, raw::WATCHER_DATA).err,
        raw::ERR_NO_WATCHER
    );
    assert_eq!(
        w.remove_watches(&n, raw::WATCHER_DATA).err,
        raw::ERR_NO_WATCHER
    );
    assert_eq!(
        w.remove_watches(&format!("{root}/missing"), raw::WATCHER_ANY)
            .err,
        raw::ERR_NO_WATCHER
    );

    w.get_data(&n, true).ok();
    assert_eq!(w.check_watches(&n, raw::WATCHER_DATA).err, raw::OK);
    assert_eq!(w.check_watches(&n, raw::WATCHER_ANY).err, raw::OK);
    assert_eq!(
        w.check_watches(&n, raw::WATCHER_CHILDREN).err,
        raw::ERR_NO_WATCHER
    );
    assert_eq!(
        w.remove_watches(&n, raw::WATCHER_CHILDREN).err,
        raw::ERR_NO_WATCHER
    );
    let removed = w.remove_watches(&n, raw::WATCHER_DATA);
    assert_eq!(removed.err, raw::OK);
    assert!(removed.body.is_empty());
    assert_eq!(
        w.check_watches(&n, raw::WATCHER_DATA).err,
        raw::ERR_NO_WATCHER
    );
    writer.set_data(&n, b"1", -1).ok();
    // The server sends nothing for a removed watch (the client library synthesizes
    // DataWatchRemoved locally) and nothing for the change.
    assert!(w.drain_events(QUIET).is_empty());

    // ANY removes data and child watches together; another session's watch is unaffected.
    let mut other = server.raw(max);
    other.sync(&n);
    other.get_data(&n, true).ok();
    w.get_children(&n, true).ok();
    w.exists(&n, true).ok();
    assert_eq!(w.check_watches(&n, raw::WATCHER_CHILDREN).err, raw::OK);
    assert_eq!(w.remove_watches(&n, raw::WATCHER_ANY).err, raw::OK);
    // (Not checkWatches here: Apache ZooKeeper 3.8 answers OK to checkWatches when any
    // session watches the path, so it cannot tell this session's watches apart.)
    assert_eq!(
        w.remove_watches(&n, raw::WATCHER_ANY).err,
        raw::ERR_NO_WATCHER
    );
    writer.create(&format!("{n}/c"), b"", 0).ok();
    writer.set_data(&n, b"2", -1).ok();
    assert!(w.drain_events(QUIET).is_empty());
    assert_eq!(
        kinds(&other.settled_events(QUIET)),
        vec![ev(raw::EV_NODE_DATA_CHANGED, &n)]
    );
}

#[test]
fn set_watches_after_reconnect_reports_missed_changes() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let mut writer = server.raw(max);
    let root = unique_prefix("set-watches");
    writer.create(&root, b"", 0).ok();
    let p = |i: u32| format!("{root}/n{i}");
    for i in [1, 2, 4, 5, 6] {
        writer.create(&p(i), b"", 0).ok();
    }
    // n1: data (changed), n2: data (deleted), n3: exists (created), n4: child (child added),
    // n5: data (untouched), n6: child (deleted), n7: exists (stays missing).
    w.sync(&root);
    w.get_data(&p(1), true).ok();
    w.get_data(&p(2), true).ok();
    assert_eq!(w.exists(&p(3), true).err, raw::ERR_NO_NODE);
    w.get_children(&p(4), true).ok();
    w.get_data(&p(5), true).ok();
    w.get_children(&p(6), true).ok();
    assert_eq!(w.exists(&p(7), true).err, raw::ERR_NO_NODE);
    let addr = w.addr.clone();
    let (session_id, passwd, last_zxid) = w.disconnect();

    writer.set_data(&p(1), b"x", -1).ok();
    writer.delete(&p(2), -1).ok();
    writer.create(&p(3), b"", 0).ok();
    writer.create(&format!("{}/c", p(4)), b"", 0).ok();
    writer.delete(&p(6), -1).ok();

    let mut w = Raw::resume(&addr, session_id, &passwd, last_zxid, max);
    let (n1, n2, n3, n4, n5, n6, n7) = (p(1), p(2), p(3), p(4), p(5), p(6), p(7));
    let reply = w.set_watches(last_zxid, &[&n1, &n2, &n5], &[&n3, &n7], &[&n4, &n6]);
    assert_eq!((reply.xid, reply.err), (raw::XID_SET_WATCHES, raw::OK));
    let mut got = kinds(&w.settled_events(QUIET));
    got.sort();
    let mut want = vec![
        ev(raw::EV_NODE_DATA_CHANGED, &n1),
        ev(raw::EV_NODE_DELETED, &n2),
        ev(raw::EV_NODE_CREATED, &n3),
        ev(raw::EV_NODE_CHILDREN_CHANGED, &n4),
        ev(raw::EV_NODE_DELETED, &n6),
    ];
    want.sort();
    assert_eq!(got, want);

    // The watches that did not fire are armed; the ones that fired are spent.
    writer.set_data(&n5, b"y", -1).ok();
    writer.create(&n7, b"", 0).ok();
    writer.set_data(&n1, b"z", -1).ok();
    assert_eq!(
        kinds(&w.settled_events(QUIET)),
        vec![
            ev(raw::EV_NODE_DATA_CHANGED, &n5),
            ev(raw::EV_NODE_CREATED, &n7)
        ]
    );
}

#[test]
fn set_watches2_restores_persistent_watches_without_catch_up() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut w = server.raw(max);
    let mut writer = server.raw(max);
    let root = unique_prefix("set-watches2");
    writer.create(&root, b"", 0).ok();
    let (d, p, r) = (
        format!("{root}/d"),
        format!("{root}/p"),
        format!("{root}/r"),
    );
    for path in [&d, &p, &r] {
        writer.create(path, b"", 0).ok();
    }
    w.sync(&root);
    w.get_data(&d, true).ok();
    w.add_watch(&p, 0).ok();
    w.add_watch(&r, 1).ok();
    let addr = w.addr.clone();
    let (session_id, passwd, last_zxid) = w.disconnect();

    writer.set_data(&d, b"x", -1).ok();
    writer.set_data(&p, b"x", -1).ok();
    writer.create(&format!("{r}/missed"), b"", 0).ok();

    let mut w = Raw::resume(&addr, session_id, &passwd, last_zxid, max);
    let reply = w.set_watches2(last_zxid, [&[&d], &[], &[]], &[&p], &[&r]);
    assert_eq!((reply.xid, reply.err), (raw::XID_SET_WATCHES, raw::OK));
    // The one-shot watch catches up; persistent ones are just re-armed (changes made while
    // disconnected are not replayed, ZOOKEEPER-4698).
    assert_eq!(
        kinds(&w.settled_events(QUIET)),
        vec![ev(raw::EV_NODE_DATA_CHANGED, &d)]
    );
    writer.set_data(&p, b"y", -1).ok();
    writer.create(&format!("{r}/c"), b"", 0).ok();
    writer.set_data(&p, b"z", -1).ok();
    assert_eq!(
        kinds(&w.settled_events(QUIET)),
        vec![
            ev(raw::EV_NODE_DATA_CHANGED, &p),
            ev(raw::EV_NODE_CREATED, &format!("{r}/c")),
            ev(raw::EV_NODE_DATA_CHANGED, &p),
        ]
    );
}
