//! The AdminServer (`admin.*`: JSON commands over HTTP) and the Prometheus `/metrics`
//! endpoint, over real HTTP on loopback (a std `TcpStream` client written here), with
//! ZooKeeper clients on the client port creating the state the commands report. Where
//! Java is installed, the JSON field names and shapes are compared with Apache ZooKeeper
//! 3.8's own AdminServer (Jetty from Debian's packages).

#[macro_use]
mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::javazk::JavaZk;
use common::*;
use serde_json::Value;
use zookeeper_client::{Acls, CreateMode};

/// A zkrs server with its AdminServer (and, with `metrics`, /metrics) on free ports.
struct Admin {
    server: TestServer,
    admin: SocketAddr,
    metrics: Option<SocketAddr>,
}

fn start_admin(metrics: bool, extra: &[&str]) -> Option<Admin> {
    if std::env::var("ZKRS_TEST_TARGET").is_ok() {
        eprintln!("skipped: the AdminServer's port of an external server is not known");
        return None;
    }
    let admin_port = free_port();
    let metrics_port = free_port();
    let mut lines = vec![
        "admin.enableServer=true".to_string(),
        "admin.serverAddress=127.0.0.1".to_string(),
        format!("admin.serverPort={admin_port}"),
    ];
    if metrics {
        lines.extend([
            "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
                .to_string(),
            "metricsProvider.httpHost=127.0.0.1".to_string(),
            format!("metricsProvider.httpPort={metrics_port}"),
        ]);
    }
    lines.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let server = TestServer::start_with(&refs);
    Some(Admin {
        server,
        admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
        metrics: metrics.then(|| SocketAddr::from(([127, 0, 0, 1], metrics_port))),
    })
}

/// One HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses the responses in `bytes` (bodies by Content-Length). Panics on anything else.
fn parse_replies(mut bytes: &[u8], head_only: bool) -> Vec<Reply> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status: u16 = parts.next().unwrap().parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header line");
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("Content-Length"))
            .expect("every response has a Content-Length");
        let body_len = if head_only { 0 } else { length };
        let body = bytes[end + 4..end + 4 + body_len].to_vec();
        bytes = &bytes[end + 4 + body_len..];
        out.push(Reply {
            status,
            headers,
            body,
        });
    }
    out
}

/// Sends `request` as is and reads until the server closes (every wait bounded).
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before taking all of a bad request.
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if out.is_empty() => panic!("read: {e}"),
            Err(_) => break,
        }
    }
    out
}

fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut replies = parse_replies(&exchange(addr, text.as_bytes()), method == "HEAD");
    assert_eq!(replies.len(), 1);
    replies.remove(0)
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path)
}

/// `GET /commands/<name>`: 200, JSON, parsed.
fn command(admin: SocketAddr, name: &str) -> Value {
    let reply = get(admin, &format!("/commands/{name}"));
    assert_eq!(reply.status, 200, "{name}: {}", reply.text());
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", reply.text()))
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {v}"))
}

