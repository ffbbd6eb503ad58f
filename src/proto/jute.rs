//! Jute binary encoding: the primitives every ZooKeeper record is built from.
//!
//! Facts (`BinaryInputArchive` / `BinaryOutputArchive`, Apache ZooKeeper 3.8): integers are
//! big-endian; `boolean` is one byte (written 0 or 1, read as "non-zero is true");
//! `ustring` and `buffer` are an `int` length then the bytes, with length -1 meaning null;
//! `vector<T>` is an `int` count then the elements, with count -1 meaning null. Null strings
//! and vectors decode as empty. A null `buffer` decodes as the null buffer ([`null_buffer`]:
//! empty, but told apart from empty by [`is_null_buffer`]) and encodes as -1 again, so znode
//! data can be null as in ZooKeeper (a Java client's `create(path, null, ...)`); every other
//! empty buffer, string and vector encodes as length/count 0.
//!
//! Architecture Invariant: the reader never allocates from a length or count read off the
//! wire before checking that the bytes are actually present.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::types::{Acl, ClientInfo, Id, Stat};

/// `jute.maxbuffer` default: the largest frame a ZooKeeper 3.8 server accepts.
pub const JUTE_MAX_BUFFER: usize = 0xfffff;

/// Largest `ustring` / `buffer` length the reader accepts by default: ZooKeeper's
/// `jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize` (the latter defaults to the former).
pub const DEFAULT_MAX_FIELD_LEN: usize = 2 * JUTE_MAX_BUFFER;

/// Encoded size of a [`Stat`]: 6 longs and 5 ints.
pub const STAT_LEN: usize = 6 * 8 + 5 * 4;

/// What a null buffer points at: the middle of a static of its own, an address no other
/// empty slice can have (an empty slice of another object points at or past that object's
/// bytes, and a zero-sized object may sit at this static's ends, never inside it).
static NULL_MARK: [u8; 2] = [0; 2];

/// The null buffer as a slice: empty, and [`is_null_buffer`].
pub fn null_slice() -> &'static [u8] {
    &NULL_MARK[1..1]
}

/// A null `buffer` (jute length -1): empty, and [`is_null_buffer`]. Clones keep it null;
/// copying its (no) bytes into new memory (`Bytes::copy_from_slice`, `to_vec`) gives empty.
pub fn null_buffer() -> Bytes {
    Bytes::from_static(null_slice())
}

/// Whether `bytes` is the null buffer ([`null_buffer`], [`null_slice`] or a borrow of them)
/// rather than an empty one.
pub fn is_null_buffer(bytes: &[u8]) -> bool {
    bytes.is_empty() && std::ptr::eq(bytes.as_ptr(), null_slice().as_ptr())
}

/// Smallest encoded sizes, used to bound vector counts by the bytes left.
const MIN_USTRING_LEN: usize = 4;
const MIN_ACL_LEN: usize = 4 + MIN_USTRING_LEN * 2;
const MIN_CLIENT_INFO_LEN: usize = MIN_USTRING_LEN * 2;

