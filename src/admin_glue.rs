//! Four-letter words on the client port: gathers the server's state from every shard into an
//! [`admin::ServerSnapshot`] and renders it with the admin module.
//!
//! A shard that receives a four-letter word asks every shard (itself included) through a
//! small crossbeam inbox per shard; a byte on a socket pair wakes the shard's inbox task,
//! which otherwise sleeps (an idle server polls nothing). This keeps the request path free
//! of locks: only the admin path waits, for at most `GATHER_TIMEOUT`.

use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use futures_lite::AsyncReadExt;

use crate::admin::{self, ConnectionInfo, ServerSnapshot, SessionInfo, WatchSummary};
use crate::metrics::HistogramSnapshot;
use crate::net::shard::Shard;
use crate::server::SharedStats;

/// The server's trace mask (ZooKeeper's `ZooTrace` text trace level: one per process),
/// set by `stmk`, printed by `gtmk`.
static TRACE_MASK: AtomicI64 = AtomicI64::new(admin::DEFAULT_TRACE_MASK);

/// How long `stmk` waits for the 8 bytes of its mask after the word.
pub const STMK_MASK_WAIT: Duration = Duration::from_secs(2);

/// The mask that follows `stmk` on the wire: the first 8 bytes of `rest`, a big-endian long
/// (ZooKeeper reads it with `ByteBuffer.getLong`). None when fewer than 8 came.
pub fn stmk_mask(rest: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

/// Sets the trace mask (`stmk`).
pub fn set_trace_mask(mask: i64) {
    TRACE_MASK.store(mask, AtomicOrdering::Relaxed);
}

pub fn trace_mask() -> i64 {
    TRACE_MASK.load(AtomicOrdering::Relaxed)
}

const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

pub enum AdminQuery {
    Report(Sender<ShardReport>),
    /// A report without the per-connection and per-watch lists (for `/metrics` and
    /// `monitor`, whose cost must not grow with the number of watches).
    Metrics(Sender<ShardReport>),
    ResetConnectionStats,
    ResetServerStats,
}

/// What one shard contributes to a snapshot.
#[derive(Default)]
pub struct ShardReport {
    /// The reporting shard's index.
    pub shard: usize,
    /// The zxid of the version the shard has applied.
    pub applied_zxid: i64,
    /// Milliseconds since the shard applied a commit batch (None: none yet).
    pub applied_ms_ago: Option<u64>,
    /// Connections with an established session.
    pub session_connections: u64,
    /// Output queued on the shard's connections and not yet written to their sockets.
    pub unsent_bytes: u64,
    /// Connections with a read waiting for the shard to apply a released zxid.
    pub lagging_connections: u64,
    pub connections: Vec<ConnectionInfo>,
    /// (path, session ids) of data watches.
    pub watches_by_path: Vec<(String, Vec<i64>)>,
    pub watch_count: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub outstanding: u64,
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    pub latency_total_ms: u64,
    pub latency_count: u64,
    /// Connections open on the shard (also when `connections` is left empty).
    pub connection_count: u64,
    /// The version the shard serves reads from.
    pub tree: Option<std::sync::Arc<crate::tree::DataTree>>,
    /// Whether the shard serves sessions.
    pub serving: bool,
    pub read_latency: HistogramSnapshot,
    pub update_latency: HistogramSnapshot,
    pub auth_failed: u64,
}

pub use crate::admin::parse_four_letter;

/// Creates the inbox of a shard; the sender goes into the shared registry.
pub fn new_inbox() -> std::io::Result<(AdminSender, AdminReceiver)> {
    let (tx, rx) = crossbeam_channel::bounded(64);
    let (wake_tx, wake_rx) = std::os::unix::net::UnixStream::pair()?;
    // A sender (a shard thread among them) never blocks: a full socket already holds a
    // wake-up the inbox task has not read.
    wake_tx.set_nonblocking(true)?;
    Ok((
        AdminSender {
            tx,
            wake: Arc::new(wake_tx),
        },
        AdminReceiver { rx, wake: wake_rx },
    ))
}

/// A shard's admin inbox as its askers hold it (any thread).
#[derive(Clone)]
pub struct AdminSender {
    tx: Sender<AdminQuery>,
    wake: Arc<std::os::unix::net::UnixStream>,
}

impl AdminSender {
    /// Queues `query` and wakes the shard's inbox task (after queueing: a wake-up is never
    /// lost, at worst one finds the inbox already drained).
    pub fn try_send(&self, query: AdminQuery) -> Result<(), TrySendError<AdminQuery>> {
        self.tx.try_send(query)?;
        self.wake();
        Ok(())
    }

    /// As `try_send`, waiting for room until `deadline` (askers off the executors only).
    pub fn send_deadline(
        &self,
        query: AdminQuery,
        deadline: std::time::Instant,
    ) -> Result<(), SendTimeoutError<AdminQuery>> {
        self.tx.send_deadline(query, deadline)?;
        self.wake();
        Ok(())
    }

    /// As `send_deadline`, waiting at most `timeout`.
    pub fn send_timeout(
        &self,
        query: AdminQuery,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<AdminQuery>> {
        self.tx.send_timeout(query, timeout)?;
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        let _ = (&*self.wake).write(&[1]);
    }
}

/// The shard's end of its admin inbox.
pub struct AdminReceiver {
    rx: Receiver<AdminQuery>,
    wake: std::os::unix::net::UnixStream,
}

fn unix_ms(at: std::time::Instant) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    now.saturating_sub(at.elapsed().as_millis() as u64)
}

fn report(shard: &Shard, brief: bool) -> ShardReport {
    let conns = shard.conns.borrow();
    let mut out = ShardReport {
        shard: shard.index,
        connection_count: conns.len() as u64,
        tree: Some(shard.tree()),
        serving: shard.is_serving(),
        read_latency: shard.read_latency_hist.snapshot(),
        update_latency: shard.update_latency_hist.snapshot(),
        auth_failed: shard.auth_failed.get(),
        applied_zxid: shard.last_zxid(),
        applied_ms_ago: shard
            .applied_at
            .get()
            .map(|at| at.elapsed().as_millis() as u64),
        lagging_connections: shard.lagging_connections() as u64,
        ..ShardReport::default()
    };
    for conn in conns.values() {
        if conn.session_id.get() != 0 {
            out.session_connections += 1;
        }
        out.unsent_bytes += conn.unsent_bytes() as u64;
        let s = &conn.stats;
        let count = s.latency.count.get();
        out.packets_received += s.received.get();
        out.packets_sent += s.sent.get();
        let queued = conn.queued() as u64;
        out.outstanding += queued;
        if brief {
            continue;
        }
        out.connections.push(ConnectionInfo {
            remote_address: Some(conn.peer),
            interest_ops: 1,
            outstanding_requests: queued,
            packets_received: s.received.get(),
            packets_sent: s.sent.get(),
            session_id: conn.session_id.get(),
            last_operation: s.last_op.get().to_string(),
            established_ms: unix_ms(conn.established),
            session_timeout_ms: conn.timeout_ms.get().max(0) as u32,
            last_cxid: if count == 0 {
                -1
            } else {
                s.last_xid.get() as i64
            },
            last_zxid: if count == 0 { -1 } else { s.last_zxid.get() },
            last_response_time_ms: 0,
            last_latency_ms: 0,
            min_latency_ms: s.latency.min_ms.get(),
            avg_latency_ms: s.latency.total_ms.get().checked_div(count).unwrap_or(0),
            max_latency_ms: s.latency.max_ms.get(),
            expire_at_ms: 0,
        });
    }
    // Server-wide, as ZooKeeper counts them: closed connections and crst keep their part.
    (out.packets_received, out.packets_sent) = shard
        .packet_totals
        .totals(out.packets_received, out.packets_sent);
    out.latency_min_ms = shard.latency.min_ms.get();
    out.latency_max_ms = shard.latency.max_ms.get();
    out.latency_total_ms = shard.latency.total_ms.get();
    out.latency_count = shard.latency.count.get();
    let watches = shard.watches.borrow();
    out.watch_count = watches.len() as u64;
    if brief {
        return out;
    }
    for (path, conn_ids) in watches.by_path() {
        let sessions = conn_ids
            .iter()
            .filter_map(|id| conns.get(id).map(|c| c.session_id.get()))
            .collect();
        out.watches_by_path.push((path, sessions));
    }
    out
}

fn reset_connection_stats(shard: &Shard) {
    for conn in shard.conns.borrow().values() {
        // The server's totals keep what the connection counted.
        shard
            .packet_totals
            .fold(conn.stats.received.get(), conn.stats.sent.get());
        conn.stats.reset();
    }
}

/// `srst`: latencies, and the server's packet counts (ZooKeeper's `ServerStats.reset`).
fn reset_server_stats(shard: &Shard) {
    shard.latency.reset();
    let (mut received, mut sent) = (0, 0);
    for conn in shard.conns.borrow().values() {
        received += conn.stats.received.get();
        sent += conn.stats.sent.get();
    }
    shard.packet_totals.reset(received, sent);
}

/// Drains the shard's admin inbox whenever an asker wakes it.
pub fn spawn_admin_inbox(shard: Rc<Shard>, inbox: AdminReceiver) {
    let AdminReceiver { rx: inbox, wake } = inbox;
    // SAFETY: the descriptor comes from a UnixStream whose ownership `into_raw_fd` gives up;
    // the glommio stream becomes its only owner.
    let mut wake = unsafe { glommio::net::UnixStream::from_raw_fd(wake.into_raw_fd()) };
    glommio::spawn_local(async move {
        let mut bytes = [0u8; 64];
        loop {
            match wake.read(&mut bytes).await {
                Ok(n) if n > 0 => {}
                other => {
                    log::error!(
                        "shard {}: admin inbox wake-up socket failed ({other:?}); four-letter \
                         words no longer reach this shard",
                        shard.index
                    );
                    return;
                }
            }
            while let Ok(query) = inbox.try_recv() {
                match query {
                    AdminQuery::Report(reply) => {
                        let _ = reply.send(report(&shard, false));
                    }
                    AdminQuery::Metrics(reply) => {
                        let _ = reply.send(report(&shard, true));
                    }
                    AdminQuery::ResetConnectionStats => reset_connection_stats(&shard),
                    AdminQuery::ResetServerStats => reset_server_stats(&shard),
                }
            }
        }
    })
    .detach();
}

async fn gather(shard: &Shard) -> Vec<ShardReport> {
    let inboxes = shard.stats.admin_inboxes();
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut expected = 0;
    for (index, inbox) in inboxes.iter().enumerate() {
        if index == shard.index {
            continue;
        }
        if inbox.try_send(AdminQuery::Report(tx.clone())).is_ok() {
            expected += 1;
        }
    }
    let mut reports = vec![report(shard, false)];
    let deadline = std::time::Instant::now() + GATHER_TIMEOUT;
    while reports.len() < expected + 1 && std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Ok(r) => reports.push(r),
            Err(_) => glommio::timer::sleep(Duration::from_millis(2)).await,
        }
    }
    reports
}

