//! Shared fixtures for the criterion benches (included with `#[path]`/`mod common`).
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use zkrs::proto::{perms, Acl, CreateRequest, Id, OpCode, Request, SetDataRequest};
use zkrs::tree::{DataTree, TxnContext};

/// Quick settings: every bench here should finish in a few seconds.
pub fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

pub fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// A 30-byte key path, as the load generator's (`/zkrs-loadgen/keys/k0000000000`).
pub fn key_path(i: usize) -> String {
    format!("/zkrs-loadgen/keys/k{i:010}")
}

pub fn value(len: usize) -> Bytes {
    Bytes::from(vec![b'x'; len])
}

pub fn create_req(path: String, len: usize) -> Request {
    Request::Create(
        OpCode::Create,
        CreateRequest {
            path,
            data: value(len),
            acl: open_acl(),
            flags: 0,
            ttl: -1,
        },
    )
}

pub fn set_req(path: String, len: usize) -> Request {
    Request::SetData(SetDataRequest {
        path,
        data: value(len),
        version: -1,
    })
}

/// A tree with `/bench`, `/bench/keys` and `n` keys of `len`-byte values. Returns the next
/// free zxid.
pub fn tree_with_keys(n: usize, len: usize) -> (DataTree, i64) {
    let mut tree = DataTree::new();
    let mut zxid = 1;
    for path in [
        "/zkrs-loadgen".to_string(),
        "/zkrs-loadgen/keys".to_string(),
    ]
    .into_iter()
    .chain((0..n).map(key_path))
    {
        let out = tree.process_write(&create_req(path, len), &ctx(zxid));
        assert!(out.reply.is_ok(), "setup create failed: {:?}", out.reply);
        zxid += 1;
    }
    (tree, zxid)
}

pub fn ctx(zxid: i64) -> TxnContext<'static> {
    TxnContext {
        session_id: 0x1234,
        auth: &[],
        zxid,
        time_ms: 1_700_000_000_000,
        enforce_quota: false,
        sasl_acl: false,
    }
}