/// Why a jute record could not be decoded. Every variant means "the peer sent garbage";
/// none of them is a bug on our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a field.
    Truncated { needed: usize, available: usize },
    /// A string/buffer length or vector count below -1 (-1 means null).
    NegativeLength(i32),
    /// A string/buffer length above the reader's limit.
    LengthOverLimit { len: usize, limit: usize },
    /// A vector count whose elements cannot fit in the bytes left.
    CountOverRemaining {
        count: usize,
        min_element_len: usize,
        remaining: usize,
    },
    /// A `ustring` that is not valid UTF-8.
    InvalidUtf8,
    /// A request whose opcode we do not know (or that a client may not send). The server
    /// answers `Unimplemented` with this xid.
    UnknownOpcode { xid: i32, op: i32 },
    /// A multi (14) / multiRead (22) entry whose type is not allowed in that kind of multi,
    /// or a multi reply entry of an unknown type. `multi_op` is 14, 22, or for replies the
    /// opcode the caller passed.
    BadMultiHeader { multi_op: i32, op_type: i32 },
    /// A create inside a multi with flags that name no create mode (ZooKeeper fails the
    /// whole multi with MarshallingError).
    BadCreateFlags(i32),
    /// A watch event type we do not know.
    UnknownEventType(i32),
    /// An error code we do not know, inside a multi reply.
    UnknownErrorCode(i32),
    /// A reply header carrying an xid other than the one the decoder expects.
    UnexpectedXid { expected: i32, found: i32 },
    /// Bytes left over after a record that must end the frame.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, available } => {
                write!(
                    f,
                    "truncated input: needed {needed} bytes, {available} available"
                )
            }
            DecodeError::NegativeLength(len) => write!(f, "negative length or count {len}"),
            DecodeError::LengthOverLimit { len, limit } => {
                write!(f, "length {len} over the limit {limit}")
            }
            DecodeError::CountOverRemaining {
                count,
                min_element_len,
                remaining,
            } => write!(
                f,
                "vector count {count} (at least {min_element_len} bytes each) larger than the \
                 {remaining} bytes left"
            ),
            DecodeError::InvalidUtf8 => write!(f, "string is not valid UTF-8"),
            DecodeError::UnknownOpcode { xid, op } => {
                write!(f, "unknown opcode {op} (xid {xid})")
            }
            DecodeError::BadMultiHeader { multi_op, op_type } => {
                write!(
                    f,
                    "op type {op_type} not allowed in multi of type {multi_op}"
                )
            }
            DecodeError::BadCreateFlags(flags) => write!(f, "invalid create flags {flags}"),
            DecodeError::UnknownEventType(t) => write!(f, "unknown watch event type {t}"),
            DecodeError::UnknownErrorCode(e) => write!(f, "unknown error code {e}"),
            DecodeError::UnexpectedXid { expected, found } => {
                write!(f, "expected xid {expected}, found {found}")
            }
            DecodeError::TrailingBytes(n) => write!(f, "{n} trailing bytes after the record"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads jute primitives off a byte slice, front to back.
#[derive(Debug, Clone)]
pub struct JuteReader<'a> {
    buf: &'a [u8],
    /// Invariant: `pos <= buf.len()`.
    pos: usize,
    max_field_len: usize,
    /// `buf` as shared `Bytes`, when the reader was made [`JuteReader::over`] them:
    /// buffers are then slices of it (no copy, no allocation).
    shared: Option<&'a Bytes>,
}

