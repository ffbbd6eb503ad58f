//! The AdminServer (ZooKeeper's `JettyAdminServer`: `GET <admin.commandURL>/<command>` ->
//! JSON) and the Prometheus `/metrics` endpoint, each on its own std threads (`http.rs`),
//! never on a client shard.
//!
//! Both gather the server's state the way the four-letter words do (`admin_glue`): a
//! query in every shard's admin inbox, answered by the shard's inbox task with a
//! [`ShardReport`](crate::admin_glue::ShardReport) (for `/metrics` and `monitor` a brief
//! one, without the per-connection and per-watch lists), merged here; the shards keep
//! their figures in plain per-shard counters and histograms, so the request path takes no
//! lock. The JSON comes from `admin::commands`, the text format from `admin::prometheus`.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::admin::commands::{self, AdminFacts, SummaryFacts};
use crate::admin::prometheus::{self, Family, Kind};
use crate::admin::ServerSnapshot;
use crate::admin_glue::{self, AdminQuery, SnapshotParts};
use crate::config::Config;
use crate::http::{self, HttpRequest, HttpResponse};
use crate::metrics::HistogramSnapshot;
use crate::server::SharedStats;

/// The Prometheus endpoint's idle timeout (Jetty's default; ZooKeeper has no key for it).
const METRICS_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the AdminServer (unless `admin.enableServer=false`) and the Prometheus endpoint
/// (when `metricsProvider.className` names it). A port that cannot be bound is an error
/// for a standalone server (ZooKeeper's standalone server exits: "Unable to start
/// AdminServer") and a warning for an ensemble member (a QuorumPeer logs it and goes on).
pub fn start(config: &Arc<Config>, stats: &Arc<SharedStats>) -> io::Result<()> {
    let fatal = !config.is_distributed();
    let admin = &config.admin_server;
    if admin.enabled {
        let result = resolve(&admin.address, admin.port).and_then(|addr| {
            let server = Arc::new(AdminServer::new(config.clone(), stats.clone()));
            http::serve(
                "zkrs-admin",
                addr,
                Duration::from_millis(admin.idle_timeout_ms),
                Arc::new(move |request: &HttpRequest| server.handle(request)),
            )
        });
        match result {
            Ok(bound) => log::info!(
                "Started AdminServer on address {}, port {} and command URL {}",
                admin.address,
                bound.port(),
                admin.command_url
            ),
            Err(e) => {
                let message = format!(
                    "Problem starting AdminServer on address {}, port {} and command URL {}: {e} \
                     (set admin.enableServer=false or another admin.serverPort)",
                    admin.address, admin.port, admin.command_url
                );
                if fatal {
                    return Err(io::Error::new(e.kind(), message));
                }
                log::warn!("{message}");
            }
        }
    } else {
        log::info!("AdminServer disabled (admin.enableServer=false)");
    }
    if let Some(prom) = &config.prometheus {
        if prom.export_jvm_info {
            log::info!(
                "metricsProvider.exportJvmInfo=true: zkrs runs no JVM, so there are no jvm_* \
                 metrics to export; the process_* ones are"
            );
        }
        let endpoint = Arc::new(MetricsEndpoint::new(config.clone(), stats.clone()));
        let result = resolve(&prom.host, prom.port).and_then(|addr| {
            http::serve(
                "zkrs-metrics",
                addr,
                METRICS_IDLE_TIMEOUT,
                Arc::new(move |request: &HttpRequest| endpoint.handle(request)),
            )
        });
        match result {
            Ok(bound) => log::info!(
                "Started /metrics HTTP endpoint at host: {}, port: {}",
                prom.host,
                bound.port()
            ),
            Err(e) => {
                let message = format!(
                    "Cannot start /metrics server on {}:{}: {e}",
                    prom.host, prom.port
                );
                if fatal {
                    return Err(io::Error::new(e.kind(), message));
                }
                log::warn!("{message}");
            }
        }
    }
    Ok(())
}

fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot resolve {host}"),
        )
    })
}

