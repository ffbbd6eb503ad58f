//! Start-up recovery: find the newest usable snapshot, scan the log after it, cut a torn
//! tail, and refuse, loudly, to skip corruption.
//!
//! What a crash can leave, given how the writer works (see `writer`): each batch is one
//! `write_at` followed by one sync, and the next batch is written only after that sync
//! returned; a new segment's header (and the directory entry) is synced before any record is
//! written to it. So the only bytes a crash can damage are those of the last batch, which
//! was never acknowledged: it may be missing, cut short, or, with out-of-order writeback,
//! have holes and stale zeros between sectors that did reach the disk.
//!
//! The scan of a segment therefore classifies the first bad spot (a bad CRC, an impossible
//! or partial length, a zero length followed by non-zero bytes) by what follows it:
//! - only zeros, the end of the file, or valid records of the *same* batch as the bad spot
//!   (the batch is known from the last good record: its `batch_seq`, plus one if that record
//!   ended its batch): a torn write of the last batch ([`ScanEnd::Torn`]); recovery keeps the
//!   records before it and cuts the file there.
//! - a valid record of a *later* batch, or a later segment: the bad batch had been synced, so
//!   this is corruption of acknowledged data ([`ScanEnd::Corrupt`]) and zkrs refuses to start
//!   with the file, the byte offset and what to do.
//!
//! A record that passes its CRC but does not decode, breaks the batch structure, or whose
//! zxid does not follow the previous one is corruption too: a torn write cannot produce it.
//!
//! Like every log, a checksum failure in the very last record with nothing after it cannot be
//! told from a torn write, and is treated as one (ZooKeeper does the same).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::tree::{Txn, TxnHeader};

use super::format::{
    decode_record, peek_record, HeaderError, LoggedTxn, RecordError, SegmentHeader,
    RECORD_PREFIX_LEN, SEGMENT_HEADER_LEN,
};
use super::snapshot::{load_snapshot, verify_snapshot, SnapshotError, SnapshotSink};
use super::storage::Storage;
use super::{parse_name, zxid_follows, SEGMENT_PREFIX, SNAPSHOT_PREFIX, TEMP_SUFFIX};

/// A candidate record after bad bytes must have a zxid within this distance above the last
/// good one, and a batch_seq within `PLAUSIBLE_SEQ_SPAN` of the expected one, before we pay
/// for its CRC: random garbage then almost never costs a CRC.
const PLAUSIBLE_ZXID_SPAN: i64 = 1 << 40;
const PLAUSIBLE_SEQ_SPAN: u64 = 1 << 32;

/// What is wrong at a bad spot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    Header(HeaderError),
    Record(RecordError),
    /// A zero length field (the end marker) with non-zero bytes after it.
    DataAfterEndMarker,
    /// A valid record whose batch_seq breaks the batch structure.
    BatchOrder {
        expected: u64,
        found: u64,
    },
    /// The first record's zxid differs from the segment header's.
    FirstZxid {
        header: i64,
        record: i64,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Header(e) => write!(f, "bad segment header: {e}"),
            Damage::Record(e) => write!(f, "{e}"),
            Damage::DataAfterEndMarker => {
                write!(
                    f,
                    "zero record length (end of log) followed by non-zero bytes"
                )
            }
            Damage::BatchOrder { expected, found } => {
                write!(f, "record has batch sequence {found}, expected {expected}")
            }
            Damage::FirstZxid { header, record } => write!(
                f,
                "first record has zxid {record:#x} but the segment header says {header:#x}"
            ),
        }
    }
}

/// How the records of a segment end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// The records end at `offset`; only zeros or the end of the file follow.
    Clean { offset: u64 },
    /// A torn write of the last batch starts at `offset`: cut the file there.
    Torn { offset: u64, damage: Damage },
    /// Damage at `offset` that a torn write cannot explain.
    Corrupt {
        offset: u64,
        damage: Damage,
        /// A valid record of a later batch found after the damage.
        later_record_offset: Option<u64>,
    },
}

