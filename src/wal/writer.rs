//! The group-commit log writer.
//!
//! One [`Wal::append_batch`] call encodes the whole batch into one buffer, writes it with
//! one `write_at` and syncs once (unless forceSync is off). The caller acknowledges the
//! batch's writes only after the call returns Ok: that is the whole durability contract.
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
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            force_sync: true,
            pre_alloc_size_bytes: 64 * 1024 * 1024,
            segment_len_max_bytes: 64 * 1024 * 1024,
            db_id: 0,
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
        Ok(())
    }
}

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

struct OpenSegment<F> {
    file: F,
    path: PathBuf,
    /// Bytes of header and records. Invariant: `end <= allocated`.
    end: u64,
    /// The file's length (zeros past `end`).
    allocated: u64,
}

/// The txn log of one server.
pub struct Wal<S: Storage> {
    storage: S,
    dirs: WalDirs,
    config: WalConfig,
    segment: Option<OpenSegment<S::File>>,
    /// The zxid of the last txn written (or of the snapshot recovered from). Never decreases.
    last_zxid: i64,
    next_batch_seq: u64,
    /// Reused for every batch.
    buffer: Vec<u8>,
    failed: bool,
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
        let wal = Wal {
            storage,
            dirs,
            config,
            segment: None,
            last_zxid: recovered.last_zxid,
            next_batch_seq: recovered.next_batch_seq,
            buffer: Vec::new(),
            failed: false,
        };
        Ok((wal, recovered))
    }

    /// The zxid of the last txn written.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The segment being appended to, if any.
    pub fn current_segment(&self) -> Option<&Path> {
        self.segment.as_ref().map(|s| s.path.as_path())
    }

    pub fn dirs(&self) -> &WalDirs {
        &self.dirs
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Writes a batch with one write and one sync. Ok means durable (with forceSync): the
    /// caller may acknowledge these writes. On an I/O error the Wal stops for good.
    pub fn append_batch(&mut self, txns: &[(TxnHeader, Txn)]) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let Some((first, _)) = txns.first() else {
            return Ok(());
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
        self.buffer.clear();
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
        let first_zxid = first.zxid;
        if let Err(e) = self.write_buffer(first_zxid) {
            self.failed = true;
            return Err(e);
        }
        self.last_zxid = previous;
        self.next_batch_seq = self.next_batch_seq.wrapping_add(1);
        Ok(())
    }

    fn write_buffer(&mut self, first_zxid: i64) -> Result<(), WalError> {
        let full = self
            .segment
            .as_ref()
            .is_none_or(|s| s.end >= self.config.segment_len_max_bytes);
        if full {
            self.start_segment(first_zxid)?;
        }
        let Some(segment) = self.segment.as_mut() else {
            return Err(WalError::Failed);
        };
        let end = segment.end + self.buffer.len() as u64;
        if end > segment.allocated {
            let step = self.config.pre_alloc_size_bytes;
            let allocated = end.div_ceil(step) * step;
            self.storage
                .allocate(&mut segment.file, allocated)
                .map_err(io_error(&segment.path, "preallocate"))?;
            segment.allocated = allocated;
        }
        self.storage
            .write_at(&mut segment.file, segment.end, &self.buffer)
            .map_err(io_error(&segment.path, "write"))?;
        if self.config.force_sync {
            self.storage
                .sync(&mut segment.file)
                .map_err(io_error(&segment.path, "sync"))?;
        }
        segment.end = end;
        Ok(())
    }

    /// Creates `log.<first_zxid hex>` and makes its header and name durable.
    fn start_segment(&mut self, first_zxid: i64) -> Result<(), WalError> {
        if let Some(mut old) = self.segment.take() {
            // Recovery relies on every batch before a segment's creation being durable.
            if !self.config.force_sync {
                self.storage
                    .sync(&mut old.file)
                    .map_err(io_error(&old.path, "sync"))?;
            }
        }
        let path = self.dirs.log_dir.join(segment_name(first_zxid));
        let mut file = self
            .storage
            .create(&path)
            .map_err(io_error(&path, "create"))?;
        let allocated = self.config.pre_alloc_size_bytes;
        self.storage
            .allocate(&mut file, allocated)
            .map_err(io_error(&path, "preallocate"))?;
        let header = SegmentHeader {
            db_id: self.config.db_id,
            first_zxid,
            first_batch_seq: self.next_batch_seq,
        };
        self.storage
            .write_at(&mut file, 0, &header.encode())
            .map_err(io_error(&path, "write"))?;
        self.storage
            .sync(&mut file)
            .map_err(io_error(&path, "sync"))?;
        self.storage
            .sync_dir(&self.dirs.log_dir)
            .map_err(io_error(&self.dirs.log_dir, "sync"))?;
        log::info!("started txn log segment {}", path.display());
        self.segment = Some(OpenSegment {
            file,
            path,
            end: SEGMENT_HEADER_LEN as u64,
            allocated,
        });
        Ok(())
    }

    /// Closes the current segment; the next batch starts a new one (ZooKeeper rolls the log
    /// when it takes a snapshot, so that purging can drop whole files).
    pub fn roll(&mut self) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        if let Some(mut old) = self.segment.take() {
            if !self.config.force_sync {
                if let Err(error) = self.storage.sync(&mut old.file) {
                    self.failed = true;
                    return Err(io_error(&old.path, "sync")(error));
                }
            }
        }
        Ok(())
    }

    /// Writes a snapshot of `source` (temp file, sync, rename, directory sync). `source`
    /// must not be ahead of the log.
    pub fn save_snapshot(&self, source: &dyn SnapshotSource) -> Result<SnapshotInfo, WalError> {
        let snapshot_zxid = source.last_zxid();
        if snapshot_zxid > self.last_zxid {
            return Err(WalError::SnapshotAheadOfLog {
                snapshot_zxid,
                log_zxid: self.last_zxid,
            });
        }
        save_snapshot(
            &self.storage,
            &self.dirs.snapshot_dir,
            self.config.db_id,
            source,
        )
        .map_err(WalError::Snapshot)
    }

    /// Deletes all but the `retain_count` newest snapshots and the segments only they need
    /// (see `purge`). ZooKeeper's autopurge keeps at least 3.
    pub fn purge(&self, retain_count: NonZeroUsize) -> Result<PurgePlan, WalError> {
        let list = |dir: &Path| self.storage.list(dir).map_err(io_error(dir, "list"));
        let plan = plan_purge(
            &list(&self.dirs.snapshot_dir)?,
            &list(&self.dirs.log_dir)?,
            retain_count,
        );
        // Logs first: a crash half-way then leaves old snapshots without their logs, which
        // recovery never needs while a newer snapshot is valid.
        for (dir, names) in [
            (&self.dirs.log_dir, &plan.segments),
            (&self.dirs.snapshot_dir, &plan.snapshots),
        ] {
            for name in names {
                let path = dir.join(name);
                if self.current_segment() == Some(path.as_path()) {
                    continue; // never happens: the newest segment is always kept
                }
                self.storage
                    .remove(&path)
                    .map_err(io_error(&path, "remove"))?;
            }
            if !names.is_empty() {
                self.storage.sync_dir(dir).map_err(io_error(dir, "sync"))?;
            }
        }
        Ok(plan)
    }
}

fn io_error(path: &Path, operation: &'static str) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |error| WalError::Io {
        path,
        operation,
        error,
    }
}
