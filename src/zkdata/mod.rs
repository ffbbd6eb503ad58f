//! Apache ZooKeeper's own data directory (`version-2`): reading its snapshots and txn logs,
//! importing them at start-up, and writing a `version-2` directory ZooKeeper starts from
//! (`zkrs export-zk`). zkrs's own files live in `zkrs-1/` (see `server::persistence`); this
//! module is the bridge between the two.
//!
//! Files, as ZooKeeper 3.8 writes them (`FileSnap`, `SnapStream`, `FileTxnLog`, `Util`):
//!
//! ```text
//! FileHeader := int magic ("ZKSN" / "ZKLG"); int version (2); long dbid
//! snapshot.<zxid hex> := FileHeader body seal [ZxidDigest seal]
//!     body      := see zab::snap (sessions, ACL cache, nodes, "/")
//!     seal      := long adler32(every byte of the file before the seal); ustring "/"
//!     ZxidDigest := long zxid; int digestVersion; long digest (ustring before version 2)
//! log.<first zxid hex> := FileHeader record* (zeros to the preallocated end)
//!     record    := long adler32(entry); buffer entry; byte 'B'
//!     entry     := TxnHeader txn [TxnDigest]             (see zab::txn)
//! ```
//!
//! - [`snapfile`]: a snapshot file's checks (the tail seal ZooKeeper's `isValidSnapshot`
//!   looks for, magic, body, checksums, the optional digest) and its encoding.
//! - [`txnlog`]: a txn log file's records, where and how they end: cleanly (a zero length, the
//!   preallocated end, or the end of the file), torn (a record cut short with nothing but
//!   zeros after it), or corrupt (anything else: a checksum mismatch, a record that does
//!   not decode, data after the end).
//! - [`migrate`]: start-up import of a `version-2` directory into `zkrs-1`, epoch files
//!   included, and `export-zk`.
//!
//! Architecture Invariant: readers are pure and never panic on any bytes (damaged input
//! is an `Err` naming the offset); nothing here writes into `version-2` except
//! [`migrate::export`], which only adds files.

pub mod migrate;
pub mod snapfile;
pub mod txnlog;

/// The subdirectory of dataDir / dataLogDir that ZooKeeper keeps its files in.
pub const JAVA_SUBDIR: &str = "version-2";
/// `FileSnap.SNAP_MAGIC`.
pub const SNAP_MAGIC: [u8; 4] = *b"ZKSN";
/// `FileTxnLog.TXNLOG_MAGIC`.
pub const TXNLOG_MAGIC: [u8; 4] = *b"ZKLG";
/// `FileSnap.VERSION`, `FileTxnLog.VERSION`.
pub const FILE_VERSION: i32 = 2;
/// The dbid ZooKeeper writes in snapshot headers (`FileSnap.dbId`).
pub const SNAP_DB_ID: i64 = -1;
/// The length of a `FileHeader`.
pub const FILE_HEADER_LEN: usize = 16;

/// A `FileHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub magic: [u8; 4],
    pub version: i32,
    pub db_id: i64,
}

impl FileHeader {
    /// The header at the start of `bytes`, or None if the file is shorter than one.
    pub fn read(bytes: &[u8]) -> Option<FileHeader> {
        let header = bytes.get(..FILE_HEADER_LEN)?;
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&header[..4]);
        let mut version = [0u8; 4];
        version.copy_from_slice(&header[4..8]);
        let mut db_id = [0u8; 8];
        db_id.copy_from_slice(&header[8..16]);
        Some(FileHeader {
            magic,
            version: i32::from_be_bytes(version),
            db_id: i64::from_be_bytes(db_id),
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.db_id.to_be_bytes());
    }
}

/// Adler-32 (RFC 1950), as `java.util.zip.Adler32` computes it; ZooKeeper stores the value
/// in a long.
#[derive(Debug, Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    const MOD: u32 = 65_521;
    /// The most bytes summed before the sums must be reduced (zlib's NMAX): no u32
    /// overflow.
    const CHUNK: usize = 5552;

    pub fn update(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(Self::CHUNK) {
            for &byte in chunk {
                self.a += u32::from(byte);
                self.b += self.a;
            }
            self.a %= Self::MOD;
            self.b %= Self::MOD;
        }
    }

    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }

    pub fn of(bytes: &[u8]) -> u32 {
        let mut adler = Adler32::default();
        adler.update(bytes);
        adler.value()
    }
}

/// The zxid in a ZooKeeper file name (`snapshot.<hex>`, `log.<hex>`; ZooKeeper's
/// `Util.getZxidFromName` reads the part after the first dot as hex). A compressed
/// snapshot's extra suffix (`.gz`, `.snappy`) makes it None here; see [`is_compressed`].
pub fn zxid_of_name(name: &str, prefix: &str) -> Option<i64> {
    crate::wal::parse_name(name, prefix)
}

/// Whether a snapshot name carries a compression suffix (`snapshot.<hex>.gz`/`.snappy`),
/// which zkrs does not read.
pub fn is_compressed(name: &str) -> bool {
    name.starts_with("snapshot.") && (name.ends_with(".gz") || name.ends_with(".snappy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(Adler32::of(b""), 1);
        assert_eq!(Adler32::of(b"Wikipedia"), 0x11E6_0398);
        // Long input: sums reduced in chunks give the same as one byte at a time.
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut a: u64 = 1;
        let mut b: u64 = 0;
        for &byte in &data {
            a = (a + u64::from(byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(u64::from(Adler32::of(&data)), (b << 16) | a);
        let mut split = Adler32::default();
        split.update(&data[..12_345]);
        split.update(&data[12_345..]);
        assert_eq!(split.value(), Adler32::of(&data));
    }

    #[test]
    fn headers_and_names() {
        let header = FileHeader {
            magic: SNAP_MAGIC,
            version: 2,
            db_id: -1,
        };
        let mut out = Vec::new();
        header.write(&mut out);
        assert_eq!(out.len(), FILE_HEADER_LEN);
        assert_eq!(FileHeader::read(&out), Some(header));
        assert_eq!(FileHeader::read(&out[..15]), None);
        assert_eq!(zxid_of_name("snapshot.1a", "snapshot."), Some(0x1a));
        assert_eq!(zxid_of_name("snapshot.1a.gz", "snapshot."), None);
        assert!(is_compressed("snapshot.1a.gz"));
        assert!(!is_compressed("snapshot.1a"));
    }
}