/// One segment's valid records and how they end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    pub header: Option<SegmentHeader>,
    /// (byte offset, record), in file order.
    pub records: Vec<(u64, LoggedTxn)>,
    pub end: ScanEnd,
}

/// Scans one segment's bytes. `name_zxid` is the zxid in the file name. Pure.
pub fn scan_segment(bytes: &[u8], name_zxid: i64) -> SegmentScan {
    let header = match SegmentHeader::decode(bytes) {
        Ok(header) => header,
        Err(e) => {
            // The header is synced before any record is written, so any valid record after
            // a bad header means the header was damaged after the fact.
            let later = find_valid_record(bytes, SEGMENT_HEADER_LEN, name_zxid, None);
            let damage = Damage::Header(e);
            let end = match later {
                Some(later) => ScanEnd::Corrupt {
                    offset: 0,
                    damage,
                    later_record_offset: Some(later as u64),
                },
                None => ScanEnd::Torn { offset: 0, damage },
            };
            return SegmentScan {
                header: None,
                records: Vec::new(),
                end,
            };
        }
    };
    let mut records: Vec<(u64, LoggedTxn)> = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN;
    let damage = loop {
        let rest = &bytes[offset..];
        match decode_record(rest) {
            Ok(None) => {
                if rest.iter().all(|&b| b == 0) {
                    return SegmentScan {
                        header: Some(header),
                        records,
                        end: ScanEnd::Clean {
                            offset: offset as u64,
                        },
                    };
                }
                break Damage::DataAfterEndMarker;
            }
            Ok(Some((record, consumed))) => {
                let expected = expected_seq(&header, records.last());
                if record.batch.seq != expected {
                    let damage = Damage::BatchOrder {
                        expected,
                        found: record.batch.seq,
                    };
                    return corrupt(header, records, offset, damage);
                }
                if records.is_empty() && record.header.zxid != header.first_zxid {
                    return corrupt(
                        header,
                        records,
                        offset,
                        Damage::FirstZxid {
                            header: header.first_zxid,
                            record: record.header.zxid,
                        },
                    );
                }
                records.push((offset as u64, record));
                offset += consumed;
            }
            Err(error @ RecordError::Malformed(_)) => {
                return corrupt(header, records, offset, Damage::Record(error));
            }
            Err(error) => break Damage::Record(error),
        }
    };
    // A bad spot at `offset`. Its batch is the last good record's, or the next one if that
    // record ended its batch; a valid record of any batch after that proves corruption.
    let (min_zxid, min_later_seq) = match records.last() {
        Some((_, last)) => (
            last.header.zxid.saturating_add(1),
            last.batch
                .seq
                .saturating_add(if last.batch.last_in_batch { 2 } else { 1 }),
        ),
        None => (header.first_zxid, header.first_batch_seq.saturating_add(1)),
    };
    let end = match find_valid_record(bytes, offset + 1, min_zxid, Some(min_later_seq)) {
        Some(later) => ScanEnd::Corrupt {
            offset: offset as u64,
            damage,
            later_record_offset: Some(later as u64),
        },
        None => ScanEnd::Torn {
            offset: offset as u64,
            damage,
        },
    };
    SegmentScan {
        header: Some(header),
        records,
        end,
    }
}

fn corrupt(
    header: SegmentHeader,
    records: Vec<(u64, LoggedTxn)>,
    offset: usize,
    damage: Damage,
) -> SegmentScan {
    SegmentScan {
        header: Some(header),
        records,
        end: ScanEnd::Corrupt {
            offset: offset as u64,
            damage,
            later_record_offset: None,
        },
    }
}

/// The batch_seq the next record must have.
fn expected_seq(header: &SegmentHeader, last: Option<&(u64, LoggedTxn)>) -> u64 {
    match last {
        None => header.first_batch_seq,
        Some((_, last)) if last.batch.last_in_batch => last.batch.seq.wrapping_add(1),
        Some((_, last)) => last.batch.seq,
    }
}

