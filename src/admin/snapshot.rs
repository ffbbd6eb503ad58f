//! The plain data the four-letter words print. The server fills a `ServerSnapshot` (only the
//! fields the command at hand reads, if it likes: each field says which commands read it)
//! and `admin::render` turns it into ZooKeeper's text.

use std::net::SocketAddr;

/// ZooKeeper's default text trace mask (`ZooTrace`): client requests, server packets,
/// sessions, warnings (`0b1_0011_0010` = 306). `gtmk` prints it.
pub const DEFAULT_TRACE_MASK: i64 = 306;

/// Everything the four-letter words print about the server.
///
/// Identifiers and zxids are `i64` as in ZooKeeper: hex output is the two's complement,
/// as Java's `Long.toHexString`. Times are milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSnapshot {
    /// False before the server serves requests: every command but `ruok`, `envi`, `gtmk`
    /// and `stmk` then prints "This ZooKeeper instance is not currently serving requests".
    pub serving: bool,
    /// `Version.getFullVersion()`: `srvr`/`stat` first line, `mntr` `zk_version`, `envi`.
    /// Default: `admin::full_version()`.
    pub version: String,
    /// `Mode:` of `srvr`/`stat`, `zk_server_state`: "standalone", "leader", "follower",
    /// "observer" (also what `mntr` compares for leader-only lines).
    pub server_state: String,
    /// Read-only server: `srvr`/`stat` say so, `isro` prints "ro".
    pub read_only: bool,
    /// `Zxid:` of `srvr`/`stat`: the last processed zxid.
    pub last_processed_zxid: i64,
    /// `Node count:` / `zk_znode_count`.
    pub node_count: u64,
    /// `Outstanding:` / `zk_outstanding_requests`.
    pub outstanding_requests: u64,
    /// `Received:` / `zk_packets_received` (reset by `srst`).
    pub packets_received: u64,
    /// `Sent:` / `zk_packets_sent` (reset by `srst`).
    pub packets_sent: u64,
    /// Request latency summary (reset by `srst`): the number of requests measured ...
    pub latency_count: u64,
    /// ... their total latency (the average is `total / count`, rounded to 4 places) ...
    pub latency_total_ms: u64,
    /// ... the smallest (printed as 0 when `latency_count` is 0) ...
    pub latency_min_ms: u64,
    /// ... and the largest.
    pub latency_max_ms: u64,
    /// `Connections:` / `zk_num_alive_connections`: client connections open now.
    pub connection_count: u64,
    /// Per connection: `stat` (brief), `cons` (full), `dump` (grouped by expiry). Include
    /// the connection the command arrived on, as ZooKeeper does.
    pub connections: Vec<ConnectionInfo>,
    /// `zk_watch_count`: data watches plus child watches (`DataTree.getWatchCount`).
    pub watch_count: u64,
    /// `wchs`. ZooKeeper's `wchs`, `wchc` and `wchp` only look at the DATA watch table
    /// (`DataTree.dataWatches`: getData/exists watches and persistent watches), never the
    /// child watches; fill these three fields the same way to print what ZooKeeper prints.
    pub watch_summary: WatchSummary,
    /// `wchp`: path -> session ids watching it (data watches only, see `watch_summary`).
    pub watches_by_path: Vec<(String, Vec<i64>)>,
    /// `wchc`: session id -> watched paths (data watches only, see `watch_summary`).
    pub watches_by_session: Vec<(i64, Vec<String>)>,
    /// `zk_ephemerals_count`: ephemeral nodes.
    pub ephemerals_count: u64,
    /// `dump`: session id -> its ephemeral paths (sessions without any left out).
    pub ephemerals_by_session: Vec<(i64, Vec<String>)>,
    /// `zk_approximate_data_size`: sum of path lengths and data lengths.
    pub approximate_data_size: u64,
    /// `zk_global_sessions`: live sessions.
    pub session_count: u64,
    /// `dump`: live sessions with their expiry bucket.
    pub sessions: Vec<SessionInfo>,
    /// `zk_uptime`: milliseconds since the server started.
    pub uptime_ms: u64,
    /// `zk_open_file_descriptor_count` (-1 = unknown); see `admin::file_descriptor_counts`.
    pub open_file_descriptor_count: i64,
    /// `zk_max_file_descriptor_count` (-1 = unknown).
    pub max_file_descriptor_count: i64,
    /// `dirs` `datadir_size`, `conf` `dataDirSize`: bytes under dataDir
    /// (see `admin::dir_size_bytes`).
    pub data_dir_size_bytes: u64,
    /// `dirs` `logdir_size`, `conf` `dataLogSize`: bytes under dataLogDir.
    pub log_dir_size_bytes: u64,
    /// `zk_last_client_response_size` in bytes (-1 = none yet).
    pub last_client_response_size: i64,
    /// `zk_min_client_response_size` (-1 = none yet).
    pub min_client_response_size: i64,
    /// `zk_max_client_response_size` (-1 = none yet).
    pub max_client_response_size: i64,
    /// `zk_auth_failed_count`.
    pub auth_failed_count: u64,
    /// `conf` `clientPort`: the port actually bound (None = `config.client_port`).
    pub client_port: Option<u16>,
    /// `gtmk` (and `stmk`: the server reads the 8-byte big-endian mask that follows `stmk`,
    /// stores it, and renders with the new mask here).
    pub trace_mask: i64,
    /// `hash`: recent (zxid, tree digest) pairs, oldest first.
    pub digest_log: Vec<(i64, i64)>,
    /// More `mntr` lines, appended in order as `zk_<name>\t<value>` (value already
    /// formatted: integers as decimal, doubles as `admin::java_double`).
    pub extra_metrics: Vec<(String, String)>,
}