/// Polls `name` until `ready` accepts it (the shards apply resets on their next admin
/// poll); returns the last answer after at most 5 s.
fn command_until(admin: SocketAddr, name: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = command(admin, name);
        if ready(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Field names (in order) of each command as Apache ZooKeeper 3.8.4's AdminServer answers a
/// standalone server (captured from it; `command` and `error` are the two it adds).
const FIELDS: &[(&str, &[&str])] = &[
    ("connection_stat_reset", &["command", "error"]),
    (
        "configuration",
        &[
            "client_port",
            "data_dir",
            "data_log_dir",
            "tick_time",
            "max_client_cnxns",
            "min_session_timeout",
            "max_session_timeout",
            "server_id",
            "client_port_listen_backlog",
            "command",
            "error",
        ],
    ),
    (
        "connections",
        &["connections", "secure_connections", "command", "error"],
    ),
    ("hash", &["digests", "command", "error"]),
    ("dirs", &["datadir_size", "logdir_size", "command", "error"]),
    (
        "dump",
        &[
            "expiry_time_to_session_ids",
            "session_id_to_ephemeral_paths",
            "command",
            "error",
        ],
    ),
    ("get_trace_mask", &["tracemask", "command", "error"]),
    (
        "initial_configuration",
        &["initial_configuration", "command", "error"],
    ),
    ("is_read_only", &["read_only", "command", "error"]),
    ("last_snapshot", &["zxid", "timestamp", "command", "error"]),
    ("leader", &["error", "command"]),
    ("observer_connection_stat_reset", &["command", "error"]),
    (
        "observers",
        &["synced_observers", "observers", "command", "error"],
    ),
    ("ruok", &["command", "error"]),
    ("set_trace_mask", &["error", "command"]),
    (
        "server_stats",
        &[
            "version",
            "read_only",
            "server_stats",
            "client_response",
            "node_count",
            "command",
            "error",
        ],
    ),
    (
        "stats",
        &[
            "version",
            "read_only",
            "server_stats",
            "client_response",
            "node_count",
            "connections",
            "secure_connections",
            "command",
            "error",
        ],
    ),
    ("stat_reset", &["command", "error"]),
    ("voting_view", &["current_config", "command", "error"]),
    (
        "watches",
        &["session_id_to_watched_paths", "command", "error"],
    ),
    (
        "watches_by_path",
        &["path_to_session_ids", "command", "error"],
    ),
    (
        "watch_summary",
        &[
            "num_connections",
            "num_paths",
            "num_total_watches",
            "command",
            "error",
        ],
    ),
    ("zabstate", &["voting", "zabstate", "command", "error"]),
];

/// `ServerStats` as Jackson writes it, in its order.
const SERVER_STATS_FIELDS: &[&str] = &[
    "packets_sent",
    "packets_received",
    "fsync_threshold_exceed_count",
    "client_response_stats",
    "data_dir_size",
    "log_dir_size",
    "provider_null",
    "server_state",
    "last_processed_zxid",
    "outstanding_requests",
    "avg_latency",
    "max_latency",
    "min_latency",
    "num_alive_client_connections",
    "uptime",
    "auth_failed_count",
    "non_mtlsremote_conn_count",
    "non_mtlslocal_conn_count",
];

const CONNECTION_FIELDS: &[&str] = &[
    "remote_socket_address",
    "interest_ops",
    "outstanding_requests",
    "packets_received",
    "packets_sent",
    "session_id",
    "last_operation",
    "established",
    "session_timeout",
    "last_cxid",
    "last_zxid",
    "last_response_time",
    "last_latency",
    "min_latency",
    "avg_latency",
    "max_latency",
];

/// The primary name and aliases of every command ZooKeeper 3.8 registers.
const ALIASES: &[(&str, &[&str])] = &[
    ("connection_stat_reset", &["crst"]),
    ("configuration", &["conf", "config"]),
    ("connections", &["cons"]),
    ("environment", &["env", "envi"]),
    ("get_trace_mask", &["gtmk"]),
    ("initial_configuration", &["icfg"]),
    ("is_read_only", &["isro"]),
    ("last_snapshot", &["lsnp"]),
    ("leader", &["lead"]),
    ("monitor", &["mntr"]),
    ("observer_connection_stat_reset", &["orst"]),
    ("set_trace_mask", &["stmk"]),
    ("server_stats", &["srvr"]),
    ("stats", &["stat"]),
    ("stat_reset", &["srst"]),
    ("observers", &["obsr"]),
    ("system_properties", &["sysp"]),
    ("watches", &["wchc"]),
    ("watches_by_path", &["wchp"]),
    ("watch_summary", &["wchs"]),
];

#[test]
fn listing_unknown_commands_and_http_methods() {
    let Some(a) = start_admin(false, &[]) else {
        return;
    };
    let listing = get(a.admin, "/commands");
    assert_eq!(listing.status, 200);
    assert_eq!(listing.header("Content-Type"), None, "Jetty sets none");
    let text = listing.text();
    let lines: Vec<&str> = text.lines().collect();
    let mut names: Vec<&str> = FIELDS
        .iter()
        .map(|(n, _)| *n)
        .chain(["environment", "monitor", "system_properties"])
        .collect();
    names.sort_unstable();
    assert_eq!(lines.len(), 2 * names.len(), "{text}");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            lines[2 * i],
            format!("<a href=\"/commands/{name}\">{name}</a>")
        );
        assert_eq!(lines[2 * i + 1], "<br/>");
    }
    assert_eq!(get(a.admin, "/commands/").text(), text);

    // Unknown names, 3.9's commands and anything below a command: ZooKeeper's answer.
    for name in ["nosuch", "snapshot", "restore", "RUOK", "ruok/extra"] {
        let reply = get(a.admin, &format!("/commands/{name}"));
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.text(),
            format!(
                "{{\n  \"command\" : \"{name}\",\n  \"error\" : \"Unknown command: {name}\"\n}}"
            )
        );
    }
    // Byte for byte as Jackson prints it.
    assert_eq!(
        get(a.admin, "/commands/ruok").text(),
        "{\n  \"command\" : \"ruok\",\n  \"error\" : null\n}"
    );
    assert_eq!(get(a.admin, "/").status, 404);
    assert_eq!(get(a.admin, "/commandsx/ruok").status, 404);
    assert_eq!(request(a.admin, "POST", "/commands/ruok").status, 405);
    // With a body the server does not read: answered, then closed.
    let reply = exchange(
        a.admin,
        b"POST /commands/ruok HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(reply.starts_with(b"HTTP/1.1 405 "));
    assert_eq!(request(a.admin, "TRACE", "/commands/ruok").status, 403);
    let head = request(a.admin, "HEAD", "/commands/ruok");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("Content-Length"), Some("42"));

    // Two requests on one kept-alive connection.
    let both = exchange(
        a.admin,
        b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\n\r\nGET /commands/gtmk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let replies = parse_replies(&both, false);
    assert_eq!(replies.len(), 2);
    let second: Value = serde_json::from_slice(&replies[1].body).unwrap();
    assert_eq!(second["command"], "get_trace_mask");

    // set_trace_mask: ZooKeeper's errors, then a mask that get_trace_mask and gtmk see.
    let v = command(a.admin, "set_trace_mask");
    assert_eq!(keys(&v), ["error", "command"]);
    assert_eq!(v["error"], "setTraceMask requires long traceMask argument");
    let v = command(a.admin, "stmk?traceMask=abc");
    assert_eq!(
        v["error"],
        "setTraceMask requires long traceMask argument, got abc"
    );
    let v = command(a.admin, "stmk?traceMask=1234");
    assert_eq!(v["tracemask"], 1234);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(command(a.admin, "get_trace_mask")["tracemask"], 1234);
    assert_eq!(a.server.four_letter("gtmk"), "1234");
    command(a.admin, "stmk?traceMask=306");

    // More connections than the AdminServer serves at once (idle ones, within the default
    // 30 s idle timeout): the extra ones are refused with 503; the client port goes on.
    let held: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(a.admin).unwrap())
        .collect();
    let reply = exchange(
        a.admin,
        b"GET /commands/ruok HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(
        reply.starts_with(b"HTTP/1.1 503 "),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(a.server.four_letter("ruok"), "imok");
    drop(held);
    // Once they are gone, it answers again (the server sees each close).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = exchange(
            a.admin,
            b"GET /commands/ruok HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        if reply.starts_with(b"HTTP/1.1 200 ") {
            break;
        }
        assert!(Instant::now() < deadline, "the AdminServer did not recover");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_reports_the_servers_state() {
    let Some(a) = start_admin(false, &[]) else {
        return;
    };
    let admin = a.admin;
    let c = a.server.client().await;
    let session = c.session_id().0;
    let root = test_root(&c, "admin").await;
    let before = command(admin, "srvr");
    let nodes_before = int(&before, "node_count");
    for i in 0..5 {
        mk(&c, &format!("{root}/n{i}")).await;
    }
    let ephemeral = format!("{root}/eph");
    t!(c.create(
        &ephemeral,
        b"e",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all())
    ))
    .unwrap();
    let watched = format!("{root}/n0");
    let (_, _, _watcher) = t!(c.get_and_watch_data(&watched)).unwrap();

    let srvr = command(admin, "server_stats");
    assert_eq!(int(&srvr, "node_count"), nodes_before + 6, "{srvr}");
    assert!(srvr["version"].as_str().unwrap().starts_with("3.8."));
    assert_eq!(srvr["read_only"], false);
    let stats = &srvr["server_stats"];
    assert_eq!(keys(stats), SERVER_STATS_FIELDS);
    assert_eq!(stats["server_state"], "standalone");
    assert!(int(stats, "packets_received") >= 8, "{stats}");
    assert!(int(stats, "num_alive_client_connections") >= 1);
    assert!(int(stats, "last_processed_zxid") > 0);
    assert!(stats["avg_latency"].is_f64());
    assert!(int(stats, "data_dir_size") > 0);
    assert_eq!(
        keys(&stats["client_response_stats"]),
        ["last_buffer_size", "min_buffer_size", "max_buffer_size"]
    );

    let monitor = command(admin, "monitor");
    assert_eq!(monitor["command"], "monitor");
    assert_eq!(monitor["server_state"], "standalone");
    assert_eq!(int(&monitor, "znode_count"), nodes_before + 6);
    assert!(int(&monitor, "ephemerals_count") >= 1);
    assert!(int(&monitor, "watch_count") >= 1);
    assert!(int(&monitor, "global_sessions") >= 1);
    assert!(int(&monitor, "approximate_data_size") > 0);
    assert!(int(&monitor, "open_file_descriptor_count") > 0);
    assert!(int(&monitor, "cnt_updatelatency") >= 7, "{monitor}");
    assert!(int(&monitor, "cnt_readlatency") >= 1);
    assert!(int(&monitor, "cnt_fsynctime") >= 1);
    for key in ["p50_readlatency", "p99_updatelatency", "avg_fsynctime"] {
        assert!(monitor.get(key).is_some(), "{key}");
    }

    // Our connection, with its session, in connections (full) and stats (brief).
    let cons = command(admin, "cons");
    let list = cons["connections"].as_array().unwrap();
    let mine = list
        .iter()
        .find(|c| c["session_id"] == session)
        .unwrap_or_else(|| panic!("session 0x{session:x} not in {cons}"));
    assert_eq!(keys(mine), CONNECTION_FIELDS);
    assert!(mine["remote_socket_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(int(mine, "packets_received") >= 8);
    assert!(int(mine, "session_timeout") > 0);
    assert!(int(mine, "established") > 1_600_000_000_000);
    assert_eq!(cons["secure_connections"], Value::Array(vec![]));
    let stat = command(admin, "stats");
    for c in stat["connections"].as_array().unwrap() {
        assert_eq!(
            keys(c),
            &CONNECTION_FIELDS[..5],
            "stats lists brief connections"
        );
    }

    // Watches, by session and by path, and their summary.
    let key = session.to_string();
    let wchc = command(admin, "wchc");
    let paths = wchc["session_id_to_watched_paths"][&key]
        .as_array()
        .unwrap_or_else(|| panic!("no watches of {key}: {wchc}"));
    assert!(paths.contains(&Value::from(watched.as_str())), "{wchc}");
    let wchp = command(admin, "wchp");
    assert!(wchp["path_to_session_ids"][&watched]
        .as_array()
        .unwrap()
        .contains(&Value::from(session)));
    let wchs = command(admin, "wchs");
    assert!(int(&wchs, "num_connections") >= 1);
    assert!(int(&wchs, "num_paths") >= 1);
    assert!(int(&wchs, "num_total_watches") >= 1);

    // Sessions and their ephemerals.
    let dump = command(admin, "dump");
    assert!(dump["session_id_to_ephemeral_paths"][&key]
        .as_array()
        .unwrap()
        .contains(&Value::from(ephemeral.as_str())));
    let expiring: Vec<&Value> = dump["expiry_time_to_session_ids"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ids| ids.as_array().unwrap())
        .collect();
    assert!(expiring.contains(&&Value::from(session)), "{dump}");

    // Configuration and files.
    let conf = command(admin, "conf");
    let port: i64 = a.server.addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(int(&conf, "client_port"), port);
    assert_eq!(int(&conf, "tick_time"), TICK_MS as i64);
    assert_eq!(int(&conf, "server_id"), 0);
    assert!(conf["data_dir"].as_str().unwrap().starts_with('/'));
    let dirs = command(admin, "dirs");
    assert!(int(&dirs, "datadir_size") > 0 && int(&dirs, "logdir_size") > 0);
    let lsnp = command(admin, "lsnp");
    assert!(i64::from_str_radix(lsnp["zxid"].as_str().unwrap(), 16).is_ok());
    assert!(int(&lsnp, "timestamp") > 1_600_000_000);
    let icfg = command(admin, "icfg");
    let text = icfg["initial_configuration"].as_str().unwrap();
    assert!(text.contains("admin.serverPort=") && text.contains("clientPort="));
    let env = command(admin, "envi");
    assert!(env["zookeeper.version"]
        .as_str()
        .unwrap()
        .starts_with("3.8."));
    assert_eq!(env["os.name"], "Linux");
    let sysp = command(admin, "sysp");
    assert_eq!(sysp["file.separator"], "/");
    assert_eq!(
        sysp["zookeeper.admin.serverPort"],
        admin.port().to_string().as_str()
    );

    // Standalone answers.
    assert_eq!(command(admin, "isro")["read_only"], false);
    assert_eq!(command(admin, "lead")["error"], "server is not initialized");
    let zab = command(admin, "zabstate");
    assert_eq!(
        (&zab["voting"], &zab["zabstate"]),
        (&Value::from(false), &Value::from(""))
    );
    assert_eq!(
        command(admin, "voting_view")["current_config"],
        serde_json::json!({})
    );
    let obsr = command(admin, "obsr");
    assert_eq!(int(&obsr, "synced_observers"), 0);
    assert_eq!(command(admin, "hash")["digests"], serde_json::json!([]));

    // Resets: connection stats, then server stats.
    let received = |v: &Value| {
        v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["session_id"] == session)
            .map(|c| int(c, "packets_received"))
    };
    for _ in 0..10 {
        t!(c.get_data(&watched)).unwrap();
    }
    let conn_before = received(&command(admin, "cons")).unwrap();
    assert!(conn_before >= 10);
    let server_packets = |v: &Value| int(&v["server_stats"], "packets_received");
    let server_before = server_packets(&command(admin, "srvr"));
    command(admin, "crst");
    let after = command_until(admin, "cons", |v| {
        received(v).is_some_and(|n| n < conn_before)
    });
    assert!(
        received(&after).unwrap() < conn_before,
        "crst did not reset: {after}"
    );
    // crst leaves the server's totals alone; srst resets them and the latencies.
    assert!(server_packets(&command(admin, "srvr")) >= server_before);
    command(admin, "srst");
    let after = command_until(admin, "srvr", |v| {
        int(&v["server_stats"], "max_latency") == 0 && server_packets(v) < server_before
    });
    assert!(
        server_packets(&after) < server_before && int(&after["server_stats"], "max_latency") == 0,
        "srst did not reset: {after}"
    );

    // Field names of every command and alias (after the checks above: crst and srst reset).
    for (name, fields) in FIELDS {
        let v = command(admin, name);
        assert_eq!(keys(&v), *fields, "{name}: {v}");
        assert_eq!(v["command"], *name);
    }
    for (primary, aliases) in ALIASES {
        for alias in *aliases {
            assert_eq!(command(admin, alias)["command"], *primary, "{alias}");
        }
    }
}

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A parsed Prometheus text exposition.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    helps: HashMap<String, String>,
    samples: Vec<Sample>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the text format 0.0.4; every sample must belong to a family whose TYPE came