fn method_check(request: &HttpRequest) -> Option<HttpResponse> {
    match request.method.as_str() {
        "GET" | "HEAD" => None,
        // Jetty's AdminServer constrains TRACE (403, no body).
        "TRACE" => Some(HttpResponse::new(403, None, Vec::new())),
        other => Some(HttpResponse::error(
            405,
            &format!("HTTP method {other} is not supported by this URL"),
        )),
    }
}

struct AdminServer {
    config: Arc<Config>,
    stats: Arc<SharedStats>,
    /// The configuration file's text as read at start-up (`initial_configuration`).
    initial_configuration: String,
}

impl AdminServer {
    fn new(config: Arc<Config>, stats: Arc<SharedStats>) -> AdminServer {
        let initial_configuration = config
            .source
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        AdminServer {
            config,
            stats,
            initial_configuration,
        }
    }

    fn handle(&self, request: &HttpRequest) -> HttpResponse {
        if request.method == "TRACE" {
            return HttpResponse::new(403, None, Vec::new());
        }
        let url = self.config.admin_server.command_url.as_str();
        let Some(rest) = request.path.strip_prefix(url) else {
            return HttpResponse::error(404, "Not Found");
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return HttpResponse::error(404, "Not Found");
        }
        if let Some(refusal) = method_check(request) {
            return refusal;
        }
        if rest.is_empty() || rest == "/" {
            return HttpResponse::new(200, None, commands::listing(url));
        }
        let json = self.run(&rest[1..], request);
        HttpResponse::new(200, Some("application/json"), json.to_pretty())
    }

    /// `Commands.runCommand(name, ...)`.
    fn run(&self, name: &str, request: &HttpRequest) -> crate::admin::json::Json {
        let Some(spec) = commands::lookup(name) else {
            return commands::unknown(name);
        };
        let primary = spec.primary();
        let full = matches!(
            primary,
            "connections" | "stats" | "watches" | "watches_by_path" | "watch_summary" | "dump"
        );
        let parts = admin_glue::parts_blocking(&self.stats, &self.config, !full);
        let serving = parts.reports.iter().any(|r| r.serving);
        if spec.server_required && !serving {
            return commands::not_serving(name);
        }
        match primary {
            "connection_stat_reset" => {
                admin_glue::broadcast(&self.stats, || AdminQuery::ResetConnectionStats)
            }
            "stat_reset" => admin_glue::broadcast(&self.stats, || AdminQuery::ResetServerStats),
            "set_trace_mask" => {
                if let Some(mask) = request.param("traceMask").and_then(|t| t.parse().ok()) {
                    admin_glue::set_trace_mask(mask);
                }
            }
            _ => {}
        }
        let facts = self.facts(parts, primary, serving);
        let data = commands::render(primary, &facts, &self.config, &|key| {
            request.param(key).map(str::to_string)
        });
        commands::response(primary, None, data)
    }

    fn facts(&self, parts: SnapshotParts, primary: &str, serving: bool) -> AdminFacts {
        let summaries = if primary == "monitor" {
            let (read, update) = merged_latencies(&parts);
            vec![
                SummaryFacts {
                    name: "readlatency",
                    advanced: true,
                    histogram: read,
                },
                SummaryFacts {
                    name: "updatelatency",
                    advanced: true,
                    histogram: update,
                },
                SummaryFacts {
                    name: "fsynctime",
                    advanced: false,
                    histogram: crate::metrics::FSYNC_TIME.snapshot(),
                },
                SummaryFacts {
                    name: "election_time",
                    advanced: false,
                    histogram: crate::metrics::quorum::ELECTION_TIME.snapshot(),
                },
            ]
        } else {
            Vec::new()
        };
        let word = match primary {
            "monitor" => "mntr",
            other => other,
        };
        let snap = snapshot_of(parts, word, &self.stats, serving);
        AdminFacts {
            leader_id: self.stats.leader_id(),
            last_snapshot: if primary == "last_snapshot" {
                last_snapshot(&self.config)
            } else {
                None
            },
            initial_configuration: self.initial_configuration.clone(),
            fsync_threshold_exceeded: crate::metrics::FSYNC_THRESHOLD_EXCEEDED
                .load(std::sync::atomic::Ordering::Relaxed),
            synced_observers: self
                .stats
                .quorum
                .lock()
                .map(|q| q.synced_observers as u64)
                .unwrap_or(0),
            summaries,
            snap,
        }
    }
}

