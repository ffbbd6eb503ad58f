//! The group-commit log writer.
//!
//! One [`Wal::append_batch`] call encodes the whole batch into one buffer, writes it with
//! one `write_at` and syncs once (unless forceSync is off). The caller acknowledges the
//! batch's writes only after the call returns Ok: that is the whole durability contract.
//!
//! The decisions (encoding, segment roll, preallocation, offsets, alignment and padding) are
//! made by [`LogLayout`], which touches no file; [`Wal`] carries them out synchronously over
//! a [`Storage`] (real or simulated, so the crash tests exercise the layout the server
//! uses), and `super::dma::DmaLog` carries out the same plans with glommio's O_DIRECT
//! `DmaFile` in the server.
//!
//! Segments: a new one is started when the current one has reached `segment_len_max_bytes`
//! (checked between batches, so a batch never spans two segments), or after [`Wal::roll`]
//! and at every start-up, as ZooKeeper does. A segment is created, preallocated, its header
//! written and synced, and the directory synced before any record goes in, so recovery can
//! trust a header it reads. Segments grow in `pre_alloc_size_bytes` steps of zeros so that a
//! sync rarely has to persist a new file length.
//!
//! After an I/O error the Wal refuses every further call: after a failed fsync the kernel may
//! have dropped the dirty pages and a retry would report success for data that is gone
//! ("fsyncgate"). The server must stop and recover.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crate::tree::{Txn, TxnHeader};

use super::format::{encode_record, BatchMark, EncodeError, SegmentHeader, SEGMENT_HEADER_LEN};
use super::purge::{plan_purge, PurgePlan};
use super::recovery::{recover, Recovered, RecoveryError, WalDirs};
use super::snapshot::{save_snapshot, SnapshotError, SnapshotInfo, SnapshotSink, SnapshotSource};
use super::storage::Storage;
use super::{segment_name, zxid_follows};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    /// ZooKeeper's forceSync: false skips the sync after each batch (a crash may then lose
    /// acknowledged writes).
    pub force_sync: bool,
    /// ZooKeeper's preAllocSize (default 64 MiB).
    pub pre_alloc_size_bytes: u64,
    /// Start a new segment once the current one holds this many bytes.
    pub segment_len_max_bytes: u64,
    /// Written into every segment header, as ZooKeeper's dbid.
    pub db_id: i64,
    /// Every write starts and ends on a multiple of this (a power of two): 4096 for
    /// O_DIRECT, 1 for none.
    pub alignment: u64,
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            force_sync: true,
            pre_alloc_size_bytes: 64 * 1024 * 1024,
            segment_len_max_bytes: 64 * 1024 * 1024,
            db_id: 0,
            alignment: 1,
        }
    }
}

impl WalConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.pre_alloc_size_bytes < SEGMENT_HEADER_LEN as u64 {
            return Err(format!(
                "preAllocSize must be at least {SEGMENT_HEADER_LEN} bytes, got {}",
                self.pre_alloc_size_bytes
            ));
        }
        if self.segment_len_max_bytes <= SEGMENT_HEADER_LEN as u64 {
            return Err(format!(
                "the log segment size must exceed {SEGMENT_HEADER_LEN} bytes, got {}",
                self.segment_len_max_bytes
            ));
        }
        if !self.alignment.is_power_of_two() || self.alignment > MAX_ALIGNMENT {
            return Err(format!(
                "the log alignment must be a power of two up to {MAX_ALIGNMENT}, got {}",
                self.alignment
            ));
        }
        Ok(())
    }
}

/// The largest write alignment a [`WalConfig`] may ask for.
pub const MAX_ALIGNMENT: u64 = 1024 * 1024;