/// before it (for a summary: the name, or the name with `_count` / `_sum`).
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or_else(|| at("HELP"))?;
            out.helps.insert(name.to_string(), help.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("TYPE"))?;
            if !["gauge", "counter", "summary", "histogram", "untyped"].contains(&kind) {
                return Err(at("unknown type"));
            }
            if out
                .types
                .insert(name.to_string(), kind.to_string())
                .is_some()
            {
                return Err(at("TYPE twice"));
            }
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("sample"))?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| at("value"))?,
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').ok_or_else(|| at("labels"))?;
                    let mut labels = Vec::new();
                    for pair in inner.split(',').filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=').ok_or_else(|| at("label"))?;
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .ok_or_else(|| at("label value"))?;
                        labels.push((k.to_string(), v.to_string()));
                    }
                    (name, labels)
                }
            };
            if !is_metric_name(name) {
                return Err(at("metric name"));
            }
            let family = [
                name,
                name.trim_end_matches("_count"),
                name.trim_end_matches("_sum"),
            ]
            .into_iter()
            .find(|f| out.types.contains_key(*f))
            .ok_or_else(|| at("sample before its TYPE"))?;
            if family != name && out.types[family] != "summary" {
                return Err(at("suffix on a non-summary"));
            }
            out.samples.push((name.to_string(), labels, value));
        }
    }
    Ok(out)
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
    }

    fn must(&self, name: &str) -> f64 {
        self.value(name, &[])
            .unwrap_or_else(|| panic!("no sample {name}"))
    }
}