fn snapshot_of(
    parts: SnapshotParts,
    word: &str,
    stats: &SharedStats,
    serving: bool,
) -> ServerSnapshot {
    let mut snap = ServerSnapshot {
        serving,
        server_state: stats.mode().name().to_string(),
        trace_mask: admin_glue::trace_mask(),
        ..ServerSnapshot::default()
    };
    admin_glue::build_snapshot(parts, word, &mut snap);
    snap
}

/// The shards' read and update latency histograms, added up.
fn merged_latencies(parts: &SnapshotParts) -> (HistogramSnapshot, HistogramSnapshot) {
    let mut read = HistogramSnapshot::default();
    let mut update = HistogramSnapshot::default();
    for r in &parts.reports {
        read.merge(&r.read_latency);
        update.merge(&r.update_latency);
    }
    (read, update)
}

/// The newest snapshot file: (zxid, modification time in seconds since the epoch).
fn last_snapshot(config: &Config) -> Option<(i64, i64)> {
    let dir = config
        .data_dir
        .join(crate::server::persistence::DATA_SUBDIR);
    let mut best: Option<(i64, i64)> = None;
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(zxid) =
            crate::wal::parse_name(&name.to_string_lossy(), crate::wal::SNAPSHOT_PREFIX)
        else {
            continue;
        };
        if best.is_some_and(|(z, _)| z >= zxid) {
            continue;
        }
        let seconds = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_secs() as i64);
        best = Some((zxid, seconds));
    }
    best
}

/// Prometheus' Java client keeps a summary's quantiles over a sliding window of 10 minutes
/// (5 buckets of 2 minutes); this keeps up to 5 earlier totals, one per 2 minutes at most,
/// and computes quantiles over what was recorded since the oldest within 10 minutes.
const WINDOW: Duration = Duration::from_secs(600);
const WINDOW_STEP: Duration = Duration::from_secs(120);

/// The summaries' totals: read latency, update latency, fsync time, election time.
type Totals = [HistogramSnapshot; 4];

struct MetricsEndpoint {
    config: Arc<Config>,
    stats: Arc<SharedStats>,
    history: Mutex<VecDeque<(Instant, Totals)>>,
}

impl MetricsEndpoint {
    fn new(config: Arc<Config>, stats: Arc<SharedStats>) -> MetricsEndpoint {
        MetricsEndpoint {
            config,
            stats,
            history: Mutex::new(VecDeque::new()),
        }
    }

    fn handle(&self, request: &HttpRequest) -> HttpResponse {
        if request.path != "/metrics" {
            return HttpResponse::error(404, "Not Found");
        }
        if let Some(refusal) = method_check(request) {
            return refusal;
        }
        HttpResponse::new(
            200,
            Some(prometheus::CONTENT_TYPE),
            prometheus::render(&self.families()),
        )
    }

    /// The window each summary's quantiles are computed over, given the totals now.
    fn windows(&self, now: &Totals) -> Totals {
        let Ok(mut history) = self.history.lock() else {
            return now.clone();
        };
        let at = Instant::now();
        while history
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
        {
            history.pop_front();
        }
        let windows = match history.front() {
            Some((_, old)) => [
                now[0].since(&old[0]),
                now[1].since(&old[1]),
                now[2].since(&old[2]),
                now[3].since(&old[3]),
            ],
            None => now.clone(),
        };
        if history
            .back()
            .is_none_or(|(t, _)| at.duration_since(*t) >= WINDOW_STEP)
        {
            history.push_back((at, now.clone()));
            if history.len() > 5 {
                history.pop_front();
            }
        }
        windows
    }

