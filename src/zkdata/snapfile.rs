//! ZooKeeper's `snapshot.<zxid>` files: reading (every check `FileSnap.deserialize` makes,
//! and a few more) and writing (what `FileSnap.serialize` writes).
//!
//! Reading, in ZooKeeper's order:
//! 1. the file must end with a seal's `"/"` (int 1, byte '/'): ZooKeeper's
//!    `SnapStream.isValidSnapshot`, which passes over files without it;
//! 2. the header's magic must be "ZKSN" (the version and dbid are not checked, as in
//!    ZooKeeper);
//! 3. the body decodes ([`crate::zab::snap::SnapDecoder`]), then the seal's Adler-32 must
//!    equal that of every byte before it;
//! 4. if more bytes follow, a `ZxidDigest` and a second seal (over everything before it)
//!    must be there; a digest cut short by the end of the file counts as none, as
//!    ZooKeeper's `deserializeZxidDigest` treats an EOF.

use std::fmt;

use bytes::BytesMut;

use super::{Adler32, FileHeader, FILE_HEADER_LEN, FILE_VERSION, SNAP_DB_ID, SNAP_MAGIC};
use crate::proto::JuteReader;
use crate::tree::DataTree;
use crate::zab::snap::{encode_snapshot_body, SnapDecoder};

/// The digest ZooKeeper 3.6+ writes after a snapshot: the tree's digest at `zxid`, the
/// point where a fuzzy snapshot is exact again while its txns are replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub version: i32,
    pub digest: i64,
}

/// A snapshot file that passed every check.
#[derive(Debug)]
pub struct JavaSnapshot {
    pub header: FileHeader,
    /// (session id, timeout ms).
    pub sessions: Vec<(i64, i32)>,
    /// At the zxid of the file name.
    pub tree: DataTree,
    /// None when the file has no digest, or an empty one (zxid 0).
    pub digest: Option<ZxidDigest>,
}

/// Why a snapshot file is not usable, and at which byte offset that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapFileError {
    pub offset: u64,
    pub why: String,
}

impl fmt::Display for SnapFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.why)
    }
}

impl std::error::Error for SnapFileError {}

fn error(offset: usize, why: impl Into<String>) -> SnapFileError {
    SnapFileError {
        offset: offset as u64,
        why: why.into(),
    }
}

/// The seal's `"/"`: `ustring` of length 1.
const SEAL_END: [u8; 5] = [0, 0, 0, 1, b'/'];

/// Whether a file ends as a sealed snapshot (ZooKeeper's `isValidCheckedStream`: at least
/// 10 bytes, the last five int 1 and '/'). Files failing this are passed over.
pub fn looks_sealed(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes[bytes.len() - 5..] == SEAL_END
}

/// Reads a snapshot file's bytes; `name_zxid` is the zxid of its name.
pub fn read_snapshot(bytes: &[u8], name_zxid: i64) -> Result<JavaSnapshot, SnapFileError> {
    if !looks_sealed(bytes) {
        return Err(error(
            bytes.len().saturating_sub(5),
            "the file does not end with a snapshot seal (int 1, '/'): incomplete or not a \
             snapshot",
        ));
    }
    let header = FileHeader::read(bytes).ok_or_else(|| error(0, "shorter than a file header"))?;
    if header.magic != SNAP_MAGIC {
        return Err(error(
            0,
            format!(
                "magic {:02x?} is not \"ZKSN\" (not a ZooKeeper snapshot)",
                header.magic
            ),
        ));
    }
    let mut body = BytesMut::from(&bytes[FILE_HEADER_LEN..]);
    let at = |rest: &BytesMut| bytes.len() - rest.len();
    let mut decoder = SnapDecoder::body(name_zxid);
    let snapshot = match decoder.feed(&mut body) {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => {
            return Err(error(
                at(&body),
                format!(
                    "the file ends inside the snapshot body ({})",
                    decoder
                        .finish()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                ),
            ))
        }
        Err(e) => return Err(error(at(&body), e.to_string())),
    };
    let body_end = at(&body);
    let mut seal_end = check_seal(bytes, body_end)?;
    let mut digest = None;
    if seal_end < bytes.len() {
        if let Some((zxid_digest, digest_end)) = read_digest(bytes, seal_end)? {
            seal_end = check_seal(bytes, digest_end)?;
            // ZooKeeper keeps a digest only when its zxid is set and not below the file's.
            if zxid_digest.zxid > 0 && zxid_digest.zxid >= name_zxid {
                digest = Some(zxid_digest);
            }
        }
    }
    let _ = seal_end;
    Ok(JavaSnapshot {
        header,
        sessions: snapshot.sessions,
        tree: snapshot.tree,
        digest,
    })
}

