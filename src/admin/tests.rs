use super::*;
use crate::config::FourLetterWhitelist;
use std::path::PathBuf;

fn config() -> Config {
    Config {
        data_dir: PathBuf::from("/var/zk/data"),
        data_log_dir: PathBuf::from("/var/zk/log"),
        ..Config::default()
    }
}

fn snapshot() -> ServerSnapshot {
    ServerSnapshot {
        version: "3.8.4-zkrs-test, built on unknown".to_string(),
        last_processed_zxid: 0x1_0000_002a,
        node_count: 7,
        outstanding_requests: 1,
        packets_received: 40,
        packets_sent: 39,
        latency_count: 3,
        latency_total_ms: 10,
        latency_min_ms: 1,
        latency_max_ms: 6,
        connection_count: 2,
        connections: vec![
            ConnectionInfo {
                remote_address: Some("127.0.0.1:50000".parse().unwrap()),
                packets_received: 12,
                packets_sent: 11,
                session_id: 0x1000a2b3c4d0000,
                last_operation: "GETD".to_string(),
                established_ms: 1_700_000_000_000,
                session_timeout_ms: 30000,
                last_cxid: 0x10,
                last_zxid: 0x1_0000_0029,
                last_response_time_ms: 1_700_000_000_500,
                last_latency_ms: 2,
                min_latency_ms: 0,
                avg_latency_ms: 1,
                max_latency_ms: 5,
                expire_at_ms: 1_700_000_010_000,
                ..ConnectionInfo::default()
            },
            ConnectionInfo {
                remote_address: Some("[::1]:50001".parse().unwrap()),
                interest_ops: 0,
                packets_received: 1,
                expire_at_ms: 1_700_000_010_000,
                ..ConnectionInfo::default()
            },
        ],
        ..ServerSnapshot::default()
    }
}

#[test]
fn parse_four_letter_matches_codes_only() {
    assert_eq!(parse_four_letter(b"ruok"), Some("ruok"));
    assert_eq!(parse_four_letter(b"mntrXYZ"), Some("mntr"));
    assert_eq!(parse_four_letter(b"hash"), Some("hash"));
    assert_eq!(
        parse_four_letter(&[0xff, 0xf4, 0xff, 0xfd]),
        Some(TELNET_CLOSE)
    );
    assert_eq!(parse_four_letter(b"RUOK"), None);
    assert_eq!(parse_four_letter(b"ruo"), None);
    assert_eq!(parse_four_letter(b""), None);
    // A real frame: length 44, big-endian.
    assert_eq!(parse_four_letter(&[0, 0, 0, 44]), None);
    for word in crate::config::KNOWN_FOUR_LETTER_WORDS {
        assert_eq!(parse_four_letter(word.as_bytes()), Some(*word));
    }
}

#[test]
fn whitelist_refusal_text() {
    let config = Config {
        four_letter_whitelist: FourLetterWhitelist::Only(vec!["ruok".to_string()]),
        ..config()
    };
    let snap = snapshot();
    assert_eq!(
        render("mntr", &snap, &config),
        "mntr is not executed because it is not in the whitelist.\n"
    );
    assert_eq!(render("ruok", &snap, &config), "imok");
    // srvr always runs.
    assert!(render("srvr", &snap, &config).starts_with("Zookeeper version: "));
    assert!(is_enabled("srvr", &config));
    assert!(!is_enabled("stat", &config));
    assert_eq!(
        render(TELNET_CLOSE, &snap, &config),
        "telnet close is not executed because it is not in the whitelist.\n"
    );
    // Whitelisted, telnet close runs nothing.
    assert_eq!(render(TELNET_CLOSE, &snap, &Config::default()), "");
    assert_eq!(render("nope", &snap, &Config::default()), "");
}

#[test]
fn ruok_isro_gtmk() {
    let snap = snapshot();
    let config = config();
    assert_eq!(render("ruok", &snap, &config), "imok");
    assert_eq!(render("isro", &snap, &config), "rw");
    let read_only = ServerSnapshot {
        read_only: true,
        ..snapshot()
    };
    assert_eq!(render("isro", &read_only, &config), "ro");
    assert_eq!(render("gtmk", &snap, &config), "306");
    let masked = ServerSnapshot {
        trace_mask: -1,
        ..snapshot()
    };
    assert_eq!(render("stmk", &masked, &config), "-1");
}