#[derive(Debug)]
pub enum WalError {
    Io {
        path: PathBuf,
        operation: &'static str,
        error: io::Error,
    },
    /// An earlier I/O error left the log in an unknown state.
    Failed,
    /// A txn's zxid does not follow the previous one (a bug in the caller).
    ZxidOrder {
        previous_zxid: i64,
        zxid: i64,
    },
    /// A txn cannot be encoded (nothing was written).
    Encode {
        zxid: i64,
        error: EncodeError,
    },
    Snapshot(SnapshotError),
    /// A snapshot ahead of the log would describe writes that are not durable.
    SnapshotAheadOfLog {
        snapshot_zxid: i64,
        log_zxid: i64,
    },
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io {
                path,
                operation,
                error,
            } => write!(f, "txn log: cannot {operation} {}: {error}", path.display()),
            WalError::Failed => write!(f, "txn log: stopped after an earlier I/O error"),
            WalError::ZxidOrder {
                previous_zxid,
                zxid,
            } => write!(
                f,
                "txn log: zxid {zxid:#x} does not follow {previous_zxid:#x}"
            ),
            WalError::Encode { zxid, error } => write!(f, "txn log: zxid {zxid:#x}: {error}"),
            WalError::Snapshot(e) => write!(f, "snapshot: {e}"),
            WalError::SnapshotAheadOfLog {
                snapshot_zxid,
                log_zxid,
            } => write!(
                f,
                "snapshot at zxid {snapshot_zxid:#x} is ahead of the log ({log_zxid:#x})"
            ),
        }
    }
}

impl std::error::Error for WalError {}

/// The pure part of the writer, shared by every executor: record encoding, when to start a
/// segment, preallocation steps, offsets, and alignment with its padding. It never touches
/// a file: [`LogLayout::plan_append`] says what to do, an executor does it (the sync
/// [`Wal`] over a [`Storage`], or the server's async `DmaLog` over glommio's `DmaFile`),
/// and reports back with [`LogLayout::finish_append`] or [`LogLayout::fail`].
///
/// Alignment (for O_DIRECT): every write starts at the aligned-down start of the segment's
/// partial tail block, rewriting that block's old bytes (identical, so a torn rewrite changes
/// nothing), and ends padded with zeros to the next alignment boundary. Zeros after the last
/// record are what recovery already reads as preallocated space, and the next write
/// overwrites them.
#[derive(Debug)]
pub struct LogLayout {
    log_dir: PathBuf,
    config: WalConfig,
    segment: Option<SegmentLayout>,
    /// The zxid of the last txn written (or of the snapshot recovered from). Never decreases.
    last_zxid: i64,
    next_batch_seq: u64,
    /// The bytes of the planned write (reused for every batch).
    buffer: Vec<u8>,
    failed: bool,
}

#[derive(Debug, Clone)]
struct SegmentLayout {
    path: PathBuf,
    /// Bytes of header and records. Invariant: `end <= allocated`.
    end: u64,
    /// The file's length (zeros past `end`); a multiple of the alignment.
    allocated: u64,
    /// The segment's bytes from `align_down(end)` to `end`: the partial tail block, which the
    /// next write starts with.
    tail: Vec<u8>,
}

/// A segment to create before the batch is written.
#[derive(Debug)]
pub struct NewSegment {
    pub path: PathBuf,
    /// Sync the previous segment's file before dropping it (forceSync=no: its batches were
    /// never synced, and recovery needs every batch before a segment's creation durable).
    pub sync_previous: bool,
    /// Preallocate the new file to this length before writing the header.
    pub allocate: u64,
    /// The header, padded with zeros to the alignment; written at offset 0, then the file
    /// and the directory are synced.
    pub header: Vec<u8>,
}

/// What an executor does for one batch, in this order: start `new_segment` (if any), grow
/// the file to `allocate` (if any), write [`LogLayout::write_data`] at `offset`, then sync
/// when `sync`.
#[derive(Debug)]
pub struct AppendPlan {
    pub new_segment: Option<NewSegment>,
    pub allocate: Option<u64>,
    /// Aligned: the start of the segment's partial tail block.
    pub offset: u64,
    pub sync: bool,
    segment_after: SegmentLayout,
    last_zxid: i64,
}