impl Default for ServerSnapshot {
    fn default() -> ServerSnapshot {
        ServerSnapshot {
            serving: true,
            version: super::full_version(),
            server_state: "standalone".to_string(),
            read_only: false,
            last_processed_zxid: 0,
            node_count: 0,
            outstanding_requests: 0,
            packets_received: 0,
            packets_sent: 0,
            latency_count: 0,
            latency_total_ms: 0,
            latency_min_ms: 0,
            latency_max_ms: 0,
            connection_count: 0,
            connections: Vec::new(),
            watch_count: 0,
            watch_summary: WatchSummary::default(),
            watches_by_path: Vec::new(),
            watches_by_session: Vec::new(),
            ephemerals_count: 0,
            ephemerals_by_session: Vec::new(),
            approximate_data_size: 0,
            session_count: 0,
            sessions: Vec::new(),
            uptime_ms: 0,
            open_file_descriptor_count: -1,
            max_file_descriptor_count: -1,
            data_dir_size_bytes: 0,
            log_dir_size_bytes: 0,
            last_client_response_size: -1,
            min_client_response_size: -1,
            max_client_response_size: -1,
            auth_failed_count: 0,
            client_port: None,
            trace_mask: DEFAULT_TRACE_MASK,
            digest_log: Vec::new(),
            extra_metrics: Vec::new(),
        }
    }
}

impl ServerSnapshot {
    /// `AvgMinMaxCounter.getAvg`: total / count rounded half-up to 4 places; 0 when empty.
    pub fn latency_avg_ms(&self) -> f64 {
        if self.latency_count == 0 {
            return 0.0;
        }
        let avg = self.latency_total_ms as f64 / self.latency_count as f64;
        (avg * 10_000.0).round() / 10_000.0
    }

    /// The printed minimum: 0 when nothing was measured.
    pub fn latency_min_printed_ms(&self) -> u64 {
        if self.latency_count == 0 {
            0
        } else {
            self.latency_min_ms
        }
    }
}

/// The `wchs` numbers (`WatchManager.toString`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSummary {
    /// Watchers (connections) with at least one watch.
    pub connections: u64,
    /// Paths with at least one watch.
    pub paths: u64,
    /// Watches: the sum over connections of their watched paths.
    pub total: u64,
}

/// One client connection (`ServerCnxn.dumpConnectionInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInfo {
    /// The peer (None prints "null", as for a closed socket in ZooKeeper).
    pub remote_address: Option<SocketAddr>,
    /// Selector interest: 1 = reading, 4 = writing, 5 = both, 0 = neither (the command's own
    /// connection, which ZooKeeper takes off the selector, prints 0).
    pub interest_ops: u32,
    /// `queued=`: requests in flight.
    pub outstanding_requests: u64,
    /// `recved=` (reset by `crst`).
    pub packets_received: u64,
    /// `sent=` (reset by `crst`).
    pub packets_sent: u64,
    /// `sid=`; 0 = no session yet (then `cons` prints the brief form).
    pub session_id: i64,
    /// `lop=`: see `admin::last_operation_name`; "NA" before any request.
    pub last_operation: String,
    /// `est=`: when the connection was accepted, Unix milliseconds.
    pub established_ms: u64,
    /// `to=`: the negotiated session timeout.
    pub session_timeout_ms: u32,
    /// `lcxid=`: last client xid; -1 = none (not printed).
    pub last_cxid: i64,
    /// `lzxid=`: last zxid replied; -1 = none (prints ffffffffffffffff, as ZooKeeper).
    pub last_zxid: i64,
    /// `lresp=`: when the last response went out, Unix milliseconds (0 = none).
    pub last_response_time_ms: u64,
    /// `llat=`.
    pub last_latency_ms: u64,
    /// `minlat=` (0 when nothing measured).
    pub min_latency_ms: u64,
    /// `avglat=` (integer division, as ZooKeeper).
    pub avg_latency_ms: u64,
    /// `maxlat=`.
    pub max_latency_ms: u64,
    /// `dump`: the connection-expiry bucket, Unix milliseconds.
    pub expire_at_ms: u64,
}

impl Default for ConnectionInfo {
    fn default() -> ConnectionInfo {
        ConnectionInfo {
            remote_address: None,
            interest_ops: 1,
            outstanding_requests: 0,
            packets_received: 0,
            packets_sent: 0,
            session_id: 0,
            last_operation: "NA".to_string(),
            established_ms: 0,
            session_timeout_ms: 0,
            last_cxid: -1,
            last_zxid: -1,
            last_response_time_ms: 0,
            last_latency_ms: 0,
            min_latency_ms: 0,
            avg_latency_ms: 0,
            max_latency_ms: 0,
            expire_at_ms: 0,
        }
    }
}

/// One live session, for `dump`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: i64,
    pub timeout_ms: u32,
    /// The session-expiry bucket (`ExpiryQueue`), Unix milliseconds.
    pub expire_at_ms: u64,
}
