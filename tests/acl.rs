//! ACLs and authentication: default ACL, setACL with aversion, permission checks per
//! operation, digest auth (including the `auth` scheme and the super digest), ip ACLs,
//! InvalidACL, whoAmI and getACL redaction.

#[macro_use]
mod common;

use common::raw::{self, Enc};
use common::*;
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Error, Permission, SessionState};

fn acl(perms: Permission, scheme: &str, id: &str) -> Acl {
    Acl::new(perms, AuthId::new(scheme, id))
}

fn acl_strings(acls: &[Acl]) -> Vec<String> {
    let mut v: Vec<String> = acls
        .iter()
        .map(|a| format!("{}:{}:{}", a.scheme(), a.id(), a.permission()))
        .collect();
    v.sort();
    v
}

async fn authed_client(server: &TestServer, user_password: &str) -> Client {
    let c = server.client().await;
    t!(c.auth("digest", user_password.as_bytes())).unwrap();
    c
}

#[test]
fn digest_helper_matches_openssl() {
    // echo -n super:superpw | openssl sha1 -binary | base64
    assert_eq!(digest(SUPER_AUTH), format!("super:{SUPER_DIGEST}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_acl_and_set_acl_versions() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "setacl").await;
    let n = format!("{root}/n");
    mk(&c, &n).await;

    let (acls, stat) = t!(c.get_acl(&n)).unwrap();
    assert_eq!(acl_strings(&acls), vec!["world:anyone:ALL"]);
    assert_eq!(stat.aversion, 0);

    let read_write = [acl(
        Permission::READ | Permission::WRITE | Permission::ADMIN,
        "world",
        "anyone",
    )];
    let s1 = t!(c.set_acl(&n, &read_write, Some(0))).unwrap();
    assert_eq!(s1.aversion, 1);
    assert_eq!(s1.version, 0, "setACL leaves the data version");
    assert_eq!(s1.mzxid, stat.mzxid, "setACL is not a data change");
    assert_eq!(s1.cversion, stat.cversion);
    assert_eq!(
        t!(c.set_acl(&n, &read_write, Some(0))).unwrap_err(),
        Error::BadVersion
    );
    let s2 = t!(c.set_acl(&n, &read_write, None)).unwrap();
    assert_eq!(s2.aversion, 2);
    let (acls, stat) = t!(c.get_acl(&n)).unwrap();
    assert_eq!(acl_strings(&acls), vec!["world:anyone:READ|WRITE|ADMIN"]);
    assert_eq!(stat, s2);
    assert_eq!(stat_of(&c, &n).await, s2);

    // Without CREATE on the node, children cannot be added; without DELETE none removed.
    assert_eq!(
        t!(c.create(&format!("{n}/c"), b"", &persistent())).unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        t!(c.set_acl(&format!("{root}/missing"), &read_write, None)).unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        t!(c.get_acl(&format!("{root}/missing"))).unwrap_err(),
        Error::NoNode
    );
}

async fn stat_of(c: &Client, path: &str) -> zookeeper_client::Stat {
    t!(c.check_stat(path)).unwrap().expect("node exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_checked_per_operation() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "perms").await;

    // READ only.
    let ro = format!("{root}/ro");
    t!(c.create(
        &ro,
        b"data",
        &CreateMode::Persistent.with_acls(Acls::anyone_read())
    ))
    .unwrap();
    assert_eq!(t!(c.get_data(&ro)).unwrap().0, b"data");
    assert!(t!(c.list_children(&ro)).unwrap().is_empty());
    assert_eq!(
        acl_strings(&t!(c.get_acl(&ro)).unwrap().0),
        vec!["world:anyone:READ"]
    );
    assert_eq!(t!(c.set_data(&ro, b"x", None)).unwrap_err(), Error::NoAuth);
    // The ACL check comes before the version check.
    assert_eq!(
        t!(c.set_data(&ro, b"x", Some(42))).unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        t!(c.create(&format!("{ro}/c"), b"", &persistent())).unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        t!(c.set_acl(&ro, &Acls::anyone_all(), None)).unwrap_err(),
        Error::NoAuth
    );

    // CREATE only: children can be added but not listed or removed, the data not read.
    let co = format!("{root}/co");
    let create_only = [acl(Permission::CREATE, "world", "anyone")];
    t!(c.create(
        &co,
        b"",
        &CreateMode::Persistent.with_acls(Acls::new(&create_only))
    ))
    .unwrap();
    t!(c.create(&format!("{co}/child"), b"", &persistent())).unwrap();
    assert_eq!(t!(c.get_data(&co)).unwrap_err(), Error::NoAuth);
    assert_eq!(t!(c.list_children(&co)).unwrap_err(), Error::NoAuth);
    assert_eq!(t!(c.get_children(&co)).unwrap_err(), Error::NoAuth);
    assert_eq!(
        t!(c.get_acl(&co)).unwrap_err(),
        Error::NoAuth,
        "getACL needs READ or ADMIN"
    );
    assert_eq!(
        t!(c.delete(&format!("{co}/child"), None)).unwrap_err(),
        Error::NoAuth
    );
    // exists and sync need no permission.
    assert_eq!(stat_of(&c, &co).await.num_children, 1);
    t!(c.sync(&co)).unwrap();
    // Deleting a node needs DELETE on its parent, not on the node.
    t!(c.delete(&ro, None)).unwrap();

    // ADMIN only: the ACL can be read and changed, nothing else.
    let ad = format!("{root}/ad");
    let admin_only = [acl(Permission::ADMIN, "world", "anyone")];
    t!(c.create(
        &ad,
        b"",
        &CreateMode::Persistent.with_acls(Acls::new(&admin_only))
    ))
    .unwrap();
    assert_eq!(t!(c.get_data(&ad)).unwrap_err(), Error::NoAuth);
    assert_eq!(
        acl_strings(&t!(c.get_acl(&ad)).unwrap().0),
        vec!["world:anyone:ADMIN"]
    );
    t!(c.set_acl(&ad, &Acls::anyone_all(), Some(0))).unwrap();
    t!(c.get_data(&ad)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_protects_nodes() {
    let server = TestServer::start();
    let alice = authed_client(&server, "alice:pw").await;
    let anonymous = server.client().await;
    let bob = authed_client(&server, "bob:pw").await;
    let alice_wrong = authed_client(&server, "alice:wrong").await;
    let alice_again = authed_client(&server, "alice:pw").await;
    let root = test_root(&alice, "digest").await;

    let secret = format!("{root}/secret");
    let (_, _) = t!(alice.create(
        &secret,
        b"s",
        &CreateMode::Persistent.with_acls(Acls::creator_all())
    ))
    .unwrap();
    // The auth scheme is stored as the creator's digest identity.
    let (acls, _) = t!(alice.get_acl(&secret)).unwrap();
    assert_eq!(
        acl_strings(&acls),
        vec![format!("digest:{}:ALL", digest("alice:pw"))]
    );

    for (who, c) in [
        ("anonymous", &anonymous),
        ("bob", &bob),
        ("alice:wrong", &alice_wrong),
    ] {
        t!(c.sync(&secret)).unwrap();
        assert_eq!(
            t!(c.get_data(&secret)).unwrap_err(),
            Error::NoAuth,
            "{who} read"
        );
        assert_eq!(
            t!(c.set_data(&secret, b"x", None)).unwrap_err(),
            Error::NoAuth,
            "{who} write"
        );
        assert_eq!(
            t!(c.list_children(&secret)).unwrap_err(),
            Error::NoAuth,
            "{who} list"
        );
        assert_eq!(
            t!(c.get_acl(&secret)).unwrap_err(),
            Error::NoAuth,
            "{who} getACL"
        );
        assert_eq!(
            t!(c.create(&format!("{secret}/c"), b"", &persistent())).unwrap_err(),
            Error::NoAuth,
            "{who} create child"
        );
        // Existence is not protected.
        assert!(t!(c.check_stat(&secret)).unwrap().is_some());
    }
    // Another session authenticated as the same user has the same rights.
    t!(alice_again.sync(&secret)).unwrap();
    assert_eq!(t!(alice_again.get_data(&secret)).unwrap().0, b"s");
    t!(alice_again.set_data(&secret, b"t", None)).unwrap();

    // An explicit digest ACL for a user who is not the creator.
    let shared = format!("{root}/shared");
    let carol_read = [acl(Permission::READ, "digest", &digest("carol:pw"))];
    t!(alice.create(
        &shared,
        b"c",
        &CreateMode::Persistent.with_acls(Acls::new(&carol_read))
    ))
    .unwrap();
    let carol = authed_client(&server, "carol:pw").await;
    t!(carol.sync(&shared)).unwrap();
    assert_eq!(t!(carol.get_data(&shared)).unwrap().0, b"c");
    assert_eq!(
        t!(carol.set_data(&shared, b"x", None)).unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(t!(alice.get_data(&shared)).unwrap_err(), Error::NoAuth);

    // A session with several identities gets all of them for the auth scheme.
    t!(bob.auth("digest", b"dave:pw")).unwrap();
    let both = format!("{root}/both");
    t!(bob.create(
        &both,
        b"",
        &CreateMode::Persistent.with_acls(Acls::creator_all())
    ))
    .unwrap();
    let (acls, _) = t!(bob.get_acl(&both)).unwrap();
    assert_eq!(acl_strings(&acls), {
        let mut v = vec![
            format!("digest:{}:ALL", digest("bob:pw")),
            format!("digest:{}:ALL", digest("dave:pw")),
        ];
        v.sort();
        v
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_digest_bypasses_acls() {
    let server = TestServer::start();
    let alice = authed_client(&server, "alice:pw").await;
    let root = test_root(&alice, "super").await;
    let secret = format!("{root}/secret");
    t!(alice.create(
        &secret,
        b"s",
        &CreateMode::Persistent.with_acls(Acls::creator_all())
    ))
    .unwrap();

    let admin = authed_client(&server, SUPER_AUTH).await;
    t!(admin.sync(&secret)).unwrap();
    assert_eq!(t!(admin.get_data(&secret)).unwrap().0, b"s");
    t!(admin.set_data(&secret, b"by super", None)).unwrap();
    t!(admin.create(&format!("{secret}/c"), b"", &persistent())).unwrap();
    t!(admin.delete(&format!("{secret}/c"), None)).unwrap();
    t!(admin.set_acl(&secret, &Acls::anyone_read(), None)).unwrap();
    let anonymous = server.client().await;
    t!(anonymous.sync(&secret)).unwrap();
    assert_eq!(t!(anonymous.get_data(&secret)).unwrap().0, b"by super");

    // A wrong super password is just another digest user.
    let not_super = authed_client(&server, "super:wrong").await;
    assert_eq!(
        t!(not_super.set_data(&secret, b"x", None)).unwrap_err(),
        Error::NoAuth
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_acls_are_rejected() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "invalid-acl").await;
    let n = format!("{root}/n");

    // The auth scheme without any authenticated identity.
    assert_eq!(
        t!(c.create(
            &n,
            b"",
            &CreateMode::Persistent.with_acls(Acls::creator_all())
        ))
        .unwrap_err(),
        Error::InvalidAcl
    );
    for (scheme, id) in [
        ("no-such-scheme", "x"),
        ("digest", "no-colon"),
        ("ip", "not-an-address"),
        ("ip", "10.0.0.0/99"),
        ("world", "someone"),
    ] {
        let bad = [acl(Permission::ALL, scheme, id)];
        assert_eq!(
            t!(c.create(&n, b"", &CreateMode::Persistent.with_acls(Acls::new(&bad)))).unwrap_err(),
            Error::InvalidAcl,
            "create with {scheme}:{id}"
        );
    }
    assert!(t!(c.check_stat(&n)).unwrap().is_none());
    mk(&c, &n).await;
    let bad = [acl(Permission::ALL, "digest", "no-colon")];
    assert_eq!(
        t!(c.set_acl(&n, &bad, None)).unwrap_err(),
        Error::InvalidAcl
    );
    assert_eq!(t!(c.get_acl(&n)).unwrap().1.aversion, 0);

    // An empty ACL list (the client library refuses to send one, so use the raw client).
    let (_, max) = server.session_bounds_ms();
    let mut r = server.raw(max);
    let body = Enc::new()
        .string(&format!("{root}/e"))
        .buffer(b"")
        .acls(&[])
        .int(0)
        .finish();
    assert_eq!(r.call(raw::OP_CREATE, &body).err, raw::ERR_INVALID_ACL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_acls_match_the_client_address() {
    let server = TestServer::start();
    let c = server.client().await;
    let root = test_root(&c, "ip").await;
    for (name, id, readable) in [
        ("exact", "127.0.0.1", true),
        ("net8", "127.0.0.0/8", true),
        ("other", "10.1.2.3", false),
        ("othernet", "10.0.0.0/8", false),
    ] {
        let path = format!("{root}/{name}");
        let acls = [acl(Permission::READ, "ip", id)];
        t!(c.create(
            &path,
            b"ip",
            &CreateMode::Persistent.with_acls(Acls::new(&acls))
        ))
        .unwrap();
        let got = t!(c.get_data(&path));
        if readable {
            assert_eq!(got.unwrap().0, b"ip", "ip:{id}");
        } else {
            assert_eq!(got.unwrap_err(), Error::NoAuth, "ip:{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_am_i_lists_identities() {
    let server = TestServer::start();
    let c = server.client().await;
    let ids = |users: Vec<zookeeper_client::AuthUser>| {
        let mut v: Vec<String> = users
            .iter()
            .map(|u| format!("{}:{}", u.scheme(), u.user()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(t!(c.list_auth_users()).unwrap()), vec!["ip:127.0.0.1"]);
    t!(c.auth("digest", b"alice:pw")).unwrap();
    assert_eq!(
        ids(t!(c.list_auth_users()).unwrap()),
        vec!["digest:alice", "ip:127.0.0.1"]
    );
    // The same identity twice is listed once.
    t!(c.auth("digest", b"alice:pw")).unwrap();
    t!(c.auth("digest", b"bob:pw")).unwrap();
    assert_eq!(
        ids(t!(c.list_auth_users()).unwrap()),
        vec!["digest:alice", "digest:bob", "ip:127.0.0.1"]
    );
    let admin = authed_client(&server, SUPER_AUTH).await;
    assert_eq!(
        ids(t!(admin.list_auth_users()).unwrap()),
        vec!["digest:super", "ip:127.0.0.1", "super:"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_acl_redacts_digests_without_admin() {
    let server = TestServer::start();
    let alice = authed_client(&server, "alice:pw").await;
    let root = test_root(&alice, "redact").await;
    let n = format!("{root}/n");
    let alice_id = digest("alice:pw");
    let acls = [
        acl(Permission::READ, "digest", &alice_id),
        acl(Permission::READ, "world", "anyone"),
    ];
    t!(alice.create(&n, b"", &CreateMode::Persistent.with_acls(Acls::new(&acls)))).unwrap();
    let redacted = {
        let mut v = vec![
            "digest:alice:x:READ".to_string(),
            "world:anyone:READ".to_string(),
        ];
        v.sort();
        v
    };
    // Readers without ADMIN see "user:x" in place of the digest, alice included.
    let anonymous = server.client().await;
    t!(anonymous.sync(&n)).unwrap();
    assert_eq!(acl_strings(&t!(anonymous.get_acl(&n)).unwrap().0), redacted);
    assert_eq!(acl_strings(&t!(alice.get_acl(&n)).unwrap().0), redacted);
    // The super user sees the stored ids.
    let admin = authed_client(&server, SUPER_AUTH).await;
    t!(admin.sync(&n)).unwrap();
    let mut full = vec![
        format!("digest:{alice_id}:READ"),
        "world:anyone:READ".to_string(),
    ];
    full.sort();
    assert_eq!(acl_strings(&t!(admin.get_acl(&n)).unwrap().0), full);
    // So does anyone once world has ADMIN.
    let acls = [
        acl(Permission::READ, "digest", &alice_id),
        acl(Permission::ADMIN, "world", "anyone"),
    ];
    t!(admin.set_acl(&n, &acls, None)).unwrap();
    t!(anonymous.sync(&n)).unwrap();
    let mut full = vec![
        format!("digest:{alice_id}:READ"),
        "world:anyone:ADMIN".to_string(),
    ];
    full.sort();
    assert_eq!(acl_strings(&t!(anonymous.get_acl(&n)).unwrap().0), full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_ends_the_session() {
    let server = TestServer::start();
    let c = server.client().await;
    let mut state = c.state_watcher();
    assert_eq!(
        t!(c.auth("no-such-scheme", b"x")).unwrap_err(),
        Error::AuthFailed
    );
    let deadline = std::time::Instant::now() + OP_TIMEOUT;
    while c.state() != SessionState::AuthFailed {
        assert!(
            std::time::Instant::now() < deadline,
            "state stayed {:?}",
            c.state()
        );
        let _ = tokio::time::timeout(std::time::Duration::from_millis(100), state.changed()).await;
    }
    assert!(t!(c.check_stat("/")).is_err());
}
