//! The AdminServer's commands (ZooKeeper 3.8's `org.apache.zookeeper.server.admin.Commands`):
//! names and aliases, which need a serving server, and each one's JSON in ZooKeeper's
//! field names and order. Pure: the server gathers an [`AdminFacts`] (and performs the
//! resets and the trace-mask change), this module turns it into the response.
//!
//! ZooKeeper 3.8 requires no authentication for any command (3.9 added it, with
//! `snapshot` and `restore`, which 3.8 does not have: they are unknown commands here too).

use super::json::{Json, JsonMap};
use super::snapshot::{ConnectionInfo, ServerSnapshot};
use crate::config::Config;
use crate::metrics::HistogramSnapshot;

/// One command: its names (the primary one first) and whether it answers only while the
/// server serves (ZooKeeper's `CommandBase.serverRequired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    pub names: &'static [&'static str],
    pub server_required: bool,
}

impl CommandSpec {
    pub fn primary(&self) -> &'static str {
        self.names[0]
    }
}

const fn cmd(names: &'static [&'static str], server_required: bool) -> CommandSpec {
    CommandSpec {
        names,
        server_required,
    }
}

/// Every command ZooKeeper 3.8.4 registers.
pub const COMMANDS: &[CommandSpec] = &[
    cmd(&["connection_stat_reset", "crst"], true),
    cmd(&["configuration", "conf", "config"], true),
    cmd(&["connections", "cons"], true),
    cmd(&["hash"], true),
    cmd(&["dirs"], true),
    cmd(&["dump"], true),
    cmd(&["environment", "env", "envi"], false),
    cmd(&["get_trace_mask", "gtmk"], false),
    cmd(&["initial_configuration", "icfg"], true),
    cmd(&["is_read_only", "isro"], true),
    cmd(&["last_snapshot", "lsnp"], true),
    cmd(&["leader", "lead"], true),
    cmd(&["monitor", "mntr"], false),
    cmd(&["observer_connection_stat_reset", "orst"], true),
    cmd(&["ruok"], true),
    cmd(&["set_trace_mask", "stmk"], false),
    cmd(&["server_stats", "srvr"], true),
    cmd(&["stats", "stat"], true),
    cmd(&["stat_reset", "srst"], true),
    cmd(&["observers", "obsr"], true),
    cmd(&["system_properties", "sysp"], false),
    cmd(&["voting_view"], true),
    cmd(&["watches", "wchc"], true),
    cmd(&["watches_by_path", "wchp"], true),
    cmd(&["watch_summary", "wchs"], true),
    cmd(&["zabstate"], false),
];

/// The command registered under `name` (any of its names; exact, as ZooKeeper's map).
pub fn lookup(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.names.contains(&name))
}

/// What `GET <commandURL>` shows: a link per primary name, sorted, each followed by
/// `<br/>`, one per line (JettyAdminServer's `commandLinks`).
pub fn listing(command_url: &str) -> String {
    let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.primary()).collect();
    names.sort_unstable();
    let mut out = String::new();
    for name in names {
        out.push_str(&format!(
            "<a href=\"{command_url}/{name}\">{name}</a>\n<br/>\n"
        ));
    }
    out
}

/// A response: ZooKeeper's `CommandResponse.toMap` (the command's own fields, then
/// `command` and `error`, unless a field of that name came first).
pub fn response(command: &str, error: Option<&str>, data: JsonMap) -> Json {
    let mut map = data.clone();
    map.put("command", command);
    map.put("error", error.map_or(Json::Null, Json::from));
    for (key, value) in data.0 {
        map.put(&key, value);
    }
    map.into_json()
}

/// The answer to an unknown command name.
pub fn unknown(name: &str) -> Json {
    response(
        name,
        Some(&format!("Unknown command: {name}")),
        JsonMap::new(),
    )
}

/// The answer of a command that needs a serving server when the server does not serve.
pub fn not_serving(name: &str) -> Json {
    response(name, Some(super::NOT_SERVING), JsonMap::new())
}