#[test]
fn srvr_exact_text() {
    let text = render("srvr", &snapshot(), &config());
    assert_eq!(
        text,
        "Zookeeper version: 3.8.4-zkrs-test, built on unknown\n\
         Latency min/avg/max: 1/3.3333/6\n\
         Received: 40\n\
         Sent: 39\n\
         Connections: 2\n\
         Outstanding: 1\n\
         Zxid: 0x10000002a\n\
         Mode: standalone\n\
         Node count: 7\n"
    );
}

#[test]
fn srvr_fresh_server() {
    let text = render("srvr", &ServerSnapshot::default(), &config());
    assert!(text.starts_with(&format!("Zookeeper version: {}\n", full_version())));
    assert!(text.contains("\nLatency min/avg/max: 0/0.0/0\n"), "{text}");
    assert!(text.contains("\nZxid: 0x0\n"), "{text}");
    assert!(
        text.ends_with("Mode: standalone\nNode count: 0\n"),
        "{text}"
    );
}

#[test]
fn stat_lists_clients_briefly() {
    let text = render("stat", &snapshot(), &config());
    assert_eq!(
        text,
        "Zookeeper version: 3.8.4-zkrs-test, built on unknown\n\
         Clients:\n \
         /127.0.0.1:50000[1](queued=0,recved=12,sent=11)\n \
         /[::1]:50001[0](queued=0,recved=1,sent=0)\n\
         \n\
         Latency min/avg/max: 1/3.3333/6\n\
         Received: 40\n\
         Sent: 39\n\
         Connections: 2\n\
         Outstanding: 1\n\
         Zxid: 0x10000002a\n\
         Mode: standalone\n\
         Node count: 7\n"
    );
    let read_only = ServerSnapshot {
        read_only: true,
        ..snapshot()
    };
    let text = render("stat", &read_only, &config());
    assert!(text.contains("\nREAD-ONLY mode; serving only read-only clients\nClients:\n"));
}

#[test]
fn cons_full_connection_info() {
    let text = render("cons", &snapshot(), &config());
    assert_eq!(
        text,
        " /127.0.0.1:50000[1](queued=0,recved=12,sent=11,sid=0x1000a2b3c4d0000,lop=GETD,\
         est=1700000000000,to=30000,lcxid=0x10,lzxid=0x100000029,lresp=1700000000500,\
         llat=2,minlat=0,avglat=1,maxlat=5)\n \
         /[::1]:50001[0](queued=0,recved=1,sent=0)\n\
         \n"
    );
    // A session without a cxid yet, and an unknown peer.
    let snap = ServerSnapshot {
        connections: vec![ConnectionInfo {
            session_id: -1,
            ..ConnectionInfo::default()
        }],
        ..snapshot()
    };
    assert_eq!(
        render("cons", &snap, &config()),
        " null[1](queued=0,recved=0,sent=0,sid=0xffffffffffffffff,lop=NA,est=0,to=0,\
         lzxid=0xffffffffffffffff,lresp=0,llat=0,minlat=0,avglat=0,maxlat=0)\n\n"
    );
    let empty = ServerSnapshot::default();
    assert_eq!(render("cons", &empty, &config()), "\n");
}

#[test]
fn resets_report() {
    assert_eq!(
        render("crst", &snapshot(), &config()),
        "Connection stats reset.\n"
    );
    assert_eq!(
        render("srst", &snapshot(), &config()),
        "Server stats reset.\n"
    );
}

#[test]
fn not_serving() {
    let snap = ServerSnapshot {
        serving: false,
        ..snapshot()
    };
    let config = config();
    for cmd in [
        "srvr", "stat", "cons", "crst", "srst", "conf", "mntr", "dump", "wchs", "wchc", "wchp",
        "dirs",
    ] {
        assert_eq!(
            render(cmd, &snap, &config),
            format!("{NOT_SERVING}\n"),
            "{cmd}"
        );
    }
    assert_eq!(render("isro", &snap, &config), "null");
    assert_eq!(render("hash", &snap, &config), NOT_SERVING);
    // These do not ask.
    assert_eq!(render("ruok", &snap, &config), "imok");
    assert!(render("envi", &snap, &config).starts_with("Environment:\n"));
    assert_eq!(render("gtmk", &snap, &config), "306");
}

