//! Moving between Apache ZooKeeper's `version-2` directory and zkrs's `zkrs-1`.
//!
//! **Import** ([`import_if_needed`], at every start, before recovery): when `zkrs-1` holds no
//! zkrs data (no snapshot, no log segment) and has never imported (no [`MARKER`]), and
//! `<dataDir>/version-2` holds snapshots, the state is rebuilt as ZooKeeper's
//! `FileTxnSnapLog.restore` rebuilds it: the newest snapshot that passes its checks (older
//! ones are fallen back on, as `FileSnap.deserialize` does), then every txn after it from
//! `<dataLogDir>/version-2`'s logs (the log that starts at or before the snapshot's zxid + 1,
//! and every later one). Txns up to one after the snapshot's digest zxid (every txn when
//! the snapshot has no digest) are applied tolerantly, since ZooKeeper's snapshots are
//! fuzzy (the digest is read after the nodes, and a txn's digest is recorded after the txn
//! is applied, so the txn in flight may be in the snapshot); later ones must fit. Sessions come from the snapshot and the createSession/closeSession
//! txns after it. The epoch files are carried into `zkrs-1` (checked as
//! `QuorumPeer.loadDataBase` checks them, for an ensemble member). Then the state is
//! written as a zkrs snapshot and the [`MARKER`] records the newest zxid of `version-2`'s
//! file names. `version-2` is never written to.
//!
//! Refused, with file and offset: a corrupt record in any log read (a torn record ends
//! its file, as in ZooKeeper; the next file must then continue the zxids), a zxid gap,
//! snapshots none of which passes its checks, logs without a snapshot, a compressed
//! snapshot newer than every plain one.
//!
//! **Going back** ([`export`], `zkrs export-zk`): recovers `zkrs-1` as a start would, then
//! writes `snapshot.<last zxid>` (ZooKeeper's format, see `snapfile`) and the epoch files
//! into `<dataDir>/version-2` (or another directory). Refused when the target holds a file
//! of a later zxid, which ZooKeeper would load or replay instead of (or on top of) it.
//!
//! **After going back** ([`check_version2_unchanged`]): once ZooKeeper has written to
//! `version-2` again (a file newer than the marker says), zkrs's own state is behind and
//! zkrs refuses to start rather than serve it: the message says to remove `zkrs-1` (which
//! imports `version-2` anew) or the newer files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::snapfile::{encode_snapshot_file, read_snapshot, JavaSnapshot};
use super::txnlog::{scan_log, LogEnd};
use super::{is_compressed, zxid_of_name, JAVA_SUBDIR};
use crate::config::Config;
use crate::server::persistence::{recover_state, wal_dirs, EpochFiles, RecoveredState};
use crate::tree::{DataTree, Txn, Znode};
use crate::wal::snapshot::save_snapshot;
use crate::wal::{zxid_epoch, zxid_follows, RealStorage, SnapshotSource};

/// In `zkrs-1`: the newest zxid of the `version-2` file names that zkrs has accounted
/// for (imported, or exported itself), as `0x<hex>` on one line.
pub const MARKER: &str = "version-2.imported";

const SNAP_PREFIX: &str = "snapshot.";
const LOG_PREFIX: &str = "log.";

/// ZooKeeper's `version-2` directories of a config: (snapshots: dataDir, logs: dataLogDir).
pub fn java_dirs(config: &Config) -> (PathBuf, PathBuf) {
    (
        config.data_dir.join(JAVA_SUBDIR),
        config.data_log_dir.join(JAVA_SUBDIR),
    )
}

/// A `version-2` state rebuilt in memory.
#[derive(Debug)]
pub struct JavaState {
    pub tree: DataTree,
    /// (id, timeout ms), by id.
    pub sessions: Vec<(i64, i32)>,
    pub snapshot: PathBuf,
    /// The logs read, with how many of their txns were applied.
    pub logs: Vec<(PathBuf, usize)>,
    /// Files that were passed over, and why (snapshots that failed their checks, torn
    /// records that ended a log).
    pub warnings: Vec<String>,
    /// Digest checks that failed (see [`DigestCheck`]).
    pub digests: DigestCheck,
}

/// What ZooKeeper checks of its digests while it loads a snapshot and replays its logs
/// (`FileSnap.deserialize`, `DataTree.compareSnapshotDigests`, `compareDigest`): the
/// snapshot's digest against the tree once the txns reach the digest's zxid, then each txn's
/// TxnDigest against the tree after it. ZooKeeper counts a mismatch and goes on; so does
/// the import, which logs them as errors.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DigestCheck {
    /// Digests compared.
    pub compared: u64,
    /// Mismatches, and the zxids of the first [`DIGEST_MISMATCHES_KEPT`].
    pub mismatches: u64,
    pub mismatch_zxids: Vec<i64>,
}

/// How many mismatching zxids [`DigestCheck`] keeps.
pub const DIGEST_MISMATCHES_KEPT: usize = 16;