/// Checks the seal at `at` (checksum of `bytes[..at]`, then a string); returns its end.
fn check_seal(bytes: &[u8], at: usize) -> Result<usize, SnapFileError> {
    let mut r = JuteReader::new(&bytes[at..]);
    let stored = r
        .read_i64()
        .map_err(|_| error(at, "the file ends before the checksum"))?;
    let computed = i64::from(Adler32::of(&bytes[..at]));
    if stored != computed {
        return Err(error(
            at,
            format!(
                "checksum mismatch: the file says {stored:#x}, its bytes give {computed:#x} \
                 (CRC corruption)"
            ),
        ));
    }
    r.read_ustring()
        .map_err(|e| error(at + 8, format!("bad end of the seal: {e}")))?;
    Ok(at + r.position())
}

/// The digest at `at`, with its end; None when the file ends inside it (ZooKeeper: EOF,
/// "likely an older snapshot").
fn read_digest(bytes: &[u8], at: usize) -> Result<Option<(ZxidDigest, usize)>, SnapFileError> {
    let mut r = JuteReader::new(&bytes[at..]);
    let (Ok(zxid), Ok(version)) = (r.read_i64(), r.read_i32()) else {
        return Ok(None);
    };
    let digest = if version < 2 {
        match r.read_ustring() {
            Ok(hex) => u64::from_str_radix(&hex, 16)
                .map(|d| d as i64)
                .map_err(|_| error(at + 12, format!("digest {hex:?} is not hex")))?,
            Err(crate::proto::DecodeError::Truncated { .. }) => return Ok(None),
            Err(e) => return Err(error(at + 12, format!("bad digest: {e}"))),
        }
    } else {
        match r.read_i64() {
            Ok(d) => d,
            Err(_) => return Ok(None),
        }
    };
    Ok(Some((
        ZxidDigest {
            zxid,
            version,
            digest,
        },
        at + r.position(),
    )))
}

/// A snapshot file of `tree` and `sessions` as ZooKeeper 3.8 writes one: header (dbid -1),
/// body, seal, the tree's digest at its last zxid (ZooKeeper's `ZxidDigest`: zxid, digest
/// version 2, the tree digest of `crate::tree::digest`; ZooKeeper compares it with the tree
/// it loads) and its seal. Name it `snapshot.<tree.last_zxid() hex>`.
pub fn encode_snapshot_file(tree: &DataTree, sessions: &[(i64, i32)]) -> Vec<u8> {
    let mut out = Vec::new();
    FileHeader {
        magic: SNAP_MAGIC,
        version: FILE_VERSION,
        db_id: SNAP_DB_ID,
    }
    .write(&mut out);
    let mut body = BytesMut::new();
    encode_snapshot_body(tree, sessions, &mut body);
    out.extend_from_slice(&body);
    seal(&mut out);
    out.extend_from_slice(&tree.last_zxid().to_be_bytes());
    out.extend_from_slice(&crate::tree::digest::DIGEST_VERSION.to_be_bytes());
    out.extend_from_slice(&tree.digest().to_be_bytes());
    seal(&mut out);
    out
}