    fn families(&self) -> Vec<Family> {
        let parts = admin_glue::parts_blocking(&self.stats, &self.config, true);
        let serving = parts.reports.iter().any(|r| r.serving);
        let (read, update) = merged_latencies(&parts);
        let totals: Totals = [
            read,
            update,
            crate::metrics::FSYNC_TIME.snapshot(),
            crate::metrics::quorum::ELECTION_TIME.snapshot(),
        ];
        let windows = self.windows(&totals);
        let snap = snapshot_of(parts, "metrics", &self.stats, serving);
        let gauge = |name: &str, value: f64| Family::single(name, Kind::Gauge, value);
        let mut out = vec![
            gauge("avg_latency", snap.latency_avg_ms()),
            gauge("max_latency", snap.latency_max_ms as f64),
            gauge("min_latency", snap.latency_min_printed_ms() as f64),
            gauge("packets_received", snap.packets_received as f64),
            gauge("packets_sent", snap.packets_sent as f64),
            gauge("num_alive_connections", snap.connection_count as f64),
            gauge("outstanding_requests", snap.outstanding_requests as f64),
            gauge("uptime", snap.uptime_ms as f64),
            gauge("znode_count", snap.node_count as f64),
            gauge("watch_count", snap.watch_count as f64),
            gauge("ephemerals_count", snap.ephemerals_count as f64),
            gauge("approximate_data_size", snap.approximate_data_size as f64),
            gauge("global_sessions", snap.session_count as f64),
            gauge("local_sessions", 0.0),
            gauge(
                "open_file_descriptor_count",
                snap.open_file_descriptor_count as f64,
            ),
            gauge(
                "max_file_descriptor_count",
                snap.max_file_descriptor_count as f64,
            ),
            gauge("connection_drop_probability", 0.0),
            gauge("outstanding_tls_handshake", 0.0),
            gauge("auth_failed_count", snap.auth_failed_count as f64),
            gauge("non_mtls_remote_conn_count", 0.0),
            gauge("non_mtls_local_conn_count", 0.0),
        ];
        // ServerMetrics' ensemble counters are registered on every server (0 standalone);
        // quorum_size only while a quorum member serves (QuorumZooKeeperServer).
        for (name, value) in crate::metrics::quorum::counters() {
            out.push(Family::single(name, Kind::Counter, value as f64));
        }
        if matches!(
            snap.server_state.as_str(),
            "leader" | "follower" | "observer"
        ) {
            let voters = self.config.servers.iter().filter(|s| !s.observer).count();
            out.push(gauge("quorum_size", voters as f64));
        }
        if snap.server_state == "leader" {
            let q = self.stats.quorum.lock().map(|g| *g).unwrap_or_default();
            out.push(gauge("learners", q.learners.into()));
            out.push(gauge("synced_followers", q.synced_followers.into()));
            out.push(gauge("synced_non_voting_followers", 0.0));
            out.push(gauge("synced_observers", q.synced_observers.into()));
            out.push(gauge("pending_syncs", q.pending_syncs.into()));
        }
        let advanced = [0.5, 0.9, 0.99];
        out.push(Family::summary(
            "readlatency",
            &advanced,
            &windows[0],
            &totals[0],
        ));
        out.push(Family::summary(
            "updatelatency",
            &advanced,
            &windows[1],
            &totals[1],
        ));
        out.push(Family::summary(
            "fsynctime",
            &[0.5],
            &windows[2],
            &totals[2],
        ));
        out.push(Family::summary(
            "election_time",
            &[0.5],
            &windows[3],
            &totals[3],
        ));
        if self
            .config
            .prometheus
            .as_ref()
            .is_some_and(|p| p.export_jvm_info)
        {
            out.extend(prometheus::process_families(
                snap.open_file_descriptor_count,
                snap.max_file_descriptor_count,
                self.stats.started.elapsed(),
            ));
        }
        out
    }
}
