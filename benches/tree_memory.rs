//! Memory per znode of a `DataTree` (not a criterion bench: prints numbers).
//!
//! `cargo bench --bench tree_memory [-- N...]` builds trees of N znodes (default 100 000 and
//! 1 000 000; ~30-byte paths, 100-byte values, as the loadgen's keys) and reports the live
//! heap bytes per znode (a counting allocator over mimalloc, the server's allocator) and
//! the RSS growth per znode, once with plain writes and once the way the ordering core
//! writes: a version `Arc::new(tree.clone())` per write, kept until its batch of 1000 ends.
//! Each measurement runs in a process of its own.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use zkrs::tree::{DataTree, Meta, Znode};

mod common;
use common::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static INNER: zkrs::alloc::Allocator = zkrs::alloc::Allocator;

// SAFETY: every call forwards to the process allocator with the same arguments; only a
// counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's GlobalAlloc contract, passed on.
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's GlobalAlloc contract, passed on.
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's GlobalAlloc contract, passed on.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn build(n: usize, versions: bool) -> DataTree {
    let mut tree = DataTree::new();
    let mut batch: Vec<Arc<DataTree>> = Vec::new();
    let paths = [
        "/zkrs-loadgen".to_string(),
        "/zkrs-loadgen/keys".to_string(),
    ]
    .into_iter()
    .chain((0..n).map(key_path));
    for (zxid, path) in (1..).zip(paths) {
        let out = tree.process_write(&create_req(path, 100), &ctx(zxid));
        assert!(out.reply.is_ok());
        if versions {
            batch.push(Arc::new(tree.clone()));
            if batch.len() == 1000 {
                batch.clear();
            }
        }
    }
    tree
}

/// One measurement: builds the tree and prints its row.
fn measure(n: usize, versions: bool) {
    let heap0 = LIVE.load(Ordering::Relaxed);
    let rss0 = rss_bytes();
    let tree = build(n, versions);
    let heap = LIVE.load(Ordering::Relaxed) - heap0;
    let rss = rss_bytes() - rss0;
    println!(
        "{n:<10} {:<17} {:>12.0} {:>12.0}",
        if versions {
            "version per write"
        } else {
            "plain writes"
        },
        heap as f64 / n as f64,
        rss as f64 / n as f64
    );
    drop(tree);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // A child run: `--one N plain|versions`.
    if let Some(at) = args.iter().position(|a| a == "--one") {
        let n = args
            .get(at + 1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(10_000);
        measure(n, args.get(at + 2).map(String::as_str) == Some("versions"));
        return;
    }
    let mut sizes: Vec<usize> = args
        .iter()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    if sizes.is_empty() {
        // `cargo bench` passes --bench; `cargo test --benches` does not: a small smoke run.
        sizes = if args.iter().any(|a| a == "--bench") {
            vec![100_000, 1_000_000]
        } else {
            vec![10_000]
        };
    }
    println!("znodes     mode              heap B/znode  RSS B/znode");
    for &n in &sizes {
        for mode in ["plain", "versions"] {
            // Each in a fresh process, so that the RSS growth is not memory an earlier
            // run freed and the allocator kept.
            let child = std::env::current_exe()
                .and_then(|exe| {
                    std::process::Command::new(exe)
                        .args(["--one", &n.to_string(), mode])
                        .output()
                })
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
            match child {
                Ok(row) => print!("{row}"),
                Err(e) => println!("{n:<10} {mode:<17} (could not run: {e})"),
            }
        }
    }
    // The payload alone, for reference: path + value bytes.
    println!(
        "(payload: {} B path + 100 B value per znode)",
        key_path(0).len()
    );
    components(*sizes.last().unwrap_or(&100_000));
}

/// Heap bytes per entry of the parts a znode is made of, measured alone.
fn components(n: usize) {
    // (heap, RSS) growth per entry.
    let per = |f: &dyn Fn() -> Box<dyn std::any::Any>| {
        let (before, rss_before) = (LIVE.load(Ordering::Relaxed), rss_bytes());
        let kept = f();
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let rss = rss_bytes() - rss_before;
        drop(kept);
        (bytes as f64 / n as f64, rss as f64 / n as f64)
    };
    println!("\ncomponents at {n} entries (heap B/entry, as requested from the allocator):");
    println!(
        "  size_of: Znode {} B (a pointer), Meta {} B",
        std::mem::size_of::<Znode>(),
        std::mem::size_of::<Meta>()
    );
    let acl = Arc::new(Vec::new());
    let nodes = per(&|| {
        let mut all = Vec::with_capacity(n);
        all.extend(
            (0..n).map(|i| Znode::new(Meta::new(acl.clone(), i as i64, 0, 0), &[b'x'; 100])),
        );
        Box::new(all)
    });
    println!(
        "  one znode with 100 B of data: {:.0} (+ 8 B Vec slot; RSS {:.0}); the rest of a \
         tree's B/znode is its entry (name + pointer) in the parent's child map",
        nodes.0 - 8.0,
        nodes.1 - 8.0
    );
}