pub(crate) fn seal(out: &mut Vec<u8>) {
    let checksum = i64::from(Adler32::of(out));
    out.extend_from_slice(&checksum.to_be_bytes());
    out.extend_from_slice(&SEAL_END);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::java::JavaRandom;
    use crate::tree::{Txn, TxnHeader};
    use crate::zab::txn::open_acl_unsafe;
    use bytes::Bytes;

    fn tree() -> DataTree {
        let mut tree = DataTree::new();
        let txns = [
            Txn::Create {
                path: "/a".into(),
                data: Bytes::from_static(b"hello"),
                acl: open_acl_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: 1,
            },
            Txn::Create {
                path: "/a/e".into(),
                data: Bytes::from_static(b"\x00\xff"),
                acl: open_acl_unsafe(),
                ephemeral_owner: 0x77,
                parent_cversion: 1,
            },
        ];
        for (i, txn) in txns.iter().enumerate() {
            let hdr = TxnHeader {
                session_id: 0x77,
                zxid: i as i64 + 1,
                time_ms: 1_700_000_000_000,
                ..Default::default()
            };
            tree.apply_txn(&hdr, txn);
        }
        tree
    }

    #[test]
    fn written_files_read_back() {
        let tree = tree();
        let bytes = encode_snapshot_file(&tree, &[(0x77, 4000)]);
        assert_eq!(&bytes[..4], b"ZKSN");
        assert!(looks_sealed(&bytes));
        let read = read_snapshot(&bytes, 2).unwrap();
        assert_eq!(read.header.version, 2);
        assert_eq!(read.header.db_id, -1);
        assert_eq!(read.sessions, vec![(0x77, 4000)]);
        assert_eq!(read.tree, tree);
        // The tree's own digest at its last zxid.
        assert_eq!(
            read.digest,
            Some(ZxidDigest {
                zxid: 2,
                version: 2,
                digest: tree.digest(),
            })
        );
        assert_eq!(read.tree.digest(), tree.digest());
        assert_eq!(read.tree.ephemerals_of(0x77), vec!["/a/e".to_string()]);
    }

    #[test]
    fn a_file_without_digest_and_one_with_a_digest() {
        let tree = tree();
        let full = encode_snapshot_file(&tree, &[]);
        // Without the digest part (as ZooKeeper before 3.6 writes): the first seal ends it.
        let first_seal_end = full.len() - (20 + 13);
        let old = &full[..first_seal_end];
        assert!(read_snapshot(old, 2).is_ok());
        // A digest cut short counts as none.
        let cut = &full[..first_seal_end + 7];
        // (it no longer ends with a seal, so it is passed over first)
        assert!(read_snapshot(cut, 2).is_err());
        // A real digest at zxid 2.
        let mut with = old.to_vec();
        with.extend_from_slice(&2i64.to_be_bytes());
        with.extend_from_slice(&2i32.to_be_bytes());
        with.extend_from_slice(&0x1234i64.to_be_bytes());
        seal(&mut with);
        let read = read_snapshot(&with, 2).unwrap();
        assert_eq!(
            read.digest,
            Some(ZxidDigest {
                zxid: 2,
                version: 2,
                digest: 0x1234
            })
        );
        // A digest below the file's zxid is ignored, as ZooKeeper does.
        assert_eq!(read_snapshot(&with, 3).unwrap().digest, None);
        // The digest's seal is checked.
        let mut bad = with.clone();
        let n = bad.len();
        bad[n - 14] ^= 1;
        let e = read_snapshot(&bad, 2).unwrap_err();
        assert!(e.why.contains("checksum"), "{e}");
        assert_eq!(e.offset as usize, n - 13);
    }

    #[test]
    fn damage_is_an_error_with_its_offset() {
        let bytes = encode_snapshot_file(&tree(), &[(0x77, 4000)]);
        // Bad magic.
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert_eq!(read_snapshot(&magic, 2).unwrap_err().offset, 0);
        // A flipped data byte: the checksum at the body's end catches it.
        let mut flipped = bytes.clone();
        let at = bytes.windows(5).position(|w| w == b"hello").unwrap();
        flipped[at] = b'j';
        let e = read_snapshot(&flipped, 2).unwrap_err();
        assert!(e.why.contains("checksum mismatch"), "{e}");
        // Truncated: no seal at the end.
        let e = read_snapshot(&bytes[..bytes.len() - 40], 2).unwrap_err();
        assert!(e.why.contains("seal"), "{e}");
        // A broken structure: an ACL ref that is not in the map.
        let mut bad_ref = bytes.clone();
        let path_at = bytes.windows(2).position(|w| w == b"/a").unwrap();
        // After "/a": data (4 + 5 bytes), then the ACL ref (8 bytes).
        let ref_at = path_at + 2 + 4 + 5;
        bad_ref[ref_at..ref_at + 8].copy_from_slice(&99i64.to_be_bytes());
        let e = read_snapshot(&bad_ref, 2).unwrap_err();
        assert!(e.why.contains("ACL"), "{e}");
        assert!(e.offset as usize <= ref_at && e.offset as usize >= FILE_HEADER_LEN);
        // Empty and tiny files.
        assert!(read_snapshot(&[], 0).is_err());
        assert!(read_snapshot(&SEAL_END, 0).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let good = encode_snapshot_file(&tree(), &[(1, 2)]);
        let mut rng = JavaRandom::new(5);
        for _ in 0..3_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + rng.next_int_below(3).unwrap_or(0) {
                let at = rng.next_int_below(bytes.len() as i32).unwrap_or(0) as usize;
                bytes[at] = rng.next_int() as u8;
            }
            let cut = rng.next_int_below(bytes.len() as i32 + 1).unwrap_or(0) as usize;
            let _ = read_snapshot(&bytes, 2);
            let _ = read_snapshot(&bytes[..cut], 2);
        }
        for len in 0..64 {
            let mut noise = vec![0u8; len];
            rng.next_bytes(&mut noise);
            noise.extend_from_slice(&SEAL_END);
            let _ = read_snapshot(&noise, 0);
        }
    }
}
