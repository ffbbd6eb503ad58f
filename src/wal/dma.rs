//! The server's txn log executor: carries out [`LogLayout`] plans with direct I/O
//! (O_DIRECT from aligned buffers) and never blocks the glommio executor that awaits them.
//!
//! This is the one place in `wal` that touches files without the [`super::Storage`] trait;
//! it makes no decision of its own: what to write where, when to start a segment, how far to
//! preallocate and how to pad comes from the same [`LogLayout`] that the sync
//! [`super::Wal`] follows under the crash tests.
//!
//! Writes are aligned to [`DIRECT_IO_ALIGNMENT`] (a multiple of every direct-I/O alignment
//! the file systems report: 512 or 4096). With forceSync on, O_DIRECT segments are opened
//! with O_DSYNC: a batch is one durable write (no separate fdatasync to submit and wait for).
//! A file system that refuses O_DIRECT (the open fails with EINVAL), and tmpfs, get
//! buffered writes through glommio's `BufferedFile` instead (write, then fdatasync), with a
//! warning naming the directory.
//!
//! The O_DIRECT segment's system calls (open, write, fallocate, fdatasync) run on the
//! executor's blocking thread pool, not through glommio's `DmaFile`: glommio puts a
//! `DmaFile`'s reads and writes on its IOPOLL ring wherever the kernel accepts them, and an
//! executor with a request in flight on that ring never sleeps: it spins through its
//! reactor (arming and cancelling a preemption timer each turn) until the device answers.
//! With one durable write in flight most of the time at moderate write rates, that spin was
//! most of the ordering core's CPU (74% of a core at 500 writes/s, perf/README.md). A pool
//! thread blocks in the kernel instead, and wakes the executor through its eventfd.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use glommio::io::{BufferedFile, OpenOptions};
use glommio::GlommioError;

use super::aligned::AlignedBuf;
use super::writer::{io_error, AppendPlan, LogLayout, WalError};
use crate::tree::{Txn, TxnHeader};

/// The alignment of every log write: offsets, lengths and preallocation steps.
pub const DIRECT_IO_ALIGNMENT: u64 = 4096;

/// A write buffer larger than this is not kept for the next write.
const KEPT_BUFFER_MAX: usize = 4 << 20;

/// Runs `work` on the current executor's blocking thread pool.
async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(work).await
}

/// An O_DIRECT segment whose system calls run on the blocking pool.
struct DirectFile {
    file: Arc<File>,
    /// The write buffer, kept between writes (taken while a write runs).
    buffer: RefCell<Option<AlignedBuf>>,
}

impl DirectFile {
    async fn create(path: &Path, sync_flags: i32) -> io::Result<DirectFile> {
        let path = path.to_path_buf();
        let file = blocking(move || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_DIRECT | sync_flags)
                .open(&path)
        })
        .await?;
        Ok(DirectFile {
            file: Arc::new(file),
            buffer: RefCell::new(None),
        })
    }

    /// The file system's direct-I/O alignment (offset and memory), 512 where it does not
    /// say (statx without STATX_DIOALIGN).
    fn alignment(&self) -> u64 {
        // SAFETY: statx fills a zeroed local struct for an open descriptor and an empty
        // NUL-terminated path (AT_EMPTY_PATH).
        let (found, stx) = unsafe {
            let mut stx: libc::statx = std::mem::zeroed();
            let rc = libc::statx(
                self.file.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                libc::STATX_DIOALIGN,
                &mut stx,
            );
            (rc == 0 && stx.stx_mask & libc::STATX_DIOALIGN != 0, stx)
        };
        let reported = if found {
            stx.stx_dio_offset_align.max(stx.stx_dio_mem_align) as u64
        } else {
            0
        };
        reported.max(512)
    }

    /// The kept write buffer (or a new one) holding `data`.
    fn filled_buffer(&self, data: &[u8]) -> AlignedBuf {
        let mut buffer = match self.buffer.borrow_mut().take() {
            Some(buffer) if buffer.capacity() >= data.len() => buffer,
            _ => AlignedBuf::with_capacity(data.len().max(64 * 1024), DIRECT_IO_ALIGNMENT as usize),
        };
        buffer.fill(data);
        buffer
    }

    /// Keeps a written buffer for the next write, unless it grew too large.
    fn keep_buffer(&self, buffer: AlignedBuf) {
        if buffer.capacity() <= KEPT_BUFFER_MAX {
            *self.buffer.borrow_mut() = Some(buffer);
        }
    }

    async fn write_at(&self, data: &[u8], offset: u64) -> io::Result<usize> {
        let buffer = self.filled_buffer(data);
        let file = self.file.clone();
        let (buffer, written) = blocking(move || {
            let written = file.write_at(buffer.as_slice(), offset);
            (buffer, written)
        })
        .await;
        self.keep_buffer(buffer);
        written
    }

    /// As [`DirectFile::write_at`], on the calling thread: the executor blocks for the
    /// write (see [`DmaLog::set_write_here_max`]).
    fn write_at_here(&self, data: &[u8], offset: u64) -> io::Result<usize> {
        let buffer = self.filled_buffer(data);
        let written = self.file.write_at(buffer.as_slice(), offset);
        self.keep_buffer(buffer);
        written
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        let file = self.file.clone();
        blocking(move || {
            // SAFETY: fallocate on a descriptor this Arc keeps open.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
        .await
    }

    async fn file_size(&self) -> io::Result<u64> {
        let file = self.file.clone();
        blocking(move || file.metadata().map(|m| m.len())).await
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        let file = self.file.clone();
        blocking(move || file.set_len(len)).await
    }

    async fn sync(&self) -> io::Result<()> {
        let file = self.file.clone();
        blocking(move || file.sync_data()).await
    }
}

enum LogFile {
    Direct(DirectFile),
    Buffered(BufferedFile),
}

fn to_io(error: GlommioError<()>) -> io::Error {
    match error {
        // Keep the OS error number (the conversion to io::Error drops it).
        GlommioError::EnhancedIoError { source, .. } => source,
        other => other.into(),
    }
}

/// Whether an open failed because the file system does not support O_DIRECT.
fn direct_io_unsupported(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::EINVAL)
}

