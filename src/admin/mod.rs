//! Four-letter words (`ruok`, `srvr`, `mntr`, ...) in Apache ZooKeeper 3.8's exact output
//! formats, so that existing tools (zkServer.sh status, monitoring agents, kazoo) parse them.
//!
//! The server's part: on the FIRST frame of a connection (before a ConnectRequest), look at
//! the 4 bytes where the big-endian length would be with [`parse_four_letter`]; on a match,
//! count the 4 bytes as received, perform the command's action when [`is_enabled`] says so
//! (`crst`: reset every connection's stats; `srst`: reset server stats; `stmk`: read the
//! next 8 bytes, a big-endian trace mask, and keep it), fill a [`ServerSnapshot`], write
//! [`render`]'s text and close the connection. An empty text (only `telnet close` when the
//! whitelist is `*`) means: close without writing, as ZooKeeper does.
//!
//! Architecture invariant: this module does no network IO and keeps no state; `render` is a
//! function of (command, snapshot, config) except for `envi`, which reads the host's facts.

pub mod commands;
mod host;
pub mod json;
pub mod prometheus;
mod snapshot;

pub use host::{dir_size_bytes, environment, file_descriptor_counts, java_date_utc, java_double};
pub use snapshot::{ConnectionInfo, ServerSnapshot, SessionInfo, WatchSummary, DEFAULT_TRACE_MASK};

use crate::config::Config;
use std::fmt::Write;

/// The Apache ZooKeeper release whose behaviour and version numbers zkrs presents.
pub const ZOOKEEPER_VERSION: &str = "3.8.4";

/// `Version.getVersionRevision()`: ZooKeeper's is `<version>-<git hash>`; ours puts zkrs
/// and its version where the hash goes, so `3.8.4-zkrs-0.1.0` still starts with the
/// ZooKeeper version that tools parse.
pub const VERSION_REVISION: &str = concat!("3.8.4-zkrs-", env!("CARGO_PKG_VERSION"));

/// The build date ZooKeeper prints after "built on"; set `ZKRS_BUILD_DATE` at compile time
/// (e.g. `2024-02-12 22:16 UTC`), "unknown" otherwise.
pub const BUILD_DATE: &str = match option_env!("ZKRS_BUILD_DATE") {
    Some(date) => date,
    None => "unknown",
};

/// `Version.getFullVersion()`: `3.8.4-zkrs-0.1.0, built on <date>` (`srvr`, `mntr`, `envi`).
pub fn full_version() -> String {
    format!("{VERSION_REVISION}, built on {BUILD_DATE}")
}

/// What `zkServer.sh version` prints (`VersionInfoMain`): `Apache ZooKeeper, version
/// <version> <build date>`.
pub fn version_line() -> String {
    format!("Apache ZooKeeper, version {VERSION_REVISION} {BUILD_DATE}")
}

/// `AbstractFourLetterCommand.ZK_NOT_SERVING`.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// ZooKeeper 3.8's four-letter words, by their 4-byte code (`FourLetterCommands`), plus the
/// telnet close sequence it also recognises.
const COMMANDS: &[(&[u8; 4], &str)] = &[
    (b"conf", "conf"),
    (b"cons", "cons"),
    (b"crst", "crst"),
    (b"dirs", "dirs"),
    (b"dump", "dump"),
    (b"envi", "envi"),
    (b"gtmk", "gtmk"),
    (b"ruok", "ruok"),
    (b"stmk", "stmk"),
    (b"srst", "srst"),
    (b"srvr", "srvr"),
    (b"stat", "stat"),
    (b"wchc", "wchc"),
    (b"wchp", "wchp"),
    (b"wchs", "wchs"),
    (b"mntr", "mntr"),
    (b"isro", "isro"),
    (b"hash", "hash"),
    (&[0xff, 0xf4, 0xff, 0xfd], TELNET_CLOSE),
];

/// The name ZooKeeper gives the telnet close sequence `ff f4 ff fd`.
pub const TELNET_CLOSE: &str = "telnet close";

