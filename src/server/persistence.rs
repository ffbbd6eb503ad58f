//! The persistence stage of the ordering core: start-up recovery, the group-committed txn
//! log, snapshots and autopurge, over [`crate::wal`].
//!
//! Group commit: the log task (`log_stage`) hands everything that arrived while the previous
//! group was being written and synced to [`DmaLog::append_batch`], which writes it with one
//! O_DIRECT write and one fdatasync; only after it returns are the batches' replies sent.
//!
//! Snapshots are taken every `snapCount` txns (randomised per server between snapCount/2
//! and snapCount, as ZooKeeper does) from an immutable tree version, on a thread of their
//! own, so writes never wait for a snapshot.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::tree::{DataTree, Txn, TxnHeader, Znode};
use crate::wal::dma::{DmaLog, DIRECT_IO_ALIGNMENT};
use crate::wal::snapshot::save_snapshot;
use crate::wal::writer::purge_files;
use crate::wal::{LogLayout, RealStorage, SnapshotSink, SnapshotSource, Wal, WalConfig, WalDirs};

/// zkrs's files live in this subdirectory of dataDir / dataLogDir (ZooKeeper uses
/// `version-2`; our formats differ, so they get their own name).
pub const DATA_SUBDIR: &str = "zkrs-1";

/// Segments roll at this size (ZooKeeper rolls at snapshots only; we do both).
const SEGMENT_LEN_MAX_BYTES: u64 = 256 * 1024 * 1024;

pub fn wal_dirs(config: &Config) -> WalDirs {
    WalDirs {
        log_dir: config.data_log_dir.join(DATA_SUBDIR),
        snapshot_dir: config.data_dir.join(DATA_SUBDIR),
    }
}

/// What start-up recovery rebuilt.
pub struct Recovered {
    pub tree: DataTree,
    /// Open sessions: (id, timeout ms).
    pub sessions: Vec<(i64, i32)>,
    /// The last txns replayed from the log (at most [`RECENT_TXNS_MAX`], oldest first,
    /// ending at the tree's last zxid): a new leader syncs learners from them by DIFF, as
    /// ZooKeeper's leader does from the committed log it loads at start-up. Each comes with
    /// the tree digest after it (what its TxnDigest carried when it was proposed).
    pub recent: Vec<RecentTxn>,
    /// The zxid just before `recent` (the snapshot's, or the last txn left out).
    pub recent_base: i64,
}

/// One of [`Recovered::recent`]: a replayed txn and the tree's digest right after it.
pub type RecentTxn = (TxnHeader, Txn, i64);

/// How many of the last replayed txns [`Recovered::recent`] keeps (ZooKeeper's
/// `zookeeper.commitLogCount` default).
pub const RECENT_TXNS_MAX: usize = 500;

/// The txns the log ends with (at most [`RECENT_TXNS_MAX`], oldest first), each with the
/// tree digest after it: what a server that becomes leader syncs learners from by DIFF.
/// Recovery fills it from the log; an ensemble member keeps it up to date as it applies
/// txns and carries it from one term of service to the next, as ZooKeeper keeps its
/// committed log in memory across elections.
///
/// Invariant: zxids strictly increase, and `base` is the zxid just before the first (the
/// last one evicted, or where recovery started).
#[derive(Debug, Default)]
pub struct RecentLog {
    base: i64,
    txns: std::collections::VecDeque<RecentTxn>,
}

impl RecentLog {
    pub fn new(base: i64, txns: Vec<RecentTxn>) -> RecentLog {
        let mut log = RecentLog {
            base,
            txns: std::collections::VecDeque::with_capacity(txns.len()),
        };
        for txn in txns {
            log.push(txn);
        }
        log
    }

    /// Appends the txn applied after every one held (evicting the oldest beyond
    /// [`RECENT_TXNS_MAX`]).
    pub fn push(&mut self, txn: RecentTxn) {
        assert!(
            txn.0.zxid > self.last(),
            "recent txn 0x{:x} after 0x{:x}",
            txn.0.zxid,
            self.last()
        );
        if self.txns.len() == RECENT_TXNS_MAX {
            if let Some((header, _, _)) = self.txns.pop_front() {
                self.base = header.zxid;
            }
        }
        self.txns.push_back(txn);
    }