fn short_write(written: usize, wanted: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::WriteZero,
        format!("short write: {written} of {wanted} bytes"),
    )
}

impl LogFile {
    /// `here`: an O_DIRECT write runs on the calling thread instead of the blocking pool.
    async fn write_at(&self, data: &[u8], offset: u64, here: bool) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            let rest = &data[done..];
            let position = offset + done as u64;
            let written = match self {
                LogFile::Direct(file) => {
                    let written = if here {
                        file.write_at_here(rest, position)?
                    } else {
                        file.write_at(rest, position).await?
                    };
                    // A short O_DIRECT write can only be continued from an aligned offset.
                    if written < rest.len() && !(written as u64).is_multiple_of(DIRECT_IO_ALIGNMENT)
                    {
                        return Err(short_write(done + written, data.len()));
                    }
                    written
                }
                LogFile::Buffered(file) => file
                    .write_at(rest.to_vec(), position)
                    .await
                    .map_err(to_io)?,
            };
            if written == 0 {
                return Err(short_write(done, data.len()));
            }
            done += written;
        }
        Ok(())
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        let result = match self {
            LogFile::Direct(file) => file.allocate(len).await,
            LogFile::Buffered(file) => file.pre_allocate(len, false).await.map_err(to_io),
        };
        match result {
            Ok(()) => Ok(()),
            // File systems without fallocate: a sparse extension reads back as zeros too.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP)) => {
                let size = match self {
                    LogFile::Direct(file) => file.file_size().await?,
                    LogFile::Buffered(file) => file.file_size().await.map_err(to_io)?,
                };
                if size >= len {
                    return Ok(());
                }
                match self {
                    LogFile::Direct(file) => file.truncate(len).await,
                    LogFile::Buffered(file) => file.truncate(len).await.map_err(to_io),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn sync(&self) -> io::Result<()> {
        match self {
            LogFile::Direct(file) => file.sync().await,
            LogFile::Buffered(file) => file.fdatasync().await.map_err(to_io),
        }
    }

    async fn close(self) {
        match self {
            // close(2) of a descriptor with nothing buffered (O_DIRECT): returns at once.
            LogFile::Direct(file) => drop(file),
            LogFile::Buffered(file) => {
                if let Err(e) = file.close().await {
                    log::warn!("closing a txn log segment: {e}");
                }
            }
        }
    }
}

/// The txn log writer of the server; must be used on one glommio executor.
pub struct DmaLog {
    layout: LogLayout,
    file: Option<LogFile>,
    /// An O_DIRECT write of at most this many bytes runs on the executor's own thread
    /// (0: every write goes to the blocking pool). See [`DmaLog::set_write_here_max`].
    write_here_max: usize,
    /// Whether new segments are opened with O_DIRECT (false after EINVAL).
    direct: bool,
    /// Tests: make the O_DIRECT open fail with EINVAL, as on a file system without it.
    #[cfg(test)]
    refuse_direct_io: bool,
}

impl DmaLog {
    /// Takes over a layout (from `Wal::into_layout`, after recovery). The layout's
    /// alignment must be a multiple of [`DIRECT_IO_ALIGNMENT`] for O_DIRECT.
    pub fn new(layout: LogLayout) -> DmaLog {
        let direct = layout
            .config()
            .alignment
            .is_multiple_of(DIRECT_IO_ALIGNMENT);
        if !direct {
            log::warn!(
                "txn log alignment {} is not a multiple of {DIRECT_IO_ALIGNMENT}: buffered writes",
                layout.config().alignment
            );
        }
        DmaLog {
            layout,
            file: None,
            write_here_max: 0,
            direct,
            #[cfg(test)]
            refuse_direct_io: false,
        }
    }

    pub fn layout(&self) -> &LogLayout {
        &self.layout
    }

    /// Lets the next writes of at most `bytes` block the executor instead of going through
    /// the blocking pool. A pool write costs two thread wake-ups (the pool thread's, then
    /// the executor's through its eventfd, each a park and an unpark of a glommio reactor):
    /// for a lone small write at a low rate that is more than the write itself (a single
    /// synchronous writer's p50 277 -> 246 us, CPU per write at 200 writes/s 440 -> 385 us,
    /// perf/README.md). Only where nothing else on the executor must go on meanwhile: the
    /// caller sets it per write (0 again under load, when the ordering core should go on
    /// ordering while a group commit is written).
    pub fn set_write_here_max(&mut self, bytes: usize) {
        self.write_here_max = bytes;
    }

    /// Whether the current (or next) segment is written with O_DIRECT.
    pub fn is_direct(&self) -> bool {
        match &self.file {
            Some(LogFile::Direct(_)) => true,
            Some(LogFile::Buffered(_)) => false,
            None => self.direct,
        }
    }

    /// Writes a batch with one write and one fdatasync (unless forceSync=no). Ok means
    /// durable: the caller may acknowledge these writes. On an I/O error the log stops for
    /// good.
    pub async fn append_batch(&mut self, txns: &[(TxnHeader, Txn)]) -> Result<(), WalError> {
        let Some(plan) = self.layout.plan_append(txns)? else {
            return Ok(());
        };
        let outcome = self.execute(&plan).await;
        self.layout.conclude(plan, outcome)
    }

    async fn execute(&mut self, plan: &AppendPlan) -> Result<(), WalError> {
        if let Some(new) = &plan.new_segment {
            if let Some(old) = self.file.take() {
                if new.sync_previous {
                    let old_path = self.layout.current_segment().unwrap_or(&new.path);
                    old.sync().await.map_err(io_error(old_path, "sync"))?;
                }
                old.close().await;
            }
            let path = &new.path;
            let file = self.create(path).await.map_err(io_error(path, "create"))?;
            file.allocate(new.allocate)
                .await
                .map_err(io_error(path, "preallocate"))?;
            file.write_at(&new.header, 0, false)
                .await
                .map_err(io_error(path, "write"))?;
            file.sync().await.map_err(io_error(path, "sync"))?;
            let dir = self.layout.log_dir();
            sync_dir(dir).await.map_err(io_error(dir, "sync"))?;
            log::info!(
                "started txn log segment {} ({})",
                path.display(),
                match file {
                    LogFile::Direct(_) => "O_DIRECT",
                    LogFile::Buffered(_) => "buffered",
                }
            );
            self.file = Some(file);
        }
        let path = plan.path();
        let Some(file) = self.file.as_ref() else {
            return Err(WalError::Failed);
        };
        if let Some(len) = plan.allocate {
            file.allocate(len)
                .await
                .map_err(io_error(path, "preallocate"))?;
        }
        let data = self.layout.write_data();
        let here = data.len() <= self.write_here_max;
        file.write_at(data, plan.offset, here)
            .await
            .map_err(io_error(path, "write"))?;
        // An O_DSYNC segment's write is durable when it completes (one device write with
        // FUA where the disk has it, instead of a write and then an fdatasync).
        if plan.sync && !self.writes_are_durable(file) {
            file.sync().await.map_err(io_error(path, "sync"))?;
        }
        Ok(())
    }

    /// Whether `file` was opened with O_DSYNC: O_DIRECT segments are when forceSync is on.
    fn writes_are_durable(&self, file: &LogFile) -> bool {
        matches!(file, LogFile::Direct(_)) && self.layout.config().force_sync
    }

    async fn create(&mut self, path: &Path) -> io::Result<LogFile> {
        let dir = path.parent().unwrap_or(path);
        if self.direct && is_tmpfs(dir) {
            log::warn!(
                "{}: tmpfs has no direct I/O; writing the txn log with buffered I/O",
                dir.display()
            );
            self.direct = false;
        }
        if self.direct {
            let opened = self.open_direct(path).await;
            match opened {
                Ok(file) if DIRECT_IO_ALIGNMENT.is_multiple_of(file.alignment()) => {
                    return Ok(LogFile::Direct(file));
                }
                Ok(file) => {
                    let alignment = file.alignment();
                    drop(file);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "the device needs {alignment}-byte aligned direct I/O, more than {DIRECT_IO_ALIGNMENT}"
                        ),
                    ));
                }
                Err(e) if direct_io_unsupported(&e) => {
                    log::warn!(
                        "{}: the file system does not support O_DIRECT ({e}); writing the txn log with buffered I/O",
                        dir.display()
                    );
                    self.direct = false;
                    // The refused open may have created the (empty) file already.
                    return open_buffered(path, false).await;
                }
                Err(e) => return Err(e),
            }
        }
        open_buffered(path, true).await
    }

    async fn open_direct(&self, path: &Path) -> io::Result<DirectFile> {
        let sync_flags = if self.layout.config().force_sync {
            libc::O_DSYNC
        } else {
            0
        };
        let file = DirectFile::create(path, sync_flags).await?;
        #[cfg(test)]
        if self.refuse_direct_io {
            drop(file);
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(file)
    }

    /// Closes the current segment and gives the layout back (for a later [`DmaLog::new`]
    /// on this or another executor: the layout is `Send`, the open file is not).
    pub async fn close(mut self) -> Result<LogLayout, WalError> {
        self.roll().await?;
        Ok(self.layout)
    }

    /// Closes the current segment; the next batch starts a new one.
    pub async fn roll(&mut self) -> Result<(), WalError> {
        let path = self.layout.current_segment().map(Path::to_path_buf);
        let sync = self.layout.roll()?;
        if let Some(old) = self.file.take() {
            if let (true, Some(path)) = (sync, path) {
                if let Err(error) = old.sync().await {
                    self.layout.fail();
                    return Err(io_error(&path, "sync")(error));
                }
            }
            old.close().await;
        }
        Ok(())
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let directory = glommio::io::Directory::open(dir).await.map_err(to_io)?;
    let synced = directory.sync().await.map_err(to_io);
    let _ = directory.close().await;
    synced
}

#[allow(clippy::unnecessary_cast)] // f_type's type differs between targets
/// Whether `path` is on tmpfs (written buffered: no direct I/O there before Linux 6.6).
fn is_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills a zeroed local struct from a NUL-terminated path.
    unsafe {
        let mut buf: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut buf) == 0
            && buf.f_type as i64 == libc::TMPFS_MAGIC as i64
    }
}