/// Is this frame start a four-letter word? `first4` is the first 4 bytes of a connection's
/// first frame, where a real frame has its big-endian length; ZooKeeper compares those
/// bytes, read as an int, with the command codes (so case and every byte must match).
/// Returns the command's name, or None (fewer than 4 bytes, or not a command).
pub fn parse_four_letter(first4: &[u8]) -> Option<&'static str> {
    let code = first4.get(..4)?;
    COMMANDS
        .iter()
        .find(|(bytes, _)| bytes.as_slice() == code)
        .map(|(_, name)| *name)
}

/// Whether `config.four_letter_whitelist` lets `cmd` run (`srvr` always may).
pub fn is_enabled(cmd: &str, config: &Config) -> bool {
    config.four_letter_whitelist.allows(cmd)
}

/// The text ZooKeeper 3.8 writes back for `cmd` (a name from [`parse_four_letter`]).
/// Commands outside the whitelist get "`<cmd>` is not executed because it is not in the
/// whitelist.\n"; commands that need a serving server get [`NOT_SERVING`] when
/// `snap.serving` is false. `crst`, `srst` and `stmk` only report: the server does the
/// action (see the module docs). An unknown name gives "".
pub fn render(cmd: &str, snap: &ServerSnapshot, config: &Config) -> String {
    if !COMMANDS.iter().any(|(_, name)| *name == cmd) {
        return String::new();
    }
    if !is_enabled(cmd, config) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    let mut out = String::new();
    // Commands that print without asking whether the server runs.
    match cmd {
        "ruok" => return "imok".to_string(),
        "envi" => {
            out.push_str("Environment:\n");
            for (key, value) in environment(&snap.version) {
                let _ = writeln!(out, "{key}={value}");
            }
            return out;
        }
        "gtmk" | "stmk" => return snap.trace_mask.to_string(),
        _ => {}
    }
    if !snap.serving {
        return match cmd {
            "isro" => "null".to_string(),
            "hash" => NOT_SERVING.to_string(),
            TELNET_CLOSE => String::new(),
            _ => format!("{NOT_SERVING}\n"),
        };
    }
    match cmd {
        "srvr" | "stat" => render_stat(&mut out, cmd == "stat", snap),
        "cons" => {
            for connection in &snap.connections {
                write_connection(&mut out, connection, false);
                out.push('\n');
            }
            out.push('\n');
        }
        "crst" => out.push_str("Connection stats reset.\n"),
        "srst" => out.push_str("Server stats reset.\n"),
        "conf" => render_conf(&mut out, snap, config),
        "mntr" => render_mntr(&mut out, snap),
        "dump" => render_dump(&mut out, snap),
        "wchs" => {
            let w = &snap.watch_summary;
            let _ = writeln!(
                out,
                "{} connections watching {} paths\nTotal watches:{}",
                w.connections, w.paths, w.total
            );
        }
        "wchp" => {
            for (path, sessions) in &snap.watches_by_path {
                let _ = writeln!(out, "{path}");
                for session in sessions {
                    let _ = writeln!(out, "\t0x{session:x}");
                }
            }
            out.push('\n');
        }
        "wchc" => {
            for (session, paths) in &snap.watches_by_session {
                let _ = writeln!(out, "0x{session:x}");
                for path in paths {
                    let _ = writeln!(out, "\t{path}");
                }
            }
            out.push('\n');
        }
        "isro" => out.push_str(if snap.read_only { "ro" } else { "rw" }),
        "dirs" => {
            let _ = writeln!(out, "datadir_size: {}", snap.data_dir_size_bytes);
            let _ = writeln!(out, "logdir_size: {}", snap.log_dir_size_bytes);
        }
        "hash" => {
            for (zxid, digest) in &snap.digest_log {
                let _ = writeln!(out, "{zxid:x}: {digest}");
            }
        }
        // "telnet close" when whitelisted: ZooKeeper runs nothing and drops the connection.
        _ => {}
    }
    out
}