fn scrape(addr: SocketAddr) -> Exposition {
    let reply = get(addr, "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_exposition(&reply.text()).unwrap_or_else(|e| panic!("{e}\n{}", reply.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_have_zookeepers_names_and_move_with_load() {
    let Some(a) = start_admin(true, &[]) else {
        return;
    };
    let metrics = a.metrics.unwrap();
    let first = scrape(metrics);
    let gauges = [
        "avg_latency",
        "max_latency",
        "min_latency",
        "packets_received",
        "packets_sent",
        "num_alive_connections",
        "outstanding_requests",
        "uptime",
        "znode_count",
        "watch_count",
        "ephemerals_count",
        "approximate_data_size",
        "global_sessions",
        "local_sessions",
        "open_file_descriptor_count",
        "max_file_descriptor_count",
        "connection_drop_probability",
        "outstanding_tls_handshake",
        "auth_failed_count",
        "non_mtls_remote_conn_count",
        "non_mtls_local_conn_count",
    ];
    for name in gauges {
        assert_eq!(
            first.types.get(name).map(String::as_str),
            Some("gauge"),
            "{name}"
        );
        assert_eq!(first.helps.get(name).map(String::as_str), Some(name));
        first.must(name);
    }
    for (name, quantiles) in [
        ("readlatency", &["0.5", "0.9", "0.99"][..]),
        ("updatelatency", &["0.5", "0.9", "0.99"][..]),
        ("fsynctime", &["0.5"][..]),
    ] {
        assert_eq!(first.types.get(name).map(String::as_str), Some("summary"));
        for q in quantiles {
            assert!(
                first.value(name, &[("quantile", q)]).is_some(),
                "{name} quantile {q}"
            );
        }
        first.must(&format!("{name}_count"));
        first.must(&format!("{name}_sum"));
    }
    assert!(first.must("znode_count") >= 4.0);
    // exportJvmInfo (on by default): no JVM, but the client's process_* collector.
    assert_eq!(
        first
            .types
            .get("process_cpu_seconds_total")
            .map(String::as_str),
        Some("counter")
    );
    assert!(first.must("process_resident_memory_bytes") > 1e6);
    assert!(first.must("process_open_fds") >= 1.0);
    assert!(first.must("process_start_time_seconds") > 1.6e9);
    assert!(!first.types.keys().any(|k| k.starts_with("jvm_")));
    assert!(first.must("max_file_descriptor_count") >= first.must("open_file_descriptor_count"));

    // Load: 20 creates, reads, a watch and an ephemeral.
    let c = a.server.client().await;
    let root = test_root(&c, "prom").await;
    for i in 0..20 {
        mk(&c, &format!("{root}/n{i}")).await;
    }
    for i in 0..20 {
        t!(c.get_data(&format!("{root}/n{i}"))).unwrap();
    }
    t!(c.create(
        &format!("{root}/eph"),
        b"",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all())
    ))
    .unwrap();
    let (_, _, _w) = t!(c.get_and_watch_data(&format!("{root}/n1"))).unwrap();
    let second = scrape(metrics);
    assert_eq!(second.must("znode_count"), first.must("znode_count") + 22.0);
    assert!(second.must("ephemerals_count") >= first.must("ephemerals_count") + 1.0);
    assert!(second.must("watch_count") >= 1.0);
    assert!(second.must("num_alive_connections") >= 1.0);
    assert!(second.must("global_sessions") >= 1.0);
    assert!(second.must("packets_received") >= first.must("packets_received") + 43.0);
    assert!(second.must("updatelatency_count") >= first.must("updatelatency_count") + 22.0);
    assert!(second.must("readlatency_count") >= first.must("readlatency_count") + 21.0);
    assert!(second.must("fsynctime_count") > first.must("fsynctime_count"));
    assert!(second.must("approximate_data_size") > first.must("approximate_data_size"));
    let p99 = second
        .value("updatelatency", &[("quantile", "0.99")])
        .unwrap();
    assert!(p99.is_finite() && p99 >= 0.0, "{p99}");

    // Many scrapes and commands at once: every one complete (each shard answered).
    let expected = second.must("znode_count");
    let admin = a.admin;
    let workers: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..4 {
                    assert_eq!(scrape(metrics).must("znode_count"), expected);
                    assert_eq!(int(&command(admin, "mntr"), "znode_count") as f64, expected);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a concurrent scrape failed");
    }

    // ZooKeeper's packet counts are the server's: a client that leaves keeps its part.
    drop(_w);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    let third = loop {
        let x = scrape(metrics);
        if x.must("num_alive_connections") < second.must("num_alive_connections")
            || Instant::now() > deadline
        {
            break x;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(third.must("num_alive_connections") < second.must("num_alive_connections"));
    assert!(third.must("packets_received") >= second.must("packets_received"));
    assert!(third.must("packets_sent") >= second.must("packets_sent"));

    // Only GET /metrics.
    assert_eq!(get(metrics, "/").status, 404);
    assert_eq!(get(metrics, "/metricsx").status, 404);
    assert_eq!(request(metrics, "POST", "/metrics").status, 405);
}

/// Whether the server closed `stream` within `limit` (EOF or reset), reading what it sent.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> (bool, Vec<u8>) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (true, got),
        }
    }
    (false, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_answered_or_closed_and_clients_keep_working() {
    let Some(a) = start_admin(
        true,
        &[
            "admin.idleTimeout=1000",
            "metricsProvider.exportJvmInfo=false",
        ],
    ) else {
        return;
    };
    let exposition = scrape(a.metrics.unwrap());
    assert!(exposition.value("process_open_fds", &[]).is_none());
    assert!(exposition.value("znode_count", &[]).is_some());
    let c = a.server.client().await;
    let root = test_root(&c, "http-abuse").await;

    // Garbage: 400, closed.
    let garbage = exchange(a.admin, b"\x00\x01\x02 not http at all\r\n\r\n");
    assert!(
        garbage.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&garbage)
    );
    // Headers past 8 KiB: 431, closed (the rest of the request is never read).
    let mut huge = b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let mut stream = TcpStream::connect(a.admin).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(&huge); // the server may close before taking it all
    let (closed, got) = closed_within(&mut stream, Duration::from_secs(10));
    assert!(closed, "a huge request was not closed");
    assert!(
        got.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // The same on /metrics.
    let garbage = exchange(a.metrics.unwrap(), b"GARBAGE\r\n\r\n");
    assert!(
        garbage.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&garbage)
    );

    // Requests that never finish: they hold nothing the client port needs, the AdminServer
    // keeps answering others, and each is closed after admin.idleTimeout (1 s here).
    let mut idle: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(a.admin).unwrap();
            s.write_all(b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    for i in 0..10 {
        mk(&c, &format!("{root}/n{i}")).await;
    }
    assert_eq!(command(a.admin, "ruok")["error"], Value::Null);
    assert!(a.server.four_letter("ruok") == "imok");
    for s in &mut idle {
        let (closed, _) = closed_within(s, Duration::from_secs(10));
        assert!(
            closed,
            "an unfinished request was not closed after the idle timeout"
        );
    }
    t!(c.get_data(&format!("{root}/n9"))).unwrap();
    mk(&c, &format!("{root}/after")).await;
}

#[test]
fn disabled_admin_server_leaves_its_port_closed() {
    if std::env::var("ZKRS_TEST_TARGET").is_ok() {
        return;
    }
    let admin_port = free_port();
    let metrics_port = free_port();
    let server = TestServer::start_with(&[
        "admin.enableServer=false",
        &format!("admin.serverPort={admin_port}"),
        &format!("metricsProvider.httpPort={metrics_port}"),
    ]);
    assert_eq!(server.four_letter("ruok"), "imok");
    for port in [admin_port, metrics_port] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
            "port {port} is open"
        );
    }
}