/// Runs a four-letter word and returns the text to write back before closing.
pub async fn four_letter(shard: &Rc<Shard>, word: &'static str) -> String {
    let config = &shard.config;
    let enabled = admin::is_enabled(word, config);
    if enabled {
        match word {
            "crst" => {
                for inbox in shard.stats.admin_inboxes() {
                    let _ = inbox.try_send(AdminQuery::ResetConnectionStats);
                }
            }
            "srst" => {
                for inbox in shard.stats.admin_inboxes() {
                    let _ = inbox.try_send(AdminQuery::ResetServerStats);
                }
            }
            _ => {}
        }
    }
    let mut snap = ServerSnapshot {
        serving: shard.is_serving(),
        server_state: shard.stats.mode().name().to_string(),
        trace_mask: trace_mask(),
        ..ServerSnapshot::default()
    };
    let config = shard.config.clone();
    if enabled && !matches!(word, "ruok" | "crst" | "srst" | "isro" | "gtmk" | "stmk") {
        // What only this executor can read (its connections, the other shards' reports)
        // is gathered here; the rest (merging, the ephemerals scan, the file system, the
        // text) is done off the executor, so that a slow disk, a huge dataDir or a long
        // dump cannot stall this shard's clients.
        let mut parts = gather_parts(shard).await;
        quorum_metrics(&shard.stats, &mut parts.quorum_metrics);
        return off_executor(move || {
            build_snapshot(parts, word, &mut snap);
            admin::render(word, &snap, &config)
        })
        .await;
    }
    // Nothing to gather or read (ruok, isro, gtmk, stmk, crst, srst, a refusal).
    admin::render(word, &snap, &config)
}

