//! The on-disk format of the txn log.
//!
//! ```text
//! A log segment, file name `log.<zxid of its first record, lowercase hex>`:
//!
//!   Segment := SegmentHeader Record* ZeroPad
//!
//!   SegmentHeader (SEGMENT_HEADER_LEN = 40 bytes; written and synced, and the directory
//!   synced, before any record is written to the segment):
//!     magic            8 bytes   "ZKRSLOG1"
//!     version          u32       SEGMENT_VERSION (3; 1 and 2 are read too)
//!     db_id            i64       as ZooKeeper's dbid (0 today)
//!     first_zxid       i64       zxid of the first record, equal to the one in the file name
//!     first_batch_seq  u64       batch_seq of the first record
//!     header_crc       u32       CRC32C of the 36 bytes above
//!
//!   Record:
//!     length           u32       payload length, RECORD_PAYLOAD_MIN..=RECORD_PAYLOAD_MAX
//!     crc              u32       CRC32C of the length field followed by the payload
//!     payload:
//!       zxid           i64
//!       batch_seq      u64       which append_batch wrote it; +1 per batch
//!       flags          u8        bit 0 (FLAG_LAST_IN_BATCH): last record of its batch;
//!                                bit 1 (FLAG_REQUEST): cxid and op follow time_ms
//!       session_id     i64
//!       time_ms        i64
//!       cxid           i32       only with FLAG_REQUEST (new in version 3): the client's xid
//!       op             i32       only with FLAG_REQUEST: the request's opcode
//!       txn            Txn
//!
//!   Txn := tag u8, then by tag:
//!     1 CreateSession  timeout_ms i32
//!     2 CloseSession   count u32, path String * count
//!     3 Create         path String, data Data, acl AclList, ephemeral_owner i64,
//!                      parent_cversion i32
//!     4 Delete         path String
//!     5 SetData        path String, data Data, version i32
//!     6 SetAcl         path String, acl AclList, version i32
//!     7 Check          path String, version i32
//!     8 Multi          count u32, Txn * count        (nesting at most MULTI_DEPTH_MAX deep)
//!     9 Error          error code i32
//!   String, Bytes := length u32, bytes (String is UTF-8)
//!   Data := Bytes, or u32::MAX alone for null data (a client's null buffer, jute length -1;
//!           new in version 2: version 1 wrote null data as empty)
//!   AclList := count u32, (perms i32, scheme String, id String) * count
//!
//!   ZeroPad: zeros to the preallocated end of the file. Segments grow in preAllocSize steps
//!   of zeros, so a zero length field marks the end of the records.
//! ```
//!
//! Every integer is little-endian. The length is covered by the CRC so that a corrupted
//! length cannot make a record look shorter and still pass. The batch fields let recovery
//! tell a torn write of the last, never acknowledged, batch (holes and garbage only inside
//! that batch) from corruption of synced data (valid records of a later batch after the bad
//! bytes): see `recovery`.
//!
//! Differences from ZooKeeper's FileTxnLog (`FileHeader{magic "ZKLG", version, dbid}` then
//! `checksum, txnlen, TxnHeader, Record, 0x42`): our own compact encoding instead of jute,
//! CRC32C instead of Adler32, the CRC placed after the length and covering it, the first zxid
//! and batch sequence in the header, no end-of-record byte.

use std::fmt;

use crate::proto::ErrorCode;
use crate::tree::{Txn, TxnHeader};

use super::codec::{self, DecodeError, Reader};

pub const SEGMENT_MAGIC: [u8; 8] = *b"ZKRSLOG1";
/// Written in new segments. Version 2 added null data (`Data`), version 3 the request's
/// cxid and opcode (`FLAG_REQUEST`, written on every record); a version 1 segment is a
/// version 2 segment without null data, a version 2 segment a version 3 segment without the
/// flag, so all three are read (cxid and op 0). Older zkrs refuses a newer version
/// ("unsupported segment version 3") instead of misreading it.
pub const SEGMENT_VERSION: u32 = 3;
/// The oldest segment version still read.
pub const SEGMENT_VERSION_MIN: u32 = 1;
pub const SEGMENT_HEADER_LEN: usize = 40;

/// Bytes before the payload: length and crc.
pub const RECORD_PREFIX_LEN: usize = 8;
/// zxid, batch_seq, flags, session_id, time_ms.
const PAYLOAD_FIXED_LEN: usize = 8 + 8 + 1 + 8 + 8;
/// The smallest txn is 5 bytes: a tag and an i32 (CreateSession, Error), or a tag and the
/// length of an empty path (Delete).
pub const RECORD_PAYLOAD_MIN: usize = PAYLOAD_FIXED_LEN + 5;
/// Far above jute.maxbuffer (1 MiB) so that any request ZooKeeper accepts fits; a close
/// session with a huge number of ephemerals is the only thing that comes near.
pub const RECORD_PAYLOAD_MAX: usize = 64 * 1024 * 1024;
pub const MULTI_DEPTH_MAX: usize = 8;