impl<'a> JuteReader<'a> {
    /// A reader whose strings and buffers may be up to [`DEFAULT_MAX_FIELD_LEN`] long.
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_max_field_len(buf, DEFAULT_MAX_FIELD_LEN)
    }

    pub fn with_max_field_len(buf: &'a [u8], max_field_len: usize) -> Self {
        JuteReader {
            buf,
            pos: 0,
            max_field_len,
            shared: None,
        }
    }

    /// A reader over shared bytes (a received frame): [`JuteReader::read_buffer`] hands
    /// out slices of them, which keep the frame's memory alive as long as they live.
    pub fn over(frame: &'a Bytes) -> Self {
        JuteReader {
            shared: Some(frame),
            ..Self::new(frame)
        }
    }

    /// This reader with strings and buffers allowed up to `max_field_len` bytes.
    pub fn with_field_limit(mut self, max_field_len: usize) -> Self {
        self.max_field_len = max_field_len;
        self
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless everything was read.
    pub fn expect_end(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// Takes the next `n` bytes.
    pub fn read_raw(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining();
        if n > available {
            return Err(DecodeError::Truncated {
                needed: n,
                available,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.read_raw(N)?);
        Ok(out)
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.read_array::<1>()?[0])
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.read_array()?))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.read_array()?))
    }

    /// Java's `DataInput.readBoolean`: any non-zero byte is true.
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read_u8()? != 0)
    }

    /// Length of a `ustring`/`buffer`; `None` for null (-1).
    fn read_field_len(&mut self) -> Result<Option<usize>, DecodeError> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| DecodeError::NegativeLength(len))?;
        if len > self.max_field_len {
            return Err(DecodeError::LengthOverLimit {
                len,
                limit: self.max_field_len,
            });
        }
        Ok(Some(len))
    }

    /// A `buffer` as a borrowed slice; null (-1) reads as [`null_slice`].
    pub fn read_buffer_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        match self.read_field_len()? {
            None => Ok(null_slice()),
            Some(len) => self.read_raw(len),
        }
    }

    /// A `buffer`; null (-1) reads as [`null_buffer`]. A slice of the frame for a reader made
    /// [`JuteReader::over`] one, else a copy.
    pub fn read_buffer(&mut self) -> Result<Bytes, DecodeError> {
        let slice = self.read_buffer_slice()?;
        if is_null_buffer(slice) {
            return Ok(null_buffer());
        }
        Ok(match self.shared {
            Some(frame) if !slice.is_empty() => frame.slice_ref(slice),
            _ => Bytes::copy_from_slice(slice),
        })
    }

    /// A `ustring`; null (-1) reads as empty. Invalid UTF-8 is an error (ZooKeeper would
    /// substitute U+FFFD; no correct client sends it).
    pub fn read_ustring(&mut self) -> Result<String, DecodeError> {
        let raw = self.read_buffer_slice()?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8),
        }
    }

    /// A `vector` count; null (-1) reads as 0. Checked against the bytes left, given the
    /// smallest encoded size of one element, so a caller may allocate `count` elements.
    pub fn read_vec_count(&mut self, min_element_len: usize) -> Result<usize, DecodeError> {
        let count = self.read_i32()?;
        if count == -1 {
            return Ok(0);
        }
        let count = usize::try_from(count).map_err(|_| DecodeError::NegativeLength(count))?;
        let remaining = self.remaining();
        let fits = count
            .checked_mul(min_element_len.max(1))
            .is_some_and(|needed| needed <= remaining);
        if !fits {
            return Err(DecodeError::CountOverRemaining {
                count,
                min_element_len,
                remaining,
            });
        }
        Ok(count)
    }

    /// A `vector<T>` whose elements take at least `min_element_len` bytes each.
    pub fn read_vec<T>(
        &mut self,
        min_element_len: usize,
        mut read_element: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.read_vec_count(min_element_len)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(read_element(self)?);
        }
        Ok(out)
    }

    pub fn read_string_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        self.read_vec(MIN_USTRING_LEN, Self::read_ustring)
    }

    pub fn read_id(&mut self) -> Result<Id, DecodeError> {
        Ok(Id {
            scheme: self.read_ustring()?,
            id: self.read_ustring()?,
        })
    }

    pub fn read_acl(&mut self) -> Result<Acl, DecodeError> {
        Ok(Acl {
            perms: self.read_i32()?,
            id: self.read_id()?,
        })
    }

    pub fn read_acl_vec(&mut self) -> Result<Vec<Acl>, DecodeError> {
        self.read_vec(MIN_ACL_LEN, Self::read_acl)
    }

    pub fn read_client_info(&mut self) -> Result<ClientInfo, DecodeError> {
        Ok(ClientInfo {
            auth_scheme: self.read_ustring()?,
            user: self.read_ustring()?,
        })
    }

    pub fn read_client_info_vec(&mut self) -> Result<Vec<ClientInfo>, DecodeError> {
        self.read_vec(MIN_CLIENT_INFO_LEN, Self::read_client_info)
    }

    pub fn read_stat(&mut self) -> Result<Stat, DecodeError> {
        // Check once so a truncated stat reports the whole record as needed.
        let available = self.remaining();
        if available < STAT_LEN {
            return Err(DecodeError::Truncated {
                needed: STAT_LEN,
                available,
            });
        }
        Ok(Stat {
            czxid: self.read_i64()?,
            mzxid: self.read_i64()?,
            ctime: self.read_i64()?,
            mtime: self.read_i64()?,
            version: self.read_i32()?,
            cversion: self.read_i32()?,
            aversion: self.read_i32()?,
            ephemeral_owner: self.read_i64()?,
            data_length: self.read_i32()?,
            num_children: self.read_i32()?,
            pzxid: self.read_i64()?,
        })
    }
}

/// Appends jute primitives to a buffer.
#[derive(Debug)]
pub struct JuteWriter<'a> {
    out: &'a mut BytesMut,
}

/// A length or count as jute's `int`. Lengths come from our own records, which are bounded
/// far below `i32::MAX` by the frame limit; saturate rather than wrap if that ever breaks.
fn len_i32(len: usize) -> i32 {
    debug_assert!(
        len <= i32::MAX as usize,
        "jute length {len} overflows an int"
    );
    i32::try_from(len).unwrap_or(i32::MAX)
}