/// Runs blocking work (file-system walks, /proc reads, large renders) on the executor's
/// blocking thread (glommio's `spawn_blocking`) and awaits its result: the executor goes on
/// serving its other tasks meanwhile.
pub async fn off_executor<F, R>(work: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(work).await
}

/// The digest counter and `hash` list, and an ensemble member's mntr lines (ZooKeeper's
/// MonitorCommand): the detailed peer state, and on the leader its learners.
pub(crate) fn quorum_metrics(stats: &SharedStats, snap: &mut ServerSnapshot) {
    use crate::server::Mode;
    // A counter ZooKeeper always reports (0 where digests are never compared).
    let mismatches = stats
        .digest_mismatches
        .load(std::sync::atomic::Ordering::Relaxed);
    snap.extra_metrics
        .push(("digest_mismatches_count".into(), mismatches.to_string()));
    snap.digest_log = stats.digest_log();
    let mode = stats.mode();
    let peer_state = match mode {
        Mode::Standalone => return,
        Mode::Looking => "looking",
        Mode::Leader => "leading - broadcast",
        Mode::Follower => "following - broadcast",
        Mode::Observer => "observing - broadcast",
    };
    snap.extra_metrics
        .push(("peer_state".into(), peer_state.to_string()));
    if mode == Mode::Leader {
        let q = stats.quorum.lock().map(|g| *g).unwrap_or_default();
        for (key, value) in [
            ("learners", q.learners),
            // The 3.4 name, which monitoring scripts still read.
            ("followers", q.learners),
            ("synced_followers", q.synced_followers),
            ("synced_non_voting_followers", 0),
            ("synced_observers", q.synced_observers),
            ("pending_syncs", q.pending_syncs),
        ] {
            snap.extra_metrics.push((key.into(), value.to_string()));
        }
    }
}

