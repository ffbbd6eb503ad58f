//! Differential test against Apache ZooKeeper 3.8: the same seeded random operation sequences
//! run against zkrs and against a real ZooKeeper (Debian's package, started by
//! `common::javazk`), one request at a time, and every reply, stat field, error code,
//! sequence suffix and watch event must match after normalisation (see
//! `differential/side.rs` for what is normalised and why).
//!
//! - `ZKRS_DIFF_SEED=7` or `=7,8,9` runs those seeds instead of the default ones.
//! - `ZKRS_DIFF_OPS=N` sets the operations per seed.
//! - `ZKRS_DIFF_TRACE=1` prints every step (op and normalised outcome) to stderr.
//! - `ZKRS_SKIP_DIFFERENTIAL=1` skips the test when `java` or the ZooKeeper jar is missing
//!   (without it, the test FAILS in that case).
//!
//! On the first difference the test fails with the seed, the step, the op, both outcomes and
//! the preceding steps, plus the command that replays exactly that prefix.

mod common;
#[path = "differential/gen.rs"]
mod gen;
#[path = "common/mixed.rs"]
mod mixed;
#[path = "differential/side.rs"]
mod side;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use common::javazk::JavaZk;
use common::{TestServer, SUPER_DIGEST};
use gen::{Gen, Op};
use side::{Outcome, Side};

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6];
const DEFAULT_OPS: usize = 300;
/// Preceding steps shown in a failure report.
const CONTEXT: usize = 10;
/// zoo.cfg lines for both servers: sessions that outlive slow steps, no fsync per write.
const EXTRA_CFG: &[&str] = &["maxSessionTimeout=60000", "forceSync=no"];

fn env_list(name: &str) -> Option<Vec<u64>> {
    let v = std::env::var(name).ok()?;
    let list: Vec<u64> = v
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {s:?}"))
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

/// `ZKRS_DIFF_OPS` (operations per seed), else `default`.
fn ops_per_seed(default: usize) -> usize {
    env_list("ZKRS_DIFF_OPS")
        .and_then(|v| v.first().copied())
        .map_or(default, |n| n as usize)
}

/// Runs `op` on one side, turning a panic (e.g. a refused new session) into an outcome.
fn guarded(side: &mut Side, op: &Op) -> Outcome {
    match std::panic::catch_unwind(AssertUnwindSafe(|| side.exec(op))) {
        Ok(o) => o,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Outcome {
                lines: vec![format!("PANIC in the harness: {msg}")],
                ..Outcome::default()
            }
        }
    }
}

fn first_difference(a: &Outcome, b: &Outcome) -> String {
    for (i, (x, y)) in a.lines.iter().zip(&b.lines).enumerate() {
        if x != y {
            return format!("line {i}:\n    zkrs:      {x}\n    zookeeper: {y}");
        }
    }
    if a.lines.len() != b.lines.len() {
        return format!(
            "number of lines: zkrs {} vs zookeeper {}",
            a.lines.len(),
            b.lines.len()
        );
    }
    for (i, (x, y)) in a.frames.iter().zip(&b.frames).enumerate() {
        if x != y {
            return format!(
                "frames of slot {i}:\n    zkrs:      {}\n    zookeeper: {}",
                x.join(", "),
                y.join(", ")
            );
        }
    }
    "frames".to_string()
}