impl AppendPlan {
    /// The segment the batch goes to.
    pub fn path(&self) -> &Path {
        &self.segment_after.path
    }
}

/// Rounds `value` down to a multiple of `alignment` (a power of two).
pub fn align_down(value: u64, alignment: u64) -> u64 {
    value & !(alignment - 1)
}

/// Rounds `value` up to a multiple of `alignment` (a power of two).
pub fn align_up(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

impl LogLayout {
    /// A layout after recovery: the first append starts a new segment.
    pub fn new(
        log_dir: PathBuf,
        config: WalConfig,
        last_zxid: i64,
        next_batch_seq: u64,
    ) -> LogLayout {
        LogLayout {
            log_dir,
            config,
            segment: None,
            last_zxid,
            next_batch_seq,
            buffer: Vec::new(),
            failed: false,
        }
    }

    pub fn config(&self) -> &WalConfig {
        &self.config
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn current_segment(&self) -> Option<&Path> {
        self.segment.as_ref().map(|s| s.path.as_path())
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// An executor's I/O failed: refuse everything from now on.
    pub fn fail(&mut self) {
        self.failed = true;
    }

    /// Plans the write of a batch; None for an empty batch. The data to write is
    /// [`LogLayout::write_data`] until the next call. Nothing changes until
    /// [`LogLayout::finish_append`].
    pub fn plan_append(
        &mut self,
        txns: &[(TxnHeader, Txn)],
    ) -> Result<Option<AppendPlan>, WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let Some((first, _)) = txns.first() else {
            return Ok(None);
        };
        let mut previous = self.last_zxid;
        for (header, _) in txns {
            if !zxid_follows(previous, header.zxid) {
                return Err(WalError::ZxidOrder {
                    previous_zxid: previous,
                    zxid: header.zxid,
                });
            }
            previous = header.zxid;
        }
        let alignment = self.config.alignment;
        let step = self.config.pre_alloc_size_bytes;
        let full = self
            .segment
            .as_ref()
            .is_none_or(|s| s.end >= self.config.segment_len_max_bytes);
        let (new_segment, mut segment) = if full {
            let path = self.log_dir.join(segment_name(first.zxid));
            let header = SegmentHeader {
                db_id: self.config.db_id,
                first_zxid: first.zxid,
                first_batch_seq: self.next_batch_seq,
            }
            .encode();
            let end = header.len() as u64;
            let mut block = header.to_vec();
            block.resize(align_up(end, alignment) as usize, 0);
            let allocated = align_up(align_up(end, step), alignment);
            let tail = header[align_down(end, alignment) as usize..].to_vec();
            (
                Some(NewSegment {
                    path: path.clone(),
                    sync_previous: self.segment.is_some() && !self.config.force_sync,
                    allocate: allocated,
                    header: block,
                }),
                SegmentLayout {
                    path,
                    end,
                    allocated,
                    tail,
                },
            )
        } else {
            match self.segment.clone() {
                Some(segment) => (None, segment),
                None => return Err(WalError::Failed),
            }
        };
        let offset = align_down(segment.end, alignment);
        self.buffer.clear();
        self.buffer.extend_from_slice(&segment.tail);
        for (index, (header, txn)) in txns.iter().enumerate() {
            let batch = BatchMark {
                seq: self.next_batch_seq,
                last_in_batch: index + 1 == txns.len(),
            };
            encode_record(header, txn, batch, &mut self.buffer).map_err(|error| {
                WalError::Encode {
                    zxid: header.zxid,
                    error,
                }
            })?;
        }
        let end = offset + self.buffer.len() as u64;
        let write_end = align_up(end, alignment);
        self.buffer.resize((write_end - offset) as usize, 0);
        let allocate = if write_end > segment.allocated {
            let allocated = align_up(align_up(write_end, step), alignment);
            segment.allocated = allocated;
            Some(allocated)
        } else {
            None
        };
        let tail_start = (align_down(end, alignment) - offset) as usize;
        let tail_end = (end - offset) as usize;
        segment.tail = self.buffer[tail_start..tail_end].to_vec();
        segment.end = end;
        Ok(Some(AppendPlan {
            new_segment,
            allocate,
            offset,
            sync: self.config.force_sync,
            segment_after: segment,
            last_zxid: previous,
        }))
    }

    /// The bytes the last [`LogLayout::plan_append`] wants written at its `offset`: the
    /// partial tail block, the records, zeros to the alignment.
    pub fn write_data(&self) -> &[u8] {
        &self.buffer
    }

    /// What an executor's attempt at `plan` comes to: on success the plan is finished, on
    /// an I/O error the layout fails for good. Returns the outcome.
    pub fn conclude(
        &mut self,
        plan: AppendPlan,
        outcome: Result<(), WalError>,
    ) -> Result<(), WalError> {
        match outcome {
            Ok(()) => self.finish_append(plan),
            Err(_) => self.fail(),
        }
        outcome
    }

    /// The executor carried out `plan`: the batch is written (and synced, with forceSync).
    pub fn finish_append(&mut self, plan: AppendPlan) {
        self.segment = Some(plan.segment_after);
        self.last_zxid = plan.last_zxid;
        self.next_batch_seq = self.next_batch_seq.wrapping_add(1);
    }

    /// Closes the current segment; the next batch starts a new one. Ok(true): the executor
    /// must sync the old segment's file before dropping it (forceSync=no).
    pub fn roll(&mut self) -> Result<bool, WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        Ok(self.segment.take().is_some() && !self.config.force_sync)
    }
}

/// The txn log of one server, written synchronously through a [`Storage`] (tests, tools,
/// the initial snapshot at start-up). The server writes with the async `DmaLog`; both
/// follow the same [`LogLayout`].
pub struct Wal<S: Storage> {
    storage: S,
    dirs: WalDirs,
    layout: LogLayout,
    file: Option<S::File>,
}

impl<S: Storage> Wal<S> {
    /// Recovers (see `recovery`): loads the newest usable snapshot into `sink` and returns
    /// the txns logged after it, which the caller applies in order. The first append goes
    /// to a new segment.
    pub fn open(
        storage: S,
        dirs: WalDirs,
        config: WalConfig,
        sink: &mut dyn SnapshotSink,
    ) -> Result<(Wal<S>, Recovered), RecoveryError> {
        if let Err(message) = config.validate() {
            return Err(RecoveryError::Io {
                path: dirs.log_dir.clone(),
                operation: "configure",
                error: io::Error::new(io::ErrorKind::InvalidInput, message),
            });
        }
        let recovered = recover(&storage, &dirs, sink)?;
        let layout = LogLayout::new(
            dirs.log_dir.clone(),
            config,
            recovered.last_zxid,
            recovered.next_batch_seq,
        );
        let wal = Wal {
            storage,
            dirs,
            layout,
            file: None,
        };
        Ok((wal, recovered))
    }

    /// The zxid of the last txn written.
    pub fn last_zxid(&self) -> i64 {
        self.layout.last_zxid()
    }

    /// The segment being appended to, if any.
    pub fn current_segment(&self) -> Option<&Path> {
        self.layout.current_segment()
    }

    pub fn dirs(&self) -> &WalDirs {
        &self.dirs
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Hands the writer's state over to another executor (the server's `DmaLog`); the
    /// current segment, if any, is closed (the next batch starts a new one).
    pub fn into_layout(mut self) -> Result<LogLayout, WalError> {
        self.roll()?;
        Ok(self.layout)
    }

    /// Writes a batch with one write and one sync. Ok means durable (with forceSync): the
    /// caller may acknowledge these writes. On an I/O error the Wal stops for good.
    pub fn append_batch(&mut self, txns: &[(TxnHeader, Txn)]) -> Result<(), WalError> {
        let Some(plan) = self.layout.plan_append(txns)? else {
            return Ok(());
        };
        let outcome = self.execute(&plan);
        self.layout.conclude(plan, outcome)
    }

    fn execute(&mut self, plan: &AppendPlan) -> Result<(), WalError> {
        if let Some(new) = &plan.new_segment {
            let old = self.file.take();
            if let (Some(mut old), true) = (old, new.sync_previous) {
                let old_path = self.layout.current_segment().unwrap_or(&new.path);
                self.storage
                    .sync(&mut old)
                    .map_err(io_error(old_path, "sync"))?;
            }
            let path = &new.path;
            let mut file = self
                .storage
                .create(path)
                .map_err(io_error(path, "create"))?;
            self.storage
                .allocate(&mut file, new.allocate)
                .map_err(io_error(path, "preallocate"))?;
            self.storage
                .write_at(&mut file, 0, &new.header)
                .map_err(io_error(path, "write"))?;
            self.storage
                .sync(&mut file)
                .map_err(io_error(path, "sync"))?;
            self.storage
                .sync_dir(&self.dirs.log_dir)
                .map_err(io_error(&self.dirs.log_dir, "sync"))?;
            log::info!("started txn log segment {}", path.display());
            self.file = Some(file);
        }
        let path = plan.path();
        let Some(file) = self.file.as_mut() else {
            return Err(WalError::Failed);
        };
        if let Some(len) = plan.allocate {
            self.storage
                .allocate(file, len)
                .map_err(io_error(path, "preallocate"))?;
        }
        self.storage
            .write_at(file, plan.offset, self.layout.write_data())
            .map_err(io_error(path, "write"))?;
        if plan.sync {
            self.storage.sync(file).map_err(io_error(path, "sync"))?;
        }
        Ok(())
    }

    /// Closes the current segment; the next batch starts a new one (ZooKeeper rolls the log
    /// when it takes a snapshot, so that purging can drop whole files).
    pub fn roll(&mut self) -> Result<(), WalError> {
        let path = self.layout.current_segment().map(Path::to_path_buf);
        let sync = self.layout.roll()?;
        if let (Some(mut old), true, Some(path)) = (self.file.take(), sync, path) {
            if let Err(error) = self.storage.sync(&mut old) {
                self.layout.fail();
                return Err(io_error(&path, "sync")(error));
            }
        }
        Ok(())
    }

    /// Writes a snapshot of `source` (temp file, sync, rename, directory sync). `source`
    /// must not be ahead of the log.
    pub fn save_snapshot(&self, source: &dyn SnapshotSource) -> Result<SnapshotInfo, WalError> {
        let snapshot_zxid = source.last_zxid();
        if snapshot_zxid > self.layout.last_zxid() {
            return Err(WalError::SnapshotAheadOfLog {
                snapshot_zxid,
                log_zxid: self.layout.last_zxid(),
            });
        }
        save_snapshot(
            &self.storage,
            &self.dirs.snapshot_dir,
            self.layout.config().db_id,
            source,
        )
        .map_err(WalError::Snapshot)
    }

    /// Deletes all but the `retain_count` newest snapshots and the segments only they need
    /// (see `purge`). ZooKeeper's autopurge keeps at least 3.
    pub fn purge(&self, retain_count: NonZeroUsize) -> Result<PurgePlan, WalError> {
        purge_files(
            &self.storage,
            &self.dirs,
            retain_count,
            self.current_segment(),
        )
    }
}

/// Deletes all but the `retain_count` newest snapshots and the segments only they need,
/// never `current` (the segment being written).
pub fn purge_files<S: Storage>(
    storage: &S,
    dirs: &WalDirs,
    retain_count: NonZeroUsize,
    current: Option<&Path>,
) -> Result<PurgePlan, WalError> {
    let list = |dir: &Path| storage.list(dir).map_err(io_error(dir, "list"));
    let plan = plan_purge(
        &list(&dirs.snapshot_dir)?,
        &list(&dirs.log_dir)?,
        retain_count,
    );
    // Logs first: a crash half-way then leaves old snapshots without their logs, which
    // recovery never needs while a newer snapshot is valid.
    for (dir, names) in [
        (&dirs.log_dir, &plan.segments),
        (&dirs.snapshot_dir, &plan.snapshots),
    ] {
        for name in names {
            let path = dir.join(name);
            if current == Some(path.as_path()) {
                continue; // never happens: the newest segment is always kept
            }
            storage.remove(&path).map_err(io_error(&path, "remove"))?;
        }
        if !names.is_empty() {
            storage.sync_dir(dir).map_err(io_error(dir, "sync"))?;
        }
    }
    Ok(plan)
}

pub fn io_error(path: &Path, operation: &'static str) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |error| WalError::Io {
        path,
        operation,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::SEGMENT_HEADER_LEN;
    use super::super::sim::{CrashMode, SimStorage};
    use super::super::snapshot::tests::MapState;
    use super::*;

    fn txn(zxid: i64, len: usize) -> (TxnHeader, Txn) {
        (
            TxnHeader {
                session_id: 9,
                zxid,
                time_ms: 1,
                ..Default::default()
            },
            Txn::SetData {
                path: "/k".into(),
                data: bytes::Bytes::from(vec![zxid as u8; len]),
                version: 0,
            },
        )
    }

    fn aligned(alignment: u64) -> WalConfig {
        WalConfig {
            force_sync: true,
            pre_alloc_size_bytes: 3000,
            segment_len_max_bytes: 1 << 20,
            db_id: 0,
            alignment,
        }
    }

    #[test]
    fn align_rounds_to_powers_of_two() {
        assert_eq!(align_down(0, 512), 0);
        assert_eq!(align_down(511, 512), 0);
        assert_eq!(align_down(512, 512), 512);
        assert_eq!(align_down(4097, 4096), 4096);
        assert_eq!(align_up(0, 4096), 0);
        assert_eq!(align_up(1, 4096), 4096);
        assert_eq!(align_up(4096, 4096), 4096);
        assert_eq!(align_up(40, 1), 40);
        assert_eq!(align_down(40, 1), 40);
        assert!(aligned(3).validate().is_err());
        assert!(aligned(0).validate().is_err());
        assert!(aligned(MAX_ALIGNMENT * 2).validate().is_err());
        assert!(aligned(4096).validate().is_ok());
    }

    #[test]
    fn plans_rewrite_the_tail_block_and_pad_with_zeros() {
        let mut layout = LogLayout::new("/log".into(), aligned(512), 0, 0);
        // First batch: a new segment; the header block is padded, the write starts at 0
        // with the header (the partial tail block) and ends on a 512 boundary.
        let plan = layout.plan_append(&[txn(1, 10)]).unwrap().unwrap();
        let new = plan.new_segment.as_ref().unwrap();
        assert_eq!(new.path, Path::new("/log/log.1"));
        assert_eq!(new.header.len(), 512);
        assert!(new.header[SEGMENT_HEADER_LEN..].iter().all(|&b| b == 0));
        assert_eq!(
            new.allocate, 3072,
            "preAllocSize rounded up to the alignment"
        );
        assert!(!new.sync_previous);
        assert_eq!(plan.offset, 0);
        let data = layout.write_data().to_vec();
        assert_eq!(data.len(), 512);
        assert_eq!(
            &data[..SEGMENT_HEADER_LEN],
            &new.header[..SEGMENT_HEADER_LEN]
        );
        let end1 = SEGMENT_HEADER_LEN + encoded_len(&txn(1, 10));
        assert!(data[end1..].iter().all(|&b| b == 0), "zero padding");
        assert!(plan.allocate.is_none());
        layout.finish_append(plan);

        // Second batch: starts at the same block, which it rewrites byte for byte.
        let plan = layout.plan_append(&[txn(2, 600)]).unwrap().unwrap();
        assert!(plan.new_segment.is_none());
        assert_eq!(plan.offset, 0);
        let data2 = layout.write_data().to_vec();
        assert_eq!(&data2[..end1], &data[..end1], "earlier records kept");
        let end2 = end1 + encoded_len(&txn(2, 600));
        assert_eq!(data2.len() as u64, align_up(end2 as u64, 512));
        assert!(data2[end2..].iter().all(|&b| b == 0));
        layout.finish_append(plan);

        // Third batch: from the aligned-down start of the new tail block.
        let plan = layout.plan_append(&[txn(3, 2600)]).unwrap().unwrap();
        assert_eq!(plan.offset, align_down(end2 as u64, 512));
        let data3 = layout.write_data().to_vec();
        assert_eq!(
            &data3[..end2 - plan.offset as usize],
            &data2[plan.offset as usize..end2]
        );
        let end3 = end2 + encoded_len(&txn(3, 2600));
        // Past the preallocated 3072 bytes: grow in 3000-byte steps, aligned.
        assert!(end3 > 3072);
        assert_eq!(
            plan.allocate,
            Some(align_up(align_up(align_up(end3 as u64, 512), 3000), 512))
        );
        layout.finish_append(plan);

        // A roll: the next batch starts a new segment.
        assert!(!layout.roll().unwrap(), "forceSync: nothing left to sync");
        let plan = layout.plan_append(&[txn(4, 1)]).unwrap().unwrap();
        assert_eq!(
            plan.new_segment.as_ref().unwrap().path,
            Path::new("/log/log.4")
        );
    }

    #[test]
    fn plans_refuse_gaps_and_change_nothing_until_finished() {
        let mut layout = LogLayout::new("/log".into(), aligned(4096), 0, 0);
        assert!(layout.plan_append(&[]).unwrap().is_none());
        assert!(matches!(
            layout.plan_append(&[txn(2, 1)]),
            Err(WalError::ZxidOrder { .. })
        ));
        let _unfinished = layout.plan_append(&[txn(1, 1)]).unwrap().unwrap();
        assert_eq!(layout.last_zxid(), 0);
        assert!(layout.current_segment().is_none());
        layout.fail();
        assert!(matches!(
            layout.plan_append(&[txn(1, 1)]),
            Err(WalError::Failed)
        ));
        assert!(matches!(layout.roll(), Err(WalError::Failed)));
    }

    fn encoded_len(t: &(TxnHeader, Txn)) -> usize {
        let mut buffer = Vec::new();
        let mark = BatchMark {
            seq: 0,
            last_in_batch: true,
        };
        encode_record(&t.0, &t.1, mark, &mut buffer).unwrap();
        buffer.len()
    }

    #[test]
    fn aligned_appends_keep_every_earlier_record_across_crashes() {
        let dirs = WalDirs {
            log_dir: "/d/log".into(),
            snapshot_dir: "/d/snap".into(),
        };
        let storage = SimStorage::new(3);
        let mut state = MapState::default();
        let (mut wal, _) =
            Wal::open(storage.clone(), dirs.clone(), aligned(4096), &mut state).unwrap();
        wal.save_snapshot(&state).unwrap();
        for zxid in 1..=40 {
            wal.append_batch(&[txn(zxid, (zxid as usize * 37) % 300)])
                .unwrap();
        }
        let segment = wal.current_segment().unwrap().to_path_buf();
        let bytes = storage.read_all(&segment).unwrap();
        assert_eq!(bytes.len() % 4096, 0);
        // Everything synced survives a crash, whatever the writeback order.
        storage.crash(CrashMode::ScrambledSectors);
        let mut state = MapState::default();
        let (_, recovered) = Wal::open(storage, dirs, aligned(4096), &mut state).unwrap();
        assert!(recovered.torn_tail.is_none());
        let zxids: Vec<i64> = recovered.txns.iter().map(|(h, _)| h.zxid).collect();
        assert_eq!(zxids, (1..=40).collect::<Vec<_>>());
        for (header, txn) in &recovered.txns {
            let Txn::SetData { data, .. } = txn else {
                panic!("{txn:?}");
            };
            assert_eq!(data.len(), (header.zxid as usize * 37) % 300);
        }
    }
}