pub const FLAG_LAST_IN_BATCH: u8 = 1;
/// The record carries the request's cxid and opcode (version 3).
const FLAG_REQUEST: u8 = 2;
const FLAGS_KNOWN: u8 = FLAG_LAST_IN_BATCH | FLAG_REQUEST;

const _: () = assert!(RECORD_PAYLOAD_MAX <= u32::MAX as usize);
const _: () = assert!(
    RECORD_PAYLOAD_MIN > 0,
    "a zero length marks the end of the records"
);

const TAG_CREATE_SESSION: u8 = 1;
const TAG_CLOSE_SESSION: u8 = 2;
const TAG_CREATE: u8 = 3;
const TAG_DELETE: u8 = 4;
const TAG_SET_DATA: u8 = 5;
const TAG_SET_ACL: u8 = 6;
const TAG_CHECK: u8 = 7;
const TAG_MULTI: u8 = 8;
const TAG_ERROR: u8 = 9;

/// The header at the start of every segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub db_id: i64,
    pub first_zxid: i64,
    pub first_batch_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    TooShort(usize),
    BadMagic,
    UnsupportedVersion(u32),
    BadChecksum { stored: u32, computed: u32 },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort(len) => {
                write!(
                    f,
                    "file is {len} bytes, shorter than the {SEGMENT_HEADER_LEN}-byte header"
                )
            }
            HeaderError::BadMagic => write!(f, "header magic is not ZKRSLOG1"),
            HeaderError::UnsupportedVersion(v) => write!(f, "unsupported segment version {v}"),
            HeaderError::BadChecksum { stored, computed } => write!(
                f,
                "header CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = Vec::with_capacity(SEGMENT_HEADER_LEN);
        out.extend_from_slice(&SEGMENT_MAGIC);
        codec::put_u32(&mut out, SEGMENT_VERSION);
        codec::put_i64(&mut out, self.db_id);
        codec::put_i64(&mut out, self.first_zxid);
        codec::put_u64(&mut out, self.first_batch_seq);
        let crc = crc32c::crc32c(&out);
        codec::put_u32(&mut out, crc);
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        header.copy_from_slice(&out);
        header
    }

    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let Some(header) = buf.get(..SEGMENT_HEADER_LEN) else {
            return Err(HeaderError::TooShort(buf.len()));
        };
        let (body, crc_bytes) = header.split_at(SEGMENT_HEADER_LEN - 4);
        let mut reader = Reader::new(body);
        let too_short = |_| HeaderError::TooShort(buf.len());
        let magic = reader.raw(8, "magic").map_err(too_short)?;
        if magic != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(HeaderError::BadChecksum { stored, computed });
        }
        let version = reader.u32("version").map_err(too_short)?;
        if !(SEGMENT_VERSION_MIN..=SEGMENT_VERSION).contains(&version) {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        Ok(SegmentHeader {
            db_id: reader.i64("db_id").map_err(too_short)?,
            first_zxid: reader.i64("first_zxid").map_err(too_short)?,
            first_batch_seq: reader.u64("first_batch_seq").map_err(too_short)?,
        })
    }
}

/// Where a record stands in the batch that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMark {
    pub seq: u64,
    pub last_in_batch: bool,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedTxn {
    pub header: TxnHeader,
    pub txn: Txn,
    pub batch: BatchMark,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload would be longer than RECORD_PAYLOAD_MAX.
    TooLarge(usize),
    /// Multi nested deeper than MULTI_DEPTH_MAX.
    NestingTooDeep,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLarge(len) => {
                write!(
                    f,
                    "txn record of {len} bytes exceeds the {RECORD_PAYLOAD_MAX}-byte limit"
                )
            }
            EncodeError::NestingTooDeep => {
                write!(f, "multi txns nested deeper than {MULTI_DEPTH_MAX}")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The buffer ends inside the record: a partial write, or a corrupted length.
    Truncated {
        needed: usize,
        available: usize,
    },
    /// The length field is outside RECORD_PAYLOAD_MIN..=RECORD_PAYLOAD_MAX.
    BadLength(u32),
    BadChecksum {
        stored: u32,
        computed: u32,
    },
    /// The checksum matches but the payload does not decode: a format bug or a version
    /// mismatch, never a torn write.
    Malformed(DecodeError),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated { needed, available } => write!(
                f,
                "record needs {needed} bytes but only {available} remain (partial record)"
            ),
            RecordError::BadLength(len) => write!(f, "impossible record length {len}"),
            RecordError::BadChecksum { stored, computed } => write!(
                f,
                "record CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            RecordError::Malformed(e) => {
                write!(
                    f,
                    "record passes its CRC32C but its payload is malformed: {e}"
                )
            }
        }
    }
}

