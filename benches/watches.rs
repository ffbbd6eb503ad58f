//! Watch fan-out: one change on a path watched by 10 000 connections.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use zkrs::proto::EventType;
use zkrs::tree::{WatchTable, WatchTrigger};

mod common;
use common::*;

const WATCHERS: u64 = 10_000;

fn bench_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("watches/fanout");
    group.throughput(Throughput::Elements(WATCHERS));
    let path = key_path(1);
    let trigger = WatchTrigger {
        path: Arc::from(path.as_str()),
        event: EventType::NodeDataChanged,
    };

    // One-time data watches (getData/exists watch=true): consumed by the trigger, so each
    // iteration starts from a freshly filled table (not timed).
    let mut one_time = WatchTable::new();
    for conn in 0..WATCHERS {
        one_time.add_data_watch(&path, conn);
    }
    group.bench_function("10k_data_watches/trigger", |b| {
        b.iter_batched(
            || {
                let mut table = WatchTable::new();
                for conn in 0..WATCHERS {
                    table.add_data_watch(&path, conn);
                }
                table
            },
            |mut table| {
                let events = table.trigger(black_box(&trigger));
                assert_eq!(events.len(), WATCHERS as usize);
                (table, events)
            },
            BatchSize::LargeInput,
        )
    });

    // Re-registering the 10k watches (what the clients do after each event).
    group.bench_function("10k_data_watches/register", |b| {
        b.iter_batched(
            WatchTable::new,
            |mut table| {
                for conn in 0..WATCHERS {
                    table.add_data_watch(&path, conn);
                }
                table
            },
            BatchSize::LargeInput,
        )
    });

    // Persistent watches stay after firing: the trigger alone, no re-registration.
    let mut persistent = WatchTable::new();
    for conn in 0..WATCHERS {
        persistent.add_persistent_watch(&path, conn);
    }
    group.bench_function("10k_persistent_watches/trigger", |b| {
        b.iter(|| persistent.trigger(black_box(&trigger)))
    });

    // A trigger nobody watches, on a table holding the 10k watches elsewhere.
    let miss = WatchTrigger {
        path: Arc::from(key_path(2).as_str()),
        event: EventType::NodeDataChanged,
    };
    group.throughput(Throughput::Elements(1));
    group.bench_function("unwatched_path/trigger", |b| {
        b.iter(|| one_time.trigger(black_box(&miss)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = bench_fanout
}
criterion_main!(benches);