/// One summary for `monitor` (ZooKeeper's default metrics provider's avg/min/max/cnt/sum,
/// and p50..p999 for the "advanced" ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryFacts {
    pub name: &'static str,
    pub advanced: bool,
    pub histogram: HistogramSnapshot,
}

/// What the commands print beyond the four-letter words' [`ServerSnapshot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdminFacts {
    pub snap: ServerSnapshot,
    /// The leader's server id in an ensemble (None while electing, or standalone).
    pub leader_id: Option<u64>,
    /// The newest snapshot on disk: (zxid, modification time in seconds).
    pub last_snapshot: Option<(i64, i64)>,
    /// The configuration file's text as the server read it at start-up.
    pub initial_configuration: String,
    pub fsync_threshold_exceeded: u64,
    /// The leader's synced observers.
    pub synced_observers: u64,
    pub summaries: Vec<SummaryFacts>,
}

/// The fields of command `primary` (a primary name from [`COMMANDS`]); `kwargs` are the
/// request's parameters. A command that fails puts its `error` among its fields, as
/// ZooKeeper's do (so it comes first in the response). `set_trace_mask` only reports the
/// mask it was given: the server sets it.
pub fn render(
    primary: &str,
    facts: &AdminFacts,
    config: &Config,
    kwargs: &dyn Fn(&str) -> Option<String>,
) -> JsonMap {
    let snap = &facts.snap;
    let mut m = JsonMap::new();
    let mut error: Option<String> = None;
    match primary {
        "connection_stat_reset" | "observer_connection_stat_reset" | "ruok" | "stat_reset" => {}
        "configuration" => configuration(&mut m, snap, config),
        "connections" => {
            m.put("connections", connections(&snap.connections, false));
            m.put("secure_connections", Json::Arr(Vec::new()));
        }
        "hash" => {
            let digests = snap
                .digest_log
                .iter()
                .map(|(zxid, digest)| {
                    let mut d = JsonMap::new();
                    d.put("zxid", *zxid);
                    d.put("digest", *digest);
                    d.into_json()
                })
                .collect();
            m.put("digests", Json::Arr(digests));
        }
        "dirs" => {
            m.put("datadir_size", snap.data_dir_size_bytes);
            m.put("logdir_size", snap.log_dir_size_bytes);
        }
        "dump" => {
            let mut by_expiry: Vec<(u64, Vec<i64>)> = Vec::new();
            for s in &snap.sessions {
                match by_expiry.iter_mut().find(|(at, _)| *at == s.expire_at_ms) {
                    Some((_, ids)) => ids.push(s.session_id),
                    None => by_expiry.push((s.expire_at_ms, vec![s.session_id])),
                }
            }
            by_expiry.sort_by_key(|(at, _)| *at);
            let expiry = by_expiry
                .into_iter()
                .map(|(at, ids)| {
                    (
                        at.to_string(),
                        Json::Arr(ids.into_iter().map(Json::from).collect()),
                    )
                })
                .collect();
            m.put("expiry_time_to_session_ids", Json::Obj(expiry));
            let ephemerals = snap
                .ephemerals_by_session
                .iter()
                .map(|(id, paths)| (id.to_string(), strings(paths)))
                .collect();
            m.put("session_id_to_ephemeral_paths", Json::Obj(ephemerals));
        }
        "environment" => {
            for (key, value) in super::environment(&snap.version) {
                m.put(key, value);
            }
        }
        "get_trace_mask" => m.put("tracemask", snap.trace_mask),
        "initial_configuration" => m.put(
            "initial_configuration",
            facts.initial_configuration.as_str(),
        ),
        "is_read_only" => m.put("read_only", snap.read_only),
        "last_snapshot" => {
            let (zxid, timestamp) = facts.last_snapshot.unwrap_or((-1, -1));
            m.put("zxid", format!("{zxid:x}"));
            m.put("timestamp", timestamp);
        }
        "leader" => {
            if config.is_distributed() {
                let leader = facts.leader_id;
                m.put("is_leader", snap.server_state == "leader");
                m.put("leader_id", leader.map_or(-1, |id| id as i64));
                let host = leader
                    .and_then(|id| config.servers.iter().find(|s| s.id == id))
                    .map_or_else(String::new, |s| s.host.clone());
                m.put("leader_ip", host);
            } else {
                error = Some("server is not initialized".to_string());
            }
        }
        "monitor" => monitor(&mut m, facts),
        "observers" => {
            m.put("synced_observers", facts.synced_observers);
            m.put("observers", Json::Arr(Vec::new()));
        }
        "set_trace_mask" => match kwargs("traceMask") {
            None => error = Some("setTraceMask requires long traceMask argument".to_string()),
            Some(text) => match text.parse::<i64>() {
                Ok(mask) => m.put("tracemask", mask),
                Err(_) => {
                    error = Some(format!(
                        "setTraceMask requires long traceMask argument, got {text}"
                    ))
                }
            },
        },
        "server_stats" => server_stats(&mut m, facts),
        "stats" => {
            server_stats(&mut m, facts);
            m.put("connections", connections(&snap.connections, true));
            m.put("secure_connections", Json::Arr(Vec::new()));
        }
        "system_properties" => {
            let mut props: Vec<(String, String)> =
                system_properties(&snap.version, &facts.initial_configuration);
            props.sort();
            for (key, value) in props {
                m.put(&key, value);
            }
        }
        "voting_view" => {
            // The voting members only (`QuorumPeer.getVotingView`): observers are left out.
            let mut view = JsonMap::new();
            if config.is_distributed() {
                for s in config.servers.iter().filter(|s| !s.observer) {
                    let mut v = JsonMap::new();
                    v.put(
                        "server_addresses",
                        strings(&[address(&s.host, s.quorum_port)]),
                    );
                    v.put(
                        "election_addresses",
                        strings(&[address(&s.host, s.election_port)]),
                    );
                    // From the server line's `;port`; this server's own entry takes the
                    // client port when the line has none (QuorumPeerConfig.setupClientPort).
                    let client = match s.client_port {
                        Some(p) => address("0.0.0.0", p),
                        None if Some(s.id) == config.my_id => address(
                            &config
                                .client_port_address
                                .map_or_else(|| "0.0.0.0".to_string(), |a| a.to_string()),
                            snap.client_port.unwrap_or(config.client_port),
                        ),
                        None => String::new(),
                    };
                    v.put("client_address", client);
                    v.put(
                        "learner_type",
                        if s.observer {
                            "observer"
                        } else {
                            "participant"
                        },
                    );
                    view.put(&s.id.to_string(), v);
                }
            }
            m.put("current_config", view);
        }
        "watches" => {
            let map = snap
                .watches_by_session
                .iter()
                .map(|(id, paths)| (id.to_string(), strings(paths)))
                .collect();
            m.put("session_id_to_watched_paths", Json::Obj(map));
        }
        "watches_by_path" => {
            let map = snap
                .watches_by_path
                .iter()
                .map(|(path, ids)| {
                    (
                        path.clone(),
                        Json::Arr(ids.iter().map(|id| Json::from(*id)).collect()),
                    )
                })
                .collect();
            m.put("path_to_session_ids", Json::Obj(map));
        }
        "watch_summary" => {
            let w = &snap.watch_summary;
            m.put("num_connections", w.connections);
            m.put("num_paths", w.paths);
            m.put("num_total_watches", w.total);
        }
        "zabstate" => zabstate(&mut m, facts, config),
        _ => error = Some(format!("Unknown command: {primary}")),
    }
    if let Some(text) = error {
        m.put("error", text);
    }
    m
}

