//! zoo.cfg + myid -> a validated `Config` holding every limit.
//!
//! The file syntax is `java.util.Properties`, as Apache ZooKeeper reads it
//! (`QuorumPeerConfig.parse`): one `key=value`, `key:value` or `key value` per logical line,
//! `#` / `!` comment lines, a trailing odd backslash continues the line, `\uXXXX` / `\t` /
//! `\n` escapes, and keys and values trimmed. A key given twice keeps its last value.
//!
//! Differences from ZooKeeper, on purpose:
//! - an unknown key, or a ZooKeeper key zkrs does not implement, is a warning naming the key
//!   and line (ZooKeeper turns unknown keys into `zookeeper.<key>` system properties);
//! - a bad value is an error naming file, line and key, where ZooKeeper sometimes accepts
//!   nonsense (`tickTime=-5`, `forceSync=off` meaning "yes");
//! - `zkrs.shards` is our own key.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    pub client_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    All,
    Only(Vec<String>),
}

impl FourLetterWhitelist {
    /// Whether `command` may run. `srvr` always may: ZooKeeper adds it to every whitelist
    /// because `zkServer.sh status` depends on it.
    pub fn allows(&self, command: &str) -> bool {
        match self {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(list) => {
                command == "srvr" || list.iter().any(|c| c == command)
            }
        }
    }
}

/// ZooKeeper's default for `4lw.commands.whitelist` when a config file does not set it:
/// only `srvr` (ZooKeeper 3.5.3 and later).
pub const DEFAULT_FILE_WHITELIST: &[&str] = &["srvr"];

/// Every four-letter word ZooKeeper 3.8 knows (what `*` in the whitelist stands for).
pub const KNOWN_FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// ZooKeeper's default `zookeeper.snapshotSizeFactor`.
pub const DEFAULT_SNAPSHOT_SIZE_FACTOR: f64 = 0.33;

#[derive(Debug, Clone)]
pub struct Config {
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: u16,
    /// Bind address; None = all addresses.
    pub client_port_address: Option<IpAddr>,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub global_outstanding_limit: u32,
    /// `jute.maxbuffer`: the largest request frame (and so znode) accepted.
    pub jute_max_buffer: usize,
    /// `jute.maxbuffer.extrasize` (ZooKeeper's system property
    /// `zookeeper.jute.maxbuffer.extrasize`, either key is read): what a txn may add to a
    /// request; None = ZooKeeper's default, `jute.maxbuffer`. See [`Config::jute_max_field_len`].
    pub jute_max_buffer_extra_size: Option<usize>,
    pub four_letter_whitelist: FourLetterWhitelist,
    pub snap_count: u64,
    /// `snapshotSizeFactor` (ZooKeeper's system property `zookeeper.snapshotSizeFactor`;
    /// either key is read): a leader syncs a learner older than its in-memory committed log
    /// by DIFF from the txn log files only while the txns to send take less than this
    /// fraction of the newest snapshot file's size. 0: no limit; negative: never from the
    /// files (always SNAP).
    pub snapshot_size_factor: f64,
    pub pre_alloc_size_bytes: u64,
    pub force_sync: bool,
    /// `enforceQuota` (ZooKeeper's system property `zookeeper.enforceQuota`; either key is
    /// read): creates and setData past a quota's hard limit fail with QuotaExceeded.
    pub enforce_quota: bool,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub servers: Vec<ServerSpec>,
    pub my_id: Option<u64>,
    /// Our own key `zkrs.shards`: client shards (one per core); default = available cores.
    pub shards: usize,
    /// Our own key `zkrs.cpuPinning` (auto, yes, no; default auto): see
    /// `server::placement`.
    pub cpu_pinning: crate::server::placement::Pinning,
    /// `DigestAuthenticationProvider.superDigest` ("super:<base64 sha1>").
    pub super_digest: Option<String>,
    /// `znode.container.checkIntervalMs` (ZooKeeper default 60000).
    pub container_check_interval_ms: u64,
    /// Where the file came from (None = embedded default).
    pub source: Option<PathBuf>,
    /// The AdminServer (`admin.*` keys).
    pub admin_server: AdminServerConfig,
    /// `metricsProvider.className=...PrometheusMetricsProvider`: its `/metrics` endpoint.
    pub prometheus: Option<PrometheusConfig>,
    /// TLS on `secureClientPort` (and the client port with `client.portUnification`).
    pub tls: TlsConfig,
    /// SASL and authentication enforcement (`java.security.auth.login.config`,
    /// `authProvider.N`, `enforce.auth.*`, `sessionRequireClientSASLAuth`, `superUser`, ...).
    pub auth: crate::sasl::AuthConfig,
}

/// ZooKeeper's `X509Util.ClientAuth` (`ssl.clientAuth`): whether a TLS client must show a
/// certificate. Unset or empty is `Need`, as in ZooKeeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Want,
    Need,
}

/// A key or trust store: `ssl.keyStore.*` or `ssl.trustStore.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// `.location` (unset or empty: none).
    pub location: Option<PathBuf>,
    /// `.password`, or the first line of the file `.passwordPath` names (read at start-up).
    pub password: Option<String>,
    pub password_path: Option<PathBuf>,
    /// `.type` (JKS, PEM, PKCS12, BCFKS; case-insensitive); unset: from the file name.
    pub store_type: Option<String>,
}

/// The client-port TLS settings: ZooKeeper's `ClientX509Util` keys (`ssl.*`, or
/// `zookeeper.ssl.*` as system properties), `secureClientPort[Address]`,
/// `client.portUnification` and `X509AuthenticationProvider.superUser`. The stores are read
/// and checked at start-up (`crate::tls::TlsServer::new`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub secure_client_port: Option<u16>,
    pub secure_client_port_address: Option<IpAddr>,
    /// `client.portUnification`: the plain client port also accepts TLS.
    pub port_unification: bool,
    pub key_store: StoreConfig,
    pub trust_store: StoreConfig,
    pub client_auth: ClientAuth,
    /// `ssl.protocol` (default TLSv1.2, as ZooKeeper 3.8's X509Util).
    pub protocol: String,
    /// `ssl.enabledProtocols` (default: `ssl.protocol` alone).
    pub enabled_protocols: Option<Vec<String>>,
    /// `ssl.ciphersuites` (default: the TLS library's).
    pub cipher_suites: Option<Vec<String>>,
    /// `ssl.hostnameVerification` (default true). As in ZooKeeper's ClientX509Util, the
    /// server does not check a client's host name against its certificate: read, no effect
    /// on the client port.
    pub hostname_verification: bool,
    /// `ssl.handshakeDetectionTimeoutMillis` (default 5000): how long a TLS handshake may
    /// take.
    pub handshake_timeout_ms: u64,
    /// `zookeeper.X509AuthenticationProvider.superUser`: the certificate subject DN that
    /// gets `super` (every ACL passes).
    pub x509_super_user: Option<String>,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig {
            secure_client_port: None,
            secure_client_port_address: None,
            port_unification: false,
            key_store: StoreConfig::default(),
            trust_store: StoreConfig::default(),
            client_auth: ClientAuth::Need,
            protocol: "TLSv1.2".to_string(),
            enabled_protocols: None,
            cipher_suites: None,
            hostname_verification: true,
            handshake_timeout_ms: 5000,
            x509_super_user: None,
        }
    }
}

impl TlsConfig {
    /// Whether any port serves TLS.
    pub fn enabled(&self) -> bool {
        self.secure_client_port.is_some() || self.port_unification
    }
}

/// ZooKeeper's `JettyAdminServer` settings (`admin.*`, or the `zookeeper.admin.*` system
/// property names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminServerConfig {
    /// `admin.enableServer`: on unless "false" (ZooKeeper 3.8's rule).
    pub enabled: bool,
    /// `admin.serverAddress` (default 0.0.0.0).
    pub address: String,
    /// `admin.serverPort` (default 8080).
    pub port: u16,
    /// `admin.commandURL` (default `/commands`).
    pub command_url: String,
    /// `admin.idleTimeout` in ms (default 30000).
    pub idle_timeout_ms: u64,
}

impl Default for AdminServerConfig {
    fn default() -> AdminServerConfig {
        AdminServerConfig {
            enabled: true,
            address: "0.0.0.0".to_string(),
            port: 8080,
            command_url: "/commands".to_string(),
            idle_timeout_ms: 30_000,
        }
    }
}

/// The class name that selects the Prometheus provider.
pub const PROMETHEUS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// `PrometheusMetricsProvider` settings (`metricsProvider.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// `metricsProvider.httpHost` (default 0.0.0.0).
    pub host: String,
    /// `metricsProvider.httpPort` (default 7000).
    pub port: u16,
    /// `metricsProvider.exportJvmInfo` (default true). There is no JVM: accepted, and the
    /// server says so in its log.
    pub export_jvm_info: bool,
}

impl Default for PrometheusConfig {
    fn default() -> PrometheusConfig {
        PrometheusConfig {
            host: "0.0.0.0".to_string(),
            port: 7000,
            export_jvm_info: true,
        }
    }
}