/// The offset of the first record at or after `from` that passes its CRC, decodes, has a zxid
/// in `min_zxid..min_zxid + PLAUSIBLE_ZXID_SPAN` and, if `min_seq` is given, a batch_seq in
/// `min_seq..min_seq + PLAUSIBLE_SEQ_SPAN`.
fn find_valid_record(
    bytes: &[u8],
    from: usize,
    min_zxid: i64,
    min_seq: Option<u64>,
) -> Option<usize> {
    let mut candidate = from;
    while candidate + RECORD_PREFIX_LEN <= bytes.len() {
        // A non-zero length has a non-zero byte among its four: skip runs of zeros.
        let nonzero = bytes[candidate..].iter().position(|&b| b != 0)?;
        let first_nonzero = candidate + nonzero;
        candidate = candidate.max(first_nonzero.saturating_sub(3));
        if let Some(peek) = peek_record(&bytes[candidate..]) {
            let zxid_ok =
                peek.zxid >= min_zxid && peek.zxid.wrapping_sub(min_zxid) < PLAUSIBLE_ZXID_SPAN;
            let seq_ok = min_seq.is_none_or(|min| {
                peek.batch_seq >= min && peek.batch_seq - min < PLAUSIBLE_SEQ_SPAN
            });
            let fits = candidate + RECORD_PREFIX_LEN + peek.payload_len <= bytes.len();
            if zxid_ok
                && seq_ok
                && fits
                && matches!(decode_record(&bytes[candidate..]), Ok(Some(_)))
            {
                return Some(candidate);
            }
        }
        candidate += 1;
    }
    None
}

/// The log and snapshot directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalDirs {
    pub log_dir: PathBuf,
    pub snapshot_dir: PathBuf,
}

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    pub offset: u64,
    pub damage: Damage,
}

/// What `Wal::open` found.
#[derive(Debug)]
pub struct Recovered {
    /// The snapshot loaded into the sink; None on a fresh start (no snapshot and no log):
    /// the caller must then save a snapshot of its initial tree before appending.
    pub snapshot: Option<(PathBuf, i64)>,
    /// Every logged txn after the snapshot, in zxid order, to apply to the sink's state.
    pub txns: Vec<(TxnHeader, Txn)>,
    /// The zxid of the last txn in the log or the snapshot (0 on a fresh start).
    pub last_zxid: i64,
    /// Newer snapshots that failed their checks and were passed over (the log covers them).
    pub skipped_snapshots: Vec<(PathBuf, SnapshotError)>,
    /// The torn tail cut off the last segment, if any.
    pub torn_tail: Option<TornTail>,
    /// Segments removed because they held no complete record (a crash while rolling).
    pub removed_segments: Vec<PathBuf>,
    /// The batch_seq to give the next batch.
    pub next_batch_seq: u64,
}

/// Why zkrs refuses to start. Every message says what to do.
#[derive(Debug)]
pub enum RecoveryError {
    Io {
        path: PathBuf,
        operation: &'static str,
        error: io::Error,
    },
    CorruptLog {
        file: PathBuf,
        offset: u64,
        damage: Damage,
        /// Why this is not a torn write: what valid data follows the damage.
        evidence: String,
    },
    ZxidGap {
        file: PathBuf,
        offset: u64,
        previous_zxid: i64,
        zxid: i64,
    },
    /// Log segments but no snapshot at all.
    LogWithoutSnapshot { log_dir: PathBuf },
    /// Snapshots, none usable.
    NoValidSnapshot {
        failures: Vec<(PathBuf, SnapshotError)>,
    },
    /// The newest valid snapshot is older than a damaged one, and the log does not hold the
    /// txns in between.
    SnapshotNotCoveredByLog {
        damaged: PathBuf,
        damaged_zxid: i64,
        error: SnapshotError,
        fallback_zxid: i64,
        log_last_zxid: Option<i64>,
    },
}