fn report(
    seed: u64,
    step: &str,
    nops: usize,
    op: &str,
    a: &Outcome,
    b: &Outcome,
    history: &VecDeque<(String, Outcome)>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "zkrs differs from Apache ZooKeeper: seed {seed}, step {step}"
    );
    let _ = writeln!(
        s,
        "replay: ZKRS_DIFF_SEED={seed} ZKRS_DIFF_OPS={nops} ZKRS_DIFF_TRACE=1 \
         cargo test --test differential"
    );
    let _ = writeln!(s, "op: {op}");
    let _ = writeln!(s, "first difference at {}", first_difference(a, b));
    if a.lines.len() > 12 && a.lines.len() == b.lines.len() {
        // Long outcomes (tree dumps): only the lines that differ.
        for (x, y) in a.lines.iter().zip(&b.lines).filter(|(x, y)| x != y) {
            let _ = writeln!(s, "  zkrs:      {x}\n  zookeeper: {y}");
        }
    } else {
        let _ = writeln!(s, "zkrs:\n{}", a.render());
        let _ = writeln!(s, "zookeeper:\n{}", b.render());
    }
    let _ = writeln!(s, "preceding steps (identical on both):");
    for (op, o) in history {
        let _ = writeln!(s, "  {op}\n{}", o.render());
    }
    s
}