impl std::error::Error for RecordError {}

/// The largest txn a record holds: the payload limit less the fixed fields before the txn.
pub const TXN_LEN_MAX: usize = RECORD_PAYLOAD_MAX - PAYLOAD_FIXED_LEN - REQUEST_FIELDS_LEN;
/// cxid and op (`FLAG_REQUEST`).
const REQUEST_FIELDS_LEN: usize = 4 + 4;

/// Encoded length of `txn` in a record (what [`TXN_LEN_MAX`] bounds), computed without
/// encoding it: lets the ordering side refuse a request whose txn could not be logged.
pub fn txn_encoded_len(txn: &Txn) -> usize {
    let bytes = |b: &[u8]| 4 + b.len();
    let acl = |acl: &[crate::proto::Acl]| {
        4 + acl
            .iter()
            .map(|a| 4 + bytes(a.id.scheme.as_bytes()) + bytes(a.id.id.as_bytes()))
            .sum::<usize>()
    };
    1 + match txn {
        Txn::CreateSession { .. } | Txn::Error(_) => 4,
        Txn::CloseSession { ephemerals } => {
            4 + ephemerals
                .iter()
                .map(|p| bytes(p.as_bytes()))
                .sum::<usize>()
        }
        Txn::Create {
            path, data, acl: a, ..
        } => bytes(path.as_bytes()) + bytes(data) + acl(a) + 8 + 4,
        Txn::Delete { path } => bytes(path.as_bytes()),
        Txn::SetData { path, data, .. } => bytes(path.as_bytes()) + bytes(data) + 4,
        Txn::SetAcl { path, acl: a, .. } => bytes(path.as_bytes()) + acl(a) + 4,
        Txn::Check { path, .. } => bytes(path.as_bytes()) + 4,
        Txn::Multi(subs) => 4 + subs.iter().map(txn_encoded_len).sum::<usize>(),
    }
}

/// Appends one record to `out`. On error `out` is left as it was.
pub fn encode_record(
    header: &TxnHeader,
    txn: &Txn,
    batch: BatchMark,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    // Placeholders for length and crc, filled in below.
    out.extend_from_slice(&[0u8; RECORD_PREFIX_LEN]);
    codec::put_i64(out, header.zxid);
    codec::put_u64(out, batch.seq);
    codec::put_u8(
        out,
        FLAG_REQUEST
            | if batch.last_in_batch {
                FLAG_LAST_IN_BATCH
            } else {
                0
            },
    );
    codec::put_i64(out, header.session_id);
    codec::put_i64(out, header.time_ms);
    codec::put_i32(out, header.cxid);
    codec::put_i32(out, header.op);
    if let Err(e) = encode_txn(txn, 0, out) {
        out.truncate(start);
        return Err(e);
    }
    let payload_len = out.len() - start - RECORD_PREFIX_LEN;
    if payload_len > RECORD_PAYLOAD_MAX {
        out.truncate(start);
        return Err(EncodeError::TooLarge(payload_len));
    }
    debug_assert!(payload_len >= RECORD_PAYLOAD_MIN);
    let length = (payload_len as u32).to_le_bytes();
    out[start..start + 4].copy_from_slice(&length);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&length), &out[start + RECORD_PREFIX_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn encode_txn(txn: &Txn, depth: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    // A string or byte string longer than u32::MAX is also longer than RECORD_PAYLOAD_MAX.
    let too_large = |out: &Vec<u8>| EncodeError::TooLarge(out.len().max(RECORD_PAYLOAD_MAX + 1));
    match txn {
        Txn::CreateSession { timeout_ms } => {
            codec::put_u8(out, TAG_CREATE_SESSION);
            codec::put_i32(out, *timeout_ms);
        }
        Txn::CloseSession { ephemerals } => {
            codec::put_u8(out, TAG_CLOSE_SESSION);
            let count = u32::try_from(ephemerals.len()).map_err(|_| too_large(out))?;
            codec::put_u32(out, count);
            for path in ephemerals {
                if !codec::put_bytes(out, path.as_bytes()) {
                    return Err(too_large(out));
                }
            }
        }
        Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            codec::put_u8(out, TAG_CREATE);
            if !codec::put_bytes(out, path.as_bytes())
                || !codec::put_data(out, data)
                || !codec::put_acl_list(out, acl)
            {
                return Err(too_large(out));
            }
            codec::put_i64(out, *ephemeral_owner);
            codec::put_i32(out, *parent_cversion);
        }
        Txn::Delete { path } => {
            codec::put_u8(out, TAG_DELETE);
            if !codec::put_bytes(out, path.as_bytes()) {
                return Err(too_large(out));
            }
        }
        Txn::SetData {
            path,
            data,
            version,
        } => {
            codec::put_u8(out, TAG_SET_DATA);
            if !codec::put_bytes(out, path.as_bytes()) || !codec::put_data(out, data) {
                return Err(too_large(out));
            }
            codec::put_i32(out, *version);
        }
        Txn::SetAcl { path, acl, version } => {
            codec::put_u8(out, TAG_SET_ACL);
            if !codec::put_bytes(out, path.as_bytes()) || !codec::put_acl_list(out, acl) {
                return Err(too_large(out));
            }
            codec::put_i32(out, *version);
        }
        Txn::Check { path, version } => {
            codec::put_u8(out, TAG_CHECK);
            if !codec::put_bytes(out, path.as_bytes()) {
                return Err(too_large(out));
            }
            codec::put_i32(out, *version);
        }
        Txn::Multi(txns) => {
            if depth >= MULTI_DEPTH_MAX {
                return Err(EncodeError::NestingTooDeep);
            }
            codec::put_u8(out, TAG_MULTI);
            let count = u32::try_from(txns.len()).map_err(|_| too_large(out))?;
            codec::put_u32(out, count);
            for sub in txns {
                encode_txn(sub, depth + 1, out)?;
            }
        }
        Txn::Error(code) => {
            codec::put_u8(out, TAG_ERROR);
            codec::put_i32(out, code.code());
        }
    }
    Ok(())
}