const REFUSE: &str = "zkrs refuses to start";
const RESTORE: &str = "restore this server's data directories from a backup, or in an ensemble clear them and let the server resync from the leader";

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Io {
                path,
                operation,
                error,
            } => write!(
                f,
                "{REFUSE}: cannot {operation} {}: {error}. Fix the file system or permissions and restart",
                path.display()
            ),
            RecoveryError::CorruptLog {
                file,
                offset,
                damage,
                evidence,
            } => write!(
                f,
                "{REFUSE}: txn log {} is corrupt at byte offset {offset}: {damage}; {evidence}, so this is damage to data that was synced, not a torn write. Either {RESTORE}, or accept losing every txn from this point on by running `zkrs log truncate {} {offset}` (it also removes later segments) and restart",
                file.display(),
                file.display()
            ),
            RecoveryError::ZxidGap {
                file,
                offset,
                previous_zxid,
                zxid,
            } => write!(
                f,
                "{REFUSE}: txn log {} has zxid {zxid:#x} at byte offset {offset} right after zxid {previous_zxid:#x}: txns are missing (a log segment deleted or damaged). {RESTORE}",
                file.display()
            ),
            RecoveryError::LogWithoutSnapshot { log_dir } => write!(
                f,
                "{REFUSE}: {} holds txn log segments but there is no snapshot to replay them onto (snapshots deleted or dataDir pointed elsewhere). Point dataDir at the snapshots, or {RESTORE}",
                log_dir.display()
            ),
            RecoveryError::NoValidSnapshot { failures } => {
                write!(f, "{REFUSE}: no snapshot is usable:")?;
                for (path, error) in failures {
                    write!(f, " {}: {error};", path.display())?;
                }
                write!(f, " {RESTORE}")
            }
            RecoveryError::SnapshotNotCoveredByLog {
                damaged,
                damaged_zxid,
                error,
                fallback_zxid,
                log_last_zxid,
            } => {
                write!(
                    f,
                    "{REFUSE}: snapshot {} (zxid {damaged_zxid:#x}) is damaged: {error}; the next older snapshot is at zxid {fallback_zxid:#x} but the txn log ",
                    damaged.display()
                )?;
                match log_last_zxid {
                    Some(last) => write!(f, "does not hold every txn up to {damaged_zxid:#x} after it (it ends at {last:#x} or has a gap)")?,
                    None => write!(f, "holds no txns after it")?,
                }
                write!(f, ". {RESTORE}")
            }
        }
    }
}

impl std::error::Error for RecoveryError {}

fn io_error(path: &Path, operation: &'static str) -> impl FnOnce(io::Error) -> RecoveryError {
    let path = path.to_path_buf();
    move |error| RecoveryError::Io {
        path,
        operation,
        error,
    }
}

fn list_named(
    storage: &impl Storage,
    dir: &Path,
    prefix: &str,
) -> Result<Vec<(i64, PathBuf)>, RecoveryError> {
    let mut named: Vec<(i64, PathBuf)> = storage
        .list(dir)
        .map_err(io_error(dir, "list"))?
        .into_iter()
        .filter_map(|name| parse_name(&name, prefix).map(|zxid| (zxid, dir.join(name))))
        .collect();
    named.sort();
    Ok(named)
}

