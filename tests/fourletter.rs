//! Four-letter words on the client port (all whitelisted by the test configuration).

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::raw;
use common::*;

/// `key: value` / `key=value` / `key\tvalue` lookup in a four-letter answer.
fn field<'a>(text: &'a str, key: &str, sep: char) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(sep)?;
        (k.trim() == key).then(|| v.trim())
    })
}

fn number(text: &str, key: &str, sep: char) -> i64 {
    let v = field(text, key, sep).unwrap_or_else(|| panic!("no {key} in:\n{text}"));
    v.parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {v:?}"))
}

fn parse_zxid(srvr: &str) -> Option<i64> {
    i64::from_str_radix(field(srvr, "Zxid", ':')?.trim_start_matches("0x"), 16).ok()
}

/// Asks `word` until `ready` accepts the answer or 3 s pass, and returns the last answer.
/// (A server that gathers counters from several threads may trail a write very briefly.)
fn four_letter_until(server: &TestServer, word: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let answer = server.four_letter(word);
        if ready(&answer) || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ruok_and_isro() {
    let server = TestServer::start();
    assert_eq!(server.four_letter("ruok"), "imok");
    assert_eq!(server.four_letter("isro"), "rw");
}

#[test]
fn srvr_and_stat() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("srvr");
    let created = c.create(&root, b"", 0).ok();

    let srvr = four_letter_until(&server, "srvr", |a| {
        parse_zxid(a).is_some_and(|z| z >= created.zxid)
    });
    assert!(srvr.starts_with("Zookeeper version: "), "srvr:\n{srvr}");
    assert_eq!(
        field(&srvr, "Mode", ':'),
        Some("standalone"),
        "srvr:\n{srvr}"
    );
    let zxid = parse_zxid(&srvr).expect("Zxid line with a hex zxid");
    assert!(
        zxid >= created.zxid,
        "srvr zxid {zxid:#x} behind {:#x}",
        created.zxid
    );
    assert!(number(&srvr, "Node count", ':') >= 5);
    assert!(number(&srvr, "Connections", ':') >= 1);
    for key in ["Latency min/avg/max", "Received", "Sent", "Outstanding"] {
        assert!(
            field(&srvr, key, ':').is_some(),
            "no {key} in srvr:\n{srvr}"
        );
    }

    let stat = server.four_letter("stat");
    assert!(stat.starts_with("Zookeeper version: "), "stat:\n{stat}");
    assert!(stat.contains("Clients:\n"), "stat:\n{stat}");
    assert!(
        stat.contains(" /127.0.0.1:"),
        "stat lists no client:\n{stat}"
    );
    assert_eq!(field(&stat, "Mode", ':'), Some("standalone"));
    assert!(field(&stat, "Node count", ':').is_some());
}

#[test]
fn mntr_metrics() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("mntr");
    c.create(&root, b"", 0).ok();
    c.create(&format!("{root}/a"), b"", raw::CREATE_EPHEMERAL)
        .ok();
    c.create(&format!("{root}/b"), b"", raw::CREATE_EPHEMERAL)
        .ok();
    c.get_data(&root, true).ok();

    let at_least = |text: &str, key: &str, n: i64| {
        field(text, key, '\t')
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|v| v >= n)
    };
    let mntr = four_letter_until(&server, "mntr", |a| {
        at_least(a, "zk_znode_count", 7)
            && at_least(a, "zk_ephemerals_count", 2)
            && at_least(a, "zk_watch_count", 1)
    });
    for line in mntr.lines() {
        assert!(
            line.starts_with("zk_") && line.contains('\t'),
            "odd mntr line {line:?}"
        );
    }
    assert!(field(&mntr, "zk_version", '\t').is_some(), "mntr:\n{mntr}");
    assert_eq!(field(&mntr, "zk_server_state", '\t'), Some("standalone"));
    // /, /zookeeper, /zookeeper/quota, /zookeeper/config and ours.
    assert!(number(&mntr, "zk_znode_count", '\t') >= 7);
    assert!(number(&mntr, "zk_ephemerals_count", '\t') >= 2);
    assert!(number(&mntr, "zk_num_alive_connections", '\t') >= 1);
    assert!(number(&mntr, "zk_watch_count", '\t') >= 1);
    for key in [
        "zk_avg_latency",
        "zk_outstanding_requests",
        "zk_packets_received",
        "zk_packets_sent",
    ] {
        assert!(
            field(&mntr, key, '\t').is_some(),
            "no {key} in mntr:\n{mntr}"
        );
    }
}

