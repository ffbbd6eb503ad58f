//! Node operations through the `zookeeper-client` crate: every create mode, stats, versions,
//! reads, and the error codes each operation can return.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use zookeeper_client::{Acls, CreateMode, Error, Stat};

fn mode(mode: CreateMode) -> zookeeper_client::CreateOptions<'static> {
    mode.with_acls(Acls::anyone_all())
}

async fn stat_of(client: &zookeeper_client::Client, path: &str) -> Stat {
    t!(client.check_stat(path))
        .unwrap_or_else(|e| panic!("exists {path}: {e}"))
        .unwrap_or_else(|| panic!("{path} does not exist"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_persistent_stat_fields() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "create-stat").await;
    let parent_before = stat_of(&c, &root).await;
    assert_eq!(parent_before.num_children, 0);
    assert_eq!(parent_before.cversion, 0);

    let path = format!("{root}/a");
    let (stat, seq) = t!(c.create(&path, b"hello", &persistent())).unwrap();
    assert_eq!(seq.into_i64(), -1, "non-sequential create has no sequence");
    assert!(stat.czxid > parent_before.czxid);
    assert_eq!(stat.mzxid, stat.czxid);
    assert_eq!(stat.pzxid, stat.czxid, "a new node's pzxid is its czxid");
    assert_eq!(stat.ctime, stat.mtime);
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(stat.data_length, 5);
    assert_eq!(stat.num_children, 0);

    // create2's stat is the stored stat.
    let (data, read_stat) = t!(c.get_data(&path)).unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(read_stat, stat);
    assert_eq!(stat_of(&c, &path).await, stat);

    // The parent: one more child, pzxid = the child's czxid, its own data untouched.
    let parent = stat_of(&c, &root).await;
    assert_eq!(parent.num_children, 1);
    assert_eq!(parent.cversion, 1);
    assert_eq!(parent.pzxid, stat.czxid);
    assert_eq!(parent.mzxid, parent_before.mzxid);
    assert_eq!(parent.version, parent_before.version);
    assert_eq!(parent.czxid, parent_before.czxid);

    let (b_stat, _) = t!(c.create(&format!("{root}/b"), b"", &persistent())).unwrap();
    assert!(b_stat.czxid > stat.czxid);
    assert_eq!(b_stat.data_length, 0);
    let parent = stat_of(&c, &root).await;
    assert_eq!((parent.num_children, parent.cversion), (2, 2));
    assert_eq!(parent.pzxid, b_stat.czxid);

    // Data changes on a child do not touch the parent.
    let set = t!(c.set_data(&path, b"x", None)).unwrap();
    assert!(set.mzxid > b_stat.czxid);
    let parent2 = stat_of(&c, &root).await;
    assert_eq!(parent2, parent);

    // Deleting a child moves pzxid past every earlier zxid and counts as a child change.
    t!(c.delete(&format!("{root}/b"), None)).unwrap();
    let parent3 = stat_of(&c, &root).await;
    assert_eq!(parent3.num_children, 1);
    assert_eq!(parent3.cversion, 3);
    assert!(parent3.pzxid > set.mzxid);
    assert_eq!(parent3.mzxid, parent_before.mzxid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_ephemeral_owned_by_session() {
    let server = TestServer::start();
    let c = server.client().await;
    let other = server.client().await;
    let root = test_root(&c, "ephemeral").await;
    let path = format!("{root}/e");
    let (stat, _) = t!(c.create(&path, b"v", &mode(CreateMode::Ephemeral))).unwrap();
    assert_eq!(stat.ephemeral_owner, c.session_id().0);
    assert_ne!(stat.ephemeral_owner, 0);
    // Seen the same from another session.
    t!(other.sync(&path)).unwrap();
    assert_eq!(
        stat_of(&other, &path).await.ephemeral_owner,
        c.session_id().0
    );

    // Ephemerals cannot have children, whatever the child's mode.
    for m in [
        CreateMode::Persistent,
        CreateMode::Ephemeral,
        CreateMode::PersistentSequential,
    ] {
        let err = t!(c.create(&format!("{path}/child"), b"", &mode(m))).unwrap_err();
        assert_eq!(err, Error::NoChildrenForEphemerals, "mode {m:?}");
    }
    assert!(t!(c.list_children(&path)).unwrap().is_empty());

    // getEphemerals lists only the caller's ephemerals under the prefix.
    let (other_stat, _) =
        t!(other.create(&format!("{root}/o"), b"", &mode(CreateMode::Ephemeral))).unwrap();
    assert_eq!(other_stat.ephemeral_owner, other.session_id().0);
    let (_, seq) = t!(c.create(
        &format!("{root}/es-"),
        b"",
        &mode(CreateMode::EphemeralSequential)
    ))
    .unwrap();
    let mut mine = t!(c.list_ephemerals(&root)).unwrap();
    mine.sort();
    let mut expected = vec![path.clone(), format!("{root}/es-{seq}")];
    expected.sort();
    assert_eq!(mine, expected);
    assert_eq!(
        t!(other.list_ephemerals(&root)).unwrap(),
        vec![format!("{root}/o")]
    );
    // A prefix that is not a node still matches by string prefix; a missing one is empty.
    assert_eq!(
        t!(c.list_ephemerals(&format!("{root}/es"))).unwrap(),
        vec![format!("{root}/es-{seq}")]
    );
    assert!(t!(c.list_ephemerals(&format!("{root}/missing")))
        .unwrap()
        .is_empty());

    // Another session may delete someone else's ephemeral (open ACL).
    t!(other.delete(&path, None)).unwrap();
    t!(c.sync(&path)).unwrap();
    assert!(t!(c.check_stat(&path)).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_suffix_follows_parent_creations() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "sequential").await;

    let (s0, seq0) = t!(c.create(
        &format!("{root}/s-"),
        b"",
        &mode(CreateMode::PersistentSequential)
    ))
    .unwrap();
    assert_eq!(seq0.into_i64(), 0);
    assert_eq!(seq0.to_string(), "0000000000");
    assert_eq!(s0.ephemeral_owner, 0);

    t!(c.create(&format!("{root}/x"), b"", &persistent())).unwrap();
    let (_, seq1) = t!(c.create(
        &format!("{root}/s-"),
        b"",
        &mode(CreateMode::PersistentSequential)
    ))
    .unwrap();
    assert_eq!(
        seq1.to_string(),
        "0000000002",
        "suffix counts every child created before"
    );

    // A delete is a child change (cversion moves) but the suffix counts creations only:
    // Apache ZooKeeper stores cversion as the number of creates and reports
    // 2 * creates - numChildren.
    t!(c.delete(&format!("{root}/x"), None)).unwrap();
    let parent = stat_of(&c, &root).await;
    assert_eq!(parent.num_children, 2);
    assert_eq!(parent.cversion, 4);
    let (e_stat, seq2) = t!(c.create(
        &format!("{root}/e-"),
        b"",
        &mode(CreateMode::EphemeralSequential)
    ))
    .unwrap();
    assert_eq!(seq2.to_string(), "0000000003");
    assert_eq!(e_stat.ephemeral_owner, c.session_id().0);

    // A failed create does not consume a sequence number.
    let err = t!(c.create(&format!("{root}/s-0000000000"), b"", &persistent())).unwrap_err();
    assert_eq!(err, Error::NodeExists);

    // A sequential node may be named by the suffix alone.
    let (_, seq3) = t!(c.create(
        &format!("{root}/"),
        b"",
        &mode(CreateMode::PersistentSequential)
    ))
    .unwrap();
    assert_eq!(seq3.to_string(), "0000000004");

    let mut children = t!(c.list_children(&root)).unwrap();
    children.sort();
    assert_eq!(
        children,
        vec!["0000000004", "e-0000000003", "s-0000000000", "s-0000000002"]
    );
    let parent = stat_of(&c, &root).await;
    assert_eq!(parent.num_children, 4);
    assert_eq!(parent.cversion, 2 * 5 - 4);

    // Sequence numbers are per parent.
    let sub = format!("{root}/s-0000000000");
    let (_, sub_seq) = t!(c.create(
        &format!("{sub}/n"),
        b"",
        &mode(CreateMode::PersistentSequential)
    ))
    .unwrap();
    assert_eq!(sub_seq.to_string(), "0000000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_removed_after_last_child_goes() {
    let server = TestServer::start();
    let c = server.client().await;
    let watcher_client = server.client().await;
    let root = test_root(&c, "container").await;

    let container = format!("{root}/c");
    let (stat, _) = t!(c.create(&container, b"d", &mode(CreateMode::Container))).unwrap();
    // Containers are stored with a special owner but report ephemeralOwner 0.
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(stat.data_length, 1);

    // A container that never had a child is kept.
    let never_used = format!("{root}/never");
    t!(c.create(&never_used, b"", &mode(CreateMode::Container))).unwrap();

    t!(c.create(&format!("{container}/child"), b"", &persistent())).unwrap();
    // A container with a child stays.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(t!(c.check_stat(&container)).unwrap().is_some());

    t!(watcher_client.sync(&container)).unwrap();
    let (_, watcher) = t!(watcher_client.check_and_watch_stat(&container)).unwrap();
    t!(c.delete(&format!("{container}/child"), None)).unwrap();
    let event = t!(watcher.changed());
    assert_eq!(event.event_type, zookeeper_client::EventType::NodeDeleted);
    assert_eq!(event.path, container);
    t!(c.sync(&container)).unwrap();
    assert!(t!(c.check_stat(&container)).unwrap().is_none());

    assert!(
        t!(c.check_stat(&never_used)).unwrap().is_some(),
        "a container that never had children must not be removed"
    );
    // The container's removal is a child change of its parent.
    let parent = stat_of(&c, &root).await;
    assert_eq!(parent.num_children, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_node_removed_after_expiry() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "ttl").await;
    let ttl = Duration::from_millis(300);

    let path = format!("{root}/t");
    let (stat, _) = t!(c.create(&path, b"", &mode(CreateMode::Persistent).with_ttl(ttl))).unwrap();
    // TTL nodes report ephemeralOwner 0 like containers.
    assert_eq!(stat.ephemeral_owner, 0);

    let (_, seq) = t!(c.create(
        &format!("{root}/ts-"),
        b"",
        &mode(CreateMode::PersistentSequential).with_ttl(ttl)
    ))
    .unwrap();
    assert_eq!(seq.to_string(), "0000000001");

    // A TTL node with a child is not removed.
    let parent_ttl = format!("{root}/tp");
    t!(c.create(
        &parent_ttl,
        b"",
        &mode(CreateMode::Persistent).with_ttl(ttl)
    ))
    .unwrap();
    t!(c.create(&format!("{parent_ttl}/child"), b"", &persistent())).unwrap();

    let gone = eventually(Duration::from_secs(8), || async {
        t!(c.check_stat(&path)).unwrap().is_none()
            && t!(c.check_stat(&format!("{root}/ts-{seq}")))
                .unwrap()
                .is_none()
    })
    .await;
    assert!(gone, "TTL nodes still present well after their TTL");
    assert!(t!(c.check_stat(&parent_ttl)).unwrap().is_some());

    // Once childless (and its mtime long past the TTL) it goes too.
    t!(c.delete(&format!("{parent_ttl}/child"), None)).unwrap();
    let gone = eventually(Duration::from_secs(8), || async {
        t!(c.check_stat(&parent_ttl)).unwrap().is_none()
    })
    .await;
    assert!(gone, "childless expired TTL node still present");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_versions() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "delete").await;
    let path = format!("{root}/n");
    t!(c.create(&path, b"", &persistent())).unwrap();
    t!(c.set_data(&path, b"1", Some(0))).unwrap();

    assert_eq!(t!(c.delete(&path, Some(0))).unwrap_err(), Error::BadVersion);
    assert_eq!(t!(c.delete(&path, Some(2))).unwrap_err(), Error::BadVersion);
    t!(c.delete(&path, Some(1))).unwrap();
    assert_eq!(t!(c.delete(&path, None)).unwrap_err(), Error::NoNode);
    assert_eq!(t!(c.delete(&path, Some(1))).unwrap_err(), Error::NoNode);

    // -1 matches any version.
    t!(c.create(&path, b"", &persistent())).unwrap();
    t!(c.set_data(&path, b"1", None)).unwrap();
    t!(c.set_data(&path, b"2", None)).unwrap();
    t!(c.delete(&path, Some(-1))).unwrap();

    // A node with children cannot be deleted; NotEmpty wins over a version match.
    t!(c.create(&path, b"", &persistent())).unwrap();
    t!(c.create(&format!("{path}/c"), b"", &persistent())).unwrap();
    assert_eq!(t!(c.delete(&path, None)).unwrap_err(), Error::NotEmpty);
    assert_eq!(t!(c.delete(&path, Some(0))).unwrap_err(), Error::NotEmpty);
    // ... but BadVersion is checked before NotEmpty.
    assert_eq!(t!(c.delete(&path, Some(7))).unwrap_err(), Error::BadVersion);
    t!(c.delete(&format!("{path}/c"), None)).unwrap();
    t!(c.delete(&path, Some(0))).unwrap();

    // Deleting under a missing parent is NoNode.
    assert_eq!(
        t!(c.delete(&format!("{root}/no/such"), None)).unwrap_err(),
        Error::NoNode
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_versions_and_stat() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "setdata").await;
    let path = format!("{root}/n");
    let (created, _) = t!(c.create(&path, b"a", &persistent())).unwrap();

    let s1 = t!(c.set_data(&path, b"bb", Some(0))).unwrap();
    assert_eq!(s1.version, 1);
    assert_eq!(s1.data_length, 2);
    assert_eq!(s1.czxid, created.czxid);
    assert_eq!(s1.ctime, created.ctime);
    assert!(s1.mzxid > created.mzxid);
    assert!(s1.mtime >= created.mtime);
    assert_eq!(s1.pzxid, created.pzxid, "setData leaves pzxid alone");
    assert_eq!((s1.cversion, s1.aversion), (0, 0));

    assert_eq!(
        t!(c.set_data(&path, b"c", Some(0))).unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        t!(c.set_data(&path, b"c", Some(5))).unwrap_err(),
        Error::BadVersion
    );
    let (data, now) = t!(c.get_data(&path)).unwrap();
    assert_eq!(
        (data.as_slice(), now),
        (&b"bb"[..], s1),
        "failed setData changed nothing"
    );

    let s2 = t!(c.set_data(&path, b"", None)).unwrap();
    assert_eq!(s2.version, 2);
    assert_eq!(s2.data_length, 0);
    assert!(s2.mzxid > s1.mzxid);
    let (data, _) = t!(c.get_data(&path)).unwrap();
    assert!(data.is_empty());

    // Larger payloads round-trip unchanged.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let s3 = t!(c.set_data(&path, &big, Some(2))).unwrap();
    assert_eq!(s3.data_length, 100_000);
    let (data, _) = t!(c.get_data(&path)).unwrap();
    assert_eq!(data, big);

    assert_eq!(
        t!(c.set_data(&format!("{root}/missing"), b"", None)).unwrap_err(),
        Error::NoNode
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_get_and_children() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "reads").await;

    assert!(t!(c.check_stat(&format!("{root}/missing")))
        .unwrap()
        .is_none());
    assert_eq!(
        t!(c.get_data(&format!("{root}/missing"))).unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        t!(c.list_children(&format!("{root}/missing"))).unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        t!(c.get_children(&format!("{root}/missing"))).unwrap_err(),
        Error::NoNode
    );

    let names = ["a", "b", "c", "d", "e"];
    for name in names {
        t!(c.create(&format!("{root}/{name}"), name.as_bytes(), &persistent())).unwrap();
    }
    t!(c.create(&format!("{root}/a/deep"), b"", &persistent())).unwrap();
    t!(c.create(&format!("{root}/a/deep/er"), b"", &persistent())).unwrap();

    // Children come back as names (no order is promised), with the parent's stat for
    // getChildren2.
    let mut listed = t!(c.list_children(&root)).unwrap();
    listed.sort();
    assert_eq!(listed, names);
    let (mut children, stat) = t!(c.get_children(&root)).unwrap();
    children.sort();
    assert_eq!(children, names);
    assert_eq!(stat, stat_of(&c, &root).await);
    assert_eq!(stat.num_children, 5);
    assert_eq!(
        t!(c.list_children(&format!("{root}/b"))).unwrap(),
        Vec::<String>::new()
    );

    // getAllChildrenNumber counts all descendants, not the node itself.
    assert_eq!(t!(c.count_descendants_number(&root)).unwrap(), 7);
    assert_eq!(
        t!(c.count_descendants_number(&format!("{root}/a"))).unwrap(),
        2
    );
    assert_eq!(
        t!(c.count_descendants_number(&format!("{root}/b"))).unwrap(),
        0
    );
    assert_eq!(
        t!(c.count_descendants_number(&format!("{root}/missing"))).unwrap_err(),
        Error::NoNode
    );

    // sync answers for existing and missing paths alike.
    t!(c.sync(&root)).unwrap();
    t!(c.sync(&format!("{root}/missing"))).unwrap();

    // The reserved /zookeeper subtree is there with its quota and config nodes.
    let mut zk_children = t!(c.list_children("/zookeeper")).unwrap();
    zk_children.sort();
    assert_eq!(zk_children, vec!["config", "quota"]);
    assert!(t!(c.check_stat("/")).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_for_create() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "errors").await;

    assert_eq!(
        t!(c.create(&root, b"", &persistent())).unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        t!(c.create(&format!("{root}/a/b"), b"", &persistent())).unwrap_err(),
        Error::NoNode
    );
    // NodeExists applies regardless of the mode asked for.
    t!(c.create(&format!("{root}/a"), b"", &persistent())).unwrap();
    for m in [
        CreateMode::Ephemeral,
        CreateMode::Container,
        CreateMode::Persistent,
    ] {
        assert_eq!(
            t!(c.create(&format!("{root}/a"), b"", &mode(m))).unwrap_err(),
            Error::NodeExists
        );
    }
    assert_eq!(t!(c.delete(&root, None)).unwrap_err(), Error::NotEmpty);
    // A failed create left no trace.
    let (children, _) = t!(c.get_children(&root)).unwrap();
    assert_eq!(children, vec!["a"]);
}