/// Decodes the record at the start of `buf`.
///
/// `Ok(None)`: the length field is zero (or fewer than four bytes remain and all are zero):
/// the end of the records. The caller decides whether what follows is really all zeros.
/// `Ok(Some((record, consumed)))`: a valid record of `consumed` bytes.
/// The records of a segment's bytes by their length fields alone, without checking a CRC or
/// decoding a txn: (offset, record length with its prefix, zxid), in order, up to the end
/// marker, the end of `bytes`, or the first length out of range. For estimates only (how
/// many bytes a range of txns takes): what it yields past damage is not checked.
pub fn record_extents(bytes: &[u8]) -> impl Iterator<Item = (usize, usize, i64)> + '_ {
    let mut offset = SEGMENT_HEADER_LEN;
    std::iter::from_fn(move || {
        let peek = peek_record(bytes.get(offset..)?)?;
        let total = RECORD_PREFIX_LEN + peek.payload_len;
        bytes.get(offset..offset + total)?;
        let at = offset;
        offset += total;
        Some((at, total, peek.zxid))
    })
}

pub fn decode_record(buf: &[u8]) -> Result<Option<(LoggedTxn, usize)>, RecordError> {
    let Some(length_bytes) = buf.get(..4) else {
        if buf.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        return Err(RecordError::Truncated {
            needed: 4,
            available: buf.len(),
        });
    };
    let length = u32::from_le_bytes([
        length_bytes[0],
        length_bytes[1],
        length_bytes[2],
        length_bytes[3],
    ]);
    if length == 0 {
        return Ok(None);
    }
    let payload_len = length as usize;
    if !(RECORD_PAYLOAD_MIN..=RECORD_PAYLOAD_MAX).contains(&payload_len) {
        return Err(RecordError::BadLength(length));
    }
    let total = RECORD_PREFIX_LEN + payload_len;
    let Some(record) = buf.get(..total) else {
        return Err(RecordError::Truncated {
            needed: total,
            available: buf.len(),
        });
    };
    let stored = u32::from_le_bytes([record[4], record[5], record[6], record[7]]);
    let payload = &record[RECORD_PREFIX_LEN..];
    let computed = crc32c::crc32c_append(crc32c::crc32c(length_bytes), payload);
    if stored != computed {
        return Err(RecordError::BadChecksum { stored, computed });
    }
    let logged = decode_payload(payload).map_err(|e| {
        RecordError::Malformed(DecodeError {
            what: e.what,
            offset: e.offset + RECORD_PREFIX_LEN,
        })
    })?;
    Ok(Some((logged, total)))
}