/// Runs recovery: loads the newest usable snapshot into `sink` and returns the txns after
/// it. Cuts a torn tail and removes segments left empty by a crash (durably) before it
/// returns.
pub fn recover<S: Storage>(
    storage: &S,
    dirs: &WalDirs,
    sink: &mut dyn SnapshotSink,
) -> Result<Recovered, RecoveryError> {
    for dir in [&dirs.log_dir, &dirs.snapshot_dir] {
        storage
            .create_dir_all(dir)
            .map_err(io_error(dir, "create"))?;
    }
    remove_temp_snapshots(storage, &dirs.snapshot_dir)?;
    let segments = list_named(storage, &dirs.log_dir, SEGMENT_PREFIX)?;
    let snapshots = list_named(storage, &dirs.snapshot_dir, SNAPSHOT_PREFIX)?;
    if snapshots.is_empty() {
        if !segments.is_empty() {
            return Err(RecoveryError::LogWithoutSnapshot {
                log_dir: dirs.log_dir.clone(),
            });
        }
        sink.set_last_zxid(0);
        return Ok(Recovered {
            snapshot: None,
            txns: Vec::new(),
            last_zxid: 0,
            skipped_snapshots: Vec::new(),
            torn_tail: None,
            removed_segments: Vec::new(),
            next_batch_seq: 0,
        });
    }

    // The newest snapshot that passes its checks.
    let mut skipped: Vec<(PathBuf, i64, SnapshotError)> = Vec::new();
    let mut chosen = None;
    for (zxid, path) in snapshots.iter().rev() {
        let bytes = storage.read_all(path).map_err(io_error(path, "read"))?;
        match verify_snapshot(&bytes) {
            Ok(header) if header.last_zxid == *zxid => {
                chosen = Some((*zxid, path.clone(), bytes));
                break;
            }
            Ok(header) => skipped.push((
                path.clone(),
                *zxid,
                SnapshotError::NameMismatch {
                    name_zxid: *zxid,
                    header_zxid: header.last_zxid,
                },
            )),
            Err(error) => skipped.push((path.clone(), *zxid, error)),
        }
    }
    let Some((snapshot_zxid, snapshot_path, snapshot_bytes)) = chosen else {
        return Err(RecoveryError::NoValidSnapshot {
            failures: skipped.into_iter().map(|(p, _, e)| (p, e)).collect(),
        });
    };
    for (path, _, error) in &skipped {
        log::error!(
            "snapshot {} is damaged ({error}); falling back to {}",
            path.display(),
            snapshot_path.display()
        );
    }

    let log = match scan_log(storage, &segments, snapshot_zxid) {
        Ok(log) => log,
        // A gap right after an older snapshot we fell back to: say which snapshot failed.
        Err(RecoveryError::ZxidGap { previous_zxid, .. })
            if previous_zxid == snapshot_zxid && !skipped.is_empty() =>
        {
            let (damaged, damaged_zxid, error) = skipped.swap_remove(0);
            return Err(RecoveryError::SnapshotNotCoveredByLog {
                damaged,
                damaged_zxid,
                error,
                fallback_zxid: snapshot_zxid,
                log_last_zxid: None,
            });
        }
        Err(e) => return Err(e),
    };
    let log_last_zxid = log.last.map(|(zxid, _)| zxid);

    // A damaged newer snapshot is harmless only if the log replays past it (the scan has
    // checked that the log continues without a gap from the snapshot we fell back to).
    let newest_damaged = (0..skipped.len()).max_by_key(|&i| skipped[i].1);
    if let Some(index) = newest_damaged {
        let damaged_zxid = skipped[index].1;
        if log_last_zxid.is_none_or(|last| last < damaged_zxid) {
            let (damaged, damaged_zxid, error) = skipped.swap_remove(index);
            return Err(RecoveryError::SnapshotNotCoveredByLog {
                damaged,
                damaged_zxid,
                error,
                fallback_zxid: snapshot_zxid,
                log_last_zxid,
            });
        }
    }
    let skipped = skipped.into_iter().map(|(p, _, e)| (p, e)).collect();
    finish(
        storage,
        dirs,
        sink,
        log,
        snapshot_zxid,
        snapshot_path,
        snapshot_bytes,
        skipped,
    )
}

struct LogScan {
    txns: Vec<(TxnHeader, Txn)>,
    /// (zxid, batch_seq) of the last valid record scanned.
    last: Option<(i64, u64)>,
    torn_tail: Option<TornTail>,
    remove: Vec<PathBuf>,
}

