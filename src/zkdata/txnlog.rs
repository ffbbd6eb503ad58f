//! ZooKeeper's `log.<first zxid>` files: the records, and how they end.
//!
//! ZooKeeper (`FileTxnLog.FileTxnIterator.next`, `Util.readTxnBytes`) reads records until
//! a zero length (the zeros of its preallocation) or the end of the file, and treats a
//! record cut short (the file ends inside it, or its 'B' is missing) as the end of that
//! file; a checksum mismatch or an unreasonable length fails the start. zkrs reads the
//! same records and is stricter about what follows an end: only zeros may. So:
//!
//! - **clean end**: the end of the file, or a zero length with only zeros from there on;
//! - **torn**: a record cut short (the file ends inside it, or the byte where its 'B'
//!   belongs and everything after are zeros): the normal result of a crash mid-write;
//! - **corrupt**: a checksum mismatch, a record that does not decode, an impossible
//!   length, a missing 'B' with data after it, a zero length with data after it.

use std::fmt;

use super::{Adler32, FileHeader, FILE_HEADER_LEN, TXNLOG_MAGIC};
use crate::proto::DEFAULT_MAX_FIELD_LEN;
use crate::zab::txn::{decode_txn_full, DecodedTxn};

/// The longest txn entry ZooKeeper reads: `jute.maxbuffer` plus its extra size, its
/// `BinaryInputArchive.checkLength` limit by default.
pub const MAX_ENTRY_LEN: usize = DEFAULT_MAX_FIELD_LEN;
/// End-of-record byte.
pub const END_OF_RECORD: u8 = b'B';

/// How a log file's records end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// Nothing but zeros (or nothing) from `offset` on.
    Clean { offset: u64 },
    /// A record cut short at `offset`, only zeros after what was written of it.
    Torn { offset: u64, why: String },
    /// Damage at `offset` that no crash leaves.
    Corrupt { offset: u64, why: String },
}

/// A scanned log file.
#[derive(Debug)]
pub struct LogScan {
    /// None when the file is shorter than a header.
    pub header: Option<FileHeader>,
    /// Every valid record, with its offset, in file order.
    pub records: Vec<(u64, DecodedTxn)>,
    pub end: LogEnd,
}

impl fmt::Display for LogEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogEnd::Clean { offset } => write!(f, "clean end at offset {offset}"),
            LogEnd::Torn { offset, why } => write!(f, "torn record at offset {offset}: {why}"),
            LogEnd::Corrupt { offset, why } => write!(f, "corrupt at offset {offset}: {why}"),
        }
    }
}

/// Scans a whole log file. Never panics; keeps only the records (each bounded by
/// [`MAX_ENTRY_LEN`] and by the file).
pub fn scan_log(bytes: &[u8]) -> LogScan {
    let Some(header) = FileHeader::read(bytes) else {
        // A crash right after the file was created: ZooKeeper writes the header first.
        let end = if bytes.iter().all(|b| *b == 0) || TXNLOG_MAGIC.starts_with(bytes) {
            LogEnd::Torn {
                offset: 0,
                why: format!("only {} bytes, shorter than the file header", bytes.len()),
            }
        } else {
            LogEnd::Corrupt {
                offset: 0,
                why: format!("{} bytes that are not a txn log header", bytes.len()),
            }
        };
        return LogScan {
            header: None,
            records: Vec::new(),
            end,
        };
    };
    let mut scan = LogScan {
        header: Some(header),
        records: Vec::new(),
        end: LogEnd::Clean { offset: 0 },
    };
    if header.magic != TXNLOG_MAGIC {
        scan.end = LogEnd::Corrupt {
            offset: 0,
            why: format!(
                "magic {:02x?} is not \"ZKLG\" (not a ZooKeeper txn log)",
                header.magic
            ),
        };
        return scan;
    }
    // Everything at or after `nonzero_end` is zero.
    let nonzero_end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let mut at = FILE_HEADER_LEN;
    scan.end = loop {
        let offset = at as u64;
        if at >= nonzero_end {
            break LogEnd::Clean { offset };
        }
        let rest = &bytes[at..];
        if rest.len() < 12 {
            break LogEnd::Torn {
                offset,
                why: format!(
                    "{} bytes, shorter than a record's checksum and length",
                    rest.len()
                ),
            };
        }
        let checksum = i64::from_be_bytes(rest[..8].try_into().unwrap_or([0; 8]));
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap_or([0; 4]));
        if len == 0 {
            if nonzero_end <= at + 12 {
                // A checksum with no length after it is a tear inside the first 12 bytes.
                break if checksum == 0 {
                    LogEnd::Clean { offset }
                } else {
                    LogEnd::Torn {
                        offset,
                        why: "a checksum without its length".to_string(),
                    }
                };
            }
            break LogEnd::Corrupt {
                offset,
                why: format!(
                    "a zero record length (the end of the log), but data follows up to offset {}",
                    nonzero_end
                ),
            };
        }
        if len < 0 || len as usize > MAX_ENTRY_LEN {
            break LogEnd::Corrupt {
                offset,
                why: format!("record length {len} (at most {MAX_ENTRY_LEN})"),
            };
        }
        let len = len as usize;
        let entry_start = at + 12;
        let eor = entry_start + len;
        if eor >= bytes.len() {
            break LogEnd::Torn {
                offset,
                why: format!(
                    "the file ends inside a record of {len} bytes ({} of its {} bytes present)",
                    bytes.len() - at,
                    len + 13
                ),
            };
        }
        if bytes[eor] != END_OF_RECORD {
            break if nonzero_end <= eor {
                LogEnd::Torn {
                    offset,
                    why: format!(
                        "a record of {len} bytes written only in part (zeros from offset {nonzero_end})"
                    ),
                }
            } else {
                LogEnd::Corrupt {
                    offset,
                    why: format!(
                        "no end-of-record byte 'B' at offset {eor} (found {:#04x}), and data follows",
                        bytes[eor]
                    ),
                }
            };
        }
        let entry = &bytes[entry_start..eor];
        let computed = i64::from(Adler32::of(entry));
        if computed != checksum {
            break LogEnd::Corrupt {
                offset,
                why: format!(
                    "checksum mismatch: the record says {checksum:#x}, its {len} bytes give \
                     {computed:#x}"
                ),
            };
        }
        match decode_txn_full(entry) {
            Ok(txn) => scan.records.push((offset, txn)),
            Err(e) => {
                break LogEnd::Corrupt {
                    offset,
                    why: format!("the record does not decode: {e}"),
                }
            }
        }
        at = eor + 1;
    };
    scan
}

