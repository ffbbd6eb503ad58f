//! Little-endian primitives shared by the log record and snapshot formats.
//!
//! Architecture Invariant: a [`Reader`] never panics and never allocates more than the bytes
//! it was given, whatever the input: every length is checked against what is left before a
//! slice is taken.

use std::fmt;

use bytes::Bytes;

use crate::proto::{Acl, Id};

/// Why bytes that passed their checksum (or are being checked) do not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// What was being read.
    pub what: &'static str,
    /// Byte offset inside the buffer being decoded.
    pub offset: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode {} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for DecodeError {}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A u32 length then the bytes. Returns false (writing nothing) when `v` is too long for a
/// u32 length.
#[must_use]
pub(crate) fn put_bytes(out: &mut Vec<u8>, v: &[u8]) -> bool {
    let Ok(len) = u32::try_from(v.len()) else {
        return false;
    };
    put_u32(out, len);
    out.extend_from_slice(v);
    true
}

/// Length of a null znode data field ([`crate::proto::is_null_buffer`]) in the log and
/// snapshot formats: no bytes follow. Format version 2; version 1 files never hold it (their
/// lengths are bounded by the record and field limits, far below).
pub(crate) const NULL_DATA_LEN: u32 = u32::MAX;

/// Znode data: as [`put_bytes`], null data as [`NULL_DATA_LEN`] alone.
#[must_use]
pub(crate) fn put_data(out: &mut Vec<u8>, v: &[u8]) -> bool {
    if crate::proto::is_null_buffer(v) {
        put_u32(out, NULL_DATA_LEN);
        return true;
    }
    u32::try_from(v.len()).is_ok_and(|len| len != NULL_DATA_LEN) && put_bytes(out, v)
}

#[must_use]
pub(crate) fn put_acl_list(out: &mut Vec<u8>, acl: &[Acl]) -> bool {
    let Ok(count) = u32::try_from(acl.len()) else {
        return false;
    };
    put_u32(out, count);
    for entry in acl {
        put_i32(out, entry.perms);
        if !put_bytes(out, entry.id.scheme.as_bytes()) || !put_bytes(out, entry.id.id.as_bytes()) {
            return false;
        }
    }
    true
}

/// Reads little-endian fields from a byte slice, checking every length against what is left.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, position: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.position
    }

    /// The next u32, without consuming it.
    pub(crate) fn peek_u32(&self) -> Option<u32> {
        let bytes = self.buf.get(self.position..self.position + 4)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError {
                what,
                offset: self.position,
            });
        }
        let slice = &self.buf[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn raw(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.take(len, what)
    }

    /// A u32 length then that many bytes.
    pub(crate) fn byte_slice(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)?;
        // A length that does not fit in usize cannot fit in the buffer either.
        let len = usize::try_from(len).map_err(|_| DecodeError {
            what,
            offset: self.position,
        })?;
        self.take(len, what)
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        Ok(Bytes::copy_from_slice(self.byte_slice(what)?))
    }

    /// Znode data written by [`put_data`]: null data is [`crate::proto::null_buffer`].
    pub(crate) fn data(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        if self.peek_u32() == Some(NULL_DATA_LEN) {
            self.u32(what)?;
            return Ok(crate::proto::null_buffer());
        }
        self.bytes(what)
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let start = self.position;
        let slice = self.byte_slice(what)?;
        match std::str::from_utf8(slice) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError {
                what,
                offset: start,
            }),
        }
    }

    pub(crate) fn acl_list(&mut self) -> Result<Vec<Acl>, DecodeError> {
        let count = self.u32("acl count")?;
        // No with_capacity: `count` is untrusted; every entry consumes at least 12 bytes, so
        // a lying count runs out of input quickly.
        let mut acl = Vec::new();
        for _ in 0..count {
            let perms = self.i32("acl perms")?;
            let scheme = self.string("acl scheme")?;
            let id = self.string("acl id")?;
            acl.push(Acl {
                perms,
                id: Id { scheme, id },
            });
        }
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_lengths_past_the_end() {
        let mut out = Vec::new();
        put_u32(&mut out, 1_000_000);
        out.extend_from_slice(b"abc");
        let mut reader = Reader::new(&out);
        let err = reader.byte_slice("data").unwrap_err();
        assert_eq!(
            err,
            DecodeError {
                what: "data",
                offset: 4
            }
        );
    }

    #[test]
    fn reader_refuses_invalid_utf8() {
        let mut out = Vec::new();
        assert!(put_bytes(&mut out, &[0xff, 0xfe]));
        let mut reader = Reader::new(&out);
        assert_eq!(reader.string("path").unwrap_err().what, "path");
    }

    #[test]
    fn primitives_round_trip() {
        let mut out = Vec::new();
        put_u8(&mut out, 7);
        put_i32(&mut out, -5);
        put_i64(&mut out, i64::MIN);
        put_u64(&mut out, u64::MAX);
        assert!(put_bytes(&mut out, b"hello"));
        let mut reader = Reader::new(&out);
        assert_eq!(reader.u8("a").unwrap(), 7);
        assert_eq!(reader.i32("b").unwrap(), -5);
        assert_eq!(reader.i64("c").unwrap(), i64::MIN);
        assert_eq!(reader.u64("d").unwrap(), u64::MAX);
        assert_eq!(reader.string("e").unwrap(), "hello");
        assert_eq!(reader.remaining(), 0);
        assert!(reader.u8("f").is_err());
    }
}
