#[macro_use]
mod common;
use common::raw::*;
use std::time::{Duration, Instant};
#[test]
fn probe() {
    let addr = std::env::var("ZKRS_TEST_TARGET").unwrap();
    for op in [OP_GET_DATA, OP_EXISTS, OP_CREATE, OP_SET_DATA, OP_DELETE, OP_MULTI] {
    let mut c = Raw::connect(&addr, 4000);
    let body = Enc::new().int(1000).bytes(b"/x").finish();
    let r = c.call(op, &body);
    println!("op {op}: {:?}", r);
    println!("closed {}", wait_closed(&mut c.stream, Duration::from_millis(500)));
    }
}