    /// The zxid just before the first txn held.
    pub fn base(&self) -> i64 {
        self.base
    }

    /// The last zxid held (`base` when empty).
    pub fn last(&self) -> i64 {
        self.txns.back().map_or(self.base, |(h, _, _)| h.zxid)
    }

    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &RecentTxn> {
        self.txns.iter()
    }

    pub fn into_vec(self) -> Vec<RecentTxn> {
        self.txns.into()
    }
}

/// A consistent view for a snapshot: one tree version and the sessions at its zxid.
struct SnapshotView {
    tree: DataTree,
    sessions: Vec<(i64, i32)>,
}

impl SnapshotSource for SnapshotView {
    fn for_each_node(&self, f: &mut dyn FnMut(&str, &Znode)) {
        // A walk visits "/" first and every parent before its children, and builds no
        // path index of the whole tree.
        self.tree.for_each_node(f);
    }

    fn for_each_session(&self, f: &mut dyn FnMut(i64, i32)) {
        for (id, timeout) in &self.sessions {
            f(*id, *timeout);
        }
    }

    fn last_zxid(&self) -> i64 {
        self.tree.last_zxid()
    }
}

#[derive(Default)]
struct Rebuild {
    nodes: Vec<(String, Znode)>,
    sessions: Vec<(i64, i32)>,
    last_zxid: i64,
}

impl SnapshotSink for Rebuild {
    fn insert_node(&mut self, path: &str, node: Znode) {
        self.nodes.push((path.to_string(), node));
    }

    fn insert_session(&mut self, session_id: i64, timeout_ms: i32) {
        self.sessions.push((session_id, timeout_ms));
    }

    fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }
}

/// Everything but the log file itself (which lives on the executor that writes it: see
/// [`Persistence::open_log`]); `Send`, so it can move onto that executor.
pub struct Persistence {
    /// Until [`Persistence::open_log`] takes it.
    layout: Option<LogLayout>,
    dirs: WalDirs,
    snapshot_thread: Option<JoinHandle<()>>,
    retain: NonZeroUsize,
    purge_every: Option<Duration>,
    last_purge: Instant,
    /// A standalone server: its ordering executor runs nothing that must go on while a lone
    /// small log write is in flight (an ensemble member's also runs its peer links).
    standalone: bool,
}

/// A snapshot interval in [snapCount/2, snapCount], different per server and restart.
pub fn randomized_snapshot_interval(snap_count: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let half = (snap_count / 2).max(1);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    half + h.finish() % (snap_count - half + 1).max(1)
}

impl Persistence {
    /// Recovers the state from dataDir / dataLogDir. An Err is a message for the operator:
    /// the server must not start. A dataDir that holds an Apache ZooKeeper `version-2`
    /// directory and no zkrs data yet is imported first (`zkdata::migrate`).
    pub fn open(config: &Config) -> Result<(Persistence, Recovered), String> {
        crate::zkdata::migrate::import_if_needed(config)?;
        let RecoveredState {
            wal,
            fresh,
            tree,
            sessions,
            recent,
            recent_base,
        } = recover_state(config)?;
        crate::zkdata::migrate::check_version2_unchanged(config, tree.last_zxid())?;
        let sessions: Vec<(i64, i32)> = sessions.into_iter().collect();
        let mut persistence = Persistence::without_log(config);
        if fresh {
            // Recovery needs a snapshot to start from before the first txn is logged.
            wal.save_snapshot(&SnapshotView {
                tree: tree.clone(),
                sessions: sessions.clone(),
            })
            .map_err(|e| format!("cannot write the initial snapshot: {e}"))?;
        }
        persistence.layout = Some(wal.into_layout().map_err(|e| e.to_string())?);
        Ok((
            persistence,
            Recovered {
                tree,
                sessions,
                recent,
                recent_base,
            },
        ))
    }