/// Opens a segment for buffered writes: a new file, or (`create_new` false) one that may
/// already exist empty.
async fn open_buffered(path: &Path, create_new: bool) -> io::Result<LogFile> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(!create_new)
        .create_new(create_new)
        .buffered_open(path)
        .await
        .map(LogFile::Buffered)
        .map_err(to_io)
}

#[cfg(test)]
mod tests {
    use super::super::recovery::WalDirs;
    use super::super::snapshot::tests::MapState;
    use super::super::writer::{Wal, WalConfig};
    use super::super::RealStorage;
    use super::*;
    use crate::tree::Txn;

    fn txn(zxid: i64, data: &[u8]) -> (TxnHeader, Txn) {
        (
            TxnHeader {
                session_id: 1,
                zxid,
                time_ms: 7,
                ..Default::default()
            },
            Txn::SetData {
                path: "/a".into(),
                data: bytes::Bytes::copy_from_slice(data),
                version: zxid as i32,
            },
        )
    }

    /// A temp dir on the data disk: the system temp dir, or the build's target dir when that
    /// is tmpfs.
    fn data_disk_dir() -> tempfile::TempDir {
        let temp = std::env::temp_dir();
        if !is_tmpfs(&temp) {
            return tempfile::tempdir_in(&temp).unwrap();
        }
        let base = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&base).unwrap();
        tempfile::tempdir_in(&base).unwrap()
    }

    fn config() -> WalConfig {
        WalConfig {
            pre_alloc_size_bytes: 64 * 1024,
            segment_len_max_bytes: 1 << 20,
            alignment: DIRECT_IO_ALIGNMENT,
            ..WalConfig::default()
        }
    }

    /// Recovers `dirs` with the sync reader; returns the zxids and data of the txns.
    fn read_back(dirs: &WalDirs) -> Vec<(i64, Vec<u8>)> {
        let mut state = MapState::default();
        let (_, recovered) = Wal::open(RealStorage, dirs.clone(), config(), &mut state).unwrap();
        assert!(recovered.torn_tail.is_none(), "{:?}", recovered.torn_tail);
        recovered
            .txns
            .iter()
            .map(|(h, t)| match t {
                Txn::SetData { data, .. } => (h.zxid, data.to_vec()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn write_log(
        dir: &Path,
        refuse_direct_io: bool,
        write_here_max: usize,
    ) -> (bool, Vec<(i64, Vec<u8>)>) {
        let dirs = WalDirs {
            log_dir: dir.join("log"),
            snapshot_dir: dir.join("snap"),
        };
        std::fs::create_dir_all(&dirs.log_dir).unwrap();
        std::fs::create_dir_all(&dirs.snapshot_dir).unwrap();
        let mut state = MapState::default();
        let (wal, _) = Wal::open(RealStorage, dirs.clone(), config(), &mut state).unwrap();
        wal.save_snapshot(&state).unwrap();
        let layout = wal.into_layout().unwrap();
        let mut expected = Vec::new();
        let direct = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut log = DmaLog::new(layout);
                log.refuse_direct_io = refuse_direct_io;
                log.set_write_here_max(write_here_max);
                let mut zxid = 1;
                // Small batches (each rewrites the tail block), one crossing blocks, a roll.
                for (round, size) in [10usize, 3, 5000, 1, 200, 9000, 7].iter().enumerate() {
                    let batch: Vec<_> = (0..3)
                        .map(|i| {
                            let data = vec![(round * 3 + i) as u8 + 1; *size];
                            let t = txn(zxid, &data);
                            zxid += 1;
                            t
                        })
                        .collect();
                    log.append_batch(&batch).await.unwrap();
                    if round == 4 {
                        log.roll().await.unwrap();
                    }
                }
                let direct = log.is_direct();
                log.roll().await.unwrap();
                direct
            })
            .unwrap()
            .join()
            .unwrap();
        let mut zxid = 1;
        for (round, size) in [10usize, 3, 5000, 1, 200, 9000, 7].iter().enumerate() {
            for i in 0..3 {
                expected.push((zxid, vec![(round * 3 + i) as u8 + 1; *size]));
                zxid += 1;
            }
        }
        let mut segments: Vec<_> = std::fs::read_dir(&dirs.log_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segments.sort();
        assert_eq!(segments.len(), 2, "{segments:?}");
        for segment in &segments {
            let len = std::fs::metadata(segment).unwrap().len();
            assert_eq!(len % DIRECT_IO_ALIGNMENT, 0, "{}", segment.display());
            assert!(len >= 64 * 1024, "preallocated: {len}");
        }
        assert_eq!(read_back(&dirs), expected);
        (direct, expected)
    }

    #[test]
    fn direct_io_round_trip_on_the_data_disk() {
        let dir = data_disk_dir();
        let (direct, records) = write_log(dir.path(), false, 0);
        assert_eq!(records.len(), 21);
        // ext4 and xfs take O_DIRECT; tmpfs is written buffered by glommio anyway.
        if !is_tmpfs(dir.path()) {
            assert!(direct, "{} did not take O_DIRECT", dir.path().display());
        }
    }

    #[test]
    fn small_writes_on_the_executors_own_thread_round_trip_too() {
        // 16 KiB: every batch but the 3 x 9000-byte one is written without the pool.
        let dir = data_disk_dir();
        let (direct, records) = write_log(dir.path(), false, 16 * 1024);
        assert_eq!(records.len(), 21);
        if !is_tmpfs(dir.path()) {
            assert!(direct);
        }
    }

    #[test]
    fn on_tmpfs_the_log_is_written_buffered() {
        let shm = Path::new("/dev/shm");
        if !is_tmpfs(shm) {
            eprintln!("skipped: /dev/shm is not tmpfs here");
            return;
        }
        let dir = tempfile::tempdir_in(shm).unwrap();
        let (direct, records) = write_log(dir.path(), false, 0);
        assert!(!direct);
        assert_eq!(records.len(), 21);
    }

    #[test]
    fn without_o_direct_the_log_falls_back_to_buffered_writes() {
        let dir = data_disk_dir();
        let (direct, records) = write_log(dir.path(), true, 0);
        assert!(!direct, "EINVAL on the O_DIRECT open must fall back");
        assert_eq!(records.len(), 21);
    }
}