/// Scans the segments that may hold txns after `snapshot_zxid`: the last one starting at or
/// before it, and every later one.
fn scan_log<S: Storage>(
    storage: &S,
    segments: &[(i64, PathBuf)],
    snapshot_zxid: i64,
) -> Result<LogScan, RecoveryError> {
    let start = segments
        .iter()
        .rposition(|(zxid, _)| *zxid <= snapshot_zxid)
        .unwrap_or(0);
    let mut scan = LogScan {
        txns: Vec::new(),
        last: None,
        torn_tail: None,
        remove: Vec::new(),
    };
    let scanned = segments.get(start..).unwrap_or(&[]);
    for (index, (name_zxid, path)) in scanned.iter().enumerate() {
        let is_last = index + 1 == scanned.len();
        let later_segment = scanned.get(index + 1).map(|(_, p)| p.clone());
        let bytes = storage.read_all(path).map_err(io_error(path, "read"))?;
        let segment = scan_segment(&bytes, *name_zxid);
        if let Some(header) = &segment.header {
            if header.first_zxid != *name_zxid {
                return Err(RecoveryError::CorruptLog {
                    file: path.clone(),
                    offset: 0,
                    damage: Damage::FirstZxid {
                        header: header.first_zxid,
                        record: *name_zxid,
                    },
                    evidence: "the file name and the header disagree".to_string(),
                });
            }
        }
        let had_records = !segment.records.is_empty();
        for (offset, record) in segment.records {
            let zxid = record.header.zxid;
            // Records after the snapshot must continue from the snapshot or the previous
            // record, whichever is later; records before it only from the previous record.
            let previous = match scan.last {
                Some((previous, _)) if zxid <= snapshot_zxid || previous >= snapshot_zxid => {
                    Some(previous)
                }
                _ if zxid > snapshot_zxid => Some(snapshot_zxid),
                _ => None,
            };
            if let Some(previous) = previous {
                if !zxid_follows(previous, zxid) {
                    return Err(RecoveryError::ZxidGap {
                        file: path.clone(),
                        offset,
                        previous_zxid: previous,
                        zxid,
                    });
                }
            }
            if zxid > snapshot_zxid {
                scan.txns.push((record.header, record.txn));
            }
            scan.last = Some((zxid, record.batch.seq));
        }
        match segment.end {
            ScanEnd::Clean { .. } if !had_records => {
                if !is_last {
                    return Err(RecoveryError::CorruptLog {
                        file: path.clone(),
                        offset: SEGMENT_HEADER_LEN as u64,
                        damage: Damage::DataAfterEndMarker,
                        evidence: format!(
                            "the segment holds no records yet a later segment {} exists",
                            later_segment.unwrap_or_default().display()
                        ),
                    });
                }
                scan.remove.push(path.clone());
            }
            ScanEnd::Clean { .. } => {}
            ScanEnd::Torn { offset, damage } => {
                if let Some(later) = later_segment {
                    return Err(RecoveryError::CorruptLog {
                        file: path.clone(),
                        offset,
                        damage,
                        evidence: format!("a later segment {} exists", later.display()),
                    });
                }
                if !had_records {
                    scan.remove.push(path.clone());
                } else {
                    scan.torn_tail = Some(TornTail {
                        file: path.clone(),
                        offset,
                        damage,
                    });
                }
            }
            ScanEnd::Corrupt {
                offset,
                damage,
                later_record_offset,
            } => {
                let evidence = match later_record_offset {
                    Some(later) => {
                        format!("a valid record of a later batch follows at byte offset {later}")
                    }
                    None => "the record passes its checksum".to_string(),
                };
                return Err(RecoveryError::CorruptLog {
                    file: path.clone(),
                    offset,
                    damage,
                    evidence,
                });
            }
        }
    }
    if let (Some(first), None) = (scanned.first(), scan.last) {
        // Every scanned segment was empty: the log adds nothing to the snapshot.
        log::debug!("no records in {} and after", first.1.display());
    }
    Ok(scan)
}

