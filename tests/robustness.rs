//! One client must not hurt the others: a connection that never reads its replies keeps the
//! server's memory bounded, a connection that floods requests does not starve the other
//! connections of its shard (nor commit application), and a read never sees an older
//! version than a write another session already saw answered.
//!
//! These drive the local `zkrs` binary and read its /proc status, so they skip themselves
//! against an external server.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::{self, Enc};
use common::*;

/// VmRSS of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// `count` getData requests of `path` (xids 1..=count), framed back to back.
fn pipelined_get_data(path: &str, count: i32) -> Vec<u8> {
    let body = Enc::new().string(path).bool(false).finish();
    let mut out = Vec::new();
    for xid in 1..=count {
        let payload = Enc::new()
            .int(xid)
            .int(raw::OP_GET_DATA)
            .bytes(&body)
            .finish();
        out.extend_from_slice(&raw::frame(&payload));
    }
    out
}

const LARGE_VALUE_BYTES: usize = 64 * 1024;
const PIPELINED_READS: i32 = 2500;

#[test]
fn a_client_that_never_reads_its_replies_keeps_server_memory_bounded() {
    let server = TestServer::start();
    let Some(pid) = server.pid() else { return };
    let (_, max) = server.session_bounds_ms();
    let mut other = server.raw(max);
    let path = unique_prefix("unread");
    let value = vec![b'x'; LARGE_VALUE_BYTES];
    assert_eq!(other.create(&path, &value, 0).err, raw::OK);
    assert_eq!(other.get_data(&path, false).err, raw::OK);
    let before_kib = rss_kib(pid);

    // 2500 replies of 64 KiB (~160 MiB) asked for, none read.
    let mut stuck = server.raw(max);
    let requests = pipelined_get_data(&path, PIPELINED_READS);
    let mut writer = stuck.stream.try_clone().expect("clone stream");
    writer
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&requests).is_ok());

    // Let the server do all it will with them; track the peak.
    let mut peak_kib = before_kib;
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        peak_kib = peak_kib.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let grown_mib = peak_kib.saturating_sub(before_kib) / 1024;
    assert!(
        grown_mib < 48,
        "RSS grew by {grown_mib} MiB for one connection's unread replies"
    );

    // Another client is still served, reads and writes.
    for _ in 0..5 {
        assert_eq!(other.ping().err, raw::OK);
        let reply = other.get_data(&path, false);
        assert_eq!(reply.err, raw::OK);
        assert_eq!(
            reply.dec().buffer().map(|d| d.len()),
            Some(LARGE_VALUE_BYTES)
        );
    }
    assert_eq!(other.set_data(&path, &value, -1).err, raw::OK);

    // Once the stuck client reads, every reply arrives, in order, none dropped.
    let deadline = Instant::now() + Duration::from_secs(60);
    for xid in 1..=PIPELINED_READS {
        let body = raw::read_frame_by(&mut stuck.stream, deadline).expect("reply");
        let got = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        assert_eq!(got, xid, "replies out of order");
    }
    assert!(sender.join().expect("sender thread"), "requests not sent");
}

/// A setData of `path` then `reads` getData of it (xids 1..=reads+1), framed back to back:
/// the reads queue behind the write, each holding a globalOutstandingLimit permit.
fn write_then_pipelined_reads(path: &str, value: &[u8], reads: i32) -> Vec<u8> {
    let set = Enc::new().string(path).buffer(value).int(-1).finish();
    let mut out = raw::frame(&Enc::new().int(1).int(raw::OP_SET_DATA).bytes(&set).finish());
    let get = Enc::new().string(path).bool(false).finish();
    for xid in 2..=reads + 1 {
        let payload = Enc::new()
            .int(xid)
            .int(raw::OP_GET_DATA)
            .bytes(&get)
            .finish();
        out.extend_from_slice(&raw::frame(&payload));
    }
    out
}