    fn without_log(config: &Config) -> Persistence {
        Persistence {
            layout: None,
            dirs: wal_dirs(config),
            snapshot_thread: None,
            retain: NonZeroUsize::new(config.autopurge_snap_retain_count.max(3) as usize)
                .unwrap_or(NonZeroUsize::MIN),
            purge_every: (config.autopurge_purge_interval_hours > 0)
                .then(|| Duration::from_secs(config.autopurge_purge_interval_hours as u64 * 3600)),
            last_purge: Instant::now(),
            standalone: !config.is_distributed(),
        }
    }

    /// Whether the log task may write a lone small batch on the executor's own thread
    /// ([`DmaLog::set_write_here_max`]).
    pub fn writes_small_batches_here(&self) -> bool {
        self.standalone
    }

    /// SNAP sync: replaces the files with a snapshot of `tree` (and `sessions`) and an
    /// empty log after it ([`replace_with_snapshot`]), and gives back what
    /// [`Persistence::open`] would then recover, without reading the snapshot back (with
    /// a large tree, that read would double the time a learner takes to join).
    pub fn replace_with(
        config: &Config,
        tree: DataTree,
        sessions: Vec<(i64, i32)>,
    ) -> Result<(Persistence, Recovered), String> {
        replace_with_snapshot(config, &tree, sessions.clone())?;
        let mut persistence = Persistence::without_log(config);
        let last_zxid = tree.last_zxid();
        persistence.layout = Some(LogLayout::new(
            persistence.dirs.log_dir.clone(),
            wal_config(config),
            last_zxid,
            0,
        ));
        Ok((
            persistence,
            Recovered {
                tree,
                sessions,
                recent: Vec::new(),
                recent_base: last_zxid,
            },
        ))
    }

    /// The txn log writer, on the executor that calls this (the ordering core's): glommio
    /// direct I/O, one write and one fdatasync per group commit. Called once.
    pub fn open_log(&mut self) -> Option<DmaLog> {
        self.layout.take().map(DmaLog::new)
    }

    /// Takes the log back from the log task that ends (its segment closed), so that the
    /// next term of service appends to the same files without recovering them again.
    pub fn put_back_log(&mut self, layout: LogLayout) {
        debug_assert!(self.layout.is_none(), "the log was put back twice");
        self.layout = Some(layout);
    }

    /// Rolls the log and writes a snapshot of `tree` (with `sessions`) on a thread of its
    /// own. Skipped while the previous snapshot is still being written. Every batch before
    /// the snapshot must be durable already (the caller flushes first).
    pub async fn start_snapshot(
        &mut self,
        log: &mut DmaLog,
        tree: DataTree,
        sessions: Vec<(i64, i32)>,
    ) {
        if let Some(thread) = &self.snapshot_thread {
            if !thread.is_finished() {
                log::warn!("a snapshot is still being written; skipping this one");
                return;
            }
        }
        if let Some(thread) = self.snapshot_thread.take() {
            let _ = thread.join();
        }
        // The new segment starts after the snapshot's zxid, as ZooKeeper rolls its log.
        if let Err(e) = log.roll().await {
            log::error!("cannot roll the txn log: {e}");
            return;
        }
        let view = SnapshotView { tree, sessions };
        let dir = self.dirs.snapshot_dir.clone();
        let spawned = std::thread::Builder::new()
            .name("zkrs-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                match save_snapshot(&RealStorage, &dir, 0, &view) {
                    Ok(info) => log::info!(
                        "snapshot of zxid 0x{:x} written in {} ms: {info:?}",
                        view.tree.last_zxid(),
                        started.elapsed().as_millis()
                    ),
                    Err(e) => log::error!("snapshot failed: {e}"),
                }
            });
        match spawned {
            Ok(thread) => self.snapshot_thread = Some(thread),
            Err(e) => log::error!("cannot start the snapshot thread: {e}"),
        }
    }

    /// Waits for a snapshot still being written (before the files are touched otherwise,
    /// e.g. when a term of service ends).
    pub fn finish_snapshot(&mut self) {
        if let Some(thread) = self.snapshot_thread.take() {
            let _ = thread.join();
        }
    }

    /// Autopurge: every autopurge.purgeInterval hours, keeps autopurge.snapRetainCount
    /// snapshots and the log segments they need.
    pub fn maybe_purge(&mut self, log: &DmaLog) {
        let Some(every) = self.purge_every else {
            return;
        };
        if self.last_purge.elapsed() < every {
            return;
        }
        self.last_purge = Instant::now();
        match purge_files(
            &RealStorage,
            &self.dirs,
            self.retain,
            log.layout().current_segment(),
        ) {
            Ok(plan) => log::info!("autopurge: {plan:?}"),
            Err(e) => log::warn!("autopurge failed: {e}"),
        }
    }
}