#[test]
fn a_standalone_server_refuses_to_start_when_its_admin_port_is_taken() {
    if std::env::var("ZKRS_TEST_TARGET").is_ok() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={}\nadmin.serverAddress=127.0.0.1\n\
             admin.serverPort={port}\n",
            dir.path().join("data").display(),
            free_port()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zkrs"))
        .arg("start-foreground")
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("zkrs started although its AdminServer port was taken");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!status.success());
    assert!(
        text.contains("Problem starting AdminServer") && text.contains("admin.enableServer=false"),
        "{text}"
    );
    drop(taken);
}

/// The JSON's shape: objects by key (in order), arrays by their first element, scalars by
/// their JSON type.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Array(
            m.iter()
                .map(|(k, v)| Value::Array(vec![Value::from(k.as_str()), shape(v)]))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::Number(n) if n.is_f64() => Value::from("float"),
        Value::Number(_) => Value::from("integer"),
        Value::String(_) => Value::from("string"),
        Value::Bool(_) => Value::from("bool"),
        Value::Null => Value::from("null"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_fields_as_apache_zookeepers_admin_server() {
    if std::env::var("ZKRS_TEST_TARGET").is_ok() {
        return;
    }
    let java_admin = free_port();
    let java = match JavaZk::start_with_admin_server(&[], java_admin) {
        Ok(java) => java,
        Err(e) => {
            // Without Java and Jetty there is nothing to compare with; the field names are
            // still checked against ZooKeeper's (FIELDS) by the other tests.
            eprintln!("skipped: Apache ZooKeeper's AdminServer cannot start here: {e}");
            return;
        }
    };
    let java_admin = SocketAddr::from(([127, 0, 0, 1], java_admin));
    let Some(ours) = start_admin(false, &[]) else {
        return;
    };
    // The same state on both: nodes, an ephemeral and a data watch of one live session.
    let mut clients = Vec::new();
    for addr in [java.addr.clone(), ours.server.addr.clone()] {
        let c = t!(zookeeper_client::Client::connector().connect(&addr)).unwrap();
        let root = test_root(&c, "cmp").await;
        mk(&c, &format!("{root}/x")).await;
        t!(c.create(
            &format!("{root}/eph"),
            b"",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all())
        ))
        .unwrap();
        let (_, _, w) = t!(c.get_and_watch_data(&format!("{root}/x"))).unwrap();
        clients.push((c, w));
    }
    let listing = |addr| get(addr, "/commands").text();
    assert_eq!(listing(java_admin), listing(ours.admin));
    let names: Vec<&str> = FIELDS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !["connection_stat_reset", "stat_reset"].contains(n))
        .chain(["nosuch"])
        .collect();
    for name in names {
        let j = command(java_admin, name);
        let z = command(ours.admin, name);
        let (mut js, mut zs) = (shape(&j), shape(&z));
        // Map keys that are ids, times or paths differ by value: compare their values' shape.
        if ["dump", "watches", "watches_by_path"].contains(&name) {
            let flatten = |v: &Value| -> Value {
                let pairs = v.as_object().unwrap().iter().map(|(k, inner)| {
                    // A map's values' shape: the first non-empty one (Java may list an
                    // expiry bucket left empty).
                    let value = match inner.as_object() {
                        Some(m) => m
                            .values()
                            .map(shape)
                            .find(|s| s.as_array().is_none_or(|a| !a.is_empty()))
                            .unwrap_or(Value::Null),
                        None => shape(inner),
                    };
                    Value::Array(vec![Value::from(k.as_str()), value])
                });
                Value::Array(pairs.collect())
            };
            js = flatten(&j);
            zs = flatten(&z);
        }
        assert_eq!(js, zs, "{name}:\nJava {j}\nzkrs {z}");
    }
    // monitor: every gauge Java's has that zkrs computes, with the same JSON type.
    let j = command(java_admin, "monitor");
    let z = command(ours.admin, "monitor");
    for (key, value) in z.as_object().unwrap() {
        if let Some(java_value) = j.get(key) {
            assert_eq!(shape(java_value), shape(value), "monitor {key}");
        }
    }
    for key in [
        "znode_count",
        "watch_count",
        "ephemerals_count",
        "approximate_data_size",
        "num_alive_connections",
        "outstanding_requests",
        "packets_received",
        "global_sessions",
        "avg_latency",
        "cnt_fsynctime",
        "avg_fsynctime",
    ] {
        assert!(
            j.get(key).is_some() && z.get(key).is_some(),
            "monitor {key}"
        );
    }
    drop(clients);
}