/// A log file holding `entries` (each a TxnHeader + txn [+ digest] as `zab::txn` encodes
/// them), preallocated with `zeros` zero bytes after them (ZooKeeper pads to 64 MiB).
pub fn encode_log_file(db_id: i64, entries: &[Vec<u8>], zeros: usize) -> Vec<u8> {
    let mut out = Vec::new();
    FileHeader {
        magic: TXNLOG_MAGIC,
        version: super::FILE_VERSION,
        db_id,
    }
    .write(&mut out);
    for entry in entries {
        out.extend_from_slice(&i64::from(Adler32::of(entry)).to_be_bytes());
        out.extend_from_slice(&(entry.len() as i32).to_be_bytes());
        out.extend_from_slice(entry);
        out.push(END_OF_RECORD);
    }
    out.resize(out.len() + zeros, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::java::JavaRandom;
    use crate::tree::Txn;
    use crate::zab::txn::{encode_txn, OpHint, ZkTxnHeader};
    use bytes::{Bytes, BytesMut};

    fn entry(zxid: i64, path: &str) -> Vec<u8> {
        let txn = Txn::Create {
            path: path.to_string(),
            data: Bytes::from_static(b"data"),
            acl: crate::zab::txn::open_acl_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: zxid as i32,
        };
        let hdr =
            ZkTxnHeader::for_txn(5, 1, zxid, 1_700_000_000_000, &txn, OpHint::Create).unwrap();
        let mut out = BytesMut::new();
        encode_txn(&hdr, &txn, &[], None, &mut out).unwrap();
        out.to_vec()
    }

    fn three() -> (Vec<u8>, Vec<u64>) {
        let entries = vec![entry(1, "/a"), entry(2, "/b"), entry(3, "/c")];
        let file = encode_log_file(0, &entries, 100);
        let offsets = scan_log(&file).records.iter().map(|(o, _)| *o).collect();
        (file, offsets)
    }

    #[test]
    fn records_and_a_clean_end() {
        let (file, offsets) = three();
        let scan = scan_log(&file);
        assert_eq!(scan.records.len(), 3);
        assert_eq!(offsets[0], 16);
        assert_eq!(scan.records[2].1.header.zxid, 3);
        assert!(matches!(scan.end, LogEnd::Clean { .. }), "{:?}", scan.end);
        // Without preallocation: the end of the file.
        let bare = encode_log_file(0, &[entry(1, "/a")], 0);
        let scan = scan_log(&bare);
        assert_eq!(scan.records.len(), 1);
        assert_eq!(
            scan.end,
            LogEnd::Clean {
                offset: bare.len() as u64
            }
        );
        // Header only (a log created, nothing written yet).
        let empty = encode_log_file(0, &[], 64);
        assert_eq!(scan_log(&empty).end, LogEnd::Clean { offset: 16 });
    }

    #[test]
    fn a_record_cut_anywhere_is_torn() {
        let (file, offsets) = three();
        let last = offsets[2] as usize;
        let end_of_last = file.len() - 100;
        for cut in last + 1..end_of_last {
            // The write stopped at `cut`: zeros from there (preallocated), or the file ends.
            let mut zeroed = file.clone();
            zeroed[cut..].fill(0);
            let scan = scan_log(&zeroed);
            assert_eq!(scan.records.len(), 2, "cut {cut}");
            if zeroed[last..].iter().all(|b| *b == 0) {
                // Only zeros were written (the checksum's high half): a clean end.
                assert_eq!(
                    scan.end,
                    LogEnd::Clean {
                        offset: last as u64
                    }
                );
            } else {
                assert!(
                    matches!(scan.end, LogEnd::Torn { offset, .. } if offset as usize == last),
                    "cut {cut}: {:?}",
                    scan.end
                );
            }
            let scan = scan_log(&file[..cut]);
            assert_eq!(scan.records.len(), 2, "cut {cut}");
            if file[last..cut].iter().all(|b| *b == 0) {
                assert_eq!(
                    scan.end,
                    LogEnd::Clean {
                        offset: last as u64
                    }
                );
            } else {
                assert!(
                    matches!(scan.end, LogEnd::Torn { offset, .. } if offset as usize == last),
                    "cut {cut}: {:?}",
                    scan.end
                );
            }
        }
    }

    #[test]
    fn damage_before_the_end_is_corrupt() {
        let (file, offsets) = three();
        // A flipped byte inside the second record's entry: checksum mismatch there.
        let mut flipped = file.clone();
        flipped[offsets[1] as usize + 20] ^= 0x40;
        let scan = scan_log(&flipped);
        assert_eq!(scan.records.len(), 1);
        assert!(
            matches!(&scan.end, LogEnd::Corrupt { offset, why } if *offset == offsets[1] && why.contains("checksum")),
            "{:?}",
            scan.end
        );
        // The second record's 'B' missing, the third record after it.
        let mut no_eor = file.clone();
        no_eor[offsets[2] as usize - 1] = 0;
        assert!(matches!(
            scan_log(&no_eor).end,
            LogEnd::Corrupt { offset, .. } if offset == offsets[1]
        ));
        // The second record's length zeroed: data follows the "end".
        let mut zero_len = file.clone();
        let l = offsets[1] as usize + 8;
        zero_len[l..l + 4].fill(0);
        assert!(matches!(
            scan_log(&zero_len).end,
            LogEnd::Corrupt { offset, .. } if offset == offsets[1]
        ));
        // An impossible length.
        let mut huge = file.clone();
        huge[l] = 0x7f;
        assert!(matches!(
            scan_log(&huge).end,
            LogEnd::Corrupt { offset, .. } if offset == offsets[1]
        ));
        // Data in the preallocated zeros after the last record.
        let mut trailing = file.clone();
        let n = trailing.len();
        trailing[n - 10] = 1;
        assert!(matches!(scan_log(&trailing).end, LogEnd::Corrupt { .. }));
        // Bad magic.
        let mut magic = file.clone();
        magic[0] = b'X';
        let scan = scan_log(&magic);
        assert!(scan.records.is_empty());
        assert!(matches!(scan.end, LogEnd::Corrupt { offset: 0, .. }));
        // A record whose checksum matches but whose bytes are no txn.
        let junk = encode_log_file(0, &[vec![1, 2, 3]], 0);
        assert!(matches!(
            scan_log(&junk).end,
            LogEnd::Corrupt { offset: 16, .. }
        ));
        // Too short for a header: torn if zeros or a prefix of the magic, else corrupt.
        assert!(matches!(scan_log(b"ZK").end, LogEnd::Torn { .. }));
        assert!(matches!(scan_log(&[0; 5]).end, LogEnd::Torn { .. }));
        assert!(matches!(scan_log(b"hello").end, LogEnd::Corrupt { .. }));
    }

    #[test]
    fn garbage_never_panics() {
        let (file, _) = three();
        let mut rng = JavaRandom::new(9);
        for _ in 0..3_000 {
            let mut bytes = file.clone();
            for _ in 0..1 + rng.next_int_below(4).unwrap_or(0) {
                let at = rng.next_int_below(bytes.len() as i32).unwrap_or(0) as usize;
                bytes[at] = rng.next_int() as u8;
            }
            let cut = rng.next_int_below(bytes.len() as i32 + 1).unwrap_or(0) as usize;
            let scan = scan_log(&bytes[..cut]);
            assert!(scan.records.len() <= 3);
        }
    }
}