/// Several clients that pipeline large reads and never read the replies (on one shard, with
/// a small globalOutstandingLimit) must hold back only themselves. Before the fix their
/// unwritten replies, and the reads queued behind their own write, kept the shard's whole
/// permit share and every other client of the shard waited until they went away.
#[test]
fn clients_that_never_read_their_replies_hold_back_only_themselves() {
    let server = TestServer::start_with(&["zkrs.shards=1", "globalOutstandingLimit=200"]);
    if server.pid().is_none() {
        return;
    }
    let (_, max) = server.session_bounds_ms();
    let mut other = server.raw(max);
    let path = unique_prefix("unread-many");
    let value = vec![b'y'; LARGE_VALUE_BYTES];
    assert_eq!(other.create(&path, &value, 0).err, raw::OK);

    const STUCK: usize = 6;
    const READS: i32 = 300;
    let mut stuck = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..STUCK {
        let conn = server.raw(max);
        let mut writer = conn.stream.try_clone().expect("clone stream");
        writer
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let requests = write_then_pipelined_reads(&path, &value, READS);
        senders.push(std::thread::spawn(move || {
            writer.write_all(&requests).is_ok()
        }));
        stuck.push(conn);
    }
    // Let the server take from them all it will.
    std::thread::sleep(Duration::from_secs(1));

    // The other client's reads and writes are answered (a stuck shard would leave them
    // waiting until the raw client's deadline).
    for _ in 0..10 {
        assert_eq!(other.ping().err, raw::OK);
        let reply = other.get_data(&path, false);
        assert_eq!(reply.err, raw::OK);
        assert_eq!(
            reply.dec().buffer().map(|d| d.len()),
            Some(LARGE_VALUE_BYTES)
        );
        assert_eq!(other.set_data(&path, &value, -1).err, raw::OK);
    }

    // Once the stuck clients read, each gets every reply, in order, none dropped.
    let deadline = Instant::now() + Duration::from_secs(120);
    for conn in &mut stuck {
        for xid in 1..=READS + 1 {
            let body = raw::read_frame_by(&mut conn.stream, deadline).expect("reply");
            let got = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            assert_eq!(got, xid, "replies out of order");
        }
    }
    for s in senders {
        assert!(s.join().expect("sender thread"), "requests not sent");
    }
}