#[test]
fn conf_text() {
    let snap = ServerSnapshot {
        data_dir_size_bytes: 1234,
        log_dir_size_bytes: 5678,
        ..snapshot()
    };
    assert_eq!(
        render("conf", &snap, &config()),
        "clientPort=2181\n\
         secureClientPort=-1\n\
         dataDir=/var/zk/data\n\
         dataDirSize=1234\n\
         dataLogDir=/var/zk/log\n\
         dataLogSize=5678\n\
         tickTime=2000\n\
         maxClientCnxns=60\n\
         minSessionTimeout=4000\n\
         maxSessionTimeout=40000\n\
         clientPortListenBacklog=-1\n\
         serverId=0\n"
    );
    // The bound port wins; a relative dataDir prints absolute.
    let snap = ServerSnapshot {
        client_port: Some(40000),
        ..snapshot()
    };
    let config = Config {
        data_dir: PathBuf::from("rel"),
        ..config()
    };
    let text = render("conf", &snap, &config);
    assert!(text.starts_with("clientPort=40000\n"), "{text}");
    let cwd = std::env::current_dir().unwrap();
    assert!(
        text.contains(&format!("\ndataDir={}\n", cwd.join("rel").display())),
        "{text}"
    );
}

#[test]
fn mntr_lines() {
    let snap = ServerSnapshot {
        uptime_ms: 5000,
        watch_count: 3,
        ephemerals_count: 2,
        approximate_data_size: 99,
        session_count: 4,
        open_file_descriptor_count: 20,
        max_file_descriptor_count: 1024,
        extra_metrics: vec![("fsync_count".to_string(), "8".to_string())],
        ..snapshot()
    };
    let text = render("mntr", &snap, &config());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "zk_version\t3.8.4-zkrs-test, built on unknown");
    assert_eq!(lines[1], "zk_server_state\tstandalone");
    for expected in [
        "zk_avg_latency\t3.3333",
        "zk_max_latency\t6",
        "zk_min_latency\t1",
        "zk_packets_received\t40",
        "zk_packets_sent\t39",
        "zk_num_alive_connections\t2",
        "zk_outstanding_requests\t1",
        "zk_uptime\t5000",
        "zk_znode_count\t7",
        "zk_watch_count\t3",
        "zk_ephemerals_count\t2",
        "zk_approximate_data_size\t99",
        "zk_global_sessions\t4",
        "zk_local_sessions\t0",
        "zk_open_file_descriptor_count\t20",
        "zk_max_file_descriptor_count\t1024",
        "zk_connection_drop_probability\t0.0",
        "zk_last_client_response_size\t-1",
        "zk_max_client_response_size\t-1",
        "zk_min_client_response_size\t-1",
        "zk_auth_failed_count\t0",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in {text}");
    }
    assert_eq!(lines.last(), Some(&"zk_fsync_count\t8"));
    // Every line is zk_<key>\t<value>, and keys are unique.
    let mut keys: Vec<&str> = lines
        .iter()
        .map(|l| {
            let (key, value) = l.split_once('\t').expect("tab-separated");
            assert!(key.starts_with("zk_") && !value.is_empty(), "{l}");
            key
        })
        .collect();
    let count = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), count);
    assert!(text.ends_with('\n'));
}

#[test]
fn watches() {
    let snap = ServerSnapshot {
        watch_summary: WatchSummary {
            connections: 2,
            paths: 3,
            total: 4,
        },
        watches_by_path: vec![
            ("/a".to_string(), vec![0x10, 0x11]),
            ("/b".to_string(), vec![0x11]),
        ],
        watches_by_session: vec![
            (0x10, vec!["/a".to_string()]),
            (0x11, vec!["/a".to_string(), "/b".to_string()]),
        ],
        ..snapshot()
    };
    let config = config();
    assert_eq!(
        render("wchs", &snap, &config),
        "2 connections watching 3 paths\nTotal watches:4\n"
    );
    assert_eq!(
        render("wchp", &snap, &config),
        "/a\n\t0x10\n\t0x11\n/b\n\t0x11\n\n"
    );
    assert_eq!(
        render("wchc", &snap, &config),
        "0x10\n\t/a\n0x11\n\t/a\n\t/b\n\n"
    );
    let empty = ServerSnapshot::default();
    assert_eq!(
        render("wchs", &empty, &config),
        "0 connections watching 0 paths\nTotal watches:0\n"
    );
    assert_eq!(render("wchp", &empty, &config), "\n");
    assert_eq!(render("wchc", &empty, &config), "\n");
}