/// `StatCommand`: `srvr`, and `stat` with the client list.
fn render_stat(out: &mut String, with_clients: bool, snap: &ServerSnapshot) {
    let _ = writeln!(out, "Zookeeper version: {}", snap.version);
    if snap.read_only {
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if with_clients {
        out.push_str("Clients:\n");
        for connection in &snap.connections {
            write_connection(out, connection, true);
            out.push('\n');
        }
        out.push('\n');
    }
    // ServerStats.toString.
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        snap.latency_min_printed_ms(),
        java_double(snap.latency_avg_ms()),
        snap.latency_max_ms
    );
    let _ = writeln!(out, "Received: {}", snap.packets_received);
    let _ = writeln!(out, "Sent: {}", snap.packets_sent);
    let _ = writeln!(out, "Connections: {}", snap.connection_count);
    let _ = writeln!(out, "Outstanding: {}", snap.outstanding_requests);
    let _ = writeln!(out, "Zxid: 0x{:x}", snap.last_processed_zxid);
    let _ = writeln!(out, "Mode: {}", snap.server_state);
    let _ = writeln!(out, "Node count: {}", snap.node_count);
}

/// `ServerCnxn.dumpConnectionInfo`.
fn write_connection(out: &mut String, c: &ConnectionInfo, brief: bool) {
    out.push(' ');
    match c.remote_address {
        Some(address) => {
            let _ = write!(out, "/{address}");
        }
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        "[{:x}](queued={},recved={},sent={}",
        c.interest_ops, c.outstanding_requests, c.packets_received, c.packets_sent
    );
    if !brief && c.session_id != 0 {
        let _ = write!(
            out,
            ",sid=0x{:x},lop={},est={},to={}",
            c.session_id, c.last_operation, c.established_ms, c.session_timeout_ms
        );
        if c.last_cxid >= 0 {
            let _ = write!(out, ",lcxid=0x{:x}", c.last_cxid);
        }
        let _ = write!(
            out,
            ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            c.last_zxid,
            c.last_response_time_ms,
            c.last_latency_ms,
            c.min_latency_ms,
            c.avg_latency_ms,
            c.max_latency_ms
        );
    }
    out.push(')');
}

/// `ZooKeeperServer.dumpConf` (standalone).
fn render_conf(out: &mut String, snap: &ServerSnapshot, config: &Config) {
    let absolute = |path: &std::path::Path| {
        std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    };
    let server_id = if config.is_distributed() {
        config.my_id.unwrap_or(0)
    } else {
        0
    };
    let _ = writeln!(
        out,
        "clientPort={}",
        snap.client_port.unwrap_or(config.client_port)
    );
    out.push_str("secureClientPort=-1\n");
    let _ = writeln!(out, "dataDir={}", absolute(&config.data_dir));
    let _ = writeln!(out, "dataDirSize={}", snap.data_dir_size_bytes);
    let _ = writeln!(out, "dataLogDir={}", absolute(&config.data_log_dir));
    let _ = writeln!(out, "dataLogSize={}", snap.log_dir_size_bytes);
    let _ = writeln!(out, "tickTime={}", config.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", config.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", config.min_session_timeout_ms);
    let _ = writeln!(out, "maxSessionTimeout={}", config.max_session_timeout_ms);
    out.push_str("clientPortListenBacklog=-1\n");
    let _ = writeln!(out, "serverId={server_id}");
}