fn strings(items: &[String]) -> Json {
    Json::Arr(items.iter().map(|s| Json::from(s.as_str())).collect())
}

/// `host:port` as Jackson writes an `InetSocketAddress` (IPv6 literals in brackets).
fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn configuration(m: &mut JsonMap, snap: &ServerSnapshot, config: &Config) {
    let absolute = |path: &std::path::Path| {
        std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    };
    m.put(
        "client_port",
        snap.client_port.unwrap_or(config.client_port),
    );
    m.put("data_dir", absolute(&config.data_dir));
    m.put("data_log_dir", absolute(&config.data_log_dir));
    m.put("tick_time", config.tick_time_ms);
    m.put("max_client_cnxns", config.max_client_cnxns);
    m.put("min_session_timeout", config.min_session_timeout_ms);
    m.put("max_session_timeout", config.max_session_timeout_ms);
    let server_id = if config.is_distributed() {
        config.my_id.unwrap_or(0)
    } else {
        0
    };
    m.put("server_id", server_id);
    m.put("client_port_listen_backlog", -1i64);
}

/// `ServerCnxn.getConnectionInfo(brief)`.
fn connections(list: &[ConnectionInfo], brief: bool) -> Json {
    Json::Arr(
        list.iter()
            .map(|c| {
                let mut m = JsonMap::new();
                m.put(
                    "remote_socket_address",
                    c.remote_address
                        .map_or(Json::Null, |a| Json::from(a.to_string())),
                );
                m.put("interest_ops", c.interest_ops);
                m.put("outstanding_requests", c.outstanding_requests);
                m.put("packets_received", c.packets_received);
                m.put("packets_sent", c.packets_sent);
                if !brief {
                    m.put("session_id", c.session_id);
                    m.put("last_operation", c.last_operation.as_str());
                    m.put("established", c.established_ms);
                    m.put("session_timeout", c.session_timeout_ms);
                    m.put("last_cxid", c.last_cxid);
                    m.put("last_zxid", c.last_zxid);
                    m.put("last_response_time", c.last_response_time_ms);
                    m.put("last_latency", c.last_latency_ms);
                    m.put("min_latency", c.min_latency_ms);
                    m.put("avg_latency", c.avg_latency_ms);
                    m.put("max_latency", c.max_latency_ms);
                }
                m.into_json()
            })
            .collect(),
    )
}

