//! Snapshot files: every znode and session of one tree version, with a checksum.
//!
//! ```text
//! File name `snapshot.<last zxid, lowercase hex>`; written as `snapshot.<hex>.tmp`, synced,
//! renamed, and the directory synced, so a snapshot is either whole or absent.
//!
//!   Snapshot := Header Entry* EndTag Trailer
//!
//!   Header (SNAPSHOT_HEADER_LEN = 28 bytes):
//!     magic        8 bytes  "ZKRSSNP1"
//!     version      u32      SNAPSHOT_VERSION (2; 1 is read too)
//!     db_id        i64
//!     last_zxid    i64      the zxid of the last txn applied to the tree (also in the name)
//!
//!   Entry := tag u8, then by tag:
//!     1 Node     path String, data Data, acl AclOrSame, czxid i64, mzxid i64, pzxid i64,
//!                ctime i64, mtime i64, version i32, cversion i32, aversion i32,
//!                ephemeral_owner i64
//!     2 Session  session_id i64, timeout_ms i32
//!   Data := length u32, bytes; or u32::MAX alone for null data (version 2; version 1
//!           wrote null data as empty)
//!   EndTag := 0 u8
//!   AclOrSame := count u32 (ACL_SAME_AS_PREVIOUS = u32::MAX: the previous node's list),
//!                (perms i32, scheme String, id String) * count
//!
//!   Trailer (20 bytes):
//!     node_count     u64
//!     session_count  u64
//!     crc            u32    CRC32C of every byte before it
//! ```
//!
//! Little-endian throughout. Nodes come parent before child; children lists are not stored
//! (the sink links each node under its parent). The whole file is checked against its CRC
//! before the first node reaches the sink, so a corrupt snapshot leaves the sink untouched.
//!
//! Unlike ZooKeeper's fuzzy snapshots (taken while txns keep being applied, made consistent
//! by replaying the log over them), ours are exact: the tree is persistent, so the snapshot is
//! taken from an immutable clone at `last_zxid`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::proto::Acl;
use crate::tree::{Meta, Znode};

use super::codec::{self, DecodeError, Reader};
use super::storage::Storage;
use super::{snapshot_name, TEMP_SUFFIX};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"ZKRSSNP1";
/// Written in new snapshots. Version 2 added null data (`Data`); version 1 files are read
/// too, and older zkrs refuses version 2 files with "unsupported snapshot version 2".
pub const SNAPSHOT_VERSION: u32 = 2;
/// The oldest snapshot version still read.
pub const SNAPSHOT_VERSION_MIN: u32 = 1;
pub const SNAPSHOT_HEADER_LEN: usize = 28;
pub const SNAPSHOT_TRAILER_LEN: usize = 20;
const ACL_SAME_AS_PREVIOUS: u32 = u32::MAX;
const TAG_END: u8 = 0;
const TAG_NODE: u8 = 1;
const TAG_SESSION: u8 = 2;
/// The writer hands the storage chunks of about this size.
const WRITE_CHUNK_LEN: usize = 1024 * 1024;

/// A consistent view of the state to snapshot: one tree version and the sessions at the same
/// zxid.
///
/// To be implemented by the ordering core for its (DataTree clone, session table clone) pair
/// once `DataTree` exposes iteration; this module only needs the trait.
pub trait SnapshotSource {
    /// Visits every znode, `/` first and every parent before its children.
    fn for_each_node(&self, f: &mut dyn FnMut(&str, &Znode));
    /// Visits every open session: (session id, timeout in ms).
    fn for_each_session(&self, f: &mut dyn FnMut(i64, i32));
    /// The zxid of the last txn applied to this view.
    fn last_zxid(&self) -> i64;
}

/// Rebuilds the state from a snapshot. To be implemented for the tree and session table
/// under construction at start-up (the counterpart of [`SnapshotSource`]).
pub trait SnapshotSink {
    /// Called `/` first and parent before child. `node.children` is empty: the sink adds
    /// `path` to its parent's children.
    fn insert_node(&mut self, path: &str, node: Znode);
    fn insert_session(&mut self, session_id: i64, timeout_ms: i32);
    /// Called last, once every node and session is in.
    fn set_last_zxid(&mut self, zxid: i64);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub db_id: i64,
    pub last_zxid: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub header: SnapshotHeader,
    pub node_count: u64,
    pub session_count: u64,
}