impl<'a> JuteWriter<'a> {
    pub fn new(out: &'a mut BytesMut) -> Self {
        JuteWriter { out }
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.out.put_slice(bytes);
    }

    pub fn write_u8(&mut self, v: u8) {
        self.out.put_u8(v);
    }

    pub fn write_i32(&mut self, v: i32) {
        self.out.put_i32(v);
    }

    pub fn write_i64(&mut self, v: i64) {
        self.out.put_i64(v);
    }

    pub fn write_bool(&mut self, v: bool) {
        self.out.put_u8(u8::from(v));
    }

    /// Length then bytes; the null buffer ([`is_null_buffer`]) as length -1.
    pub fn write_buffer(&mut self, bytes: &[u8]) {
        if is_null_buffer(bytes) {
            self.write_i32(-1);
            return;
        }
        self.write_i32(len_i32(bytes.len()));
        self.write_raw(bytes);
    }

    pub fn write_ustring(&mut self, s: &str) {
        self.write_i32(len_i32(s.len()));
        self.write_raw(s.as_bytes());
    }

    pub fn write_string_vec<S: AsRef<str>>(&mut self, strings: &[S]) {
        self.write_i32(len_i32(strings.len()));
        for s in strings {
            self.write_ustring(s.as_ref());
        }
    }

    pub fn write_id(&mut self, id: &Id) {
        self.write_ustring(&id.scheme);
        self.write_ustring(&id.id);
    }

    pub fn write_acl(&mut self, acl: &Acl) {
        self.write_i32(acl.perms);
        self.write_id(&acl.id);
    }

    pub fn write_acl_vec(&mut self, acls: &[Acl]) {
        self.write_i32(len_i32(acls.len()));
        for acl in acls {
            self.write_acl(acl);
        }
    }

    pub fn write_client_info_vec(&mut self, infos: &[ClientInfo]) {
        self.write_i32(len_i32(infos.len()));
        for info in infos {
            self.write_ustring(&info.auth_scheme);
            self.write_ustring(&info.user);
        }
    }