impl Default for Config {
    /// The embedded default, used when `zkrs` gets no config file: client port 2181, data
    /// under `./data`, ZooKeeper's limits.
    ///
    /// Unlike a config file without `4lw.commands.whitelist` (where ZooKeeper, and zkrs,
    /// allow only `srvr`), the embedded default allows every four-letter word (`*`), so that
    /// operators trying zkrs out and the test suites can use `ruok`, `mntr`, `stat`, ...
    fn default() -> Config {
        let tick = 2000;
        Config {
            tick_time_ms: tick,
            init_limit: 10,
            sync_limit: 5,
            data_dir: PathBuf::from("data"),
            data_log_dir: PathBuf::from("data"),
            client_port: 2181,
            client_port_address: None,
            max_client_cnxns: 60,
            min_session_timeout_ms: 2 * tick,
            max_session_timeout_ms: 20 * tick,
            global_outstanding_limit: 1000,
            jute_max_buffer: 0xfffff,
            jute_max_buffer_extra_size: None,
            four_letter_whitelist: FourLetterWhitelist::All,
            snap_count: 100_000,
            snapshot_size_factor: DEFAULT_SNAPSHOT_SIZE_FACTOR,
            pre_alloc_size_bytes: 64 * 1024 * 1024,
            force_sync: true,
            enforce_quota: false,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            servers: Vec::new(),
            my_id: None,
            cpu_pinning: crate::server::placement::Pinning::Auto,
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            super_digest: None,
            container_check_interval_ms: 60_000,
            source: None,
            admin_server: AdminServerConfig::default(),
            prometheus: None,
            auth: crate::sasl::AuthConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl Config {
    /// ZooKeeper's reader limit for one string or buffer, and the most a txn may take:
    /// `jute.maxbuffer + extrasize`, the extra size at least 1024 (BinaryInputArchive).
    pub fn jute_max_field_len(&self) -> usize {
        let extra = self
            .jute_max_buffer_extra_size
            .unwrap_or(self.jute_max_buffer)
            .max(1024);
        self.jute_max_buffer.saturating_add(extra)
    }
}

/// A config file or myid file that cannot be used. `Display` gives
/// `file:line: key: message` (the parts that are known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault (the config file, or `<dataDir>/myid`); None = text without a name.
    pub file: Option<PathBuf>,
    /// 1-based line number, where one line is at fault.
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_location(f, self.file.as_deref(), self.line)?;
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

fn write_location(
    out: &mut impl fmt::Write,
    file: Option<&Path>,
    line: Option<usize>,
) -> fmt::Result {
    match file {
        Some(path) => write!(out, "{}", path.display())?,
        None => write!(out, "<config>")?,
    }
    if let Some(line) = line {
        write!(out, ":{line}")?;
    }
    Ok(())
}

/// Smallest `autopurge.snapRetainCount` ZooKeeper accepts (smaller values are raised to it).
pub const MIN_SNAP_RETAIN_COUNT: u32 = 3;

/// Keys Apache ZooKeeper 3.8 understands that zkrs reads but does not act on.
const IGNORED_KEYS: &[&str] = &[
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "observerMasterPort",
    "clientPortListenBacklog",
    "connectToLearnerMasterLimit",
    "electionAlg",
    "electionPortBindRetry",
    "quorumListenOnAllIPs",
    "peerType",
    "syncEnabled",
    "dynamicConfigFile",
    "standaloneEnabled",
    "reconfigEnabled",
    "sslQuorum",
    "portUnification",
    "sslQuorumReloadCertFiles",
    "quorum.cnxn.threads.size",
    "oraclePath",
    "serverCnxnFactory",
    "clientCnxnSocket",
    "skipACL",
    "fsync.warningthresholdms",
    "maxResponseCacheSize",
    "maxGetChildrenResponseCacheSize",
    "audit.enable",
    "digest.enabled",
    "snapshot.trust.empty",
    "snapshot.compression.method",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "commitLogCount",
    "leaderServes",
    "cnxTimeout",
    "tcpKeepAlive",
    "clientTcpKeepAlive",
    "flushDelay",
    "maxWriteQueuePollTime",
    "maxBatchSize",
    "maxCnxns",
    "serializeLastProcessedZxid.enabled",
    "closeSessionTxn.enabled",
    "extendedTypesEnabled",
    "emulate353TTLNodes",
    "watchManagerName",
    "readonlymode.enabled",
    "znode.container.maxPerMinute",
    "znode.container.maxNeverUsedIntervalMs",
    "requestThrottleLimit",
    "requestThrottleStallTime",
    "requestThrottleDropStale",
    "largeRequestMaxBytes",
    "largeRequestThreshold",
    "throttledOpWaitTime",
    "learnerHandlerDebugConnections",
    "client.secure",
];

/// Prefixes of ZooKeeper key families zkrs does not act on.
const IGNORED_PREFIXES: &[&str] = &[
    "admin.",
    "metricsProvider.",
    "multiAddress.",
    "quorum.auth.",
    "jvm.pause.",
    "authProvider.",
    "ssl.",
    "netty.",
    "learner.",
    "connection_throttle_",
    "kerberos.",
    "group.",
    "weight.",
    "watcherCleanThreshold",
    "watcherCleanIntervalInSeconds",
    "watcherCleanThreadsNum",
    "zookeeper.",
];

/// One `key=value` of the Properties text, trimmed as ZooKeeper trims it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    value: String,
    /// 1-based number of the line the logical line starts on.
    line: usize,
}

/// Where `myid` comes from while building a Config.
enum MyIdSource {
    /// Read `<dataDir>/myid` if it is a file (as ZooKeeper: standalone needs none).
    DataDir,
    /// Given by the caller (no file is read).
    Given(Option<u64>),
}

impl Config {
    /// Parses zoo.cfg text. `source` names the file in errors and warnings (and is kept in
    /// `Config::source`); no file is read, and no `myid` is known (as if `<dataDir>/myid`
    /// did not exist). Returns the config and the warnings (unknown or ignored keys,
    /// adjusted values), each starting `file:line: `.
    pub fn parse(text: &str, source: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
        Config::parse_with_my_id(text, source, None)
    }

    /// As `parse`, with the server id a `myid` file would give.
    pub fn parse_with_my_id(
        text: &str,
        source: Option<&Path>,
        my_id: Option<u64>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        build(text, source, MyIdSource::Given(my_id))
    }

    /// Reads and parses the config file at `path`, then `<dataDir>/myid` when that file
    /// exists (a quorum config, more than one participant in `server.N` lines, requires it).
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        // java.util.Properties.load(InputStream) reads ISO 8859-1; accept UTF-8 too.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
        };
        build(&text, Some(path), MyIdSource::DataDir)
    }

    /// The address `zkServer.sh status`-like tools connect to: `clientPortAddress`, or the
    /// loopback address when the server listens on every address.
    pub fn client_connect_address(&self) -> std::net::SocketAddr {
        let ip = match self.client_port_address {
            Some(ip) if !ip.is_unspecified() => ip,
            _ => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        };
        std::net::SocketAddr::new(ip, self.client_port)
    }

    /// True when the `server.N` lines describe a quorum (more than one participant), the
    /// case where ZooKeeper does not run standalone.
    pub fn is_distributed(&self) -> bool {
        self.servers.iter().filter(|s| !s.observer).count() > 1
    }
}

/// Splits Properties text into entries, as `java.util.Properties.load` does.
fn parse_properties(text: &str, file: Option<&Path>) -> Result<Vec<Entry>, ConfigError> {
    let natural = natural_lines(text);
    let mut entries = Vec::new();
    let mut index = 0;
    while index < natural.len() {
        let (line_number, raw) = natural[index];
        index += 1;
        let trimmed = raw.trim_start_matches(is_properties_whitespace);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        let mut logical = trimmed.to_string();
        while ends_with_continuation(&logical) {
            logical.pop();
            match natural.get(index) {
                Some((_, next)) => {
                    index += 1;
                    logical.push_str(next.trim_start_matches(is_properties_whitespace));
                }
                None => break,
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let error = |message: String| ConfigError {
            file: file.map(Path::to_path_buf),
            line: Some(line_number),
            key: None,
            message,
        };
        let key = unescape(raw_key).map_err(error)?;
        let value = unescape(raw_value).map_err(error)?;
        entries.push(Entry {
            key: java_trim(&key).to_string(),
            value: java_trim(&value).to_string(),
            line: line_number,
        });
    }
    Ok(entries)
}

/// Lines ended by `\n`, `\r\n` or `\r`, with 1-based numbers.
fn natural_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut position = 0;
    while position < bytes.len() {
        match bytes[position] {
            b'\n' => {
                lines.push(&text[start..position]);
                position += 1;
                start = position;
            }
            b'\r' => {
                lines.push(&text[start..position]);
                position += 1;
                if bytes.get(position) == Some(&b'\n') {
                    position += 1;
                }
                start = position;
            }
            _ => position += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .collect()
}

fn is_properties_whitespace(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// An odd number of trailing backslashes continues the logical line.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// The key ends at the first unescaped `=`, `:` or whitespace; whitespace and at most one
/// `=`/`:` after it are skipped.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    for (i, c) in line.char_indices() {
        if !escaped && (c == '=' || c == ':') {
            key_end = i;
            value_start = i + 1;
            has_separator = true;
            break;
        }
        if !escaped && is_properties_whitespace(c) {
            key_end = i;
            value_start = i + 1;
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    let rest = &line[value_start..];
    let mut skip = 0;
    for (i, c) in rest.char_indices() {
        if is_properties_whitespace(c) {
            skip = i + 1;
        } else if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            skip = i + 1;
        } else {
            break;
        }
    }
    (&line[..key_end], &rest[skip..])
}

/// Properties escapes: `\uXXXX`, `\t`, `\n`, `\r`, `\f`; any other escaped char is itself.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = if hex.len() == 4 {
                    u32::from_str_radix(&hex, 16).ok()
                } else {
                    None
                };
                match code.and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => return Err(format!("malformed \\uxxxx encoding \"\\u{hex}\"")),
                }
            }
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// `String.trim()`: strips every char up to and including U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Collects errors and warnings with the file name.
struct Context<'a> {
    file: Option<&'a Path>,
    warnings: Vec<String>,
}

impl Context<'_> {
    fn error(&self, line: Option<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.map(Path::to_path_buf),
            line,
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    fn warn(&mut self, line: Option<usize>, key: &str, message: impl fmt::Display) {
        let mut text = String::new();
        let _ = write_location(&mut text, self.file, line);
        self.warnings.push(format!("{text}: {key}: {message}"));
    }
}

/// A value with the line it came from.
struct Value<'a> {
    text: &'a str,
    line: usize,
}

fn parse_i64(ctx: &Context<'_>, key: &str, v: &Value<'_>, what: &str) -> Result<i64, ConfigError> {
    v.text.parse::<i64>().map_err(|_| {
        ctx.error(
            Some(v.line),
            key,
            format!("expected {what}, got \"{}\"", v.text),
        )
    })
}

/// An integer in `min..=max` (`what` says which, for the message).
fn parse_ranged<T: TryFrom<i64>>(
    ctx: &Context<'_>,
    key: &str,
    v: &Value<'_>,
    min: i64,
    max: i64,
    what: &str,
) -> Result<T, ConfigError> {
    let n = parse_i64(ctx, key, v, what)?;
    if n < min || n > max {
        return Err(ctx.error(
            Some(v.line),
            key,
            format!("expected {what}, got \"{}\"", v.text),
        ));
    }
    T::try_from(n).map_err(|_| {
        ctx.error(
            Some(v.line),
            key,
            format!("expected {what}, got \"{}\"", v.text),
        )
    })
}

fn parse_positive<T: TryFrom<i64>>(
    ctx: &Context<'_>,
    key: &str,
    v: &Value<'_>,
    max: i64,
) -> Result<T, ConfigError> {
    parse_ranged(ctx, key, v, 1, max, "a positive integer")
}

fn parse_non_negative<T: TryFrom<i64>>(
    ctx: &Context<'_>,
    key: &str,
    v: &Value<'_>,
    max: i64,
) -> Result<T, ConfigError> {
    parse_ranged(ctx, key, v, 0, max, "a non-negative integer")
}

fn parse_port(ctx: &Context<'_>, key: &str, text: &str, line: usize) -> Result<u16, ConfigError> {
    match text.trim().parse::<i64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(_) => Err(ctx.error(
            Some(line),
            key,
            format!("port out of range (1-65535): \"{text}\""),
        )),
        Err(_) => Err(ctx.error(
            Some(line),
            key,
            format!("expected a port number, got \"{text}\""),
        )),
    }
}

/// An IP address, or a host name resolved as `InetAddress.getByName` would.
fn resolve_host(
    ctx: &Context<'_>,
    key: &str,
    host: &str,
    line: usize,
) -> Result<IpAddr, ConfigError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    if bare.is_empty() {
        return Err(ctx.error(Some(line), key, "empty address"));
    }
    match (bare, 0u16).to_socket_addrs() {
        Ok(mut addresses) => match addresses.next() {
            Some(address) => Ok(address.ip()),
            None => Err(ctx.error(Some(line), key, format!("cannot resolve \"{host}\""))),
        },
        Err(e) => Err(ctx.error(Some(line), key, format!("cannot resolve \"{host}\": {e}"))),
    }
}