#[allow(clippy::too_many_arguments)]
fn finish<S: Storage>(
    storage: &S,
    dirs: &WalDirs,
    sink: &mut dyn SnapshotSink,
    log: LogScan,
    snapshot_zxid: i64,
    snapshot_path: PathBuf,
    snapshot_bytes: Vec<u8>,
    skipped_snapshots: Vec<(PathBuf, SnapshotError)>,
) -> Result<Recovered, RecoveryError> {
    if let Some(torn) = &log.torn_tail {
        log::warn!(
            "txn log {} has a torn tail at byte offset {} ({}); cutting it off (it was never acknowledged)",
            torn.file.display(),
            torn.offset,
            torn.damage
        );
        let mut file = storage
            .open(&torn.file)
            .map_err(io_error(&torn.file, "open"))?;
        storage
            .truncate(&mut file, torn.offset)
            .map_err(io_error(&torn.file, "truncate"))?;
        storage
            .sync(&mut file)
            .map_err(io_error(&torn.file, "sync"))?;
    }
    for path in &log.remove {
        log::warn!(
            "removing txn log segment {}: it holds no complete record (crash while it was started)",
            path.display()
        );
        storage.remove(path).map_err(io_error(path, "remove"))?;
    }
    if !log.remove.is_empty() {
        storage
            .sync_dir(&dirs.log_dir)
            .map_err(io_error(&dirs.log_dir, "sync"))?;
    }
    load_snapshot(&snapshot_bytes, sink).map_err(|error| RecoveryError::NoValidSnapshot {
        failures: vec![(snapshot_path.clone(), error)],
    })?;
    let last_zxid = log
        .last
        .map_or(snapshot_zxid, |(zxid, _)| zxid.max(snapshot_zxid));
    Ok(Recovered {
        snapshot: Some((snapshot_path, snapshot_zxid)),
        txns: log.txns,
        last_zxid,
        skipped_snapshots,
        torn_tail: log.torn_tail,
        removed_segments: log.remove,
        next_batch_seq: log.last.map_or(0, |(_, seq)| seq.wrapping_add(1)),
    })
}

fn remove_temp_snapshots<S: Storage>(storage: &S, dir: &Path) -> Result<(), RecoveryError> {
    let names = storage.list(dir).map_err(io_error(dir, "list"))?;
    let mut removed = false;
    for name in names {
        if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            let path = dir.join(&name);
            log::info!("removing unfinished snapshot {}", path.display());
            storage.remove(&path).map_err(io_error(&path, "remove"))?;
            removed = true;
        }
    }
    if removed {
        storage.sync_dir(dir).map_err(io_error(dir, "sync"))?;
    }
    Ok(())
}