    pub fn write_stat(&mut self, stat: &Stat) {
        self.write_i64(stat.czxid);
        self.write_i64(stat.mzxid);
        self.write_i64(stat.ctime);
        self.write_i64(stat.mtime);
        self.write_i32(stat.version);
        self.write_i32(stat.cversion);
        self.write_i32(stat.aversion);
        self.write_i64(stat.ephemeral_owner);
        self.write_i32(stat.data_length);
        self.write_i32(stat.num_children);
        self.write_i64(stat.pzxid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(f: impl FnOnce(&mut JuteWriter)) -> Vec<u8> {
        let mut out = BytesMut::new();
        f(&mut JuteWriter::new(&mut out));
        out.to_vec()
    }

    #[test]
    fn buffers_of_a_shared_frame_are_slices_of_it() {
        let frame = Bytes::from(bytes_of(|w| {
            w.write_buffer(b"payload");
            w.write_buffer(b"");
            w.write_i32(-1);
        }));
        let mut r = JuteReader::over(&frame);
        let data = r.read_buffer().unwrap();
        assert_eq!(&data[..], b"payload");
        let inside = frame.as_ptr_range();
        assert!(inside.contains(&data.as_ptr()), "not a slice of the frame");
        assert!(r.read_buffer().unwrap().is_empty());
        assert!(r.read_buffer().unwrap().is_empty()); // null
        r.expect_end().unwrap();
        // A plain reader copies.
        let copied = JuteReader::new(&frame).read_buffer().unwrap();
        assert_eq!(&copied[..], b"payload");
        assert!(!inside.contains(&copied.as_ptr()));
    }

    fn sample_stat() -> Stat {
        Stat {
            czxid: 0x0102030405060708,
            mzxid: -2,
            ctime: 1_700_000_000_000,
            mtime: 1_700_000_000_001,
            version: 3,
            cversion: -1,
            aversion: 7,
            ephemeral_owner: i64::MIN,
            data_length: 5,
            num_children: 9,
            pzxid: 42,
        }
    }

    #[test]
    fn primitives_are_big_endian() {
        let b = bytes_of(|w| {
            w.write_i32(0x01020304);
            w.write_i64(-2);
            w.write_bool(true);
            w.write_bool(false);
        });
        assert_eq!(
            b,
            [1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1, 0]
        );
        let mut r = JuteReader::new(&b);
        assert_eq!(r.read_i32(), Ok(0x01020304));
        assert_eq!(r.read_i64(), Ok(-2));
        assert_eq!(r.read_bool(), Ok(true));
        assert_eq!(r.read_bool(), Ok(false));
        assert_eq!(r.expect_end(), Ok(()));
    }

    #[test]
    fn bool_reads_any_non_zero_as_true_like_java() {
        assert_eq!(JuteReader::new(&[2]).read_bool(), Ok(true));
        assert_eq!(JuteReader::new(&[0xff]).read_bool(), Ok(true));
    }

    #[test]
    fn strings_and_buffers() {
        let b = bytes_of(|w| {
            w.write_ustring("/zk");
            w.write_buffer(&[]);
        });
        assert_eq!(b, [0, 0, 0, 3, b'/', b'z', b'k', 0, 0, 0, 0]);
        let mut r = JuteReader::new(&b);
        assert_eq!(r.read_ustring().as_deref(), Ok("/zk"));
        assert_eq!(r.read_buffer(), Ok(Bytes::new()));
        assert!(r.is_empty());
    }

    #[test]
    fn null_buffers_stay_null_and_empty_ones_empty() {
        let minus_one = [0xff, 0xff, 0xff, 0xff];
        let frame = Bytes::copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        let mut shared = JuteReader::over(&frame);
        let null = shared.read_buffer().unwrap();
        let empty = shared.read_buffer().unwrap();
        assert!(null.is_empty() && is_null_buffer(&null));
        assert!(empty.is_empty() && !is_null_buffer(&empty));
        assert!(is_null_buffer(&null.clone()));
        assert!(is_null_buffer(
            JuteReader::new(&minus_one).read_buffer_slice().unwrap()
        ));
        assert!(is_null_buffer(
            &JuteReader::new(&minus_one).read_buffer().unwrap()
        ));
        assert!(!is_null_buffer(&Bytes::new()) && !is_null_buffer(&[]));
        assert!(!is_null_buffer(&Vec::new()) && !is_null_buffer(&NULL_MARK[..0]));
        assert!(!is_null_buffer(&NULL_MARK[2..]));
        let written = bytes_of(|w| {
            w.write_buffer(&null);
            w.write_buffer(&empty);
            w.write_buffer(null_slice());
        });
        assert_eq!(
            written,
            [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn null_string_and_vector_read_as_empty() {
        let minus_one = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            JuteReader::new(&minus_one).read_ustring(),
            Ok(String::new())
        );
        assert_eq!(JuteReader::new(&minus_one).read_buffer(), Ok(Bytes::new()));
        assert_eq!(JuteReader::new(&minus_one).read_string_vec(), Ok(vec![]));
        assert_eq!(JuteReader::new(&minus_one).read_acl_vec(), Ok(vec![]));
    }

    #[test]
    fn negative_lengths_other_than_minus_one_are_rejected() {
        for len in [-2i32, -100, i32::MIN] {
            let b = len.to_be_bytes();
            assert_eq!(
                JuteReader::new(&b).read_ustring(),
                Err(DecodeError::NegativeLength(len))
            );
            assert_eq!(
                JuteReader::new(&b).read_buffer(),
                Err(DecodeError::NegativeLength(len))
            );
            assert_eq!(
                JuteReader::new(&b).read_string_vec(),
                Err(DecodeError::NegativeLength(len))
            );
        }
    }

    #[test]
    fn huge_lengths_are_rejected_before_reading() {
        let b = i32::MAX.to_be_bytes();
        assert_eq!(
            JuteReader::new(&b).read_buffer(),
            Err(DecodeError::LengthOverLimit {
                len: i32::MAX as usize,
                limit: DEFAULT_MAX_FIELD_LEN
            })
        );
        let mut small = BytesMut::new();
        JuteWriter::new(&mut small).write_buffer(&[1, 2, 3, 4, 5]);
        assert!(matches!(
            JuteReader::with_max_field_len(&small, 4).read_buffer(),
            Err(DecodeError::LengthOverLimit { len: 5, limit: 4 })
        ));
        // Within the limit but beyond the input.
        let b = [0, 0, 0x10, 0, b'x'];
        assert_eq!(
            JuteReader::new(&b).read_ustring(),
            Err(DecodeError::Truncated {
                needed: 0x1000,
                available: 1
            })
        );
    }

    #[test]
    fn vector_counts_larger_than_the_bytes_left_are_rejected() {
        // 3 strings need at least 12 bytes; only 8 are left.
        let mut b = vec![0, 0, 0, 3];
        b.extend_from_slice(&[0; 8]);
        assert_eq!(
            JuteReader::new(&b).read_string_vec(),
            Err(DecodeError::CountOverRemaining {
                count: 3,
                min_element_len: 4,
                remaining: 8
            })
        );
        let b = i32::MAX.to_be_bytes();
        assert!(matches!(
            JuteReader::new(&b).read_acl_vec(),
            Err(DecodeError::CountOverRemaining { .. })
        ));
        // Exactly enough: 2 empty strings.
        let b = [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            JuteReader::new(&b).read_string_vec(),
            Ok(vec![String::new(), String::new()])
        );
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let b = [0, 0, 0, 2, 0xc3, 0x28];
        assert_eq!(
            JuteReader::new(&b).read_ustring(),
            Err(DecodeError::InvalidUtf8)
        );
        // Non-ASCII but valid.
        let b = bytes_of(|w| w.write_ustring("/ünï/😀"));
        assert_eq!(JuteReader::new(&b).read_ustring().as_deref(), Ok("/ünï/😀"));
    }

    #[test]
    fn stat_acl_and_client_info_round_trip() {
        let acl = vec![
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
                    id: "u:p".into(),
                },
            },
        ];
        let infos = vec![ClientInfo {
            auth_scheme: "ip".into(),
            user: "127.0.0.1".into(),
        }];
        let b = bytes_of(|w| {
            w.write_stat(&sample_stat());
            w.write_acl_vec(&acl);
            w.write_client_info_vec(&infos);
            w.write_string_vec(&["a", "bc"]);
        });
        let mut r = JuteReader::new(&b);
        assert_eq!(r.read_stat(), Ok(sample_stat()));
        assert_eq!(r.position(), STAT_LEN);
        assert_eq!(r.read_acl_vec(), Ok(acl));
        assert_eq!(r.read_client_info_vec(), Ok(infos));
        assert_eq!(
            r.read_string_vec(),
            Ok(vec!["a".to_string(), "bc".to_string()])
        );
        assert_eq!(r.expect_end(), Ok(()));
    }

    #[test]
    fn stat_layout_is_exact() {
        let b = bytes_of(|w| w.write_stat(&sample_stat()));
        let mut expected = Vec::new();
        expected.extend_from_slice(&0x0102030405060708i64.to_be_bytes());
        expected.extend_from_slice(&(-2i64).to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_001i64.to_be_bytes());
        expected.extend_from_slice(&3i32.to_be_bytes());
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        expected.extend_from_slice(&7i32.to_be_bytes());
        expected.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&5i32.to_be_bytes());
        expected.extend_from_slice(&9i32.to_be_bytes());
        expected.extend_from_slice(&42i64.to_be_bytes());
        assert_eq!(b, expected);
        assert_eq!(b.len(), STAT_LEN);
    }

    #[test]
    fn truncated_stat_reports_whole_record() {
        let b = [0u8; STAT_LEN - 1];
        assert_eq!(
            JuteReader::new(&b).read_stat(),
            Err(DecodeError::Truncated {
                needed: STAT_LEN,
                available: STAT_LEN - 1
            })
        );
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let b = [0, 0, 0, 1, 9];
        let mut r = JuteReader::new(&b);
        assert_eq!(r.read_i32(), Ok(1));
        assert_eq!(r.expect_end(), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn errors_display() {
        let e = DecodeError::UnknownOpcode { xid: 7, op: 999 };
        assert_eq!(e.to_string(), "unknown opcode 999 (xid 7)");
        let boxed: Box<dyn std::error::Error> = Box::new(DecodeError::InvalidUtf8);
        assert_eq!(boxed.to_string(), "string is not valid UTF-8");
    }
}