fn log_tail(path: &std::path::Path, n: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn trace() -> bool {
    std::env::var("ZKRS_DIFF_TRACE").as_deref() == Ok("1")
}

fn run_seed(seed: u64, nops: usize, a: &mut Side, b: &mut Side) -> Result<(), String> {
    let root = format!("/s{seed}");
    let mut history: VecDeque<(String, Outcome)> = VecDeque::new();
    let oa = a.begin_seed(&root);
    let ob = b.begin_seed(&root);
    if oa != ob {
        return Err(report(
            seed,
            "setup",
            0,
            "open sessions",
            &oa,
            &ob,
            &history,
        ));
    }
    if trace() {
        eprintln!("seed {seed} setup\n{}", oa.render());
    }
    history.push_back(("setup".to_string(), oa));
    let mut gen = Gen::new(seed, &root);
    for i in 0..nops {
        let op = gen.next_op();
        // Ops that wait (a session left to expire) do their first half on both sides, so
        // that the wait is shared.
        let wait = a.prepare(&op).max(b.prepare(&op));
        std::thread::sleep(wait);
        let oa = guarded(a, &op);
        let ob = guarded(b, &op);
        let desc = format!("#{i} {op:?}");
        if trace() {
            eprintln!("seed {seed} {desc}\n{}", oa.render());
        }
        let panicked = oa.lines.iter().any(|l| l.starts_with("PANIC"));
        if oa != ob || panicked {
            return Err(report(
                seed,
                &i.to_string(),
                i + 1,
                &format!("{op:?}"),
                &oa,
                &ob,
                &history,
            ));
        }
        for p in &oa.created {
            gen.observe_created(p);
        }
        history.push_back((desc, oa));
        if history.len() > CONTEXT {
            history.pop_front();
        }
    }
    let da = a.dump();
    let db = b.dump();
    if trace() {
        eprintln!("seed {seed} final tree dump\n{}", da.render());
    }
    if da != db {
        return Err(report(
            seed,
            "final tree dump",
            nops,
            "read every node under the root (super session)",
            &da,
            &db,
            &history,
        ));
    }
    let ea = a.end_seed();
    let eb = b.end_seed();
    if ea != eb {
        return Err(report(
            seed,
            "end (close every session, wait for the container manager, dump the tree)",
            nops,
            "closeSession x3, then read every node",
            &ea,
            &eb,
            &history,
        ));
    }
    Ok(())
}

/// False (with a message) when Java or the ZooKeeper jar is missing and
/// ZKRS_SKIP_DIFFERENTIAL=1; panics when they are missing without it.
fn java_available() -> bool {
    if let Err(why) = JavaZk::check_available() {
        if std::env::var("ZKRS_SKIP_DIFFERENTIAL").as_deref() == Ok("1") {
            eprintln!("differential test skipped (ZKRS_SKIP_DIFFERENTIAL=1): {why}");
            return false;
        }
        panic!(
            "the differential test needs Apache ZooKeeper 3.8 and Java: {why}. Install \
             Debian's `zookeeper` package (.ci/run does), or set ZKRS_SKIP_DIFFERENTIAL=1"
        );
    }
    true
}

#[test]
fn zkrs_matches_zookeeper() {
    if !java_available() {
        return;
    }
    let mut seeds = env_list("ZKRS_DIFF_SEED").unwrap_or_else(|| DEFAULT_SEEDS.to_vec());
    seeds.dedup();
    let nops = ops_per_seed(DEFAULT_OPS);

    let started = Instant::now();
    // Java takes seconds to start: let it start while zkrs does.
    let java = std::thread::spawn(|| JavaZk::start(EXTRA_CFG));
    let zkrs = TestServer::start_with(EXTRA_CFG);
    let zk = match java.join() {
        Ok(Ok(zk)) => zk,
        Ok(Err(e)) => panic!("could not start Apache ZooKeeper: {e}"),
        Err(_) => panic!("starting Apache ZooKeeper panicked"),
    };
    eprintln!(
        "differential: zkrs on {}, ZooKeeper on {} (started in {:?}); seeds {seeds:?}, \
         {nops} ops each",
        zkrs.addr,
        zk.addr,
        started.elapsed()
    );
    let mut a = Side::new("zkrs", &zkrs.addr);
    let mut b = Side::new("zookeeper", &zk.addr);
    for seed in seeds {
        let t = Instant::now();
        if let Err(report) = run_seed(seed, nops, &mut a, &mut b) {
            // The servers' directories go when they stop: keep the logs' tails here.
            panic!(
                "{report}\nzkrs log tail:\n{}\nZooKeeper log tail:\n{}",
                zkrs.log_path()
                    .map(|p| log_tail(&p, 30))
                    .unwrap_or_default(),
                log_tail(&zk.log_path(), 15)
            );
        }
        eprintln!("differential: seed {seed} matched ({:?})", t.elapsed());
    }
    eprintln!("differential: all seeds matched in {:?}", started.elapsed());
}

/// Seeds of the mixed-ensemble comparison (`ZKRS_DIFF_MIXED_SEED` replaces both lists).
const MIXED_SEEDS_ZKRS_LEADS: &[u64] = &[101, 102];
const MIXED_SEEDS_JAVA_LEADS: &[u64] = &[103, 104];
const MIXED_OPS: usize = 200;
const MIXED_START_LIMIT: std::time::Duration = std::time::Duration::from_secs(90);
/// The short session's timeout in the mixed runs: three JVMs and zkrs share the machine
/// there, and a Java leader that stalls past 1.5 s between creating a session and
/// committing it expires the new session at once (seen on a 2-core machine).
const MIXED_SHORT_SESSION_MS: i32 = 5_000;

/// One side's run of a seed: each step's description and outcome, with the side's own
/// parent path taken out (`/j0/s101...` reads `/s101...`). The sides of one ensemble share
/// its tree, so each runs under a parent of its own (the seed's sequential nodes at the
/// root's level go there too), with paths of the same length on every side.
type Record = Vec<(String, Outcome)>;

fn normalise_root(mut o: Outcome, root: &str, canonical: &str) -> Outcome {
    for line in o.lines.iter_mut().chain(o.frames.iter_mut().flatten()) {
        if line.contains(root) {
            *line = line.replace(root, canonical);
        }
    }
    o
}

/// Runs seed `seed` on one side alone under `parent` (created here when missing, e.g.
/// `/j0`: one letter and one digit on every side); the comparison comes after.
fn record_seed(seed: u64, nops: usize, side: &mut Side, parent: &str) -> Record {
    let canonical = format!("/s{seed}");
    let root = format!("{parent}{canonical}");
    side.ensure_parent(parent);
    let norm = |o: Outcome| normalise_root(o, &root, &canonical);
    let mut record = Vec::with_capacity(nops + 3);
    record.push(("setup".to_string(), norm(side.begin_seed(&root))));
    let mut gen = Gen::new_in_shared_tree(seed, &root);
    for i in 0..nops {
        let op = gen.next_op();
        std::thread::sleep(side.prepare(&op));
        let o = guarded(side, &op);
        for p in &o.created {
            gen.observe_created(p);
        }
        let desc = format!("#{i} {}", format!("{op:?}").replace(&root, &canonical));
        if trace() {
            eprintln!("{root} {desc}\n{}", o.render());
        }
        let panicked = o.lines.iter().any(|l| l.starts_with("PANIC"));
        record.push((desc, norm(o)));
        if panicked {
            return record;
        }
    }
    record.push(("final tree dump".to_string(), norm(side.dump())));
    record.push((
        "end (close every session, wait for the container manager, dump the tree)".to_string(),
        norm(side.end_seed()),
    ));
    record
}

/// The first step at which two records differ (or one side's harness panicked), reported
/// as `report` does.
fn compare_records(seed: u64, nops: usize, a: &Record, b: &Record) -> Result<(), String> {
    let mut history: VecDeque<(String, Outcome)> = VecDeque::new();
    for (i, ((desc, oa), (_, ob))) in a.iter().zip(b).enumerate() {
        let panicked = [oa, ob]
            .iter()
            .any(|o| o.lines.iter().any(|l| l.starts_with("PANIC")));
        if oa != ob || panicked {
            return Err(report(seed, &i.to_string(), nops, desc, oa, ob, &history));
        }
        history.push_back((desc.clone(), oa.clone()));
        if history.len() > CONTEXT {
            history.pop_front();
        }
    }
    if a.len() != b.len() {
        return Err(format!(
            "seed {seed}: one side ran {} steps, the other {}",
            a.len(),
            b.len()
        ));
    }
    Ok(())
}

/// A mixed-ensemble case: the members' kinds, the Java member's index, the zkrs member's
/// index, the seeds, what leads.
type MixedCase = (
    &'static [mixed::Kind],
    usize,
    usize,
    &'static [u64],
    &'static str,
);

/// A mixed ensemble with the differential's settings on every member (those of the
/// standalone servers: extended types, the super digest, long sessions, no fsync, a 100 ms
/// container check), started zkrs first; returns it with its leader's index.
fn start_mixed(kinds: &[mixed::Kind]) -> (mixed::Mixed, usize) {
    let mut e = mixed::Mixed::new(kinds);
    for m in &mut e.members {
        let cfg = m.dir.join("zoo.cfg");
        let mut text = std::fs::read_to_string(&cfg).expect("zoo.cfg");
        text.push_str(&format!(
            "extendedTypesEnabled=true\n\
             DigestAuthenticationProvider.superDigest=super:{SUPER_DIGEST}\n"
        ));
        for line in EXTRA_CFG {
            text.push_str(line);
            text.push('\n');
        }
        match m.kind {
            mixed::Kind::Zkrs => text.push_str("znode.container.checkIntervalMs=100\n"),
            // ZooKeeper reads this one as a system property of its own name only.
            mixed::Kind::Java => m
                .java_props
                .push("znode.container.checkIntervalMs=100".to_string()),
        }
        std::fs::write(&cfg, text).expect("zoo.cfg");
    }
    e.start_members();
    let leader = e.wait_serving(kinds.len(), MIXED_START_LIMIT);
    (e, leader)
}

/// The differential test inside mixed ensembles (zkrs and Apache ZooKeeper 3.8 in one
/// ensemble): each seed runs through the Java member and through the zkrs member of the
/// same ensemble (every session of a run on that one member, one run after the other,
/// each under a parent of its own, with the generator's few paths outside its root, `/`
/// and `/zookeeper/...`, moved inside: the standalone test covers those), and through a
/// standalone Apache ZooKeeper; all three must answer alike. First zkrs leads (server 3) and the Java side is its follower (server 1):
/// Java applies the txns zkrs proposes (their encoding, error txns, multis, sessions,
/// the container manager's deletions). Then Java leads and zkrs follows: zkrs applies
/// Java's txns, forwards its clients' writes and answers them from the committed txns.
#[test]
fn mixed_ensembles_match_zookeeper() {
    if !java_available() {
        return;
    }
    let override_seeds = env_list("ZKRS_DIFF_MIXED_SEED");
    let nops = ops_per_seed(MIXED_OPS);
    let started = Instant::now();
    let reference = std::thread::spawn(|| JavaZk::start(EXTRA_CFG));
    use mixed::Kind::{Java, Zkrs};
    let cases: [MixedCase; 2] = [
        // kinds, the Java member, the zkrs member, seeds, what leads
        (
            &[Java, Java, Zkrs],
            0,
            2,
            MIXED_SEEDS_ZKRS_LEADS,
            "zkrs leads",
        ),
        (
            &[Zkrs, Java, Java],
            2,
            0,
            MIXED_SEEDS_JAVA_LEADS,
            "Java leads",
        ),
    ];
    let mut reference = Some(reference);
    let mut zk: Option<JavaZk> = None;
    for (index, (kinds, java_at, zkrs_at, seeds, case)) in cases.into_iter().enumerate() {
        let (e, leader) = start_mixed(kinds);
        let expected = if case == "zkrs leads" {
            zkrs_at
        } else {
            java_at
        };
        assert_eq!(
            leader,
            expected,
            "{case}: server {} leads instead (modes {:?})",
            leader + 1,
            e.modes()
        );
        if let Some(handle) = reference.take() {
            zk = Some(match handle.join() {
                Ok(Ok(zk)) => zk,
                Ok(Err(e)) => panic!("could not start Apache ZooKeeper: {e}"),
                Err(_) => panic!("starting Apache ZooKeeper panicked"),
            });
        }
        let zk = zk.as_ref().expect("the reference server");
        let (java_addr, zkrs_addr) = (e.members[java_at].addr(), e.members[zkrs_at].addr());
        eprintln!(
            "differential: mixed ensemble, {case}: Java server {} at {java_addr}, zkrs server \
             {} at {zkrs_addr}, standalone ZooKeeper at {}",
            java_at + 1,
            zkrs_at + 1,
            zk.addr
        );
        let short = MIXED_SHORT_SESSION_MS;
        let mut java_side = Side::with_short_timeout("java member", &java_addr, short);
        let mut zkrs_side = Side::with_short_timeout("zkrs member", &zkrs_addr, short);
        let mut reference_side = Side::with_short_timeout("standalone zookeeper", &zk.addr, short);
        let seeds = override_seeds.clone().unwrap_or_else(|| seeds.to_vec());
        for seed in seeds {
            let t = Instant::now();
            let of_java = record_seed(seed, nops, &mut java_side, &format!("/j{index}"));
            let of_zkrs = record_seed(seed, nops, &mut zkrs_side, &format!("/z{index}"));
            let of_reference = record_seed(seed, nops, &mut reference_side, &format!("/r{index}"));
            let verdict = compare_records(seed, nops, &of_zkrs, &of_java)
                .map_err(|r| format!("the zkrs member vs the Java member of the ensemble: {r}"))
                .and_then(|()| {
                    compare_records(seed, nops, &of_zkrs, &of_reference).map_err(|r| {
                        format!("the zkrs member vs a standalone Apache ZooKeeper: {r}")
                    })
                });
            if let Err(report) = verdict {
                panic!(
                    "mixed ensemble, {case} (replay: ZKRS_DIFF_MIXED_SEED={seed} \
                     ZKRS_DIFF_OPS={nops} cargo test --test differential mixed): {report}\n\
                     (\"zookeeper\" above is the Java side)\nensemble logs:\n{}",
                    e.logs()
                );
            }
            eprintln!(
                "differential: mixed ensemble, {case}: seed {seed} matched on all three ({:?})",
                t.elapsed()
            );
        }
    }
    eprintln!(
        "differential: mixed ensembles matched in {:?}",
        started.elapsed()
    );
}