/// `host:port[:...]` with an optional `[ipv6]` host, as ZooKeeper's `ConfigUtils.getHostAndPort`.
fn host_and_port_parts(s: &str) -> Option<Vec<&str>> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        let mut parts = vec![host];
        if after.is_empty() {
            return Some(parts);
        }
        let after = after.strip_prefix(':')?;
        parts.extend(after.split(':'));
        Some(parts)
    } else {
        Some(s.split(':').collect())
    }
}

/// A parsed `server.N` line.
struct ServerLine {
    spec: ServerSpec,
    /// The client host of `;host:port` (None when only a port, or no client part, is given).
    client_host: Option<String>,
    line: usize,
    key: String,
}

const SERVER_FORMAT: &str = "expected host:port:port[:participant|:observer][;[host:]port]";

fn parse_server_line(
    ctx: &Context<'_>,
    key: &str,
    id: u64,
    value: &str,
    line: usize,
) -> Result<ServerLine, ConfigError> {
    let bad = |detail: &str| {
        ctx.error(
            Some(line),
            key,
            format!("{detail}: \"{value}\" ({SERVER_FORMAT})"),
        )
    };
    let halves: Vec<&str> = value.split(';').collect();
    if halves.len() > 2 {
        return Err(bad("more than one ';'"));
    }
    let server_part = halves[0].trim();
    if server_part.contains('|') {
        return Err(bad(
            "multiple addresses (multiAddress.enabled) are not supported",
        ));
    }
    let parts = host_and_port_parts(server_part).ok_or_else(|| bad("bad address"))?;
    if parts.len() < 3 || parts.len() > 4 {
        return Err(bad("wrong number of ':' fields"));
    }
    let host = parts[0].trim();
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let quorum_port = parse_port(ctx, key, parts[1], line)?;
    let election_port = parse_port(ctx, key, parts[2], line)?;
    if quorum_port == election_port {
        return Err(ctx.error(
            Some(line),
            key,
            "the quorum port and the election port must be different",
        ));
    }
    let observer = match parts.get(3).map(|t| t.trim().to_ascii_lowercase()) {
        None => false,
        Some(t) if t == "participant" => false,
        Some(t) if t == "observer" => true,
        Some(t) => return Err(bad(&format!("unknown peer type \"{t}\""))),
    };
    let mut client_port = None;
    let mut client_host = None;
    if let Some(client) = halves.get(1) {
        let client = client.trim();
        let client_parts = host_and_port_parts(client).ok_or_else(|| bad("bad client address"))?;
        match client_parts.as_slice() {
            [port] => client_port = Some(parse_port(ctx, key, port, line)?),
            [client_host_part, port] => {
                client_port = Some(parse_port(ctx, key, port, line)?);
                client_host = Some(client_host_part.trim().to_string());
            }
            _ => return Err(bad("bad client address")),
        }
    }
    Ok(ServerLine {
        spec: ServerSpec {
            id,
            host: host.to_string(),
            quorum_port,
            election_port,
            observer,
            client_port,
        },
        client_host,
        line,
        key: key.to_string(),
    })
}

/// `zookeeper.superUser` and `zookeeper.superUser.<anything>` (as `isSaslSuperUser`).
fn is_super_user_key(key: &str) -> bool {
    let key = key.strip_prefix("zookeeper.").unwrap_or(key);
    key == "superUser" || key.starts_with("superUser.")
}

/// The `-Dkey=value` flags of the environment's `SERVER_JVMFLAGS` and `JVMFLAGS` (as
/// zkServer.sh passes them to the JVM) that name authentication settings, as entries of
/// line 0.
fn jvm_flag_entries() -> Vec<Entry> {
    let mut out = Vec::new();
    for var in ["JVMFLAGS", "SERVER_JVMFLAGS"] {
        let Ok(flags) = std::env::var(var) else {
            continue;
        };
        for (key, value) in parse_jvm_flags(&flags) {
            let bare = key.strip_prefix("zookeeper.").unwrap_or(&key);
            let wanted = key == "java.security.auth.login.config"
                || is_super_user_key(&key)
                || bare.starts_with("authProvider.")
                || bare.starts_with("enforce.auth.")
                || matches!(
                    bare,
                    "sasl.serverconfig"
                        | "SASLAuthenticationProvider.superPassword"
                        | "allowSaslFailedClients"
                        | "sessionRequireClientSASLAuth"
                        | "requireClientAuthScheme"
                );
            if wanted {
                out.retain(|e: &Entry| e.key != key);
                out.push(Entry {
                    key,
                    value,
                    line: 0,
                });
            }
        }
    }
    out
}