/// What [`recover_state`] gives.
pub struct RecoveredState {
    /// The log, open for appending.
    pub wal: Wal<RealStorage>,
    /// No snapshot was found: the directory starts fresh.
    pub fresh: bool,
    pub tree: DataTree,
    /// Open sessions: id -> timeout ms.
    pub sessions: std::collections::BTreeMap<i64, i32>,
    /// See [`Recovered::recent`] and [`Recovered::recent_base`].
    pub recent: Vec<RecentTxn>,
    pub recent_base: i64,
}

fn wal_config(config: &Config) -> WalConfig {
    WalConfig {
        force_sync: config.force_sync,
        pre_alloc_size_bytes: config.pre_alloc_size_bytes.max(4096),
        segment_len_max_bytes: SEGMENT_LEN_MAX_BYTES.max(config.pre_alloc_size_bytes),
        db_id: 0,
        alignment: DIRECT_IO_ALIGNMENT,
    }
}

/// Start-up recovery of zkrs's own files (`zkrs-1/`), without the import of ZooKeeper's.
pub fn recover_state(config: &Config) -> Result<RecoveredState, String> {
    let dirs = wal_dirs(config);
    for dir in [&dirs.log_dir, &dirs.snapshot_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let wal_config = wal_config(config);
    let mut rebuild = Rebuild::default();
    let (wal, mut recovered) = Wal::open(RealStorage, dirs.clone(), wal_config, &mut rebuild)
        .map_err(|e| {
            // The caller prefixes "zkrs refuses to start: "; RecoveryError says it too.
            let message = e.to_string();
            match message.strip_prefix("zkrs refuses to start: ") {
                Some(rest) => rest.to_string(),
                None => message,
            }
        })?;
    for (path, error) in &recovered.skipped_snapshots {
        log::warn!("skipped damaged snapshot {}: {error}", path.display());
    }
    if let Some(torn) = &recovered.torn_tail {
        log::warn!("truncated the torn tail of the txn log: {torn:?}");
    }
    let fresh = recovered.snapshot.is_none();
    let mut tree = if fresh {
        DataTree::new()
    } else {
        DataTree::from_nodes(std::mem::take(&mut rebuild.nodes), rebuild.last_zxid)
            .map_err(|e| format!("the snapshot cannot be loaded: {e}"))?
    };
    let mut sessions: std::collections::BTreeMap<i64, i32> =
        rebuild.sessions.iter().copied().collect();
    let kept_from = recovered.txns.len().saturating_sub(RECENT_TXNS_MAX);
    let recent_base = match kept_from.checked_sub(1) {
        Some(before) => recovered.txns[before].0.zxid,
        None => tree.last_zxid(),
    };
    let mut recent_digests = Vec::with_capacity(recovered.txns.len() - kept_from);
    for (index, (header, txn)) in recovered.txns.iter().enumerate() {
        tree.try_apply_txn(header, txn).map_err(|e| {
            format!(
                "the txn log does not fit the snapshot it follows ({e}); restore the data \
                     directory from a backup, or remove it and let the server sync from the \
                     ensemble"
            )
        })?;
        match txn {
            Txn::CreateSession { timeout_ms } => {
                sessions.insert(header.session_id, *timeout_ms);
            }
            Txn::CloseSession { .. } => {
                sessions.remove(&header.session_id);
            }
            _ => {}
        }
        if index >= kept_from {
            // The same tree as when this txn was first applied (snapshots hold committed
            // versions only), so the same digest its proposal carried.
            recent_digests.push(tree.digest());
        }
    }
    log::info!(
        "recovered {} znodes, {} sessions, last zxid 0x{:x} ({} txns replayed{})",
        tree.node_count(),
        sessions.len(),
        tree.last_zxid(),
        recovered.txns.len(),
        match &recovered.snapshot {
            Some((path, _)) => format!(" after {}", path.display()),
            None => ", fresh start".to_string(),
        }
    );
    let recent = recovered
        .txns
        .split_off(kept_from)
        .into_iter()
        .zip(recent_digests)
        .map(|((header, txn), digest)| (header, txn, digest))
        .collect();
    Ok(RecoveredState {
        wal,
        fresh,
        tree,
        sessions,
        recent,
        recent_base,
    })
}

/// ZooKeeper's `acceptedEpoch` and `currentEpoch` files (one decimal number as ASCII, no
/// newline, written atomically), kept beside our snapshots. A missing file reads as None.
pub struct EpochFiles {
    dir: PathBuf,
}

impl EpochFiles {
    pub fn new(config: &Config) -> EpochFiles {
        EpochFiles {
            dir: wal_dirs(config).snapshot_dir,
        }
    }

    /// The epoch files of another directory (ZooKeeper's `version-2`, for import/export).
    pub fn in_dir(dir: PathBuf) -> EpochFiles {
        EpochFiles { dir }
    }

    /// The number in file `name` (`acceptedEpoch`, `currentEpoch`, `currentEpoch.tmp`);
    /// None when the file is missing.
    pub fn read(&self, name: &str) -> Result<Option<i64>, String> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map(Some).map_err(|_| {
                format!(
                    "{}: not an epoch number ({:?}); restore it from a backup, or remove it \
                     and let the server sync from the ensemble",
                    path.display(),
                    text.trim()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes `epoch` into file `name` atomically (temp file, sync, rename, dir sync).
    pub fn write(&self, name: &str, epoch: i64) -> Result<(), String> {
        let path = self.dir.join(name);
        let temp = self.dir.join(format!("{name}.tmp"));
        std::fs::write(&temp, epoch.to_string())
            .and_then(|_| std::fs::File::open(&temp)?.sync_all())
            .and_then(|_| std::fs::rename(&temp, &path))
            .and_then(|_| std::fs::File::open(&self.dir)?.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// (acceptedEpoch, currentEpoch) for a server whose log ends at `last_zxid`, as
    /// ZooKeeper's QuorumPeer.loadDataBase: a missing file starts at the log's epoch; a
    /// current epoch behind the log, or an accepted epoch behind the current one, is refused.
    pub fn load(&self, last_zxid: i64) -> Result<(i64, i64), String> {
        let log_epoch = ((last_zxid as u64) >> 32) as i64;
        let current = match self.read("currentEpoch")? {
            Some(epoch) => epoch,
            None => {
                self.write("currentEpoch", log_epoch)?;
                log_epoch
            }
        };
        if current < log_epoch {
            return Err(format!(
                "the current epoch {current} is behind the log's epoch {log_epoch} (last zxid \
                 0x{last_zxid:x}) in {}",
                self.dir.display()
            ));
        }
        let accepted = match self.read("acceptedEpoch")? {
            Some(epoch) => epoch,
            None => {
                self.write("acceptedEpoch", current)?;
                current
            }
        };
        if accepted < current {
            return Err(format!(
                "the accepted epoch {accepted} is behind the current epoch {current} in {}",
                self.dir.display()
            ));
        }
        Ok((accepted, current))
    }

    pub fn set_accepted(&self, epoch: i64) -> Result<(), String> {
        self.write("acceptedEpoch", epoch)
    }

    pub fn set_current(&self, epoch: i64) -> Result<(), String> {
        self.write("currentEpoch", epoch)
    }
}

/// Replaces everything on disk by a snapshot received from a leader (SNAP sync): every
/// log segment and snapshot goes first, then the new snapshot is written. A crash in
/// between leaves an empty data directory, which claims no zxid it does not hold
/// (ZOOKEEPER-3642: a half-done SNAP sync must not be mistaken for state).
fn replace_with_snapshot(
    config: &Config,
    tree: &DataTree,
    sessions: Vec<(i64, i32)>,
) -> Result<(), String> {
    wipe(config)?;
    let dirs = wal_dirs(config);
    let view = SnapshotView {
        tree: tree.clone(),
        sessions,
    };
    save_snapshot(&RealStorage, &dirs.snapshot_dir, 0, &view)
        .map(|_| ())
        .map_err(|e| format!("cannot write the snapshot received from the leader: {e}"))
}

/// TRUNC sync: cuts the txn log right after `zxid` (every later record and segment goes,
/// and every snapshot of a later zxid), so that recovery ends exactly at `zxid`. The log
/// must hold `zxid` itself (or a snapshot must be at it): otherwise this server's history
/// is not the leader's up to there, and everything is removed instead (an empty data
/// directory claims nothing; the next sync sends a snapshot). Runs while not serving.
pub fn truncate_after(config: &Config, zxid: i64) -> Result<(), String> {
    use crate::wal::recovery::{scan_segment, truncate_log_at};
    use crate::wal::{SEGMENT_PREFIX, SNAPSHOT_PREFIX};
    let dirs = wal_dirs(config);
    let snapshots = named_files(&dirs.snapshot_dir, SNAPSHOT_PREFIX)?;
    let segments = named_files(&dirs.log_dir, SEGMENT_PREFIX)?;
    // Where the history holds `zxid`: a record in a segment, or a snapshot at it.
    let mut cut: Option<(PathBuf, u64)> = None;
    let mut found = snapshots.iter().any(|(z, _)| *z == zxid);
    for (name_zxid, path) in &segments {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let scan = scan_segment(&bytes, *name_zxid);
        for (offset, record) in &scan.records {
            if record.header.zxid == zxid {
                found = true;
            }
            if record.header.zxid > zxid && cut.is_none() {
                cut = Some((path.clone(), *offset));
            }
        }
    }
    let keeps_a_snapshot = snapshots.iter().any(|(z, _)| *z <= zxid);
    if !found || !keeps_a_snapshot {
        log::warn!(
            "TRUNC to 0x{zxid:x}: this server's history does not hold that zxid; removing the \
             local state so that the leader sends a snapshot"
        );
        return wipe(config);
    }
    if let Some((file, offset)) = cut {
        let removed = truncate_log_at(&RealStorage, &dirs.log_dir, &file, offset)
            .map_err(|e| format!("cannot truncate the txn log: {e}"))?;
        log::info!(
            "TRUNC: cut {} at offset {offset} (after zxid 0x{zxid:x}), removed {} later segment(s)",
            file.display(),
            removed.len()
        );
    }
    for (z, path) in &snapshots {
        if *z > zxid {
            std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    std::fs::File::open(&dirs.snapshot_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dirs.snapshot_dir.display()))
}

/// The files in `dir` named `prefix` + zxid, as (zxid, path), in zxid order.
fn named_files(dir: &std::path::Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, String> {
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((crate::wal::parse_name(&name, prefix)?, e.path()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads committed txns back from the txn log files, for a leader that syncs a learner
/// older than its in-memory committed log (ZooKeeper's `getProposalsFromTxnLog`). `Send`:
/// it runs on a blocking thread, off the ordering executor.
#[derive(Debug, Clone)]
pub struct LogHistory {
    dirs: WalDirs,
    /// See [`Config::snapshot_size_factor`].
    size_factor: f64,
}

impl LogHistory {
    pub fn new(config: &Config) -> LogHistory {
        LogHistory {
            dirs: wal_dirs(config),
            size_factor: config.snapshot_size_factor,
        }
    }

    /// The logged txns from `from` (that txn itself first) up to `upto`, in zxid order.
    /// An Err says why they cannot serve a DIFF: reading from the files is disabled, no
    /// segment holds `from` itself (a learner's zxid the log does not have may be a txn the
    /// leader never had), a gap, or the txns' records pass the size limit (the factor times
    /// the newest snapshot file's size: past it a SNAP is the cheaper sync). The list may end
    /// before `upto` (the files end, or the current segment's tail is being written).
    pub fn read(&self, from: i64, upto: i64) -> Result<Vec<(TxnHeader, Txn)>, String> {
        use crate::wal::recovery::{scan_segment, ScanEnd};
        use crate::wal::{zxid_follows, SEGMENT_PREFIX, SNAPSHOT_PREFIX};
        if self.size_factor < 0.0 {
            return Err("snapshotSizeFactor is negative: syncing from the txn log is off".into());
        }
        let limit = if self.size_factor == 0.0 {
            u64::MAX
        } else {
            let snapshots = named_files(&self.dirs.snapshot_dir, SNAPSHOT_PREFIX)?;
            let newest = snapshots.last().ok_or("no snapshot")?;
            let len = std::fs::metadata(&newest.1)
                .map_err(|e| format!("{}: {e}", newest.1.display()))?
                .len();
            (len as f64 * self.size_factor) as u64
        };
        let segments = named_files(&self.dirs.log_dir, SEGMENT_PREFIX)?;
        let start = segments
            .iter()
            .rposition(|(first, _)| *first <= from)
            .ok_or_else(|| format!("no log segment starts at or before 0x{from:x}"))?;
        let too_large = || {
            format!(
                "the txns to send take more than {limit} bytes ({} of the newest snapshot's size)",
                self.size_factor
            )
        };
        // First by the records' lengths alone: a learner far behind (a SNAP's case) is
        // told so without decoding up to `limit` bytes of txns (0.67 s for 64 MB here).
        if limit != u64::MAX {
            let mut bytes = 0u64;
            'files: for (_, path) in &segments[start..] {
                let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                for (_, len, zxid) in crate::wal::format::record_extents(&data) {
                    if zxid > upto {
                        break 'files;
                    }
                    if zxid >= from {
                        bytes += len as u64;
                        if bytes > limit {
                            return Err(too_large());
                        }
                    }
                }
            }
        }
        let mut txns: Vec<(TxnHeader, Txn)> = Vec::new();
        let mut bytes = 0u64;
        for (name_zxid, path) in &segments[start..] {
            let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let scan = scan_segment(&data, *name_zxid);
            drop(data);
            let (end, clean) = match scan.end {
                ScanEnd::Clean { offset } => (offset, true),
                ScanEnd::Torn { offset, .. } | ScanEnd::Corrupt { offset, .. } => (offset, false),
            };
            let offsets: Vec<u64> = scan.records.iter().map(|(offset, _)| *offset).collect();
            for (index, (offset, record)) in scan.records.into_iter().enumerate() {
                let zxid = record.header.zxid;
                if zxid < from {
                    continue;
                }
                if zxid > upto {
                    return Ok(txns);
                }
                match txns.last() {
                    None if zxid != from => {
                        return Err(format!("the txn log does not hold 0x{from:x}"));
                    }
                    Some((previous, _)) if !zxid_follows(previous.zxid, zxid) => {
                        return Err(format!(
                            "the txn log skips from 0x{:x} to 0x{zxid:x}",
                            previous.zxid
                        ));
                    }
                    _ => {}
                }
                let next = offsets.get(index + 1).copied().unwrap_or(end);
                bytes += next.saturating_sub(offset);
                if bytes > limit {
                    return Err(too_large());
                }
                txns.push((record.header, record.txn));
            }
            if !clean {
                break;
            }
        }
        if txns.is_empty() {
            return Err(format!("the txn log does not hold 0x{from:x}"));
        }
        Ok(txns)
    }
}

/// Removes every log segment and snapshot (the data directory then starts fresh).
fn wipe(config: &Config) -> Result<(), String> {
    let dirs = wal_dirs(config);
    for dir in [&dirs.log_dir, &dirs.snapshot_dir] {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(crate::wal::SEGMENT_PREFIX)
                || name.starts_with(crate::wal::SNAPSHOT_PREFIX)
            {
                std::fs::remove_file(entry.path())
                    .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
            }
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn config_in(dir: &std::path::Path) -> Config {
        let text = format!("dataDir={}\nclientPort=2181\n", dir.display());
        Config::parse(&text, None).expect("config").0
    }

    #[test]
    fn the_recent_txns_carry_the_tree_digest_after_each() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config_in(tmp.path());
        // The first start writes the initial snapshot; then txns are logged after it.
        drop(Persistence::open(&config).unwrap());
        let txns: Vec<(TxnHeader, Txn)> = (1..=RECENT_TXNS_MAX as i64 + 20).map(create).collect();
        let mut state = recover_state(&config).unwrap();
        state.wal.append_batch(&txns).unwrap();
        drop(state);

        let state = recover_state(&config).unwrap();
        assert_eq!(state.recent.len(), RECENT_TXNS_MAX);
        let mut expected = DataTree::new();
        let mut after = Vec::new();
        for (header, txn) in &txns {
            expected.apply_txn(header, txn);
            after.push((header.zxid, expected.digest()));
        }
        let kept = &after[after.len() - RECENT_TXNS_MAX..];
        assert_eq!(state.recent_base, kept[0].0 - 1);
        for ((header, _, digest), (zxid, want)) in state.recent.iter().zip(kept) {
            assert_eq!((header.zxid, *digest), (*zxid, *want));
        }
        // Distinct per txn: a digest taken once (e.g. the last tree's) would not pass.
        assert_ne!(state.recent[0].2, state.recent[1].2);
        assert_eq!(state.recent.last().unwrap().2, state.tree.digest());
    }

    fn create(zxid: i64) -> (TxnHeader, Txn) {
        let header = TxnHeader {
            session_id: 0,
            zxid,
            time_ms: 1_700_000_000_000 + zxid,
            ..Default::default()
        };
        let txn = Txn::Create {
            path: format!("/n{zxid}"),
            data: Bytes::from(vec![zxid as u8; 3]),
            acl: crate::zab::txn::open_acl_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: zxid as i32,
        };
        (header, txn)
    }

    #[test]
    fn the_state_a_snap_sync_installs_is_what_recovery_then_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config_in(tmp.path());
        // Some history of this server's own, which the snapshot replaces.
        drop(Persistence::open(&config).unwrap());
        let mut state = recover_state(&config).unwrap();
        state
            .wal
            .append_batch(&(1..=5).map(create).collect::<Vec<_>>())
            .unwrap();
        drop(state);
        let mut tree = DataTree::new();
        for zxid in 0x2_0000_0001..=0x2_0000_0040 {
            let (header, txn) = create(zxid);
            tree.apply_txn(&header, &txn);
        }
        let sessions = vec![(0x1_0000_0000_0001, 4000), (0x2_0000_0000_0002, 6000)];
        let (persistence, installed) =
            Persistence::replace_with(&config, tree.clone(), sessions.clone()).unwrap();
        drop(persistence);
        let (_, read) = Persistence::open(&config).unwrap();
        for state in [&installed, &read] {
            assert_eq!(state.tree.last_zxid(), 0x2_0000_0040);
            assert_eq!(state.tree.digest(), tree.digest());
            assert_eq!(state.tree.node_count(), tree.node_count());
            assert_eq!(state.sessions, sessions);
            assert!(state.recent.is_empty());
            assert_eq!(state.recent_base, 0x2_0000_0040);
        }
        assert!(read.tree.get("/n1").is_none(), "the old history is gone");
    }

    #[test]
    fn the_recent_log_keeps_the_last_txns_and_moves_its_base() {
        let entry = |zxid| {
            let (header, txn) = create(zxid);
            (header, txn, zxid * 10)
        };
        let mut recent = RecentLog::new(7, (8..=9).map(entry).collect());
        assert_eq!((recent.base(), recent.last(), recent.len()), (7, 9, 2));
        for zxid in 10..10 + RECENT_TXNS_MAX as i64 {
            recent.push(entry(zxid));
        }
        assert_eq!(recent.len(), RECENT_TXNS_MAX);
        assert_eq!(recent.last(), 9 + RECENT_TXNS_MAX as i64);
        assert_eq!(recent.base(), 9, "8 and 9 were evicted");
        assert_eq!(
            recent.iter().next().map(|(h, _, d)| (h.zxid, *d)),
            Some((10, 100))
        );
        assert!(RecentLog::new(42, Vec::new()).last() == 42);
    }

    #[test]
    #[should_panic(expected = "recent txn")]
    fn the_recent_log_refuses_a_txn_out_of_order() {
        let (header, txn) = create(5);
        let mut recent = RecentLog::new(5, Vec::new());
        recent.push((header, txn, 0));
    }
}
