//! What the log writer, snapshots and recovery need from a file system, as a trait.
//!
//! Two implementations: [`RealStorage`] on `std::fs` (with real fdatasync and directory
//! fsync), and [`super::sim::SimStorage`], which keeps written and durable bytes apart and
//! can crash at any operation. The server's O_DIRECT writer (`super::dma::DmaLog`) does not go
//! through it, but follows the same `LogLayout` plans that the sync `Wal` runs over it.
//!
//! Durability contract (the one Linux gives and the simulation enforces):
//! - `write_at`, `allocate` and `truncate` change what reads return at once, but survive a
//!   crash only after `sync` of that file returns.
//! - `create`, `rename` and `remove` survive a crash only after `sync_dir` of the directory
//!   returns.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

pub trait Storage {
    /// An open file, readable and writable.
    type File;

    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the regular files in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new, empty file; fails if one exists.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Writes all of `data` at `offset`, growing the file if needed.
    fn write_at(&self, file: &mut Self::File, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Grows the file to at least `len` bytes of zeros (never shrinks it).
    fn allocate(&self, file: &mut Self::File, len: u64) -> io::Result<()>;
    /// Sets the file's length to `len`, cutting or zero-extending it.
    fn truncate(&self, file: &mut Self::File, len: u64) -> io::Result<()>;
    /// fdatasync: makes the file's content and length durable.
    fn sync(&self, file: &mut Self::File) -> io::Result<()>;
    /// The whole content of a file.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Atomically replaces `to` with `from` (same directory).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// fsync of the directory: makes creates, renames and removes in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// `std::fs` with real fdatasync and directory fsync.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealStorage;

impl Storage for RealStorage {
    type File = File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            // Names that are not UTF-8 are not ours.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }

    fn write_at(&self, file: &mut File, offset: u64, data: &[u8]) -> io::Result<()> {
        file.write_all_at(data, offset)
    }

    fn allocate(&self, file: &mut File, len: u64) -> io::Result<()> {
        if file.metadata()?.len() >= len {
            return Ok(());
        }
        let Ok(len_off) = libc::off_t::try_from(len) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "length too large",
            ));
        };
        // SAFETY: posix_fallocate only reads the descriptor, which `file` keeps open.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_off) };
        match rc {
            0 => Ok(()),
            // File systems without fallocate: a sparse extension reads back as zeros too.
            libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    fn truncate(&self, file: &mut File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn sync(&self, file: &mut File) -> io::Result<()> {
        file.sync_data()
    }

    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut file = File::open(path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_storage_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RealStorage;
        let sub = dir.path().join("a/b");
        storage.create_dir_all(&sub).unwrap();
        let path = sub.join("f");
        let mut file = storage.create(&path).unwrap();
        assert!(
            storage.create(&path).is_err(),
            "create must not replace a file"
        );
        storage.allocate(&mut file, 100).unwrap();
        storage.write_at(&mut file, 10, b"hello").unwrap();
        storage.sync(&mut file).unwrap();
        let bytes = storage.read_all(&path).unwrap();
        assert_eq!(bytes.len(), 100);
        assert_eq!(&bytes[10..15], b"hello");
        assert!(bytes[..10].iter().all(|&b| b == 0));
        storage.allocate(&mut file, 50).unwrap();
        assert_eq!(
            storage.read_all(&path).unwrap().len(),
            100,
            "allocate never shrinks"
        );
        storage.truncate(&mut file, 12).unwrap();
        assert_eq!(storage.read_all(&path).unwrap(), b"\0\0\0\0\0\0\0\0\0\0he");
        let to = sub.join("g");
        storage.rename(&path, &to).unwrap();
        storage.sync_dir(&sub).unwrap();
        assert_eq!(storage.list(&sub).unwrap(), vec!["g".to_string()]);
        drop(storage.open(&to).unwrap());
        storage.remove(&to).unwrap();
        assert!(storage.list(&sub).unwrap().is_empty());
    }
}
