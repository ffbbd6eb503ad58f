//! Quota enforcement (`enforceQuota=true`, ZooKeeper's `zookeeper.enforceQuota`): the same
//! sequence of quota set-up, creates, setData and multis against zkrs and a real Apache
//! ZooKeeper 3.8, every reply code and the usage text compared. Hard limits
//! (`countHardLimit`, `byteHardLimit`) fail writes with QuotaExceeded; soft ones do not;
//! a multi's ops are checked against the usage before the multi, as ZooKeeper does.
//!
//! The Java side needs Debian's `zookeeper` package; `ZKRS_SKIP_DIFFERENTIAL=1` skips the
//! comparison (zkrs's own answers are still checked) where it is not installed.

#[macro_use]
mod common;

use common::javazk::JavaZk;
use common::raw::{self, decode_multi, encode_multi, MultiOp, MultiResult, Raw};
use common::*;

const QUOTA_EXCEEDED: i32 = -125;

/// What one step of the script answered: the step's name and its reply code (for a multi,
/// each op's code too).
type Transcript = Vec<(String, Vec<i32>)>;

fn multi_codes(reply: &raw::RawReply) -> Vec<i32> {
    let mut codes = vec![reply.err];
    if reply.err == raw::OK {
        for result in decode_multi(&reply.body) {
            codes.push(match result {
                MultiResult::Error { err, .. } => err,
                _ => 0,
            });
        }
    }
    codes
}

/// The quota script against one server; `root` is a fresh top-level path.
fn run_script(c: &mut Raw, root: &str) -> Transcript {
    let mut t: Transcript = Vec::new();
    let quota = format!("/zookeeper/quota{root}");
    let limits = format!("{quota}/zookeeper_limits");
    let stats = format!("{quota}/zookeeper_stats");
    let step = |t: &mut Transcript, name: &str, codes: Vec<i32>| {
        t.push((name.to_string(), codes));
    };
    step(&mut t, "create root", vec![c.create(root, b"r", 0).err]);
    // What zkCli's setquota does: the quota node, its limits, its stats.
    step(
        &mut t,
        "create quota node",
        vec![c.create(&quota, b"", 0).err],
    );
    let limit_text = b"count=-1,bytes=-1=;countHardLimit=4;byteHardLimit=24";
    step(
        &mut t,
        "create limits",
        vec![c.create(&limits, limit_text, 0).err],
    );
    step(
        &mut t,
        "create stats",
        vec![c.create(&stats, b"count=0,bytes=0", 0).err],
    );
    // The root (1 node, 1 byte) and children of 2 bytes: the 4th node is the last allowed.
    for i in 1..=5 {
        let path = format!("{root}/c{i}");
        step(
            &mut t,
            &format!("create {path}"),
            vec![c.create(&path, b"xx", 0).err],
        );
    }
    // Bytes: 1 + 3 * 2 = 7 used of 24.
    let c1 = format!("{root}/c1");
    step(
        &mut t,
        "setData over the byte limit",
        vec![c.set_data(&c1, &[b'y'; 30], -1).err],
    );
    step(
        &mut t,
        "setData within the byte limit",
        vec![c.set_data(&c1, &[b'y'; 10], -1).err],
    );
    // The quota is checked before the version (PrepRequestProcessor's order), after NoNode.
    step(
        &mut t,
        "setData over the limit with a bad version",
        vec![c.set_data(&c1, &[b'z'; 40], 99).err],
    );
    step(
        &mut t,
        "setData of a missing node",
        vec![c.set_data(&format!("{root}/missing"), &[b'z'; 40], -1).err],
    );
    step(
        &mut t,
        "setData within the limit with a bad version",
        vec![c.set_data(&c1, b"y", 99).err],
    );
    // Delete one child: one node left to go.
    let c2 = format!("{root}/c2");
    step(
        &mut t,
        "delete c2",
        vec![
            c.call(
                raw::OP_DELETE,
                &raw::Enc::new().string(&c2).int(-1).finish(),
            )
            .err,
        ],
    );
    // A multi of two creates when one is left: each op sees the usage before the multi.
    let m1 = format!("{root}/m1");
    let m2 = format!("{root}/m2");
    let body = encode_multi(&[
        MultiOp::Create {
            path: &m1,
            data: b"",
            flags: 0,
        },
        MultiOp::Create {
            path: &m2,
            data: b"",
            flags: 0,
        },
    ]);
    step(
        &mut t,
        "multi of two creates",
        multi_codes(&c.call(raw::OP_MULTI, &body)),
    );
    // Now over the count: another multi fails at its first create.
    let m3 = format!("{root}/m3");
    let body = encode_multi(&[
        MultiOp::SetData {
            path: &c1,
            data: b"s",
            version: -1,
        },
        MultiOp::Create {
            path: &m3,
            data: b"",
            flags: 0,
        },
    ]);
    step(
        &mut t,
        "multi over the count",
        multi_codes(&c.call(raw::OP_MULTI, &body)),
    );
    // A soft limit alone never fails a write.
    let soft_root = format!("{root}-soft");
    let soft_quota = format!("/zookeeper/quota{soft_root}");
    step(
        &mut t,
        "create soft root",
        vec![c.create(&soft_root, b"", 0).err],
    );
    step(
        &mut t,
        "create soft quota",
        vec![c.create(&soft_quota, b"", 0).err],
    );
    step(
        &mut t,
        "create soft limits",
        vec![
            c.create(
                &format!("{soft_quota}/zookeeper_limits"),
                b"count=2,bytes=5",
                0,
            )
            .err,
        ],
    );
    step(
        &mut t,
        "create soft stats",
        vec![
            c.create(
                &format!("{soft_quota}/zookeeper_stats"),
                b"count=0,bytes=0",
                0,
            )
            .err,
        ],
    );
    for i in 1..=3 {
        step(
            &mut t,
            &format!("soft create {i}"),
            vec![c.create(&format!("{soft_root}/s{i}"), b"123456", 0).err],
        );
    }
    t
}