/// `BufferStats` as Jackson writes it.
fn buffer_stats(snap: &ServerSnapshot) -> JsonMap {
    let mut b = JsonMap::new();
    b.put("last_buffer_size", snap.last_client_response_size);
    b.put("min_buffer_size", snap.min_client_response_size);
    b.put("max_buffer_size", snap.max_client_response_size);
    b
}

/// `SrvrCommand`: the `ServerStats` bean in Jackson's property order.
fn server_stats(m: &mut JsonMap, facts: &AdminFacts) {
    let snap = &facts.snap;
    m.put("version", snap.version.as_str());
    m.put("read_only", snap.read_only);
    let mut s = JsonMap::new();
    s.put("packets_sent", snap.packets_sent);
    s.put("packets_received", snap.packets_received);
    s.put(
        "fsync_threshold_exceed_count",
        facts.fsync_threshold_exceeded,
    );
    s.put("client_response_stats", buffer_stats(snap));
    s.put("data_dir_size", snap.data_dir_size_bytes);
    s.put("log_dir_size", snap.log_dir_size_bytes);
    s.put("provider_null", false);
    s.put("server_state", snap.server_state.as_str());
    s.put("last_processed_zxid", snap.last_processed_zxid);
    s.put("outstanding_requests", snap.outstanding_requests);
    s.put("avg_latency", snap.latency_avg_ms());
    s.put("max_latency", snap.latency_max_ms);
    s.put("min_latency", snap.latency_min_printed_ms());
    s.put("num_alive_client_connections", snap.connection_count);
    s.put("uptime", snap.uptime_ms);
    s.put("auth_failed_count", snap.auth_failed_count);
    s.put("non_mtlsremote_conn_count", 0i64);
    s.put("non_mtlslocal_conn_count", 0i64);
    m.put("server_stats", s);
    m.put("client_response", buffer_stats(snap));
    m.put("node_count", snap.node_count);
}

