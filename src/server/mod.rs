//! Wiring: executors, channels, signals.
//!
//! `run` starts one ordering-core executor (which also runs the log task) and
//! `config.shards` client-shard executors, connects them with bounded cross-core channels
//! (shared_channel), and waits for SIGTERM or SIGINT.

pub mod election;
pub mod ensemble;
pub mod follower;
pub mod leader;
pub mod log_stage;
pub mod messages;
pub mod ordering;
pub mod persistence;
pub mod placement;
pub mod quorum;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use glommio::channels::shared_channel;
use glommio::LocalExecutorBuilder;

use crate::config::Config;
use messages::{ToOrdering, ToShard};

/// Capacity of each cross-core channel (messages; commit batches are Arc'ed).
const CHANNEL_CAPACITY: usize = 4096;

/// The highest zxid the log task has released to the shards (made durable and about to
/// hand to every shard). Process-wide, behind [`SharedStats::released_zxid`]: the log task is
/// started by the ordering core, which does not hand it the `SharedStats`.
/// Invariant: never decreases; stored before the batch reaching it goes to any shard.
static RELEASED_ZXID: AtomicI64 = AtomicI64::new(0);
/// When the log task last made a group durable / finished handing batches to the shards, in
/// microseconds since [`process_epoch`] (0: never).
static LAST_DURABLE_US: AtomicU64 = AtomicU64::new(0);
static LAST_SENT_US: AtomicU64 = AtomicU64::new(0);

/// The instant the stage timestamps and the session clock (`Ordering::now_ms`, the expiry
/// timer's tick boundaries) count from.
pub(crate) fn process_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now_us() -> u64 {
    (process_epoch().elapsed().as_micros() as u64).max(1)
}

/// Milliseconds since a stage timestamp; None when it was never set.
fn ms_since(us: u64) -> Option<u64> {
    (us != 0).then(|| now_us().saturating_sub(us) / 1000)
}

/// State shared by every executor. Only touched on connection open/close, by the
/// four-letter words and with relaxed atomics; never a lock on the request path.
pub struct SharedStats {
    pub started: std::time::Instant,
    pub last_zxid: AtomicI64,
    /// Live sessions (id, timeout), published by the ordering core when they change.
    pub sessions: Mutex<Vec<(i64, i32)>>,
    /// Open connections per client address (maxClientCnxns).
    ip_counts: Mutex<HashMap<IpAddr, u32>>,
    /// Each shard's admin inbox (four-letter words), by shard index.
    admin_inboxes: Mutex<Vec<crate::admin_glue::AdminSender>>,
    /// What this server is now ([`Mode`] as u8).
    mode: AtomicU8,
    /// The leader's view of its learners, for mntr (set by the leader, zero otherwise).
    pub quorum: Mutex<QuorumStats>,
    /// The server id of the leader this server follows or is; -1 while there is none.
    leader_id: AtomicI64,
    /// mntr's `zk_digest_mismatches_count`: txns whose TxnDigest (from the leader) differed
    /// from this server's tree digest after applying them (ZooKeeper's
    /// `DIGEST_MISMATCHES_COUNT`).
    pub digest_mismatches: std::sync::atomic::AtomicU64,
    /// `hash`: (zxid, tree digest) of the last [`DIGEST_LOG_LIMIT`] applied txns whose zxid
    /// is a multiple of [`DIGEST_LOG_INTERVAL`], oldest first (ZooKeeper's digestLog).
    digest_log: Mutex<std::collections::VecDeque<(i64, i64)>>,
}

/// ZooKeeper's `DataTree.DIGEST_LOG_INTERVAL`: `hash` lists the digest of every 128th zxid.
pub const DIGEST_LOG_INTERVAL: i64 = 128;
/// ZooKeeper's `DataTree.DIGEST_LOG_LIMIT`.
pub const DIGEST_LOG_LIMIT: usize = 1024;

/// What `mntr` reports of a leader's learners (ZooKeeper's MonitorCommand names).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QuorumStats {
    /// Connected learners (handshaking or synced).
    pub learners: u32,
    /// Voting followers in the broadcast.
    pub synced_followers: u32,
    pub synced_observers: u32,
    /// SYNC requests of learners waiting for a commit.
    pub pending_syncs: u32,
}