#[test]
fn dirs_text() {
    let snap = ServerSnapshot {
        data_dir_size_bytes: 10,
        log_dir_size_bytes: 20,
        ..snapshot()
    };
    assert_eq!(
        render("dirs", &snap, &config()),
        "datadir_size: 10\nlogdir_size: 20\n"
    );
}

#[test]
fn hash_text() {
    let snap = ServerSnapshot {
        digest_log: vec![(0x100000001, 12345), (0x100000002, -7)],
        ..snapshot()
    };
    assert_eq!(
        render("hash", &snap, &config()),
        "100000001: 12345\n100000002: -7\n"
    );
    assert_eq!(render("hash", &ServerSnapshot::default(), &config()), "");
}

#[test]
fn dump_text() {
    let snap = ServerSnapshot {
        sessions: vec![
            SessionInfo {
                session_id: 0x20,
                timeout_ms: 4000,
                expire_at_ms: 6000,
            },
            SessionInfo {
                session_id: 0x10,
                timeout_ms: 4000,
                expire_at_ms: 2000,
            },
            SessionInfo {
                session_id: 0x30,
                timeout_ms: 4000,
                expire_at_ms: 6000,
            },
        ],
        ephemerals_by_session: vec![(0x10, vec!["/e1".to_string(), "/e2".to_string()])],
        connections: vec![ConnectionInfo {
            remote_address: Some("10.0.0.1:1234".parse().unwrap()),
            expire_at_ms: 4000,
            ..ConnectionInfo::default()
        }],
        ..snapshot()
    };
    assert_eq!(
        render("dump", &snap, &config()),
        "SessionTracker dump:\n\
         Session Sets (2)/(3):\n\
         1 expire at Thu Jan 01 00:00:02 UTC 1970:\n\
         \t0x10\n\
         2 expire at Thu Jan 01 00:00:06 UTC 1970:\n\
         \t0x20\n\
         \t0x30\n\
         ephemeral nodes dump:\n\
         Sessions with Ephemerals (1):\n\
         0x10:\n\
         \t/e1\n\
         \t/e2\n\
         Connections dump:\n\
         Connections Sets (1)/(1):\n\
         1 expire at Thu Jan 01 00:00:04 UTC 1970:\n\
         \t /10.0.0.1:1234[1](queued=0,recved=0,sent=0)\n"
    );
    assert_eq!(
        render("dump", &ServerSnapshot::default(), &config()),
        "SessionTracker dump:\nSession Sets (0)/(0):\nephemeral nodes dump:\n\
         Sessions with Ephemerals (0):\nConnections dump:\nConnections Sets (0)/(0):\n"
    );
}

#[test]
fn envi_text() {
    let text = render("envi", &snapshot(), &config());
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Environment:"));
    assert_eq!(
        lines.next(),
        Some("zookeeper.version=3.8.4-zkrs-test, built on unknown")
    );
    let keys: Vec<&str> = lines
        .map(|l| l.split_once('=').expect("key=value").0)
        .collect();
    assert!(keys.contains(&"host.name") && keys.contains(&"user.dir"));
    assert!(text.ends_with('\n'));
}

#[test]
fn versions() {
    assert!(VERSION_REVISION.starts_with(ZOOKEEPER_VERSION));
    assert!(VERSION_REVISION.ends_with(env!("CARGO_PKG_VERSION")));
    assert_eq!(
        full_version(),
        format!("{VERSION_REVISION}, built on {BUILD_DATE}")
    );
    assert!(version_line().starts_with("Apache ZooKeeper, version 3.8.4-zkrs-"));
}

#[test]
fn last_operations() {
    assert_eq!(last_operation_name(4), "GETD");
    assert_eq!(last_operation_name(12), "GETC");
    assert_eq!(last_operation_name(19), "CREA");
    assert_eq!(last_operation_name(-11), "CLOS");
    assert_eq!(last_operation_name(11), "PING");
    assert_eq!(last_operation_name(100), "NA");
}

#[test]
fn latency_average_rounds_half_up_to_four_places() {
    let snap = ServerSnapshot {
        latency_count: 8,
        latency_total_ms: 1,
        ..ServerSnapshot::default()
    };
    // 0.125 -> 0.125; 2/3 -> 0.6667.
    assert_eq!(java_double(snap.latency_avg_ms()), "0.125");
    let snap = ServerSnapshot {
        latency_count: 3,
        latency_total_ms: 2,
        ..ServerSnapshot::default()
    };
    assert_eq!(java_double(snap.latency_avg_ms()), "0.6667");
}
