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
#[path = "differential/side.rs"]
mod side;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use common::javazk::JavaZk;
use common::TestServer;
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

#[test]
fn zkrs_matches_zookeeper() {
    if let Err(why) = JavaZk::check_available() {
        if std::env::var("ZKRS_SKIP_DIFFERENTIAL").as_deref() == Ok("1") {
            eprintln!("differential test skipped (ZKRS_SKIP_DIFFERENTIAL=1): {why}");
            return;
        }
        panic!(
            "the differential test needs Apache ZooKeeper 3.8 and Java: {why}. Install \
             Debian's `zookeeper` package (.ci/run does), or set ZKRS_SKIP_DIFFERENTIAL=1"
        );
    }
    let mut seeds = env_list("ZKRS_DIFF_SEED").unwrap_or_else(|| DEFAULT_SEEDS.to_vec());
    seeds.dedup();
    let nops = env_list("ZKRS_DIFF_OPS")
        .and_then(|v| v.first().copied())
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_OPS);

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