/// Floods a connection with getAllChildrenNumber requests of `path` (each walks its whole
/// subtree: dear to serve, with a tiny reply) until `stop`; a second thread reads (and drops)
/// the replies so that the server's scheduling is tested, not its output backpressure.
fn flood(
    server: &TestServer,
    path: &str,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let (_, max) = server.session_bounds_ms();
    let flooder = server.raw(max);
    let mut writer = flooder.stream.try_clone().expect("clone stream");
    let mut reader = flooder.stream;
    let body = Enc::new().string(path).finish();
    let mut burst = Vec::new();
    for xid in 1..=2000 {
        let payload = Enc::new()
            .int(xid)
            .int(raw::OP_GET_ALL_CHILDREN_NUMBER)
            .bytes(&body)
            .finish();
        burst.extend_from_slice(&raw::frame(&payload));
    }
    let stop_w = stop.clone();
    let w = std::thread::spawn(move || {
        writer
            .set_write_timeout(Some(Duration::from_millis(200)))
            .ok();
        while !stop_w.load(Ordering::Relaxed) {
            match writer.write_all(&burst) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    });
    let r = std::thread::spawn(move || {
        reader
            .set_read_timeout(Some(Duration::from_millis(200)))
            .ok();
        let mut buf = vec![0u8; 1 << 20];
        while !stop.load(Ordering::Relaxed) {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    });
    vec![w, r]
}

/// Children under the flooded path.
const SUBTREE_NODES: usize = 5000;

#[test]
fn a_flooding_connection_does_not_starve_its_shard() {
    // One shard: the flooder, the pinger, the writer and commit application share it.
    let server = TestServer::start_with(&["zkrs.shards=1"]);
    if server.is_external() {
        return;
    }
    let (_, max) = server.session_bounds_ms();
    let mut pinger = server.raw(max);
    let mut writer = server.raw(max);
    let path = unique_prefix("flood");
    assert_eq!(writer.create(&path, b"0", 0).err, raw::OK);
    let xids: Vec<i32> = (0..SUBTREE_NODES)
        .map(|i| {
            let child = format!("{path}/c{i}");
            let body = Enc::new()
                .string(&child)
                .buffer(b"")
                .open_acl()
                .int(0)
                .finish();
            writer.send(raw::OP_CREATE, &body)
        })
        .collect();
    for xid in xids {
        assert_eq!(writer.wait_reply(xid).err, raw::OK);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let threads = flood(&server, &path, stop.clone());
    // Stops the flood even if an assert below fails, so that the test ends.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    std::thread::sleep(Duration::from_millis(300));

    // Reads and pings are timed; a write's time includes an fdatasync, which on a shared
    // machine's disk says nothing about the shard, so writes are only required to apply.
    let mut slowest = Duration::ZERO;
    let mut slowest_write = Duration::ZERO;
    for round in 1..=20 {
        let started = Instant::now();
        assert_eq!(pinger.ping().err, raw::OK);
        slowest = slowest.max(started.elapsed());
        let value = format!("{round}");
        let started = Instant::now();
        assert_eq!(writer.set_data(&path, value.as_bytes(), -1).err, raw::OK);
        slowest_write = slowest_write.max(started.elapsed());
        let started = Instant::now();
        let reply = pinger.get_data(&path, false);
        slowest = slowest.max(started.elapsed());
        assert_eq!(reply.err, raw::OK);
        assert_eq!(reply.dec().buffer().unwrap_or_default(), value.into_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("flood thread");
    }
    eprintln!(
        "beside the flood: slowest ping or read {slowest:?}, slowest write {slowest_write:?}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a ping or read took {slowest:?} beside a flooding connection"
    );
    assert!(
        slowest_write < Duration::from_secs(5),
        "a write took {slowest_write:?} beside a flooding connection"
    );
}

/// Connections with a session on each shard, from mntr's `zk_shard_<i>_connections`.
fn shard_counts(server: &TestServer) -> Vec<i64> {
    let mntr = server.four_letter("mntr");
    let mut counts = Vec::new();
    for i in 0.. {
        let key = format!("zk_shard_{i}_connections\t");
        let Some(v) = mntr.lines().find_map(|l| l.strip_prefix(key.as_str())) else {
            break;
        };
        counts.push(v.trim().parse().expect("a count"));
    }
    counts
}

/// A raw session on shard `wanted` (of two): connects until one lands there.
fn raw_on_shard(server: &TestServer, wanted: usize, kept: &mut Vec<raw::Raw>) -> raw::Raw {
    let (_, max) = server.session_bounds_ms();
    for _ in 0..64 {
        let before = shard_counts(server);
        let c = server.raw(max);
        let after = shard_counts(server);
        assert_eq!(after.len(), 2, "mntr names two shards");
        if after[wanted] > before[wanted]
            && after.iter().sum::<i64>() == before.iter().sum::<i64>() + 1
        {
            return c;
        }
        // Kept open, so that the kernel's spreading moves on to other choices.
        kept.push(c);
    }
    panic!("no connection landed on shard {wanted} in 64 tries");
}

/// Writes answered on one shard, read right after from the other, `pairs` times (each way
/// in turn); returns how many reads saw an older version than the write's reply, and the
/// reads' latencies, sorted.
fn stale_reads_across_shards(server: &TestServer, pairs: i32) -> (usize, Vec<Duration>) {
    let mut kept = Vec::new();
    let mut on_0 = raw_on_shard(server, 0, &mut kept);
    let mut on_1 = raw_on_shard(server, 1, &mut kept);
    let path = unique_prefix("stale");
    assert_eq!(on_0.create(&path, b"0", 0).err, raw::OK);
    assert_eq!(on_1.sync(&path).err, raw::OK);
    let mut stale = 0;
    let mut read_latencies = Vec::new();
    for i in 1..=pairs {
        let (writer, reader) = if i % 2 == 0 {
            (&mut on_0, &mut on_1)
        } else {
            (&mut on_1, &mut on_0)
        };
        let value = i.to_string();
        let written = writer.set_data(&path, value.as_bytes(), -1);
        assert_eq!(written.err, raw::OK);
        let read_started = Instant::now();
        let read = reader.get_data(&path, false);
        read_latencies.push(read_started.elapsed());
        assert_eq!(read.err, raw::OK);
        let mut d = read.dec();
        let data = d.buffer().unwrap_or_default();
        let stat = d.stat();
        if read.zxid < written.zxid || stat.mzxid != written.zxid || data != value.as_bytes() {
            stale += 1;
        }
    }
    read_latencies.sort();
    (stale, read_latencies)
}

#[test]
fn a_read_on_another_shard_sees_an_answered_write() {
    let server = TestServer::start_with(&["zkrs.shards=2"]);
    if server.is_external() {
        return;
    }
    let pairs = 3000;
    let (stale, reads) = stale_reads_across_shards(&server, pairs);
    let at = |q: f64| reads[((reads.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{pairs} write-then-read pairs across shards: read latency p50 {:?} p90 {:?} p99 {:?} mean {:?}",
        at(0.5),
        at(0.9),
        at(0.99),
        reads.iter().sum::<Duration>() / reads.len() as u32
    );
    assert_eq!(stale, 0, "{stale} of {pairs} reads saw an older version");
}

/// Value of `key` in mntr's answer.
fn mntr_value(mntr: &str, key: &str) -> Option<i64> {
    mntr.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn mntr_shows_each_shard_applied_zxid_and_lag() {
    let server = TestServer::start_with(&["zkrs.shards=2"]);
    if server.is_external() {
        return;
    }
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let path = unique_prefix("mntr-shards");
    let created = c.create(&path, b"", 0);
    assert_eq!(created.err, raw::OK);
    // Idle after the write: both shards applied it, nothing lags.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mntr = server.four_letter("mntr");
        let released = mntr_value(&mntr, "zk_released_zxid").expect("zk_released_zxid");
        let applied: Vec<Option<i64>> = (0..2)
            .map(|i| mntr_value(&mntr, &format!("zk_shard_{i}_applied_zxid")))
            .collect();
        let lags: Vec<Option<i64>> = (0..2)
            .map(|i| mntr_value(&mntr, &format!("zk_shard_{i}_zxid_lag")))
            .collect();
        assert!(
            mntr_value(&mntr, "zk_shard_2_applied_zxid").is_none(),
            "a third shard in mntr:\n{mntr}"
        );
        assert!(
            released >= created.zxid,
            "released zxid behind an answered write"
        );
        if applied.iter().all(|a| *a == Some(released)) && lags.iter().all(|l| *l == Some(0)) {
            let on_shards: i64 = (0..2)
                .map(|i| mntr_value(&mntr, &format!("zk_shard_{i}_connections")).unwrap())
                .sum();
            assert_eq!(on_shards, 1, "one session connection:\n{mntr}");
            assert!(mntr_value(&mntr, "zk_last_batch_durable_ms_ago").unwrap() >= 0);
            assert!(mntr_value(&mntr, "zk_shard_0_last_applied_ms_ago").unwrap() >= 0);
            break;
        }
        assert!(Instant::now() < deadline, "shards never caught up:\n{mntr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn memory_freed_after_a_burst_returns_to_the_os_once_idle() {
    let server = TestServer::start();
    let Some(pid) = server.pid() else { return };
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let path = unique_prefix("burst");
    assert_eq!(
        c.create(&path, &vec![b'y'; LARGE_VALUE_BYTES], 0).err,
        raw::OK
    );
    assert_eq!(c.get_data(&path, false).err, raw::OK);
    std::thread::sleep(Duration::from_millis(500));
    let before_kib = rss_kib(pid);

    // A burst: connections that read their replies late make the server hold megabytes of
    // output each.
    let reads = 300;
    let mut burst: Vec<raw::Raw> = (0..8).map(|_| server.raw(max)).collect();
    let requests = pipelined_get_data(&path, reads);
    for b in &mut burst {
        b.send_bytes(&requests).expect("send");
    }
    std::thread::sleep(Duration::from_secs(1));
    let peak_kib = rss_kib(pid);
    let deadline = Instant::now() + Duration::from_secs(60);
    for b in &mut burst {
        for _ in 1..=reads {
            raw::read_frame_by(&mut b.stream, deadline).expect("reply");
        }
    }
    drop(burst);

    // Idle: what the burst freed goes back within seconds.
    let settle_until = Instant::now() + Duration::from_secs(10);
    let mut now_kib = rss_kib(pid);
    while now_kib > before_kib + 8 * 1024 && Instant::now() < settle_until {
        std::thread::sleep(Duration::from_millis(100));
        now_kib = rss_kib(pid);
    }
    assert!(
        peak_kib > before_kib + 16 * 1024,
        "the burst did not take memory (before {before_kib} KiB, peak {peak_kib} KiB)"
    );
    assert!(
        now_kib <= before_kib + 8 * 1024,
        "RSS stayed at {now_kib} KiB after a burst (before {before_kib} KiB, peak {peak_kib} KiB)"
    );
}