/// `MonitorCommand`: version and state, the gauges mntr prints, the ensemble lines, then
/// the summaries the way ZooKeeper's default metrics provider dumps them.
fn monitor(m: &mut JsonMap, facts: &AdminFacts) {
    let snap = &facts.snap;
    m.put("version", snap.version.as_str());
    m.put("server_state", snap.server_state.as_str());
    m.put("avg_latency", snap.latency_avg_ms());
    m.put("max_latency", snap.latency_max_ms);
    m.put("min_latency", snap.latency_min_printed_ms());
    m.put("packets_received", snap.packets_received);
    m.put("packets_sent", snap.packets_sent);
    m.put("num_alive_connections", snap.connection_count);
    m.put("outstanding_requests", snap.outstanding_requests);
    m.put("uptime", snap.uptime_ms);
    m.put("znode_count", snap.node_count);
    m.put("watch_count", snap.watch_count);
    m.put("ephemerals_count", snap.ephemerals_count);
    m.put("approximate_data_size", snap.approximate_data_size);
    m.put("global_sessions", snap.session_count);
    m.put("local_sessions", 0i64);
    m.put(
        "open_file_descriptor_count",
        snap.open_file_descriptor_count,
    );
    m.put("max_file_descriptor_count", snap.max_file_descriptor_count);
    m.put("connection_drop_probability", 0.0f64);
    m.put("last_client_response_size", snap.last_client_response_size);
    m.put("max_client_response_size", snap.max_client_response_size);
    m.put("min_client_response_size", snap.min_client_response_size);
    m.put(
        "outstanding_tls_handshake",
        crate::tls::outstanding_handshakes(),
    );
    m.put("auth_failed_count", snap.auth_failed_count);
    m.put("non_mtls_remote_conn_count", 0i64);
    m.put("non_mtls_local_conn_count", 0i64);
    for (key, value) in &snap.extra_metrics {
        // Values come formatted for mntr's text: numbers stay numbers.
        let json = match value.parse::<i64>() {
            Ok(n) => Json::Int(n),
            Err(_) => Json::from(value.as_str()),
        };
        m.put(key, json);
    }
    for summary in &facts.summaries {
        let h = &summary.histogram;
        let name = summary.name;
        let avg = if h.count == 0 {
            0.0
        } else {
            (h.sum as f64 / h.count as f64 * 10_000.0).round() / 10_000.0
        };
        let (min, max) = histogram_min_max(h);
        m.put(&format!("avg_{name}"), avg);
        m.put(&format!("min_{name}"), min);
        m.put(&format!("max_{name}"), max);
        m.put(&format!("cnt_{name}"), h.count);
        m.put(&format!("sum_{name}"), h.sum);
        if summary.advanced {
            for (label, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)] {
                let value = h.quantile(q);
                m.put(
                    &format!("{label}_{name}"),
                    if value.is_nan() { 0 } else { value as i64 },
                );
            }
        }
    }
}

/// The smallest and the largest recorded value, to the precision of their buckets.
fn histogram_min_max(h: &HistogramSnapshot) -> (u64, u64) {
    let first = h.counts.iter().position(|&n| n > 0);
    let last = h.counts.iter().rposition(|&n| n > 0);
    match (first, last) {
        (Some(f), Some(l)) => (
            crate::metrics::bucket_range(f).0,
            crate::metrics::bucket_range(l).1,
        ),
        _ => (0, 0),
    }
}