/// What a server is, as `srvr`'s `Mode:` line and `zkServer.sh status` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone = 0,
    /// An ensemble member electing a leader (not serving clients).
    Looking = 1,
    Leader = 2,
    Follower = 3,
    Observer = 4,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Looking => "looking",
            Mode::Leader => "leader",
            Mode::Follower => "follower",
            Mode::Observer => "observer",
        }
    }

    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Looking,
            2 => Mode::Leader,
            3 => Mode::Follower,
            4 => Mode::Observer,
            _ => Mode::Standalone,
        }
    }
}

impl Default for SharedStats {
    fn default() -> SharedStats {
        SharedStats {
            started: std::time::Instant::now(),
            last_zxid: AtomicI64::new(0),
            sessions: Mutex::new(Vec::new()),
            ip_counts: Mutex::new(HashMap::new()),
            admin_inboxes: Mutex::new(Vec::new()),
            mode: AtomicU8::new(Mode::Standalone as u8),
            quorum: Mutex::new(QuorumStats::default()),
            leader_id: AtomicI64::new(-1),
            digest_mismatches: std::sync::atomic::AtomicU64::new(0),
            digest_log: Mutex::new(std::collections::VecDeque::new()),
        }
    }
}

impl SharedStats {
    /// The tree digest after txn `zxid` was applied, for `hash` (kept for every 128th zxid,
    /// as ZooKeeper's `DataTree.logZxidDigest`).
    pub fn note_digest(&self, zxid: i64, digest: i64) {
        if zxid % DIGEST_LOG_INTERVAL != 0 {
            return;
        }
        if let Ok(mut log) = self.digest_log.lock() {
            log.push_back((zxid, digest));
            while log.len() > DIGEST_LOG_LIMIT {
                log.pop_front();
            }
        }
    }

    /// `hash`'s list, oldest first.
    pub fn digest_log(&self) -> Vec<(i64, i64)> {
        self.digest_log
            .lock()
            .map(|log| log.iter().copied().collect())
            .unwrap_or_default()
    }