/// `-Dkey=value` words of a JVM flags string (shell-style single and double quotes).
fn parse_jvm_flags(flags: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in flags.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
        .into_iter()
        .filter_map(|w| {
            let rest = w.strip_prefix("-D")?;
            let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

fn is_ignored_key(key: &str) -> bool {
    IGNORED_KEYS.contains(&key) || IGNORED_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn warn_if_relative(ctx: &mut Context<'_>, key: &str, path: &Path, line: usize) {
    if path.is_relative() && !path.starts_with(".") {
        ctx.warn(
            Some(line),
            key,
            format_args!(
                "{} is relative to the current directory. Prepend ./ to indicate that you're sure!",
                path.display()
            ),
        );
    }
}

fn read_my_id(data_dir: &Path) -> Result<Option<u64>, ConfigError> {
    let path = data_dir.join("myid");
    if !path.is_file() {
        return Ok(None);
    }
    let error = |line: Option<usize>, message: String| ConfigError {
        file: Some(path.clone()),
        line,
        key: Some("myid".to_string()),
        message,
    };
    let bytes = std::fs::read(&path).map_err(|e| error(None, format!("cannot read: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let first = text.lines().next().unwrap_or("").trim();
    first.parse::<u64>().map(Some).map_err(|_| {
        error(
            Some(1),
            format!("expected a server id (a number), got \"{first}\""),
        )
    })
}

fn build(
    text: &str,
    source: Option<&Path>,
    my_id_source: MyIdSource,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut ctx = Context {
        file: source,
        warnings: Vec::new(),
    };
    let entries = parse_properties(text, source)?;
    // Authentication settings operators pass as `-D` flags (zkServer.sh's SERVER_JVMFLAGS,
    // JVMFLAGS), read only when a file is loaded; a zoo.cfg key wins over a flag.
    let jvm_entries = match my_id_source {
        MyIdSource::DataDir => jvm_flag_entries(),
        MyIdSource::Given(_) => Vec::new(),
    };

    // The last of a repeated key wins, as in a Properties table.
    let mut values: HashMap<&str, Value<'_>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for entry in &jvm_entries {
        if !entries.iter().any(|e| e.key == entry.key) {
            values.insert(
                &entry.key,
                Value {
                    text: &entry.value,
                    line: entry.line,
                },
            );
            order.push(&entry.key);
        }
    }
    for entry in &entries {
        let value = Value {
            text: &entry.value,
            line: entry.line,
        };
        if let Some(previous) = values.insert(&entry.key, value) {
            ctx.warn(
                Some(entry.line),
                &entry.key,
                format_args!("repeated (line {} is overridden)", previous.line),
            );
        } else {
            order.push(&entry.key);
        }
    }

    let mut config = Config {
        source: source.map(Path::to_path_buf),
        four_letter_whitelist: FourLetterWhitelist::Only(
            DEFAULT_FILE_WHITELIST
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        ..Config::default()
    };
    let mut data_dir_seen = false;
    let mut data_log_dir_seen = false;
    // ZooKeeper has no default for these: a quorum must set them (standalone ignores them).
    let mut init_limit_seen = false;
    // Where jute.maxbuffer (or else the extra size) was set, for errors about both.
    let mut jute_line: Option<usize> = None;
    let mut sync_limit_seen = false;
    let mut client_port: Option<u16> = None;
    let mut client_port_address: Option<(String, usize)> = None;
    let mut min_session_timeout: Option<(u32, usize)> = None;
    let mut max_session_timeout: Option<(u32, usize)> = None;
    let mut server_lines: Vec<ServerLine> = Vec::new();
    let mut metrics_class: Option<(String, usize)> = None;
    let mut prometheus = PrometheusConfig::default();
    // The first of sslQuorum / quorum.auth.*Sasl set to true, and its line.
    let mut quorum_security: Option<(String, usize)> = None;
    let mut enforce_enabled = false;
    let mut enforce_schemes: Option<(String, usize)> = None;
    let mut require_sasl = false;
    let mut secure_client_port_address: Option<(String, usize)> = None;

    for key in order {
        let Some(v) = values.get(key) else { continue };
        match key {
            "tickTime" => config.tick_time_ms = parse_positive(&ctx, key, v, i32::MAX as i64)?,
            "initLimit" => {
                config.init_limit = parse_non_negative(&ctx, key, v, i32::MAX as i64)?;
                init_limit_seen = true;
            }
            "syncLimit" => {
                config.sync_limit = parse_non_negative(&ctx, key, v, i32::MAX as i64)?;
                sync_limit_seen = true;
            }
            "dataDir" | "dataLogDir" => {
                if v.text.is_empty() {
                    return Err(ctx.error(Some(v.line), key, "expected a directory, got \"\""));
                }
                let path = PathBuf::from(v.text);
                warn_if_relative(&mut ctx, key, &path, v.line);
                if key == "dataDir" {
                    config.data_dir = path;
                    data_dir_seen = true;
                } else {
                    config.data_log_dir = path;
                    data_log_dir_seen = true;
                }
            }
            "clientPort" => {
                // ZooKeeper reads clientPort=0 as "not set".
                let port: u16 = parse_ranged(&ctx, key, v, 0, 65535, "a port number (0-65535)")?;
                client_port = (port != 0).then_some(port);
            }
            "clientPortAddress" => client_port_address = Some((v.text.to_string(), v.line)),
            "maxClientCnxns" => {
                config.max_client_cnxns = parse_non_negative(&ctx, key, v, i32::MAX as i64)?
            }
            "minSessionTimeout" | "maxSessionTimeout" => {
                // -1 is ZooKeeper's "unset": the default (2 or 20 ticks) applies.
                let n = parse_ranged::<i64>(
                    &ctx,
                    key,
                    v,
                    -1,
                    i32::MAX as i64,
                    "a non-negative integer (milliseconds)",
                )?;
                let slot = if key == "minSessionTimeout" {
                    &mut min_session_timeout
                } else {
                    &mut max_session_timeout
                };
                *slot = u32::try_from(n).ok().map(|ms| (ms, v.line));
            }
            "globalOutstandingLimit" => {
                config.global_outstanding_limit = parse_positive(&ctx, key, v, i32::MAX as i64)?
            }
            "jute.maxbuffer" => {
                config.jute_max_buffer = parse_positive(&ctx, key, v, i32::MAX as i64)?;
                jute_line = Some(v.line);
            }
            "jute.maxbuffer.extrasize" | "zookeeper.jute.maxbuffer.extrasize" => {
                config.jute_max_buffer_extra_size =
                    Some(parse_non_negative(&ctx, key, v, i32::MAX as i64)?);
                jute_line = jute_line.or(Some(v.line));
            }
            "4lw.commands.whitelist" => {
                config.four_letter_whitelist = parse_whitelist(&mut ctx, key, v);
            }
            "snapCount" => {
                // ZooKeeper rolls a random offset in [0, snapCount/2): 2 is the least it takes.
                config.snap_count =
                    parse_ranged(&ctx, key, v, 2, i32::MAX as i64, "an integer >= 2")?
            }
            "snapshotSizeFactor" | "zookeeper.snapshotSizeFactor" => {
                // ZooKeeper falls back to the default for a value it cannot parse or over 1.
                match v.text.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() && f <= 1.0 => config.snapshot_size_factor = f,
                    _ => {
                        ctx.warn(
                            Some(v.line),
                            key,
                            format_args!(
                                "\"{}\" is not a number up to 1; using \
                                 {DEFAULT_SNAPSHOT_SIZE_FACTOR}",
                                v.text
                            ),
                        );
                        config.snapshot_size_factor = DEFAULT_SNAPSHOT_SIZE_FACTOR;
                    }
                }
            }
            "preAllocSize" => {
                let kilobytes: u64 = parse_positive(&ctx, key, v, i64::MAX / 1024)?;
                config.pre_alloc_size_bytes = kilobytes * 1024;
            }
            // Boolean.parseBoolean: "true" in any case is true, anything else false.
            "enforceQuota" | "zookeeper.enforceQuota" => {
                config.enforce_quota = v.text.eq_ignore_ascii_case("true");
            }
            "forceSync" => {
                config.force_sync = match v.text.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => {
                        return Err(ctx.error(
                            Some(v.line),
                            key,
                            format!("expected \"yes\" or \"no\", got \"{}\"", v.text),
                        ))
                    }
                }
            }
            "autopurge.snapRetainCount" => {
                let n = parse_i64(&ctx, key, v, "an integer")?;
                if n < MIN_SNAP_RETAIN_COUNT as i64 {
                    ctx.warn(
                        Some(v.line),
                        key,
                        format_args!("{n} is below the minimum; using {MIN_SNAP_RETAIN_COUNT}"),
                    );
                    config.autopurge_snap_retain_count = MIN_SNAP_RETAIN_COUNT;
                } else {
                    config.autopurge_snap_retain_count = u32::try_from(n).unwrap_or(u32::MAX);
                }
            }
            "autopurge.purgeInterval" => {
                // Hours; 0 or less disables the purge task, as in ZooKeeper.
                let n = parse_i64(&ctx, key, v, "an integer (hours)")?;
                config.autopurge_purge_interval_hours = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
            }
            "zkrs.shards" => config.shards = parse_positive(&ctx, key, v, 4096)?,
            "zkrs.cpuPinning" => {
                config.cpu_pinning =
                    crate::server::placement::Pinning::parse(v.text).ok_or_else(|| {
                        ctx.error(
                            Some(v.line),
                            key,
                            format!("expected auto, yes or no, got \"{}\"", v.text),
                        )
                    })?
            }
            "DigestAuthenticationProvider.superDigest"
            | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                if !v.text.contains(':') {
                    return Err(ctx.error(
                        Some(v.line),
                        key,
                        format!("expected super:<base64 sha1 digest>, got \"{}\"", v.text),
                    ));
                }
                config.super_digest = Some(v.text.to_string());
            }
            "znode.container.checkIntervalMs" => {
                config.container_check_interval_ms = parse_positive(&ctx, key, v, i64::MAX)?
            }
            "admin.enableServer" | "zookeeper.admin.enableServer" => {
                // ZooKeeper: anything but "false" (exactly) leaves it on.
                config.admin_server.enabled = v.text != "false";
            }
            "admin.serverAddress" | "zookeeper.admin.serverAddress" => {
                config.admin_server.address = v.text.to_string()
            }
            "admin.serverPort" | "zookeeper.admin.serverPort" => {
                config.admin_server.port =
                    parse_ranged(&ctx, key, v, 0, 65535, "a port number (0-65535)")?
            }
            "admin.commandURL" | "zookeeper.admin.commandURL" => {
                if !v.text.starts_with('/') {
                    return Err(ctx.error(
                        Some(v.line),
                        key,
                        format!("expected a path starting with /, got \"{}\"", v.text),
                    ));
                }
                config.admin_server.command_url = v.text.trim_end_matches('/').to_string();
            }
            "admin.idleTimeout" | "zookeeper.admin.idleTimeout" => {
                config.admin_server.idle_timeout_ms = parse_positive(&ctx, key, v, i32::MAX as i64)?
            }
            "metricsProvider.className" => {
                metrics_class = Some((v.text.to_string(), v.line));
            }
            "metricsProvider.httpHost" => prometheus.host = v.text.to_string(),
            "metricsProvider.httpPort" => {
                prometheus.port = parse_ranged(&ctx, key, v, 0, 65535, "a port number (0-65535)")?
            }
            "metricsProvider.exportJvmInfo" => {
                // Boolean.parseBoolean: "true" in any case, anything else is false.
                prometheus.export_jvm_info = v.text.eq_ignore_ascii_case("true");
            }
            "secureClientPort" => {
                let port: u16 = parse_ranged(&ctx, key, v, 0, 65535, "a port number (0-65535)")?;
                config.tls.secure_client_port = (port != 0).then_some(port);
            }
            "secureClientPortAddress" => {
                secure_client_port_address = Some((v.text.to_string(), v.line))
            }
            "client.portUnification" | "zookeeper.client.portUnification" => {
                config.tls.port_unification = parse_java_boolean(v.text);
            }
            "X509AuthenticationProvider.superUser"
            | "zookeeper.X509AuthenticationProvider.superUser" => {
                config.tls.x509_super_user = (!v.text.is_empty()).then(|| v.text.to_string());
            }
            // The x509 provider is built in (see crate::tls): naming it is no warning.
            _ if key
                .strip_prefix("zookeeper.")
                .unwrap_or(key)
                .starts_with("authProvider.")
                && v.text == "org.apache.zookeeper.server.auth.X509AuthenticationProvider" => {}
            _ if ssl_key(key).is_some() => {
                let name = ssl_key(key).unwrap_or_default();
                parse_ssl_key(&mut ctx, &mut config.tls, name, key, v)?;
            }
            "java.security.auth.login.config" | "zookeeper.java.security.auth.login.config" => {
                config.auth.login_config = Some(PathBuf::from(v.text));
            }
            "sasl.serverconfig" | "zookeeper.sasl.serverconfig" => {
                config.auth.server_section = v.text.to_string();
            }
            "SASLAuthenticationProvider.superPassword"
            | "zookeeper.SASLAuthenticationProvider.superPassword" => {
                config.auth.super_password = Some(v.text.to_string());
            }
            "allowSaslFailedClients" | "zookeeper.allowSaslFailedClients" => {
                config.auth.allow_failed_clients = v.text.eq_ignore_ascii_case("true");
            }
            "enforce.auth.enabled" | "zookeeper.enforce.auth.enabled" => {
                enforce_enabled = v.text.eq_ignore_ascii_case("true");
            }
            "enforce.auth.schemes" | "zookeeper.enforce.auth.schemes" => {
                enforce_schemes = Some((v.text.to_string(), v.line));
            }
            "sessionRequireClientSASLAuth" | "zookeeper.sessionRequireClientSASLAuth" => {
                require_sasl |= v.text.eq_ignore_ascii_case("true");
            }
            "requireClientAuthScheme" | "zookeeper.requireClientAuthScheme" => {
                if v.text.trim() == crate::sasl::SCHEME_SASL {
                    require_sasl = true;
                } else {
                    ctx.warn(
                        Some(v.line),
                        key,
                        format_args!("only \"sasl\" is known; \"{}\" ignored", v.text),
                    );
                }
            }
            _ if is_super_user_key(key) => config.auth.super_users.push(v.text.to_string()),
            _ if key.starts_with("authProvider.") || key.starts_with("zookeeper.authProvider.") => {
                if v.text.trim() == crate::sasl::SASL_PROVIDER_CLASS {
                    config.auth.sasl_acl_scheme = true;
                } else {
                    ctx.warn(
                        Some(v.line),
                        key,
                        format_args!(
                            "zkrs knows only {}; \"{}\" ignored",
                            crate::sasl::SASL_PROVIDER_CLASS,
                            v.text
                        ),
                    );
                }
            }
            _ if key.starts_with("server.") => {
                let id = key["server.".len()..].parse::<u64>().map_err(|_| {
                    ctx.error(
                        Some(v.line),
                        key,
                        "expected server.N with N a server id (a number)",
                    )
                })?;
                server_lines.push(parse_server_line(&ctx, key, id, v.text, v.line)?);
            }
            // Security between servers zkrs cannot provide: refused for an ensemble below
            // (joining without it would fail, or quietly weaken a Java ensemble that also
            // accepts plain peers, e.g. with portUnification or learnerRequireSasl=false).
            "sslQuorum"
            | "quorum.auth.enableSasl"
            | "quorum.auth.learnerRequireSasl"
            | "quorum.auth.serverRequireSasl"
                if v.text.trim().eq_ignore_ascii_case("true") =>
            {
                if quorum_security.is_none() {
                    quorum_security = Some((key.to_string(), v.line));
                }
            }
            _ if is_ignored_key(key) => ctx.warn(
                Some(v.line),
                key,
                "a ZooKeeper setting zkrs does not implement; ignored",
            ),
            _ => ctx.warn(Some(v.line), key, "unknown setting; ignored"),
        }
    }

    if let Some((host, line)) = &secure_client_port_address {
        if config.tls.secure_client_port.is_none() {
            return Err(ctx.error(
                Some(*line),
                "secureClientPortAddress",
                "secureClientPortAddress is set but secureClientPort is not set",
            ));
        }
        config.tls.secure_client_port_address =
            Some(resolve_host(&ctx, "secureClientPortAddress", host, *line)?);
    }
    // AuthenticationHelper: sessionRequireClientSASLAuth means enforce.auth with [sasl];
    // every enforced scheme must have a provider (ip, digest, and sasl when registered).
    if require_sasl {
        config.auth.enforce_schemes = vec![crate::sasl::SCHEME_SASL.to_string()];
    } else if enforce_enabled {
        let Some((schemes, line)) = &enforce_schemes else {
            return Err(ctx.error(
                None,
                "enforce.auth.schemes",
                "enforce.auth.enabled is true: enforce.auth.schemes must be configured",
            ));
        };
        config.auth.enforce_schemes = schemes.split(',').map(|s| s.trim().to_string()).collect();
        let _ = line;
    }
    for scheme in &config.auth.enforce_schemes {
        let available = match scheme.as_str() {
            "ip" | "digest" => true,
            "sasl" => config.auth.sasl_acl_scheme,
            _ => false,
        };
        if !available {
            let line = enforce_schemes.as_ref().map(|(_, line)| *line);
            let hint = if scheme == "sasl" {
                format!(" (add authProvider.1={})", crate::sasl::SASL_PROVIDER_CLASS)
            } else {
                String::new()
            };
            return Err(ctx.error(
                line,
                "enforce.auth.schemes",
                format!("Authentication scheme {scheme} is not available{hint}"),
            ));
        }
    }
    if matches!(my_id_source, MyIdSource::DataDir) {
        if let Some(path) = &config.auth.login_config {
            let server = crate::sasl::load_server_config(path, &config.auth.server_section)
                .map_err(|(line, message)| ConfigError {
                    file: Some(path.clone()),
                    line,
                    key: Some("java.security.auth.login.config".to_string()),
                    message,
                })?;
            match server {
                Some(server) => config.auth.server = Some(std::sync::Arc::new(server)),
                None => ctx.warn(
                    None,
                    "java.security.auth.login.config",
                    format_args!(
                        "{} has no JAAS configuration section named '{}' \
                         (zookeeper.sasl.serverconfig): serving without SASL, as ZooKeeper does",
                        path.display(),
                        config.auth.server_section
                    ),
                ),
            }
        }
    }

    match metrics_class {
        Some((class, _)) if class == PROMETHEUS_PROVIDER => config.prometheus = Some(prometheus),
        Some((class, _)) if class == "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider" => {
        }
        Some((class, line)) => ctx.warn(
            Some(line),
            "metricsProvider.className",
            format_args!(
                "zkrs has only the built-in provider and {PROMETHEUS_PROVIDER}; \"{class}\" ignored"
            ),
        ),
        None => {}
    }
    if !data_dir_seen {
        return Err(ctx.error(None, "dataDir", "not set (a config file must set dataDir)"));
    }
    if !data_log_dir_seen {
        config.data_log_dir = config.data_dir.clone();
    }

    let tick = config.tick_time_ms;
    config.min_session_timeout_ms = match min_session_timeout {
        Some((ms, _)) => ms,
        None => tick.saturating_mul(2),
    };
    config.max_session_timeout_ms = match max_session_timeout {
        Some((ms, _)) => ms,
        None => tick.saturating_mul(20),
    };
    if config.min_session_timeout_ms > config.max_session_timeout_ms {
        let (key, line) = match (min_session_timeout, max_session_timeout) {
            (Some((_, line)), _) => ("minSessionTimeout", Some(line)),
            (None, Some((_, line))) => ("maxSessionTimeout", Some(line)),
            (None, None) => ("minSessionTimeout", None),
        };
        return Err(ctx.error(
            line,
            key,
            format!(
                "minSessionTimeout ({}) must not be larger than maxSessionTimeout ({})",
                config.min_session_timeout_ms, config.max_session_timeout_ms
            ),
        ));
    }

    // Limits that must agree: a request of jute.maxbuffer becomes a txn of at most
    // jute.maxbuffer + extrasize (ZooKeeper's promise, and its reader's limit), which must
    // fit one record of the txn log; Java also refuses a sum over a signed 32-bit length.
    let field_limit = config.jute_max_field_len();
    let record_limit = crate::wal::format::RECORD_PAYLOAD_MAX;
    if field_limit > record_limit || field_limit > i32::MAX as usize {
        return Err(ctx.error(
            jute_line,
            "jute.maxbuffer",
            format!(
                "jute.maxbuffer ({}) + jute.maxbuffer.extrasize ({}, default jute.maxbuffer, at \
                 least 1024) = {field_limit} is over the txn log's record limit of \
                 {record_limit} bytes: lower jute.maxbuffer or jute.maxbuffer.extrasize",
                config.jute_max_buffer,
                field_limit - config.jute_max_buffer,
            ),
        ));
    }

    // server.N lines (QuorumMaj + QuorumPeerConfig.parseDynamicConfig).
    server_lines.sort_by_key(|s| s.spec.id);
    let participants = server_lines.iter().filter(|s| !s.spec.observer).count();
    let observers = server_lines.len() - participants;
    if observers > 0 && participants <= 1 {
        let first = server_lines.iter().find(|s| s.spec.observer);
        return Err(ctx.error(
            first.map(|s| s.line),
            first.map_or("server", |s| s.key.as_str()),
            "observers need a quorum of at least two participants",
        ));
    }
    if participants == 1 {
        let only = &server_lines[0];
        ctx.warn(
            Some(only.line),
            &only.key,
            "only one server specified; running standalone",
        );
    }
    let distributed = participants > 1;
    if let Some((key, line)) = &quorum_security {
        if distributed {
            return Err(ctx.error(
                Some(*line),
                key,
                "zkrs has no TLS or SASL between servers (its quorum and election links are \
                 plain TCP), so it cannot run as a member of an ensemble that asks for it",
            ));
        }
        // Standalone, as in ZooKeeper, nothing uses it.
        ctx.warn(
            Some(*line),
            key,
            "a ZooKeeper setting zkrs does not implement; ignored",
        );
    }
    if distributed {
        if !init_limit_seen || config.init_limit == 0 {
            return Err(ctx.error(None, "initLimit", "must be set (non-zero) for a quorum"));
        }
        if !sync_limit_seen || config.sync_limit == 0 {
            return Err(ctx.error(None, "syncLimit", "must be set (non-zero) for a quorum"));
        }
    }

    config.my_id = match my_id_source {
        MyIdSource::Given(id) => id,
        MyIdSource::DataDir => read_my_id(&config.data_dir)?,
    };
    if distributed && config.my_id.is_none() {
        return Err(ConfigError {
            file: Some(config.data_dir.join("myid")),
            line: None,
            key: Some("myid".to_string()),
            message: "the myid file is missing (required when server.N lines name a quorum)"
                .to_string(),
        });
    }

    // This server's client address may come from its server.N line (setupClientPort).
    if let Some(my_id) = config.my_id {
        let mine = server_lines.iter().find(|s| s.spec.id == my_id);
        if distributed && mine.is_none() {
            return Err(ConfigError {
                file: Some(config.data_dir.join("myid")),
                line: Some(1),
                key: Some("myid".to_string()),
                message: format!("server id {my_id} has no server.{my_id} line"),
            });
        }
        if let Some(mine) = mine {
            if let Some(port) = mine.spec.client_port {
                let line_address = match &mine.client_host {
                    Some(host) => Some(resolve_host(&ctx, &mine.key, host, mine.line)?),
                    None => None,
                }
                .filter(|ip| !ip.is_unspecified());
                let static_address = match &client_port_address {
                    Some((host, line)) => {
                        Some(resolve_host(&ctx, "clientPortAddress", host, *line)?)
                    }
                    None => None,
                }
                .filter(|ip| !ip.is_unspecified());
                let port_conflict = client_port.is_some_and(|p| p != port);
                let address_conflict = static_address.is_some() && static_address != line_address;
                if port_conflict || address_conflict {
                    return Err(ctx.error(
                        Some(mine.line),
                        &mine.key,
                        "the client address differs from clientPort/clientPortAddress",
                    ));
                }
                client_port = Some(port);
                client_port_address = None;
                config.client_port_address = line_address;
            }
        }
    }

    match (client_port, &client_port_address) {
        (None, Some((_, line))) => {
            return Err(ctx.error(
                Some(*line),
                "clientPortAddress",
                "clientPortAddress is set but clientPort is not set",
            ))
        }
        (None, None) => return Err(ctx.error(None, "clientPort", "not set")),
        (Some(port), address) => {
            config.client_port = port;
            if let Some((host, line)) = address {
                config.client_port_address =
                    Some(resolve_host(&ctx, "clientPortAddress", host, *line)?);
            }
        }
    }

    config.servers = server_lines.into_iter().map(|s| s.spec).collect();
    Ok((config, ctx.warnings))
}

/// Java's `Boolean.parseBoolean`: "true" in any case; anything else is false.
fn parse_java_boolean(text: &str) -> bool {
    text.eq_ignore_ascii_case("true")
}

/// The client-TLS part of an `ssl.*` (or `zookeeper.ssl.*`) key; None for other keys and
/// for `ssl.quorum.*` (the quorum's TLS, not implemented).
fn ssl_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("zookeeper.").unwrap_or(key);
    let name = rest.strip_prefix("ssl.")?;
    (!name.starts_with("quorum.")).then_some(name)
}

/// One `ssl.<name>` key of ZooKeeper's ClientX509Util.
fn parse_ssl_key(
    ctx: &mut Context<'_>,
    tls: &mut TlsConfig,
    name: &str,
    key: &str,
    v: &Value<'_>,
) -> Result<(), ConfigError> {
    let text = v.text;
    let path = || (!text.is_empty()).then(|| PathBuf::from(text));
    let list = || {
        let items: Vec<String> = text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        (!items.is_empty()).then_some(items)
    };
    match name {
        "keyStore.location" => tls.key_store.location = path(),
        "keyStore.password" => tls.key_store.password = Some(text.to_string()),
        "keyStore.passwordPath" => tls.key_store.password_path = path(),
        "keyStore.type" => tls.key_store.store_type = (!text.is_empty()).then(|| text.into()),
        "trustStore.location" => tls.trust_store.location = path(),
        "trustStore.password" => tls.trust_store.password = Some(text.to_string()),
        "trustStore.passwordPath" => tls.trust_store.password_path = path(),
        "trustStore.type" => tls.trust_store.store_type = (!text.is_empty()).then(|| text.into()),
        "clientAuth" => {
            // X509Util.ClientAuth.fromPropertyValue: empty is NEED, else NONE/WANT/NEED in
            // any case; anything else refuses to start.
            tls.client_auth = match text.to_ascii_lowercase().as_str() {
                "" | "need" => ClientAuth::Need,
                "want" => ClientAuth::Want,
                "none" => ClientAuth::None,
                _ => {
                    return Err(ctx.error(
                        Some(v.line),
                        key,
                        format!("expected none, want or need, got \"{text}\""),
                    ))
                }
            }
        }
        "protocol" => {
            if !text.is_empty() {
                tls.protocol = text.to_string();
            }
        }
        "enabledProtocols" => tls.enabled_protocols = list(),
        "ciphersuites" => tls.cipher_suites = list(),
        "hostnameVerification" => tls.hostname_verification = parse_java_boolean(text),
        "handshakeDetectionTimeoutMillis" => {
            tls.handshake_timeout_ms = parse_positive(&*ctx, key, v, i32::MAX as i64)?;
        }
        // ZooKeeper's default provider is the x509 one; CRL and OCSP checks are not
        // implemented (see README).
        "authProvider" if text.is_empty() || text == "x509" => {}
        "crl" | "ocsp" if !parse_java_boolean(text) => {}
        "context.supplier.class" if text.is_empty() => {}
        _ => ctx.warn(
            Some(v.line),
            key,
            "a ZooKeeper TLS setting zkrs does not implement; ignored",
        ),
    }
    Ok(())
}

fn parse_whitelist(ctx: &mut Context<'_>, key: &str, v: &Value<'_>) -> FourLetterWhitelist {
    let mut words: Vec<String> = Vec::new();
    for word in v.text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if word == "*" {
            return FourLetterWhitelist::All;
        }
        if !KNOWN_FOUR_LETTER_WORDS.contains(&word) {
            ctx.warn(
                Some(v.line),
                key,
                format_args!("unknown four-letter word \"{word}\""),
            );
        }
        if !words.iter().any(|w| w == word) {
            words.push(word.to_string());
        }
    }
    // ZooKeeper adds srvr to every whitelist (zkServer.sh status needs it).
    if !words.iter().any(|w| w == "srvr") {
        words.push("srvr".to_string());
    }
    FourLetterWhitelist::Only(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        Config::parse(text, Some(Path::new("zoo.cfg")))
    }

    fn parse_ok(text: &str) -> (Config, Vec<String>) {
        match parse(text) {
            Ok(result) => result,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn tls_keys_as_zookeeper_reads_them() {
        let (c, warnings) = parse_ok(
            "dataDir=/d\nclientPort=2181\nsecureClientPort=2281\n\
             secureClientPortAddress=127.0.0.1\nclient.portUnification=TRUE\n\
             ssl.keyStore.location=/k.p12\nssl.keyStore.password=pw\n\
             zookeeper.ssl.trustStore.location=/t.pem\nssl.trustStore.type=pem\n\
             ssl.clientAuth=WANT\nssl.protocol=TLSv1.3\n\
             ssl.enabledProtocols=TLSv1.3, TLSv1.2\nssl.ciphersuites=A,B\n\
             ssl.hostnameVerification=false\nssl.handshakeDetectionTimeoutMillis=700\n\
             X509AuthenticationProvider.superUser=CN=admin\nssl.quorum.keyStore.location=/q\n\
             authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n",
        );
        let t = &c.tls;
        assert_eq!(t.secure_client_port, Some(2281));
        assert_eq!(
            t.secure_client_port_address,
            Some("127.0.0.1".parse().unwrap())
        );
        assert!(t.port_unification);
        assert_eq!(t.key_store.location, Some(PathBuf::from("/k.p12")));
        assert_eq!(t.key_store.password.as_deref(), Some("pw"));
        assert_eq!(t.trust_store.location, Some(PathBuf::from("/t.pem")));
        assert_eq!(t.trust_store.store_type.as_deref(), Some("pem"));
        assert_eq!(t.client_auth, ClientAuth::Want);
        assert_eq!(t.protocol, "TLSv1.3");
        assert_eq!(
            t.enabled_protocols,
            Some(vec!["TLSv1.3".to_string(), "TLSv1.2".to_string()])
        );
        assert_eq!(
            t.cipher_suites,
            Some(vec!["A".to_string(), "B".to_string()])
        );
        assert!(!t.hostname_verification);
        assert_eq!(t.handshake_timeout_ms, 700);
        assert_eq!(t.x509_super_user.as_deref(), Some("CN=admin"));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("ssl.quorum.keyStore.location")),
            "{warnings:?}"
        );
        let (c, _) = parse_ok("dataDir=/d\nclientPort=1\nssl.clientAuth=\n");
        assert_eq!(c.tls.client_auth, ClientAuth::Need);
        assert!(!c.tls.enabled());
        assert!(
            parse_err("dataDir=/d\nclientPort=1\nssl.clientAuth=maybe\n")
                .contains("ssl.clientAuth: expected none, want or need")
        );
        assert!(
            parse_err("dataDir=/d\nclientPort=1\nsecureClientPortAddress=1.2.3.4\n")
                .contains("secureClientPort is not set")
        );
    }

    const SAMPLE: &str = "\
# The number of milliseconds of each tick
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/tmp/zookeeper
clientPort=2181
#maxClientCnxns=60
";

    #[test]
    fn sample_cfg_gives_zookeeper_defaults() {
        let (c, warnings) = parse_ok(SAMPLE);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.init_limit, 10);
        assert_eq!(c.sync_limit, 5);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zookeeper"));
        assert_eq!(c.data_log_dir, PathBuf::from("/tmp/zookeeper"));
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.client_port_address, None);
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.min_session_timeout_ms, 4000);
        assert_eq!(c.max_session_timeout_ms, 40000);
        assert_eq!(c.global_outstanding_limit, 1000);
        assert_eq!(c.jute_max_buffer, 0xfffff);
        assert_eq!(
            c.four_letter_whitelist,
            FourLetterWhitelist::Only(vec!["srvr".to_string()])
        );
        assert_eq!(c.snap_count, 100_000);
        assert_eq!(c.pre_alloc_size_bytes, 64 * 1024 * 1024);
        assert!(c.force_sync);
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.autopurge_purge_interval_hours, 0);
        assert!(c.servers.is_empty());
        assert_eq!(c.my_id, None);
        assert!(c.shards >= 1);
        assert_eq!(c.super_digest, None);
        assert_eq!(c.container_check_interval_ms, 60_000);
        assert_eq!(c.source, Some(PathBuf::from("zoo.cfg")));
    }

    #[test]
    fn embedded_default_allows_every_word() {
        let c = Config::default();
        assert_eq!(c.four_letter_whitelist, FourLetterWhitelist::All);
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.source, None);
        assert!(c.four_letter_whitelist.allows("mntr"));
    }

    #[test]
    fn session_timeouts_follow_tick_time() {
        let (c, _) = parse_ok("tickTime=100\ndataDir=/d\nclientPort=1\n");
        assert_eq!(c.min_session_timeout_ms, 200);
        assert_eq!(c.max_session_timeout_ms, 2000);
        let (c, _) = parse_ok(
            "tickTime=100\ndataDir=/d\nclientPort=1\nminSessionTimeout=-1\nmaxSessionTimeout=9000\n",
        );
        assert_eq!(c.min_session_timeout_ms, 200);
        assert_eq!(c.max_session_timeout_ms, 9000);
    }

    #[test]
    fn min_above_max_session_timeout_is_an_error() {
        let e =
            parse_err("dataDir=/d\nclientPort=1\nmaxSessionTimeout=5000\nminSessionTimeout=6000\n");
        assert!(e.starts_with("zoo.cfg:4: minSessionTimeout: "), "{e}");
        // Only max given, below the 2-tick default minimum.
        let e = parse_err("dataDir=/d\nclientPort=1\nmaxSessionTimeout=3000\n");
        assert!(e.starts_with("zoo.cfg:3: maxSessionTimeout: "), "{e}");
    }

    #[test]
    fn properties_syntax() {
        let text = "  # comment\n\
                    ! also a comment\n\
                    \n\
                    tickTime : 1000\n\
                    dataDir /var/zk\n\
                    clientPort\t=\t2182   \n\
                    dataLogDir=/var/\\\n    log\n\
                    4lw.commands.whitelist=ruok,\\u006dntr\n";
        let (c, warnings) = parse_ok(text);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.tick_time_ms, 1000);
        assert_eq!(c.data_dir, PathBuf::from("/var/zk"));
        assert_eq!(c.client_port, 2182);
        assert_eq!(c.data_log_dir, PathBuf::from("/var/log"));
        assert_eq!(
            c.four_letter_whitelist,
            FourLetterWhitelist::Only(vec!["ruok".into(), "mntr".into(), "srvr".into()])
        );
    }

    #[test]
    fn crlf_lines_and_line_numbers() {
        let e = parse_err("dataDir=/d\r\nclientPort=1\r\n\r\ntickTime=abc\r\n");
        assert_eq!(
            e,
            "zoo.cfg:4: tickTime: expected a positive integer, got \"abc\""
        );
        let e = parse_err("dataDir=/d\rclientPort=1\rtickTime=abc\r");
        assert!(e.starts_with("zoo.cfg:3: "), "{e}");
    }

    #[test]
    fn continuation_line_number_is_where_the_entry_starts() {
        let e = parse_err("dataDir=/d\nclientPort=1\ntickTime=1\\\n  x\n");
        assert_eq!(
            e,
            "zoo.cfg:3: tickTime: expected a positive integer, got \"1x\""
        );
    }

    #[test]
    fn malformed_unicode_escape_is_an_error() {
        let e = parse_err("dataDir=/d\\u12\nclientPort=1\n");
        assert!(e.starts_with("zoo.cfg:1: "), "{e}");
        assert!(e.contains("malformed"), "{e}");
    }

    #[test]
    fn jute_limits_follow_the_config_and_must_fit_a_log_record() {
        let (c, _) = parse_ok("dataDir=/d\nclientPort=1\n");
        assert_eq!(c.jute_max_field_len(), 2 * 0xfffff);
        let (c, _) = parse_ok("dataDir=/d\nclientPort=1\njute.maxbuffer=4194304\n");
        assert_eq!(c.jute_max_field_len(), 8 << 20);
        let (c, _) = parse_ok(
            "dataDir=/d\nclientPort=1\njute.maxbuffer=4194304\n\
             zookeeper.jute.maxbuffer.extrasize=10\n",
        );
        assert_eq!(c.jute_max_field_len(), (4 << 20) + 1024);
        let (c, _) = parse_ok(
            "dataDir=/d\nclientPort=1\njute.maxbuffer=50000000\njute.maxbuffer.extrasize=0\n",
        );
        assert_eq!(c.jute_max_field_len(), 50_000_000 + 1024);
        // 40 MiB + 40 MiB (the default extra size) is over the 64 MiB record limit.
        let e = parse_err("dataDir=/d\nclientPort=1\njute.maxbuffer=41943040\n");
        assert!(e.starts_with("zoo.cfg:3: jute.maxbuffer: "), "{e}");
        assert!(e.contains("jute.maxbuffer.extrasize"), "{e}");
        assert!(e.contains("record limit of 67108864"), "{e}");
        let e = parse_err("dataDir=/d\nclientPort=1\njute.maxbuffer.extrasize=100000000\n");
        assert!(e.starts_with("zoo.cfg:3: jute.maxbuffer: "), "{e}");
        let e = parse_err("dataDir=/d\nclientPort=1\njute.maxbuffer.extrasize=-1\n");
        assert!(e.contains("jute.maxbuffer.extrasize"), "{e}");
    }

    #[test]
    fn repeated_key_last_wins_with_warning() {
        let (c, warnings) = parse_ok("dataDir=/d\nclientPort=1\nclientPort=2\n");
        assert_eq!(c.client_port, 2);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("zoo.cfg:3: clientPort: repeated"),
            "{warnings:?}"
        );
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "tickTime=abc",
                "zoo.cfg:3: tickTime: expected a positive integer, got \"abc\"",
            ),
            (
                "tickTime=0",
                "zoo.cfg:3: tickTime: expected a positive integer, got \"0\"",
            ),
            ("tickTime=-5", "zoo.cfg:3: tickTime: "),
            ("maxClientCnxns=-1", "zoo.cfg:3: maxClientCnxns: "),
            ("initLimit=x", "zoo.cfg:3: initLimit: "),
            ("syncLimit=1.5", "zoo.cfg:3: syncLimit: "),
            (
                "globalOutstandingLimit=0",
                "zoo.cfg:3: globalOutstandingLimit: ",
            ),
            ("jute.maxbuffer=lots", "zoo.cfg:3: jute.maxbuffer: "),
            ("snapCount=1", "zoo.cfg:3: snapCount: "),
            ("preAllocSize=0", "zoo.cfg:3: preAllocSize: "),
            (
                "forceSync=maybe",
                "zoo.cfg:3: forceSync: expected \"yes\" or \"no\"",
            ),
            (
                "autopurge.snapRetainCount=x",
                "zoo.cfg:3: autopurge.snapRetainCount: ",
            ),
            (
                "autopurge.purgeInterval=x",
                "zoo.cfg:3: autopurge.purgeInterval: ",
            ),
            ("zkrs.shards=0", "zoo.cfg:3: zkrs.shards: "),
            (
                "znode.container.checkIntervalMs=0",
                "zoo.cfg:3: znode.container.checkIntervalMs: ",
            ),
            (
                "DigestAuthenticationProvider.superDigest=nocolon",
                "zoo.cfg:3: DigestAuthenticationProvider.superDigest: ",
            ),
            ("minSessionTimeout=-2", "zoo.cfg:3: minSessionTimeout: "),
            ("server.x=h:1:2", "zoo.cfg:3: server.x: "),
        ];
        for (line, expected) in cases {
            let e = parse_err(&format!("dataDir=/d\nclientPort=1\n{line}\n"));
            assert!(e.starts_with(expected), "{line}: got {e}");
        }
    }

    #[test]
    fn client_port_range() {
        let e = parse_err("dataDir=/d\nclientPort=70000\n");
        assert!(e.starts_with("zoo.cfg:2: clientPort: "), "{e}");
        let e = parse_err("dataDir=/d\nclientPort=-1\n");
        assert!(e.starts_with("zoo.cfg:2: clientPort: "), "{e}");
        let e = parse_err("dataDir=/d\n");
        assert_eq!(e, "zoo.cfg: clientPort: not set");
        let e = parse_err("dataDir=/d\nclientPort=0\n");
        assert_eq!(e, "zoo.cfg: clientPort: not set");
        let e = parse_err("dataDir=/d\nclientPortAddress=127.0.0.1\n");
        assert!(e.starts_with("zoo.cfg:2: clientPortAddress: "), "{e}");
    }

    #[test]
    fn client_port_address() {
        let (c, _) = parse_ok("dataDir=/d\nclientPort=2181\nclientPortAddress=127.0.0.2\n");
        assert_eq!(c.client_port_address, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(
            c.client_connect_address(),
            "127.0.0.2:2181".parse().unwrap()
        );
        let (c, _) = parse_ok("dataDir=/d\nclientPort=2181\nclientPortAddress=::1\n");
        assert_eq!(c.client_port_address, Some("::1".parse().unwrap()));
        let (c, _) = parse_ok("dataDir=/d\nclientPort=2181\nclientPortAddress=localhost\n");
        assert!(c.client_port_address.is_some_and(|ip| ip.is_loopback()));
        let (c, _) = parse_ok("dataDir=/d\nclientPort=2181\nclientPortAddress=0.0.0.0\n");
        assert_eq!(
            c.client_connect_address(),
            "127.0.0.1:2181".parse().unwrap()
        );
    }

    #[test]
    fn missing_data_dir_is_an_error() {
        let e = parse_err("clientPort=2181\n");
        assert_eq!(
            e,
            "zoo.cfg: dataDir: not set (a config file must set dataDir)"
        );
        let e = parse_err("clientPort=2181\ndataDir=\n");
        assert!(e.starts_with("zoo.cfg:2: dataDir: "), "{e}");
    }

    #[test]
    fn relative_data_dir_is_kept_relative_with_a_warning() {
        let (c, warnings) = parse_ok("dataDir=zkdata\nclientPort=1\n");
        assert_eq!(c.data_dir, PathBuf::from("zkdata"));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("zoo.cfg:1: dataDir: zkdata is relative"),
            "{warnings:?}"
        );
        let (c, warnings) = parse_ok("dataDir=./zkdata\nclientPort=1\n");
        assert_eq!(c.data_dir, PathBuf::from("./zkdata"));
        assert!(warnings.is_empty());
    }

    #[test]
    fn all_our_keys() {
        let (c, warnings) = parse_ok(
            "dataDir=/d\ndataLogDir=/l\nclientPort=1\nmaxClientCnxns=0\nglobalOutstandingLimit=5\n\
             jute.maxbuffer=4096\nsnapCount=10\npreAllocSize=128\nforceSync=no\n\
             autopurge.snapRetainCount=7\nautopurge.purgeInterval=24\nzkrs.shards=3\n\
             DigestAuthenticationProvider.superDigest=super:abc=\n\
             znode.container.checkIntervalMs=500\n4lw.commands.whitelist=*\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.data_log_dir, PathBuf::from("/l"));
        assert_eq!(c.max_client_cnxns, 0);
        assert_eq!(c.global_outstanding_limit, 5);
        assert_eq!(c.jute_max_buffer, 4096);
        assert_eq!(c.snap_count, 10);
        assert_eq!(c.pre_alloc_size_bytes, 128 * 1024);
        assert!(!c.force_sync);
        assert_eq!(c.autopurge_snap_retain_count, 7);
        assert_eq!(c.autopurge_purge_interval_hours, 24);
        assert_eq!(c.shards, 3);
        assert_eq!(c.super_digest.as_deref(), Some("super:abc="));
        assert_eq!(c.container_check_interval_ms, 500);
        assert_eq!(c.four_letter_whitelist, FourLetterWhitelist::All);
        let (c, _) = parse_ok(
            "dataDir=/d\nclientPort=1\nzookeeper.DigestAuthenticationProvider.superDigest=super:x\nforceSync=YES\n",
        );
        assert_eq!(c.super_digest.as_deref(), Some("super:x"));
        assert!(c.force_sync);
    }

    #[test]
    fn snapshot_size_factor_under_either_key_with_zookeepers_fallback() {
        let (c, warnings) = parse_ok("dataDir=/d\nclientPort=1\n");
        assert_eq!(c.snapshot_size_factor, 0.33);
        assert!(warnings.is_empty());
        let (c, warnings) = parse_ok("dataDir=/d\nclientPort=1\nsnapshotSizeFactor=0.5\n");
        assert_eq!(c.snapshot_size_factor, 0.5);
        assert!(warnings.is_empty(), "{warnings:?}");
        let (c, _) = parse_ok("dataDir=/d\nclientPort=1\nzookeeper.snapshotSizeFactor=-1\n");
        assert_eq!(c.snapshot_size_factor, -1.0);
        for bad in ["1.5", "lots", "NaN"] {
            let (c, warnings) = parse_ok(&format!(
                "dataDir=/d\nclientPort=1\nsnapshotSizeFactor={bad}\n"
            ));
            assert_eq!(c.snapshot_size_factor, 0.33, "{bad}");
            assert_eq!(warnings.len(), 1, "{bad}: {warnings:?}");
            assert!(warnings[0].contains("snapshotSizeFactor"), "{warnings:?}");
        }
    }

    #[test]
    fn snap_retain_count_is_raised_to_three() {
        let (c, warnings) = parse_ok("dataDir=/d\nclientPort=1\nautopurge.snapRetainCount=1\n");
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("autopurge.snapRetainCount"));
        let (c, _) = parse_ok("dataDir=/d\nclientPort=1\nautopurge.purgeInterval=-4\n");
        assert_eq!(c.autopurge_purge_interval_hours, 0);
    }

    #[test]
    fn whitelist_parsing() {
        let (c, warnings) =
            parse_ok("dataDir=/d\nclientPort=1\n4lw.commands.whitelist= stat , ruok,,conf\n");
        assert!(warnings.is_empty(), "{warnings:?}");
        let w = c.four_letter_whitelist;
        assert_eq!(
            w,
            FourLetterWhitelist::Only(vec![
                "stat".into(),
                "ruok".into(),
                "conf".into(),
                "srvr".into()
            ])
        );
        assert!(w.allows("stat") && w.allows("srvr") && !w.allows("mntr"));
        let (c, _) = parse_ok("dataDir=/d\nclientPort=1\n4lw.commands.whitelist=ruok, *\n");
        assert_eq!(c.four_letter_whitelist, FourLetterWhitelist::All);
        let (_, warnings) = parse_ok("dataDir=/d\nclientPort=1\n4lw.commands.whitelist=bogus\n");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("bogus"));
        // srvr is allowed even by an explicit list without it.
        assert!(FourLetterWhitelist::Only(vec![]).allows("srvr"));
    }

    #[test]
    fn unknown_and_ignored_keys_warn() {
        let (_, warnings) = parse_ok(
            "dataDir=/d\nclientPort=1\nadmin.forceHttps=true\nstandaloneEnabled=true\n\
             metricsProvider.className=x\nfrobnicate=3\n",
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].starts_with("zoo.cfg:3: admin.forceHttps: "));
        assert!(warnings[0].contains("ignored"));
        assert!(warnings[1].starts_with("zoo.cfg:4: standaloneEnabled: "));
        assert_eq!(
            warnings[2],
            "zoo.cfg:6: frobnicate: unknown setting; ignored"
        );
        assert!(warnings[3].starts_with("zoo.cfg:5: metricsProvider.className: "));
        assert!(warnings[3].contains("\"x\" ignored"), "{}", warnings[3]);
    }

    #[test]
    fn admin_server_and_prometheus_keys() {
        let (c, warnings) = parse_ok("dataDir=/d\nclientPort=1\n");
        assert!(warnings.is_empty());
        assert_eq!(c.admin_server, AdminServerConfig::default());
        assert!(
            c.admin_server.enabled,
            "ZooKeeper 3.8 enables the AdminServer by default"
        );
        assert_eq!(c.admin_server.port, 8080);
        assert_eq!(c.prometheus, None);
        let (c, warnings) = parse_ok(
            "dataDir=/d\nclientPort=1\nadmin.enableServer=no\nadmin.serverAddress=127.0.0.1\n\
             admin.serverPort=18080\nadmin.commandURL=/cmds/\nadmin.idleTimeout=500\n\
             metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
             metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort=17000\n\
             metricsProvider.exportJvmInfo=false\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        // Only "false" turns it off, as in ZooKeeper.
        assert!(c.admin_server.enabled);
        assert_eq!(c.admin_server.address, "127.0.0.1");
        assert_eq!(c.admin_server.port, 18080);
        assert_eq!(c.admin_server.command_url, "/cmds");
        assert_eq!(c.admin_server.idle_timeout_ms, 500);
        assert_eq!(
            c.prometheus,
            Some(PrometheusConfig {
                host: "127.0.0.1".into(),
                port: 17000,
                export_jvm_info: false
            })
        );
        let (c, _) = parse_ok("dataDir=/d\nclientPort=1\nadmin.enableServer=false\n");
        assert!(!c.admin_server.enabled);
        let (c, _) = parse_ok(
            "dataDir=/d\nclientPort=1\nmetricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n",
        );
        assert_eq!(c.prometheus, Some(PrometheusConfig::default()));
        for bad in [
            "admin.serverPort=70000",
            "admin.commandURL=commands",
            "admin.idleTimeout=0",
            "metricsProvider.httpPort=x",
        ] {
            let text = format!("dataDir=/d\nclientPort=1\n{bad}\n");
            assert!(parse(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn quorum_tls_and_sasl_are_refused_for_an_ensemble() {
        let ensemble = "dataDir=/d\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
                        server.1=zk1:2888:3888\nserver.2=zk2:2888:3888\n";
        for key in [
            "sslQuorum",
            "quorum.auth.enableSasl",
            "quorum.auth.learnerRequireSasl",
            "quorum.auth.serverRequireSasl",
        ] {
            let text = format!("{ensemble}{key}=True\n");
            let err = match Config::parse_with_my_id(&text, Some(Path::new("zoo.cfg")), Some(1)) {
                Ok(_) => panic!("{key}=True accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.starts_with(&format!("zoo.cfg:7: {key}: zkrs has no TLS or SASL")),
                "{err}"
            );
            // false is what zkrs does anyway; standalone, nothing uses it (as in ZooKeeper).
            let (_, warnings) = parse_with(&format!("{ensemble}{key}=false\n"), Some(1));
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            let (_, warnings) = parse_ok(&format!("dataDir=/d\nclientPort=2181\n{key}=true\n"));
            assert_eq!(
                warnings,
                vec![format!(
                    "zoo.cfg:3: {key}: a ZooKeeper setting zkrs does not implement; ignored"
                )]
            );
        }
    }

    #[test]
    fn server_lines() {
        let (c, warnings) = parse_with(
            "dataDir=/d\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
             server.3=zk3:2888:3888:observer\n\
             server.1=zk1:2888:3888\n\
             server.2=[::1]:2889:3889:participant;2182\n",
            Some(1),
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            c.servers,
            vec![
                ServerSpec {
                    id: 1,
                    host: "zk1".into(),
                    quorum_port: 2888,
                    election_port: 3888,
                    observer: false,
                    client_port: None
                },
                ServerSpec {
                    id: 2,
                    host: "::1".into(),
                    quorum_port: 2889,
                    election_port: 3889,
                    observer: false,
                    client_port: Some(2182)
                },
                ServerSpec {
                    id: 3,
                    host: "zk3".into(),
                    quorum_port: 2888,
                    election_port: 3888,
                    observer: true,
                    client_port: None
                },
            ]
        );
        assert_eq!(c.my_id, Some(1));
        assert!(c.is_distributed());
    }

    fn parse_with(text: &str, my_id: Option<u64>) -> (Config, Vec<String>) {
        match Config::parse_with_my_id(text, Some(Path::new("zoo.cfg")), my_id) {
            Ok(result) => result,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn my_server_line_gives_the_client_address() {
        let text = "dataDir=/d\ninitLimit=5\nsyncLimit=2\n\
                    server.1=a:2888:3888;127.0.0.5:3000\nserver.2=b:2888:3888;3001\n";
        let (c, _) = parse_with(text, Some(1));
        assert_eq!(c.client_port, 3000);
        assert_eq!(c.client_port_address, Some("127.0.0.5".parse().unwrap()));
        let (c, _) = parse_with(text, Some(2));
        assert_eq!(c.client_port, 3001);
        assert_eq!(c.client_port_address, None);
        // A conflicting static clientPort is an error.
        let e = Config::parse_with_my_id(
            &format!("clientPort=2181\n{text}"),
            Some(Path::new("zoo.cfg")),
            Some(2),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("zoo.cfg:6: server.2: "), "{e}");
    }

    #[test]
    fn quorum_needs_myid_and_limits() {
        let text =
            "dataDir=/d\nclientPort=1\ninitLimit=5\nsyncLimit=2\nserver.1=a:1:2\nserver.2=b:1:2\n";
        let e = parse_err(text);
        assert!(e.starts_with("/d/myid: myid: "), "{e}");
        let e = Config::parse_with_my_id(text, Some(Path::new("zoo.cfg")), Some(9))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.9"), "{e}");
        let e = Config::parse_with_my_id(
            "dataDir=/d\nclientPort=1\nserver.1=a:1:2\nserver.2=b:1:2\n",
            Some(Path::new("zoo.cfg")),
            Some(1),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "zoo.cfg: initLimit: must be set (non-zero) for a quorum");
    }

    #[test]
    fn single_server_line_runs_standalone() {
        let (c, warnings) = parse_ok("dataDir=/d\nclientPort=1\nserver.1=a:2888:3888\n");
        assert_eq!(c.servers.len(), 1);
        assert!(!c.is_distributed());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("zoo.cfg:3: server.1: only one server"));
        let e = parse_err(
            "dataDir=/d\nclientPort=1\nserver.1=a:2888:3888\nserver.2=b:2888:3888:observer\n",
        );
        assert!(e.starts_with("zoo.cfg:4: server.2: "), "{e}");
    }

    #[test]
    fn bad_server_lines() {
        for (value, needle) in [
            ("a:2888", "wrong number"),
            ("a:1:2:3:4", "wrong number"),
            ("a:2888:2888", "must be different"),
            ("a:x:3888", "expected a port"),
            ("a:2888:99999", "out of range"),
            ("a:2888:3888:leader", "unknown peer type"),
            ("a:2888:3888;1;2", "more than one"),
            ("a:2888:3888;h:1:2", "bad client address"),
            ("a:2888:3888|b:2888:3888", "multiple addresses"),
            (":2888:3888", "empty host"),
            ("[::1:2888:3888", "bad address"),
        ] {
            let e = parse_err(&format!("dataDir=/d\nclientPort=1\nserver.1={value}\n"));
            assert!(e.starts_with("zoo.cfg:3: server.1: "), "{value}: {e}");
            assert!(e.contains(needle), "{value}: {e}");
        }
    }

    #[test]
    fn load_reads_file_and_myid() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
                 server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n",
                data.display()
            ),
        )
        .unwrap();
        // Quorum without myid.
        let e = Config::load(&cfg).unwrap_err();
        assert_eq!(e.file, Some(data.join("myid")));
        std::fs::write(data.join("myid"), "2\n").unwrap();
        let (c, _) = Config::load(&cfg).unwrap();
        assert_eq!(c.my_id, Some(2));
        assert_eq!(c.source, Some(cfg.clone()));
        std::fs::write(data.join("myid"), "two\n").unwrap();
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:1: myid: expected a server id (a number), got \"two\"",
                data.join("myid").display()
            )
        );
        // Missing file.
        let e = Config::load(&dir.path().join("nope.cfg")).unwrap_err();
        assert_eq!(e.line, None);
        assert!(
            e.to_string()
                .contains("nope.cfg: cannot read the config file"),
            "{e}"
        );
    }

    #[test]
    fn standalone_load_reads_myid_if_present() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!("dataDir={}\nclientPort=2181\n", dir.path().display()),
        )
        .unwrap();
        let (c, _) = Config::load(&cfg).unwrap();
        assert_eq!(c.my_id, None);
        std::fs::write(dir.path().join("myid"), "7").unwrap();
        let (c, _) = Config::load(&cfg).unwrap();
        assert_eq!(c.my_id, Some(7));
    }

    #[test]
    fn latin1_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(&cfg, b"dataDir=/d\xe9\nclientPort=2181\n").unwrap();
        let (c, _) = Config::load(&cfg).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/d\u{e9}"));
    }

    #[test]
    fn error_without_a_file_name() {
        let e = Config::parse("tickTime=x\n", None).unwrap_err().to_string();
        assert_eq!(
            e,
            "<config>:1: tickTime: expected a positive integer, got \"x\""
        );
    }

    #[test]
    fn split_key_value_cases() {
        assert_eq!(split_key_value("a=b"), ("a", "b"));
        assert_eq!(split_key_value("a = b"), ("a", "b"));
        assert_eq!(split_key_value("a b"), ("a", "b"));
        assert_eq!(split_key_value("a:b:c"), ("a", "b:c"));
        assert_eq!(split_key_value("a"), ("a", ""));
        assert_eq!(split_key_value("a\\=b=c"), ("a\\=b", "c"));
        assert_eq!(split_key_value("a  =  = b"), ("a", "= b"));
    }

    #[test]
    fn authentication_keys() {
        let (c, warnings) = parse_ok(
            "dataDir=/tmp/z\nclientPort=2181\n\
             authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
             java.security.auth.login.config=/etc/jaas.conf\n\
             zookeeper.superUser=admin\nsuperUser.2=root\n\
             allowSaslFailedClients=true\n\
             enforce.auth.enabled=true\nenforce.auth.schemes=sasl, digest\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(c.auth.sasl_acl_scheme);
        assert_eq!(c.auth.login_config, Some(PathBuf::from("/etc/jaas.conf")));
        assert_eq!(c.auth.super_users, ["admin", "root"]);
        assert!(c.auth.allow_failed_clients);
        assert_eq!(c.auth.enforce_schemes, ["sasl", "digest"]);
        // parse() reads no file: the JAAS file is loaded by Config::load only.
        assert!(c.auth.server.is_none());

        let (c, _) = parse_ok(
            "dataDir=/tmp/z\nclientPort=2181\n\
             authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
             sessionRequireClientSASLAuth=true\nenforce.auth.schemes=digest\n",
        );
        assert_eq!(c.auth.enforce_schemes, ["sasl"]);
        let (c, _) = parse_ok(
            "dataDir=/tmp/z\nclientPort=2181\n\
             authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
             requireClientAuthScheme=sasl\n",
        );
        assert!(c.auth.sasl_required());

        let e = parse_err("dataDir=/tmp/z\nclientPort=2181\nenforce.auth.enabled=true\n");
        assert!(e.contains("enforce.auth.schemes must be configured"), "{e}");
        let e = parse_err(
            "dataDir=/tmp/z\nclientPort=2181\nenforce.auth.enabled=true\nenforce.auth.schemes=sasl\n",
        );
        assert!(
            e.contains("zoo.cfg:4") && e.contains("sasl is not available"),
            "{e}"
        );
        let e = parse_err("dataDir=/tmp/z\nclientPort=2181\nsessionRequireClientSASLAuth=true\n");
        assert!(e.contains("sasl is not available"), "{e}");
        let (c, _) = parse_ok(
            "dataDir=/tmp/z\nclientPort=2181\nenforce.auth.enabled=false\nenforce.auth.schemes=sasl\n",
        );
        assert!(c.auth.enforce_schemes.is_empty());
    }

    #[test]
    fn jvm_flags() {
        assert_eq!(
            parse_jvm_flags(
                "-Xmx1g -Djava.security.auth.login.config=/a/jaas.conf '-Dzookeeper.superUser=a b' -Dflag"
            ),
            vec![
                ("java.security.auth.login.config".to_string(), "/a/jaas.conf".to_string()),
                ("zookeeper.superUser".to_string(), "a b".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
    }
}