/// For `zkrs log truncate FILE OFFSET` (to be added to the CLI): cuts a segment at `offset`
/// and removes every later segment, durably. Everything from `offset` on is lost; the
/// operator asked for it after reading the refusal message.
pub fn truncate_log_at<S: Storage>(
    storage: &S,
    log_dir: &Path,
    file: &Path,
    offset: u64,
) -> Result<Vec<PathBuf>, RecoveryError> {
    let segments = list_named(storage, log_dir, SEGMENT_PREFIX)?;
    let Some(position) = segments.iter().position(|(_, p)| p == file) else {
        return Err(RecoveryError::Io {
            path: file.to_path_buf(),
            operation: "find",
            error: io::Error::new(
                io::ErrorKind::NotFound,
                "not a log segment of this directory",
            ),
        });
    };
    let mut handle = storage.open(file).map_err(io_error(file, "open"))?;
    if offset <= SEGMENT_HEADER_LEN as u64 {
        drop(handle);
        storage.remove(file).map_err(io_error(file, "remove"))?;
    } else {
        storage
            .truncate(&mut handle, offset)
            .map_err(io_error(file, "truncate"))?;
        storage.sync(&mut handle).map_err(io_error(file, "sync"))?;
    }
    let mut removed = Vec::new();
    for (_, later) in &segments[position + 1..] {
        storage.remove(later).map_err(io_error(later, "remove"))?;
        removed.push(later.clone());
    }
    storage
        .sync_dir(log_dir)
        .map_err(io_error(log_dir, "sync"))?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::format::{encode_record, BatchMark};
    use crate::wal::sim::SimRng;

    fn segment(first_batch_seq: u64, records: &[(i64, u64, bool)]) -> Vec<u8> {
        let mut bytes = SegmentHeader {
            db_id: 0,
            first_zxid: records.first().map_or(1, |r| r.0),
            first_batch_seq,
        }
        .encode()
        .to_vec();
        for &(zxid, seq, last_in_batch) in records {
            let header = TxnHeader {
                session_id: 1,
                zxid,
                time_ms: 0,
                ..Default::default()
            };
            let txn = Txn::Delete {
                path: format!("/{zxid}"),
            };
            let batch = BatchMark { seq, last_in_batch };
            encode_record(&header, &txn, batch, &mut bytes).unwrap();
        }
        bytes
    }

    #[test]
    fn clean_segment_ends_at_zeros_or_eof() {
        let mut bytes = segment(0, &[(1, 0, false), (2, 0, true), (3, 1, true)]);
        let end = bytes.len() as u64;
        let scan = scan_segment(&bytes, 1);
        assert_eq!(scan.records.len(), 3);
        assert_eq!(scan.end, ScanEnd::Clean { offset: end });
        bytes.resize(4096, 0);
        assert_eq!(scan_segment(&bytes, 1).end, ScanEnd::Clean { offset: end });
    }

    #[test]
    fn broken_batch_structure_is_corruption() {
        // A record of batch 0 after batch 0 ended; a first record not of the header's batch.
        for records in [
            vec![(1, 0, true), (2, 0, true)],
            vec![(1, 0, false), (2, 1, true)],
            vec![(1, 5, true)],
        ] {
            let bytes = segment(0, &records);
            let scan = scan_segment(&bytes, 1);
            assert!(
                matches!(
                    scan.end,
                    ScanEnd::Corrupt {
                        damage: Damage::BatchOrder { .. },
                        ..
                    }
                ),
                "{records:?}: {:?}",
                scan.end
            );
        }
    }

    #[test]
    fn garbage_never_panics_and_never_yields_records() {
        let mut rng = SimRng::new(42);
        for round in 0..300 {
            let len = rng.below(3000) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if round % 2 == 0 {
                // A valid header, extreme values included, then garbage.
                let header = SegmentHeader {
                    db_id: rng.next_u64() as i64,
                    first_zxid: rng.next_u64() as i64,
                    first_batch_seq: if round % 4 == 0 {
                        u64::MAX
                    } else {
                        rng.next_u64()
                    },
                }
                .encode();
                bytes.splice(0..0, header);
            }
            let scan = scan_segment(&bytes, rng.next_u64() as i64);
            assert!(scan.records.is_empty());
            assert!(
                !matches!(scan.end, ScanEnd::Clean { .. })
                    || bytes[SEGMENT_HEADER_LEN..].iter().all(|&b| b == 0)
            );
        }
    }

    #[test]
    fn extreme_sequence_numbers_do_not_overflow() {
        let mut bytes = segment(u64::MAX, &[(i64::MAX - 1, u64::MAX, true)]);
        bytes.extend_from_slice(&[0xAB; 100]);
        let scan = scan_segment(&bytes, i64::MAX - 1);
        assert_eq!(scan.records.len(), 1);
        assert!(matches!(scan.end, ScanEnd::Torn { .. }));
    }
}