/// `MonitorCommand`: `zk_<key>\t<value>` lines; version and state first
/// (`dumpMonitorValues`), then the gauges `ZooKeeperServer.registerMetrics` registers (in
/// registration order; ZooKeeper's own order is its hash map's), then `extra_metrics`.
fn render_mntr(out: &mut String, snap: &ServerSnapshot) {
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "zk_{key}\t{value}");
    };
    line("version", &snap.version);
    line("server_state", &snap.server_state);
    line("avg_latency", &java_double(snap.latency_avg_ms()));
    line("max_latency", &snap.latency_max_ms);
    line("min_latency", &snap.latency_min_printed_ms());
    line("packets_received", &snap.packets_received);
    line("packets_sent", &snap.packets_sent);
    line("num_alive_connections", &snap.connection_count);
    line("outstanding_requests", &snap.outstanding_requests);
    line("uptime", &snap.uptime_ms);
    line("znode_count", &snap.node_count);
    line("watch_count", &snap.watch_count);
    line("ephemerals_count", &snap.ephemerals_count);
    line("approximate_data_size", &snap.approximate_data_size);
    line("global_sessions", &snap.session_count);
    line("local_sessions", &0);
    line(
        "open_file_descriptor_count",
        &snap.open_file_descriptor_count,
    );
    line("max_file_descriptor_count", &snap.max_file_descriptor_count);
    line("connection_drop_probability", &java_double(0.0));
    line("last_client_response_size", &snap.last_client_response_size);
    line("max_client_response_size", &snap.max_client_response_size);
    line("min_client_response_size", &snap.min_client_response_size);
    line(
        "outstanding_tls_handshake",
        &crate::tls::outstanding_handshakes(),
    );
    line("auth_failed_count", &snap.auth_failed_count);
    line("non_mtls_remote_conn_count", &0);
    line("non_mtls_local_conn_count", &0);
    for (key, value) in &snap.extra_metrics {
        line(key, value);
    }
}

/// `DumpCommand`: sessions by expiry bucket, ephemerals by session, connections by expiry.
fn render_dump(out: &mut String, snap: &ServerSnapshot) {
    out.push_str("SessionTracker dump:\n");
    let sessions: Vec<(u64, String)> = snap
        .sessions
        .iter()
        .map(|s| (s.expire_at_ms, format!("0x{:x}", s.session_id)))
        .collect();
    write_expiry_queue(out, "Session ", &sessions);
    out.push_str("ephemeral nodes dump:\n");
    let _ = writeln!(
        out,
        "Sessions with Ephemerals ({}):",
        snap.ephemerals_by_session.len()
    );
    for (session, paths) in &snap.ephemerals_by_session {
        let _ = writeln!(out, "0x{session:x}:");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push_str("Connections dump:\n");
    let connections: Vec<(u64, String)> = snap
        .connections
        .iter()
        .map(|c| {
            let mut text = String::new();
            write_connection(&mut text, c, false);
            (c.expire_at_ms, text)
        })
        .collect();
    write_expiry_queue(out, "Connections ", &connections);
}

/// `ExpiryQueue.dump` after `prefix`: "Sets (buckets)/(elements):", then per bucket in time
/// order "<n> expire at <date>:" and a tab-indented line per element.
fn write_expiry_queue(out: &mut String, prefix: &str, elements: &[(u64, String)]) {
    let mut buckets: Vec<u64> = elements.iter().map(|(at, _)| *at).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let _ = writeln!(
        out,
        "{prefix}Sets ({})/({}):",
        buckets.len(),
        elements.len()
    );
    for bucket in buckets {
        let members: Vec<&String> = elements
            .iter()
            .filter(|(at, _)| *at == bucket)
            .map(|(_, text)| text)
            .collect();
        let _ = writeln!(
            out,
            "{} expire at {}:",
            members.len(),
            java_date_utc(bucket)
        );
        for member in members {
            let _ = writeln!(out, "\t{member}");
        }
    }
}

/// The `lop=` abbreviation ZooKeeper's `FinalRequestProcessor` records for a request opcode
/// ("NA" for opcodes it records nothing for).
pub fn last_operation_name(op_code: i32) -> &'static str {
    match op_code {
        11 => "PING",
        -10 => "SESS",
        14 => "MULT",
        22 => "MLTR",
        1 | 15 | 19 | 21 => "CREA",
        2 | 20 => "DELE",
        5 => "SETD",
        16 => "RECO",
        7 => "SETA",
        -11 => "CLOS",
        9 => "SYNC",
        13 => "CHEC",
        3 => "EXIS",
        4 => "GETD",
        101 => "SETW",
        105 => "STW2",
        106 => "ADDW",
        6 => "GETA",
        8 | 12 => "GETC",
        104 => "GETACN",
        17 => "CHKW",
        18 => "REMW",
        107 => "HOMI",
        103 => "GETE",
        _ => "NA",
    }
}

#[cfg(test)]
mod tests;
