//! zoo.cfg + myid -> a validated Config holding every limit.
//! (Placeholder contract: the field names below are what the server reads.)

use std::net::IpAddr;
use std::path::PathBuf;

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
    pub jute_max_buffer: usize,
    pub four_letter_whitelist: FourLetterWhitelist,
    pub snap_count: u64,
    pub pre_alloc_size_bytes: u64,
    pub force_sync: bool,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub servers: Vec<ServerSpec>,
    pub my_id: Option<u64>,
    /// Our own key `zkrs.shards`: client shards (one per core); default = available cores.
    pub shards: usize,
    /// `DigestAuthenticationProvider.superDigest` ("super:<base64 sha1>").
    pub super_digest: Option<String>,
    /// `znode.container.checkIntervalMs` (ZooKeeper default 60000).
    pub container_check_interval_ms: u64,
    /// Where the file came from (None = embedded default).
    pub source: Option<PathBuf>,
}

impl Default for Config {
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
            four_letter_whitelist: FourLetterWhitelist::Only(vec!["srvr".into()]),
            snap_count: 100_000,
            pre_alloc_size_bytes: 64 * 1024 * 1024,
            force_sync: true,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            servers: Vec::new(),
            my_id: None,
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            super_digest: None,
            container_check_interval_ms: 60_000,
            source: None,
        }
    }
}