impl DigestCheck {
    /// Compares a digest of `version` for `zxid` with the tree's (`actual`).
    fn compare(&mut self, zxid: i64, version: i32, expected: i64, actual: i64) {
        if version != crate::tree::digest::DIGEST_VERSION {
            return;
        }
        self.compared += 1;
        if expected != actual {
            self.mismatches += 1;
            if self.mismatch_zxids.len() < DIGEST_MISMATCHES_KEPT {
                self.mismatch_zxids.push(zxid);
            }
        }
    }
}

/// The files of `dir` named `prefix<hex>`, by zxid (a missing directory has none).
fn named_files(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(zxid) = zxid_of_name(&name, prefix) {
            files.push((zxid, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

fn compressed_snapshots(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| is_compressed(name))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a regular file whole.
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Rebuilds the state of a ZooKeeper `version-2` pair of directories. Ok(None) when
/// `snap_dir` holds no snapshot and `log_dir` no log (nothing to import).
pub fn read_java_state(snap_dir: &Path, log_dir: &Path) -> Result<Option<JavaState>, String> {
    let snapshots = named_files(snap_dir, SNAP_PREFIX)?;
    let logs = named_files(log_dir, LOG_PREFIX)?;
    let compressed = compressed_snapshots(snap_dir);
    if snapshots.is_empty() && logs.is_empty() && compressed.is_empty() {
        return Ok(None);
    }
    let newest_plain = snapshots.last().map_or(-1, |(z, _)| *z);
    if let Some(name) = compressed.iter().find(|name| {
        let hex = name
            .trim_start_matches(SNAP_PREFIX)
            .split('.')
            .next()
            .unwrap_or("");
        i64::from_str_radix(hex, 16).map_or(true, |z| z >= newest_plain)
    }) {
        return Err(format!(
            "{}: a compressed snapshot (zookeeper.snapshot.compression.method); zkrs reads \
             only uncompressed ones: start Apache ZooKeeper once with the compression method \
             \"none\" and let it take a snapshot, or remove that file if an older snapshot \
             and the txn logs cover it",
            snap_dir.join(name).display()
        ));
    }
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    let mut chosen: Option<(i64, PathBuf, JavaSnapshot)> = None;
    for (zxid, path) in snapshots.iter().rev() {
        let bytes = read_file(path)?;
        if !super::snapfile::looks_sealed(&bytes) {
            // ZooKeeper's findNValidSnapshots passes over such files (a snapshot being
            // written when the server died).
            let why = format!(
                "{}: passed over, it does not end with a snapshot seal ({} bytes)",
                path.display(),
                bytes.len()
            );
            warnings.push(why.clone());
            failures.push(why);
            continue;
        }
        match read_snapshot(&bytes, *zxid) {
            Ok(snapshot) => {
                chosen = Some((*zxid, path.clone(), snapshot));
                break;
            }
            Err(e) => {
                let why = format!("{}: {e}", path.display());
                warnings.push(format!("passed over the damaged snapshot {why}"));
                failures.push(why);
            }
        }
    }
    let Some((snap_zxid, snap_path, snapshot)) = chosen else {
        if snapshots.is_empty() {
            return Err(format!(
                "{} holds txn logs but no snapshot (ZooKeeper refuses this too: \"No snapshot \
                 found, but there are log entries\"); restore the snapshots from a backup",
                log_dir.display()
            ));
        }
        return Err(format!(
            "no valid Apache ZooKeeper snapshot in {}: {}; restore a snapshot from a backup",
            snap_dir.display(),
            failures.join("; ")
        ));
    };
    let mut tree = snapshot.tree;
    let mut sessions: BTreeMap<i64, i32> = snapshot.sessions.iter().copied().collect();
    // Tolerant up to where the fuzzy snapshot is known to be exact. ZooKeeper records a
    // txn's digest only after applying it, and reads the digest after the nodes: the one
    // txn after the digest's zxid may be in the snapshot too.
    let fuzzy_until = snapshot
        .digest
        .map_or(i64::MAX, |d| d.zxid.saturating_add(1));
    // The log that holds snapZxid + 1 starts at or before it; every later log follows.
    let first = logs
        .iter()
        .rposition(|(z, _)| *z <= snap_zxid.wrapping_add(1))
        .unwrap_or(0);
    let mut used = Vec::new();
    let mut last = snap_zxid;
    let count = logs.len();
    let mut digests = DigestCheck::default();
    // The snapshot's digest, until the txns reach its zxid (ZooKeeper compares none of the
    // txns' digests before: the tree is fuzzy until then).
    let mut snapshot_digest = snapshot.digest;
    if let Some(d) = snapshot_digest.filter(|d| d.zxid == snap_zxid) {
        digests.compare(d.zxid, d.version, d.digest, tree.digest());
        snapshot_digest = None;
    }
    for (i, (_, path)) in logs.iter().enumerate().skip(first) {
        let bytes = read_file(path)?;
        let scan = scan_log(&bytes);
        let mut applied = 0usize;
        for (offset, record) in &scan.records {
            let zxid = record.header.zxid;
            if zxid <= snap_zxid && last == snap_zxid {
                continue; // before the snapshot
            }
            if !zxid_follows(last, zxid) {
                return Err(format!(
                    "{} at offset {offset}: txn 0x{zxid:x} does not follow 0x{last:x} (txns \
                     are missing); restore the txn logs from a backup",
                    path.display()
                ));
            }
            let hdr = record.header.tree_header();
            if zxid <= fuzzy_until {
                apply_fuzzy(&mut tree, record);
            } else {
                tree.try_apply_txn(&hdr, &record.txn).map_err(|e| {
                    format!(
                        "{} at offset {offset}: txn 0x{zxid:x} does not fit the snapshot {} \
                         ({e}); restore the data directory from a backup",
                        path.display(),
                        snap_path.display()
                    )
                })?;
            }
            // As FileTxnSnapLog.fastForwardFromEdits: processTxn (which compares the
            // snapshot's digest at its zxid), then compareDigest of the txn's own.
            if let Some(d) = snapshot_digest.filter(|d| d.zxid == zxid) {
                digests.compare(zxid, d.version, d.digest, tree.digest());
                snapshot_digest = None;
            }
            if let (None, Some(d)) = (snapshot_digest, record.digest) {
                digests.compare(zxid, d.version, d.tree_digest, tree.digest());
            }
            match &record.txn {
                Txn::CreateSession { timeout_ms } => {
                    sessions.insert(record.header.client_id, *timeout_ms);
                }
                Txn::CloseSession { .. } => {
                    sessions.remove(&record.header.client_id);
                }
                _ => {}
            }
            last = zxid;
            applied += 1;
        }
        match &scan.end {
            LogEnd::Clean { .. } => {}
            LogEnd::Torn { offset, why } => warnings.push(format!(
                "{} ends with a torn record at offset {offset} ({why}){}",
                path.display(),
                if i + 1 == count {
                    ": the end of the log, as after a crash (the file is left as it is)"
                } else {
                    ": the end of that file, as ZooKeeper reads it (the next log goes on)"
                }
            )),
            LogEnd::Corrupt { offset, why } => {
                return Err(format!(
                    "{} is corrupt at offset {offset}: {why}; restore it from a backup (zkrs \
                     does not skip txns)",
                    path.display()
                ))
            }
        }
        used.push((path.clone(), applied));
    }
    Ok(Some(JavaState {
        tree,
        sessions: sessions.into_iter().collect(),
        snapshot: snap_path,
        logs: used,
        warnings,
        digests,
    }))
}

/// Applies a txn over a fuzzy snapshot as ZooKeeper's `DataTree.processTxn` does: a txn
/// that does not fit is skipped (each op of a multi on its own), except that a create
/// (op 1, not create2, container or TTL creates) of a znode the snapshot already holds still
/// sets its parent's cversion and pzxid (ZooKeeper's fix for ZOOKEEPER-1269).
fn apply_fuzzy(tree: &mut DataTree, record: &crate::zab::txn::DecodedTxn) {
    const OP_CREATE: i32 = 1;
    let hdr = record.header.tree_header();
    let exists_before = match &record.txn {
        Txn::Create { path, .. } if record.header.op != OP_CREATE => tree.get(path).is_some(),
        _ => false,
    };
    if !exists_before {
        tree.apply_txn_fuzzy(&hdr, &record.txn);
        return;
    }
    // zkrs's create raises the parent's cversion even when the znode exists; ZooKeeper
    // does that for op 1 only. Skip the txn, keeping only the zxid.
    tree.apply_txn_fuzzy(&hdr, &Txn::Error(crate::proto::ErrorCode::NodeExists));
}

/// Whether zkrs's own directories hold a snapshot or a log segment.
fn has_zkrs_data(config: &Config) -> Result<bool, String> {
    let dirs = wal_dirs(config);
    Ok(
        !named_files(&dirs.snapshot_dir, crate::wal::SNAPSHOT_PREFIX)?.is_empty()
            || !named_files(&dirs.log_dir, crate::wal::SEGMENT_PREFIX)?.is_empty(),
    )
}

/// The newest zxid in the names of `version-2`'s snapshots and logs (-1 for none).
fn newest_java_name(config: &Config) -> Result<i64, String> {
    let (snap_dir, log_dir) = java_dirs(config);
    let snaps = named_files(&snap_dir, SNAP_PREFIX)?;
    let logs = named_files(&log_dir, LOG_PREFIX)?;
    Ok(snaps
        .iter()
        .chain(logs.iter())
        .map(|(z, _)| *z)
        .max()
        .unwrap_or(-1))
}

fn marker_path(config: &Config) -> PathBuf {
    wal_dirs(config).snapshot_dir.join(MARKER)
}

fn read_marker(config: &Config) -> Result<Option<i64>, String> {
    let path = marker_path(config);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let hex = text.trim().trim_start_matches("0x");
            u64::from_str_radix(hex, 16)
                .map(|z| Some(z as i64))
                .or_else(|_| text.trim().parse::<i64>().map(Some))
                .map_err(|_| format!("{}: not a zxid ({:?})", path.display(), text.trim()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write_marker(config: &Config, zxid: i64) -> Result<(), String> {
    let path = marker_path(config);
    let dir = wal_dirs(config).snapshot_dir;
    let temp = dir.join(format!("{MARKER}.tmp"));
    std::fs::write(&temp, format!("0x{zxid:x}\n"))
        .and_then(|_| std::fs::File::open(&temp)?.sync_all())
        .and_then(|_| std::fs::rename(&temp, &path))
        .and_then(|_| std::fs::File::open(&dir)?.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// zkrs's snapshot source over an imported state.
struct View<'a> {
    tree: &'a DataTree,
    sessions: &'a [(i64, i32)],
}

impl SnapshotSource for View<'_> {
    fn for_each_node(&self, f: &mut dyn FnMut(&str, &Znode)) {
        self.tree.for_each_node(f);
    }

    fn for_each_session(&self, f: &mut dyn FnMut(i64, i32)) {
        for (id, timeout) in self.sessions {
            f(*id, *timeout);
        }
    }

    fn last_zxid(&self) -> i64 {
        self.tree.last_zxid()
    }
}

/// Carries ZooKeeper's epoch files from `java_dir` into `epochs` (zkrs's), for a state whose
/// last zxid is `last_zxid`. An ensemble member gets `QuorumPeer.loadDataBase`'s rules: a
/// missing currentEpoch is the last zxid's epoch, one behind it is replaced by
/// `currentEpoch.tmp` when that exists (an interrupted update) and refused otherwise; a
/// missing acceptedEpoch is the last zxid's epoch, and one behind the current epoch is
/// refused. A standalone server (which ZooKeeper never lets read them) copies what is there.
pub fn import_epochs(
    java_dir: &Path,
    epochs: &EpochFiles,
    last_zxid: i64,
    distributed: bool,
) -> Result<(), String> {
    let java = EpochFiles::in_dir(java_dir.to_path_buf());
    let current = java.read("currentEpoch")?;
    let accepted = java.read("acceptedEpoch")?;
    if !distributed {
        if let Some(epoch) = current {
            epochs.write("currentEpoch", epoch)?;
        }
        if let Some(epoch) = accepted {
            epochs.write("acceptedEpoch", epoch)?;
        }
        return Ok(());
    }
    let of_zxid = zxid_epoch(last_zxid);
    let mut current = match current {
        Some(epoch) => epoch,
        None => {
            log::info!(
                "{}/currentEpoch not found: setting the current epoch to {of_zxid} (the last \
                 zxid's), as ZooKeeper does",
                java_dir.display()
            );
            of_zxid
        }
    };
    if of_zxid > current {
        match java.read("currentEpoch.tmp")? {
            Some(epoch) => {
                log::info!(
                    "{}/currentEpoch.tmp found: setting the current epoch to {epoch}",
                    java_dir.display()
                );
                current = epoch;
            }
            None => {
                return Err(format!(
                    "the current epoch, {current}, in {} is older than the last zxid, \
                     0x{last_zxid:x} (ZooKeeper refuses this too)",
                    java_dir.display()
                ))
            }
        }
    }
    let accepted = accepted.unwrap_or_else(|| {
        log::info!(
            "{}/acceptedEpoch not found: setting the accepted epoch to {of_zxid} (the last \
             zxid's), as ZooKeeper does",
            java_dir.display()
        );
        of_zxid
    });
    if accepted < current {
        return Err(format!(
            "the accepted epoch, {accepted}, in {} is less than the current epoch, {current} \
             (ZooKeeper refuses this too)",
            java_dir.display()
        ));
    }
    epochs.write("currentEpoch", current)?;
    epochs.write("acceptedEpoch", accepted)
}

/// The start-up import (see the module docs). Does nothing when zkrs has data or imported
/// before, or when there is no `version-2` state.
pub fn import_if_needed(config: &Config) -> Result<(), String> {
    if has_zkrs_data(config)? || read_marker(config)?.is_some() {
        return Ok(());
    }
    let (snap_dir, log_dir) = java_dirs(config);
    // Taken before reading: a file ZooKeeper adds meanwhile (it should be stopped) is
    // newer than the marker, so the next start refuses instead of missing it.
    let newest = newest_java_name(config)?;
    let Some(state) = read_java_state(&snap_dir, &log_dir)? else {
        return Ok(());
    };
    for warning in &state.warnings {
        log::warn!("Apache ZooKeeper data: {warning}");
    }
    if state.digests.mismatches > 0 {
        // ZooKeeper counts these and goes on; the import does too, loudly.
        log::error!(
            "Apache ZooKeeper data: {} of {} digests do not match the tree rebuilt from {} \
             (first at txns {:x?}): the data differs from what ZooKeeper computed; compare \
             the servers' `hash` output after the start",
            state.digests.mismatches,
            state.digests.compared,
            state.snapshot.display(),
            state.digests.mismatch_zxids
        );
    } else {
        log::info!(
            "Apache ZooKeeper data: {} digests checked, all match",
            state.digests.compared
        );
    }
    let dirs = wal_dirs(config);
    for dir in [&dirs.log_dir, &dirs.snapshot_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let last_zxid = state.tree.last_zxid();
    import_epochs(
        &snap_dir,
        &EpochFiles::new(config),
        last_zxid,
        config.is_distributed(),
    )?;
    let info = save_snapshot(
        &RealStorage,
        &dirs.snapshot_dir,
        0,
        &View {
            tree: &state.tree,
            sessions: &state.sessions,
        },
    )
    .map_err(|e| format!("cannot write the imported state: {e}"))?;
    write_marker(config, newest)?;
    let txns: usize = state.logs.iter().map(|(_, n)| *n).sum();
    log::info!(
        "imported Apache ZooKeeper's data: snapshot {}, {} txns from {} txn log(s) [{}]; last \
         zxid 0x{last_zxid:x}, {} znodes, {} sessions; written as {} ({} left untouched)",
        state.snapshot.display(),
        txns,
        state.logs.len(),
        state
            .logs
            .iter()
            .map(|(p, n)| format!(
                "{}: {n}",
                p.file_name().unwrap_or_default().to_string_lossy()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        state.tree.node_count(),
        state.sessions.len(),
        info.path.display(),
        snap_dir.display()
    );
    Ok(())
}

/// Refuses to serve zkrs's state when ZooKeeper wrote to `version-2` after zkrs accounted
/// for it (see the module docs).
pub fn check_version2_unchanged(config: &Config, last_zxid: i64) -> Result<(), String> {
    let Some(seen) = read_marker(config)? else {
        return Ok(());
    };
    let newest = newest_java_name(config)?;
    if newest > seen {
        let (snap_dir, _) = java_dirs(config);
        return Err(format!(
            "Apache ZooKeeper has written to {} since zkrs imported or exported it (a file of \
             zxid 0x{newest:x}; zkrs knew up to 0x{seen:x}, its own state ends at \
             0x{last_zxid:x}): to move to zkrs again, remove {} (it is imported anew), or \
             remove the newer files to keep zkrs's state",
            snap_dir.display(),
            wal_dirs(config).snapshot_dir.display()
        ));
    }
    Ok(())
}

/// What [`export`] wrote.
#[derive(Debug)]
pub struct Exported {
    pub snapshot: PathBuf,
    pub last_zxid: i64,
    pub znodes: usize,
    pub sessions: usize,
    pub accepted_epoch: i64,
    pub current_epoch: i64,
}

/// `zkrs export-zk`: writes zkrs's state as ZooKeeper's `snapshot.<zxid>` plus epoch files
/// into `to` (default `<dataDir>/version-2`). The server must be stopped (recovery runs as
/// at a start: a torn tail is cut).
pub fn export(config: &Config, to: Option<&Path>) -> Result<Exported, String> {
    if !has_zkrs_data(config)? {
        return Err(format!(
            "{} holds no zkrs data to export",
            wal_dirs(config).snapshot_dir.display()
        ));
    }
    let RecoveredState {
        wal,
        tree,
        sessions,
        ..
    } = recover_state(config)?;
    drop(wal);
    let (java_snap_dir, java_log_dir) = java_dirs(config);
    let target = to.map_or(java_snap_dir.clone(), Path::to_path_buf);
    let own = target == java_snap_dir;
    let last_zxid = tree.last_zxid();
    let mut check = vec![target.clone()];
    if own && java_log_dir != java_snap_dir {
        check.push(java_log_dir);
    }
    for dir in &check {
        for prefix in [SNAP_PREFIX, LOG_PREFIX] {
            if let Some((zxid, path)) = named_files(dir, prefix)?
                .into_iter()
                .find(|(z, _)| *z > last_zxid)
            {
                return Err(format!(
                    "{} (zxid 0x{zxid:x}) is newer than zkrs's state (0x{last_zxid:x}): Apache \
                     ZooKeeper would use it instead; export into an empty directory (--to) or \
                     remove it",
                    path.display()
                ));
            }
        }
    }
    std::fs::create_dir_all(&target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let sessions: Vec<(i64, i32)> = sessions.into_iter().collect();
    let bytes = encode_snapshot_file(&tree, &sessions);
    let name = format!("{SNAP_PREFIX}{last_zxid:x}");
    let path = target.join(&name);
    // A temp name ZooKeeper never takes for a snapshot (its names start "snapshot.").
    let temp = target.join(format!(".{name}.zkrs-export"));
    let sync_dir = || std::fs::File::open(&target)?.sync_all();
    std::fs::write(&temp, &bytes)
        .and_then(|_| std::fs::File::open(&temp)?.sync_all())
        .and_then(|_| std::fs::rename(&temp, &path))
        .and_then(|_| sync_dir())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // Epochs: zkrs's, never below what the target holds or the last zxid's.
    let ours = EpochFiles::new(config);
    let theirs = EpochFiles::in_dir(target.clone());
    let of_zxid = zxid_epoch(last_zxid);
    let current = [
        ours.read("currentEpoch")?,
        theirs.read("currentEpoch")?,
        Some(of_zxid),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(of_zxid);
    let accepted = [
        ours.read("acceptedEpoch")?,
        theirs.read("acceptedEpoch")?,
        Some(current),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(current);
    theirs.write("currentEpoch", current)?;
    theirs.write("acceptedEpoch", accepted)?;
    if own {
        std::fs::create_dir_all(wal_dirs(config).snapshot_dir)
            .map_err(|e| format!("cannot create zkrs's directory: {e}"))?;
        write_marker(config, newest_java_name(config)?)?;
    }
    Ok(Exported {
        snapshot: path,
        last_zxid,
        znodes: tree.node_count(),
        sessions: sessions.len(),
        accepted_epoch: accepted,
        current_epoch: current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::txn::{encode_txn, open_acl_unsafe, OpHint, ZkTxnHeader};
    use crate::zkdata::txnlog::encode_log_file;
    use bytes::{Bytes, BytesMut};

    fn create(path: &str, owner: i64) -> Txn {
        Txn::Create {
            path: path.to_string(),
            data: Bytes::from_static(b"x"),
            acl: open_acl_unsafe(),
            ephemeral_owner: owner,
            parent_cversion: 1,
        }
    }

    fn entry(session: i64, zxid: i64, txn: &Txn) -> Vec<u8> {
        let hdr =
            ZkTxnHeader::for_txn(session, 1, zxid, 1_700_000_000_000, txn, OpHint::None).unwrap();
        let mut out = BytesMut::new();
        encode_txn(&hdr, txn, &[], None, &mut out).unwrap();
        out.to_vec()
    }

    /// A version-2 dir: snapshot.0 (fresh tree), log.1 with a session, a node and an
    /// ephemeral, snapshot.3 (after them), log.4 with one more node.
    fn java_dir(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let fresh = DataTree::new();
        std::fs::write(dir.join("snapshot.0"), encode_snapshot_file(&fresh, &[])).unwrap();
        let txns = [
            (7, Txn::CreateSession { timeout_ms: 5000 }),
            (7, create("/a", 0)),
            (7, create("/a/e", 7)),
        ];
        let mut tree = fresh.clone();
        let mut entries = Vec::new();
        for (i, (session, txn)) in txns.iter().enumerate() {
            let zxid = i as i64 + 1;
            entries.push(entry(*session, zxid, txn));
            tree.apply_txn(
                &crate::tree::TxnHeader {
                    session_id: *session,
                    zxid,
                    time_ms: 1_700_000_000_000,
                    ..Default::default()
                },
                txn,
            );
        }
        std::fs::write(dir.join("log.1"), encode_log_file(0, &entries, 64)).unwrap();
        std::fs::write(
            dir.join("snapshot.3"),
            encode_snapshot_file(&tree, &[(7, 5000)]),
        )
        .unwrap();
        std::fs::write(
            dir.join("log.4"),
            encode_log_file(0, &[entry(7, 4, &create("/b", 0))], 64),
        )
        .unwrap();
    }

    #[test]
    fn state_from_the_newest_snapshot_and_later_logs() {
        let tmp = tempfile::tempdir().unwrap();
        java_dir(tmp.path());
        let state = read_java_state(tmp.path(), tmp.path()).unwrap().unwrap();
        assert_eq!(state.snapshot, tmp.path().join("snapshot.3"));
        assert_eq!(state.tree.last_zxid(), 4);
        assert!(state.tree.get("/b").is_some());
        assert_eq!(state.tree.ephemerals_of(7), vec!["/a/e".to_string()]);
        assert_eq!(state.sessions, vec![(7, 5000)]);
        assert!(state.warnings.is_empty(), "{:?}", state.warnings);
        // The logs in a dataLogDir of their own.
        let logs = tempfile::tempdir().unwrap();
        for name in ["log.1", "log.4"] {
            std::fs::rename(tmp.path().join(name), logs.path().join(name)).unwrap();
        }
        let apart = read_java_state(tmp.path(), logs.path()).unwrap().unwrap();
        assert_eq!(apart.tree, state.tree);
        assert_eq!(apart.logs.len(), 1, "only log.4 follows snapshot.3");
    }

    #[test]
    fn digests_are_checked_as_zookeeper_checks_them() {
        let tmp = tempfile::tempdir().unwrap();
        java_dir(tmp.path());
        // snapshot.3 carries the digest of its tree at zxid 3; log.4's txn none.
        let state = read_java_state(tmp.path(), tmp.path()).unwrap().unwrap();
        assert_eq!(
            state.digests,
            DigestCheck {
                compared: 1,
                mismatches: 0,
                mismatch_zxids: vec![]
            }
        );
        let after = state.tree.digest();
        let with_digest = |tree_digest: i64| {
            let txn = create("/b", 0);
            let hdr = ZkTxnHeader::for_txn(7, 1, 4, 1_700_000_000_000, &txn, OpHint::None).unwrap();
            let digest = crate::zab::txn::TxnDigest {
                version: 2,
                tree_digest,
            };
            let mut out = BytesMut::new();
            encode_txn(&hdr, &txn, &[], Some(&digest), &mut out).unwrap();
            encode_log_file(0, &[out.to_vec()], 64)
        };
        // The txn's digest, right and wrong.
        std::fs::write(tmp.path().join("log.4"), with_digest(after)).unwrap();
        let state = read_java_state(tmp.path(), tmp.path()).unwrap().unwrap();
        assert_eq!((state.digests.compared, state.digests.mismatches), (2, 0));
        std::fs::write(tmp.path().join("log.4"), with_digest(after ^ 1)).unwrap();
        let state = read_java_state(tmp.path(), tmp.path()).unwrap().unwrap();
        assert_eq!((state.digests.compared, state.digests.mismatches), (2, 1));
        assert_eq!(state.digests.mismatch_zxids, vec![4]);
        assert!(
            state.tree.get("/b").is_some(),
            "a mismatch is counted, not refused"
        );
        // A wrong snapshot digest, at a zxid the log reaches (a fuzzy snapshot's): the
        // txns before it are not compared; at that txn the snapshot's digest is (wrong),
        // then the txn's own (right).
        let path = tmp.path().join("snapshot.3");
        let bytes = std::fs::read(&path).unwrap();
        let mut wrong = bytes[..bytes.len() - (20 + 13)].to_vec();
        wrong.extend_from_slice(&4i64.to_be_bytes());
        wrong.extend_from_slice(&2i32.to_be_bytes());
        wrong.extend_from_slice(&(after ^ 2).to_be_bytes());
        crate::zkdata::snapfile::seal(&mut wrong);
        std::fs::write(&path, wrong).unwrap();
        std::fs::write(tmp.path().join("log.4"), with_digest(after)).unwrap();
        let state = read_java_state(tmp.path(), tmp.path()).unwrap().unwrap();
        assert_eq!(state.snapshot, path);
        assert_eq!((state.digests.compared, state.digests.mismatches), (2, 1));
        assert_eq!(state.digests.mismatch_zxids, vec![4]);
    }

    #[test]
    fn a_damaged_snapshot_falls_back_to_an_older_one() {
        let tmp = tempfile::tempdir().unwrap();
        java_dir(tmp.path());
        let path = tmp.path().join("snapshot.3");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let state = read_java_state(tmp.path(), tmp.path()).unwrap().unwrap();
        assert_eq!(state.snapshot, tmp.path().join("snapshot.0"));
        assert_eq!(state.tree.last_zxid(), 4);
        assert!(state.tree.get("/a/e").is_some());
        assert_eq!(state.sessions, vec![(7, 5000)]);
        assert_eq!(state.warnings.len(), 1, "{:?}", state.warnings);
        // Both damaged: refused, naming each file and offset.
        let zero = tmp.path().join("snapshot.0");
        let mut bytes = std::fs::read(&zero).unwrap();
        bytes[0] = b'X';
        std::fs::write(&zero, &bytes).unwrap();
        let e = read_java_state(tmp.path(), tmp.path()).unwrap_err();
        assert!(
            e.contains("snapshot.3: at offset") && e.contains("snapshot.0: at offset 0"),
            "{e}"
        );
    }

    #[test]
    fn corrupt_logs_gaps_and_missing_snapshots_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        java_dir(tmp.path());
        // Fall back to snapshot.0 so that log.1 is read, then corrupt its second record.
        std::fs::remove_file(tmp.path().join("snapshot.3")).unwrap();
        let log = tmp.path().join("log.1");
        let bytes = std::fs::read(&log).unwrap();
        let offsets: Vec<u64> = scan_log(&bytes).records.iter().map(|(o, _)| *o).collect();
        let mut bad = bytes.clone();
        bad[offsets[1] as usize + 30] ^= 1;
        std::fs::write(&log, &bad).unwrap();
        let e = read_java_state(tmp.path(), tmp.path()).unwrap_err();
        assert!(
            e.contains("log.1 is corrupt at offset") && e.contains(&offsets[1].to_string()),
            "{e}"
        );
        // A torn last record of log.1: then log.4 does not follow (txn 3 is lost).
        let mut torn = bytes.clone();
        torn[offsets[2] as usize + 20..].fill(0);
        std::fs::write(&log, &torn).unwrap();
        let e = read_java_state(tmp.path(), tmp.path()).unwrap_err();
        assert!(e.contains("does not follow"), "{e}");
        // Torn in the newest log instead: tolerated, with a warning.
        std::fs::write(&log, &bytes).unwrap();
        let log4 = tmp.path().join("log.4");
        let mut torn4 = std::fs::read(&log4).unwrap();
        torn4[30..].fill(0);
        std::fs::write(&log4, &torn4).unwrap();
        let state = read_java_state(tmp.path(), tmp.path()).unwrap().unwrap();
        assert_eq!(state.tree.last_zxid(), 3);
        assert_eq!(state.warnings.len(), 1, "{:?}", state.warnings);
        // Logs but no snapshot.
        std::fs::remove_file(tmp.path().join("snapshot.0")).unwrap();
        let e = read_java_state(tmp.path(), tmp.path()).unwrap_err();
        assert!(e.contains("no snapshot"), "{e}");
        // Nothing at all: nothing to import.
        let empty = tempfile::tempdir().unwrap();
        assert!(read_java_state(empty.path(), empty.path())
            .unwrap()
            .is_none());
    }

    #[test]
    fn fuzzy_creates_adjust_the_parent_only_for_op_create() {
        let mut tree = DataTree::new();
        let hdr = |zxid| crate::tree::TxnHeader {
            session_id: 7,
            zxid,
            time_ms: 1_700_000_000_000,
            ..Default::default()
        };
        tree.apply_txn(&hdr(1), &create("/p", 0));
        tree.apply_txn(&hdr(2), &create("/p/c", 0));
        let cversion = tree.get("/p").unwrap().cversion;
        let again = Txn::Create {
            path: "/p/c".to_string(),
            data: Bytes::from_static(b"x"),
            acl: open_acl_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: cversion + 5,
        };
        let decoded = |op_hint, zxid| {
            let hdr = ZkTxnHeader::for_txn(7, 1, zxid, 1_700_000_000_000, &again, op_hint).unwrap();
            let mut out = BytesMut::new();
            encode_txn(&hdr, &again, &[], None, &mut out).unwrap();
            crate::zab::txn::decode_txn_full(&out).unwrap()
        };
        // create2 (op 15) of an existing znode: nothing changes but the zxid.
        let create2 = decoded(OpHint::None, 3);
        assert_eq!(create2.header.op, 15);
        apply_fuzzy(&mut tree, &create2);
        assert_eq!(tree.last_zxid(), 3);
        assert_eq!(tree.get("/p").unwrap().cversion, cversion);
        // create (op 1): the parent takes the txn's cversion and its zxid as pzxid.
        let create1 = decoded(OpHint::Create, 4);
        assert_eq!(create1.header.op, 1);
        apply_fuzzy(&mut tree, &create1);
        assert_eq!(tree.last_zxid(), 4);
        assert_eq!(tree.get("/p").unwrap().cversion, cversion + 5);
        assert_eq!(tree.get("/p").unwrap().pzxid, 4);
    }

    #[test]
    fn epoch_files_as_zookeeper_reads_them() {
        let java = tempfile::tempdir().unwrap();
        let ours_dir = tempfile::tempdir().unwrap();
        let ours = EpochFiles::in_dir(ours_dir.path().to_path_buf());
        let zxid = 0x3_0000_0005;
        // Both missing: the last zxid's epoch.
        import_epochs(java.path(), &ours, zxid, true).unwrap();
        assert_eq!(ours.read("currentEpoch").unwrap(), Some(3));
        assert_eq!(ours.read("acceptedEpoch").unwrap(), Some(3));
        // Carried over.
        std::fs::write(java.path().join("currentEpoch"), "4").unwrap();
        std::fs::write(java.path().join("acceptedEpoch"), "5").unwrap();
        import_epochs(java.path(), &ours, zxid, true).unwrap();
        assert_eq!(ours.read("currentEpoch").unwrap(), Some(4));
        assert_eq!(ours.read("acceptedEpoch").unwrap(), Some(5));
        // acceptedEpoch missing while currentEpoch is ahead of the zxid: refused.
        std::fs::remove_file(java.path().join("acceptedEpoch")).unwrap();
        let e = import_epochs(java.path(), &ours, zxid, true).unwrap_err();
        assert!(e.contains("accepted epoch, 3"), "{e}");
        // currentEpoch behind the log: refused, unless currentEpoch.tmp says more.
        std::fs::write(java.path().join("currentEpoch"), "2").unwrap();
        std::fs::write(java.path().join("acceptedEpoch"), "3").unwrap();
        let e = import_epochs(java.path(), &ours, zxid, true).unwrap_err();
        assert!(e.contains("older than the last zxid"), "{e}");
        std::fs::write(java.path().join("currentEpoch.tmp"), "3").unwrap();
        import_epochs(java.path(), &ours, zxid, true).unwrap();
        assert_eq!(ours.read("currentEpoch").unwrap(), Some(3));
        // Standalone: copied as they are, unchecked.
        let standalone_dir = tempfile::tempdir().unwrap();
        let standalone = EpochFiles::in_dir(standalone_dir.path().to_path_buf());
        import_epochs(java.path(), &standalone, zxid, false).unwrap();
        assert_eq!(standalone.read("currentEpoch").unwrap(), Some(2));
        // Not a number: refused.
        std::fs::write(java.path().join("currentEpoch"), "x").unwrap();
        assert!(import_epochs(java.path(), &ours, zxid, true).is_err());
    }
}