fn decode_payload(payload: &[u8]) -> Result<LoggedTxn, DecodeError> {
    let mut reader = Reader::new(payload);
    let zxid = reader.i64("zxid")?;
    let seq = reader.u64("batch_seq")?;
    let flags_offset = reader.position();
    let flags = reader.u8("flags")?;
    if flags & !FLAGS_KNOWN != 0 {
        return Err(DecodeError {
            what: "flags",
            offset: flags_offset,
        });
    }
    let session_id = reader.i64("session_id")?;
    let time_ms = reader.i64("time_ms")?;
    let (cxid, op) = if flags & FLAG_REQUEST != 0 {
        (reader.i32("cxid")?, reader.i32("op")?)
    } else {
        (0, 0)
    };
    let txn = decode_txn(&mut reader, 0)?;
    if reader.remaining() != 0 {
        return Err(DecodeError {
            what: "end of record",
            offset: reader.position(),
        });
    }
    Ok(LoggedTxn {
        header: TxnHeader {
            session_id,
            zxid,
            time_ms,
            cxid,
            op,
        },
        txn,
        batch: BatchMark {
            seq,
            last_in_batch: flags & FLAG_LAST_IN_BATCH != 0,
        },
    })
}

fn decode_txn(reader: &mut Reader<'_>, depth: usize) -> Result<Txn, DecodeError> {
    let tag_offset = reader.position();
    let tag = reader.u8("txn type")?;
    Ok(match tag {
        TAG_CREATE_SESSION => Txn::CreateSession {
            timeout_ms: reader.i32("session timeout")?,
        },
        TAG_CLOSE_SESSION => {
            let count = reader.u32("ephemeral count")?;
            let mut ephemerals = Vec::new();
            for _ in 0..count {
                ephemerals.push(reader.string("ephemeral path")?);
            }
            Txn::CloseSession { ephemerals }
        }
        TAG_CREATE => Txn::Create {
            path: reader.string("path")?,
            data: reader.data("data")?,
            acl: reader.acl_list()?,
            ephemeral_owner: reader.i64("ephemeral owner")?,
            parent_cversion: reader.i32("parent cversion")?,
        },
        TAG_DELETE => Txn::Delete {
            path: reader.string("path")?,
        },
        TAG_SET_DATA => Txn::SetData {
            path: reader.string("path")?,
            data: reader.data("data")?,
            version: reader.i32("version")?,
        },
        TAG_SET_ACL => Txn::SetAcl {
            path: reader.string("path")?,
            acl: reader.acl_list()?,
            version: reader.i32("version")?,
        },
        TAG_CHECK => Txn::Check {
            path: reader.string("path")?,
            version: reader.i32("version")?,
        },
        TAG_MULTI => {
            if depth >= MULTI_DEPTH_MAX {
                return Err(DecodeError {
                    what: "multi nesting",
                    offset: tag_offset,
                });
            }
            let count = reader.u32("multi count")?;
            let mut txns = Vec::new();
            for _ in 0..count {
                txns.push(decode_txn(reader, depth + 1)?);
            }
            Txn::Multi(txns)
        }
        TAG_ERROR => {
            let code_offset = reader.position();
            let code = reader.i32("error code")?;
            Txn::Error(ErrorCode::from_i32(code).ok_or(DecodeError {
                what: "error code",
                offset: code_offset,
            })?)
        }
        _ => {
            return Err(DecodeError {
                what: "txn type",
                offset: tag_offset,
            })
        }
    })
}

/// The fixed fields of a record, read without checking the CRC: used by recovery to look
/// for plausible records after bad bytes before paying for a CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordPeek {
    pub payload_len: usize,
    pub zxid: i64,
    pub batch_seq: u64,
}