    /// A TxnDigest that did not match this server's tree (see `digest_mismatches`).
    pub fn count_digest_mismatch(&self) {
        self.digest_mismatches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn set_mode(&self, mode: Mode) {
        if matches!(mode, Mode::Looking | Mode::Standalone) {
            self.set_leader(None);
        }
        self.mode
            .store(mode as u8, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn set_leader(&self, id: Option<u64>) {
        let id = id.and_then(|id| i64::try_from(id).ok()).unwrap_or(-1);
        self.leader_id.store(id, Ordering::Relaxed);
    }

    /// The current leader's server id (None while electing, or standalone).
    pub fn leader_id(&self) -> Option<u64> {
        u64::try_from(self.leader_id.load(Ordering::Relaxed)).ok()
    }

    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The highest zxid released to the shards (see `RELEASED_ZXID`). A shard whose
    /// applied version is below it must not serve a read yet: another shard may already
    /// have answered a write of that zxid.
    pub fn released_zxid() -> i64 {
        RELEASED_ZXID.load(Ordering::Acquire)
    }

    /// Called by the commit releaser with a batch's last zxid, before the batch goes to any
    /// shard.
    pub fn publish_released_zxid(zxid: i64) {
        RELEASED_ZXID.fetch_max(zxid, Ordering::AcqRel);
    }

    /// A term of service ended (the shards close every connection): the next term's first
    /// version may be below what this one released (a leader's epoch start, `epoch << 32`,
    /// is no txn), so the released zxid starts again from that version.
    pub fn reset_released_zxid() {
        RELEASED_ZXID.store(0, Ordering::Release);
    }

    /// The log task made a group of batches durable.
    pub fn mark_durable() {
        LAST_DURABLE_US.store(now_us(), Ordering::Relaxed);
    }

    /// The log task handed every batch of a group to every shard.
    pub fn mark_sent() {
        LAST_SENT_US.store(now_us(), Ordering::Relaxed);
    }

    /// Milliseconds since the last group was durable / handed to the shards (None: never).
    pub fn stage_ages_ms() -> (Option<u64>, Option<u64>) {
        (
            ms_since(LAST_DURABLE_US.load(Ordering::Relaxed)),
            ms_since(LAST_SENT_US.load(Ordering::Relaxed)),
        )
    }

    pub fn admin_inboxes(&self) -> Vec<crate::admin_glue::AdminSender> {
        self.admin_inboxes
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Counts a new connection from `ip`; false when that would exceed `max` (0 = no limit).
    pub fn admit_ip(&self, ip: IpAddr, max: u32) -> bool {
        let Ok(mut counts) = self.ip_counts.lock() else {
            return true;
        };
        let n = counts.entry(ip).or_insert(0);
        if max != 0 && *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    pub fn release_ip(&self, ip: IpAddr) {
        if let Ok(mut counts) = self.ip_counts.lock() {
            if let Some(n) = counts.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

/// Memory each executor registers for io_uring buffers; kept small so that many executors
/// fit under the default 8 MiB memlock limit.
const EXECUTOR_IO_MEMORY: usize = 512 * 1024;

/// Runs the server until it is stopped (SIGTERM/SIGINT). Blocks the calling thread.
pub fn run(config: Config) -> io::Result<()> {
    let config = Arc::new(config);
    let shards = config.shards.max(1);
    let listen = SocketAddr::new(
        config
            .client_port_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        config.client_port,
    );
    // The shards bind with SO_REUSEPORT, which would silently share the port with another
    // server; a bind without it first turns "port in use" into a clear error.
    // A server that just exited may hold the port for a few more milliseconds while its
    // rings are torn down (`zkrs restart`), so "in use" is retried briefly.
    let mut probe = probe_port(listen);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while matches!(&probe, Err(e) if e.kind() == io::ErrorKind::AddrInUse)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        probe = probe_port(listen);
    }
    probe
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind client port {listen}: {e}")))?;

    // TLS: the stores are read now, so that a broken setting refuses to start.
    let tls = crate::tls::TlsServer::new(&config.tls)
        .map_err(|e| io::Error::other(format!("zkrs refuses to start: {e}")))?;
    let secure_listen = config.tls.secure_client_port.map(|port| {
        SocketAddr::new(
            config
                .tls
                .secure_client_port_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port,
        )
    });
    if let Some(addr) = secure_listen {
        probe_port(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind secureClientPort {addr}: {e}"),
            )
        })?;
    }

    let (persistence, recovered) = persistence::Persistence::open(&config)
        .map_err(|e| io::Error::other(format!("zkrs refuses to start: {e}")))?;
    release_freed_memory();

    // An ensemble member opens its election port before anything else runs, so that a
    // port clash is a clear start-up error.
    let election = if config.is_distributed() {
        let me = config.my_id.unwrap_or(0);
        let quorum = ensemble::quorum_config(&config);
        let member = quorum
            .member(me)
            .ok_or_else(|| io::Error::other(format!("no server.{me} line")))?;
        let listen =
            ensemble::resolve(&member.host, member.election_port).map_err(io::Error::other)?;
        Some(election::start(me, quorum.clone(), listen)?)
    } else {
        None
    };

    block_signals();
    let stats = Arc::new(SharedStats::default());
    if election.is_some() {
        stats.set_mode(Mode::Looking);
    }
    let mut admin_receivers = Vec::new();
    {
        let mut inboxes = stats
            .admin_inboxes
            .lock()
            .map_err(|_| io::Error::other("admin registry poisoned"))?;
        for _ in 0..shards {
            let (tx, rx) = crate::admin_glue::new_inbox()?;
            inboxes.push(tx);
            admin_receivers.push(rx);
        }
    }
    // The AdminServer and /metrics run on threads of their own (started after
    // block_signals, so they leave SIGTERM/SIGINT to wait_for_signal).
    crate::admin_http::start(&config, &stats)?;
    let mut to_ordering_rx = Vec::new();
    let mut to_shard_tx = Vec::new();
    let mut shard_ends = Vec::new();
    for _ in 0..shards {
        let (tx, rx) = shared_channel::new_bounded::<ToOrdering>(CHANNEL_CAPACITY);
        to_ordering_rx.push(rx);
        let (stx, srx) = shared_channel::new_bounded::<ToShard>(CHANNEL_CAPACITY);
        to_shard_tx.push(stx);
        shard_ends.push((tx, srx));
    }

    let cpu_plan = placement::plan(
        shards,
        config.cpu_pinning,
        &placement::allowed_cpus(),
        placement::cgroup_quota_cores(),
    );
    log::info!("CPU placement: {}", cpu_plan.summary);
    let mut handles = Vec::new();
    {
        let config = config.clone();
        let stats = stats.clone();
        handles.push(
            LocalExecutorBuilder::new(cpu_plan.ordering_placement())
                .blocking_thread_pool_placement(cpu_plan.ordering_pool_placement())
                .name("zkrs-ordering")
                .io_memory(EXECUTOR_IO_MEMORY)
                .spawn(move || async move {
                    match election {
                        Some(election) => {
                            ensemble::run(
                                config,
                                stats,
                                election,
                                (persistence, recovered),
                                to_ordering_rx,
                                to_shard_tx,
                            )
                            .await
                        }
                        None => {
                            ordering::run(
                                config,
                                stats,
                                recovered,
                                to_ordering_rx,
                                persistence,
                                to_shard_tx,
                            )
                            .await
                        }
                    }
                })
                .map_err(|e| io::Error::other(format!("cannot start the ordering core: {e}")))?,
        );
    }
    for (index, ((tx, srx), admin_inbox)) in shard_ends.into_iter().zip(admin_receivers).enumerate()
    {
        let config = config.clone();
        let stats = stats.clone();
        let tls = tls.clone().map(|server| crate::net::shard::ShardTls {
            server,
            secure_listen,
        });
        let placement = cpu_plan.shard_placement(index);
        handles.push(
            LocalExecutorBuilder::new(placement)
                .name(&format!("zkrs-shard-{index}"))
                .io_memory(EXECUTOR_IO_MEMORY)
                .spawn(move || {
                    crate::net::shard::run(index, config, stats, listen, tls, tx, srx, admin_inbox)
                })
                .map_err(|e| io::Error::other(format!("cannot start shard {index}: {e}")))?,
        );
    }
    log::info!(
        "zkrs {} serving on {listen} with {shards} shard(s)",
        env!("CARGO_PKG_VERSION")
    );
    let signal = wait_for_signal();
    log::info!("received signal {signal}, shutting down");
    Ok(())
}

/// Binds and listens on `addr` with SO_REUSEADDR (so connections in TIME_WAIT from a
/// previous run do not block a restart, as in ZooKeeper) but without SO_REUSEPORT (so a
/// server already listening there is an error), then lets the socket go.
fn probe_port(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1)?;
    Ok(())
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Blocks SIGTERM/SIGINT in this thread and every thread it starts afterwards, so that
/// `wait_for_signal` receives them.
fn block_signals() {
    let set = signal_set();
    // SAFETY: pthread_sigmask with a valid set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_signal() -> i32 {
    let set = signal_set();
    let mut signal: libc::c_int = 0;
    // SAFETY: sigwait with a valid set and out-pointer.
    unsafe {
        libc::sigwait(&set, &mut signal);
    }
    signal
}

/// Recovery reads whole snapshot and log files on this thread and frees them; this thread
/// then only waits for the executors, so mimalloc would keep those pages (hundreds of MiB
/// with a million znodes) for good. Hand them back to the OS once.
fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers; it only purges this thread's free pages.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Turns transparent huge pages off for this process, before the server allocates much.
///
/// mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`); every thread heap then
/// faults in whole 2 MiB pages it mostly leaves empty: an idle server sat at ~31 MiB RSS
/// instead of ~9, and a million znodes took ~30 MiB more. The tree's nodes are small and
/// scattered, so huge pages buy little here. The kernel checks the flag at each fault,
/// so it also covers the arena mimalloc reserved before `main`.
pub fn disable_transparent_huge_pages() {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        log::debug!(
            "PR_SET_THP_DISABLE: {} (huge pages stay as the system sets them)",
            std::io::Error::last_os_error()
        );
    }
}