/// mntr lines per shard (by index) and per stage: how far each shard's applied version is
/// behind what the log task released, and how long ago each stage last moved.
fn shard_metrics(reports: &[ShardReport], out: &mut Vec<(String, String)>) {
    let released = crate::server::SharedStats::released_zxid();
    let (durable_ms_ago, sent_ms_ago) = crate::server::SharedStats::stage_ages_ms();
    let age = |ms: Option<u64>| ms.map_or_else(|| "-1".to_string(), |ms| ms.to_string());
    out.push(("released_zxid".into(), released.to_string()));
    out.push(("last_batch_durable_ms_ago".into(), age(durable_ms_ago)));
    out.push(("last_batch_sent_ms_ago".into(), age(sent_ms_ago)));
    let mut by_index: Vec<&ShardReport> = reports.iter().collect();
    by_index.sort_by_key(|r| r.shard);
    for r in by_index {
        let i = r.shard;
        out.push((
            format!("shard_{i}_applied_zxid"),
            r.applied_zxid.to_string(),
        ));
        out.push((
            format!("shard_{i}_zxid_lag"),
            released.saturating_sub(r.applied_zxid).max(0).to_string(),
        ));
        out.push((
            format!("shard_{i}_last_applied_ms_ago"),
            age(r.applied_ms_ago),
        ));
        out.push((
            format!("shard_{i}_connections"),
            r.session_connections.to_string(),
        ));
        out.push((
            format!("shard_{i}_unsent_bytes"),
            r.unsent_bytes.to_string(),
        ));
        out.push((
            format!("shard_{i}_lagging_connections"),
            r.lagging_connections.to_string(),
        ));
    }
}

/// What a snapshot needs from the shard that answers (gathered on its executor), or from
/// every shard (gathered by the AdminServer's thread, [`parts_blocking`]).
pub(crate) struct SnapshotParts {
    pub(crate) reports: Vec<ShardReport>,
    tree: std::sync::Arc<crate::tree::DataTree>,
    sessions: Vec<(i64, i32)>,
    uptime_ms: u64,
    data_dir: std::path::PathBuf,
    data_log_dir: std::path::PathBuf,
    client_port: u16,
    /// The ensemble's mntr lines, after the shards' (see `quorum_metrics`).
    quorum_metrics: ServerSnapshot,
}