pub(crate) fn peek_record(buf: &[u8]) -> Option<RecordPeek> {
    let mut reader = Reader::new(buf.get(..RECORD_PREFIX_LEN + 17)?);
    let payload_len = reader.u32("length").ok()? as usize;
    if !(RECORD_PAYLOAD_MIN..=RECORD_PAYLOAD_MAX).contains(&payload_len) {
        return None;
    }
    reader.u32("crc").ok()?;
    let zxid = reader.i64("zxid").ok()?;
    let batch_seq = reader.u64("batch_seq").ok()?;
    let flags = reader.u8("flags").ok()?;
    if flags & !FLAGS_KNOWN != 0 {
        return None;
    }
    Some(RecordPeek {
        payload_len,
        zxid,
        batch_seq,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::{Acl, Id};

    fn acl() -> Vec<Acl> {
        vec![
            Acl {
                perms: 31,
                id: Id {
                    scheme: "world".into(),
                    id: "anyone".into(),
                },
            },
            Acl {
                perms: 1,
                id: Id {
                    scheme: "digest".into(),
                    id: "user:base64hash=".into(),
                },
            },
        ]
    }

    /// One txn of every variant, a nested multi included.
    pub(crate) fn every_variant() -> Vec<Txn> {
        let create = Txn::Create {
            path: "/a/b-0000000001".into(),
            data: Bytes::from_static(b"\x00\x01data"),
            acl: acl(),
            ephemeral_owner: 0x1234_5678_9abc,
            parent_cversion: 7,
        };
        vec![
            Txn::CreateSession { timeout_ms: 30_000 },
            Txn::CloseSession { ephemerals: vec![] },
            Txn::CloseSession {
                ephemerals: vec!["/e1".into(), "/x/é".into()],
            },
            create.clone(),
            Txn::Create {
                path: "/".into(),
                data: Bytes::new(),
                acl: vec![],
                ephemeral_owner: i64::MIN,
                parent_cversion: -1,
            },
            Txn::Delete { path: "/a".into() },
            Txn::SetData {
                path: "/a".into(),
                data: Bytes::from(vec![0xAB; 1000]),
                version: -1,
            },
            Txn::SetAcl {
                path: "/a".into(),
                acl: acl(),
                version: 3,
            },
            Txn::Check {
                path: "/a".into(),
                version: 0,
            },
            Txn::Error(ErrorCode::NoNode),
            Txn::Multi(vec![]),
            Txn::Multi(vec![
                create,
                Txn::Check {
                    path: "/c".into(),
                    version: 2,
                },
                Txn::Error(ErrorCode::RuntimeInconsistency),
                Txn::Multi(vec![Txn::Delete { path: "/d".into() }]),
            ]),
        ]
    }

    #[test]
    fn every_txn_variant_round_trips() {
        for (i, txn) in every_variant().into_iter().enumerate() {
            let header = TxnHeader {
                session_id: 0x100 + i as i64,
                zxid: (3 << 32) | (i as i64 + 1),
                time_ms: 1_700_000_000_000 + i as i64,
                cxid: 40 + i as i32,
                op: -11 + i as i32,
            };
            let batch = BatchMark {
                seq: 99 + i as u64,
                last_in_batch: i % 2 == 0,
            };
            let mut buf = vec![0xEE]; // encode appends; it must not touch what is there
            encode_record(&header, &txn, batch, &mut buf).unwrap();
            assert_eq!(buf[0], 0xEE);
            let (logged, consumed) = decode_record(&buf[1..]).unwrap().unwrap();
            assert_eq!(consumed, buf.len() - 1);
            assert_eq!(logged, LoggedTxn { header, txn, batch });
            let peek = peek_record(&buf[1..]).unwrap();
            assert_eq!(peek.zxid, header.zxid);
            assert_eq!(peek.batch_seq, batch.seq);
            assert_eq!(peek.payload_len + RECORD_PREFIX_LEN, consumed);
        }
    }

    #[test]
    fn record_extents_walk_the_records_by_their_lengths() {
        let mut segment = vec![0u8; SEGMENT_HEADER_LEN];
        let mut expected = Vec::new();
        for (i, txn) in every_variant().into_iter().enumerate() {
            let header = TxnHeader {
                zxid: 0x5_0000_0001 + i as i64,
                ..Default::default()
            };
            let at = segment.len();
            let batch = BatchMark {
                seq: i as u64,
                last_in_batch: true,
            };
            encode_record(&header, &txn, batch, &mut segment).unwrap();
            expected.push((at, segment.len() - at, header.zxid));
        }
        let clean = segment.len();
        // The preallocated zeros end the walk; so does a record cut short.
        segment.extend_from_slice(&[0u8; 64]);
        assert_eq!(record_extents(&segment).collect::<Vec<_>>(), expected);
        let cut = &segment[..clean - 3];
        assert_eq!(
            record_extents(cut).collect::<Vec<_>>(),
            expected[..expected.len() - 1]
        );
        assert_eq!(record_extents(&segment[..10]).count(), 0);
    }

    /// A record as version 2 wrote it: no FLAG_REQUEST, no cxid and op.
    fn version_2_record(header: &TxnHeader, txn: &Txn, last_in_batch: bool) -> Vec<u8> {
        let mut out = vec![0u8; RECORD_PREFIX_LEN];
        codec::put_i64(&mut out, header.zxid);
        codec::put_u64(&mut out, 7);
        codec::put_u8(&mut out, if last_in_batch { FLAG_LAST_IN_BATCH } else { 0 });
        codec::put_i64(&mut out, header.session_id);
        codec::put_i64(&mut out, header.time_ms);
        encode_txn(txn, 0, &mut out).unwrap();
        let len = (out.len() - RECORD_PREFIX_LEN) as u32;
        out[..4].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..4]), &out[RECORD_PREFIX_LEN..]);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn version_2_records_read_with_cxid_and_op_zero() {
        for (i, txn) in every_variant().into_iter().enumerate() {
            let header = TxnHeader {
                session_id: 9,
                zxid: i as i64 + 1,
                time_ms: 3,
                ..Default::default()
            };
            let bytes = version_2_record(&header, &txn, true);
            let (logged, consumed) = decode_record(&bytes).unwrap().unwrap();
            assert_eq!(consumed, bytes.len());
            assert_eq!(logged.header, header);
            assert_eq!((logged.header.cxid, logged.header.op), (0, 0));
            assert_eq!(logged.txn, txn);
            assert!(logged.batch.last_in_batch);
            assert_eq!(peek_record(&bytes).map(|p| p.zxid), Some(header.zxid));
        }
    }

    #[test]
    fn txn_encoded_len_is_exact() {
        let mut variants = every_variant();
        variants.push(Txn::SetData {
            path: "/n".into(),
            data: crate::proto::null_buffer(),
            version: 1,
        });
        for txn in variants {
            let mut buf = Vec::new();
            encode_txn(&txn, 0, &mut buf).unwrap();
            assert_eq!(txn_encoded_len(&txn), buf.len(), "{txn:?}");
        }
    }

    #[test]
    fn records_decode_back_to_back_and_zero_marks_the_end() {
        let mut buf = Vec::new();
        let txns = every_variant();
        for (i, txn) in txns.iter().enumerate() {
            let header = TxnHeader {
                session_id: 1,
                zxid: i as i64 + 1,
                time_ms: 5,
                ..Default::default()
            };
            let batch = BatchMark {
                seq: 0,
                last_in_batch: i + 1 == txns.len(),
            };
            encode_record(&header, txn, batch, &mut buf).unwrap();
        }
        buf.extend_from_slice(&[0u8; 64]);
        let mut offset = 0;
        let mut decoded = Vec::new();
        while let Some((logged, consumed)) = decode_record(&buf[offset..]).unwrap() {
            decoded.push(logged.txn);
            offset += consumed;
        }
        assert_eq!(decoded, txns);
        assert!(buf[offset..].iter().all(|&b| b == 0));
        assert_eq!(decode_record(&[]).unwrap(), None);
        assert_eq!(decode_record(&[0, 0]).unwrap(), None);
        assert!(matches!(
            decode_record(&[0, 1]),
            Err(RecordError::Truncated { .. })
        ));
    }

    fn one_record() -> Vec<u8> {
        let mut buf = Vec::new();
        let header = TxnHeader {
            session_id: 1,
            zxid: 10,
            time_ms: 5,
            ..Default::default()
        };
        let txn = Txn::SetData {
            path: "/x".into(),
            data: Bytes::from_static(b"hello"),
            version: 1,
        };
        let batch = BatchMark {
            seq: 4,
            last_in_batch: true,
        };
        encode_record(&header, &txn, batch, &mut buf).unwrap();
        buf
    }

    #[test]
    fn every_prefix_of_a_record_is_truncated() {
        let buf = one_record();
        for cut in 1..buf.len() {
            let result = decode_record(&buf[..cut]);
            if buf[..cut].iter().all(|&b| b == 0) {
                assert_eq!(result.unwrap(), None);
            } else {
                assert!(
                    matches!(result, Err(RecordError::Truncated { .. })),
                    "cut at {cut}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let buf = one_record();
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                match decode_record(&bad) {
                    Ok(Some(_)) => panic!("flip of bit {bit} in byte {byte} went unnoticed"),
                    // A flipped length that reads zero ends the records; the scanner then
                    // finds non-zero bytes after it.
                    Ok(None) => assert!(byte < 4),
                    Err(_) => {}
                }
            }
        }
    }

    #[test]
    fn impossible_lengths_are_refused_without_allocating() {
        let mut buf = vec![0xff, 0xff, 0xff, 0xff];
        buf.extend_from_slice(&[1u8; 100]);
        assert_eq!(decode_record(&buf), Err(RecordError::BadLength(u32::MAX)));
        let small = (RECORD_PAYLOAD_MIN as u32 - 1).to_le_bytes();
        let mut buf = small.to_vec();
        buf.extend_from_slice(&[1u8; 100]);
        assert!(matches!(
            decode_record(&buf),
            Err(RecordError::BadLength(_))
        ));
    }

    #[test]
    fn malformed_payload_with_valid_crc_is_reported_as_malformed() {
        // Build a payload with an unknown txn tag and a correct CRC.
        let mut payload = Vec::new();
        codec::put_i64(&mut payload, 1);
        codec::put_u64(&mut payload, 0);
        codec::put_u8(&mut payload, 0);
        codec::put_i64(&mut payload, 0);
        codec::put_i64(&mut payload, 0);
        payload.extend_from_slice(&[200, 0, 0, 0, 0]);
        let length = (payload.len() as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&length), &payload);
        let mut buf = length.to_vec();
        buf.extend_from_slice(&crc.to_le_bytes());
        buf.extend_from_slice(&payload);
        match decode_record(&buf) {
            Err(RecordError::Malformed(e)) => assert_eq!(e.what, "txn type"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multi_nesting_is_bounded_both_ways() {
        let mut txn = Txn::Delete { path: "/a".into() };
        for _ in 0..MULTI_DEPTH_MAX {
            txn = Txn::Multi(vec![txn]);
        }
        let header = TxnHeader {
            session_id: 0,
            zxid: 1,
            time_ms: 0,
            ..Default::default()
        };
        let batch = BatchMark {
            seq: 0,
            last_in_batch: true,
        };
        let mut buf = Vec::new();
        encode_record(&header, &txn, batch, &mut buf).unwrap();
        assert_eq!(decode_record(&buf).unwrap().unwrap().0.txn, txn);
        let deeper = Txn::Multi(vec![txn]);
        let mut buf = vec![1, 2, 3];
        assert_eq!(
            encode_record(&header, &deeper, batch, &mut buf),
            Err(EncodeError::NestingTooDeep)
        );
        assert_eq!(buf, vec![1, 2, 3]);
    }

    fn data_of(txn: &Txn) -> &Bytes {
        match txn {
            Txn::Create { data, .. } | Txn::SetData { data, .. } => data,
            other => panic!("no data in {other:?}"),
        }
    }

    #[test]
    fn null_data_round_trips_apart_from_empty_data() {
        let header = TxnHeader {
            session_id: 1,
            zxid: 7,
            time_ms: 8,
            ..Default::default()
        };
        let batch = BatchMark {
            seq: 1,
            last_in_batch: true,
        };
        let txns = [
            Txn::Create {
                path: "/n".into(),
                data: crate::proto::null_buffer(),
                acl: acl(),
                ephemeral_owner: 0,
                parent_cversion: 1,
            },
            Txn::SetData {
                path: "/n".into(),
                data: crate::proto::null_buffer(),
                version: 1,
            },
            Txn::SetData {
                path: "/n".into(),
                data: Bytes::new(),
                version: 2,
            },
        ];
        for (txn, null) in txns.iter().zip([true, true, false]) {
            let mut buf = Vec::new();
            encode_record(&header, txn, batch, &mut buf).unwrap();
            let (logged, _) = decode_record(&buf).unwrap().unwrap();
            assert_eq!(&logged.txn, txn);
            assert_eq!(
                crate::proto::is_null_buffer(data_of(&logged.txn)),
                null,
                "{txn:?}"
            );
        }
    }

    #[test]
    fn version_1_segments_are_still_read_and_unknown_versions_refused() {
        let header = SegmentHeader {
            db_id: 0,
            first_zxid: 1,
            first_batch_seq: 1,
        };
        let with_version = |version: u32| {
            let mut bytes = header.encode();
            bytes[8..12].copy_from_slice(&version.to_le_bytes());
            let crc = crc32c::crc32c(&bytes[..SEGMENT_HEADER_LEN - 4]);
            bytes[SEGMENT_HEADER_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
            SegmentHeader::decode(&bytes)
        };
        assert_eq!(SEGMENT_VERSION, 3);
        assert_eq!(with_version(1), Ok(header));
        assert_eq!(with_version(2), Ok(header));
        assert_eq!(with_version(3), Ok(header));
        assert_eq!(with_version(4), Err(HeaderError::UnsupportedVersion(4)));
        assert_eq!(
            HeaderError::UnsupportedVersion(4).to_string(),
            "unsupported segment version 4"
        );
    }

    #[test]
    fn segment_header_round_trips_and_detects_damage() {
        let header = SegmentHeader {
            db_id: 0,
            first_zxid: 0x1_0000_0001,
            first_batch_seq: 42,
        };
        let bytes = header.encode();
        assert_eq!(&bytes[..8], b"ZKRSLOG1");
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        assert_eq!(
            SegmentHeader::decode(&bytes[..39]),
            Err(HeaderError::TooShort(39))
        );
        assert_eq!(
            SegmentHeader::decode(&[0u8; 40]),
            Err(HeaderError::BadMagic)
        );
        for byte in 8..SEGMENT_HEADER_LEN {
            let mut bad = bytes;
            bad[byte] ^= 0x10;
            assert!(SegmentHeader::decode(&bad).is_err(), "byte {byte}");
        }
    }
}
