//! Jute encode/decode of the requests and replies on the hot path.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use zkrs::proto::{
    decode_reply, decode_request, encode_reply, encode_request, MultiOp, OpCode, PathWatchRequest,
    ReplyHeader, Request, RequestHeader, Response, SetDataRequest, Stat, FRAME_HEADER_LEN,
};

mod common;
use common::*;

fn frame_of(req: &Request) -> BytesMut {
    let mut out = BytesMut::new();
    let hdr = RequestHeader {
        xid: 42,
        op: req.op_code() as i32,
    };
    encode_request(&mut out, &hdr, req);
    out
}

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0005,
        mzxid: 0x1_0000_1234,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_123,
        version: 17,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 100,
        num_children: 0,
        pzxid: 0x1_0000_0005,
    }
}

fn requests() -> Vec<(&'static str, Request)> {
    let multi = Request::Multi(
        (0..4)
            .map(|i| {
                MultiOp::SetData(SetDataRequest {
                    path: key_path(i),
                    data: value(100),
                    version: -1,
                })
            })
            .collect(),
    );
    vec![
        (
            "getData",
            Request::GetData(PathWatchRequest {
                path: key_path(7),
                watch: false,
            }),
        ),
        ("setData_100B", set_req(key_path(7), 100)),
        ("create_100B", create_req(key_path(7), 100)),
        ("multi_4xsetData_100B", multi),
    ]
}

fn bench_requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    for (name, req) in requests() {
        let frame = frame_of(&req);
        let body = frame[FRAME_HEADER_LEN..].to_vec();
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_request(black_box(&body)).expect("decodes"))
        });
        let hdr = RequestHeader {
            xid: 42,
            op: req.op_code() as i32,
        };
        let mut out = BytesMut::with_capacity(4096);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                encode_request(&mut out, &hdr, black_box(&req));
                out.len()
            })
        });
    }
    group.finish();
}

fn bench_replies(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply");
    group.throughput(Throughput::Elements(1));
    let hdr = ReplyHeader {
        xid: 42,
        zxid: 0x1_0000_1234,
        err: 0,
    };
    let replies = [
        (
            "getData_100B",
            OpCode::GetData,
            Response::GetData(value(100), stat()),
        ),
        ("setData", OpCode::SetData, Response::Stat(stat())),
        ("create", OpCode::Create, Response::Create(key_path(7))),
    ];
    for (name, op, body) in replies {
        let mut out = BytesMut::with_capacity(4096);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                encode_reply(&mut out, &hdr, black_box(&body));
                out.len()
            })
        });
        let mut frame = BytesMut::new();
        encode_reply(&mut frame, &hdr, &body);
        let frame_body = frame[FRAME_HEADER_LEN..].to_vec();
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_reply(black_box(&frame_body), op).expect("decodes"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = bench_requests, bench_replies
}
criterion_main!(benches);
