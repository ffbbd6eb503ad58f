//! Applying a write batch to the tree (`DataTree::process_write`), with and without the
//! per-item version clone the ordering core makes (`Arc::new(tree.clone())` per commit item,
//! the versions living until the batch is committed and dropped).

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use zkrs::tree::DataTree;

mod common;
use common::*;

const KEYS: usize = 10_000;
const BATCH: usize = 1_000;

fn bench_set_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree/setData_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    let (base, first_zxid) = tree_with_keys(KEYS, 100);
    // The same requests every iteration; keys spread over the key space.
    let reqs: Vec<_> = (0..BATCH)
        .map(|i| set_req(key_path((i * 7919) % KEYS), 100))
        .collect();

    {
        let mut tree = base.clone();
        let mut zxid = first_zxid;
        group.bench_function(format!("{BATCH}x100B/no_clone"), |b| {
            b.iter(|| {
                for req in &reqs {
                    let out = tree.process_write(req, &ctx(zxid));
                    zxid += 1;
                    black_box(out);
                }
            })
        });
    }
    {
        let mut tree = base.clone();
        let mut zxid = first_zxid;
        let mut versions: Vec<Arc<DataTree>> = Vec::with_capacity(BATCH);
        group.bench_function(format!("{BATCH}x100B/arc_clone_per_item"), |b| {
            b.iter(|| {
                for req in &reqs {
                    let out = tree.process_write(req, &ctx(zxid));
                    zxid += 1;
                    versions.push(Arc::new(tree.clone()));
                    black_box(out);
                }
                // The batch is committed: the shards switch to the last version, the rest go.
                versions.clear();
            })
        });
    }
    group.finish();
}

fn bench_create_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree/create_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    let (base, first_zxid) = tree_with_keys(KEYS, 100);
    let reqs: Vec<_> = (0..BATCH)
        .map(|i| create_req(format!("/zkrs-loadgen/keys/n{i:010}"), 100))
        .collect();
    for clone_per_item in [false, true] {
        let name = if clone_per_item {
            "arc_clone_per_item"
        } else {
            "no_clone"
        };
        group.bench_function(format!("{BATCH}x100B/{name}"), |b| {
            b.iter_batched(
                || base.clone(),
                |mut tree| {
                    let mut versions = Vec::new();
                    for (i, req) in reqs.iter().enumerate() {
                        let out = tree.process_write(req, &ctx(first_zxid + i as i64));
                        debug_assert!(out.reply.is_ok());
                        if clone_per_item {
                            versions.push(Arc::new(tree.clone()));
                        }
                        black_box(out);
                    }
                    (tree, versions)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn bench_version_clone(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree/version");
    let (tree, _) = tree_with_keys(100_000, 100);
    group.bench_function("arc_clone_100k_nodes", |b| {
        b.iter(|| Arc::new(black_box(&tree).clone()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = bench_set_batch, bench_create_batch, bench_version_clone
}
criterion_main!(benches);
