//! Random runs: many seeds of 3- and 5-server ensembles under crashes, partitions (one-way
//! ones too), broken connections and slow disks, then a heal and the liveness check.
//!
//! `ZKRS_SIM_SEED=<n>` replays one seed (add `ZKRS_SIM_TRACE=1` for every event);
//! `ZKRS_SIM_SEEDS=<n>` runs more seeds per test than CI's default.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::{Options, Sim, Stats};

/// Seeds per test in CI (each of the tests below runs this many).
const CI_SEEDS: u64 = 1500;

fn options(servers: usize, seed: u64) -> Options {
    let mut opts = Options::new(servers % 10);
    opts.observers = servers / 10;
    opts.faults_end_ms = 4000 + (seed % 4) * 1000;
    opts.liveness_bound_ms = 30_000;
    opts
}

fn run_one(servers: usize, seed: u64) -> Stats {
    let mut sim = Sim::new(options(servers, seed), seed);
    sim.run_random()
}

/// Runs the seeds of one family (`servers`: voters + 10 x observers); a failure names its
/// seed and how to replay it.
fn run_family(name: &str, servers: usize, first_seed: u64) {
    if let Ok(seed) = std::env::var("ZKRS_SIM_SEED") {
        let seed: u64 = seed
            .parse()
            .unwrap_or_else(|_| panic!("ZKRS_SIM_SEED={seed:?} is not a number"));
        if seed / 1_000_000 != first_seed / 1_000_000 {
            return; // another family's seed
        }
        let stats = run_one(servers, seed);
        eprintln!("seed {seed}: {stats:?}");
        return;
    }
    let seeds: u64 = std::env::var("ZKRS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_SEEDS);
    let started = Instant::now();
    let mut total = Stats::default();
    let mut worst_heal = 0;
    for seed in first_seed..first_seed + seeds {
        let result = catch_unwind(AssertUnwindSafe(|| run_one(servers, seed)));
        match result {
            Ok(stats) => {
                total.events += stats.events;
                total.acked_writes += stats.acked_writes;
                total.reads += stats.reads;
                total.syncs += stats.syncs;
                total.crashes += stats.crashes;
                total.partitions += stats.partitions;
                total.snaps += stats.snaps;
                total.truncs += stats.truncs;
                total.diffs += stats.diffs;
                total.informs += stats.informs;
                worst_heal = worst_heal.max(stats.writable_after_heal_ms.unwrap_or(0));
            }
            Err(_) => panic!(
                "{name}: seed {seed} failed (the panic above says what broke); replay: \
                 ZKRS_SIM_SEED={seed} ZKRS_SIM_TRACE=1 cargo test --lib sim::tests::{name} -- --nocapture"
            ),
        }
    }
    eprintln!(
        "{name}: {seeds} seeds in {:.1} s: {} events, {} acked writes, {} reads, {} syncs, {} \
         crashes, {} partitions, {} DIFF / {} TRUNC / {} SNAP syncs, {} INFORMs; writable again at \
         most {} ms after the heal",
        started.elapsed().as_secs_f64(),
        total.events,
        total.acked_writes,
        total.reads,
        total.syncs,
        total.crashes,
        total.partitions,
        total.diffs,
        total.truncs,
        total.snaps,
        total.informs,
        worst_heal
    );
    // The runs must have exercised what they claim to.
    assert!(total.acked_writes > seeds, "too few writes acknowledged");
    assert!(total.crashes > 0 && total.partitions > 0);
    assert!(total.diffs > 0 && total.snaps > 0 && total.truncs > 0);
    if servers > 10 {
        assert!(total.informs > seeds, "the observers got too few INFORMs");
    }
}

#[test]
fn three_servers() {
    run_family("three_servers", 3, 3_000_000);
}

#[test]
fn five_servers() {
    run_family("five_servers", 5, 5_000_000);
}

/// Three voters and an observer (id 4), which learns committed txns by INFORM.
#[test]
fn three_servers_and_an_observer() {
    run_family("three_servers_and_an_observer", 13, 7_000_000);
}