async fn gather_parts(shard: &Rc<Shard>) -> SnapshotParts {
    let reports = gather(shard).await;
    let stats = &shard.stats;
    SnapshotParts {
        reports,
        tree: shard.tree(),
        sessions: stats.sessions.lock().map(|s| s.clone()).unwrap_or_default(),
        uptime_ms: stats.started.elapsed().as_millis() as u64,
        data_dir: shard.config.data_dir.clone(),
        data_log_dir: shard.config.data_log_dir.clone(),
        client_port: shard.config.client_port,
        quorum_metrics: ServerSnapshot::default(),
    }
}

/// Fills `snap` from the gathered parts; blocking (it walks directories), so it runs off the
/// executor. Directory sizes only for the words that print them (`dirs`, `conf`), file
/// descriptors only for `mntr`.
pub(crate) fn build_snapshot(parts: SnapshotParts, word: &str, snap: &mut ServerSnapshot) {
    let SnapshotParts {
        reports,
        tree,
        sessions,
        uptime_ms,
        data_dir,
        data_log_dir,
        client_port,
        quorum_metrics,
    } = parts;
    snap.last_processed_zxid = tree.last_zxid();
    snap.node_count = tree.zk_node_count() as u64;
    snap.approximate_data_size = tree.approximate_data_size();
    let mut by_path = Vec::new();
    shard_metrics(&reports, &mut snap.extra_metrics);
    snap.extra_metrics.extend(quorum_metrics.extra_metrics);
    snap.digest_log = quorum_metrics.digest_log;
    for r in reports {
        if r.latency_count > 0 {
            snap.latency_min_ms = if snap.latency_count == 0 {
                r.latency_min_ms
            } else {
                snap.latency_min_ms.min(r.latency_min_ms)
            };
            snap.latency_max_ms = snap.latency_max_ms.max(r.latency_max_ms);
            snap.latency_total_ms += r.latency_total_ms;
            snap.latency_count += r.latency_count;
        }
        snap.packets_received += r.packets_received;
        snap.packets_sent += r.packets_sent;
        snap.outstanding_requests += r.outstanding;
        snap.watch_count += r.watch_count;
        snap.connection_count += r.connection_count;
        snap.auth_failed_count += r.auth_failed;
        snap.connections.extend(r.connections);
        by_path.extend(r.watches_by_path);
    }
    // Merge per-shard watch lists into ZooKeeper's views: by path and by session.
    by_path.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, Vec<i64>)> = Vec::new();
    for (path, sessions) in by_path {
        match merged.last_mut() {
            Some((last, list)) if *last == path => list.extend(sessions),
            _ => merged.push((path, sessions)),
        }
    }
    let mut by_session: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for (path, sessions) in &merged {
        for s in sessions {
            by_session.entry(*s).or_default().push(path.clone());
        }
    }
    snap.watch_summary = WatchSummary {
        connections: by_session.len() as u64,
        paths: merged.len() as u64,
        total: by_session.values().map(|v| v.len() as u64).sum(),
    };
    snap.watches_by_path = merged;
    snap.watches_by_session = by_session.into_iter().collect();

    snap.session_count = sessions.len() as u64;
    for (id, _) in &sessions {
        let eph = tree.ephemerals_of(*id);
        if !eph.is_empty() {
            snap.ephemerals_count += eph.len() as u64;
            snap.ephemerals_by_session.push((*id, eph));
        }
    }
    snap.sessions = sessions
        .iter()
        .map(|(id, timeout)| SessionInfo {
            session_id: *id,
            timeout_ms: (*timeout).max(0) as u32,
            expire_at_ms: 0,
        })
        .collect();
    snap.uptime_ms = uptime_ms;
    if matches!(word, "mntr" | "monitor" | "metrics") {
        let (open, max) = admin::file_descriptor_counts();
        snap.open_file_descriptor_count = open;
        snap.max_file_descriptor_count = max;
    }
    if matches!(word, "dirs" | "conf" | "server_stats" | "stats") {
        snap.data_dir_size_bytes = admin::dir_size_bytes(&data_dir);
        snap.log_dir_size_bytes = admin::dir_size_bytes(&data_log_dir);
    }
    snap.client_port = Some(client_port);
}