fn stats_text(c: &mut Raw, root: &str) -> Option<Vec<u8>> {
    let reply = c.get_data(&format!("/zookeeper/quota{root}/zookeeper_stats"), false);
    (reply.err == raw::OK)
        .then(|| reply.dec().buffer())
        .flatten()
}

#[test]
fn hard_quotas_fail_writes_as_on_zookeeper() {
    let server = TestServer::start_with(&["enforceQuota=true"]);
    let root = unique_prefix("quota");
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let ours = run_script(&mut c, &root);
    let our_stats = (
        stats_text(&mut c, &root),
        stats_text(&mut c, &format!("{root}-soft")),
    );
    let exceeded = ours
        .iter()
        .filter(|(_, codes)| codes.contains(&QUOTA_EXCEEDED))
        .count();
    assert!(exceeded >= 4, "too few QuotaExceeded answers: {ours:?}");
    // Spot checks that do not depend on the comparison.
    let code = |name: &str| {
        ours.iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| panic!("no step {name}"))
    };
    assert_eq!(code(&format!("create {root}/c3")), vec![raw::OK]);
    assert_eq!(code(&format!("create {root}/c4")), vec![QUOTA_EXCEEDED]);
    assert_eq!(code("setData over the byte limit"), vec![QUOTA_EXCEEDED]);
    assert_eq!(
        code("setData over the limit with a bad version"),
        vec![QUOTA_EXCEEDED]
    );
    assert_eq!(code("setData of a missing node"), vec![-101]);
    assert_eq!(code("soft create 3"), vec![raw::OK]);

    if std::env::var("ZKRS_SKIP_DIFFERENTIAL").as_deref() == Ok("1") {
        eprintln!("Apache ZooKeeper comparison skipped (ZKRS_SKIP_DIFFERENTIAL=1)");
        return;
    }
    let java = JavaZk::start(&["enforceQuota=true"]).unwrap_or_else(|e| {
        panic!("Apache ZooKeeper 3.8 is needed for this comparison: {e} (or set ZKRS_SKIP_DIFFERENTIAL=1)")
    });
    let mut j = Raw::connect(&java.addr, 30_000);
    let theirs = run_script(&mut j, &root);
    eprintln!("zkrs: {ours:?}\nApache ZooKeeper: {theirs:?}");
    let their_stats = (
        stats_text(&mut j, &root),
        stats_text(&mut j, &format!("{root}-soft")),
    );
    for (a, b) in ours.iter().zip(theirs.iter()) {
        assert_eq!(
            a, b,
            "zkrs and Apache ZooKeeper answered step {:?} differently",
            a.0
        );
    }
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(
        our_stats, their_stats,
        "quota usage differs (zkrs, then Apache ZooKeeper)"
    );
}

#[test]
fn quotas_are_not_enforced_by_default() {
    let server = TestServer::start();
    let root = unique_prefix("quota-off");
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let transcript = run_script(&mut c, &root);
    assert!(
        transcript
            .iter()
            .all(|(_, codes)| !codes.contains(&QUOTA_EXCEEDED)),
        "a quota failed a write without enforceQuota: {transcript:?}"
    );
}