#[test]
fn ensemble_members_name_their_leader_and_quorum() {
    if std::env::var("ZKRS_TEST_TARGET").is_ok() {
        return;
    }
    let mut e = ensemble::Ensemble::new(3, "");
    let mut admins = Vec::new();
    let mut metrics = Vec::new();
    for i in 0..3 {
        let (admin, prom) = (free_port(), free_port());
        let mut cfg = std::fs::read_to_string(e.members[i].cfg()).unwrap();
        cfg.push_str(&format!(
            "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={admin}\n\
             metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
             metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort={prom}\n"
        ));
        std::fs::write(e.members[i].cfg(), cfg).unwrap();
        admins.push(SocketAddr::from(([127, 0, 0, 1], admin)));
        metrics.push(SocketAddr::from(([127, 0, 0, 1], prom)));
        e.start_member(i);
    }
    let leader = e.wait_serving(3, Duration::from_secs(30));
    for (i, admin) in admins.iter().enumerate() {
        let id = i as i64 + 1;
        let is_leader = i == leader;
        let (quorum, election) = e.peer_ports(i);
        let lead = command_until(*admin, "lead", |v| v["leader_id"] == leader as i64 + 1);
        assert_eq!(
            keys(&lead),
            ["is_leader", "leader_id", "leader_ip", "command", "error"]
        );
        assert_eq!(lead["is_leader"], is_leader, "{lead}");
        assert_eq!(int(&lead, "leader_id"), leader as i64 + 1, "{lead}");
        assert_eq!(lead["leader_ip"], "127.0.0.1");
        let zab = command_until(*admin, "zabstate", |v| v["zabstate"] == "broadcast");
        assert_eq!(
            keys(&zab),
            [
                "myid",
                "is_leader",
                "quorum_address",
                "election_address",
                "client_address",
                "voting",
                "last_zxid",
                "zab_epoch",
                "zab_counter",
                "zabstate",
                "command",
                "error"
            ]
        );
        assert_eq!(int(&zab, "myid"), id);
        assert_eq!(zab["is_leader"], is_leader);
        assert_eq!(zab["voting"], true);
        assert_eq!(zab["zabstate"], "broadcast", "{zab}");
        assert_eq!(zab["quorum_address"], format!("127.0.0.1:{quorum}"));
        assert_eq!(zab["election_address"], format!("127.0.0.1:{election}"));
        assert_eq!(
            zab["client_address"],
            format!("127.0.0.1:{}", e.members[i].client_port)
        );
        assert!(int(&zab, "zab_epoch") >= 0 && int(&zab, "zab_counter") >= 0);
        assert!(zab["last_zxid"].as_str().unwrap().starts_with("0x"));
        let view = command(*admin, "voting_view");
        let config = view["current_config"].as_object().unwrap();
        assert_eq!(config.len(), 3, "{view}");
        let me = &config[&id.to_string()];
        assert_eq!(
            keys(me),
            [
                "server_addresses",
                "election_addresses",
                "client_address",
                "learner_type"
            ]
        );
        assert_eq!(
            me["server_addresses"],
            serde_json::json!([format!("127.0.0.1:{quorum}")])
        );
        assert_eq!(me["learner_type"], "participant");
        // Its own entry has its client address (from clientPort), the others none.
        assert_eq!(
            me["client_address"],
            format!("127.0.0.1:{}", e.members[i].client_port)
        );
        let other = &config[&(((i + 1) % 3) as i64 + 1).to_string()];
        assert_eq!(other["client_address"], "");
        let srvr = command(*admin, "srvr");
        let mode = if is_leader { "leader" } else { "follower" };
        assert_eq!(srvr["server_stats"]["server_state"], mode);
        assert_eq!(int(&command(*admin, "conf"), "server_id"), id);
        assert_eq!(
            command(*admin, "monitor")["peer_state"]
                .as_str()
                .map(|s| s.ends_with("broadcast")),
            Some(true)
        );
    }
    // The leader's quorum gauges on /metrics.
    let deadline = Instant::now() + Duration::from_secs(10);
    let exposition = loop {
        let x = scrape(metrics[leader]);
        if x.value("synced_followers", &[]) == Some(2.0) || Instant::now() > deadline {
            break x;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        exposition.types.get("learners").map(String::as_str),
        Some("gauge")
    );
    assert_eq!(exposition.must("learners"), 2.0);
    assert_eq!(exposition.must("synced_followers"), 2.0);
    assert_eq!(exposition.must("synced_observers"), 0.0);
    assert!(exposition.value("learners", &[]).is_some());
    let follower = (leader + 1) % 3;
    assert!(scrape(metrics[follower]).value("learners", &[]).is_none());

    // ServerMetrics' ensemble metrics: elections, the leader's proposals, commits and learner
    // syncs, the learners' received packets (a write through the leader makes some).
    let mut client = common::raw::Raw::connect(&e.members[leader].addr(), 10_000);
    for i in 0..5 {
        assert_eq!(
            client.create(&format!("/quorum-metrics-{i}"), b"x", 0).err,
            0
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let (lead_x, follow_x) = loop {
        let (l, f) = (scrape(metrics[leader]), scrape(metrics[follower]));
        let done = l.value("commit_count", &[]).unwrap_or(0.0) >= 5.0
            && f.value("learner_commit_received_count", &[]).unwrap_or(0.0) >= 5.0;
        if done || Instant::now() > deadline {
            break (l, f);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for x in [&lead_x, &follow_x] {
        assert_eq!(x.must("quorum_size"), 3.0);
        assert_eq!(
            x.types.get("looking_count").map(String::as_str),
            Some("counter")
        );
        assert!(x.must("looking_count") >= 1.0);
        assert_eq!(
            x.types.get("election_time").map(String::as_str),
            Some("summary")
        );
        assert!(x.must("election_time_count") >= 1.0);
    }
    assert!(lead_x.must("proposal_count") >= 5.0);
    assert!(lead_x.must("commit_count") >= 5.0);
    // One sync per learner (more if one reconnected on a slow machine).
    assert!(lead_x.must("diff_count") + lead_x.must("snap_count") >= 2.0);
    assert!(follow_x.must("learner_proposal_received_count") >= 5.0);
    assert!(follow_x.must("learner_commit_received_count") >= 5.0);
}

#[test]
fn a_member_without_a_quorum_is_not_serving() {
    if std::env::var("ZKRS_TEST_TARGET").is_ok() {
        return;
    }
    let mut e = ensemble::Ensemble::new(3, "");
    let admin_port = free_port();
    let mut cfg = std::fs::read_to_string(e.members[0].cfg()).unwrap();
    cfg.push_str(&format!(
        "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={admin_port}\n"
    ));
    std::fs::write(e.members[0].cfg(), cfg).unwrap();
    e.start_member(0);
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    // Alone, it elects forever: the commands that need a serving server say so, with the
    // name they were asked by; the others answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&admin, Duration::from_secs(1)).is_err() {
        assert!(Instant::now() < deadline, "the AdminServer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    for name in ["ruok", "srvr", "cons", "lead"] {
        let v = command(admin, name);
        assert_eq!(
            v,
            serde_json::json!({
                "command": name,
                "error": "This ZooKeeper instance is not currently serving requests"
            })
        );
    }
    let zab = command(admin, "zabstate");
    assert_eq!(zab["zabstate"], "election", "{zab}");
    assert_eq!(zab["is_leader"], false);
    assert_eq!(command(admin, "mntr")["server_state"], "looking");
    assert_eq!(command(admin, "gtmk")["error"], Value::Null);
}

#[test]
fn an_observer_does_not_vote_and_the_leader_counts_it() {
    if std::env::var("ZKRS_TEST_TARGET").is_ok() {
        return;
    }
    let mut e = ensemble::Ensemble::with_observers(3, 1, "");
    let mut admins = Vec::new();
    for i in 0..4 {
        let port = free_port();
        let mut cfg = std::fs::read_to_string(e.members[i].cfg()).unwrap();
        cfg.push_str(&format!(
            "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={port}\n"
        ));
        std::fs::write(e.members[i].cfg(), cfg).unwrap();
        admins.push(SocketAddr::from(([127, 0, 0, 1], port)));
        e.start_member(i);
    }
    let leader = e.wait_serving(4, Duration::from_secs(30));
    let observer = admins[3];
    let zab = command_until(observer, "zabstate", |v| v["zabstate"] == "broadcast");
    assert_eq!(zab["voting"], false, "{zab}");
    assert_eq!(int(&zab, "myid"), 4);
    assert_eq!(
        command(observer, "srvr")["server_stats"]["server_state"],
        "observer"
    );
    let view = command(observer, "voting_view");
    let members: Vec<&String> = view["current_config"].as_object().unwrap().keys().collect();
    assert_eq!(members, ["1", "2", "3"], "observers do not vote: {view}");
    let obsr = command_until(admins[leader], "obsr", |v| v["synced_observers"] == 1);
    assert_eq!(int(&obsr, "synced_observers"), 1, "{obsr}");
    assert_eq!(obsr["observers"], serde_json::json!([]));
}