/// Asks every shard for its report from a thread outside the executors (the AdminServer's
/// and `/metrics`' threads), waiting at most `GATHER_TIMEOUT`. `brief`: without the
/// per-connection and per-watch lists. A shard that does not answer in time is left out.
pub fn gather_blocking(stats: &SharedStats, brief: bool) -> Vec<ShardReport> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut expected = 0;
    let deadline = std::time::Instant::now() + GATHER_TIMEOUT;
    for inbox in stats.admin_inboxes() {
        let query = if brief {
            AdminQuery::Metrics(tx.clone())
        } else {
            AdminQuery::Report(tx.clone())
        };
        // A full inbox (many admin requests at once) is waited for: this is no executor.
        if inbox.send_deadline(query, deadline).is_ok() {
            expected += 1;
        }
    }
    drop(tx);
    let mut reports = Vec::with_capacity(expected);
    while reports.len() < expected {
        match rx.recv_deadline(deadline) {
            Ok(r) => reports.push(r),
            Err(_) => break,
        }
    }
    reports
}

/// Sends `query` (a reset) to every shard, from a thread outside the executors (it waits
/// up to `GATHER_TIMEOUT` for room in a full inbox).
pub fn broadcast(stats: &SharedStats, query: impl Fn() -> AdminQuery) {
    for inbox in stats.admin_inboxes() {
        if inbox.send_timeout(query(), GATHER_TIMEOUT).is_err() {
            log::warn!("a shard did not take an admin reset within {GATHER_TIMEOUT:?}");
        }
    }
}

/// The parts of a snapshot, gathered from every shard by a thread outside the executors.
/// The tree is the newest version any shard has applied.
pub(crate) fn parts_blocking(
    stats: &SharedStats,
    config: &crate::config::Config,
    brief: bool,
) -> SnapshotParts {
    let reports = gather_blocking(stats, brief);
    let tree = reports
        .iter()
        .filter_map(|r| r.tree.clone())
        .max_by_key(|t| t.last_zxid())
        .unwrap_or_else(|| std::sync::Arc::new(crate::tree::DataTree::new()));
    let mut quorum = ServerSnapshot::default();
    quorum_metrics(stats, &mut quorum);
    SnapshotParts {
        reports,
        tree,
        sessions: stats.sessions.lock().map(|s| s.clone()).unwrap_or_default(),
        uptime_ms: stats.started.elapsed().as_millis() as u64,
        data_dir: config.data_dir.clone(),
        data_log_dir: config.data_log_dir.clone(),
        client_port: config.client_port,
        quorum_metrics: quorum,
    }
}

#[cfg(test)]
mod tests {
    use super::{off_executor, stmk_mask};
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn blocking_work_runs_off_the_executor_which_keeps_running() {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("executor");
        ex.run(async {
            let ticks = Rc::new(Cell::new(0u32));
            let counter = ticks.clone();
            let ticker = glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                    counter.set(counter.get() + 1);
                }
            })
            .detach();
            let here = std::thread::current().id();
            let (there, sum) = off_executor(|| {
                // A slow disk: the executor's other tasks run meanwhile.
                std::thread::sleep(Duration::from_millis(300));
                (std::thread::current().id(), (1..=10u64).sum::<u64>())
            })
            .await;
            assert_ne!(there, here, "the work ran on the executor's thread");
            assert_eq!(sum, 55);
            assert!(
                ticks.get() > 0,
                "the executor ran nothing else while the work blocked"
            );
            ticker.cancel();
        });
    }

    #[test]
    fn the_mask_is_a_big_endian_long() {
        assert_eq!(stmk_mask(&[0, 0, 0, 0, 0, 0, 1, 50]), Some(306));
        assert_eq!(stmk_mask(&[0xff; 9]), Some(-1));
        assert_eq!(stmk_mask(&[0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(stmk_mask(&[]), None);
    }
}