#[test]
fn conf_envi_dirs() {
    let server = TestServer::start();
    let conf = server.four_letter("conf");
    let port = server.addr.rsplit(':').next().unwrap();
    assert_eq!(field(&conf, "clientPort", '='), Some(port), "conf:\n{conf}");
    let tick = number(&conf, "tickTime", '=');
    assert!(tick > 0);
    assert_eq!(number(&conf, "minSessionTimeout", '='), 2 * tick);
    assert_eq!(number(&conf, "maxSessionTimeout", '='), 20 * tick);
    assert!(field(&conf, "dataDir", '=').is_some(), "conf:\n{conf}");

    let envi = server.four_letter("envi");
    assert!(envi.starts_with("Environment:\n"), "envi:\n{envi}");
    assert!(
        field(&envi, "zookeeper.version", '=').is_some(),
        "envi:\n{envi}"
    );

    let dirs = server.four_letter("dirs");
    assert!(number(&dirs, "datadir_size", ':') >= 0, "dirs:\n{dirs}");
    assert!(number(&dirs, "logdir_size", ':') >= 0, "dirs:\n{dirs}");
}

#[test]
fn cons_and_watch_words() {
    let server = TestServer::start();
    let (_, max) = server.session_bounds_ms();
    let mut c = server.raw(max);
    let root = unique_prefix("wchs");
    c.create(&root, b"", 0).ok();
    c.get_data(&root, true).ok();
    let sid = format!("{:#x}", c.session_id);

    let cons = server.four_letter("cons");
    let line = cons
        .lines()
        .find(|l| l.contains(&format!("sid={sid},")))
        .unwrap_or_else(|| panic!("cons does not list session {sid}:\n{cons}"));
    assert!(line.starts_with(" /127.0.0.1:"), "cons line {line:?}");
    assert!(line.contains(&format!("to={max},")), "cons line {line:?}");

    let wchs = server.four_letter("wchs");
    let first = wchs.lines().next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert!(
        words.len() == 5
            && words[1] == "connections"
            && words[2] == "watching"
            && words[4] == "paths",
        "wchs:\n{wchs}"
    );
    assert!(words[0].parse::<u64>().unwrap() >= 1 && words[3].parse::<u64>().unwrap() >= 1);
    assert!(number(&wchs, "Total watches", ':') >= 1, "wchs:\n{wchs}");

    // wchc: session, then its watched paths indented; wchp: path, then sessions.
    let wchc = server.four_letter("wchc");
    let lines: Vec<&str> = wchc.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == sid)
        .unwrap_or_else(|| panic!("wchc:\n{wchc}"));
    assert!(lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with('\t'))
        .any(|l| l.trim() == root));
    let wchp = server.four_letter("wchp");
    let lines: Vec<&str> = wchp.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == root)
        .unwrap_or_else(|| panic!("wchp:\n{wchp}"));
    assert!(lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with('\t'))
        .any(|l| l.trim() == sid));
}

#[test]
fn unknown_word_gets_no_answer() {
    let server = TestServer::start();
    // Not a known word: read as the length of a (far too large) connect request.
    assert_eq!(four_letter_opt(&server.addr, "abcd").as_deref(), Some(""));
    assert_eq!(server.four_letter("ruok"), "imok");
}

/// Sends `bytes` on a fresh connection (then half-closes it, as `nc` does) and reads the
/// whole answer.
fn send_raw_word(addr: &str, bytes: &[u8], pause_after: Option<usize>) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = raw::dial(addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    match pause_after {
        Some(at) => {
            stream.write_all(&bytes[..at]).unwrap();
            stream.flush().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            stream.write_all(&bytes[at..]).unwrap();
        }
        None => stream.write_all(bytes).unwrap(),
    }
    stream.shutdown(std::net::Shutdown::Write).ok();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).ok();
    out
}

/// ZooKeeper 3.8 reads a big-endian long after `stmk`, makes it the trace mask and answers
/// it in decimal; `gtmk` then prints it. Fewer than 8 bytes: closed without an answer.
#[test]
fn stmk_sets_the_trace_mask_that_gtmk_prints() {
    let server = TestServer::start();
    let before = server.four_letter("gtmk");
    let stmk = |mask: i64, pause: Option<usize>| {
        let mut bytes = b"stmk".to_vec();
        bytes.extend_from_slice(&mask.to_be_bytes());
        String::from_utf8(send_raw_word(&server.addr, &bytes, pause)).unwrap()
    };
    assert_eq!(stmk(0x1234_5678_9abc, None), "20015998343868");
    assert_eq!(server.four_letter("gtmk"), "20015998343868");
    assert_eq!(stmk(-2, None), "-2");
    assert_eq!(server.four_letter("gtmk"), "-2");
    // zkrs waits for a mask that comes in a later segment than the word (ZooKeeper's NIO
    // server reads once and closes).
    if !server.is_external() {
        assert_eq!(stmk(7, Some(6)), "7");
    } else {
        assert_eq!(stmk(7, None), "7");
    }
    assert_eq!(server.four_letter("gtmk"), "7");
    // Too short: no answer, and the mask stays.
    assert_eq!(send_raw_word(&server.addr, b"stmk\x00\x00\x01", None), b"");
    assert_eq!(send_raw_word(&server.addr, b"stmk", None), b"");
    assert_eq!(server.four_letter("gtmk"), "7");
    // Put back what the server had (an external server may be shared).
    let before: i64 = before.trim().parse().expect("gtmk is a number");
    assert_eq!(stmk(before, None), before.to_string());
}