/// `ZabStateCommand`.
fn zabstate(m: &mut JsonMap, facts: &AdminFacts, config: &Config) {
    let snap = &facts.snap;
    if !config.is_distributed() {
        m.put("voting", false);
        m.put("zabstate", "");
        return;
    }
    let me = config.my_id.unwrap_or(0);
    let member = config.servers.iter().find(|s| s.id == me);
    m.put("myid", me);
    m.put("is_leader", snap.server_state == "leader");
    m.put(
        "quorum_address",
        member.map_or(Json::Null, |s| Json::from(address(&s.host, s.quorum_port))),
    );
    m.put(
        "election_address",
        member.map_or(Json::Null, |s| {
            Json::from(address(&s.host, s.election_port))
        }),
    );
    let client_host = config
        .client_port_address
        .map_or_else(|| "0.0.0.0".to_string(), |a| a.to_string());
    m.put(
        "client_address",
        address(&client_host, snap.client_port.unwrap_or(config.client_port)),
    );
    m.put("voting", member.is_some_and(|s| !s.observer));
    let zxid = snap.last_processed_zxid;
    m.put("last_zxid", format!("0x{zxid:x}"));
    m.put("zab_epoch", zxid >> 32);
    m.put("zab_counter", zxid & 0xffff_ffff);
    let state = match snap.server_state.as_str() {
        "looking" => "election",
        _ if !snap.serving => "synchronization",
        _ => "broadcast",
    };
    m.put("zabstate", state);
}

/// The Java system properties that have a meaning for this process (there is no JVM: the
/// `java.*` runtime properties are left out), and the ones ZooKeeper sets from zoo.cfg
/// (`zookeeper.<key>` for the `admin.*` keys and `4lw.commands.whitelist`, which it
/// passes on that way; the last of a repeated key wins).
fn system_properties(version: &str, config_text: &str) -> Vec<(String, String)> {
    let mut props: Vec<(String, String)> = super::environment(version)
        .into_iter()
        .filter(|(key, value)| {
            value != "<NA>"
                && (key.starts_with("os.") && !key.starts_with("os.memory.")
                    || key.starts_with("user.")
                    || *key == "java.io.tmpdir"
                    || *key == "java.library.path")
        })
        .map(|(key, value)| (key.to_string(), value))
        .collect();
    for line in config_text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.starts_with("admin.") || key == "4lw.commands.whitelist" {
            let name = format!("zookeeper.{key}");
            props.retain(|(k, _)| *k != name);
            props.push((name, value.trim().to_string()));
        }
    }
    props.push(("file.separator".into(), "/".into()));
    props.push(("line.separator".into(), "\n".into()));
    props.push(("path.separator".into(), ":".into()));
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_found_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            for name in c.names {
                assert!(seen.insert(*name), "{name} twice");
                assert_eq!(lookup(name), Some(c));
            }
        }
        assert_eq!(COMMANDS.len(), 26);
        assert_eq!(lookup("snapshot"), None);
        assert_eq!(lookup("RUOK"), None);
    }

    #[test]
    fn listing_is_sorted_links() {
        let text = listing("/commands");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("<a href=\"/commands/configuration\">configuration</a>")
        );
        assert_eq!(lines.next(), Some("<br/>"));
        assert_eq!(text.lines().count(), 2 * COMMANDS.len());
    }

    #[test]
    fn response_layouts_match_zookeeper() {
        // As Java's AdminServer prints them (captured from Apache ZooKeeper 3.8).
        assert_eq!(
            response("ruok", None, JsonMap::new()).to_pretty(),
            "{\n  \"command\" : \"ruok\",\n  \"error\" : null\n}"
        );
        assert_eq!(
            unknown("nosuch").to_pretty(),
            "{\n  \"command\" : \"nosuch\",\n  \"error\" : \"Unknown command: nosuch\"\n}"
        );
        let config = Config::default();
        let facts = AdminFacts::default();
        let data = render("leader", &facts, &config, &|_| None);
        assert_eq!(
            response("leader", None, data).to_pretty(),
            "{\n  \"error\" : \"server is not initialized\",\n  \"command\" : \"leader\"\n}"
        );
        let data = render("set_trace_mask", &facts, &config, &|_| Some("x".into()));
        assert_eq!(
            data.get("error"),
            Some(&Json::from(
                "setTraceMask requires long traceMask argument, got x"
            ))
        );
        assert_eq!(data.0.len(), 1);
    }
}