#[derive(Debug)]
pub enum SnapshotError {
    Io {
        path: PathBuf,
        operation: &'static str,
        error: io::Error,
    },
    TooShort(usize),
    BadMagic,
    UnsupportedVersion(u32),
    BadChecksum {
        stored: u32,
        computed: u32,
    },
    /// The file name's zxid and the header's differ.
    NameMismatch {
        name_zxid: i64,
        header_zxid: i64,
    },
    /// Passed its CRC but does not decode: a bug or a format version mismatch.
    Malformed(DecodeError),
    /// A string too long for the format (over 4 GiB).
    TooLarge,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Io {
                path,
                operation,
                error,
            } => write!(f, "{operation} {}: {error}", path.display()),
            SnapshotError::TooShort(len) => write!(f, "file is only {len} bytes"),
            SnapshotError::BadMagic => write!(f, "header magic is not ZKRSSNP1"),
            SnapshotError::UnsupportedVersion(v) => write!(f, "unsupported snapshot version {v}"),
            SnapshotError::BadChecksum { stored, computed } => write!(
                f,
                "CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            SnapshotError::NameMismatch {
                name_zxid,
                header_zxid,
            } => write!(
                f,
                "file name says zxid {name_zxid:#x} but the header says {header_zxid:#x}"
            ),
            SnapshotError::Malformed(e) => {
                write!(f, "passes its CRC32C but does not decode: {e}")
            }
            SnapshotError::TooLarge => write!(f, "a path or data too large for the format"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Checks a snapshot's header and whole-file CRC without decoding its entries.
pub fn verify_snapshot(bytes: &[u8]) -> Result<SnapshotHeader, SnapshotError> {
    if bytes.len() < SNAPSHOT_HEADER_LEN + 1 + SNAPSHOT_TRAILER_LEN {
        return Err(SnapshotError::TooShort(bytes.len()));
    }
    if bytes[..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let (covered, crc_bytes) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    let computed = crc32c::crc32c(covered);
    if stored != computed {
        return Err(SnapshotError::BadChecksum { stored, computed });
    }
    let mut reader = Reader::new(&bytes[8..SNAPSHOT_HEADER_LEN]);
    let version = reader.u32("version").map_err(SnapshotError::Malformed)?;
    if !(SNAPSHOT_VERSION_MIN..=SNAPSHOT_VERSION).contains(&version) {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    Ok(SnapshotHeader {
        db_id: reader.i64("db_id").map_err(SnapshotError::Malformed)?,
        last_zxid: reader.i64("last_zxid").map_err(SnapshotError::Malformed)?,
    })
}

/// Verifies `bytes` (see [`verify_snapshot`]), then feeds every node and session to `sink`.
///
/// A `Malformed` error (the CRC passed, the content does not decode) can come after part of
/// the content reached the sink; that is a bug or a version mismatch and the caller refuses
/// to start.
pub fn load_snapshot(
    bytes: &[u8],
    sink: &mut dyn SnapshotSink,
) -> Result<SnapshotSummary, SnapshotError> {
    let header = verify_snapshot(bytes)?;
    let body = &bytes[..bytes.len() - 4];
    let mut reader = Reader::new(body);
    reader
        .raw(SNAPSHOT_HEADER_LEN, "header")
        .map_err(SnapshotError::Malformed)?;
    let mut node_count = 0u64;
    let mut session_count = 0u64;
    let mut previous_acl: Option<Arc<Vec<Acl>>> = None;
    loop {
        let tag_offset = reader.position();
        match reader.u8("entry tag").map_err(SnapshotError::Malformed)? {
            TAG_END => break,
            TAG_NODE => {
                let (path, node) = decode_node(&mut reader, &mut previous_acl)
                    .map_err(SnapshotError::Malformed)?;
                sink.insert_node(&path, node);
                node_count += 1;
            }
            TAG_SESSION => {
                let id = reader.i64("session id").map_err(SnapshotError::Malformed)?;
                let timeout = reader
                    .i32("session timeout")
                    .map_err(SnapshotError::Malformed)?;
                sink.insert_session(id, timeout);
                session_count += 1;
            }
            _ => {
                return Err(SnapshotError::Malformed(DecodeError {
                    what: "entry tag",
                    offset: tag_offset,
                }))
            }
        }
    }
    let trailer_offset = reader.position();
    let stored_nodes = reader.u64("node count").map_err(SnapshotError::Malformed)?;
    let stored_sessions = reader
        .u64("session count")
        .map_err(SnapshotError::Malformed)?;
    if reader.remaining() != 0 || stored_nodes != node_count || stored_sessions != session_count {
        return Err(SnapshotError::Malformed(DecodeError {
            what: "trailer counts",
            offset: trailer_offset,
        }));
    }
    sink.set_last_zxid(header.last_zxid);
    Ok(SnapshotSummary {
        header,
        node_count,
        session_count,
    })
}

fn decode_node(
    reader: &mut Reader<'_>,
    previous_acl: &mut Option<Arc<Vec<Acl>>>,
) -> Result<(String, Znode), DecodeError> {
    let path_offset = reader.position();
    let path = reader.string("path")?;
    if !path.starts_with('/') {
        return Err(DecodeError {
            what: "path",
            offset: path_offset,
        });
    }
    let data = reader.data("data")?;
    let acl_offset = reader.position();
    let acl = if reader.peek_u32() == Some(ACL_SAME_AS_PREVIOUS) {
        reader.u32("acl")?;
        previous_acl.clone().ok_or(DecodeError {
            what: "acl reference with no previous node",
            offset: acl_offset,
        })?
    } else {
        Arc::new(reader.acl_list()?)
    };
    *previous_acl = Some(acl.clone());
    let meta = Meta {
        acl,
        czxid: reader.i64("czxid")?,
        mzxid: reader.i64("mzxid")?,
        pzxid: reader.i64("pzxid")?,
        ctime: reader.i64("ctime")?,
        mtime: reader.i64("mtime")?,
        version: reader.i32("version")?,
        cversion: reader.i32("cversion")?,
        aversion: reader.i32("aversion")?,
        ephemeral_owner: reader.i64("ephemeral owner")?,
        children: Default::default(),
    };
    let node = Znode::new(meta, &data);
    Ok((path, node))
}

/// Streams entries to a file in chunks, keeping the running CRC.
struct ChunkedWriter<'a, S: Storage> {
    storage: &'a S,
    file: &'a mut S::File,
    path: &'a Path,
    buffer: Vec<u8>,
    written: u64,
    crc: u32,
}

impl<S: Storage> ChunkedWriter<'_, S> {
    fn flush(&mut self) -> Result<(), SnapshotError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.crc = crc32c::crc32c_append(self.crc, &self.buffer);
        self.storage
            .write_at(self.file, self.written, &self.buffer)
            .map_err(|error| SnapshotError::Io {
                path: self.path.to_path_buf(),
                operation: "write",
                error,
            })?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    fn maybe_flush(&mut self) -> Result<(), SnapshotError> {
        if self.buffer.len() >= WRITE_CHUNK_LEN {
            self.flush()?;
        }
        Ok(())
    }
}

fn encode_node(
    out: &mut Vec<u8>,
    path: &str,
    node: &Znode,
    previous_acl: &mut Option<Arc<Vec<Acl>>>,
) -> bool {
    codec::put_u8(out, TAG_NODE);
    if !codec::put_bytes(out, path.as_bytes()) || !codec::put_data(out, node.data()) {
        return false;
    }
    let same = previous_acl
        .as_ref()
        .is_some_and(|previous| Arc::ptr_eq(previous, &node.acl) || **previous == *node.acl);
    if same {
        codec::put_u32(out, ACL_SAME_AS_PREVIOUS);
    } else {
        // A list of u32::MAX entries cannot be written: it would read as "same".
        if node.acl.len() >= ACL_SAME_AS_PREVIOUS as usize || !codec::put_acl_list(out, &node.acl) {
            return false;
        }
        *previous_acl = Some(node.acl.clone());
    }
    codec::put_i64(out, node.czxid);
    codec::put_i64(out, node.mzxid);
    codec::put_i64(out, node.pzxid);
    codec::put_i64(out, node.ctime);
    codec::put_i64(out, node.mtime);
    codec::put_i32(out, node.version);
    codec::put_i32(out, node.cversion);
    codec::put_i32(out, node.aversion);
    codec::put_i64(out, node.ephemeral_owner);
    true
}

/// Where a snapshot went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub last_zxid: i64,
    pub node_count: u64,
    pub session_count: u64,
    pub len_bytes: u64,
}

/// Writes a snapshot of `source` into `dir` as `snapshot.<last zxid hex>`: temp file, sync,
/// rename, directory sync. On error the temp file may remain; recovery removes it.
pub fn save_snapshot<S: Storage>(
    storage: &S,
    dir: &Path,
    db_id: i64,
    source: &dyn SnapshotSource,
) -> Result<SnapshotInfo, SnapshotError> {
    let last_zxid = source.last_zxid();
    let final_path = dir.join(snapshot_name(last_zxid));
    let temp_path = dir.join(format!("{}{TEMP_SUFFIX}", snapshot_name(last_zxid)));
    let io_error = |path: &Path, operation: &'static str| {
        let path = path.to_path_buf();
        move |error| SnapshotError::Io {
            path,
            operation,
            error,
        }
    };
    match storage.remove(&temp_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&temp_path, "remove")(e)),
    }
    let mut file = storage
        .create(&temp_path)
        .map_err(io_error(&temp_path, "create"))?;
    let mut writer = ChunkedWriter {
        storage,
        file: &mut file,
        path: &temp_path,
        buffer: Vec::with_capacity(WRITE_CHUNK_LEN + 64 * 1024),
        written: 0,
        crc: 0,
    };
    writer.buffer.extend_from_slice(&SNAPSHOT_MAGIC);
    codec::put_u32(&mut writer.buffer, SNAPSHOT_VERSION);
    codec::put_i64(&mut writer.buffer, db_id);
    codec::put_i64(&mut writer.buffer, last_zxid);
    let mut node_count = 0u64;
    let mut session_count = 0u64;
    let mut previous_acl = None;
    let mut result = Ok(());
    source.for_each_node(&mut |path, node| {
        if result.is_err() {
            return;
        }
        if !encode_node(&mut writer.buffer, path, node, &mut previous_acl) {
            result = Err(SnapshotError::TooLarge);
            return;
        }
        node_count += 1;
        result = writer.maybe_flush();
    });
    result?;
    let mut result = Ok(());
    source.for_each_session(&mut |id, timeout| {
        if result.is_err() {
            return;
        }
        codec::put_u8(&mut writer.buffer, TAG_SESSION);
        codec::put_i64(&mut writer.buffer, id);
        codec::put_i32(&mut writer.buffer, timeout);
        session_count += 1;
        result = writer.maybe_flush();
    });
    result?;
    codec::put_u8(&mut writer.buffer, TAG_END);
    codec::put_u64(&mut writer.buffer, node_count);
    codec::put_u64(&mut writer.buffer, session_count);
    let crc = crc32c::crc32c_append(writer.crc, &writer.buffer);
    codec::put_u32(&mut writer.buffer, crc);
    // The CRC bytes themselves are not covered; flush() folds them into `crc`, unused after.
    writer.flush()?;
    let len_bytes = writer.written;
    storage
        .sync(&mut file)
        .map_err(io_error(&temp_path, "sync"))?;
    storage
        .rename(&temp_path, &final_path)
        .map_err(io_error(&temp_path, "rename"))?;
    storage
        .sync_dir(dir)
        .map_err(io_error(dir, "sync directory"))?;
    Ok(SnapshotInfo {
        path: final_path,
        last_zxid,
        node_count,
        session_count,
        len_bytes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::proto::Id;
    use crate::wal::sim::SimStorage;

    /// A stand-in for the tree: path -> znode, plus sessions.
    #[derive(Debug, Clone, Default, PartialEq)]
    pub(crate) struct MapState {
        pub nodes: BTreeMap<String, (Bytes, Vec<Acl>, i64, i32)>,
        pub sessions: BTreeMap<i64, i32>,
        pub last_zxid: i64,
    }

    pub(crate) fn znode(data: &Bytes, acl: &Arc<Vec<Acl>>, zxid: i64, version: i32) -> Znode {
        let meta = Meta {
            acl: acl.clone(),
            czxid: zxid,
            mzxid: zxid + 1,
            pzxid: zxid + 2,
            ctime: 1000 + zxid,
            mtime: 2000 + zxid,
            version,
            cversion: version + 1,
            aversion: version + 2,
            ephemeral_owner: zxid * 3,
            children: Default::default(),
        };
        Znode::new(meta, data)
    }

    impl SnapshotSource for MapState {
        fn for_each_node(&self, f: &mut dyn FnMut(&str, &Znode)) {
            // Paths sort parent-first ('/' sorts before any other byte we use).
            let mut shared: Option<(Vec<Acl>, Arc<Vec<Acl>>)> = None;
            for (path, (data, acl, zxid, version)) in &self.nodes {
                let acl = match &shared {
                    Some((plain, arc)) if plain == acl => arc.clone(),
                    _ => {
                        let arc = Arc::new(acl.clone());
                        shared = Some((acl.clone(), arc.clone()));
                        arc
                    }
                };
                f(path, &znode(data, &acl, *zxid, *version));
            }
        }
        fn for_each_session(&self, f: &mut dyn FnMut(i64, i32)) {
            for (id, timeout) in &self.sessions {
                f(*id, *timeout);
            }
        }
        fn last_zxid(&self) -> i64 {
            self.last_zxid
        }
    }

    impl SnapshotSink for MapState {
        fn insert_node(&mut self, path: &str, node: Znode) {
            assert!(node.children.is_empty());
            assert_eq!(node.mzxid, node.czxid + 1);
            assert_eq!(node.ephemeral_owner, node.czxid * 3);
            self.nodes.insert(
                path.to_string(),
                (
                    node.data_bytes(),
                    (*node.acl).clone(),
                    node.czxid,
                    node.version,
                ),
            );
        }
        fn insert_session(&mut self, session_id: i64, timeout_ms: i32) {
            self.sessions.insert(session_id, timeout_ms);
        }
        fn set_last_zxid(&mut self, zxid: i64) {
            self.last_zxid = zxid;
        }
    }

    fn sample() -> MapState {
        let world = vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }];
        let digest = vec![Acl {
            perms: 1,
            id: Id {
                scheme: "digest".into(),
                id: "u:h".into(),
            },
        }];
        let mut state = MapState {
            last_zxid: 0x5_0000_0010,
            ..MapState::default()
        };
        state
            .nodes
            .insert("/".into(), (Bytes::new(), world.clone(), 0, 0));
        state
            .nodes
            .insert("/a".into(), (Bytes::from_static(b"x"), world.clone(), 5, 1));
        state
            .nodes
            .insert("/a/b".into(), (Bytes::from(vec![9; 3000]), digest, 6, 2));
        state.nodes.insert("/c".into(), (Bytes::new(), world, 7, 3));
        state.sessions.insert(0x100, 30_000);
        state.sessions.insert(0x101, 4_000);
        state
    }

    #[test]
    fn null_data_round_trips_apart_from_empty_data() {
        let storage = SimStorage::new(7);
        let dir = Path::new("/snap");
        storage.create_dir_all(dir).unwrap();
        let mut state = sample();
        let world = state.nodes["/"].1.clone();
        state
            .nodes
            .insert("/null".into(), (crate::proto::null_buffer(), world, 8, 0));
        let info = save_snapshot(&storage, dir, 0, &state).unwrap();
        let mut loaded = MapState::default();
        load_snapshot(&storage.read_all(&info.path).unwrap(), &mut loaded).unwrap();
        assert_eq!(loaded, state);
        assert!(crate::proto::is_null_buffer(&loaded.nodes["/null"].0));
        assert!(!crate::proto::is_null_buffer(&loaded.nodes["/c"].0));
    }

    #[test]
    fn version_1_snapshots_are_still_read() {
        let storage = SimStorage::new(7);
        let dir = Path::new("/snap");
        storage.create_dir_all(dir).unwrap();
        let state = sample();
        let info = save_snapshot(&storage, dir, 0, &state).unwrap();
        let mut bytes = storage.read_all(&info.path).unwrap();
        assert_eq!(SNAPSHOT_VERSION, 2);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let end = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
        let mut loaded = MapState::default();
        load_snapshot(&bytes, &mut loaded).unwrap();
        assert_eq!(loaded, state);
        bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            load_snapshot(&bytes, &mut MapState::default())
                .err()
                .map(|e| e.to_string()),
            Some("unsupported snapshot version 3".to_string())
        );
    }

    #[test]
    fn snapshot_round_trips_through_storage() {
        let storage = SimStorage::new(7);
        let dir = Path::new("/snap");
        storage.create_dir_all(dir).unwrap();
        let state = sample();
        let info = save_snapshot(&storage, dir, 0, &state).unwrap();
        assert_eq!(info.path, dir.join("snapshot.500000010"));
        assert_eq!((info.node_count, info.session_count), (4, 2));
        assert_eq!(
            storage.list(dir).unwrap(),
            vec!["snapshot.500000010".to_string()]
        );
        let bytes = storage.read_all(&info.path).unwrap();
        assert_eq!(bytes.len() as u64, info.len_bytes);
        let mut loaded = MapState::default();
        let summary = load_snapshot(&bytes, &mut loaded).unwrap();
        assert_eq!(summary.header.last_zxid, 0x5_0000_0010);
        assert_eq!(loaded, state);
        // Durable: it survives a crash right after save returns.
        storage.crash(crate::wal::sim::CrashMode::DropUnsynced);
        assert_eq!(storage.read_all(&info.path).unwrap(), bytes);
    }

    #[test]
    fn shared_acls_are_written_once() {
        let mut state = sample();
        let big_acl: Vec<Acl> = (0..50)
            .map(|i| Acl {
                perms: 1,
                id: Id {
                    scheme: "ip".into(),
                    id: format!("10.0.0.{i}"),
                },
            })
            .collect();
        for i in 0..100 {
            state
                .nodes
                .insert(format!("/n{i:03}"), (Bytes::new(), big_acl.clone(), 1, 0));
        }
        let storage = SimStorage::new(1);
        let dir = Path::new("/s");
        storage.create_dir_all(dir).unwrap();
        let info = save_snapshot(&storage, dir, 0, &state).unwrap();
        // Written out each time, the 50-entry list alone would take over 100 KB.
        assert!(info.len_bytes < 20_000, "{} bytes", info.len_bytes);
        let mut loaded = MapState::default();
        load_snapshot(&storage.read_all(&info.path).unwrap(), &mut loaded).unwrap();
        assert_eq!(loaded, state);
    }

    #[test]
    fn any_damaged_byte_is_refused_before_the_sink_sees_anything() {
        let storage = SimStorage::new(1);
        let dir = Path::new("/s");
        storage.create_dir_all(dir).unwrap();
        let info = save_snapshot(&storage, dir, 0, &sample()).unwrap();
        let bytes = storage.read_all(&info.path).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            let mut loaded = MapState::default();
            assert!(load_snapshot(&bad, &mut loaded).is_err(), "byte {i}");
            assert_eq!(loaded, MapState::default(), "byte {i} reached the sink");
        }
        for len in 0..bytes.len() {
            assert!(verify_snapshot(&bytes[..len]).is_err(), "len {len}");
        }
    }

    /// Accepts anything (the MapState sink asserts the test's conventions).
    #[derive(Default)]
    struct CountingSink(usize);

    impl SnapshotSink for CountingSink {
        fn insert_node(&mut self, _path: &str, _node: Znode) {
            self.0 += 1;
        }
        fn insert_session(&mut self, _session_id: i64, _timeout_ms: i32) {
            self.0 += 1;
        }
        fn set_last_zxid(&mut self, _zxid: i64) {}
    }

    #[test]
    fn garbage_with_a_valid_crc_is_malformed_not_a_panic() {
        let mut rng = crate::wal::sim::SimRng::new(9);
        for _ in 0..500 {
            let mut bytes = SNAPSHOT_MAGIC.to_vec();
            codec::put_u32(&mut bytes, SNAPSHOT_VERSION);
            codec::put_i64(&mut bytes, 0);
            codec::put_i64(&mut bytes, 1);
            let len = rng.below(200) as usize;
            // Small tag values so that entries start decoding.
            bytes.extend((0..len).map(|_| (rng.next_u64() % 4) as u8));
            let crc = crc32c::crc32c(&bytes);
            codec::put_u32(&mut bytes, crc);
            let mut sink = CountingSink::default();
            if let Err(e) = load_snapshot(&bytes, &mut sink) {
                assert!(
                    matches!(e, SnapshotError::Malformed(_) | SnapshotError::TooShort(_)),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn crash_during_save_leaves_no_snapshot_or_a_whole_one() {
        // Count the operations of one save, then crash at each of them.
        let probe = SimStorage::new(0);
        let dir = Path::new("/s");
        probe.create_dir_all(dir).unwrap();
        let before = probe.mutating_ops();
        save_snapshot(&probe, dir, 0, &sample()).unwrap();
        let ops = probe.mutating_ops() - before;
        for crash_at in 1..=ops {
            for mode in crate::wal::sim::CrashMode::ALL {
                let storage = SimStorage::new(crash_at);
                storage.create_dir_all(dir).unwrap();
                storage.crash_after(crash_at);
                assert!(save_snapshot(&storage, dir, 0, &sample()).is_err());
                storage.crash(mode);
                for name in storage.list(dir).unwrap() {
                    if name.ends_with(TEMP_SUFFIX) {
                        continue; // recovery removes temp files
                    }
                    let mut loaded = MapState::default();
                    load_snapshot(&storage.read_all(&dir.join(&name)).unwrap(), &mut loaded)
                        .unwrap();
                    assert_eq!(loaded, sample());
                }
            }
        }
    }
}
