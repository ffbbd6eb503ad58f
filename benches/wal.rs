//! Txn log records: encode + CRC32C of a setData txn with a 100-byte value, and decode.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use zkrs::tree::{Txn, TxnHeader};
use zkrs::wal::{decode_record, encode_record, BatchMark};

mod common;
use common::*;

fn set_txn() -> (TxnHeader, Txn) {
    (
        TxnHeader {
            session_id: 0x1234,
            zxid: 0x1_0000_1234,
            time_ms: 1_700_000_000_000,
            ..Default::default()
        },
        Txn::SetData {
            path: key_path(7),
            data: value(100),
            version: 17,
        },
    )
}

fn bench_records(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal/record");
    let (header, txn) = set_txn();
    let mark = BatchMark {
        seq: 9,
        last_in_batch: true,
    };
    let mut out = Vec::with_capacity(64 * 1024);
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode/setData_100B", |b| {
        b.iter(|| {
            out.clear();
            encode_record(black_box(&header), black_box(&txn), mark, &mut out).expect("encodes");
            out.len()
        })
    });
    out.clear();
    encode_record(&header, &txn, mark, &mut out).expect("encodes");
    let record = out.clone();
    group.bench_function("decode/setData_100B", |b| {
        b.iter(|| decode_record(black_box(&record)).expect("decodes"))
    });

    // A group-commit batch: 1000 records into one buffer (what one fdatasync covers).
    const BATCH: usize = 1000;
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut buf = Vec::with_capacity(BATCH * 256);
    group.bench_function("encode/batch_1000_setData_100B", |b| {
        b.iter(|| {
            buf.clear();
            for i in 0..BATCH {
                let mark = BatchMark {
                    seq: 9,
                    last_in_batch: i + 1 == BATCH,
                };
                encode_record(&header, &txn, mark, &mut buf).expect("encodes");
            }
            buf.len()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = bench_records
}
criterion_main!(benches);
